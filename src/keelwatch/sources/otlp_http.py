"""OTLP/HTTP logs: ``POST /v1/logs`` from the OpenTelemetry Collector and the SDK exporters.

Both encodings of ExportLogsServiceRequest are taken, binary protobuf
(``application/x-protobuf``) and the OTLP JSON mapping (``application/json``: lowerCamelCase
keys, hex trace and span ids, 64-bit integers as strings), plain or gzip. The answer uses the
request's encoding: 200 with an ExportLogsServiceResponse whose ``partial_success`` counts the log
records that were dead-lettered; failures carry a google.rpc.Status. Per the OTLP specification
only 429, 502, 503 and 504 make a client retry, so overload is 503 with Retry-After and every
other refusal (400, 401, 413, 415) is final.

Each LogRecord becomes one record for the ``otel-log`` parser (see ``parsers/otel_log.py``),
which also hands bodies of a known shape (an audit event, a Falco alert) to their own parser.
"""

from __future__ import annotations

import base64
import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from google.protobuf import json_format  # type: ignore[import-untyped]
from google.protobuf.message import DecodeError  # type: ignore[import-untyped]
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsPartialSuccess,
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, InstrumentationScope, KeyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from keelwatch.errors import PayloadTooLarge, RequestError
from keelwatch.ingest.writer import Overloaded
from keelwatch.parsers.registry import AUTO
from keelwatch.pipeline.decode import decompress
from keelwatch.sources.base import Intake, credential, source_for
from keelwatch.sources.protowire import count_nested

PROTOCOL = "otlp"
PATH = "/v1/logs"
PROTOBUF = "application/x-protobuf"
JSON = "application/json"
_MEDIA_TYPES = {PROTOBUF: PROTOBUF, "application/protobuf": PROTOBUF, JSON: JSON}
SOURCE_ATTRIBUTE = "keelwatch.source"  # a resource or log attribute naming the parser
# Collectors batch a few thousand records; far more in one request is abuse of memory.
MAX_RECORDS_PER_REQUEST = 200_000
MAX_ERROR_MESSAGE_CHARS = 1_000
# ExportLogsServiceRequest.resource_logs(1) → ResourceLogs.scope_logs(2) → log_records(2)
_LOG_RECORD_PATH = (1, 2, 2)
# google.rpc.Code for the HTTP answers we give (OTLP/HTTP puts a Status in failure bodies).
_GRPC_CODES = {400: 3, 401: 16, 413: 8, 415: 3, 503: 14}
_IDS = (("traceId", "trace_id"), ("spanId", "span_id"))


@dataclass(slots=True)
class Decoded:
    records: list[dict[str, Any]] = field(default_factory=list)
    dead_letters: list[tuple[bytes, str]] = field(default_factory=list)


def routes(intake: Intake) -> list[BaseRoute]:
    return [Route(PATH, OtlpLogs(intake).export, methods=["POST"])]


class OtlpLogs:
    def __init__(self, intake: Intake) -> None:
        self.intake = intake

    async def export(self, request: Request) -> Response:
        media = _MEDIA_TYPES.get(_media_type(request))
        as_json = media == JSON or media is None  # failures for unknown types are JSON
        if not self.intake.authorized(credential(request.headers.get("authorization", ""))):
            return self._refuse(
                401,
                "send Authorization: Bearer <ingest token> (or Basic with the token as password)",
                as_json,
                "unauthorized",
                {"WWW-Authenticate": "Bearer"},
            )
        if media is None:
            return self._refuse(
                415, f"send {PROTOBUF} or {JSON}", as_json, "unsupported_media_type"
            )
        max_decompressed_bytes = self.intake.limits.max_decompressed_bytes
        try:
            body = await self.intake.read_body(request)
            decoded = await self.intake.service.run_cpu(
                decode_request,
                body,
                request.headers.get("content-encoding", ""),
                as_json,
                max_decompressed_bytes,
            )
        except RequestError as error:
            reason = "too_large" if isinstance(error, PayloadTooLarge) else "bad_request"
            return self._refuse(error.status, str(error), as_json, reason)
        try:
            result = await self.intake.submit(
                decoded.records,
                AUTO,
                PROTOCOL,
                dead_letters=decoded.dead_letters,
                item_outcomes=True,
            )
        except Overloaded as error:
            return self._refuse(
                503,
                f"{error}; retry later",
                as_json,
                "overloaded",
                {"Retry-After": str(error.retry_after_seconds)},
            )
        reasons = [reason for _, reason in decoded.dead_letters]
        reasons += [outcome for outcome in result.outcomes if outcome is not None]
        return _answer(_response(reasons), as_json)

    def _refuse(
        self,
        status: int,
        message: str,
        as_json: bool,
        reason: str,
        headers: dict[str, str] | None = None,
    ) -> Response:
        self.intake.reject(PROTOCOL, reason)
        code = _GRPC_CODES.get(status, 2)
        if as_json:
            body = orjson.dumps({"code": code, "message": message})
        else:
            body = _status_proto(code, message)
        return Response(body, status, headers, JSON if as_json else PROTOBUF)


