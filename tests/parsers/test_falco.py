"""falco: shape recognition, dead letters, hostile values, the corpus (goldens cover mapping)."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import orjson
import pytest

from keelwatch.model.fields import RecordLimits
from keelwatch.parsers import falco
from keelwatch.parsers.base import Parser
from keelwatch.parsers.registry import recognise
from keelwatch.pipeline.decode import decode_body

from .helpers import RECEIVED_AT, parse_records, paths, reasons, replaced

PARSER = Parser(falco.NAME, falco.DATASET, falco.DESCRIPTION, falco.matches, falco.parse)
run = partial(parse_records, PARSER)

CRASHED = f"parser {falco.NAME} failed"
WRONG_VALUES: tuple[Any, ...] = (None, True, -1, 2.5, "", "x", [], [None, {"a": 1}], {}, {"k": [1]})


def alert(**overrides: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "uuid": "5d0e7c1a-3b2f-4a9e-8c6d-1f0a2b3c4d5e",
        "time": "2025-09-14T08:30:00.123456789Z",
        "rule": "Contact K8S API Server From Container",
        "priority": "Notice",
        "source": "syscall",
        "hostname": "node-3",
        "tags": ["T1565", "container", "k8s", "mitre_discovery", "network"],
        "output": "08:30:00.123456789: Notice Unexpected connection to K8s API Server",
        "output_fields": {
            "container.id": "0a1b2c3d4e5f",
            "container.image.repository": "docker.io/bitnami/kubectl",
            "container.image.tag": "1.31",
            "container.name": "toolbox",
            "evt.type": "connect",
            "fd.cip": "10.244.3.7",
            "fd.cport": 40112,
            "fd.l4proto": "tcp",
            "fd.name": "10.244.3.7:40112->10.96.0.1:443",
            "fd.sip": "10.96.0.1",
            "fd.sport": 443,
            "fd.type": "ipv4",
            "k8s.ns.name": "tools",
            "k8s.pod.name": "toolbox-0",
            "k8s.pod.labels": {"app": "toolbox"},
            "proc.cmdline": "kubectl get secrets -A",
            "proc.exepath": "/opt/bitnami/kubectl/bin/kubectl",
            "proc.name": "kubectl",
            "proc.pid": 811,
            "user.name": "1001",
            "user.uid": 1001,
        },
    }
    record.update(overrides)
    return record


def syslog(record: dict[str, Any], header: str = "Sep 14 08:30:00 node-3 falco[901]: ") -> str:
    return header + orjson.dumps(record).decode()


# Records of the neighbouring sources, none of which Falco may claim.
NEIGHBOURS: dict[str, Any] = {
    "k8s audit event": {
        "kind": "Event",
        "apiVersion": "audit.k8s.io/v1",
        "auditID": "7c3e1a2b-0000-4000-8000-000000000001",
        "stage": "ResponseComplete",
        "verb": "create",
        "user": {"username": "system:serviceaccount:tools:toolbox"},
        "objectRef": {"resource": "pods", "subresource": "exec", "namespace": "tools"},
    },
    "cloudtrail record": {
        "eventVersion": "1.08",
        "eventSource": "iam.amazonaws.com",
        "eventName": "CreateAccessKey",
        "eventID": "2d4c6e8f-0000-4000-8000-000000000002",
        "userIdentity": {"type": "IAMUser", "userName": "ci"},
    },
    "tetragon event": {
        "process_exec": {"process": {"binary": "/usr/bin/id", "pid": 7}},
        "node_name": "node-3",
        "time": "2025-09-14T08:30:00Z",
    },
    "hubble flow": {
        "flow": {"verdict": "FORWARDED", "IP": {"source": "10.0.0.1", "destination": "10.0.0.2"}},
        "node_name": "node-3",
        "time": "2025-09-14T08:30:00Z",
    },
    "docker json-file line": {"log": "hello\n", "stream": "stdout", "time": "2025-09-14T08:30:00Z"},
    "CRI line": "2025-09-14T08:30:00.000000001Z stdout F hello",
    "plain syslog line": "Sep 14 08:30:00 node-3 kubelet[77]: rule priority output are words here",
    "syslog line with other JSON": 'Sep 14 08:30:00 node-3 app: {"rule": 1, "level": "info"}',
    "number": 42,
    "list": [1, 2],
    "null": None,
}


def test_matches_alerts_webhooks_and_wrapped_lines() -> None:
    assert falco.matches(alert())
    assert falco.matches({k: v for k, v in alert().items() if k != "output"})
    assert falco.matches(syslog(alert()))
    assert falco.matches(syslog(alert(), "<132>1 2025-09-14T08:30:00Z node-3 falco 901 - - "))
    # Falco running as a pod writes alerts to stdout: a CRI line carrying one is a Falco alert.
    assert falco.matches(syslog(alert(), "2025-09-14T08:30:00.1Z stdout F "))


@pytest.mark.parametrize("name", list(NEIGHBOURS))
def test_matches_nothing_else(name: str) -> None:
    assert not falco.matches(NEIGHBOURS[name])


def test_auto_routes_alerts_to_falco() -> None:
    assert (parser := recognise(alert())) is not None and parser.name == "falco"
    assert (parser := recognise(syslog(alert()))) is not None and parser.name == "falco"


def test_collector_records_carrying_an_alert_line() -> None:
    tailed = {"date": 1757838600.1, "log": syslog(alert())}
    stdout = {
        "log": orjson.dumps(alert()).decode() + "\n",
        "stream": "stdout",
        "kubernetes": {"pod_name": "falco-5k2jd", "namespace_name": "falco"},
    }
    vector = {"message": orjson.dumps(alert()).decode(), "stream": "stdout"}
    for record in (tailed, stdout, vector):
        assert falco.matches(record)
        assert (parser := recognise(record)) is not None and parser.name == "falco"
    batch = run(tailed, stdout, vector, {"log": "Falco initialized", "stream": "stdout"})
    assert [e["event.id"] for e in batch.events] == [alert()["uuid"]] * 3
    assert batch.events[0]["event.original"] == orjson.dumps(tailed).decode()
    assert reasons(batch) == ["the log line holds no Falco JSON alert"]


def test_json_part_must_start_within_the_prefix_bound() -> None:
    far = syslog(alert(), "x" * 600 + " falco: ")
    assert not falco.matches(far)
    assert reasons(run(far)) == ["text line holds no Falco JSON alert"]


def test_bad_records_are_dead_lettered_and_good_ones_kept() -> None:
    batch = run(
        alert(),
        ["not", "an", "alert"],
        7,
        alert(rule=17),
        alert(rule=""),
        alert(output_fields=["proc.name", "bash"]),
        "Sep 14 08:30:00 node-3 falco[901]: Falco initialized",
        alert(uuid="second-good-one"),
    )
    assert [event["event.id"] for event in batch.events] == [alert()["uuid"], "second-good-one"]
    assert reasons(batch) == [
        "a Falco alert is a JSON object, not an array",
        "a Falco alert is a JSON object, not a number",
        "Falco alert has no rule name (rule must be a non-empty string)",
        "Falco alert has no rule name (rule must be a non-empty string)",
        "output_fields is an array, not an object",
        "text line holds no Falco JSON alert",
    ]
    assert batch.warnings == []


def test_nesting_and_field_count_over_the_limits() -> None:
    deep: dict[str, Any] = {"leaf": 1}
    for _ in range(60):
        deep = {"n": deep}
    many = {f"f{i}": i for i in range(200)}
    batch = run(
        alert(output_fields={"proc.name": "sh", "weird": deep}),
        alert(output_fields=many),
        alert(),
        limits=RecordLimits(max_depth=48, max_fields=100),
    )
    assert len(batch.events) == 1
    assert [r.split(" ")[0] for r in reasons(batch)] == ["nesting", "more"]


def test_a_wrong_type_anywhere_never_crashes_the_parser() -> None:
    record = alert()
    for path in paths(record):
        for value in WRONG_VALUES:
            batch = run(replaced(record, path, value))
            assert not [r for r in reasons(batch) if r.startswith(CRASHED)], (path, value)
            assert len(batch.events) + len(batch.dead_letters) == 1


def test_wrongly_typed_values_stay_native_but_are_not_mapped() -> None:
    fields = dict(alert()["output_fields"], **{"proc.pid": "811", "fd.sport": 70000})
    (event,) = run(alert(output_fields=fields)).events
    assert "process.pid" not in event and "destination.port" not in event
    assert event["falco.output_fields.proc.pid"] == "811"
    assert event["falco.output_fields.fd.sport"] == 70000


def test_unknown_priority_and_bad_time_are_warnings_not_losses() -> None:
    batch = run(alert(priority="Loud", time="yesterday"))
    (event,) = batch.events
    assert "event.severity" not in event
    assert event["@timestamp"] == RECEIVED_AT
    assert event["falco.priority"] == "Loud"
    assert len(batch.warnings) == 2


def test_ids_timestamps_and_native_names() -> None:
    (event,) = run(alert()).events
    assert event["event.id"] == "5d0e7c1a-3b2f-4a9e-8c6d-1f0a2b3c4d5e"
    assert event["@timestamp"] == datetime(2025, 9, 14, 8, 30, 0, 123456, tzinfo=UTC)
    assert event["falco.output_fields.proc.cmdline"] == "kubectl get secrets -A"
    assert event["falco.output_fields.k8s.ns.name"] == "tools"
    assert event["kubernetes.labels.app"] == "toolbox"
    assert event["container.image.name"] == "docker.io/bitnami/kubectl:1.31"
    assert event["event.category"] == ["intrusion_detection", "network"]
    assert (event["source.port"], event["destination.ip"]) == (40112, "10.96.0.1")

    without = {k: v for k, v in alert().items() if k != "uuid"}
    reordered = dict(reversed(list(without.items())))
    first, second = run(without, reordered).events
    assert len(first["event.id"]) == 32 and first["event.id"] == second["event.id"]


def test_host_processes_have_no_container_and_nulls_are_skipped() -> None:
    fields = {"container.id": "host", "container.name": "host", "proc.name": None, "fd.name": "/x"}
    (event,) = run(alert(output_fields=fields)).events
    assert not [key for key in event if key.startswith("container.")]
    assert "falco.output_fields.proc.name" not in event
    assert event["file.path"] == "/x"


def corpus_files(corpus: Path) -> list[Path]:
    return sorted(path for path in (corpus / "falco").glob("alerts-*/*") if path.is_file())


def test_every_corpus_record_parses_or_is_dead_lettered(corpus: Path) -> None:
    files = corpus_files(corpus)
    assert files
    for path in files:
        decoded = decode_body(path.read_bytes())
        batch = run(*decoded.records)
        assert len(batch.events) + len(batch.dead_letters) == len(decoded.records), path
        assert all(reason and not reason.startswith(CRASHED) for reason in reasons(batch)), path
        assert batch.warnings == [], path
        assert batch.events, path
