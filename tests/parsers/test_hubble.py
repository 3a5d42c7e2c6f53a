"""hubble: shape recognition, the local-endpoint rule, verdicts, dead-lettering and the corpus."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from keelwatch.model.fields import RecordLimits
from keelwatch.parsers import hubble
from keelwatch.parsers.base import Parser
from keelwatch.parsers.registry import recognise
from keelwatch.pipeline.decode import decode_body

from .helpers import RECEIVED_AT, parse_records, paths, reasons, replaced

PARSER = Parser(hubble.NAME, hubble.DATASET, hubble.DESCRIPTION, hubble.matches, hubble.parse)
run = partial(parse_records, PARSER)

CRASHED = f"parser {hubble.NAME} failed"
WRONG_VALUES: tuple[Any, ...] = (None, True, -1, 2.5, "", "x", [], [None, {"a": 1}], {}, {"k": [1]})


def endpoint(pod: str, namespace: str = "payments") -> dict[str, Any]:
    return {
        "identity": 4100,
        "namespace": namespace,
        "labels": [f"k8s:app={pod}", f"k8s:io.kubernetes.pod.namespace={namespace}"],
        "pod_name": f"{pod}-0",
    }


def flow(**overrides: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "time": "2025-09-14T10:00:00.000000500Z",
        "uuid": "2e6f1c9a-77b3-4d21-a0e4-5c8b9d1f3a62",
        "verdict": "FORWARDED",
        "IP": {"source": "10.1.0.4", "destination": "10.1.0.9", "ipVersion": "IPv4"},
        "l4": {"TCP": {"source_port": 51000, "destination_port": 5432, "flags": {"SYN": True}}},
        "source": endpoint("api"),
        "destination": endpoint("postgres"),
        "Type": "L3_L4",
        "node_name": "kind-worker",
        "traffic_direction": "EGRESS",
        "is_reply": False,
        "Summary": "TCP Flags: SYN",
    }
    record.update(overrides)
    return record


def envelope(**overrides: Any) -> dict[str, Any]:
    body = flow(**overrides)
    return {"flow": body, "node_name": body["node_name"], "time": body["time"]}


NEIGHBOURS: dict[str, Any] = {
    "tetragon event": {"process_exec": {"process": {}}, "node_name": "n", "time": "t"},
    "falco alert": {"rule": "r", "priority": "Notice", "output": "o", "output_fields": {}},
    "k8s audit event": {"kind": "Event", "apiVersion": "audit.k8s.io/v1", "verb": "list"},
    "cloudtrail record": {"eventVersion": "1.08", "eventName": "AuthorizeSecurityGroupIngress"},
    "gcp vpc flow log entry": {
        "insertId": "1x",
        "logName": "projects/p/logs/compute.googleapis.com%2Fvpc_flows",
        "jsonPayload": {"connection": {"src_ip": "10.0.0.1", "dest_ip": "10.0.0.2"}},
    },
    "aws vpc flow text": "2 123456789010 eni-0a1b 10.0.0.1 10.0.0.2 443 49152 6 10 840 ACCEPT OK",
    "docker line": {"log": "verdict FORWARDED\n", "stream": "stdout", "time": "t"},
    "lost events message": {"lost_events": {"num_events_lost": "3"}, "node_name": "n", "time": "t"},
    "flow that is not an object": {"flow": "FORWARDED", "node_name": "n"},
}


def test_matches_envelopes_and_bare_flows() -> None:
    assert hubble.matches(envelope())
    assert hubble.matches(flow())
    assert hubble.matches({"verdict": "DROPPED", "Type": "L3_L4"})


@pytest.mark.parametrize("name", list(NEIGHBOURS))
def test_matches_nothing_else(name: str) -> None:
    assert not hubble.matches(NEIGHBOURS[name])


def test_auto_routes_flows_to_hubble() -> None:
    assert (parser := recognise(envelope())) is not None and parser.name == "hubble"
    assert (parser := recognise(flow())) is not None and parser.name == "hubble"


@pytest.mark.parametrize(
    ("direction", "reply", "pod"),
    [
        ("EGRESS", False, "api-0"),  # the sender's policy saw it
        ("EGRESS", True, "api-0"),  # the reply travels back to the sender
        ("INGRESS", False, "postgres-0"),
        ("INGRESS", True, "postgres-0"),
        (None, None, "api-0"),  # no direction: the source, being a pod
    ],
)
def test_kubernetes_fields_describe_the_local_endpoint(
    direction: str | None, reply: bool | None, pod: str
) -> None:
    swap = reply is True  # a reply packet runs from the far side back
    source, destination = endpoint("api"), endpoint("postgres")
    if swap:
        source, destination = destination, source
    record = flow(
        source=source, destination=destination, traffic_direction=direction, is_reply=reply
    )
    (event,) = run(record).events
    assert event["kubernetes.pod.name"] == pod
    assert event["kubernetes.labels.app"] == pod.removesuffix("-0")
    assert "kubernetes.labels.io.kubernetes.pod.namespace" not in event


def test_without_direction_a_pod_destination_is_used_when_the_source_is_not_a_pod() -> None:
    record = flow(source={"identity": 2, "labels": ["reserved:world"]}, traffic_direction=None)
    (event,) = run(record).events
    assert event["kubernetes.pod.name"] == "postgres-0"


@pytest.mark.parametrize(
    ("verdict", "outcome", "types"),
    [
        ("FORWARDED", "success", ["connection", "allowed"]),
        ("REDIRECTED", "success", ["connection", "allowed"]),
        ("DROPPED", "failure", ["connection", "denied"]),
        ("DENIED", "failure", ["connection", "denied"]),
        ("ERROR", "failure", ["connection"]),
        ("AUDIT", "unknown", ["connection"]),
    ],
)
def test_verdicts(verdict: str, outcome: str, types: list[str]) -> None:
    (event,) = run(envelope(verdict=verdict)).events
    assert event["event.action"] == verdict.lower()
    assert event["event.outcome"] == outcome
    assert event["event.type"] == types


def test_ids_time_nodes_and_native_names() -> None:
    (event,) = run(envelope(node_name="eu-1/kind-worker")).events
    assert event["event.id"] == "2e6f1c9a-77b3-4d21-a0e4-5c8b9d1f3a62"
    assert event["@timestamp"] == datetime(2025, 9, 14, 10, 0, 0, 0, tzinfo=UTC)
    assert (event["host.name"], event["orchestrator.cluster.name"]) == ("kind-worker", "eu-1")
    assert event["hubble.flow.l4.TCP.destination_port"] == 5432
    assert event["hubble.flow.verdict"] == "FORWARDED"
    assert event["hubble.node_name"] == "eu-1/kind-worker"  # native: as Hubble printed it
    (bare,) = run(flow(uuid=None)).events
    assert bare["hubble.node_name"] == "kind-worker" and len(bare["event.id"]) == 32


def test_dns_and_http_facts() -> None:
    dns, http = run(
        envelope(
            Type="L7",
            l4={"UDP": {"source_port": 5353, "destination_port": 53}},
            l7={
                "type": "RESPONSE",
                "dns": {"query": "db.internal.", "rcode": 3, "qtypes": ["AAAA"]},
            },
        ),
        envelope(
            Type="L7",
            l7={
                "type": "REQUEST",
                "http": {
                    "method": "DELETE",
                    "url": "http://api/v1/x",
                    "protocol": "HTTP/2",
                    "headers": [{"key": "user-agent", "value": "kubectl/v1.31"}],
                },
            },
        ),
    ).events
    assert dns["dns.question.name"] == "db.internal" and dns["dns.response_code"] == "NXDOMAIN"
    assert (dns["network.transport"], dns["network.protocol"]) == ("udp", "dns")
    assert dns["event.type"] == ["protocol", "allowed"]
    assert (http["http.request.method"], http["http.version"]) == ("DELETE", "2")
    assert http["user_agent.original"] == "kubectl/v1.31"


def test_bad_records_are_dead_lettered_and_good_ones_kept() -> None:
    batch = run(
        envelope(),
        {"flow": ["x"], "node_name": "n"},
        {"lost_events": {"num_events_lost": "9"}, "node_name": "n", "time": "t"},
        {"hello": "world"},
        "FORWARDED",
        envelope(uuid="second"),
    )
    assert [e["event.id"] for e in batch.events] == [flow()["uuid"], "second"]
    assert reasons(batch) == [
        "flow is an array, not an object",
        "Hubble lost_events message, not a flow",
        "not a Hubble flow (no flow object, no verdict)",
        "a Hubble flow is a JSON object, not a string",
    ]


def test_nesting_and_field_count_over_the_limits() -> None:
    deep: Any = {"leaf": 1}
    for _ in range(60):
        deep = {"n": deep}
    labels = [f"k8s:l{i}=v" for i in range(300)]
    batch = run(
        envelope(extensions=deep),
        envelope(source=dict(endpoint("api"), labels=labels)),
        envelope(),
        limits=RecordLimits(max_depth=48, max_fields=200),
    )
    assert len(batch.events) == 1
    assert [r.split(" ")[0] for r in reasons(batch)] == ["nesting", "more"]


@pytest.mark.parametrize(
    "record",
    [
        envelope(),
        envelope(
            l7={
                "type": "RESPONSE",
                "latency_ns": 10,
                "dns": {"query": "a.", "ips": ["10.0.0.1"], "qtypes": ["A"], "rcode": 0},
                "http": {"code": 200, "headers": [{"key": "User-Agent", "value": "x"}]},
            },
            destination_names=["db.example"],
        ),
    ],
    ids=["l4", "l7"],
)
def test_a_wrong_type_anywhere_never_crashes_the_parser(record: dict[str, Any]) -> None:
    for path in paths(record):
        for value in WRONG_VALUES:
            batch = run(replaced(record, path, value))
            assert not [r for r in reasons(batch) if r.startswith(CRASHED)], (path, value)
            assert len(batch.events) + len(batch.dead_letters) == 1


def test_bad_time_is_a_warning() -> None:
    batch = run(envelope(time="not a time"))
    assert batch.events[0]["@timestamp"] == RECEIVED_AT
    assert len(batch.warnings) == 1


def test_every_corpus_flow_parses(corpus: Path) -> None:
    files = sorted((corpus / "network-flows" / "hubble-otel").glob("*.json"))
    assert files
    total = 0
    for path in files:
        decoded = decode_body(path.read_bytes())
        batch = run(*decoded.records)
        assert len(batch.events) == len(decoded.records), path
        assert batch.dead_letters == [] and batch.warnings == [], path
        total += len(batch.events)
    assert total == 1916