def decode_request(
    body: bytes, content_encoding: str, as_json: bool, max_decompressed_bytes: int
) -> Decoded:
    """Records (and dead letters) of one export request; ``RequestError`` for a bad request."""
    plain = decompress(body, content_encoding, max_decompressed_bytes)
    if as_json:
        return _from_json(plain)
    count_nested(plain, _LOG_RECORD_PATH, MAX_RECORDS_PER_REQUEST)
    request = ExportLogsServiceRequest()
    try:
        request.ParseFromString(plain)
    except DecodeError as error:
        raise RequestError(f"body is not a protobuf ExportLogsServiceRequest: {error}") from None
    decoded = Decoded()
    for resource_logs in request.resource_logs:
        resource = attributes(resource_logs.resource.attributes)
        for scope_logs in resource_logs.scope_logs:
            scope = _scope(scope_logs.scope)
            for log_record in scope_logs.log_records:
                decoded.records.append(to_record(resource, scope, log_record))
    return decoded


def _from_json(plain: bytes) -> Decoded:
    try:
        envelope = orjson.loads(plain)
    except orjson.JSONDecodeError as error:
        raise RequestError(f"body is not JSON: {error}") from None
    if not isinstance(envelope, dict):
        raise RequestError("an OTLP JSON body is an object with resourceLogs")
    blocks = _items(envelope, "resourceLogs", "resource_logs")
    nested = [(block, _items(block, "scopeLogs", "scope_logs")) for block in blocks]
    total = sum(len(_items(s, "logRecords", "log_records")) for _, scopes in nested for s in scopes)
    if total > MAX_RECORDS_PER_REQUEST:
        raise PayloadTooLarge(
            f"more than {MAX_RECORDS_PER_REQUEST} records in one request; send smaller batches"
        )
    decoded = Decoded()
    for block, scopes in nested:
        resource = attributes(_parse_part(block.get("resource"), Resource(), "resource").attributes)
        for scope_block in scopes:
            scope = _scope(_parse_part(scope_block.get("scope"), InstrumentationScope(), "scope"))
            for item in _items(scope_block, "logRecords", "log_records"):
                try:
                    log_record = _json_log_record(item)
                except ValueError as error:
                    decoded.dead_letters.append(
                        (orjson.dumps(item), f"bad OTLP log record: {error}")
                    )
                    continue
                decoded.records.append(to_record(resource, scope, log_record))
    return decoded


def _items(container: Any, camel: str, snake: str) -> list[dict[str, Any]]:
    """A repeated message field of the JSON mapping (either field-name form)."""
    if not isinstance(container, dict):
        raise RequestError(f"expected an object holding {camel}")
    value = container.get(camel, container.get(snake, []))
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        raise RequestError(f"{camel} must be an array of objects")
    return value


def _parse_part(value: Any, message: Any, name: str) -> Any:
    try:
        return json_format.ParseDict(value or {}, message, ignore_unknown_fields=True)
    except (json_format.ParseError, ValueError, TypeError, RecursionError) as error:
        raise RequestError(f"bad {name}: {error}") from None


