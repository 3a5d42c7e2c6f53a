"""The Elasticsearch ``_bulk`` API: Filebeat, Fluent Bit, Vector, Logstash, OTel and the clients.

A body is NDJSON: an action line (``index``, ``create``, ``update`` or ``delete`` with metadata)
followed, except for ``delete``, by a source line. ``index`` and ``create`` documents become
records; the index (the action's ``_index``, else the URL's) names the parser where it names one
(``k8s-audit``, ``keelwatch-falco-2026.11``), else each record is recognised by its shape.

Answers follow Elasticsearch: HTTP 200 with one item per action, in request order. A document no
parser accepts gets a per-item 400 and is kept in the dead-letter table. ``update`` and
``delete`` get a per-item 400: events are immutable. Under overload, a request of which nothing
was stored gets HTTP 429 (every collector retries that); once part of it is stored, the rest get
per-item 429 ``es_rejected_execution_exception``. Only an unparsable request fails as a whole.
"""

from __future__ import annotations

import base64
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, TypeGuard

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from keelwatch.errors import PayloadTooLarge, RequestError
from keelwatch.ingest.writer import Overloaded
from keelwatch.parsers.base import Record
from keelwatch.parsers.registry import AUTO
from keelwatch.pipeline.decode import decompress
from keelwatch.sources.base import Intake, source_for
from keelwatch.sources.elasticsearch_handshake import (
    PROTOCOL,
    es_error,
    es_json,
    guarded,
    handshake_routes,
    index_routes,
)
from keelwatch.sources.lumberjack_beats import route

ACTIONS = ("index", "create", "update", "delete")
BEATS = frozenset({"filebeat", "auditbeat", "packetbeat", "journalbeat", "winlogbeat"})
# Bounds what one request may cost in memory beyond its bytes (a gzip body of empty documents
# would otherwise expand to millions of dicts). Filebeat splits a batch answered with 413.
MAX_BULK_ITEMS = 100_000
MAX_INDEX_NAME_BYTES = 255  # Elasticsearch's own limit
MAX_ID_BYTES = 512  # Elasticsearch's own limit
REASON_PREVIEW_CHARS = 200


class BulkSyntaxError(RequestError):
    """The body is not a bulk request (a bad action line); the whole request is refused."""


@dataclass(slots=True)
class BulkItem:
    action: str
    index: str
    doc_id: str
    record: Record | None = None  # the document, when it is one Keelwatch can take
    raw: bytes = b""  # the source line, kept for the dead-letter table
    # Refused while reading: (status, Elasticsearch error type, reason).
    error: tuple[int, str, str] | None = None
    dead_letter: bool = False  # whether ``raw`` goes to the dead-letter table with ``error``


def _new_id() -> str:
    return base64.urlsafe_b64encode(os.urandom(15)).decode()


def _lines(body: bytes) -> Iterator[tuple[int, bytes]]:
    """(1-based line number, line) without building a list: blank-line floods stay cheap."""
    start = number = 0
    size = len(body)
    while start < size:
        end = body.find(b"\n", start)
        if end == -1:
            end = size
        number += 1
        yield number, body[start:end].strip()
        start = end + 1


def _action(line: bytes, number: int, url_index: str) -> tuple[str, str, str]:
    """(action, index, id) from an action line; raises BulkSyntaxError if it is not one."""
    where = f"Malformed action/metadata line [{number}]"
    try:
        value = orjson.loads(line)
    except orjson.JSONDecodeError as error:
        raise BulkSyntaxError(f"{where}: not JSON ({error})") from None
    if not isinstance(value, dict) or len(value) != 1:
        raise BulkSyntaxError(f"{where}, expected an object with one action key")
    action, meta = next(iter(value.items()))
    if action not in ACTIONS:
        shown = str(action)[:REASON_PREVIEW_CHARS]
        raise BulkSyntaxError(
            f"{where}, expected field [create], [delete], [index] or [update] but found [{shown}]"
        )
    if not isinstance(meta, dict):
        raise BulkSyntaxError(f"{where}, the [{action}] metadata must be an object")
    index = meta.get("_index", url_index)
    if not isinstance(index, str):
        raise BulkSyntaxError(f"{where}, [_index] must be a string")
    doc_id = meta.get("_id")
    if isinstance(doc_id, int | float) and not isinstance(doc_id, bool):
        doc_id = str(doc_id)
    if doc_id is not None and not isinstance(doc_id, str):
        raise BulkSyntaxError(f"{where}, [_id] must be a string")
    if doc_id is not None and len(doc_id.encode()) > MAX_ID_BYTES:
        raise BulkSyntaxError(f"{where}, [_id] is longer than {MAX_ID_BYTES} bytes")
    return action, index, doc_id or _new_id()


