"""tracee: recognition, detections as alerts, severity words, hostile values."""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings

from keelwatch.model.severity import CRITICAL, HIGH, LOW
from keelwatch.parsers import tracee
from keelwatch.parsers.base import Parser
from keelwatch.parsers.registry import recognise

from .helpers import json_values, parse_records, reasons

PARSER = Parser(tracee.NAME, tracee.DATASET, tracee.DESCRIPTION, tracee.matches, tracee.parse)
run = partial(parse_records, PARSER)
GOLDEN = Path(__file__).parent / "golden" / "tracee"


def records(case: str) -> list[dict[str, Any]]:
    lines = (GOLDEN / f"{case}.input.ndjson").read_bytes().splitlines()
    return [orjson.loads(line) for line in lines]


def test_auto_recognises_both_shapes_as_tracee() -> None:
    for record in records("legacy") + records("v1beta1"):
        parser = recognise(record)
        assert parser is not None and parser.name == "tracee"


def test_signature_detections_are_alerts_and_plain_events_are_not() -> None:
    kinds = [e["event.kind"] for e in run(*records("legacy"), *records("v1beta1")).events]
    assert kinds == ["alert", "event", "event", "alert"]


def test_severity_words_and_out_of_range_numbers() -> None:
    detection = records("v1beta1")[1]
    for given_severity, expected in (("HIGH", HIGH), ("low", LOW), (7, CRITICAL)):
        detection["threat"]["severity"] = given_severity
        assert run(detection).events[0]["event.severity"] == expected
    detection["threat"]["severity"] = "dire"
    batch = run(detection)
    assert "event.severity" not in batch.events[0] and "severity" in batch.warnings[0]


def test_an_event_without_a_name_is_dead_lettered() -> None:
    record = records("legacy")[1]
    record["eventName"] = ""
    batch = run(record)
    assert batch.events == [] and "eventName" in reasons(batch)[0]


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(value=json_values())
def test_any_value_in_any_field_is_an_event_or_a_dead_letter(value: Any) -> None:
    for record in records("legacy") + records("v1beta1"):
        for key in list(record):
            hostile = {**record, key: value}
            batch = run(hostile)
            assert len(batch.events) + len(batch.dead_letters) == 1
