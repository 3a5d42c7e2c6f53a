"""Lumberjack frames written by hand over a loopback socket to an in-process listener.

The listener runs over a real DuckDB store wrapped so that a test can hold commits back:
that is how "no ACK before the window is durable" and overload are observed without timing.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
import threading
import zlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest

from keelwatch.auth import TokenStore
from keelwatch.ingest.metrics import Metrics
from keelwatch.ingest.service import IngestLimits, IngestService
from keelwatch.ingest.writer import BatchWriter
from keelwatch.parsers.base import Batch
from keelwatch.sources.base import Intake, ListenerSettings
from keelwatch.sources.lumberjack import LumberjackListener
from keelwatch.store.duckdb_store import DuckDBStore

from ..server_process import free_port


class GatedStore(DuckDBStore):
    """A real store whose commits wait while the gate is closed."""

    def __init__(self, data: Path) -> None:
        super().__init__(data)
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Event()

    def append(self, batch: Batch) -> None:
        self.entered.set()
        self.gate.wait(timeout=120)
        super().append(batch)

    def count(self, table: str = "events") -> int:
        return int(self.sql(f"SELECT count(*) FROM {table}").rows[0][0])


@dataclass
class Harness:
    store: GatedStore
    intake: Intake
    port: int
    clients: list[asyncio.StreamWriter] = field(default_factory=list)

    async def connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        self.clients.append(writer)
        return reader, writer

    async def disconnect(self) -> None:
        for writer in self.clients:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    def rejected(self, reason: str) -> int:
        return self.intake.metrics.value(
            "keelwatch_requests_rejected_total", protocol="lumberjack", reason=reason
        )


@contextlib.asynccontextmanager
async def running(
    tmp_path: Path,
    *,
    max_queue_events: int = 500_000,
    keepalive_seconds: float = 5.0,
    **settings: Any,
) -> AsyncIterator[Harness]:
    store = GatedStore(tmp_path)
    writer = BatchWriter(store, max_queue_events=max_queue_events)
    writer.start()
    service = IngestService(writer, Metrics(), IngestLimits())
    port = free_port()
    intake = Intake(
        service,
        TokenStore(tmp_path),
        auth_required=False,
        listeners=ListenerSettings(lumberjack_port=port, **settings),
    )
    listener = LumberjackListener(intake, port=port, keepalive_seconds=keepalive_seconds)
    await listener.start()
    harness = Harness(store, intake, port)
    try:
        yield harness
    finally:
        store.gate.set()
        await harness.disconnect()
        await listener.stop()
        await asyncio.to_thread(writer.stop)
        service.close()
        store.close()


# -- frames, written independently of the server's codec ---------------------------------


def window(size: int) -> bytes:
    return b"2W" + struct.pack(">I", size)


def json_frame(seq: int, event: dict[str, Any] | bytes) -> bytes:
    payload = event if isinstance(event, bytes) else orjson.dumps(event)
    return b"2J" + struct.pack(">II", seq, len(payload)) + payload


def compressed(inner: bytes) -> bytes:
    payload = zlib.compress(inner)
    return b"2C" + struct.pack(">I", len(payload)) + payload


def data_frame(seq: int, pairs: dict[str, str]) -> bytes:
    out = b"2D" + struct.pack(">II", seq, len(pairs))
    for key, value in pairs.items():
        for text in (key.encode(), value.encode()):
            out += struct.pack(">I", len(text)) + text
    return out


def line(n: int) -> dict[str, Any]:
    return {"message": f"line {n}", "stream": "stdout", "@timestamp": "2026-03-01T10:00:00Z"}


async def read_ack(reader: asyncio.StreamReader) -> int:
    frame = await reader.readexactly(6)
    assert frame[:2] == b"2A", frame
    return int(struct.unpack(">I", frame[2:])[0])


async def final_ack(reader: asyncio.StreamReader) -> int:
    """The first ACK that is not a keepalive (0: nothing of the window durable yet)."""
    while (seq := await read_ack(reader)) == 0:
        pass
    return seq


async def closed(reader: asyncio.StreamReader) -> bool:
    """True once the server closed the connection without sending anything more."""
    try:
        return await reader.read(64) == b""
    except ConnectionResetError:
        return True


def run(scenario: Any) -> None:
    asyncio.run(scenario)


# -- the happy paths ------------------------------------------------------------------------


def test_plain_json_frames_are_stored_then_acked(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with running(tmp_path) as harness:
            reader, writer = await harness.connect()
            writer.write(window(3) + b"".join(json_frame(n, line(n)) for n in (1, 2, 3)))
            assert await read_ack(reader) == 3
            assert harness.store.count() == 3

    run(scenario())


def test_nested_compressed_frames(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with running(tmp_path) as harness:
            reader, writer = await harness.connect()
            inner = compressed(json_frame(2, line(2)) + json_frame(3, line(3)))
            writer.write(window(4) + compressed(json_frame(1, line(1)) + inner))
            writer.write(compressed(json_frame(4, line(4))))
            assert await read_ack(reader) == 4
            rows = harness.store.sql("SELECT message FROM events ORDER BY message").rows
            assert [r[0] for r in rows] == ["line 1", "line 2", "line 3", "line 4"]

    run(scenario())


def test_pipelined_windows_are_acked_in_order(tmp_path: Path) -> None:
    """go-lumber numbers each window from 1; the ACK is the window's last sequence number."""

    async def scenario() -> None:
        async with running(tmp_path) as harness:
            reader, writer = await harness.connect()
            first = window(3) + compressed(b"".join(json_frame(n, line(n)) for n in (1, 2, 3)))
            second = window(2) + compressed(json_frame(1, line(4)) + json_frame(2, line(5)))
            writer.write(first + second)
            assert [await read_ack(reader), await read_ack(reader)] == [3, 2]
            assert harness.store.count() == 5

    run(scenario())


