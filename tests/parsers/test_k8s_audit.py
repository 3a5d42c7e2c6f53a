"""k8s-audit: shape recognition, dead-lettering, ids and the corpus (golden files cover mapping)."""

from __future__ import annotations

import base64
import copy
import gzip
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from keelwatch.model.fields import RecordLimits
from keelwatch.parsers import k8s_audit, k8s_event
from keelwatch.parsers.base import Batch, ParseContext, Parser
from keelwatch.pipeline.decode import decode_body

from .helpers import RECEIVED_AT, json_values, parse_records, reasons

PARSER = Parser(
    k8s_audit.NAME, k8s_audit.DATASET, k8s_audit.DESCRIPTION, k8s_audit.matches, k8s_audit.parse
)
run = partial(parse_records, PARSER)
GOLDEN = Path(__file__).parent / "golden"


def audit_event(**overrides: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "kind": "Event",
        "apiVersion": "audit.k8s.io/v1",
        "level": "Metadata",
        "auditID": "11111111-2222-4333-8444-555555555555",
        "stage": "ResponseComplete",
        "requestURI": "/api/v1/namespaces/team-a/configmaps/settings",
        "verb": "get",
        "user": {"username": "dev@example.org", "groups": ["system:authenticated"]},
        "sourceIPs": ["10.1.2.3"],
        "objectRef": {"resource": "configmaps", "namespace": "team-a", "name": "settings"},
        "responseStatus": {"code": 200},
        "requestReceivedTimestamp": "2025-06-01T12:00:00.000001Z",
        "stageTimestamp": "2025-06-01T12:00:00.000900Z",
    }
    event.update(overrides)
    return event


def cloudwatch(*events: Any, stream: str = "kube-apiserver-audit-0a1b2c3d") -> dict[str, Any]:
    return {
        "messageType": "DATA_MESSAGE",
        "owner": "210987654321",
        "logGroup": "/aws/eks/staging/cluster",
        "logStream": stream,
        "subscriptionFilters": ["audit"],
        "logEvents": [
            {"id": str(n), "timestamp": 1748779200000 + n, "message": orjson.dumps(e).decode()}
            for n, e in enumerate(events)
        ],
    }


def packed(payload: Any) -> str:
    raw = payload if isinstance(payload, bytes) else orjson.dumps(payload)
    return base64.b64encode(gzip.compress(raw, mtime=0)).decode()


def gke_entry(**payload: Any) -> dict[str, Any]:
    proto = {
        "serviceName": "k8s.io",
        "methodName": "io.k8s.core.v1.pods.get",
        "resourceName": "core/v1/namespaces/web/pods/frontend-0",
        "authenticationInfo": {"principalEmail": "ci@proj.iam.gserviceaccount.com"},
        "requestMetadata": {"callerIp": "10.8.0.2", "callerSuppliedUserAgent": "ci/1.0"},
    }
    proto.update(payload)
    return {
        "protoPayload": proto,
        "insertId": "ins-0001",
        "resource": {
            "type": "k8s_cluster",
            "labels": {"cluster_name": "c1", "location": "us-east1-c", "project_id": "proj"},
        },
        "timestamp": "2025-06-01T12:00:00Z",
    }


def aks_record(log: Any, category: str = "kube-audit") -> dict[str, Any]:
    return {
        "category": category,
        "operationName": "Microsoft.ContainerService/managedClusters/diagnosticLogs/Read",
        "resourceId": "/SUBSCRIPTIONS/0000AAAA-1111-2222-3333-444455556666/RESOURCEGROUPS/RG"
        "/PROVIDERS/MICROSOFT.CONTAINERSERVICE/MANAGEDCLUSTERS/DEV-AKS",
        "properties": {"log": log, "stream": "stdout", "pod": "kube-apiserver-0"},
        "time": "2025-06-01T12:00:01Z",
    }


# --- matches -----------------------------------------------------------------------------------

