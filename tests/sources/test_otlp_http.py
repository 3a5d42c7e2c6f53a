"""OTLP/HTTP logs: the OpenTelemetry Python SDK exporter, and hand-made requests, to a real server.

The SDK's OTLPLogExporter sends binary protobuf to ``/v1/logs``; the JSON mapping, gzip, partial
success and the refusals are driven with httpx so each can be checked byte for byte.
"""

from __future__ import annotations

import base64
import gzip
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest
from opentelemetry._logs import SeverityNumber
from opentelemetry.context import Context
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord, ResourceLogs, ScopeLogs
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags, set_span_in_context

from ..fixtures import audit_event
from ..overload import GatedStore, InProcessServer, gated_server, overload_round
from ..server_process import RunningServer, make_server

__all__ = ["gated_server"]  # the fixture

PROTOBUF = "application/x-protobuf"
TRACE_ID = 0x5B8EFFF798038103D269B633813FC60C
SPAN_ID = 0xEEE19B7EC3C1B174
POD = {
    "k8s.pod.name": "checkout-7d9f",
    "k8s.namespace.name": "shop",
    "k8s.container.name": "app",
    "k8s.node.name": "node-1",
    "k8s.cluster.name": "prod-eu",
}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    running = make_server(tmp_path_factory.mktemp("otlp"), "--max-body-mb", "1")
    running.start()
    yield running
    running.stop()


def post(server: RunningServer, body: bytes, content_type: str, **headers: str) -> httpx.Response:
    return httpx.post(
        server.url + "/v1/logs",
        content=body,
        headers={**server.headers("ingest"), "Content-Type": content_type, **headers},
        timeout=30,
    )


def falco_alert(rule: str) -> dict[str, Any]:
    return {
        "rule": rule,
        "priority": "Warning",
        "time": "2026-03-01T10:00:00.000000000Z",
        "output": f"{rule} (user=root container=app)",
        "output_fields": {"user.name": "root", "k8s.ns.name": "shop"},
    }


def test_sdk_exporter_records_are_stored_exactly(server: RunningServer) -> None:
    case = uuid.uuid4().hex
    audit = audit_event("delete", "secrets", name=f"db-{case}")
    provider = LoggerProvider(resource=Resource.create({**POD, "service.name": case}))
    exporter = OTLPLogExporter(
        endpoint=server.url + "/v1/logs",
        headers=server.headers("ingest"),
        compression=Compression.Gzip,
        timeout=30,
    )
    provider.add_log_record_processor(BatchLogRecordProcessor(exporter))
    logger = provider.get_logger("checkout.http", "1.2.0")
    traced = set_span_in_context(
        NonRecordingSpan(SpanContext(TRACE_ID, SPAN_ID, False, TraceFlags(1))), Context()
    )
    lines = [f"{case} request {n} served" for n in range(5)]
    for n, line in enumerate(lines):
        logger.emit(
            timestamp=1_772_359_200_000_000_000 + n,
            severity_number=SeverityNumber.WARN if n == 4 else SeverityNumber.INFO,
            severity_text="WARN" if n == 4 else "INFO",
            body=line,
            attributes={"http.route": "/cart", "attempt": n, "log.iostream": "stdout"},
            context=traced,
        )
    logger.emit(body=orjson.dumps(audit).decode(), severity_number=SeverityNumber.INFO)
    logger.emit(body=falco_alert(f"Shell in container {case}"))  # a kvlist body
    provider.shutdown()  # flushes the batch processor

    stored = server.events(f'service.name:"{case}"')
    assert sorted(e["message"] for e in stored) == lines
    by_message = {e["message"]: e for e in stored}
    first = by_message[lines[0]]
    assert first["event.dataset"] == "otel.logs"
    assert first["kubernetes.pod.name"] == "checkout-7d9f"
    assert first["kubernetes.namespace"] == "shop"
    assert first["container.name"] == "app"
    assert first["kubernetes.node.name"] == "node-1"
    assert first["orchestrator.cluster.name"] == "prod-eu"
    assert first["trace.id"] == f"{TRACE_ID:032x}"
    assert first["span.id"] == f"{SPAN_ID:016x}"
    assert first["log.level"] == "INFO"
    assert first["log.iostream"] == "stdout"
    assert first["otel.attributes.http.route"] == "/cart"
    assert first["otel.scope.name"] == "checkout.http"
    assert first["@timestamp"].startswith("2026-03-01T10:00:00")
    assert by_message[lines[4]]["event.severity"] == 2
    # Bodies of a known shape reached their own parsers.
    audits = server.events(f'kubernetes.audit.objectRef.name:"db-{case}"')
    assert [e["event.id"] for e in audits] == [audit["auditID"]]
    alerts = server.events(f'falco.rule:"Shell in container {case}"')
    assert len(alerts) == 1 and alerts[0]["event.dataset"] == "falco.alerts"


