"""Loki push: ``POST /loki/api/v1/push`` from Promtail, Grafana Alloy and Fluent Bit's loki output.

Two encodings, as Loki takes them: JSON (``{"streams": [{"stream": {labels}, "values":
[["<ns>", "<line>", {structured metadata}?]]}]}``, plain or gzip) and a snappy-compressed
(block format) protobuf ``logproto.PushRequest`` (``application/x-protobuf``). Loki publishes no
Python package for its proto, so the few message types are described at runtime.

Every entry becomes one record for the ``loki`` parser (see ``parsers/loki.py``) with its stream
labels, structured metadata and the ``X-Scope-OrgID`` tenant. A ``keelwatch_source`` label names
the parser for the lines (strictly); a ``job`` label that names a parser is used when the line has
that parser's shape. Answers: 204 once durable (entries that cannot be taken are dead-lettered
with their reason, not refused), 400 bad request, 401, 413, 415, and 503 with Retry-After under
overload (Loki clients retry 429 and 5xx, never other 4xx).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any, TypeGuard

import cramjam
import orjson
from google.protobuf import (  # type: ignore[import-untyped]
    descriptor_pb2,
    descriptor_pool,
    message_factory,
    timestamp_pb2,
)
from google.protobuf.message import DecodeError  # type: ignore[import-untyped]
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from keelwatch.errors import PayloadTooLarge, RequestError
from keelwatch.ingest.writer import Overloaded
from keelwatch.parsers.registry import AUTO
from keelwatch.pipeline.decode import decompress
from keelwatch.sources.base import Intake, credential, source_for
from keelwatch.sources.loki_labels import parse_labels
from keelwatch.sources.protowire import count_nested, read_varint

PROTOCOL = "loki"
PATH = "/loki/api/v1/push"
JSON = "application/json"
PROTOBUF = "application/x-protobuf"
MAX_ENTRIES_PER_REQUEST = 200_000
MAX_TIMESTAMP_DIGITS = 20
SOURCE_LABEL = "keelwatch_source"  # names the parser for the stream's lines
# PushRequest.streams(1) → StreamAdapter.entries(2)
_ENTRY_PATH = (1, 2)


@dataclass(slots=True)
class Decoded:
    records: list[dict[str, Any]] = field(default_factory=list)
    dead_letters: list[tuple[bytes, str]] = field(default_factory=list)


def routes(intake: Intake) -> list[BaseRoute]:
    return [Route(PATH, LokiPush(intake).push, methods=["POST"])]


class LokiPush:
    def __init__(self, intake: Intake) -> None:
        self.intake = intake

    async def push(self, request: Request) -> Response:
        if not self.intake.authorized(credential(request.headers.get("authorization", ""))):
            return self._refuse(
                401,
                "send basic auth with an ingest token as the password, or a bearer token",
                "unauthorized",
                {"WWW-Authenticate": 'Basic realm="keelwatch"'},
            )
        media = request.headers.get("content-type", "").partition(";")[0].strip().lower()
        if media not in (JSON, PROTOBUF, ""):  # Loki reads a missing type as protobuf
            return self._refuse(415, f"send {JSON} or snappy {PROTOBUF}", "unsupported_media_type")
        tenant = request.headers.get("x-scope-orgid", "").strip()
        try:
            body = await self.intake.read_body(request)
            decoded = await self.intake.service.run_cpu(
                decode_push,
                body,
                request.headers.get("content-encoding", ""),
                media == JSON,
                self.intake.limits.max_decompressed_bytes,
                tenant,
            )
        except RequestError as error:
            reason = "too_large" if isinstance(error, PayloadTooLarge) else "bad_request"
            return self._refuse(error.status, str(error), reason)
        try:
            await self.intake.submit(
                decoded.records, AUTO, PROTOCOL, dead_letters=decoded.dead_letters
            )
        except Overloaded as error:
            return self._refuse(
                503,
                f"{error}; retry later",
                "overloaded",
                {"Retry-After": str(error.retry_after_seconds)},
            )
        return Response(status_code=204)

    def _refuse(
        self, status: int, message: str, reason: str, headers: dict[str, str] | None = None
    ) -> Response:
        self.intake.reject(PROTOCOL, reason)
        return PlainTextResponse(message + "\n", status, headers)


def decode_push(
    body: bytes, content_encoding: str, as_json: bool, max_decompressed_bytes: int, tenant: str
) -> Decoded:
    """Records (and dead letters) of one push request; ``RequestError`` for a bad request."""
    plain = decompress(body, content_encoding, max_decompressed_bytes)
    decoded = Decoded()
    if as_json:
        _from_json(plain, tenant, decoded)
    else:
        _from_protobuf(unsnappy(plain, max_decompressed_bytes), tenant, decoded)
    return decoded


def unsnappy(data: bytes, max_bytes: int) -> bytes:
    """Snappy block format, refused before decompressing when its declared size is too large."""
    declared, _ = read_varint(data, 0)
    if declared > max_bytes:
        raise PayloadTooLarge(f"body is larger than {max_bytes} bytes once decompressed")
    try:
        return bytes(cramjam.snappy.decompress_raw(data))
    except cramjam.DecompressionError as error:
        raise RequestError(f"body is not snappy-compressed protobuf: {error}") from None


def _from_protobuf(data: bytes, tenant: str, decoded: Decoded) -> None:
    count_nested(data, _ENTRY_PATH, MAX_ENTRIES_PER_REQUEST)
    request = push_request_class()()
    try:
        request.ParseFromString(data)
    except DecodeError as error:
        raise RequestError(f"body is not a Loki PushRequest: {error}") from None
    for stream in request.streams:
        try:
            labels = parse_labels(stream.labels)
        except ValueError as error:
            for entry in stream.entries:
                raw = {"labels": stream.labels, "line": entry.line}
                decoded.dead_letters.append((orjson.dumps(raw), f"bad stream labels: {error}"))
            continue
        hint = _hint(labels)
        for entry in stream.entries:
            nanoseconds = entry.timestamp.seconds * 1_000_000_000 + entry.timestamp.nanos
            metadata = {pair.name: pair.value for pair in entry.structuredMetadata}
            decoded.records.append(_record(entry.line, nanoseconds, labels, metadata, tenant, hint))


def _from_json(plain: bytes, tenant: str, decoded: Decoded) -> None:
    try:
        envelope = orjson.loads(plain)
    except orjson.JSONDecodeError as error:
        raise RequestError(f"body is not JSON: {error}") from None
    streams = envelope.get("streams") if isinstance(envelope, dict) else None
    if not isinstance(streams, list):
        raise RequestError('a Loki JSON push is {"streams": [{"stream": {...}, "values": [...]}]}')
    total = sum(
        len(values)
        for stream in streams
        if isinstance(stream, dict) and isinstance(values := stream.get("values"), list)
    )
    if total > MAX_ENTRIES_PER_REQUEST:
        raise PayloadTooLarge(
            f"more than {MAX_ENTRIES_PER_REQUEST} entries in one request; send smaller batches"
        )
    for stream in streams:
        labels = stream.get("stream") if isinstance(stream, dict) else None
        values = stream.get("values") if isinstance(stream, dict) else None
        if not _is_string_map(labels) or not isinstance(values, list):
            reason = "a stream is an object with a string-valued stream and a values array"
            decoded.dead_letters.append((orjson.dumps(stream), reason))
            continue
        hint = _hint(labels)
        for value in values:
            try:
                nanoseconds, line, metadata = _json_entry(value)
            except ValueError as error:
                raw = {"stream": labels, "value": value}
                decoded.dead_letters.append((orjson.dumps(raw), f"bad entry: {error}"))
                continue
            decoded.records.append(_record(line, nanoseconds, labels, metadata, tenant, hint))


def _json_entry(value: Any) -> tuple[int, str, dict[str, str]]:
    if not isinstance(value, list) or len(value) not in (2, 3):
        raise ValueError('an entry is ["<ns timestamp>", "<line>", {structured metadata}?]')
    stamp, line = value[0], value[1]
    if isinstance(stamp, str) and stamp.isascii() and stamp.isdigit():
        if len(stamp) > MAX_TIMESTAMP_DIGITS:
            raise ValueError("timestamp has too many digits")
        stamp = int(stamp)
    if type(stamp) is not int:
        raise ValueError("the timestamp is a string of nanoseconds since the epoch")
    if not isinstance(line, str):
        raise ValueError("the line is a string")
    metadata = value[2] if len(value) == 3 else {}
    if not _is_string_map(metadata):
        raise ValueError("structured metadata is an object of strings")
    return stamp, line, metadata


def _record(
    line: str,
    nanoseconds: int,
    labels: dict[str, str],
    metadata: dict[str, str],
    tenant: str,
    hint: dict[str, Any] | None,
) -> dict[str, Any]:
    record: dict[str, Any] = {"line": line, "timestamp": nanoseconds, "labels": labels}
    if metadata:
        record["structured_metadata"] = metadata
    if tenant:
        record["tenant"] = tenant
    if hint is not None:
        record["hint"] = hint
    return record


def _hint(labels: dict[str, str]) -> dict[str, Any] | None:
    named = labels.get(SOURCE_LABEL, "").strip()
    if named:
        parser = source_for(named)
        # An unknown name stays in the hint so the entries are dead-lettered saying so.
        return {"parser": named if parser == AUTO else parser, "strict": True}
    parser = source_for(labels.get("job"))
    return None if parser == AUTO else {"parser": parser, "strict": False}


def _is_string_map(value: Any) -> TypeGuard[dict[str, str]]:
    return isinstance(value, dict) and all(isinstance(v, str) for v in value.values())


@functools.cache
def push_request_class() -> Any:
    """``logproto.PushRequest`` built from its descriptor (Loki's pkg/push/push.proto)."""
    optional = descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL
    repeated = descriptor_pb2.FieldDescriptorProto.LABEL_REPEATED
    string = descriptor_pb2.FieldDescriptorProto.TYPE_STRING
    message = descriptor_pb2.FieldDescriptorProto.TYPE_MESSAGE
    uint64 = descriptor_pb2.FieldDescriptorProto.TYPE_UINT64
    shapes: dict[str, list[tuple[str, int, int, int, str]]] = {
        "PushRequest": [("streams", 1, repeated, message, ".logproto.StreamAdapter")],
        "StreamAdapter": [
            ("labels", 1, optional, string, ""),
            ("entries", 2, repeated, message, ".logproto.EntryAdapter"),
            ("hash", 3, optional, uint64, ""),
        ],
        "LabelPairAdapter": [
            ("name", 1, optional, string, ""),
            ("value", 2, optional, string, ""),
        ],
        "EntryAdapter": [
            ("timestamp", 1, optional, message, ".google.protobuf.Timestamp"),
            ("line", 2, optional, string, ""),
            ("structuredMetadata", 3, repeated, message, ".logproto.LabelPairAdapter"),
        ],
    }
    proto_file = descriptor_pb2.FileDescriptorProto(
        name="keelwatch/loki_push.proto",
        package="logproto",
        syntax="proto3",
        dependency=["google/protobuf/timestamp.proto"],
    )
    for name, fields in shapes.items():
        described = proto_file.message_type.add(name=name)
        for field_name, number, label, kind, type_name in fields:
            added = described.field.add(name=field_name, number=number, label=label, type=kind)
            if type_name:
                added.type_name = type_name
    pool = descriptor_pool.DescriptorPool()  # a private pool: no clash with anyone's logproto
    pool.AddSerializedFile(timestamp_pb2.DESCRIPTOR.serialized_pb)
    pool.Add(proto_file)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("logproto.PushRequest"))
