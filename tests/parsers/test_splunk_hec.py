"""splunk-hec: HEC envelopes as the adapter hands them on (shape test, hand-off, hostile values)."""

from __future__ import annotations

from functools import partial
from typing import Any

import orjson
import pytest
from hypothesis import given, settings

from keelwatch.parsers import splunk_hec
from keelwatch.parsers.base import Parser
from keelwatch.parsers.registry import recognise

from ..fixtures import audit_event
from .helpers import json_values, parse_records, paths, reasons, replaced

PARSER = Parser(
    splunk_hec.NAME,
    splunk_hec.DATASET,
    splunk_hec.DESCRIPTION,
    splunk_hec.matches,
    splunk_hec.parse,
)
run = partial(parse_records, PARSER)
CRASHED = f"parser {splunk_hec.NAME} failed"


def envelope(**extra: Any) -> dict[str, Any]:
    return {
        "event": "user alice logged in",
        "time": 1772359200.25,
        "host": "node-1",
        "source": "/var/log/auth.log",
        "sourcetype": "auth",
        "index": "main",
        "fields": {"team": "iam", "tags": ["a"]},
        "channel": "0f8c5a0e-6f1b-4c55-9d36-5c3a0e1b2d4f",
        **extra,
    }


def test_recognised_by_shape_for_the_auto_route() -> None:
    assert recognise(envelope()) is not None
    assert recognise(envelope()).name == "splunk-hec"  # type: ignore[union-attr]
    assert splunk_hec.matches({"event": {"a": 1}, "sourcetype": "x"})


@pytest.mark.parametrize(
    "record",
    [
        {"event": "no metadata at all"},
        {"event": "x", "sourcetype": "s", "unrelated": 1},
        {"event": 5, "time": 1},
        {"time": 1, "host": "h"},
        ["event", "x"],
        "event x",
    ],
)
def test_not_recognised(record: Any) -> None:
    assert not splunk_hec.matches(record)


def test_a_text_event_keeps_the_envelope_under_splunk() -> None:
    [event] = run(envelope()).events
    assert event["message"] == "user alice logged in"
    assert event["event.dataset"] == "splunk.hec"
    assert event["host.name"] == "node-1"
    assert event["@timestamp"].isoformat() == "2026-03-01T10:00:00.250000+00:00"
    assert event["splunk.fields.team"] == "iam" and event["splunk.index"] == "main"
    assert "hint" not in orjson.loads(event["event.original"])


def test_a_hint_naming_a_parser_that_refuses_the_event_keeps_it_as_text() -> None:
    record = envelope(hint={"parser": "falco", "strict": False})
    batch = run(record)
    assert [e["event.dataset"] for e in batch.events] == ["splunk.hec"]
    assert reasons(batch) == []


def test_known_objects_go_to_their_parser_as_posted() -> None:
    audit = audit_event("delete", "secrets", name="db")
    batch = run(envelope(event=audit), envelope(event=orjson.dumps(audit).decode()))
    assert [e["event.id"] for e in batch.events] == [audit["auditID"]] * 2
    assert {e["event.dataset"] for e in batch.events} == {"kubernetes.audit"}


def test_a_broken_known_record_is_dead_lettered_by_its_parser_when_the_hint_is_strict() -> None:
    record = envelope(event={"kind": "Event"}, hint={"parser": "k8s-audit", "strict": True})
    batch = run(record)
    assert batch.events == []
    assert reasons(batch)[0].startswith("k8s-audit: ")


@pytest.mark.parametrize("event", [None, ""])
def test_a_blank_event_is_dead_lettered(event: Any) -> None:
    assert reasons(run(envelope(event=event))) == ["the event field is missing or blank"]


def test_a_time_that_is_not_epoch_seconds_warns_and_keeps_the_event() -> None:
    batch = run(envelope(time="soon"))
    assert len(batch.events) == 1
    assert "not epoch seconds" in batch.warnings[0]


@settings(max_examples=150, deadline=None)
@given(value=json_values())
def test_hostile_values_never_crash_the_parser(value: Any) -> None:
    record = envelope(event={"outer": {"inner": "x"}}, fields={"k": ["v"]})
    for path in list(paths(record)):
        batch = run(replaced(record, path, value))
        assert not [r for r in reasons(batch) if r.startswith(CRASHED)], (path, value)
        assert len(batch.events) + len(batch.dead_letters) == 1
