"""``--since 1h`` / ``since=2026-01-01T00:00:00Z``: relative or absolute time bounds."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from keelwatch.errors import QueryError
from keelwatch.model.fields import parse_timestamp
from keelwatch.store.base import TimeRange

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_DURATION = re.compile(r"(\d{1,11})([smhdw])", re.IGNORECASE)  # \d: decimal digits, not "²"


def read_timestamp(text: str) -> datetime | None:
    """``parse_timestamp`` for user text: None also for digits that ``float`` refuses (``²``)."""
    try:
        return parse_timestamp(text)
    except ValueError:  # parse_timestamp trusts str.isdigit(), which is true for "²"
        return None


def parse_bound(text: str | None, now: datetime | None = None) -> datetime | None:
    """``15m``, ``2h``, ``7d``, ``1w`` (before now), ``now``, or an RFC 3339 / epoch timestamp."""
    if text is None or not text.strip():
        return None
    text = text.strip()
    now = now or datetime.now(UTC)
    if text == "now":
        return now
    duration = _DURATION.fullmatch(text)
    if duration is not None:
        amount, unit = duration.groups()
        try:
            return now - timedelta(seconds=int(amount) * _UNITS[unit.lower()])
        except OverflowError:
            raise QueryError(f"{text!r} reaches back before the year 1") from None
    moment = read_timestamp(text)
    if moment is None:
        raise QueryError(
            f"cannot read time {text!r}: use a duration like 15m, 2h, 7d or a timestamp "
            "like 2026-01-31T12:00:00Z"
        )
    return moment


def time_range(since: str | None, until: str | None, now: datetime | None = None) -> TimeRange:
    return TimeRange(parse_bound(since, now), parse_bound(until, now))