def otlp_json(records: list[dict[str, Any]], resource: dict[str, str]) -> dict[str, Any]:
    return {
        "resourceLogs": [
            {
                "resource": {
                    "attributes": [
                        {"key": k, "value": {"stringValue": v}} for k, v in resource.items()
                    ]
                },
                "scopeLogs": [{"scope": {"name": "raw-test"}, "logRecords": records}],
            }
        ]
    }


def test_json_encoding_gzip(server: RunningServer) -> None:
    case = uuid.uuid4().hex
    record = {
        "timeUnixNano": "1772359200123456789",
        "observedTimeUnixNano": "1772359201000000000",
        "severityNumber": 17,
        "severityText": "ERROR",
        "body": {"stringValue": f"payment failed {case}"},
        "attributes": [
            {"key": "retries", "value": {"intValue": "3"}},
            {"key": "ratio", "value": {"doubleValue": 0.5}},
            {"key": "tags", "value": {"arrayValue": {"values": [{"stringValue": "a"}]}}},
        ],
        "traceId": "5b8efff798038103d269b633813fc60c",
        "spanId": "eee19b7ec3c1b174",
        "flags": 1,
    }
    body = gzip.compress(orjson.dumps(otlp_json([record], {**POD, "service.name": case})))
    answer = post(server, body, "application/json", **{"Content-Encoding": "gzip"})
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "application/json"
    assert answer.json() == {}
    [stored] = server.events(f'service.name:"{case}"')
    assert stored["message"] == f"payment failed {case}"
    assert stored["otel.attributes.retries"] == 3
    assert stored["otel.attributes.ratio"] == 0.5
    assert stored["otel.attributes.tags"] == ["a"]
    assert stored["trace.id"] == "5b8efff798038103d269b633813fc60c"
    assert stored["event.severity"] == 3 and stored["log.level"] == "ERROR"
    assert stored["@timestamp"].startswith("2026-03-01T10:00:00.123456")
    assert stored["kubernetes.pod.name"] == "checkout-7d9f"


def test_partial_success_counts_dead_lettered_records(server: RunningServer) -> None:
    case = uuid.uuid4().hex
    good = {"body": {"stringValue": f"fine {case}"}, "timeUnixNano": "1772359200000000000"}
    bad_id = {"body": {"stringValue": f"bad id {case}"}, "traceId": "not-hex"}
    wrong_hint = {
        "body": {"stringValue": f"plain text {case}"},
        "attributes": [{"key": "keelwatch.source", "value": {"stringValue": "k8s-audit"}}],
    }
    unknown_hint = {
        "body": {"stringValue": f"plain text {case}"},
        "attributes": [{"key": "keelwatch.source", "value": {"stringValue": "nginx"}}],
    }
    request = otlp_json([good, bad_id, wrong_hint, unknown_hint], {"service.name": case})
    answer = post(server, orjson.dumps(request), "application/json")
    assert answer.status_code == 200
    partial = answer.json()["partialSuccess"]
    assert partial["rejectedLogRecords"] == "3"
    assert "traceId 'not-hex' is not hex" in partial["errorMessage"]
    assert "names no parser" in partial["errorMessage"]
    assert [e["message"] for e in server.events(f'service.name:"{case}"')] == [f"fine {case}"]
    letters = server.sql(f"SELECT reason FROM dead_letters WHERE decode(raw) LIKE '%{case}%'")
    assert len(letters) == 3

    # The same answer in protobuf for a protobuf request.
    proto = ExportLogsServiceRequest(
        resource_logs=[
            ResourceLogs(
                scope_logs=[
                    ScopeLogs(
                        log_records=[
                            LogRecord(
                                body=AnyValue(string_value=f"text {case}"),
                                attributes=[
                                    KeyValue(
                                        key="keelwatch.source",
                                        value=AnyValue(string_value="falco"),
                                    )
                                ],
                            )
                        ]
                    )
                ]
            )
        ]
    )
    answer = post(server, proto.SerializeToString(), PROTOBUF)
    assert answer.status_code == 200 and answer.headers["content-type"] == PROTOBUF
    response = ExportLogsServiceResponse.FromString(answer.content)
    assert response.partial_success.rejected_log_records == 1
    assert "Falco" in response.partial_success.error_message


