"""The pipeline's log sources: rules written with Sigma's names match events from the parsers."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from keelwatch.detect import RuleSet, load_texts
from keelwatch.pipeline.normalize import normalize

from ..fixtures import audit_event
from .helpers import rule_yaml

NOW = datetime(2026, 3, 1, tzinfo=UTC)


def parsed(source: str, record: Any) -> dict[str, Any]:
    batch = normalize([record], source, NOW)
    assert len(batch.events) == 1, batch.dead_letters
    return batch.events[0]


def ruleset(detection: str, logsource: str) -> RuleSet:
    rules, errors = load_texts([("r.yml", rule_yaml(detection, logsource))])
    assert not errors, [str(e) for e in errors]
    return rules


def test_kubernetes_audit_names_map_to_the_native_namespace() -> None:
    rules = ruleset(
        "sel:\n  verb: create\n  objectRef.resource: pods\n  objectRef.subresource: exec\n"
        "  user.username|startswith: alice\ncondition: sel",
        "category: application\nproduct: kubernetes\nservice: audit",
    )
    exec_event = audit_event("create", "pods")
    exec_event["objectRef"]["subresource"] = "exec"
    assert rules.match([parsed("k8s-audit", exec_event)])
    assert not rules.match([parsed("k8s-audit", audit_event("create", "pods"))])
    # the same fields in another dataset do not count: the log source is part of the rule
    other = parsed("k8s-audit", exec_event) | {"event.dataset": "falco.alerts"}
    assert not rules.match([other])


def test_kubernetes_hostpath_and_capabilities_read_the_pod_spec() -> None:
    rules = ruleset(
        "sel:\n  verb: create\n  hostPath|startswith: /var/run\ncondition: sel",
        "product: kubernetes\nservice: audit",
    )
    pod = audit_event("create", "pods")
    pod["requestObject"] = {
        "kind": "Pod",
        "spec": {"volumes": [{"name": "a", "emptyDir": {}}, {"hostPath": {"path": "/var/run/x"}}]},
    }
    assert rules.match([parsed("k8s-audit", pod)])
    pod["requestObject"]["spec"]["volumes"] = [{"name": "a", "emptyDir": {}}]
    assert not rules.match([parsed("k8s-audit", pod)])

    caps = ruleset(
        "sel:\n  capabilities: SYS_ADMIN\ncondition: sel", "product: kubernetes\nservice: audit"
    )
    pod["requestObject"]["spec"]["initContainers"] = [
        {"name": "i", "securityContext": {"capabilities": {"add": ["NET_ADMIN", "SYS_ADMIN"]}}}
    ]
    assert caps.match([parsed("k8s-audit", pod)])


def test_cloudtrail_names_and_whole_objects() -> None:
    rules = ruleset(
        "sel:\n  eventSource: s3.amazonaws.com\n  eventName: PutBucketVersioning\n"
        "  requestParameters|contains: 'Suspended'\ncondition: sel",
        "product: aws\nservice: cloudtrail",
    )
    record = {
        "eventVersion": "1.08",
        "eventSource": "s3.amazonaws.com",
        "eventName": "PutBucketVersioning",
        "eventTime": "2026-03-01T10:00:00Z",
        "requestParameters": {
            "bucketName": "b",
            "VersioningConfiguration": {"Status": "Suspended"},
        },
    }
    assert rules.match([parsed("cloudtrail", record)])
    record["requestParameters"]["VersioningConfiguration"]["Status"] = "Enabled"
    assert not rules.match([parsed("cloudtrail", record)])


def test_gcp_method_name() -> None:
    rules = ruleset(
        "sel:\n  gcp.audit.method_name|endswith: '.delete'\ncondition: sel",
        "product: gcp\nservice: gcp.audit",
    )
    entry = {
        "insertId": "1",
        "logName": "projects/p/logs/cloudaudit.googleapis.com%2Factivity",
        "timestamp": "2026-03-01T10:00:00Z",
        "protoPayload": {
            "@type": "type.googleapis.com/google.cloud.audit.AuditLog",
            "serviceName": "storage.googleapis.com",
            "methodName": "storage.buckets.delete",
        },
    }
    assert rules.match([parsed("gcp-audit", entry)])
    entry["protoPayload"]["methodName"] = "storage.buckets.get"
    assert not rules.match([parsed("gcp-audit", entry)])


def _tetragon_exec(binary: str, arguments: str) -> dict[str, Any]:
    return {
        "process_exec": {
            "process": {
                "exec_id": "aWQ=",
                "pid": 42,
                "uid": 0,
                "cwd": "/tmp",
                "binary": binary,
                "arguments": arguments,
                "pod": {"namespace": "shop", "name": "web-1"},
            },
            "parent": {"binary": "/bin/bash", "arguments": "-i", "pid": 41},
        },
        "node_name": "worker-1",
        "time": "2026-03-01T10:00:00Z",
    }


def _falco_alert(exepath: str, cmdline: str, syscall: str) -> dict[str, Any]:
    return {
        "time": "2026-03-01T10:00:00Z",
        "rule": "Some rule",
        "priority": "Warning",
        "output": "x",
        "source": "syscall",
        "output_fields": {"proc.exepath": exepath, "proc.cmdline": cmdline, "evt.type": syscall},
    }


def test_process_creation_from_tetragon_and_falco() -> None:
    rules = ruleset(
        "sel:\n  Image|endswith: /curl\n  CommandLine|contains: '169.254.169.254'\n"
        "  ParentImage|endswith: /bash\ncondition: sel",
        "product: linux\ncategory: process_creation",
    )
    tetragon = parsed("tetragon", _tetragon_exec("/usr/bin/curl", "http://169.254.169.254/"))
    assert rules.match([tetragon])
    assert not rules.match([parsed("tetragon", _tetragon_exec("/usr/bin/wget", "169.254.169.254"))])
    plain = ruleset(
        "sel:\n  Image|endswith: /curl\n  CommandLine|contains: '169.254.169.254'\ncondition: sel",
        "product: linux\ncategory: process_creation",
    )
    falco = parsed("falco", _falco_alert("/usr/bin/curl", "curl 169.254.169.254", "execve"))
    assert plain.match([falco])
    # a Falco alert about a file opened by curl is not a process creation
    opened = parsed("falco", _falco_alert("/usr/bin/curl", "curl 169.254.169.254", "openat"))
    assert not plain.match([opened])


def test_network_connection_from_hubble_and_tetragon_with_initiated() -> None:
    rules = ruleset(
        "sel:\n  Initiated: 'true'\n  DestinationPort: 4444\n"
        "filter:\n  DestinationIp|cidr: 10.0.0.0/8\ncondition: sel and not filter",
        "product: linux\ncategory: network_connection",
    )
    flow = {
        "flow": {
            "time": "2026-03-01T10:00:00Z",
            "verdict": "FORWARDED",
            "IP": {"source": "10.0.0.5", "destination": "203.0.113.9", "ipVersion": "IPv4"},
            "l4": {"TCP": {"source_port": 40000, "destination_port": 4444}},
            "source": {"namespace": "shop", "pod_name": "web-1"},
            "traffic_direction": "EGRESS",
        },
        "node_name": "worker-1",
    }
    assert rules.match([parsed("hubble", flow)])
    flow["flow"]["traffic_direction"] = "INGRESS"
    assert not rules.match([parsed("hubble", flow)])
    flow["flow"]["traffic_direction"] = "EGRESS"
    flow["flow"]["IP"]["destination"] = "10.9.9.9"
    assert not rules.match([parsed("hubble", flow)])

    connect = {
        "process_kprobe": {
            "process": {"binary": "/usr/bin/nc", "arguments": "x 4444", "pid": 7},
            "function_name": "tcp_connect",
            "args": [{"sock_arg": {"family": "AF_INET", "protocol": "IPPROTO_TCP",
                                   "saddr": "10.0.0.5", "sport": 40000,
                                   "daddr": "198.51.100.7", "dport": 4444}}],
        },
        "node_name": "worker-1",
        "time": "2026-03-01T10:00:00Z",
    }  # fmt: skip
    assert rules.match([parsed("tetragon", connect)])
    connect["process_kprobe"]["function_name"] = "inet_csk_accept"  # the peer opened it
    assert not rules.match([parsed("tetragon", connect)])


def test_keelwatch_product_uses_schema_names() -> None:
    rules = ruleset(
        "sel:\n  kubernetes.namespace: kube-system\n  process.name: nsenter\ncondition: sel",
        "product: keelwatch\nservice: tetragon.events",
    )
    event = parsed("tetragon", _tetragon_exec("/usr/bin/nsenter", "-t 1"))
    assert not rules.match([event])  # namespace shop
    assert rules.match([event | {"kubernetes.namespace": "kube-system"}])
    assert not rules.match([event | {"kubernetes.namespace": "kube-system", "event.dataset": "x"}])
