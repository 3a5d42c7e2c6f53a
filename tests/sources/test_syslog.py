"""Syslog listeners: raw sockets against in-process listeners, and the framer on its own.

Frames and datagrams are written by hand (independently of the server's framer) to loopback
listeners over a real DuckDB store that a test can hold closed to provoke overload. TLS uses a
CA, a server and client certificates made with the openssl command line (syslog_pki).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from keelwatch.auth import TokenStore
from keelwatch.errors import ConfigError
from keelwatch.ingest.metrics import Metrics
from keelwatch.ingest.service import IngestLimits, IngestService
from keelwatch.ingest.writer import BatchWriter
from keelwatch.sources.base import Intake, ListenerSettings, TLSFiles
from keelwatch.sources.syslog import SyslogTCP, SyslogUDP, listeners
from keelwatch.sources.syslog_framing import Framer
from keelwatch.store.duckdb_store import DuckDBStore

from ..overload import GatedStore
from ..server_process import free_port, make_server
from .syslog_pki import make_pki


class SyslogStore(GatedStore):
    """The gated store, open until a test closes it, with the queries these tests ask."""

    def __init__(self, data: Path) -> None:
        super().__init__(data, gate_open=True, wait_seconds=120)

    def rows(self, query: str) -> list[Any]:
        return [row[0] if len(row) == 1 else row for row in self.sql(query).rows]

    def count(self, table: str = "events") -> int:
        return int(self.rows(f"SELECT count(*) FROM {table}")[0])

    def messages(self) -> list[str]:
        return sorted(self.rows("SELECT doc->>'message' FROM events"))

    def reasons(self) -> list[str]:
        return sorted(self.rows("SELECT reason FROM dead_letters"))


@dataclass
class Harness:
    store: SyslogStore
    intake: Intake
    port: int

    def rejected(self, protocol: str, reason: str) -> int:
        return self.intake.metrics.value(
            "keelwatch_requests_rejected_total", protocol=protocol, reason=reason
        )

    async def until(self, condition: Callable[[], bool]) -> None:
        """Wait for a condition the listener will reach (the pytest timeout bounds it)."""
        while not await asyncio.to_thread(condition):
            await asyncio.sleep(0.02)


@contextlib.asynccontextmanager
async def running(
    tmp_path: Path,
    kind: str = "tcp",
    *,
    tls: ssl.SSLContext | None = None,
    max_queue_events: int = 500_000,
    max_pending_messages: int = 50_000,
    **options: Any,
) -> AsyncIterator[Harness]:
    store = SyslogStore(tmp_path)
    writer = BatchWriter(store, max_queue_events=max_queue_events)
    writer.start()
    service = IngestService(writer, Metrics(), IngestLimits())
    port = free_port()
    intake = Intake(
        service, TokenStore(tmp_path), auth_required=False, listeners=ListenerSettings(**options)
    )
    listener: SyslogTCP | SyslogUDP
    if kind == "udp":
        listener = SyslogUDP(intake, "127.0.0.1", port, max_pending_messages=max_pending_messages)
    else:
        listener = SyslogTCP(intake, "127.0.0.1", port, tls)
    await listener.start()
    try:
        yield Harness(store, intake, port)
    finally:
        store.gate.set()
        await listener.stop()
        await asyncio.to_thread(writer.stop)
        service.close()
        store.close()


def counted(message: bytes) -> bytes:
    return str(len(message)).encode() + b" " + message


def rfc5424(n: int, text: str = "message") -> bytes:
    return f"<14>1 2026-03-01T10:00:00Z node-{n} app {n} - - {text} {n}".encode()


async def closed(reader: asyncio.StreamReader) -> bool:
    try:
        return await reader.read(64) == b""
    except (ConnectionResetError, ssl.SSLError):
        return True


# -- TCP framing ------------------------------------------------------------------------------


def test_both_framings_on_one_connection_are_stored(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with running(tmp_path) as harness:
            _, writer = await asyncio.open_connection("127.0.0.1", harness.port)
            stream = (
                counted(rfc5424(1, "octet\ncounted with a newline inside"))
                + b"<13>Mar  1 10:00:00 node-2 app[2]: newline framed 2\n"
                + counted(rfc5424(3))
                + b"\n"  # some senders end octet-counted frames with a newline too
                + b"<13>Mar  1 10:00:00 node-4 app: crlf 4\r\n"
                + counted(rfc5424(5))
            )
            for at in range(0, len(stream), 7):  # frames cut across reads
                writer.write(stream[at : at + 7])
                await writer.drain()
            writer.write(b"<13>Mar  1 10:00:00 node-6 app: last line, no newline 6")
            writer.close()
            await harness.until(lambda: harness.store.count() == 6)
            assert harness.store.messages() == [
                "crlf 4",
                "last line, no newline 6",
                "message 3",
                "message 5",
                "newline framed 2",
                "octet\ncounted with a newline inside 1",
            ]
            (doc,) = harness.store.rows("SELECT doc FROM events WHERE doc->>'host.name' = 'node-2'")
            fields = orjson.loads(doc)
            assert fields["network.transport"] == "tcp"
            assert fields["log.source.address"].startswith("127.0.0.1:")
            assert fields["process.pid"] == 2

    asyncio.run(scenario())


def test_garbage_and_oversized_frames_are_dead_lettered_between_good_ones(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with running(tmp_path, max_frame_bytes=200) as harness:
            _, writer = await asyncio.open_connection("127.0.0.1", harness.port)
            writer.write(
                counted(rfc5424(1))
                + b"1234567890123 digits without a length\n"
                + counted(rfc5424(2))
                + b"999 " + b"x" * 999  # declared over the limit: skipped to its end
                + counted(rfc5424(3))
                + b"<13>" + b"y" * 500 + b"\n"  # a line over the limit
                + b"<13>not syslog at all\x00\xff\n"  # stored as a headerless 3164 message
                + b"<999>1 bad PRI\n"
                + counted(rfc5424(4))
            )  # fmt: skip
            writer.close()
            await harness.until(lambda: harness.store.count("dead_letters") == 4)
            await harness.until(lambda: harness.store.count() == 5)
            assert sorted(harness.store.messages())[:4] == [f"message {n}" for n in (1, 2, 3, 4)]
            reasons = harness.store.reasons()
            assert reasons[0] == "PRI 999 is out of range (0-191)"
            assert reasons[1].startswith("bad-frame: a frame starting with a digit")
            assert reasons[2] == "frame-too-large: a line longer than the 200-byte frame limit"
            assert reasons[3] == "frame-too-large: octet count 999 is over the 200-byte frame limit"
            for reason in ("bad-frame", "frame-too-large"):
                assert harness.rejected("syslog-tcp", reason) == (1 if reason == "bad-frame" else 2)

    asyncio.run(scenario())


def test_idle_connection_is_closed_and_partial_line_kept(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with running(tmp_path, idle_timeout_seconds=0.3) as harness:
            reader, writer = await asyncio.open_connection("127.0.0.1", harness.port)
            writer.write(b"<13>Mar  1 10:00:00 node app: no newline before going quiet")
            assert await closed(reader)
            assert harness.rejected("syslog-tcp", "idle-timeout") == 1
            await harness.until(lambda: harness.store.count() == 1)
            writer.close()

    asyncio.run(scenario())


def test_connections_over_the_limit_wait_and_beyond_that_are_refused(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with running(tmp_path, max_connections_per_client=2) as harness:
            opened = []
            for n in (1, 2):
                reader, writer = await asyncio.open_connection("127.0.0.1", harness.port)
                writer.write(counted(rfc5424(n)))
                opened.append((reader, writer))
            await harness.until(lambda: harness.store.count() == 2)  # both are being served
            # Over the limit: held unread (syslog has no acks: closing would lose the data)...
            waiting = []
            for n in (3, 4):
                reader, writer = await asyncio.open_connection("127.0.0.1", harness.port)
                writer.write(counted(rfc5424(n)))
                await writer.drain()
                waiting.append((reader, writer))
            # ...and as many again beyond that are refused, and counted.
            reader, writer = await asyncio.open_connection("127.0.0.1", harness.port)
            assert await closed(reader)
            writer.close()
            assert harness.rejected("syslog-tcp", "too-many-connections") == 1
            assert harness.store.count() == 2
            for _, open_writer in opened:
                open_writer.close()
            await harness.until(lambda: harness.store.count() == 4)  # the waiting ones got in
            for _, waiting_writer in waiting:
                waiting_writer.close()

    asyncio.run(scenario())


def test_overload_stops_reading_then_stores_everything(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with running(tmp_path, max_queue_events=1) as harness:
            harness.store.gate.clear()
            _, first = await asyncio.open_connection("127.0.0.1", harness.port)
            first.write(counted(rfc5424(0)))
            await asyncio.to_thread(harness.store.entered.wait, 60)  # the queue is now full

            sock = socket.create_connection(("127.0.0.1", harness.port))
            sock.setblocking(False)
            padding = "p" * 4000
            sent, pending = 0, b""
            while harness.rejected("syslog-tcp", "overloaded-retry") == 0:
                if not pending:
                    sent += 1
                    pending = counted(rfc5424(sent, padding))
                try:
                    pending = pending[sock.send(pending) :]
                    await asyncio.sleep(0)
                except BlockingIOError:
                    await asyncio.sleep(0.01)
            # The listener is waiting to retry and no longer reads: the socket buffers fill up.
            with pytest.raises(BlockingIOError):
                for _ in range(64 * 1024 * 1024 // 4096):
                    if not pending:
                        sent += 1
                        pending = counted(rfc5424(sent, padding))
                    pending = pending[sock.send(pending) :]
            harness.store.gate.set()
            await asyncio.get_running_loop().sock_sendall(sock, pending)
            sock.close()
            await harness.until(lambda: harness.store.count() == sent + 1)
            assert harness.store.count("dead_letters") == 0
            assert harness.rejected("syslog-tcp", "overloaded") == 0  # TCP never drops
            first.close()

    asyncio.run(scenario())


# -- UDP --------------------------------------------------------------------------------------


def test_datagrams_are_messages(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with running(tmp_path, "udp", max_frame_bytes=300) as harness:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
                target = ("127.0.0.1", harness.port)
                sock.sendto(rfc5424(1, "two\nlines"), target)
                sock.sendto(b"<13>Mar  1 10:00:00 node-2 app: bsd 2\n", target)
                sock.sendto(b"<13>" + b"z" * 400, target)  # over max_frame_bytes
                sock.sendto(b"\n", target)  # nothing in it
                sock.sendto(b"<13>1 garbage", target)
            await harness.until(lambda: harness.store.count() == 2)
            await harness.until(lambda: harness.store.count("dead_letters") == 2)
            assert harness.store.messages() == ["bsd 2", "two\nlines 1"]
            assert harness.store.reasons()[1].startswith("frame-too-large: a datagram of 404")
            assert harness.rejected("syslog-udp", "frame-too-large") == 1
            assert harness.rejected("syslog-udp", "empty-datagram") == 1
            (transport,) = harness.store.rows(
                "SELECT doc->>'network.transport' FROM events LIMIT 1"
            )
            assert transport == "udp"

    asyncio.run(scenario())


def test_udp_drops_past_the_pending_bound_are_counted(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with running(tmp_path, "udp", max_pending_messages=5) as harness:
            harness.store.gate.clear()
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
                target = ("127.0.0.1", harness.port)
                sock.sendto(rfc5424(0), target)
                await asyncio.to_thread(harness.store.entered.wait, 60)  # stuck in the store
                for n in range(1, 21):
                    sock.sendto(rfc5424(n), target)
                await harness.until(lambda: harness.rejected("syslog-udp", "overloaded") == 15)
            harness.store.gate.set()
            await harness.until(lambda: harness.store.count() == 6)
            assert harness.store.messages() == sorted(f"message {n}" for n in range(6))

    asyncio.run(scenario())


# -- TLS (RFC 5425) ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_pki(tmp_path_factory.mktemp("pki"))


def server_context(pki: Path) -> ssl.SSLContext:
    return TLSFiles(pki / "server.pem", pki / "server.key", pki / "ca.pem").server_context()


def client_context(pki: Path, name: str | None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(pki / "ca.pem"))
    if name:
        context.load_cert_chain(pki / f"{name}.pem", pki / f"{name}.key")
    return context


def test_tls_with_a_client_certificate_is_stored(tmp_path: Path, pki: Path) -> None:
    async def scenario() -> None:
        async with running(tmp_path, tls=server_context(pki)) as harness:
            _, writer = await asyncio.open_connection(
                "127.0.0.1", harness.port, ssl=client_context(pki, "relay")
            )
            writer.write(counted(rfc5424(1)) + counted(b"<13>Mar  1 10:00:00 node app: 2"))
            await writer.drain()
            await harness.until(lambda: harness.store.count() == 2)
            subjects = harness.store.rows("SELECT doc->>'tls.client.subject' FROM events")
            assert subjects == ["O=keelwatch,CN=relay"] * 2
            writer.close()

    asyncio.run(scenario())


@pytest.mark.parametrize("client", [None, "stranger"])
def test_tls_clients_without_a_trusted_certificate_are_refused(
    tmp_path: Path, pki: Path, client: str | None
) -> None:
    async def scenario() -> None:
        async with running(tmp_path, tls=server_context(pki)) as harness:
            with contextlib.suppress(ssl.SSLError, ConnectionError):
                reader, writer = await asyncio.open_connection(
                    "127.0.0.1", harness.port, ssl=client_context(pki, client)
                )
                # TLS 1.3 clients learn of the refusal only when they read.
                writer.write(counted(rfc5424(1)))
                await writer.drain()
                assert await closed(reader)
            await harness.until(lambda: harness.rejected("syslog-tls", "tls-handshake-failed") == 1)
            assert harness.store.count() == 0

    asyncio.run(scenario())


# -- configuration ----------------------------------------------------------------------------


@pytest.fixture
def service(tmp_path: Path) -> Iterator[IngestService]:
    store = DuckDBStore(tmp_path)
    ingest = IngestService(BatchWriter(store), Metrics(), IngestLimits())
    yield ingest
    ingest.close()
    store.close()


def _intake(service: IngestService, tmp_path: Path, *, auth: bool, **options: Any) -> Intake:
    settings = ListenerSettings(**options)
    return Intake(service, TokenStore(tmp_path), auth_required=auth, listeners=settings)


def test_only_configured_listeners_start(service: IngestService, tmp_path: Path) -> None:
    assert listeners(_intake(service, tmp_path, auth=True)) == []
    names = [
        item.NAME
        for item in listeners(
            _intake(service, tmp_path, auth=True, syslog_udp_port=1, syslog_tcp_port=2)
        )
    ]
    assert names == ["syslog-udp", "syslog-tcp"]


@pytest.mark.parametrize("option", ["syslog_udp_port", "syslog_tcp_port"])
def test_plain_syslog_off_loopback_needs_auth_off(
    service: IngestService, tmp_path: Path, option: str
) -> None:
    with pytest.raises(ConfigError, match="--tls-client-ca"):
        listeners(_intake(service, tmp_path, auth=True, host="0.0.0.0", **{option: 514}))
    assert (
        len(listeners(_intake(service, tmp_path, auth=False, host="0.0.0.0", **{option: 514}))) == 1
    )


def test_tls_off_loopback_needs_client_certificates(
    service: IngestService, tmp_path: Path, pki: Path
) -> None:
    without = TLSFiles(pki / "server.pem", pki / "server.key")
    with pytest.raises(ConfigError, match="--tls-client-ca"):
        listeners(
            _intake(service, tmp_path, auth=True, host="0.0.0.0", syslog_tls_port=6514, tls=without)
        )
    verifying = TLSFiles(pki / "server.pem", pki / "server.key", pki / "ca.pem")
    found = listeners(
        _intake(service, tmp_path, auth=True, host="0.0.0.0", syslog_tls_port=6514, tls=verifying)
    )
    assert [item.NAME for item in found] == ["syslog-tls"]


def test_served_by_keelwatch_serve(tmp_path: Path) -> None:
    """The serve options start the listeners; loopback is allowed with tokens required."""
    udp, tcp = free_port(), free_port()
    server = make_server(tmp_path, "--syslog-udp-port", str(udp), "--syslog-tcp-port", str(tcp))
    server.start()
    try:
        with socket.create_connection(("127.0.0.1", tcp)) as sock:
            sock.sendall(counted(rfc5424(1)) + b"<13>Mar  1 10:00:00 node-2 app: 2\n")
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.sendto(rfc5424(3), ("127.0.0.1", udp))
        query = "SELECT doc->>'network.transport', doc->>'message' FROM events ORDER BY 2"
        rows: list[Any] = []
        while len(rows) < 3:
            rows = server.sql(query)
            time.sleep(0.05)
        assert rows == [["tcp", "2"], ["tcp", "message 1"], ["udp", "message 3"]]
    finally:
        server.stop()


# -- the framer alone ---------------------------------------------------------------------------


def frames_of(framer: Framer, stream: bytes, step: int) -> list[tuple[bytes, str | None]]:
    out = []
    for at in range(0, len(stream), step):
        out += [(f.raw, f.problem) for f in framer.feed(stream[at : at + step])]
    return out + [(f.raw, f.problem) for f in framer.close()]


messages = st.lists(
    st.binary(max_size=60)
    .map(lambda b: b"<" + b)
    .filter(lambda b: not b.endswith((b"\r", b"\n", b"\x00"))),
    max_size=8,
)


@settings(max_examples=200, deadline=None)
@given(
    items=messages, octet=st.lists(st.booleans(), min_size=8, max_size=8), step=st.integers(1, 70)
)
def test_framer_returns_exactly_the_messages_sent(
    items: list[bytes], octet: list[bool], step: int
) -> None:
    stream = b""
    expected = []
    for item, counted_frame in zip(items, octet, strict=False):
        if counted_frame:
            stream += counted(item)
            expected.append(item)
        elif b"\n" not in item:
            stream += item + b"\n"
            expected.append(item)
    got = frames_of(Framer(100), stream, step)
    assert got == [(item, None) for item in expected]


def test_framer_truncated_frame_at_the_end() -> None:
    assert frames_of(Framer(100), b"20 <13>short", 5) == [(b"20 <13>short", "truncated-frame")]


def test_framer_skips_an_oversized_frame_arriving_in_pieces() -> None:
    stream = b"50 " + b"a" * 50 + counted(b"<1>ok") + b"<2>" + b"b" * 40 + b"\n<3>fine\n"
    got = frames_of(Framer(20), stream, 3)
    assert [problem for _, problem in got] == ["frame-too-large", None, "frame-too-large", None]
    assert [raw for raw, problem in got if problem is None] == [b"<1>ok", b"<3>fine"]
