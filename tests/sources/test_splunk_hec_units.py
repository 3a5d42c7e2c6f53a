"""Splunk HEC pieces without a server: envelope streams, ack channels, acks switched off."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import httpx
import orjson
import pytest
from starlette.applications import Starlette

from keelwatch.auth import TokenStore
from keelwatch.ingest.metrics import Metrics
from keelwatch.ingest.service import IngestLimits, IngestService
from keelwatch.ingest.writer import BatchWriter
from keelwatch.sources.base import Intake
from keelwatch.sources.splunk_hec import routes
from keelwatch.sources.splunk_hec_acks import AckChannels, channel_id
from keelwatch.sources.splunk_hec_events import (
    EVENT_REQUIRED,
    INVALID_DATA_FORMAT,
    Defaults,
    epoch_seconds,
    route_events,
    route_raw_lines,
)
from keelwatch.store.duckdb_store import DuckDBStore

# -- envelope streams ----------------------------------------------------------------------


def test_envelopes_back_to_back_with_and_without_whitespace() -> None:
    body = b'{"event":"a"}{"event":"b"}\n\n {"event":"c"}\t[{"event":"d"},{"event":"e"}]'
    routed = route_events(body, Defaults())
    assert [r["event"] for r in routed.records] == ["a", "b", "c", "d", "e"]
    assert routed.error is None and routed.dead_letters == []


def test_a_braces_inside_strings_do_not_split_envelopes() -> None:
    body = b'{"event":"}{ not a boundary \\" }{"}{"event":{"nested":"{}"}}'
    routed = route_events(body, Defaults())
    assert [r["event"] for r in routed.records] == ['}{ not a boundary " }{', {"nested": "{}"}]


def test_request_defaults_fill_what_the_envelope_lacks() -> None:
    defaults = Defaults(host="h", sourcetype="st", time_seconds=5.0, channel="c")
    [own, defaulted] = route_events(
        b'{"event":"x","host":"mine","time":7}{"event":"y"}', defaults
    ).records
    assert own == {"event": "x", "time": 7.0, "host": "mine", "sourcetype": "st", "channel": "c"}
    assert defaulted == {"event": "y", "time": 5.0, "host": "h", "sourcetype": "st", "channel": "c"}


def test_a_sourcetype_naming_a_parser_becomes_a_loose_hint() -> None:
    [hinted, plain] = route_events(
        b'{"event":"x","sourcetype":"falco:alerts"}{"event":"y","sourcetype":"nginx"}',
        Defaults(),
    ).records
    assert hinted["hint"] == {"parser": "falco", "strict": False}
    assert "hint" not in plain


def test_an_invalid_envelope_inside_an_array_keeps_the_rest_of_the_array() -> None:
    body = b'[{"event":"a"},{"no":"event"},{"event":"c"}]{"event":"d"}'
    routed = route_events(body, Defaults())
    assert [r["event"] for r in routed.records] == ["a"]
    assert (routed.error, routed.invalid_event_number) == (EVENT_REQUIRED, 1)
    [(bad, reason), (rest, why)] = routed.dead_letters
    assert orjson.loads(bad) == {"no": "event"} and reason == "HEC event 1: no event field"
    assert rest == b'{"event":"c"}{"event":"d"}' and "not read" in why


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b'{"event":"ok"}{"event":NaN}', "invalid JSON"),
        (b'{"event":"ok"}{"event":"' + b"\xff\xfe" + b'"}', "not valid UTF-8"),
        (b'{"event":"ok"}{"event":"\\udc00"}', "lone surrogate"),
        (b'{"event":"ok"}' + b"[" * 100_000 + b"]" * 100_000, "invalid JSON"),
        (b'{"event":"ok"}{"event":' + b"9" * 5000 + b"}", "invalid JSON"),
        (b'{"event":"ok"}{"event":"x"', "invalid JSON"),
    ],
)
def test_undecodable_envelopes_are_dead_lettered_byte_exact(body: bytes, reason: str) -> None:
    routed = route_events(body, Defaults())
    assert [r["event"] for r in routed.records] == ["ok"]
    assert (routed.error, routed.invalid_event_number) == (INVALID_DATA_FORMAT, 1)
    [(raw, why)] = routed.dead_letters
    assert raw == body[len(b'{"event":"ok"}') :]
    assert why.startswith("HEC event 1: ") and reason in why


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (1767225600, 1767225600.0),
        (1767225600.125, 1767225600.125),
        ("1767225600.5", 1767225600.5),
        ("  12 ", 12.0),
        ("nan", None),
        ("inf", None),
        (-1, None),
        (True, None),
        ("2026-01-01T00:00:00Z", None),
        ("1" * 40, None),
    ],
)
def test_epoch_seconds(value: object, seconds: float | None) -> None:
    assert epoch_seconds(value) == seconds


def test_raw_lines_skip_blank_ones_and_keep_bad_bytes_visible() -> None:
    routed = route_raw_lines(b"a\r\n\r\n   \nb \xff\n", Defaults(source="s"))
    assert routed.records == [{"event": "a", "source": "s"}, {"event": "b \ufffd", "source": "s"}]


# -- ack channels --------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_channel_ids_are_guids_in_canonical_form() -> None:
    guid = uuid.uuid4()
    assert channel_id(str(guid).upper()) == str(guid)
    assert channel_id("{" + str(guid) + "}") == str(guid)
    assert channel_id(guid.hex) == str(guid)
    for bad in ("", "channel-1", "x" * 65, str(guid) + "0"):
        assert channel_id(bad) is None


def test_ack_ids_increase_per_channel_and_are_true_once_issued() -> None:
    acks = AckChannels(clock=Clock())
    assert [acks.issue("a"), acks.issue("a"), acks.issue("b"), acks.issue("a")] == [0, 1, 0, 2]
    assert acks.query("a", [0, 2, 3, -1]) == {"0": True, "2": True, "3": False, "-1": False}
    assert acks.query("b", [0, 1]) == {"0": True, "1": False}
    assert acks.query("c", [0]) is None


def test_idle_channels_expire() -> None:
    clock = Clock()
    acks = AckChannels(idle_expiry_seconds=60, clock=clock)
    acks.issue("old")
    clock.now += 30
    acks.issue("young")
    clock.now += 40  # "old" idle for 70 s, "young" for 40 s
    assert acks.query("old", [0]) is None
    assert acks.query("young", [0]) == {"0": True}
    assert len(acks) == 1


def test_the_least_recently_used_channel_goes_first_when_full() -> None:
    clock = Clock()
    acks = AckChannels(max_channels=2, clock=clock)
    acks.issue("a")
    acks.issue("b")
    acks.query("a", [0])  # "a" is used again: "b" is now the oldest
    acks.issue("c")
    assert acks.query("b", [0]) is None
    assert acks.query("a", [0]) == {"0": True} and acks.query("c", [0]) == {"0": True}
    assert (len(acks), acks.evicted) == (2, 1)


# -- acks switched off ---------------------------------------------------------------------


def test_without_acks_requests_get_no_ack_id_and_the_ack_endpoint_says_so(
    tmp_path: Path,
) -> None:
    store = DuckDBStore(tmp_path)
    writer = BatchWriter(store)
    service = IngestService(writer, Metrics(), IngestLimits())
    intake = Intake(service, TokenStore(tmp_path), auth_required=False)
    app = Starlette(routes=routes(intake, acks_enabled=False))
    channel = str(uuid.uuid4())

    async def scenario() -> tuple[httpx.Response, httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://hec") as client:
            sent = await client.post(
                "/services/collector/event",
                content=b'{"event":"no acks"}',
                headers={"X-Splunk-Request-Channel": channel},
            )
            asked = await client.post(
                "/services/collector/ack", content=b'{"acks":[0]}', params={"channel": channel}
            )
            return sent, asked

    writer.start()
    try:
        sent, asked = asyncio.run(scenario())
    finally:
        writer.stop()
        service.close()
        store.close()
    assert (sent.status_code, sent.json()) == (200, {"text": "Success", "code": 0})
    assert (asked.status_code, asked.json()) == (400, {"text": "ACK is disabled", "code": 14})
