"""Splunk HTTP Event Collector (HEC) on the HTTP port: ``/services/collector/...``.

Endpoints: ``event`` (also ``/services/collector`` and ``event/1.0``) takes JSON envelopes,
``raw`` (and ``raw/1.0``) takes text lines, ``ack`` answers indexer acknowledgement queries and
``health`` (and ``health/1.0``) reports whether the write queue has room. Every answer is HEC's
``{"text": ..., "code": N}``; the token is checked before the body is read. A success is sent
only once ``Intake.submit`` has returned, so the data is durable when the client hears of it.
See docs/sources/protocols/splunk-hec.md for the decisions (no ``?token=``, acks, errors).
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from keelwatch.errors import PayloadTooLarge, RequestError
from keelwatch.ingest.writer import Overloaded
from keelwatch.pipeline.decode import decompress
from keelwatch.sources.base import Intake, credential
from keelwatch.sources.splunk_hec_acks import AckChannels, channel_id
from keelwatch.sources.splunk_hec_events import (
    ACK_DISABLED,
    CHANNEL_MISSING,
    HEALTH_INVALID_TOKEN,
    HEALTHY,
    INDEXED_FIELDS_ERROR,
    INVALID_AUTHORIZATION,
    INVALID_CHANNEL,
    INVALID_DATA_FORMAT,
    INVALID_TOKEN,
    NO_DATA,
    PARSER,
    QUERY_STRING_AUTH_DISABLED,
    SERVER_BUSY,
    SUCCESS,
    TOKEN_REQUIRED,
    UNHEALTHY_QUEUES_FULL,
    Defaults,
    HecStatus,
    Routed,
    epoch_seconds,
    route_events,
    route_raw_lines,
)

PROTOCOL = "splunk-hec"
CHANNEL_HEADER = "x-splunk-request-channel"
ENCODINGS = frozenset(("", "identity", "gzip", "x-gzip", "deflate"))
MAX_ACK_BODY_BYTES = 1024 * 1024  # 10,000 ids fit in well under 100 KB
COLLECTOR = "/services/collector"
_HTTP_REASONS = {413: "payload_too_large", 415: "unsupported_encoding"}


def routes(intake: Intake, *, acks_enabled: bool = True) -> list[BaseRoute]:
    """The HEC endpoints; with ``acks_enabled=False`` the ack endpoint answers code 14."""
    hec = SplunkHec(intake, AckChannels() if acks_enabled else None)
    found: list[BaseRoute] = []
    for path in (COLLECTOR, f"{COLLECTOR}/event", f"{COLLECTOR}/event/1.0"):
        found.append(Route(path, hec.event, methods=["POST"]))
    for path in (f"{COLLECTOR}/raw", f"{COLLECTOR}/raw/1.0"):
        found.append(Route(path, hec.raw, methods=["POST"]))
    found.append(Route(f"{COLLECTOR}/ack", hec.ack, methods=["POST"]))
    for path in (f"{COLLECTOR}/health", f"{COLLECTOR}/health/1.0"):
        found.append(Route(path, hec.health, methods=["GET"]))
    return found


def reply(
    status: HecStatus, extra: dict[str, Any] | None = None, retry_after_seconds: int = 0
) -> Response:
    body: dict[str, Any] = {"text": status.text, "code": status.code}
    if extra:
        body.update(extra)
    headers = {"Retry-After": str(retry_after_seconds)} if retry_after_seconds else None
    return JSONResponse(body, status_code=status.http_status, headers=headers)


class _Refused(Exception):
    """A request-level refusal: the HEC status, its own text if any, the metric reason."""

    def __init__(self, status: HecStatus, text: str | None = None, http_status: int = 0) -> None:
        super().__init__(text or status.text)
        self.status = status
        self.text = text
        self.http_status = http_status or status.http_status
        # 413/415 share code 6 with bad JSON; the metric tells them apart.
        self.reason = _HTTP_REASONS.get(self.http_status) or _reason(status)

    def response(self) -> Response:
        body = {"text": self.text or self.status.text, "code": self.status.code}
        headers = {"WWW-Authenticate": "Splunk"} if self.http_status == 401 else None
        return JSONResponse(body, status_code=self.http_status, headers=headers)


class SplunkHec:
    def __init__(self, intake: Intake, acks: AckChannels | None) -> None:
        self.intake = intake
        self.acks = acks

    # -- endpoints ------------------------------------------------------------------------

    async def event(self, request: Request) -> Response:
        return await self._ingest(request, raw=False)

    async def raw(self, request: Request) -> Response:
        return await self._ingest(request, raw=True)

    async def health(self, request: Request) -> Response:
        header = request.headers.get("authorization")
        if header is not None and not self.intake.authorized(credential(header)):
            return reply(HEALTH_INVALID_TOKEN)
        writer = self.intake.service.writer
        if writer.queued_events >= writer.max_queue_events:
            return reply(UNHEALTHY_QUEUES_FULL, retry_after_seconds=1)
        return reply(HEALTHY)

    async def ack(self, request: Request) -> Response:
        try:
            self._authenticate(request)
            if self.acks is None:
                raise _Refused(ACK_DISABLED)
            channel = self._channel(request)
            if channel is None:
                raise _Refused(CHANNEL_MISSING)
            body = await self._body(request, MAX_ACK_BODY_BYTES)
            ack_ids = self._ack_ids(body)
            answer = self.acks.query(channel, ack_ids)
            if answer is None:
                raise _Refused(INVALID_CHANNEL, "Invalid data channel: unknown or expired")
        except _Refused as refused:
            return self._refuse(refused)
        return JSONResponse({"acks": answer})

    # -- the ingest path ------------------------------------------------------------------

    async def _ingest(self, request: Request, *, raw: bool) -> Response:
        try:
            self._authenticate(request)
            channel = self._channel(request)
            defaults = self._defaults(request, channel)
            body = await self._body(request, self.intake.limits.max_body_bytes)
            route = route_raw_lines if raw else route_events
            routed: Routed = await self.intake.service.run_cpu(route, body, defaults)
            if not routed.records and routed.error is None:
                raise _Refused(NO_DATA)
        except _Refused as refused:
            return self._refuse(refused)
        try:
            # Good events and dead letters in one write: durable together before any answer.
            await self.intake.submit(
                routed.records, PARSER, PROTOCOL, dead_letters=routed.dead_letters
            )
        except Overloaded as error:
            self.intake.reject(PROTOCOL, "overloaded")
            return reply(SERVER_BUSY, retry_after_seconds=error.retry_after_seconds)
        if routed.error is not None:
            self.intake.reject(PROTOCOL, _reason(routed.error))
            return reply(routed.error, {"invalid-event-number": routed.invalid_event_number})
        if channel is not None and self.acks is not None:
            return reply(SUCCESS, {"ackId": self.acks.issue(channel)})
        return reply(SUCCESS)

    # -- request parts --------------------------------------------------------------------

    def _authenticate(self, request: Request) -> None:
        header = request.headers.get("authorization")
        secret = credential(header) if header else None
        if self.intake.authorized(secret):
            return
        if header is None:
            # Tokens in URLs end up in proxy and access logs: HEC's query-string form is off.
            query_token = "token" in request.query_params
            raise _Refused(QUERY_STRING_AUTH_DISABLED if query_token else TOKEN_REQUIRED)
        raise _Refused(INVALID_AUTHORIZATION if secret is None else INVALID_TOKEN)

    def _channel(self, request: Request) -> str | None:
        """The canonical channel GUID, None without one; a malformed one is refused."""
        value = request.headers.get(CHANNEL_HEADER) or request.query_params.get("channel")
        if not value:
            return None
        channel = channel_id(value)
        if channel is None:
            raise _Refused(INVALID_CHANNEL, "Invalid data channel: not a GUID")
        return channel

    def _defaults(self, request: Request, channel: str | None) -> Defaults:
        params = request.query_params
        time_seconds = None
        if params.get("time"):
            time_seconds = epoch_seconds(params["time"])
            if time_seconds is None:
                raise _Refused(INDEXED_FIELDS_ERROR, "time is not epoch seconds")
        return Defaults(
            host=params.get("host") or None,
            source=params.get("source") or None,
            sourcetype=params.get("sourcetype") or None,
            index=params.get("index") or None,
            time_seconds=time_seconds,
            channel=channel,
        )

    async def _body(self, request: Request, max_body_bytes: int) -> bytes:
        """The decompressed body, bounded before and after decompression."""
        encoding = request.headers.get("content-encoding", "").strip().lower()
        if encoding not in ENCODINGS:
            raise _Refused(INVALID_DATA_FORMAT, f"unsupported Content-Encoding {encoding!r}", 415)
        limits = self.intake.limits
        try:
            if max_body_bytes < limits.max_body_bytes:
                body = await _read_at_most(request, max_body_bytes)
            else:
                body = await self.intake.read_body(request)
            plain = await self.intake.service.run_cpu(
                decompress, body, encoding, limits.max_decompressed_bytes
            )
        except PayloadTooLarge as error:
            raise _Refused(INVALID_DATA_FORMAT, str(error), 413) from None
        except RequestError as error:
            raise _Refused(INVALID_DATA_FORMAT, str(error)) from None
        if not plain.strip():
            raise _Refused(NO_DATA)
        return plain

    def _ack_ids(self, body: bytes) -> list[int]:
        assert self.acks is not None
        try:
            query = orjson.loads(body)
        except orjson.JSONDecodeError:
            raise _Refused(INVALID_DATA_FORMAT, 'send {"acks": [ack ids]}') from None
        ack_ids = query.get("acks") if isinstance(query, dict) else None
        if not isinstance(ack_ids, list) or not all(
            type(ack_id) is int and ack_id >= 0 for ack_id in ack_ids
        ):
            raise _Refused(INVALID_DATA_FORMAT, "acks must be a list of ack ids (whole numbers)")
        if len(ack_ids) > self.acks.max_ids_per_query:
            raise _Refused(
                INVALID_DATA_FORMAT, f"at most {self.acks.max_ids_per_query} ack ids per query"
            )
        return ack_ids

    def _refuse(self, refused: _Refused) -> Response:
        self.intake.reject(PROTOCOL, refused.reason)
        return refused.response()


def _reason(status: HecStatus) -> str:
    """A metric label from the status text: "Invalid token" → "invalid_token"."""
    return status.text.lower().replace(",", "").replace(" ", "_")


async def _read_at_most(request: Request, max_bytes: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise PayloadTooLarge(f"body is larger than {max_bytes} bytes")
        chunks.append(chunk)
    return b"".join(chunks)