def _document(item: BulkItem, line: bytes) -> None:
    """Fill ``item`` from an index/create source line, or say why it cannot be taken."""
    item.raw = line
    if not item.index:
        item.error = (400, "action_request_validation_exception", "index is missing")
    elif len(item.index.encode()) > MAX_INDEX_NAME_BYTES:
        reason = f"index name is longer than {MAX_INDEX_NAME_BYTES} bytes"
        item.error = (400, "invalid_index_name_exception", reason)
    else:
        try:
            value = orjson.loads(line)
        except orjson.JSONDecodeError as error:
            item.error = (400, "document_parsing_exception", f"failed to parse: {error}")
        else:
            if isinstance(value, dict):
                item.record = value
                return
            kind = "an empty line" if not line else type(value).__name__
            reason = f"the document must be a JSON object, not {kind}"
            item.error = (400, "document_parsing_exception", reason)
    item.dead_letter = True


def parse_bulk(body: bytes, encoding: str, max_bytes: int, url_index: str) -> list[BulkItem]:
    """Decompress (bounded) and split a bulk body into items; CPU work, run off the loop."""
    plain = decompress(body, encoding, max_bytes)
    items: list[BulkItem] = []
    lines = _lines(plain)
    for number, line in lines:
        if not line:
            continue
        if len(items) >= MAX_BULK_ITEMS:
            raise PayloadTooLarge(f"a bulk request may hold at most {MAX_BULK_ITEMS} actions")
        action, index, doc_id = _action(line, number, url_index)
        item = BulkItem(action, index, doc_id)
        items.append(item)
        if action == "delete":
            item.error = (400, "illegal_argument_exception", _unsupported(action))
            continue
        following = next(lines, None)
        if following is None:
            raise BulkSyntaxError(f"the [{action}] action on line [{number}] has no source line")
        if action == "update":
            item.error = (400, "illegal_argument_exception", _unsupported(action))
        else:
            _document(item, following[1])
    if not items:
        raise BulkSyntaxError("Validation Failed: 1: no requests added;")
    return items


def _unsupported(action: str) -> str:
    return f"keelwatch does not support the [{action}] action: stored events are immutable"


def _groups(items: list[BulkItem]) -> dict[str, list[int]]:
    """Item positions by the parser their index names, in order of first appearance.

    Documents from Beats (Filebeat's ``output.elasticsearch``) are routed as the Lumberjack
    listener routes them, so a Beats event reads the same whichever output sent it.
    """
    groups: dict[str, list[int]] = {}
    by_index: dict[str, str] = {}
    hints: dict[str, str] = {}
    for position, item in enumerate(items):
        if item.error is not None and not item.dead_letter:
            continue
        if item.index not in by_index:
            by_index[item.index] = source_for(item.index) if item.index else AUTO
        source = by_index[item.index]
        if _is_beats_event(item.record):
            hint = None if source == AUTO else source
            source, item.record = route(item.record, hint, hints)
        groups.setdefault(source, []).append(position)
    return groups


def _is_beats_event(record: Record | None) -> TypeGuard[dict[str, Any]]:
    if not isinstance(record, dict):
        return False
    agent = record.get("agent")
    return isinstance(agent, dict) and agent.get("type") in BEATS