def test_ack_only_after_durable_with_keepalives_meanwhile(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with running(tmp_path, keepalive_seconds=0.05) as harness:
            harness.store.gate.clear()
            reader, writer = await harness.connect()
            writer.write(
                window(5) + compressed(b"".join(json_frame(n, line(n)) for n in range(1, 6)))
            )
            await asyncio.to_thread(harness.store.entered.wait, 60)
            # While the commit is held back only keepalives (nothing durable yet: 0) arrive.
            for _ in range(3):
                assert await read_ack(reader) == 0
            assert harness.store.count() == 0
            harness.store.gate.set()
            assert await final_ack(reader) == 5
            assert harness.store.count() == 5

    run(scenario())


def test_overload_holds_the_ack_and_retries_without_dropping(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with running(tmp_path, max_queue_events=1, keepalive_seconds=0.05) as harness:
            harness.store.gate.clear()
            reader_a, writer_a = await harness.connect()
            writer_a.write(window(1) + json_frame(1, line(1)))
            await asyncio.to_thread(harness.store.entered.wait, 60)
            reader_b, writer_b = await harness.connect()
            writer_b.write(window(2) + compressed(json_frame(1, line(2)) + json_frame(2, line(3))))
            while harness.rejected("overloaded") == 0:
                assert await read_ack(reader_b) == 0  # keepalives only: nothing acked early
            harness.store.gate.set()
            assert await final_ack(reader_a) == 1
            assert await final_ack(reader_b) == 2
            assert harness.store.count() == 3

    run(scenario())


def test_bad_json_is_dead_lettered_and_its_neighbours_stored(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with running(tmp_path) as harness:
            reader, writer = await harness.connect()
            frames = json_frame(1, line(1)) + json_frame(2, b'{"message": ') + json_frame(3, b"[1]")
            writer.write(window(4) + compressed(frames + json_frame(4, line(4))))
            assert await read_ack(reader) == 4
            rows = harness.store.sql("SELECT message FROM events ORDER BY message").rows
            assert [r[0] for r in rows] == ["line 1", "line 4"]
            letters = harness.store.sql("SELECT reason, raw FROM dead_letters ORDER BY raw").rows
            assert [bytes(r[1]) for r in letters] == [b"[1]", b'{"message": ']
            assert "not list" in letters[0][0]
            assert "invalid JSON" in letters[1][0]

    run(scenario())


def test_legacy_data_frames(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with running(tmp_path) as harness:
            reader, writer = await harness.connect()
            pairs = {"line": "from a forwarder", "stream": "stderr", "file": "/var/log/x.log"}
            writer.write(window(1) + data_frame(7, pairs))
            assert await read_ack(reader) == 7
            rows = harness.store.sql("SELECT message, doc->>'log.iostream' FROM events").rows
            assert rows == [("from a forwarder", "stderr")]

    run(scenario())


def test_listener_source_hint_names_the_parser(tmp_path: Path) -> None:
    async def scenario() -> None:
        hint = {"lumberjack": "container"}
        async with running(tmp_path, source_hint=hint) as harness:
            reader, writer = await harness.connect()
            writer.write(window(1) + json_frame(1, {"message": "no stream key here"}))
            assert await read_ack(reader) == 1
            assert harness.store.sql("SELECT dataset FROM events").rows == [
                ("kubernetes.container_logs",)
            ]

    run(scenario())


# -- hostile input: the connection is closed and the reason counted ---------------------


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"GET / HTTP/1.1\r\n\r\n", "unknown_version"),
        (b"3W\x00\x00\x00\x01", "unknown_version"),
        (window(1) + b"2Z\x00\x00\x00\x01", "unknown_frame_type"),
        (b"2A\x00\x00\x00\x01", "unexpected_ack"),
        (json_frame(1, line(1)), "data_outside_window"),
        (window(1_000_000), "window_too_many_events"),
        (window(1) + compressed(json_frame(1, line(1)) + json_frame(2, line(2))), "window_overrun"),
        (window(2) + json_frame(1, line(1)) + window(1), "window_incomplete"),
        (window(1) + b"2C\x00\x00\x00\x07garbage", "bad_compression"),
        (window(1) + compressed(window(1)), "window_in_compressed"),
        (window(1) + compressed(json_frame(1, line(1))[:-2]), "truncated_frame"),
    ],
)
def test_bad_frames_close_the_connection(tmp_path: Path, payload: bytes, reason: str) -> None:
    async def scenario() -> None:
        async with running(tmp_path) as harness:
            reader, writer = await harness.connect()
            writer.write(payload)
            assert await closed(reader)
            assert harness.rejected(reason) == 1
            assert harness.store.count() == 0
            # The listener itself is unharmed.
            reader, writer = await harness.connect()
            writer.write(window(1) + json_frame(1, line(1)))
            assert await read_ack(reader) == 1

    run(scenario())


def test_oversize_frame_is_refused_before_its_payload(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with running(tmp_path, max_frame_bytes=4096) as harness:
            reader, writer = await harness.connect()
            writer.write(window(1) + b"2J" + struct.pack(">II", 1, 10_000_000))
            assert await closed(reader)
            assert harness.rejected("frame_too_large") == 1

    run(scenario())


def test_zlib_bomb_stops_at_the_frame_limit(tmp_path: Path) -> None:
    bomb = zlib.compress(b"\0" * (64 * 1024 * 1024), 9)  # 64 MiB from about 64 KiB

    async def scenario() -> None:
        async with running(tmp_path, max_frame_bytes=1024 * 1024) as harness:
            reader, writer = await harness.connect()
            writer.write(window(1) + b"2C" + struct.pack(">I", len(bomb)) + bomb)
            assert await closed(reader)
            assert harness.rejected("decompressed_too_large") == 1
            assert harness.store.count() == 0

    assert len(bomb) < 1024 * 1024
    run(scenario())


def test_compression_nesting_is_bounded(tmp_path: Path) -> None:
    nested = json_frame(1, line(1))
    for _ in range(5):
        nested = compressed(nested)

    async def scenario() -> None:
        async with running(tmp_path) as harness:
            reader, writer = await harness.connect()
            writer.write(window(1) + nested)
            assert await closed(reader)
            assert harness.rejected("compression_nesting") == 1

    run(scenario())


def test_connections_per_client_are_limited(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with running(tmp_path, max_connections_per_client=1) as harness:
            reader_a, writer_a = await harness.connect()
            writer_a.write(window(1) + json_frame(1, line(1)))
            assert await read_ack(reader_a) == 1  # the first connection is being served
            reader_b, _ = await harness.connect()
            assert await closed(reader_b)
            assert harness.rejected("too_many_connections") == 1
            writer_a.write(window(1) + json_frame(1, line(2)))
            assert await read_ack(reader_a) == 1

    run(scenario())


def test_a_stalled_window_times_out(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with running(tmp_path, idle_timeout_seconds=0.2) as harness:
            reader, writer = await harness.connect()
            writer.write(window(2) + json_frame(1, line(1)))
            assert await closed(reader)
            assert harness.rejected("idle_timeout") == 1
            assert harness.store.count() == 0  # never acknowledged, so never half-stored

    run(scenario())
