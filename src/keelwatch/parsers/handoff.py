"""Hand a log line carried inside a transport's record (OTLP, Loki) to the parser of its shape.

Transport records (``otel-log``, ``loki``) wrap one log line plus the metadata the transport
added. When the line is itself a record Keelwatch knows (a Kubernetes audit event, a Falco
alert) it belongs to that record's parser, as if it had been posted on its own. The choice:

- a strict hint (a ``keelwatch.source`` attribute or ``keelwatch_source`` label) names the
  parser, which then must take the line or the record is dead-lettered;
- a loose hint (Loki's ``job`` label) names a parser that is used only if it recognises the line;
- otherwise a JSON object line goes to the parser that recognises its shape, except the
  generic container parser and the transport parsers themselves (the wrapper says more).

Adapters put the hint into the record as ``{"hint": {"parser": <name>, "strict": <bool>}}``.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from keelwatch.errors import ParseError, RecordError, RecordTooLarge
from keelwatch.model.fields import Fields, RecordLimits, flatten, parse_timestamp
from keelwatch.parsers.base import ParseContext, Parser, Record
from keelwatch.parsers.registry import parsers, recognise

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MAX_UNIX_NANO = 253_402_300_799 * 10**9  # 9999-12-31T23:59:59Z
TRANSPORTS = frozenset(("otel-log", "loki", "splunk-hec"))
# Claims any object with a "message" and a stream; the transport's own record says more.
GENERIC = frozenset(("container",))


def hand_off(line: Any, hint: Any, ctx: ParseContext) -> bool:
    """Parse ``line`` with the parser it belongs to; False when no other parser claims it."""
    parser = _chosen(line, hint)
    if parser is None:
        return False
    try:
        parse_as(parser, line, ctx)
    except RecordError as error:  # say which parser refused the line
        raise ParseError(f"{parser.name}: {error.reason}") from None
    return True


def parse_as(parser: Parser, record: Record, ctx: ParseContext) -> None:
    """Let ``parser`` read ``record`` as if it had come on its own (``ctx.source`` names it)."""
    outer = ctx.source
    ctx.source = parser.name
    try:
        parser.parse(record, ctx)
    finally:
        ctx.source = outer


def _chosen(line: Any, hint: Any) -> Parser | None:
    if isinstance(hint, dict):
        name = hint.get("parser")
        strict = hint.get("strict") is True
        if isinstance(name, str) and name:
            parser = parsers().get(name)
            if parser is None or parser.name in TRANSPORTS:
                if strict:
                    raise ParseError(f"the source hint {name[:80]!r} names no parser")
            elif strict or parser.matches(line):
                return parser
    if isinstance(line, dict):
        found = recognise(line)
        if found is not None and found.name not in TRANSPORTS and found.name not in GENERIC:
            return found
    return None


def json_object(text: str) -> dict[str, Any] | None:
    """The object a line holds when the whole line is one JSON object, else None."""
    if len(text) < 2 or text[0] != "{" or text[-1] != "}":
        return None
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        return None  # text that merely looks like JSON stays text
    return value if isinstance(value, dict) and value else None


def expand(value: dict[str, Any], prefix: str, out: Fields, ctx: ParseContext) -> None:
    """Flatten a structured line under ``prefix``; over the limits it costs only the expansion."""
    limits = RecordLimits(ctx.limits.max_depth, ctx.limits.max_fields - len(out))
    try:
        expanded = flatten(value, prefix, {}, limits)
    except RecordTooLarge as error:
        ctx.warn(f"structured log line kept as text only: {error.reason}")
        return
    out.update(expanded)


def original_of(record: Record) -> Record:
    """The record without the adapter's hint (what event.original should show)."""
    if isinstance(record, dict) and "hint" in record:
        return {key: value for key, value in record.items() if key != "hint"}
    return record


def unix_nano_time(value: Any) -> datetime | None:
    """Nanoseconds since the epoch (an integer or a digit string), exact to the microsecond.

    Floats would round 10:00:00.123456789 up to .123457; other shapes go to parse_timestamp.
    """
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 20:
        value = int(value)
    if type(value) is int:
        if not 0 < value <= _MAX_UNIX_NANO:
            return None
        return _EPOCH + timedelta(microseconds=value // 1000)
    return parse_timestamp(value)
