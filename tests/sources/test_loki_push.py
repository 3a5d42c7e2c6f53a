"""Loki push: python-logging-loki (JSON, basic auth) and hand-encoded snappy protobuf requests.

The protobuf requests are written here field by field from Loki's push.proto (not with the
adapter's own message classes), then compressed with the snappy block format as Promtail does.
"""

from __future__ import annotations

import gzip
import logging
import uuid
from collections.abc import Iterator

import cramjam
import httpx
import logging_loki
import orjson
import pytest

from ..fixtures import audit_event
from ..overload import GatedStore, InProcessServer, gated_server, overload_round
from ..server_process import RunningServer, make_server

__all__ = ["gated_server"]  # the fixture

PATH = "/loki/api/v1/push"
PROTOBUF = "application/x-protobuf"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    running = make_server(tmp_path_factory.mktemp("loki"), "--max-body-mb", "1")
    running.start()
    yield running
    running.stop()


def post(server: RunningServer, body: bytes, content_type: str, **headers: str) -> httpx.Response:
    return httpx.post(
        server.url + PATH,
        content=body,
        headers={**server.headers("ingest"), "Content-Type": content_type, **headers},
        timeout=30,
    )


# -- a protobuf writer for the few push.proto messages ---------------------------------------


def varint(number: int) -> bytes:
    out = bytearray()
    while number >= 0x80:
        out.append((number & 0x7F) | 0x80)
        number >>= 7
    out.append(number)
    return bytes(out)


def field(number: int, payload: bytes) -> bytes:
    return varint(number << 3 | 2) + varint(len(payload)) + payload


def entry(nanoseconds: int, line: str, metadata: dict[str, str] | None = None) -> bytes:
    seconds, nanos = divmod(nanoseconds, 1_000_000_000)
    timestamp = varint(1 << 3) + varint(seconds) + varint(2 << 3) + varint(nanos)
    pairs = b"".join(
        field(3, field(1, name.encode()) + field(2, value.encode()))
        for name, value in (metadata or {}).items()
    )
    return field(1, timestamp) + field(2, line.encode()) + pairs


def push_request(*streams: tuple[str, list[bytes]]) -> bytes:
    """A snappy-compressed PushRequest of (labels string, encoded entries) streams."""
    message = b"".join(
        field(1, field(1, labels.encode()) + b"".join(field(2, e) for e in entries))
        for labels, entries in streams
    )
    return bytes(cramjam.snappy.compress_raw(message))


def falco_line(rule: str) -> str:
    alert = {
        "rule": rule,
        "priority": "Critical",
        "time": "2026-03-01T10:00:00.000000000Z",
        "output": f"{rule} (user=root)",
        "output_fields": {"user.name": "root"},
    }
    return orjson.dumps(alert).decode()


# -- tests --------------------------------------------------------------------------------------


def test_python_logging_loki_client(server: RunningServer) -> None:
    case = uuid.uuid4().hex
    handler = logging_loki.LokiHandler(
        url=server.url + PATH,
        tags={"namespace": "shop", "pod": "api-1", "container": "app", "case": case},
        auth=("promtail", server.tokens["ingest"]),
        version="1",
    )
    logger = logging.getLogger(f"keelwatch.test.loki.{case}")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    audit = audit_event("get", "secrets", name=f"token-{case}")
    try:
        logger.info("order %s placed", case)
        logger.warning("stock low for %s", case)
        logger.info(orjson.dumps(audit).decode())
        logger.info("plain words", extra={"tags": {"keelwatch_source": "k8s-audit"}})
    finally:
        logger.removeHandler(handler)
        handler.emitter.session.close()
        handler.close()

    stored = server.events(f'loki.labels.case:"{case}"')
    assert sorted(e["message"] for e in stored) == [f"order {case} placed", f"stock low for {case}"]
    warning = next(e for e in stored if e["message"].startswith("stock"))
    assert warning["event.dataset"] == "loki.logs"
    assert warning["kubernetes.namespace"] == "shop"
    assert warning["kubernetes.pod.name"] == "api-1"
    assert warning["container.name"] == "app"
    assert warning["log.level"] == "warning" and warning["event.severity"] == 2
    assert warning["loki.labels.logger"] == f"keelwatch.test.loki.{case}"
    found = server.events(f'kubernetes.audit.objectRef.name:"token-{case}"')
    assert [e["event.id"] for e in found] == [audit["auditID"]]
    # The line the keelwatch_source label sent to k8s-audit is not an audit event: kept aside.
    letters = server.sql(f"SELECT reason FROM dead_letters WHERE decode(raw) LIKE '%{case}%'")
    assert len(letters) == 1 and letters[0][0].startswith("k8s-audit: ")


