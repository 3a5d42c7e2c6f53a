"""container: docker, CRI, Fluent Bit and Vector shapes, dead letters, JSON lines, the corpus."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import orjson
import pytest

from keelwatch.model.fields import RecordLimits
from keelwatch.parsers import container
from keelwatch.parsers.base import Parser
from keelwatch.parsers.registry import recognise
from keelwatch.pipeline.decode import decode_body

from .helpers import RECEIVED_AT, parse_records, paths, reasons, replaced

PARSER = Parser(
    container.NAME, container.DATASET, container.DESCRIPTION, container.matches, container.parse
)
run = partial(parse_records, PARSER)
CRASHED = f"parser {container.NAME} failed"
WRONG_VALUES: tuple[Any, ...] = (None, True, -1, 2.5, "", "x", [], [None, {"a": 1}], {}, {"k": [1]})
CRI_LINE = "2025-09-14T11:00:00.123456789Z stdout F user login ok"


def docker(log: Any = "user login ok\n", **extra: Any) -> dict[str, Any]:
    return {"log": log, "stream": "stderr", "time": "2025-09-14T11:00:00.123456789Z", **extra}


def fluent_bit(**extra: Any) -> dict[str, Any]:
    kubernetes = {
        "pod_name": "auth-6d5c4b3a2-9zx8w",
        "namespace_name": "identity",
        "pod_id": "0f1e2d3c-4b5a-4697-8877-665544332211",
        "labels": {"app": "auth"},
        "annotations": {"owner": "iam-team"},
        "host": "node-4",
        "container_name": "auth",
        "docker_id": "c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00",
        "container_image": "ghcr.io/example/auth:3.2.1",
    }
    return {"log": "user login ok\n", "stream": "stdout", "kubernetes": kubernetes, **extra}


def vector(**extra: Any) -> dict[str, Any]:
    return {
        "message": "user login ok",
        "stream": "stdout",
        "timestamp": "2025-09-14T11:00:00.123456789Z",
        "source_type": "kubernetes_logs",
        "kubernetes": {
            "pod_name": "auth-6d5c4b3a2-9zx8w",
            "pod_namespace": "identity",
            "pod_uid": "0f1e2d3c-4b5a-4697-8877-665544332211",
            "pod_node_name": "node-4",
            "pod_labels": {"app": "auth"},
            "container_name": "auth",
            "container_id": "containerd://c0ffee00c0ffee00c0ffee00c0ffee00",
            "container_image": "ghcr.io/example/auth:3.2.1",
        },
        **extra,
    }


NEIGHBOURS: dict[str, Any] = {
    "k8s audit event": {
        "kind": "Event",
        "apiVersion": "audit.k8s.io/v1",
        "verb": "get",
        "user": {"username": "kubelet"},
    },
    "k8s core event": {
        "kind": "Event",
        "apiVersion": "v1",
        "involvedObject": {"kind": "Pod", "name": "auth-0"},
        "reason": "BackOff",
        "message": "Back-off restarting failed container",
        "type": "Warning",
    },
    "cloudtrail record": {"eventVersion": "1.08", "eventName": "GetObject", "eventTime": "t"},
    "falco alert": {"rule": "r", "priority": "Notice", "output": "o", "time": "t"},
    "tetragon event": {"process_exec": {"process": {}}, "node_name": "n", "time": "t"},
    "hubble flow": {"flow": {"verdict": "FORWARDED"}, "node_name": "n", "time": "t"},
    "syslog line": "Sep 14 11:00:00 node-4 sshd[802]: Accepted publickey for ops",
    "plain text": "user login ok",
    "cri-like line with another stream": "2025-09-14T11:00:00Z stdin F hello",
    "cri-like line with another tag": "2025-09-14T11:00:00Z stdout X hello",
    "cri-like line without a time": "yesterday-at-noon stdout F hello",
    "stream without a line": {"stream": "stdout", "time": "t"},
    "kubernetes without a pod": {"log": "x", "kubernetes": {"namespace_name": "ns"}},
    "number": 1.5,
    "list that is not a pair": [1, 2],
}


def test_matches_every_container_log_shape() -> None:
    assert container.matches(docker())
    assert container.matches(CRI_LINE)
    assert container.matches(CRI_LINE.replace(" F ", " P "))
    assert container.matches("2025-09-14T11:00:00Z stdout F")  # an empty line, trimmed
    assert container.matches(fluent_bit())
    assert container.matches(vector())
    assert container.matches([1757847600.5, fluent_bit()])
    assert container.matches([[1757847600.5, {}], fluent_bit()])
    merged_away = {k: v for k, v in fluent_bit(text="merged").items() if k != "log"}
    assert container.matches(merged_away)


@pytest.mark.parametrize("name", list(NEIGHBOURS))
def test_matches_nothing_else(name: str) -> None:
    assert not container.matches(NEIGHBOURS[name])


@pytest.mark.parametrize(
    "name", ["k8s audit event", "k8s core event", "falco alert", "hubble flow"]
)
def test_auto_leaves_other_sources_to_their_parsers(name: str) -> None:
    parser = recognise(NEIGHBOURS[name])
    assert parser is None or parser.name != "container"


def test_auto_routes_container_logs_here() -> None:
    for record in (docker(), CRI_LINE, fluent_bit(), vector()):
        assert (parser := recognise(record)) is not None and parser.name == "container", record


def test_cri_lines() -> None:
    full, partial, empty = run(
        CRI_LINE,
        "2025-09-14T11:00:01.5+02:00 stderr P first half of a long ",
        "2025-09-14T11:00:02Z stdout F",
    ).events
    assert full["message"] == "user login ok"
    assert full["@timestamp"] == datetime(2025, 9, 14, 11, 0, 0, 123456, tzinfo=UTC)
    assert (full["log.iostream"], full["container_log.logtag"]) == ("stdout", "F")
    assert "container_log.partial" not in full
    assert partial["container_log.partial"] is True
    assert partial["message"] == "first half of a long "  # kept as it is
    assert partial["@timestamp"] == datetime(2025, 9, 14, 9, 0, 1, 500000, tzinfo=UTC)
    assert empty["message"] == ""


def test_docker_lines_lose_exactly_one_trailing_newline() -> None:
    one, crlf, two, none = run(docker("a\n"), docker("b\r\n"), docker("c\n\n"), docker("d")).events
    assert [e["message"] for e in (one, crlf, two, none)] == ["a", "b", "c\n", "d"]
    assert one["log.iostream"] == "stderr" and "container_log.log" not in one


def test_fluent_bit_and_vector_map_to_the_same_fields() -> None:
    fb, vec = run(fluent_bit(logtag="P"), vector()).events
    shared = (
        "message",
        "log.iostream",
        "kubernetes.namespace",
        "kubernetes.pod.name",
        "kubernetes.pod.uid",
        "kubernetes.node.name",
        "kubernetes.labels.app",
        "container.name",
        "container.image.name",
        "host.name",
    )
    assert {f: fb[f] for f in shared} == {f: vec[f] for f in shared}
    assert fb["container.id"].startswith(vec["container.id"])
    assert fb["container_log.kubernetes.namespace_name"] == "identity"
    assert vec["container_log.kubernetes.pod_namespace"] == "identity"
    assert fb["kubernetes.annotations.owner"] == "iam-team"
    assert fb["container_log.partial"] is True


def test_fluent_bit_pairs_take_their_time() -> None:
    (event,) = run([1757847600.25, fluent_bit()]).events
    assert event["@timestamp"] == datetime(2025, 9, 14, 11, 0, 0, 250000, tzinfo=UTC)


def test_structured_lines_are_expanded_and_text_stays_text() -> None:
    line = orjson.dumps({"level": "error", "err": {"code": 7}, "tags": ["a"]}).decode()
    structured, broken, array = run(
        docker(line + "\n"), docker('{"a": 1]\n'), docker("[1, 2]\n")
    ).events
    assert structured["container_log.json.level"] == "error"
    assert structured["container_log.json.err.code"] == 7
    assert structured["container_log.json.tags"] == ["a"]
    assert structured["message"] == line
    assert not [k for k in broken if k.startswith("container_log.json")]
    assert not [k for k in array if k.startswith("container_log.json")]


def test_an_oversized_structured_line_is_kept_as_text_with_a_warning() -> None:
    deep: Any = 1
    for _ in range(60):
        deep = {"n": deep}
    batch = run(docker(orjson.dumps(deep).decode() + "\n"), limits=RecordLimits(max_depth=48))
    (event,) = batch.events
    assert event["message"].startswith('{"n":')
    assert not [k for k in event if k.startswith("container_log.json")]
    assert len(batch.warnings) == 1


def test_bad_records_are_dead_lettered_and_good_ones_kept() -> None:
    batch = run(
        docker(),
        docker(log=["not", "a", "line"]),
        {"stream": "stdout", "time": "2025-09-14T11:00:00Z"},
        "Sep 14 11:00:00 node-4 sshd[802]: Accepted publickey",
        42,
        [1, 2, 3],
        vector(),
    )
    assert [e["message"] for e in batch.events] == ["user login ok", "user login ok"]
    assert reasons(batch) == [
        "log is an array, not a string",
        "no log line in the record (log, message or MESSAGE)",
        "text line is not a CRI log line (<time> <stdout|stderr> <P|F> <message>)",
        "a container log is a JSON object or a CRI text line, not a number",
        "a container log is a JSON object or a CRI text line, not an array that is not a "
        "Fluent Bit [time, record] pair",
    ]


def test_nesting_and_field_count_over_the_limits() -> None:
    deep: Any = {"leaf": 1}
    for _ in range(60):
        deep = {"n": deep}
    batch = run(
        fluent_bit(extra=deep),
        fluent_bit(**{f"merged{i}": i for i in range(300)}),
        fluent_bit(),
        limits=RecordLimits(max_depth=48, max_fields=200),
    )
    assert len(batch.events) == 1
    assert [r.split(" ")[0] for r in reasons(batch)] == ["nesting", "more"]


@pytest.mark.parametrize(
    "record",
    [fluent_bit(logtag="P", time="t"), vector(), [1757847600.5, docker()]],
    ids=["fluent-bit", "vector", "pair"],
)
def test_a_wrong_type_anywhere_never_crashes_the_parser(record: Any) -> None:
    for path in paths(record):
        for value in WRONG_VALUES:
            batch = run(replaced(record, path, value))
            assert not [r for r in reasons(batch) if r.startswith(CRASHED)], (path, value)
            assert len(batch.events) + len(batch.dead_letters) == 1


def test_bad_time_is_a_warning() -> None:
    batch = run(docker(time="2025-13-45T99:00:00Z"), "2025-13-45T11:00:00Z stdout F x")
    assert [e["@timestamp"] for e in batch.events] == [RECEIVED_AT, RECEIVED_AT]
    assert len(batch.warnings) == 2


def test_every_corpus_record_parses_or_is_dead_lettered(corpus: Path) -> None:
    root = corpus / "container-logs" / "fluent-bit"
    files = sorted(path for path in [*root.glob("log/*/*"), *root.rglob("*.out")] if path.is_file())
    assert len(files) >= 40
    for path in files:
        decoded = decode_body(path.read_bytes())
        batch = run(*decoded.records)
        assert len(batch.events) + len(batch.dead_letters) == len(decoded.records), path
        assert batch.events and batch.warnings == [], path
        # The only refusals: the bare time of an `[time, record]` pair that decode split apart.
        assert all(r.endswith("not a number") for r in reasons(batch)), path
