"""k8s-event: shape recognition, dead-lettering, ids and timestamps (golden files cover mapping)."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from keelwatch.model.severity import INFO, MEDIUM
from keelwatch.parsers import k8s_audit, k8s_event
from keelwatch.parsers.base import Parser
from keelwatch.pipeline.decode import decode_body

from .helpers import json_values, parse_records, reasons

PARSER = Parser(
    k8s_event.NAME, k8s_event.DATASET, k8s_event.DESCRIPTION, k8s_event.matches, k8s_event.parse
)
run = partial(parse_records, PARSER)
GOLDEN = Path(__file__).parent / "golden"


def core_event(**overrides: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "kind": "Event",
        "apiVersion": "v1",
        "metadata": {
            "name": "api-0.18a1",
            "namespace": "shop",
            "uid": "0d1e2f3a-4b5c-4d6e-8f70-8192a3b4c5d6",
            "resourceVersion": "9001",
            "creationTimestamp": "2025-06-01T12:00:00Z",
        },
        "involvedObject": {"kind": "Pod", "namespace": "shop", "name": "api-0", "apiVersion": "v1"},
        "reason": "Unhealthy",
        "message": "Readiness probe failed: HTTP probe failed with statuscode: 503",
        "source": {"component": "kubelet", "host": "node-a"},
        "firstTimestamp": "2025-06-01T12:00:00Z",
        "lastTimestamp": "2025-06-01T12:05:00Z",
        "count": 6,
        "type": "Warning",
    }
    event.update(overrides)
    return event


AUDIT_EVENT = {
    "kind": "Event",
    "apiVersion": "audit.k8s.io/v1",
    "auditID": "a1",
    "stage": "ResponseComplete",
    "verb": "list",
    "requestURI": "/api/v1/events",
}


@pytest.mark.parametrize(
    "record",
    [
        pytest.param(core_event(), id="core/v1"),
        pytest.param(
            {
                "kind": "Event",
                "apiVersion": "events.k8s.io/v1",
                "regarding": {"kind": "Node", "name": "n"},
                "note": "rebooted",
                "reason": "Rebooted",
                "type": "Warning",
            },
            id="events.k8s.io/v1",
        ),
        pytest.param({"kind": "EventList", "apiVersion": "v1", "items": []}, id="eventlist"),
        pytest.param({"kind": "List", "apiVersion": "v1", "items": [core_event()]}, id="list"),
        pytest.param({"type": "ADDED", "object": core_event()}, id="watch added"),
        pytest.param({"type": "DELETED", "object": core_event()}, id="watch deleted"),
        pytest.param(
            {"type": "BOOKMARK", "object": {"kind": "Event", "apiVersion": "v1", "metadata": {}}},
            id="watch bookmark",
        ),
        pytest.param(
            {k: v for k, v in core_event().items() if k not in ("kind", "apiVersion")},
            id="fluent-bit bare object",
        ),
    ],
)
def test_matches_every_shape(record: Any) -> None:
    assert k8s_event.matches(record)
    assert not k8s_audit.matches(record)


@pytest.mark.parametrize(
    "record",
    [
        pytest.param(AUDIT_EVENT, id="audit event"),
        pytest.param(
            {"kind": "EventList", "apiVersion": "audit.k8s.io/v1", "items": [AUDIT_EVENT]},
            id="audit list",
        ),
        pytest.param({"kind": "Event", "auditID": "a", "verb": "get"}, id="trimmed audit event"),
        pytest.param(
            {
                "rule": "Terminal shell in container",
                "priority": "Notice",
                "output": "x",
                "output_fields": {},
            },
            id="falco alert",
        ),
        pytest.param(
            {"eventVersion": "1.08", "eventSource": "eks.amazonaws.com", "eventName": "X"},
            id="cloudtrail",
        ),
        pytest.param({"kind": "Pod", "apiVersion": "v1", "metadata": {}}, id="pod"),
        pytest.param(
            {"type": "ADDED", "object": {"kind": "Pod", "apiVersion": "v1"}}, id="pod watch"
        ),
        pytest.param(
            {"type": "ERROR", "object": {"kind": "Status", "message": "too old"}}, id="watch error"
        ),
        pytest.param(
            {"kind": "List", "apiVersion": "v1", "items": [{"kind": "Pod"}]}, id="pod list"
        ),
        pytest.param({"type": ["ADDED"], "object": core_event()}, id="unhashable watch type"),
        pytest.param({"reason": "x", "message": "y"}, id="app log"),
        pytest.param("plain text", id="text"),
        pytest.param([core_event()], id="list value"),
        pytest.param(None, id="null"),
    ],
)
def test_matches_no_neighbour(record: Any) -> None:
    assert not k8s_event.matches(record)


def test_every_golden_input_is_recognised() -> None:
    for path in sorted((GOLDEN / "k8s-event").glob("*.input.*")):
        for record in decode_body(path.read_bytes()).records:
            assert k8s_event.matches(record), path.name
            assert not k8s_audit.matches(record), path.name


# --- rejects -----------------------------------------------------------------------------------


@pytest.mark.parametrize("record", [42, None, [core_event()], "text"])
def test_rejects_what_is_not_an_object(record: Any) -> None:
    batch = run(record)
    assert batch.events == [] and len(batch.dead_letters) == 1
    assert "must be a JSON object" in reasons(batch)[0]


def test_list_bad_items_are_dead_lettered_alone() -> None:
    items = [core_event(), 3, AUDIT_EVENT, {"kind": "Pod", "metadata": {}}, {"metadata": {}}]
    batch = run({"kind": "EventList", "apiVersion": "v1", "items": items})
    assert len(batch.events) == 1
    assert reasons(batch) == [
        "Event is a int, not an object",
        "apiVersion 'audit.k8s.io/v1' is not v1 or events.k8s.io (audit Events go to k8s-audit)",
        "kind is 'Pod', not Event",
        "no Event fields (involvedObject, regarding, reason, message, note)",
    ]


def test_list_without_items_is_refused() -> None:
    assert reasons(run({"kind": "List", "items": "none"})) == ["List has no items list"]


def test_watch_error_and_bookmark() -> None:
    error = {"type": "ERROR", "object": {"kind": "Status", "message": "too old resource version"}}
    assert reasons(run(error)) == ["watch ERROR: too old resource version"]
    bookmark = {
        "type": "BOOKMARK",
        "object": {"kind": "Event", "metadata": {"resourceVersion": "5"}},
    }
    batch = run(bookmark)
    assert batch.events == [] and batch.dead_letters == []
    assert reasons(run({"type": "SYNC", "object": core_event()})) == [
        "watch type 'SYNC' is not ADDED, MODIFIED or DELETED"
    ]


def test_deep_nesting_is_dead_lettered() -> None:
    deep: dict[str, Any] = {"x": 1}
    for _ in range(60):
        deep = {"d": deep}
    batch = run({"kind": "List", "items": [core_event(related=deep), core_event()]})
    assert len(batch.events) == 1
    assert reasons(batch)[0].startswith(
        "nesting deeper than 48 levels at kubernetes.event.related."
    )


# --- mapping rules -----------------------------------------------------------------------------


def test_event_id_names_one_version_of_one_event() -> None:
    first = run(core_event()).events[0]
    later = run(
        core_event(metadata={**core_event()["metadata"], "resourceVersion": "9050"})
    ).events[0]
    assert first["event.id"] == "0d1e2f3a-4b5c-4d6e-8f70-8192a3b4c5d6/9001"
    assert later["event.id"] == "0d1e2f3a-4b5c-4d6e-8f70-8192a3b4c5d6/9050"
    unversioned = run(core_event(metadata={"name": "x"})).events[0]
    assert len(unversioned["event.id"]) == 32  # content hash


@pytest.mark.parametrize(
    ("present", "expected"),
    [
        (
            {"lastTimestamp": "2025-06-01T12:05:00Z", "eventTime": "2025-06-01T12:04:00.5Z"},
            "2025-06-01T12:05:00",
        ),
        (
            {
                "lastTimestamp": None,
                "series": {"lastObservedTime": "2025-06-01T12:09:00.000001Z"},
                "eventTime": "2025-06-01T12:04:00Z",
            },
            "2025-06-01T12:09:00.000001",
        ),
        (
            {"lastTimestamp": None, "eventTime": "2025-06-01T12:04:00.250000Z"},
            "2025-06-01T12:04:00.250000",
        ),
        (
            {"lastTimestamp": "garbage", "firstTimestamp": "2025-06-01T11:00:00Z"},
            "2025-06-01T11:00:00",
        ),
        ({"lastTimestamp": None, "firstTimestamp": None}, "2025-06-01T12:00:00"),
    ],
)
def test_timestamp_precedence(present: dict[str, Any], expected: str) -> None:
    record = {k: v for k, v in core_event().items() if k not in ("lastTimestamp", "firstTimestamp")}
    (event,) = run({**record, **present}).events
    assert event["@timestamp"] == datetime.fromisoformat(expected).replace(tzinfo=UTC)


def test_severity_and_node() -> None:
    (warning,) = run(core_event()).events
    assert warning["event.severity"] == MEDIUM and warning["kubernetes.node.name"] == "node-a"
    (normal,) = run(core_event(type="Normal", source={})).events
    assert normal["event.severity"] == INFO and "kubernetes.node.name" not in normal
    (odd,) = run(core_event(type=["Warning"])).events
    assert "event.severity" not in odd


def test_managed_fields_are_dropped() -> None:
    metadata = {**core_event()["metadata"], "managedFields": [{"manager": "kubelet"}]}
    (event,) = run(core_event(metadata=metadata)).events
    assert not any("managedFields" in key for key in event)


@pytest.mark.parametrize(
    ("kind", "resource"),
    [
        ("Pod", "pods"),
        ("Endpoints", "endpoints"),
        ("Ingress", "ingresses"),
        ("NetworkPolicy", "networkpolicies"),
        ("Gateway", "gateways"),
        ("StorageClass", "storageclasses"),
        ("HorizontalPodAutoscaler", "horizontalpodautoscalers"),
    ],
)
def test_resource_type_from_kind(kind: str, resource: str) -> None:
    assert k8s_event.resource_type(kind) == resource


@pytest.mark.parametrize(
    ("field_path", "container"),
    [
        ("spec.containers{web}", "web"),
        ("spec.initContainers{migrate}", "migrate"),
        ("spec.containers{}", None),
        ("spec.volumes{x}", None),
        (None, None),
    ],
)
def test_container_from_field_path(field_path: str | None, container: str | None) -> None:
    involved = {**core_event()["involvedObject"], "fieldPath": field_path}
    (event,) = run(core_event(involvedObject=involved)).events
    assert event.get("container.name") == container


# --- hostile input never crashes the parser ----------------------------------------------------

_JSON = json_values(text_size=12, key_size=8, max_leaves=12, allow_infinity=False)
_EVENT = st.fixed_dictionaries(
    {"involvedObject": _JSON},
    optional={
        key: _JSON
        for key in (
            *core_event(),
            "regarding",
            "note",
            "series",
            "eventTime",
            "deprecatedSource",
            "reportingController",
            "reportingInstance",
        )
        if key != "involvedObject"
    },
)
_RECORDS = st.one_of(
    _EVENT,
    st.builds(
        lambda items: {"kind": "EventList", "items": items}, st.lists(_JSON | _EVENT, max_size=3)
    ),
    st.builds(
        lambda kind, obj: {"type": kind, "object": obj},
        _JSON | st.sampled_from(["ADDED", "ERROR"]),
        _JSON | _EVENT,
    ),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_RECORDS)
def test_hostile_values_never_crash(record: dict[str, Any]) -> None:
    original = copy.deepcopy(record)
    batch = run(record)
    assert not any(reason.startswith("parser k8s-event failed") for reason in reasons(batch))
    assert record == original


# --- the shared corpus -------------------------------------------------------------------------


@pytest.mark.corpus
def test_fluent_bit_event_inputs(corpus: Path) -> None:
    inputs = sorted((corpus / "container-logs" / "fluent-bit-k8s-events").glob("*.json"))
    if not inputs:
        pytest.skip("no fluent-bit Event inputs in the corpus")
    for path in inputs:
        records = decode_body(path.read_bytes()).records
        assert all(k8s_event.matches(record) for record in records), path.name
        for record in records:
            batch = run(record)
            assert batch.dead_letters == [] and batch.warnings == [], path.name
            assert len(batch.events) == 1, path.name
            uid = batch.events[0]["kubernetes.event.metadata.uid"]
            assert batch.events[0]["event.id"].startswith(f"{uid}/")
