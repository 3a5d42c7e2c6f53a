"""``--since``/``--until`` bounds: durations before now, ``now``, RFC 3339 and epoch timestamps."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from keelwatch.errors import QueryError
from keelwatch.query.timerange import parse_bound, time_range
from keelwatch.store.base import TimeRange

NOW = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "ago"),
    [
        ("30s", timedelta(seconds=30)),
        ("15m", timedelta(minutes=15)),
        ("2h", timedelta(hours=2)),
        ("7d", timedelta(days=7)),
        ("1w", timedelta(weeks=1)),
        ("2H", timedelta(hours=2)),
        ("0m", timedelta(0)),
        (" 5m ", timedelta(minutes=5)),
        ("9999999999s", timedelta(seconds=9_999_999_999)),  # back to the year 1709
    ],
)
def test_durations_count_back_from_now(text: str, ago: timedelta) -> None:
    assert parse_bound(text, NOW) == NOW - ago


def test_now() -> None:
    assert parse_bound("now", NOW) == NOW
    assert parse_bound(" now ", NOW) == NOW


def test_now_defaults_to_the_clock() -> None:
    before = datetime.now(UTC)
    moment = parse_bound("1h")
    after = datetime.now(UTC)
    assert moment is not None
    assert before - timedelta(hours=1) <= moment <= after - timedelta(hours=1)


@pytest.mark.parametrize("text", [None, "", "   "])
def test_no_bound(text: str | None) -> None:
    assert parse_bound(text, NOW) is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-01-31T12:00:00Z", datetime(2026, 1, 31, 12, tzinfo=UTC)),
        ("2026-01-31T12:00:00z", datetime(2026, 1, 31, 12, tzinfo=UTC)),
        ("2026-01-31T12:00:00.123456789Z", datetime(2026, 1, 31, 12, 0, 0, 123456, tzinfo=UTC)),
        ("2026-01-31T12:00:00.5Z", datetime(2026, 1, 31, 12, 0, 0, 500000, tzinfo=UTC)),
        ("2026-01-31T14:00:00+02:00", datetime(2026, 1, 31, 12, tzinfo=UTC)),
        ("2026-01-31T07:00:00-05:00", datetime(2026, 1, 31, 12, tzinfo=UTC)),
        ("2026-01-31T12:00:00", datetime(2026, 1, 31, 12, tzinfo=UTC)),  # naive means UTC
        ("2026-01-31", datetime(2026, 1, 31, tzinfo=UTC)),
        ("1769860800", datetime(2026, 1, 31, 12, tzinfo=UTC)),  # epoch seconds
        ("1769860800000", datetime(2026, 1, 31, 12, tzinfo=UTC)),  # epoch milliseconds
        ("1769860800000000000", datetime(2026, 1, 31, 12, tzinfo=UTC)),  # epoch nanoseconds
    ],
)
def test_timestamps(text: str, expected: datetime) -> None:
    moment = parse_bound(text, NOW)
    assert moment == expected
    assert moment is not None and moment.tzinfo is not None


def test_an_offset_is_kept_as_the_same_instant() -> None:
    moment = parse_bound("2026-01-31T14:00:00+02:00", NOW)
    assert moment is not None
    assert moment.utcoffset() == timedelta(hours=2)
    assert moment.astimezone(UTC) == datetime(2026, 1, 31, 12, tzinfo=UTC)


@pytest.mark.parametrize(
    "text",
    [
        "bogus",
        "5x",
        "-5m",
        "m",
        "1.5h",
        "5 m",
        "NOW",
        "yesterday",
        "2026-13-01T00:00:00Z",
        "2026-01-31T25:00:00Z",
        "\u00b2h",  # a digit that int() refuses
        "\u00b2",  # ... and that float() refuses
        "123456789012m",  # twelve digits: longer than a duration may be
        "1" * 400,
    ],
)
def test_bad_input_is_a_query_error(text: str) -> None:
    with pytest.raises(QueryError, match="cannot read time"):
        parse_bound(text, NOW)


@pytest.mark.parametrize("text", ["99999999999w", "99999999d", "99999999999s"])
def test_durations_reaching_before_year_one_are_query_errors(text: str) -> None:
    with pytest.raises(QueryError, match="before the year 1"):
        parse_bound(text, NOW)


def test_time_range() -> None:
    assert time_range("1h", "now", NOW) == TimeRange(NOW - timedelta(hours=1), NOW)
    assert time_range(None, None, NOW) == TimeRange(None, None)
    assert time_range("2026-01-01T00:00:00Z", None, NOW) == TimeRange(
        datetime(2026, 1, 1, tzinfo=UTC), None
    )
    with pytest.raises(QueryError):
        time_range("1h", "later", NOW)


def test_now_may_carry_any_offset() -> None:
    tokyo = NOW.astimezone(timezone(timedelta(hours=9)))
    moment = parse_bound("1h", tokyo)
    assert moment == NOW - timedelta(hours=1)