def _json_log_record(item: dict[str, Any]) -> LogRecord:
    """One LogRecord of the JSON mapping, whose ids are hex (protobuf's JSON expects base64)."""
    fixed = dict(item)
    for camel, snake in _IDS:
        for key in (camel, snake):
            value = fixed.get(key)
            if isinstance(value, str) and value:
                try:
                    fixed[key] = base64.b64encode(bytes.fromhex(value)).decode()
                except ValueError:
                    raise ValueError(f"{camel} {value[:40]!r} is not hex") from None
    log_record = LogRecord()
    try:
        json_format.ParseDict(fixed, log_record, ignore_unknown_fields=True)
    except (json_format.ParseError, TypeError, RecursionError) as error:
        raise ValueError(str(error)) from None
    return log_record


def to_record(resource: dict[str, Any], scope: dict[str, Any], log: LogRecord) -> dict[str, Any]:
    """The otel-log parser's record for one LogRecord (OTLP field names, plain maps, hex ids)."""
    record: dict[str, Any] = {
        "resource": resource,
        "time_unix_nano": log.time_unix_nano,
        "observed_time_unix_nano": log.observed_time_unix_nano,
    }
    if scope:
        record["scope"] = scope
    if log.severity_number:
        record["severity_number"] = int(log.severity_number)
    if log.severity_text:
        record["severity_text"] = log.severity_text
    if log.HasField("body"):
        record["body"] = any_value(log.body)
    log_attributes = attributes(log.attributes)
    if log_attributes:
        record["attributes"] = log_attributes
    if log.trace_id:
        record["trace_id"] = log.trace_id.hex()
    if log.span_id:
        record["span_id"] = log.span_id.hex()
    if log.flags:
        record["flags"] = log.flags
    if log.event_name:
        record["event_name"] = log.event_name
    if log.dropped_attributes_count:
        record["dropped_attributes_count"] = log.dropped_attributes_count
    hint = log_attributes.get(SOURCE_ATTRIBUTE, resource.get(SOURCE_ATTRIBUTE))
    if isinstance(hint, str) and hint.strip():
        parser = source_for(hint)
        # An unknown name stays in the hint so the record is dead-lettered saying so.
        record["hint"] = {"parser": hint.strip() if parser == AUTO else parser, "strict": True}
    return record


def attributes(pairs: Iterable[KeyValue]) -> dict[str, Any]:
    return {pair.key: any_value(pair.value) for pair in pairs if pair.key}


def any_value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind == "string_value":
        return value.string_value
    if kind == "bool_value":
        return value.bool_value
    if kind == "int_value":
        return value.int_value
    if kind == "double_value":
        number = value.double_value
        return number if math.isfinite(number) else str(number)  # JSON has no NaN
    if kind == "array_value":
        return [any_value(item) for item in value.array_value.values]
    if kind == "kvlist_value":
        return attributes(value.kvlist_value.values)
    if kind == "bytes_value":
        return base64.b64encode(value.bytes_value).decode()
    return None


def _scope(scope: InstrumentationScope) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if scope.name:
        out["name"] = scope.name
    if scope.version:
        out["version"] = scope.version
    if scope.attributes:
        out["attributes"] = attributes(scope.attributes)
    return out


def _response(reasons: Sequence[str]) -> ExportLogsServiceResponse:
    response = ExportLogsServiceResponse()
    if reasons:
        counts = Counter(reasons).most_common(5)
        summary = "; ".join(f"{reason} (x{count})" for reason, count in counts)
        message = f"{len(reasons)} log records dead-lettered: {summary}"
        response.partial_success.CopyFrom(
            ExportLogsPartialSuccess(
                rejected_log_records=len(reasons),
                error_message=message[:MAX_ERROR_MESSAGE_CHARS],
            )
        )
    return response


def _answer(response: ExportLogsServiceResponse, as_json: bool) -> Response:
    if as_json:
        return Response(orjson.dumps(json_format.MessageToDict(response)), 200, media_type=JSON)
    return Response(response.SerializeToString(), 200, media_type=PROTOBUF)


def _status_proto(code: int, message: str) -> bytes:
    """google.rpc.Status{code, message} in the protobuf wire format (two fields, no details)."""
    text = message.encode()
    return b"\x08" + _varint(code) + b"\x12" + _varint(len(text)) + text


def _varint(number: int) -> bytes:
    out = bytearray()
    while number >= 0x80:
        out.append((number & 0x7F) | 0x80)
        number >>= 7
    out.append(number)
    return bytes(out)


def _media_type(request: Request) -> str:
    return request.headers.get("content-type", "").partition(";")[0].strip().lower()