def test_snappy_protobuf_with_metadata_tenant_and_hints(server: RunningServer) -> None:
    case = uuid.uuid4().hex
    t0 = 1_772_359_200_123_456_789
    body = push_request(
        (
            f'{{namespace="shop", pod="api-1", container="app", stream="stderr", case="{case}"}}',
            [
                entry(t0, f"GET /cart 500 {case}", {"trace_id": "5b8efff798038103"}),
                entry(t0 + 1, '{"level":"error","msg":"db down"}'),
            ],
        ),
        (f'{{job="kube-system/falco", case="{case}"}}', [entry(t0, f"falco: {falco_line(case)}")]),
        (f'{{case="{case}", quote="say \\"hi\\""}}', [entry(t0, falco_line(f"{case}-json"))]),
    )
    answer = post(server, body, PROTOBUF, **{"X-Scope-OrgID": "team-a"})
    assert answer.status_code == 204, answer.text

    stored = server.events(f'loki.labels.case:"{case}"')
    assert sorted(e["message"] for e in stored) == [
        f"GET /cart 500 {case}",
        '{"level":"error","msg":"db down"}',
    ]
    by_message = {e["message"]: e for e in stored}
    first = by_message[f"GET /cart 500 {case}"]
    assert first["loki.tenant"] == "team-a"
    assert first["loki.structured_metadata.trace_id"] == "5b8efff798038103"
    assert first["trace.id"] == "5b8efff798038103"
    assert first["log.iostream"] == "stderr"
    assert first["@timestamp"].startswith("2026-03-01T10:00:00.123456")
    structured = by_message['{"level":"error","msg":"db down"}']
    assert structured["loki.json.msg"] == "db down" and structured["log.level"] == "error"
    # The job label names falco for a text line; a JSON alert line is recognised by its shape.
    alerts = server.events(f'falco.rule:"{case}" OR falco.rule:"{case}-json"')
    assert sorted(e["falco.rule"] for e in alerts) == [case, f"{case}-json"]


def test_json_gzip_keeps_good_entries_next_to_bad_ones(server: RunningServer) -> None:
    case = uuid.uuid4().hex
    push = {
        "streams": [
            {
                "stream": {"namespace": "shop", "case": case},
                "values": [
                    ["1772359200000000000", f"fine {case}"],
                    ["1772359200000000001", f"with metadata {case}", {"user": "alice"}],
                    ["yesterday", f"bad time {case}"],
                    ["1772359200000000002", 42],
                    "not an entry",
                ],
            },
            {"stream": {"case": case, "number": 7}, "values": [["1", f"bad label {case}"]]},
        ]
    }
    body = gzip.compress(orjson.dumps(push))
    answer = post(server, body, "application/json", **{"Content-Encoding": "gzip"})
    assert answer.status_code == 204, answer.text
    stored = server.events(f'loki.labels.case:"{case}"')
    assert sorted(e["message"] for e in stored) == [f"fine {case}", f"with metadata {case}"]
    letters = server.sql(f"SELECT reason FROM dead_letters WHERE decode(raw) LIKE '%{case}%'")
    assert len(letters) == 4  # each bad entry is kept with its stream's labels
    assert sum("bad entry" in reason for (reason,) in letters) == 3


def test_refusals(server: RunningServer) -> None:
    body = push_request(("{}", [entry(1, "x")]))
    assert httpx.post(server.url + PATH, content=body).status_code == 401
    assert post(server, body, PROTOBUF, **server.headers("analyst")).status_code == 401
    assert post(server, b"hello", "text/plain").status_code == 415
    assert post(server, b"{not json", "application/json").status_code == 400
    assert post(server, b'{"streams": 3}', "application/json").status_code == 400
    assert post(server, b"\x05not snappy", PROTOBUF).status_code == 400
    assert post(server, b"x" * (1024 * 1024 + 1), PROTOBUF).status_code == 413
    # A snappy header declaring 1 GiB is refused before anything is decompressed.
    assert post(server, varint(1 << 30) + b"\x00" * 16, PROTOBUF).status_code == 413
    many = push_request(("{}", [b""] * 200_001))
    answer = post(server, many, PROTOBUF)
    assert answer.status_code == 413 and "smaller batches" in answer.text
    metrics = httpx.get(server.url + "/metrics", headers=server.headers("analyst")).text
    assert 'keelwatch_requests_rejected_total{protocol="loki",reason="too_large"} 3' in metrics
    assert 'keelwatch_requests_rejected_total{protocol="loki",reason="unauthorized"} 2' in metrics


def test_overload_answers_503_with_retry_after(gated_server: InProcessServer[GatedStore]) -> None:
    body = push_request(('{namespace="shop"}', [entry(1_772_359_200_000_000_000, "x")]))
    answers = overload_round(gated_server, PATH, body, {"Content-Type": PROTOBUF})
    assert answers.refused.status_code == 503 and answers.refused.headers["Retry-After"] == "1"
    assert answers.held.status_code == 204 and answers.retried.status_code == 204
    assert gated_server.store.sql("SELECT count(*) FROM events").rows == [(2,)]
