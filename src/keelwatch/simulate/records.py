"""Records in each source's real wire format, as the tools themselves print them.

* ``k8s-audit``: an ``audit.k8s.io/v1`` Event per line (the API server's log backend);
* ``falco``: Falco's ``json_output`` line;
* ``tetragon`` and ``hubble``: see ``runtime_records``;
* ``container``: a Fluent Bit record (tail with the CRI parser + the kubernetes filter).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from keelwatch.simulate.cluster import Identity, Ids, Pod
from keelwatch.simulate.manifests import present

AUDIT, FALCO, TETRAGON, HUBBLE, CONTAINER = "k8s-audit", "falco", "tetragon", "hubble", "container"
SOURCES = (AUDIT, FALCO, TETRAGON, HUBBLE, CONTAINER)


@dataclass(slots=True)
class SimRecord:
    """One generated record: when it happened, which parser reads it, and the record itself."""

    time: datetime
    source: str
    record: Any


def micro(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def nano(moment: datetime, ids: Ids) -> str:
    """Nanosecond RFC 3339, as Falco, Tetragon and Hubble print it."""
    return micro(moment)[:-1] + f"{ids.rng.randrange(1000):03d}Z"


def epoch_ns(moment: datetime) -> int:
    return int(moment.timestamp()) * 1_000_000_000 + moment.microsecond * 1000


# -- Kubernetes audit ------------------------------------------------------------------------


def request_uri(
    resource: str | None,
    *,
    namespace: str | None = None,
    name: str | None = None,
    subresource: str | None = None,
    group: str = "",
    version: str = "v1",
    query: str = "",
) -> str:
    path = f"/apis/{group}/{version}" if group else f"/api/{version}"
    namespaced = f"namespaces/{namespace}" if namespace else None
    path += "".join(f"/{part}" for part in (namespaced, resource, name, subresource) if part)
    return path + (f"?{query}" if query else "")


def audit_event(
    ids: Ids,
    when: datetime,
    *,
    verb: str,
    user: Identity,
    source_ip: str,
    user_agent: str,
    resource: str | None,
    namespace: str | None = None,
    name: str | None = None,
    subresource: str | None = None,
    group: str = "",
    version: str = "v1",
    level: str | None = None,
    code: int = 200,
    query: str = "",
    uri: str | None = None,
    request_object: dict[str, Any] | None = None,
    response_object: dict[str, Any] | None = None,
    reason: str = "",
    impersonated: Identity | None = None,
) -> dict[str, Any]:
    """An audit Event at stage ResponseComplete, with the fields ``level`` keeps."""
    level = level or policy_level(verb, resource, subresource, group)
    event: dict[str, Any] = {
        "kind": "Event",
        "apiVersion": "audit.k8s.io/v1",
        "level": level,
        "auditID": ids.uuid(),
        "stage": "ResponseComplete",
        "requestURI": uri
        or request_uri(
            resource,
            namespace=namespace,
            name=name,
            subresource=subresource,
            group=group,
            version=version,
            query=query,
        ),
        "verb": verb,
        "user": user.as_audit(),
    }
    if impersonated is not None:
        event["impersonatedUser"] = impersonated.as_audit()
    event["sourceIPs"] = [source_ip]
    event["userAgent"] = user_agent
    if resource:
        event["objectRef"] = {
            "resource": resource,
            **present(
                namespace=namespace,
                name=name,
                apiGroup=group,
                apiVersion=version,
                subresource=subresource,
            ),
        }
    if code < 400:
        event["responseStatus"] = {"metadata": {}, "code": code}
    else:
        event["responseStatus"] = _failure(code, verb, resource, name, user)
    if level in ("Request", "RequestResponse") and request_object is not None:
        event["requestObject"] = request_object
    if level == "RequestResponse" and response_object is not None:
        event["responseObject"] = response_object
    received = when
    event["requestReceivedTimestamp"] = micro(received)
    latency = timedelta(microseconds=ids.rng.randrange(800, 60_000))
    event["stageTimestamp"] = micro(received + latency)
    decision = "forbid" if code == 403 else "allow"
    annotations = {"authorization.k8s.io/decision": decision}
    annotations["authorization.k8s.io/reason"] = "" if decision == "forbid" else reason
    if resource == "pods" and verb == "create" and not subresource and code < 400:
        annotations["pod-security.kubernetes.io/enforce-policy"] = "privileged:latest"
    event["annotations"] = annotations
    return event


# API groups whose every request the Policy keeps whole (RBAC, certificates, admission).
_FULL_GROUPS = frozenset(
    ("rbac.authorization.k8s.io", "certificates.k8s.io", "admissionregistration.k8s.io")
)
_FULL_SUBRESOURCES = frozenset(("exec", "attach", "portforward"))
_METADATA_RESOURCES = frozenset(
    ("secrets", "configmaps", "serviceaccounts", "tokenreviews", "leases")
)
_WRITES = frozenset(("create", "update", "patch", "delete", "deletecollection"))


def policy_level(verb: str, resource: str | None, subresource: str | None, group: str) -> str:
    """The level the implied audit Policy gives a request (docs/simulator.md)."""
    if group in _FULL_GROUPS or subresource in _FULL_SUBRESOURCES:
        return "RequestResponse"
    if resource in _METADATA_RESOURCES:
        return "Metadata"  # secrets and tokens must never be logged with their bodies
    return "Request" if verb in _WRITES else "Metadata"


def _failure(
    code: int, verb: str, resource: str | None, name: str | None, user: Identity
) -> dict[str, Any]:
    reasons = {401: "Unauthorized", 403: "Forbidden", 404: "NotFound", 409: "AlreadyExists"}
    status: dict[str, Any] = {
        "metadata": {},
        "status": "Failure",
        "reason": reasons.get(code, "InternalError"),
        "code": code,
    }
    if code == 403:
        target = f'{resource or "path"} "{name}"' if name else f"{resource or 'path'}"
        status["message"] = (
            f'{target} is forbidden: User "{user.username}" cannot {verb} resource '
            f'"{resource}" in API group "" at the cluster scope'
        )
    if code == 404 and resource:
        status["message"] = f'{resource} "{name}" not found'
        status["details"] = {"name": name, "kind": resource}
    return status


def rbac_reason(binding: str, role: str, subject: str, cluster: bool = True) -> str:
    kind = "ClusterRoleBinding" if cluster else "RoleBinding"
    return f'RBAC: allowed by {kind} "{binding}" of ClusterRole "{role}" to {subject}'


# -- Falco -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FalcoRule:
    """A stock Falco rule as its alerts show it."""

    name: str
    priority: str
    text: str  # the output line's message, before the fields
    tags: tuple[str, ...]


API_SERVER_CONTACT = FalcoRule(
    "Contact K8S API Server From Container",
    "Notice",
    "Unexpected connection to K8s API Server from container",
    ("T1565", "container", "k8s", "maturity_stable", "mitre_discovery", "network"),
)
TERMINAL_SHELL = FalcoRule(
    "Terminal shell in container",
    "Notice",
    "A shell was spawned in a container with an attached terminal",
    ("T1059", "container", "maturity_stable", "mitre_execution", "shell"),
)
PRIVILEGED_CONTAINER = FalcoRule(
    "Launch Privileged Container",
    "Info",
    "Privileged container started",
    ("T1610", "cis", "container", "maturity_incubating", "mitre_execution"),
)
STRATUM_MINER = FalcoRule(
    "Detect crypto miners using the Stratum protocol",
    "Critical",
    "Possible miner running",
    ("T1496", "maturity_stable", "mitre_impact", "process"),
)
CLOUD_METADATA = FalcoRule(
    "Contact cloud metadata service from container",
    "Notice",
    "Outbound connection to cloud instance metadata service",
    ("T1552.005", "container", "maturity_sandbox", "mitre_credential_access", "network"),
)


def falco_alert(
    ids: Ids, when: datetime, rule: FalcoRule, fields: dict[str, Any], hostname: str
) -> dict[str, Any]:
    stamp = nano(when, ids)
    fields = {"evt.time": epoch_ns(when), **fields}
    shown = " ".join(f"{key.replace('.', '_')}={value}" for key, value in fields.items())
    return {
        "hostname": hostname,
        "output": f"{stamp[:-1]}+0000: {rule.priority} {rule.text} ({shown})",
        "output_fields": dict(sorted(fields.items())),
        "priority": rule.priority,
        "rule": rule.name,
        "source": "syscall",
        "tags": sorted(rule.tags),
        "time": stamp,
        "uuid": ids.uuid(),
    }


def falco_process_fields(
    pod: Pod,
    *,
    command: str,
    exe: str,
    parent: str,
    pid: int,
    user: str = "root",
    uid: int = 0,
    connection: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The fields of a process's syscall: ``execve``, or ``connect`` with the ``fd.*`` fields
    of ``connection`` (in the output line's order)."""
    repository, _, tag = pod.image.rpartition(":")
    fields: dict[str, Any] = {
        "container.id": pod.container_id[:12],
        "container.image.repository": repository,
        "container.image.tag": tag,
        "container.name": pod.container,
        "evt.type": "connect" if connection else "execve",
        "k8s.ns.name": pod.namespace,
        "k8s.pod.name": pod.name,
        "proc.cmdline": command,
        "proc.exepath": exe,
        "proc.name": exe.rpartition("/")[2],
        "proc.pid": pid,
        "proc.pname": parent,
        "user.loginuid": -1,
        "user.name": user,
        "user.uid": uid,
    }
    return {**fields, **(connection or {})}


# -- container logs (Fluent Bit) ---------------------------------------------------------------


def container_record(
    ids: Ids, when: datetime, pod: Pod, line: str, stream: str = "stdout"
) -> dict[str, Any]:
    return {
        "date": round(when.timestamp(), 6),
        "time": nano(when, ids),
        "stream": stream,
        "_p": "F",
        "log": line,
        "kubernetes": {
            "pod_name": pod.name,
            "namespace_name": pod.namespace,
            "pod_id": pod.uid,
            "labels": dict(pod.labels),
            "host": pod.node.name,
            "pod_ip": pod.ip,
            "container_name": pod.container,
            "docker_id": pod.container_id,
            "container_hash": f"{pod.image.rpartition(':')[0]}@sha256:{pod.container_id}",
            "container_image": pod.image,
        },
    }
