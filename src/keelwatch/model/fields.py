"""Helpers that turn native records into flat, ECS-aligned field maps.

An event is a flat ``dict`` keyed by dotted field names (``kubernetes.audit.verb``). Flat keys
keep native names intact even where they contain dots themselves (Falco's ``proc.cmdline``).
Lists stay whole as values; objects inside lists are kept as they are.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import orjson

from keelwatch.errors import RecordTooLarge

Fields = dict[str, Any]


@dataclass(frozen=True, slots=True)
class RecordLimits:
    """Bounds on one record's shape; a record over them is dead-lettered."""

    max_depth: int = 48
    max_fields: int = 5_000


DEFAULT_LIMITS = RecordLimits()


def flatten(
    value: Mapping[str, Any],
    prefix: str,
    out: Fields,
    limits: RecordLimits = DEFAULT_LIMITS,
) -> Fields:
    """Copy ``value`` into ``out`` under ``prefix`` with dotted keys; enforce ``limits``.

    Every leaf (including each value nested inside lists) counts towards ``max_fields``.
    """
    budget = [limits.max_fields - len(out)]
    _flatten_into(value, prefix, out, 1, limits.max_depth, budget)
    return out


# Decoded JSON is plain dicts, lists and these: exact type checks avoid slow ABC isinstance.
_SCALARS = frozenset({str, int, float, bool, type(None)})


def _flatten_into(
    value: Mapping[str, Any],
    prefix: str,
    out: Fields,
    depth: int,
    max_depth: int,
    budget: list[int],
) -> None:
    if depth > max_depth:
        raise RecordTooLarge(f"nesting deeper than {max_depth} levels at {prefix or 'top level'}")
    dotted = prefix + "." if prefix else ""
    for key, item in value.items():
        name = dotted + (key if type(key) is str else str(key))
        kind = type(item)
        if kind in _SCALARS:
            budget[0] -= 1
        elif kind is dict or (kind is not list and isinstance(item, Mapping)):
            if item:
                _flatten_into(item, name, out, depth + 1, max_depth, budget)
            continue
        elif kind is list:
            _charge_list(item, name, depth + 1, max_depth, budget)
        else:
            budget[0] -= 1
        if budget[0] < 0:
            raise RecordTooLarge(f"more fields than the limit ({name})")
        out[name] = item


def _charge_list(
    items: list[Any], name: str, depth: int, max_depth: int, budget: list[int]
) -> None:
    """Walk a list kept whole, charging its leaves and checking its depth (iteratively)."""
    stack: list[tuple[Any, int]] = [(items, depth)]
    scalars = _SCALARS
    while stack:
        node, level = stack.pop()
        if level > max_depth:
            raise RecordTooLarge(f"nesting deeper than {max_depth} levels at {name}")
        children = node.values() if type(node) is dict or isinstance(node, Mapping) else node
        for child in children:
            kind = type(child)
            if kind in scalars:
                budget[0] -= 1
            elif kind is dict or kind is list or isinstance(child, Mapping):
                stack.append((child, level + 1))
            else:
                budget[0] -= 1
        if budget[0] < 0:
            raise RecordTooLarge(f"more fields than the limit ({name})")


def set_if(out: Fields, name: str, value: Any) -> None:
    """Set a field only when the value carries information (not None, '' or empty)."""
    if value is None or value == "" or value == [] or value == {}:
        return
    out[name] = value


def dig(record: Any, *path: str) -> Any:
    """Follow ``path`` through nested mappings; None where any step is missing."""
    node = record
    for step in path:
        if not isinstance(node, Mapping):
            return None
        node = node.get(step)
    return node


def canonical_bytes(record: Any) -> bytes:
    """The record as stable JSON bytes (sorted keys), for hashing and ``event.original``."""
    if isinstance(record, bytes):
        return record
    if isinstance(record, str):
        return record.encode()
    return orjson.dumps(record, option=orjson.OPT_SORT_KEYS)


def content_id(record: Any) -> str:
    """A stable id for records that carry none of their own: a hash of their content."""
    return hashlib.blake2b(canonical_bytes(record), digest_size=16).hexdigest()


def parse_timestamp(value: Any) -> datetime | None:
    """Parse the timestamp shapes sources use into an aware UTC datetime.

    Accepts RFC 3339 strings (any fraction length, ``Z`` or offset), epoch seconds,
    milliseconds or nanoseconds as numbers or digit strings. Returns None for anything else.
    """
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, int | float):
        return _from_epoch(float(value))
    if not isinstance(value, str) or not value:
        return None
    text = value.strip()
    if text.isascii() and text.isdigit():
        return _from_epoch(float(text))
    return _from_rfc3339(text)


def _from_epoch(number: float) -> datetime | None:
    # Pick the unit by magnitude: seconds until year 5138, then ms, µs, ns.
    for divisor in (1.0, 1e3, 1e6, 1e9):
        seconds = number / divisor
        if seconds < 1e11:
            try:
                return datetime.fromtimestamp(seconds, tz=UTC)
            except (OverflowError, OSError, ValueError):
                return None
    return None


def _from_rfc3339(text: str) -> datetime | None:
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    # Python accepts at most 6 fractional digits; sources send up to 9.
    dot = text.find(".")
    if dot != -1:
        end = dot + 1
        while end < len(text) and text[end].isdigit():
            end += 1
        text = text[: dot + 1] + text[dot + 1 : min(end, dot + 7)] + text[end:]
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@lru_cache(maxsize=8192)  # a batch repeats its receipt time and many event times
def isoformat(moment: datetime) -> str:
    """RFC 3339 in UTC with microseconds and a ``Z``: the one timestamp form Keelwatch emits."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return isoformat(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    raise TypeError(f"cannot serialize {type(value).__name__}")


def dumps(value: Any, *, pretty: bool = False) -> bytes:
    """JSON bytes with Keelwatch's timestamp form (see ``isoformat``)."""
    option = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_NON_STR_KEYS
    if pretty:
        option |= orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS
    try:
        return orjson.dumps(value, default=_json_default, option=option)
    except TypeError:  # an integer wider than 64 bits (YAML can make one): the slow, exact path
        indent = 2 if pretty else None
        return json.dumps(value, default=_json_default, indent=indent, sort_keys=pretty).encode()