def test_auth_bearer_and_basic(server: RunningServer) -> None:
    body = ExportLogsServiceRequest().SerializeToString()
    missing = httpx.post(
        server.url + "/v1/logs", content=body, headers={"Content-Type": PROTOBUF}, timeout=30
    )
    assert missing.status_code == 401
    assert missing.headers["content-type"] == PROTOBUF
    assert b"Bearer" in missing.content  # a google.rpc.Status with the message
    wrong = post(server, body, PROTOBUF, Authorization="Bearer kw_wrong")
    assert wrong.status_code == 401
    analyst = post(server, body, "application/json", **server.headers("analyst"))
    assert analyst.status_code == 401
    assert analyst.json()["code"] == 16
    basic = base64.b64encode(f"otel:{server.tokens['ingest']}".encode()).decode()
    ok = post(server, body, PROTOBUF, Authorization=f"Basic {basic}")
    assert ok.status_code == 200 and ok.content == b""


def test_refusals(server: RunningServer) -> None:
    assert post(server, b"hello", "text/plain").status_code == 415
    garbage = post(server, b"\xff\xff\xff\xff", PROTOBUF)
    assert garbage.status_code == 400
    assert post(server, b"[1, 2]", "application/json").status_code == 400
    too_big = post(server, b"\x00" * (1024 * 1024 + 1), PROTOBUF)
    assert too_big.status_code == 413
    bomb = gzip.compress(b"\x00" * (64 * 1024 * 1024 + 1))
    assert post(server, bomb, PROTOBUF, **{"Content-Encoding": "gzip"}).status_code == 413
    # 300,000 empty log records fit in 600 KB: refused before any of them is built.
    many = ExportLogsServiceRequest(
        resource_logs=[ResourceLogs(scope_logs=[ScopeLogs(log_records=[LogRecord()] * 300_000)])]
    ).SerializeToString()
    assert len(many) < 1024 * 1024
    answer = post(server, many, PROTOBUF)
    assert answer.status_code == 413 and b"smaller batches" in answer.content
    metrics = httpx.get(server.url + "/metrics", headers=server.headers("analyst")).text
    assert 'keelwatch_requests_rejected_total{protocol="otlp",reason="too_large"} 3' in metrics


def test_overload_answers_503_with_retry_after(gated_server: InProcessServer[GatedStore]) -> None:
    request = ExportLogsServiceRequest(
        resource_logs=[
            ResourceLogs(
                scope_logs=[ScopeLogs(log_records=[LogRecord(body=AnyValue(string_value="x"))])]
            )
        ]
    ).SerializeToString()
    answers = overload_round(gated_server, "/v1/logs", request, {"Content-Type": PROTOBUF})
    assert answers.refused.status_code == 503
    assert answers.refused.headers["Retry-After"] == "1"
    assert answers.refused.headers["content-type"] == PROTOBUF
    assert answers.held.status_code == 200 and answers.retried.status_code == 200
    assert gated_server.store.sql("SELECT count(*) FROM events").rows == [(2,)]