def _item(item: BulkItem, position: int, outcome: tuple[int, str, str] | None) -> dict[str, Any]:
    if outcome is None:
        answer: dict[str, Any] = {
            "_index": item.index,
            "_id": item.doc_id,
            "_version": 1,
            "result": "created",
            "_shards": {"total": 1, "successful": 1, "failed": 0},
            "_seq_no": position,
            "_primary_term": 1,
            "status": 201,
        }
    else:
        status, error_type, reason = outcome
        answer = {
            "_index": item.index,
            "_id": item.doc_id,
            "status": status,
            "error": {"type": error_type, "reason": reason, "index": item.index},
        }
    return {item.action: answer}


class BulkEndpoint:
    def __init__(self, intake: Intake) -> None:
        self.intake = intake

    async def __call__(self, request: Request) -> Response:
        started = time.perf_counter()
        body = await self.intake.read_body(request)
        limits = self.intake.limits
        url_index = str(request.path_params.get("index", ""))
        try:
            items = await self.intake.service.run_cpu(
                parse_bulk,
                body,
                request.headers.get("content-encoding", ""),
                limits.max_decompressed_bytes,
                url_index,
            )
        except BulkSyntaxError as error:
            self.intake.reject(PROTOCOL, "malformed")
            return es_error(request, 400, "illegal_argument_exception", str(error))
        outcomes: list[tuple[int, str, str] | None] = [item.error for item in items]
        unsupported = sum(1 for item in items if item.error and not item.dead_letter)
        self.intake.reject(PROTOCOL, "unsupported_action", unsupported)
        try:
            await self._submit(items, outcomes)
        except Overloaded as error:
            self.intake.reject(PROTOCOL, "overloaded")
            return es_error(
                request,
                429,
                "es_rejected_execution_exception",
                f"{error}; nothing from this request was stored, retry it later",
                {"Retry-After": str(error.retry_after_seconds)},
            )
        took_ms = int((time.perf_counter() - started) * 1000)
        answers = [
            _item(item, n, outcome)
            for n, (item, outcome) in enumerate(zip(items, outcomes, strict=True))
        ]
        errors = any(outcome is not None for outcome in outcomes)
        return es_json(request, {"took": took_ms, "errors": errors, "items": answers})

    async def _submit(
        self, items: list[BulkItem], outcomes: list[tuple[int, str, str] | None]
    ) -> None:
        """Submit each parser's group; fills ``outcomes``. Overloaded only if nothing stored."""
        stored_any = False
        pending = list(_groups(items).items())
        for number, (source, positions) in enumerate(pending):
            taken: list[int] = []
            records: list[Record] = []
            dead: list[tuple[bytes, str]] = []
            for position in positions:
                item = items[position]
                if item.record is not None:
                    taken.append(position)
                    records.append(item.record)
                elif item.error is not None:
                    dead.append((item.raw, item.error[2]))
            try:
                result = await self.intake.submit(
                    records, source, PROTOCOL, dead_letters=dead, item_outcomes=True
                )
            except Overloaded as error:
                if not stored_any:
                    raise
                self._refuse_rest(pending[number:], outcomes, error)
                return
            stored_any = True
            for position, reason in zip(taken, result.outcomes, strict=True):
                if reason is not None:
                    outcomes[position] = (400, "document_parsing_exception", reason)

    def _refuse_rest(
        self,
        rest: list[tuple[str, list[int]]],
        outcomes: list[tuple[int, str, str] | None],
        error: Overloaded,
    ) -> None:
        reason = f"{error}; this item was not stored, retry it later"
        refused = 0
        for _, positions in rest:
            for position in positions:
                outcomes[position] = (429, "es_rejected_execution_exception", reason)
                refused += 1
        self.intake.reject(PROTOCOL, "overloaded_item", refused)


def routes(intake: Intake) -> list[BaseRoute]:
    bulk = guarded(intake, BulkEndpoint(intake))
    return [
        Route("/_bulk", bulk, methods=["POST", "PUT"]),
        *handshake_routes(intake),
        Route("/{index}/_bulk", bulk, methods=["POST", "PUT"]),
        *index_routes(intake),
    ]
