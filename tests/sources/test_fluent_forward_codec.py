"""Fluent forward decoding, framing and handshake, without sockets."""

from __future__ import annotations

import asyncio
import gzip
import hashlib
from typing import Any

import msgpack
import pytest

from keelwatch.sources.fluent_forward import _EOF, FrameReader, prepare
from keelwatch.sources.fluent_forward_codec import (
    FrameRefused,
    Handshake,
    Message,
    classify,
    expand,
    gunzip_members,
    new_unpacker,
)

from ..fixtures import audit_event
from .fluent_forward_helpers import CONTAINER_TAG, container_line, entries, event_time


def decoded(value: Any) -> Any:
    """``value`` as the server sees it: packed, then unpacked with the server's settings."""
    unpacker = new_unpacker(1 << 20, 1 << 20)
    unpacker.feed(msgpack.packb(value))
    return next(unpacker)


def classified(value: Any) -> Message:
    message = classify(decoded(value))
    assert message is not None
    return message


def test_modes_are_told_apart() -> None:
    record = {"log": "x"}
    assert classified(["t", 1, record]).mode == "message"
    assert classified(["t", event_time(1, 2), record, {"chunk": "c"}]).chunk == "c"
    assert classified(["t", [[1, record]]]).mode == "forward"
    assert classified(["t", entries([(1, record)]), {"size": 1}]).mode == "packed"
    gz = classified(["t", b"..", {"compressed": "gzip"}])
    assert (gz.mode, gz.compression) == ("compressed", "gzip")
    # fluent-logger for Node.js labels uncompressed PackedForward "text".
    assert classified(["t", b"..", {"compressed": "text"}]).mode == "packed"
    assert classify(None) is None  # keep-alive


@pytest.mark.parametrize(
    "value", [42, "tag", ["tag"], [1, 2, 3], ["t", 1], ["t", [], {}, "extra"], {"a": 1}]
)
def test_what_is_not_a_forward_message_is_refused(value: Any) -> None:
    with pytest.raises(FrameRefused) as refused:
        classify(decoded(value))
    assert refused.value.reason == "not a forward message"


def test_event_time_keeps_nanoseconds_and_integer_times_stay_integers() -> None:
    message = classified(["t", [[event_time(1767261600, 123456789), {}], [1767261600, {}]]])
    (first, _), (second, _) = expand(message, 1 << 20, 48).entries
    assert first == pytest.approx(1767261600.123456789, abs=1e-6)
    assert second == 1767261600 and type(second) is int


def test_bytes_become_text_and_foreign_ext_values_strings() -> None:
    record = {b"bin-key": b"caf\xc3\xa9", "bad": b"\xff", "ext": msgpack.ExtType(5, b"\x01")}
    message = classified(["t", [[1, record]]])
    [(_, plain)] = expand(message, 1 << 20, 48).entries
    assert plain == {"bin-key": "café", "bad": "\ufffd", "ext": "ext:5:01"}


def test_bad_entries_are_dead_lettered_beside_good_ones() -> None:
    deep: Any = {"x": 1}
    for _ in range(60):
        deep = {"x": deep}
    message = classified(["t", [[1, {"ok": 1}], [1, deep], [None, {}], "text", [2, {"ok": 2}]]])
    out = expand(message, 1 << 20, 48)
    assert [record for _, record in out.entries] == [{"ok": 1}, {"ok": 2}]
    assert [reason for _, reason in out.dead_letters] == [
        "record nested deeper than 48 levels",
        "event time is nil, not an integer or EventTime",
        "entry is a string, not [time, record]",
    ]


def test_packed_entries_keep_what_decodes_before_damage() -> None:
    good = entries([(1, {"n": 1}), (2, {"n": 2})])
    truncated = expand(Message("t", "packed", good + good[:5]), 1 << 20, 48)
    assert len(truncated.entries) == 2
    assert truncated.dead_letters == [(good[:5], "packed entries end in a truncated entry")]
    garbage = expand(Message("t", "packed", good + b"\xc1\x00"), 1 << 20, 48)
    assert len(garbage.entries) == 2
    assert garbage.dead_letters[0][0] == b"\xc1\x00"
    assert garbage.dead_letters[0][1].startswith("packed entries undecodable")


