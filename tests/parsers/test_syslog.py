"""syslog: recognition, year resolution, structured-data escapes, hostile text, hand-off.

The golden files (golden/syslog/) cover the field mapping of RFC 5424 and 3164 variants.
"""

from __future__ import annotations

from datetime import UTC, datetime
from functools import partial
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from keelwatch.model.fields import RecordLimits
from keelwatch.parsers import syslog
from keelwatch.parsers.base import Batch, ParseContext, Parser
from keelwatch.parsers.registry import recognise
from keelwatch.parsers.syslog_format import parse_message
from keelwatch.pipeline.normalize import parse_one

from .helpers import parse_records, reasons

PARSER = Parser(syslog.NAME, syslog.DATASET, syslog.DESCRIPTION, syslog.matches, syslog.parse)
run = partial(parse_records, PARSER)
CRASHED = f"parser {syslog.NAME} failed"


@pytest.mark.parametrize(
    ("record", "name"),
    [
        ("<34>1 2026-03-01T10:00:00Z host app - - - text", "syslog"),
        ("<13>Mar  1 10:00:00 host app: text", "syslog"),
        ({"syslog": "<13>x", "log.source.address": "10.0.0.1:514"}, "syslog"),
        # A syslog line carrying a Falco alert: the syslog parser takes it and hands the alert on.
        ('<36>Mar  1 10:00:00 node falco: {"rule":"r","priority":"Notice","output":"o"}', "syslog"),
        # Without <PRI> the line is too vague for syslog; Falco still knows its own alerts.
        ('Mar  1 10:00:00 node falco: {"rule":"r","priority":"Notice","output":"o"}', "falco"),
        ("2026-03-01T10:00:00.1Z stdout F a container line", "container"),
    ],
)
def test_auto_recognition(record: Any, name: str) -> None:
    parser = recognise(record)
    assert parser is not None and parser.name == name


@pytest.mark.parametrize(
    "record",
    ["plain words", "<>x", "<1000>x", "<a>x", {"syslog": 5}, {"syslog": "x", "other": 1}, [], 7],
)
def test_matches_nothing_else(record: Any) -> None:
    assert not syslog.matches(record)


@pytest.mark.parametrize(
    ("received", "stamp", "year"),
    [
        ("2026-01-01T00:00:00", "Dec 31 23:59:59", 2025),  # last year's end, received at midnight
        ("2025-12-31T23:59:00", "Jan  1 00:00:30", 2026),  # a sender's clock a little ahead
        ("2026-07-01T00:00:00", "Jun 30 12:00:00", 2026),
        ("2026-07-01T00:00:00", "Aug  1 12:00:00", 2025),  # a month ahead is last year
        ("2025-03-01T00:00:00", "Feb 29 12:00:00", 2024),  # the last Feb 29 before receipt
    ],
)
def test_year_less_timestamps_take_the_latest_year_not_in_the_future(
    received: str, stamp: str, year: int
) -> None:
    moment = parse_message(f"<13>{stamp} host app: x", datetime.fromisoformat(received + "+00:00"))
    assert moment.timestamp is not None and moment.timestamp.year == year


def test_impossible_dates_are_message_text() -> None:
    message = parse_message("<13>Feb 30 10:00:00 host app: x", datetime(2026, 1, 1, tzinfo=UTC))
    assert message.timestamp is None
    assert message.message == "Feb 30 10:00:00 host app: x"


def test_unreadable_5424_timestamp_warns_and_keeps_the_event() -> None:
    batch = run("<13>1 2026-13-45T99:00:00Z host app - - - text")
    assert reasons(batch) == []
    assert batch.events[0]["message"] == "text"
    assert batch.events[0]["@timestamp"] == batch.events[0]["event.ingested"]
    assert "unreadable" in batch.warnings[0]


sd_values = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12)


@settings(max_examples=200, deadline=None)
@given(values=st.lists(sd_values, min_size=1, max_size=4))
def test_structured_data_escapes_round_trip(values: list[str]) -> None:
    escape = lambda v: v.replace("\\", "\\\\").replace('"', '\\"').replace("]", "\\]")  # noqa: E731
    params = " ".join(f'p{n}="{escape(value)}"' for n, value in enumerate(values))
    message = parse_message(
        f"<13>1 - - - - - [id@1 {params}] msg", datetime(2026, 1, 1, tzinfo=UTC)
    )
    assert message.structured_data == {"id@1": {f"p{n}": v for n, v in enumerate(values)}}
    assert message.message == "msg"


@settings(max_examples=300, deadline=None)
@given(
    prefix=st.sampled_from(["<13>1 ", "<13>", "<13>Mar  1 10:00:00 ", "<13>1 - - - - - [", ""]),
    text=st.text(max_size=80),
)
def test_any_text_is_an_event_or_a_reasoned_dead_letter(prefix: str, text: str) -> None:
    batch = run(prefix + text)
    assert len(batch.events) + len(batch.dead_letters) == 1
    assert not any(reason.startswith(CRASHED) for reason in reasons(batch))


def test_too_many_structured_data_params_is_dead_lettered() -> None:
    params = " ".join(f'p{n}="v"' for n in range(50))
    batch = run(f"<13>1 - - - - - [x {params}] m", limits=RecordLimits(max_fields=20))
    assert batch.events == [] and reasons(batch)[0].startswith("more fields than the limit")


def test_listener_record_fields_are_type_checked() -> None:
    batch = run({"syslog": "<13>1 - h a - - - m", "log.source.address": 5})
    assert "log.source.address" not in batch.events[0]
    assert reasons(run({"syslog": ["<13>x"]}))[0].startswith("a syslog record is a text line")


def test_a_payload_its_parser_refuses_is_dead_lettered_whole() -> None:
    broken = {"kind": "EventList", "apiVersion": "audit.k8s.io/v1"}  # k8s-audit's, no items
    line = f"<110>1 2026-03-01T10:00:00Z cp kube-apiserver - - - {orjson.dumps(broken).decode()}"
    batch = Batch()
    parse_one(PARSER, line, ParseContext("syslog", datetime(2026, 1, 1, tzinfo=UTC), batch))
    assert batch.events == []
    (letter,) = batch.dead_letters
    assert letter.reason == "EventList has no items list"
    assert letter.raw == line.encode()  # the whole syslog line is kept


def test_hand_off_keeps_the_payloads_own_fields_first() -> None:
    alert = {"rule": "r", "priority": "Critical", "output": "o", "hostname": "from-falco"}
    batch = run(
        f"<14>1 2026-03-01T10:00:00Z from-syslog falco 3 - - {orjson.dumps(alert).decode()}"
    )
    (event,) = batch.events
    assert event["event.dataset"] == "falco.alerts"
    assert event["host.name"] == "from-falco"
    assert event["log.syslog.hostname"] == "from-syslog"
    assert event["event.severity"] == 4  # Falco's priority, not the syslog severity (6)
    assert batch.warnings == []
