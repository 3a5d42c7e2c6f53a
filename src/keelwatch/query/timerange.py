"""``--since 1h`` / ``since=2026-01-01T00:00:00Z``: relative or absolute time bounds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from keelwatch.errors import QueryError
from keelwatch.model.fields import parse_timestamp
from keelwatch.store.base import TimeRange

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_bound(text: str | None, now: datetime | None = None) -> datetime | None:
    """``15m``, ``2h``, ``7d``, ``1w`` (before now), ``now``, or an RFC 3339 / epoch timestamp."""
    if text is None or not text.strip():
        return None
    text = text.strip()
    now = now or datetime.now(UTC)
    if text == "now":
        return now
    unit = _UNITS.get(text[-1:].lower())
    if unit is not None and text[:-1].isdigit() and len(text) <= 12:
        return now - timedelta(seconds=int(text[:-1]) * unit)
    moment = parse_timestamp(text)
    if moment is None:
        raise QueryError(
            f"cannot read time {text!r}: use a duration like 15m, 2h, 7d or a timestamp "
            "like 2026-01-31T12:00:00Z"
        )
    return moment


def time_range(since: str | None, until: str | None, now: datetime | None = None) -> TimeRange:
    return TimeRange(parse_bound(since, now), parse_bound(until, now))
