"""Splunk HEC request bodies → records for the ``splunk-hec`` parser, and the HEC reply table.

An ``/event`` body is a stream of JSON envelopes, one after another with or without whitespace
between them (a top-level array counts as a batch of envelopes, as Splunk accepts it). Each
envelope carries ``event`` plus optional ``time``, ``host``, ``source``, ``sourcetype``,
``index`` and ``fields``. Like Splunk, reading stops at the first invalid envelope: the ones
before it are taken, and its position is reported as ``invalid-event-number``. Unlike Splunk,
nothing is dropped: the invalid envelope and the unread rest are dead-lettered with the reason.

Each event becomes one record for the ``splunk-hec`` parser (parsers/splunk_hec.py), which
hands known record shapes on to their parsers. ``sourcetype``, ``source`` or ``index`` naming a
parser becomes a loose hint: that parser is preferred when it recognises the event.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson

from keelwatch.parsers.base import raw_bytes
from keelwatch.parsers.registry import AUTO
from keelwatch.sources.base import source_for

PARSER = "splunk-hec"
METADATA_KEYS = ("host", "source", "sourcetype", "index")


@dataclass(frozen=True, slots=True)
class HecStatus:
    """One row of Splunk's HEC reply table: the JSON ``code``/``text`` and the HTTP status."""

    code: int
    text: str
    http_status: int


SUCCESS = HecStatus(0, "Success", 200)
TOKEN_REQUIRED = HecStatus(2, "Token is required", 401)
INVALID_AUTHORIZATION = HecStatus(3, "Invalid authorization", 401)
INVALID_TOKEN = HecStatus(4, "Invalid token", 403)
NO_DATA = HecStatus(5, "No data", 400)
INVALID_DATA_FORMAT = HecStatus(6, "Invalid data format", 400)
SERVER_BUSY = HecStatus(9, "Server is busy", 503)
CHANNEL_MISSING = HecStatus(10, "Data channel is missing", 400)
INVALID_CHANNEL = HecStatus(11, "Invalid data channel", 400)
EVENT_REQUIRED = HecStatus(12, "Event field is required", 400)
EVENT_BLANK = HecStatus(13, "Event field cannot be blank", 400)
ACK_DISABLED = HecStatus(14, "ACK is disabled", 400)
INDEXED_FIELDS_ERROR = HecStatus(15, "Error in handling indexed fields", 400)
QUERY_STRING_AUTH_DISABLED = HecStatus(16, "Query string authorization is not enabled", 400)
HEALTHY = HecStatus(17, "HEC is healthy", 200)
UNHEALTHY_QUEUES_FULL = HecStatus(18, "HEC is unhealthy, queues are full", 503)
HEALTH_INVALID_TOKEN = HecStatus(21, "Invalid token", 400)


@dataclass(frozen=True, slots=True)
class Defaults:
    """Request-level metadata (query parameters); an envelope's own values win."""

    host: str | None = None
    source: str | None = None
    sourcetype: str | None = None
    index: str | None = None
    time_seconds: float | None = None
    channel: str | None = None


@dataclass(slots=True)
class Routed:
    """A body turned into records, plus what could not be taken and why."""

    records: list[dict[str, Any]] = field(default_factory=list)
    dead_letters: list[tuple[bytes, str]] = field(default_factory=list)
    error: HecStatus | None = None
    invalid_event_number: int | None = None