FALCO_ALERT = {
    "output": "Notice A shell was spawned in a container (user=root container=abc)",
    "priority": "Notice",
    "rule": "Terminal shell in container",
    "source": "syscall",
    "time": "2025-06-01T12:00:00.000000000Z",
    "output_fields": {"container.id": "abc", "proc.cmdline": "bash"},
    "tags": ["container", "shell"],
}
CLOUDTRAIL = {
    "eventVersion": "1.08",
    "userIdentity": {"type": "AssumedRole", "arn": "arn:aws:sts::1:assumed-role/r/s"},
    "eventTime": "2025-06-01T12:00:00Z",
    "eventSource": "eks.amazonaws.com",
    "eventName": "DescribeCluster",
    "awsRegion": "eu-west-1",
    "sourceIPAddress": "198.51.100.1",
    "requestParameters": {"name": "prod"},
    "eventID": "b1b2b3b4",
}
CORE_EVENT = {
    "kind": "Event",
    "apiVersion": "v1",
    "metadata": {"name": "x.1", "namespace": "default", "uid": "u", "resourceVersion": "1"},
    "involvedObject": {"kind": "Pod", "namespace": "default", "name": "x"},
    "reason": "Pulled",
    "message": "pulled",
    "type": "Normal",
}


@pytest.mark.parametrize(
    "record",
    [
        pytest.param(audit_event(), id="v1 event"),
        pytest.param(audit_event(apiVersion="audit.k8s.io/v1beta1"), id="v1beta1 event"),
        pytest.param(
            {k: v for k, v in audit_event().items() if k != "apiVersion"}, id="no apiVersion"
        ),
        pytest.param(
            {k: v for k, v in audit_event().items() if k not in ("kind", "apiVersion")}, id="bare"
        ),
        pytest.param(
            {"kind": "Event", "verb": "list", "objectRef": {"resource": "secrets"}},
            id="panther eks",
        ),
        pytest.param(
            {"kind": "EventList", "apiVersion": "audit.k8s.io/v1", "items": []}, id="eventlist"
        ),
        pytest.param(cloudwatch(audit_event()), id="cloudwatch plain"),
        pytest.param(
            {"messageType": "CONTROL_MESSAGE", "logGroup": "", "logEvents": []}, id="control"
        ),
        pytest.param(packed(cloudwatch(audit_event())), id="bare base64"),
        pytest.param({"awslogs": {"data": packed(cloudwatch(audit_event()))}}, id="awslogs"),
        pytest.param({"records": [{"data": packed(cloudwatch(audit_event()))}]}, id="firehose"),
        pytest.param(
            {"records": [{"data": base64.b64encode(orjson.dumps(audit_event())).decode()}]},
            id="firehose extracted message",
        ),
        pytest.param(gke_entry(), id="gke"),
        pytest.param(
            {"protoPayload": {"methodName": "io.k8s.core.v1.pods.create"}}, id="gke trimmed"
        ),
        pytest.param(aks_record(orjson.dumps(audit_event()).decode()), id="aks string"),
        pytest.param(aks_record(audit_event(), "kube-audit-admin"), id="aks object"),
        pytest.param({"records": [aks_record(audit_event())]}, id="event hubs"),
    ],
)
def test_matches_every_shape(record: Any) -> None:
    assert k8s_audit.matches(record)
    assert not k8s_event.matches(record)


@pytest.mark.parametrize(
    "record",
    [
        pytest.param(FALCO_ALERT, id="falco alert"),
        pytest.param(CLOUDTRAIL, id="cloudtrail record"),
        pytest.param({"Records": [CLOUDTRAIL]}, id="cloudtrail file"),
        pytest.param(CORE_EVENT, id="core/v1 event"),
        pytest.param(
            {"kind": "EventList", "apiVersion": "v1", "items": [CORE_EVENT]}, id="core list"
        ),
        pytest.param({"type": "ADDED", "object": CORE_EVENT}, id="core watch"),
        pytest.param({"kind": "Pod", "apiVersion": "v1", "metadata": {"name": "p"}}, id="pod"),
        pytest.param(
            {"protoPayload": {"serviceName": "iam.googleapis.com", "methodName": "SetIamPolicy"}},
            id="gcp non-k8s",
        ),
        pytest.param({"records": [{"category": "Administrative", "properties": {}}]}, id="azure"),
        pytest.param({**cloudwatch(audit_event()), "logGroup": "/aws/lambda/fn"}, id="other group"),
        pytest.param(
            cloudwatch(audit_event(), stream="authenticator-0a1b"), id="eks authenticator"
        ),
        pytest.param(
            packed({"messageType": "DATA_MESSAGE", "logGroup": "/aws/rds/x"}), id="other gz"
        ),
        pytest.param(base64.b64encode(b"hello world, not a payload").decode(), id="other base64"),
        pytest.param("2025-06-01T12:00:00Z stdout F plain container log line", id="text"),
        pytest.param({"level": "info", "user": "bob", "msg": "login"}, id="app log"),
        pytest.param({"kind": 0}, id="malformed"),
        pytest.param({"kind": ["Event"]}, id="unhashable kind"),
        pytest.param({"records": []}, id="empty records"),
        pytest.param({}, id="empty"),
        pytest.param([audit_event()], id="list"),
        pytest.param(None, id="null"),
        pytest.param(7, id="number"),
    ],
)
def test_matches_no_neighbour(record: Any) -> None:
    assert not k8s_audit.matches(record)