def test_gzip_members_are_read_in_turn_and_bounded() -> None:
    one, two = gzip.compress(b"a" * 100), gzip.compress(b"b" * 100)
    assert gunzip_members(one + two, 1000) == (b"a" * 100 + b"b" * 100, b"", "")
    output, rest, failure = gunzip_members(one + two[:-4], 1000)
    assert (output, rest) == (b"a" * 100, two[:-4])
    assert "truncated" in failure
    output, rest, failure = gunzip_members(one + two, 150)
    assert output == b"a" * 100 and "larger than 150 bytes" in failure
    assert "do not decompress" in gunzip_members(b"\x1f\x8bnot gzip", 1000)[2]


def test_unsupported_compression_is_dead_lettered() -> None:
    message = classified(["t", b"\x28\xb5\x2f\xfd", {"compressed": "zstd"}])
    out = expand(message, 1 << 20, 48)
    assert out.entries == []
    assert out.dead_letters == [(b"\x28\xb5\x2f\xfd", "unsupported compression 'zstd'; send gzip")]


# -- handshake --------------------------------------------------------------------------------


def test_handshake_accepts_the_key_and_proves_its_own() -> None:
    handshake = Handshake(b"secret", "keelwatch-test")
    helo = decoded(msgpack.unpackb(handshake.helo()))
    nonce = helo[1][b"nonce"]
    salt, host = b"salt", b"client"
    digest = hashlib.sha512(salt + host + nonce + b"secret").hexdigest()
    pong, failure = handshake.answer(decoded(["PING", host, salt, digest, "", ""]))
    assert failure == ""
    answer = msgpack.unpackb(pong)
    proof = hashlib.sha512(salt + b"keelwatch-test" + nonce + b"secret").hexdigest()
    assert answer == ["PONG", True, "", "keelwatch-test", proof]


@pytest.mark.parametrize(
    ("ping", "reason"),
    [
        (["PING", "client", "salt", "0" * 128, "", ""], "shared_key mismatch"),
        (["PING", "client", "salt"], "expected a PING message"),
        (["PONG", "client", "salt", "x"], "expected a PING message"),
        (["PING", 1, "salt", "x", "", ""], "PING hostname, salt and digest must be strings"),
    ],
)
def test_handshake_refuses_bad_pings(ping: list[Any], reason: str) -> None:
    pong, failure = Handshake(b"secret", "keelwatch-test").answer(decoded(ping))
    assert failure == reason
    assert msgpack.unpackb(pong) == ["PONG", False, reason, "keelwatch-test", ""]


def test_a_nonce_is_never_reused() -> None:
    assert Handshake(b"k", "h").nonce != Handshake(b"k", "h").nonce


# -- framing ------------------------------------------------------------------------------------


async def read_all(data: bytes, max_frame_bytes: int) -> list[Any]:
    reader = asyncio.StreamReader()
    reader.feed_data(data)
    reader.feed_eof()
    frames = FrameReader(reader, max_frame_bytes, 30.0)
    values: list[Any] = []
    while (value := await frames.next()) is not _EOF:
        values.append(value)
    return values


def test_frames_up_to_the_limit_pass_and_one_byte_more_is_refused() -> None:
    exact = msgpack.packb(["t", "x" * 95])  # 100 bytes
    assert len(exact) == 100
    assert len(asyncio.run(read_all(exact * 5, 100))) == 5  # several per read: no false refusal
    with pytest.raises(FrameRefused) as refused:
        asyncio.run(read_all(exact + msgpack.packb(["t", "x" * 96]), 100))
    assert refused.value.reason == "frame too large"


def test_a_frame_cut_short_by_the_client_is_reported() -> None:
    with pytest.raises(FrameRefused) as refused:
        asyncio.run(read_all(msgpack.packb(["t", "x" * 50])[:-3], 1000))
    assert refused.value.reason == "truncated frame"


# -- shaping records for the parsers ------------------------------------------------------------


def test_records_are_shaped_for_the_parser_that_reads_them() -> None:
    audit = audit_event()
    message = classified(["app", [[7, container_line("hi")], [8, audit], [9, {"other": 1}]]])
    records, dead = prepare([message], "auto", 1 << 20, 49)
    assert dead == []
    # container logs: the Fluent Bit [time, record] pair, with the tag kept
    assert records[0] == [7, {**container_line("hi"), "fluent.tag": "app"}]
    assert records[1] == audit  # an audit event reads its own times: unchanged
    assert records[2] == [9, {"other": 1, "fluent.tag": "app"}]  # unknown: keep time and tag
    fixed, _ = prepare([classified([CONTAINER_TAG, [[7, audit]]])], "k8s-audit", 1 << 20, 49)
    assert fixed == [audit]