class _Invalid(Exception):
    def __init__(self, status: HecStatus, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


_DECODER = json.JSONDecoder(parse_constant=_refuse_constant)
_WHITESPACE = frozenset(" \t\r\n\ufeff")


def route_events(body: bytes, defaults: Defaults) -> Routed:
    """Decode an ``/event`` body (decompressed, non-blank) into one record per event."""
    routed = Routed()
    text, exact = _text_of(body)
    number = 0
    # Python's decoder keeps a lone surrogate escape ("\\ud800") that no store can encode.
    surrogate_escapes = "\\ud" in text or "\\uD" in text
    for start, end, value in _json_values(text, routed):
        problem = None
        if not exact and not _is_utf8(text[start:end]):
            problem = "not valid UTF-8"
        elif surrogate_escapes and not _is_unicode(text[start:end]):
            problem = "a string holds a lone surrogate escape"
        if problem is not None:
            routed.dead_letters.append((_encode(text[start:end]), f"HEC event {number}: {problem}"))
            _fail(routed, INVALID_DATA_FORMAT, number, _encode(text[end:]))
            return routed
        items = value if isinstance(value, list) else [value]
        for position, item in enumerate(items):
            try:
                envelope = _envelope(item, defaults)
            except _Invalid as invalid:
                # A lone envelope keeps its own bytes; array elements are re-serialised.
                alone = not isinstance(value, list)
                bad = _encode(text[start:end]) if alone else raw_bytes(item)
                routed.dead_letters.append((bad, f"HEC event {number}: {invalid.reason}"))
                rest = b"".join(raw_bytes(later) for later in items[position + 1 :])
                _fail(routed, invalid.status, number, rest + _encode(text[end:]))
                return routed
            routed.records.append(_record(envelope, defaults))
            number += 1
    return routed


def route_raw_lines(body: bytes, defaults: Defaults) -> Routed:
    """Each non-blank line of a ``/raw`` body is one event with the request's metadata."""
    routed = Routed()
    for line in body.split(b"\n"):
        line = line.rstrip(b"\r")
        if line.strip():
            envelope = {"event": line.decode("utf-8", "replace")}
            routed.records.append(_record(envelope, defaults))
    return routed


def _text_of(body: bytes) -> tuple[str, bool]:
    """The body as text; invalid UTF-8 is kept byte-exact (surrogateescape) and marked inexact."""
    try:
        return body.decode("utf-8"), True
    except UnicodeDecodeError:
        return body.decode("utf-8", "surrogateescape"), False


def _encode(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")


def _is_utf8(span: str) -> bool:
    try:
        span.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _is_unicode(span: str) -> bool:
    try:
        orjson.loads(span)  # refuses lone surrogates, unlike the json module
    except orjson.JSONDecodeError:
        return False
    return True


def _json_values(text: str, routed: Routed) -> Iterator[tuple[int, int, Any]]:
    """(start, end, value) of each JSON value in ``text``; a syntax error ends the stream."""
    position, length = 0, len(text)
    while True:
        while position < length and text[position] in _WHITESPACE:
            position += 1
        if position >= length:
            return
        try:
            value, end = _DECODER.raw_decode(text, position)
        except (ValueError, RecursionError) as error:  # JSONDecodeError is a ValueError
            where = f"HEC event {len(routed.records)}"
            reason = f"{where}: invalid JSON: {_describe(error, position)}"
            routed.dead_letters.append((_encode(text[position:]), reason))
            _fail(routed, INVALID_DATA_FORMAT, len(routed.records), b"")
            return
        yield position, end, value
        position = end


def _describe(error: Exception, start: int) -> str:
    if isinstance(error, RecursionError):
        return "nested too deeply"
    if isinstance(error, json.JSONDecodeError):
        return f"{error.msg} (character {error.pos - start} of the event)"
    return str(error)[:200]


def _fail(routed: Routed, status: HecStatus, number: int, unread: bytes) -> None:
    routed.error = status
    routed.invalid_event_number = number
    if unread.strip():
        reason = f"not read: follows invalid HEC event {number} (HEC stops at the first one)"
        routed.dead_letters.append((unread, reason))


def _envelope(item: Any, defaults: Defaults) -> dict[str, Any]:
    """A checked envelope: ``event`` non-blank, metadata strings, ``time`` as epoch seconds."""
    if not isinstance(item, dict):
        raise _Invalid(INVALID_DATA_FORMAT, f"an envelope is a JSON object, not {_kind(item)}")
    if "event" not in item:
        raise _Invalid(EVENT_REQUIRED, "no event field")
    event = item["event"]
    if event is None or event in ("", {}, []) or (isinstance(event, str) and not event.strip()):
        raise _Invalid(EVENT_BLANK, "the event field is blank")
    for key in METADATA_KEYS:
        value = item.get(key)
        if value is not None and not isinstance(value, str):
            raise _Invalid(INVALID_DATA_FORMAT, f"{key} is {_kind(value)}, not a string")
    if item.get("time") is not None:
        seconds = epoch_seconds(item["time"])
        if seconds is None:
            raise _Invalid(INDEXED_FIELDS_ERROR, f"time {item['time']!r:.60} is not epoch seconds")
        item["time"] = seconds
    fields = item.get("fields")
    if fields is not None and not _flat_fields(fields):
        raise _Invalid(
            INDEXED_FIELDS_ERROR, "fields must be an object of strings, numbers or lists of them"
        )
    return item


def epoch_seconds(value: Any) -> float | None:
    """HEC ``time``: epoch seconds as a number or a numeric string (fractions allowed)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and 0 < len(value) <= 32:
        try:
            seconds = float(value)
        except ValueError:
            return None
    else:
        return None
    return seconds if 0 <= seconds < 1e11 else None  # NaN fails both tests


def _flat_fields(fields: Any) -> bool:
    """Splunk indexes only flat fields: values are scalars or lists of scalars."""
    if not isinstance(fields, dict):
        return False
    for value in fields.values():
        items = value if isinstance(value, list) else [value]
        if any(isinstance(item, dict | list) for item in items):
            return False
    return True


def _record(envelope: dict[str, Any], defaults: Defaults) -> dict[str, Any]:
    """The parser's record: the event, the metadata it has (or the request's), a parser hint."""
    record: dict[str, Any] = {"event": envelope["event"]}
    seconds = envelope.get("time")
    if seconds is None:
        seconds = defaults.time_seconds
    if seconds is not None:
        record["time"] = seconds
    for key in METADATA_KEYS:
        value = envelope.get(key) or getattr(defaults, key)
        if value:
            record[key] = value
    if envelope.get("fields"):
        record["fields"] = envelope["fields"]
    if defaults.channel:
        record["channel"] = defaults.channel
    for key in ("sourcetype", "source", "index"):
        parser_name = source_for(record.get(key))
        if parser_name not in (AUTO, PARSER):
            record["hint"] = {"parser": parser_name, "strict": False}
            break
    return record


def _kind(value: Any) -> str:
    names = {dict: "an object", list: "an array", str: "a string", bool: "a boolean"}
    if value is None:
        return "null"
    return names.get(type(value), "a number")