def test_every_golden_input_is_recognised() -> None:
    for path in sorted((GOLDEN / "k8s-audit").glob("*.input.*")):
        for record in decode_body(path.read_bytes()).records:
            assert k8s_audit.matches(record), path.name
            assert not k8s_event.matches(record), path.name


# --- rejects -----------------------------------------------------------------------------------


@pytest.mark.parametrize("record", [42, None, [1, 2], "plain text, not a payload"])
def test_rejects_what_is_not_a_record(record: Any) -> None:
    batch = run(record)
    assert batch.events == []
    assert len(batch.dead_letters) == 1
    assert "failed" not in batch.dead_letters[0].reason


def test_eventlist_bad_items_are_dead_lettered_alone() -> None:
    items = [audit_event(auditID="a-1"), "not an event", audit_event(auditID="a-2"), CORE_EVENT]
    batch = run({"kind": "EventList", "apiVersion": "audit.k8s.io/v1", "items": items})
    assert [e["event.id"] for e in batch.events] == ["a-1", "a-2"]
    assert reasons(batch) == [
        "audit event is a str, not an object",
        "apiVersion 'v1' is not audit.k8s.io (a core Event belongs to k8s-event)",
    ]
    assert batch.dead_letters[0].raw == b"not an event"


def test_eventlist_of_core_events_is_refused() -> None:
    batch = run({"kind": "EventList", "apiVersion": "v1", "items": [CORE_EVENT]})
    assert batch.events == [] and "k8s-event" in reasons(batch)[0]


def test_malformed_event_reason() -> None:
    assert reasons(run({"kind": 0})) == ["kind is 0, not Event"]


def test_request_object_too_deep_is_dead_lettered_others_kept() -> None:
    deep: dict[str, Any] = {"leaf": True}
    for _ in range(60):
        deep = {"nested": deep}
    bad = audit_event(auditID="deep", verb="create", requestObject={"spec": deep})
    batch = run({"kind": "EventList", "items": [audit_event(auditID="ok"), bad]})
    assert [e["event.id"] for e in batch.events] == ["ok"]
    (reason,) = reasons(batch)
    assert reason.startswith(
        "nesting deeper than 48 levels at kubernetes.audit.requestObject.spec."
    )


def test_too_many_fields_is_dead_lettered() -> None:
    wide = {f"k{n}": n for n in range(300)}
    batch = run(audit_event(requestObject=wide), limits=RecordLimits(max_fields=200))
    assert batch.events == [] and "more fields than the limit" in reasons(batch)[0]


def test_truncated_base64_is_dead_lettered() -> None:
    data = packed(cloudwatch(audit_event()))
    batch = run({"awslogs": {"data": data[: len(data) // 2 + 1]}})
    assert batch.events == []
    assert reasons(batch)[0].startswith("payload is not valid base64")


def test_truncated_gzip_is_dead_lettered() -> None:
    raw = gzip.compress(orjson.dumps(cloudwatch(audit_event())), mtime=0)
    batch = run(base64.b64encode(raw[: len(raw) // 2]).decode())
    assert batch.events == [] and "not JSON" in reasons(batch)[0]


def test_gzip_bomb_over_the_limit_is_dead_lettered_others_kept() -> None:
    bomb = packed(b"{" + b" " * (k8s_audit.MAX_INFLATED_BYTES + 1024) + b"}")
    assert len(bomb) < 200_000  # small on the wire, huge inflated
    good = packed(cloudwatch(audit_event(auditID="kept")))
    batch = run({"records": [{"data": bomb}, {"data": good}]})
    assert [e["event.id"] for e in batch.events] == ["kept"]
    assert reasons(batch) == [f"payload inflates to more than {k8s_audit.MAX_INFLATED_BYTES} bytes"]


def test_oversized_base64_is_refused_before_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(k8s_audit, "MAX_ENCODED_CHARS", 64)
    batch = run({"awslogs": {"data": packed(cloudwatch(audit_event()))}})
    assert reasons(batch) == ["base64 payload is longer than 64 characters"]


def test_cloudwatch_bad_log_event_is_dead_lettered_alone() -> None:
    payload = cloudwatch(audit_event(auditID="a"), audit_event(auditID="b"))
    payload["logEvents"][0]["message"] = "I0601 12:00:00 not json"
    payload["logEvents"].append("junk")
    batch = run(payload)
    assert [e["event.id"] for e in batch.events] == ["b"]
    assert reasons(batch)[0].startswith("log event message is not JSON")
    assert reasons(batch)[1] == "log event has no message string"


def test_cloudwatch_eks_non_audit_stream_is_refused() -> None:
    batch = run(cloudwatch(audit_event(), stream="authenticator-55aa"))
    assert reasons(batch) == ["EKS log stream 'authenticator-55aa' is not the audit stream"]


def test_control_message_yields_nothing() -> None:
    control = {"messageType": "CONTROL_MESSAGE", "owner": "CloudwatchLogs", "logEvents": []}
    for record in (control, packed(control), {"awslogs": {"data": packed(control)}}):
        batch = run(record)
        assert batch.events == [] and batch.dead_letters == []


def test_event_hubs_bad_records_are_dead_lettered_alone() -> None:
    records = [
        aks_record("{not json"),
        aks_record(audit_event(auditID="good")),
        aks_record("I0601 leader election", category="kube-apiserver"),
        17,
    ]
    batch = run({"records": records})
    assert [e["event.id"] for e in batch.events] == ["good"]
    assert reasons(batch)[0].startswith("properties.log is not JSON")
    assert reasons(batch)[1:] == [
        "AKS diagnostic category 'kube-apiserver' is not kube-audit",
        "batch item is a int, not an object",
    ]


# --- ids, envelopes, GKE conversion ------------------------------------------------------------


@pytest.mark.parametrize(
    ("stage", "suffix"),
    [
        ("RequestReceived", "/RequestReceived"),
        ("ResponseStarted", "/ResponseStarted"),
        ("ResponseComplete", ""),
        ("Panic", ""),
        (None, ""),
    ],
)
def test_event_id_is_unique_per_stage(stage: str | None, suffix: str) -> None:
    (event,) = run(audit_event(stage=stage)).events
    assert event["event.id"] == "11111111-2222-4333-8444-555555555555" + suffix


def test_event_without_audit_id_gets_a_content_hash() -> None:
    record = {"kind": "Event", "verb": "list", "objectRef": {"resource": "pods"}}
    (event,) = run(record).events
    assert len(event["event.id"]) == 32 and event["@timestamp"] == RECEIVED_AT


def test_v1beta1_timestamp_and_create_name_fallback() -> None:
    record = audit_event(
        apiVersion="audit.k8s.io/v1beta1",
        verb="create",
        objectRef={"resource": "pods", "namespace": "ns", "apiVersion": "v1"},
        responseObject={"metadata": {"name": "web-x7k2p", "generateName": "web-"}},
        requestReceivedTimestamp=None,
        stageTimestamp=None,
        timestamp="2018-10-25T14:09:12Z",
    )
    (event,) = run(record).events
    assert event["@timestamp"] == datetime(2018, 10, 25, 14, 9, 12, tzinfo=UTC)
    assert event["kubernetes.pod.name"] == event["orchestrator.resource.name"] == "web-x7k2p"


def test_panther_enrichment_fields_are_dropped() -> None:
    record = {**audit_event(), "p_log_type": "Amazon.EKS.Audit", "p_any_ip_addresses": ["10.1.2.3"]}
    (event,) = run(record).events
    assert not any(key.startswith("kubernetes.audit.p_") for key in event)


@pytest.mark.parametrize(
    ("status", "code", "outcome"),
    [
        ({}, 200, "success"),
        ({"code": 0}, 200, "success"),
        ({"code": 7, "message": "no"}, 403, "failure"),
        ({"code": 5}, 404, "failure"),
        ({"code": 16}, 401, "failure"),
        ({"code": 14}, 503, "failure"),
        ({"code": 99}, 500, "failure"),
        (None, None, "unknown"),
        ({"code": "7"}, None, "unknown"),
    ],
)
def test_gke_status_mapping(status: Any, code: int | None, outcome: str) -> None:
    entry = gke_entry(status=status) if status is not None else gke_entry()
    (event,) = run(entry).events
    assert event.get("http.response.status_code") == code
    assert event.get("kubernetes.audit.responseStatus.code") == code
    assert event["event.outcome"] == outcome


@pytest.mark.parametrize(
    ("resource_name", "ref"),
    [
        (
            "core/v1/namespaces/web/pods/frontend-0/log",
            {
                "apiVersion": "v1",
                "namespace": "web",
                "resource": "pods",
                "name": "frontend-0",
                "subresource": "log",
            },
        ),
        (
            "rbac.authorization.k8s.io/v1/clusterroles/admin",
            {
                "apiGroup": "rbac.authorization.k8s.io",
                "apiVersion": "v1",
                "resource": "clusterroles",
                "name": "admin",
            },
        ),
        (
            "core/v1/namespaces/web",
            {"apiVersion": "v1", "namespace": "web", "resource": "namespaces", "name": "web"},
        ),
        (
            "core/v1/namespaces/web/finalize",
            {
                "apiVersion": "v1",
                "namespace": "web",
                "resource": "namespaces",
                "name": "web",
                "subresource": "finalize",
            },
        ),
        (
            "apps/v1/namespaces/web/deployments",
            {"apiGroup": "apps", "apiVersion": "v1", "namespace": "web", "resource": "deployments"},
        ),
    ],
)
def test_gke_resource_name_to_object_ref(resource_name: str, ref: dict[str, str]) -> None:
    (event,) = run(gke_entry(resourceName=resource_name)).events
    got = {
        k.rsplit(".", 1)[1]: v
        for k, v in event.items()
        if k.startswith("kubernetes.audit.objectRef.")
    }
    assert got == ref
    assert "kubernetes.audit.requestURI" not in event


def test_gke_trimmed_entry_uses_method_name() -> None:
    entry = {"protoPayload": {"methodName": "io.k8s.core.v1.pods.exec.create"}, "resource": {}}
    (event,) = run(entry).events
    assert event["event.action"] == "create"
    assert event["orchestrator.resource.type"] == "pods"
    assert event["orchestrator.resource.subresource"] == "exec"
    assert event["gcp.audit.protoPayload.methodName"] == "io.k8s.core.v1.pods.exec.create"


def test_gke_entry_through_another_parser_context() -> None:
    """gcp_audit hands k8s.io entries to k8s_audit.parse with its own context."""
    batch = Batch()
    k8s_audit.parse(gke_entry(), ParseContext("gcp-audit", RECEIVED_AT, batch))
    (event,) = batch.events
    assert event["event.dataset"] == "kubernetes.audit"
    assert event["event.id"] == "ins-0001"
    assert event["cloud.availability_zone"] == "us-east1-c" and event["cloud.region"] == "us-east1"
    assert event["kubernetes.pod.name"] == "frontend-0"


def test_gke_non_k8s_entry_is_refused() -> None:
    batch = run({"protoPayload": {"serviceName": "compute.googleapis.com"}})
    assert batch.events == [] and "k8s.io" in reasons(batch)[0]


# --- hostile input never crashes the parser ----------------------------------------------------

_JSON = json_values(text_size=12, key_size=8, max_leaves=12, allow_infinity=False)
_AUDIT_FIELDS = st.fixed_dictionaries(
    {"kind": st.just("Event")},
    optional={
        key: _JSON
        for key in (
            *audit_event(),
            "impersonatedUser",
            "annotations",
            "requestObject",
            "responseObject",
            "timestamp",
        )
        if key != "kind"
    },
)
_ENVELOPES = st.one_of(
    _AUDIT_FIELDS,
    st.builds(
        lambda items: {"kind": "EventList", "items": items},
        st.lists(_JSON | _AUDIT_FIELDS, max_size=3),
    ),
    st.builds(
        lambda p, e: {"protoPayload": {"serviceName": "k8s.io", **p}, **e},
        st.dictionaries(
            st.sampled_from(
                [
                    "methodName",
                    "resourceName",
                    "status",
                    "request",
                    "authenticationInfo",
                    "requestMetadata",
                    "authorizationInfo",
                ]
            ),
            _JSON,
        ),
        st.dictionaries(st.sampled_from(["insertId", "labels", "resource", "timestamp"]), _JSON),
    ),
    st.builds(
        lambda events, group: {
            "messageType": "DATA_MESSAGE",
            "logGroup": group,
            "logStream": "kube-apiserver-audit-1",
            "logEvents": events,
        },
        _JSON,
        _JSON,
    ),
    st.builds(
        lambda log, rid: {
            "category": "kube-audit",
            "properties": {"log": log},
            "resourceId": rid,
            "time": rid,
        },
        _JSON | _AUDIT_FIELDS,
        _JSON,
    ),
    st.builds(lambda items: {"records": items}, st.lists(_JSON, max_size=3)),
    st.builds(lambda data: {"awslogs": {"data": data}}, _JSON),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_ENVELOPES)
def test_hostile_values_never_crash(record: dict[str, Any]) -> None:
    original = copy.deepcopy(record)
    batch = run(record)
    assert not any(reason.startswith("parser k8s-audit failed") for reason in reasons(batch))
    assert record == original  # the parser never mutates its input


# --- the shared corpus -------------------------------------------------------------------------


@pytest.mark.corpus
def test_falco_trace_files(corpus: Path) -> None:
    files = sorted((corpus / "k8s-audit" / "falco-trace-files").glob("*.json"))
    files = [path for path in files if path.name != "LABELS.json"]  # labels, not a trace
    if not files:
        pytest.skip("no Falco trace files in the corpus")
    records = events = dead = 0
    for path in files:
        for record in decode_body(path.read_bytes()).records:
            records += 1
            batch = run(record)
            if batch.dead_letters:
                assert batch.events == [], path.name
                dead += 1
                continue
            (event,) = batch.events
            stage = record.get("stage")
            suffix = f"/{stage}" if stage in ("RequestReceived", "ResponseStarted") else ""
            assert event["event.id"] == record["auditID"] + suffix, path.name
            assert event["kubernetes.audit.auditID"] == record["auditID"]
            events += 1
    assert events + dead == records and dead == 1  # the README: one file is malformed


@pytest.mark.corpus
def test_panther_kubernetes_audit_logs(corpus: Path) -> None:
    path = corpus / "panther-analysis" / "extracted-tests" / "kubernetes_audit.ndjson"
    if not path.exists():
        pytest.skip(f"{path} is absent")
    parsed = others = 0
    for line in path.read_bytes().splitlines():
        test = orjson.loads(line)
        log = test["log"]
        if not k8s_audit.matches(log):
            # Rules for GKE also carry plain GCP entries (Deployment Manager, no payload).
            payload = log.get("protoPayload") or {}
            assert test["log_type"] == "GCP.AuditLog", test["test_name"]
            assert payload.get("serviceName") != "k8s.io", test["test_name"]
            others += 1
            continue
        batch = run(log)
        assert batch.dead_letters == [] and batch.warnings == [], test["test_name"]
        assert batch.events, test["test_name"]
        for event in batch.events:
            assert event["event.dataset"] == "kubernetes.audit"
            assert not any(key.startswith(("kubernetes.audit.p_", "gcp.audit.p_")) for key in event)
        if isinstance(log.get("auditID"), str) and log.get("stage") == "ResponseComplete":
            assert batch.events[0]["event.id"] == log["auditID"]
        parsed += 1
    assert parsed + others == 278 and others <= 10
