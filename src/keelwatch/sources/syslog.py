"""Syslog listeners: UDP (RFC 5426), TCP (RFC 6587) and TLS (RFC 5425).

The listeners only cut the byte stream into messages and hand them on as records
``{"syslog": <message>, "log.source.address": "ip:port", "network.transport": ...}`` for the
``syslog`` parser, which reads the RFC 5424 / 3164 header (adapters never parse log content).

* UDP: one datagram is one message.
* TCP and TLS: each frame is either octet-counted (``LEN SP MSG``) or ends with a newline; the
  first byte decides, frame by frame (see ``syslog_framing``). TLS is RFC 5425 on its own port;
  with ``--tls-client-ca`` a client must present a certificate signed by that CA, which is the
  only authentication syslog has.
* Messages are submitted in micro-batches per connection (and one batch for all of UDP): at most
  ``MAX_BATCH_MESSAGES``, ``MAX_BATCH_BYTES`` or ``MAX_BATCH_SECONDS`` old.
* Under overload a TCP connection stops reading (the sender's TCP window fills up) and retries
  after ``retry_after_seconds``: nothing is dropped. UDP cannot push back: datagrams beyond
  ``MAX_UDP_PENDING_MESSAGES`` waiting are dropped and counted (reason ``overloaded``).

Syslog carries no token. With tokens required, plain UDP/TCP (and TLS without a client CA)
listen only on loopback, for a relay on the same host; elsewhere the listener refuses to start,
as Lumberjack and Fluent forward do without their credentials.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import ipaddress
import logging
import socket
import ssl
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

from keelwatch.errors import ConfigError
from keelwatch.ingest.writer import Overloaded
from keelwatch.parsers.base import Record
from keelwatch.sources.base import Intake, Listener
from keelwatch.sources.syslog_framing import Frame, Framer
from keelwatch.sources.tls_channel import READ_CHUNK_BYTES, TLSChannel

log = logging.getLogger(__name__)

SOURCE = "syslog"
MAX_BATCH_MESSAGES = 1_000
MAX_BATCH_BYTES = 4 * 1024 * 1024
MAX_BATCH_SECONDS = 0.2
MAX_UDP_PENDING_MESSAGES = 50_000
MAX_UDP_PENDING_BYTES = 64 * 1024 * 1024
UDP_RECEIVE_BUFFER_BYTES = 8 * 1024 * 1024

TLS_HANDSHAKE_TIMEOUT_SECONDS = 10.0
STOP_GRACE_SECONDS = 30.0
DEAD_LETTER_PREFIX_BYTES = 4096  # how much of an oversized frame is kept with its dead letter


def listeners(intake: Intake) -> list[Listener]:
    settings = intake.listeners
    found: list[Listener] = []
    if settings.syslog_udp_port is not None:
        _check_auth(intake, "--syslog-udp-port", "UDP")
        found.append(SyslogUDP(intake, settings.host, settings.syslog_udp_port))
    if settings.syslog_tcp_port is not None:
        _check_auth(intake, "--syslog-tcp-port", "plain TCP")
        found.append(SyslogTCP(intake, settings.host, settings.syslog_tcp_port, None))
    if settings.syslog_tls_port is not None:
        context = settings.tls_context("syslog")  # fails at start without --tls-cert
        if settings.tls is None or settings.tls.client_ca is None:
            _check_auth(intake, "--syslog-tls-port", "TLS without --tls-client-ca")
        found.append(SyslogTCP(intake, settings.host, settings.syslog_tls_port, context))
    return found


def _check_auth(intake: Intake, option: str, transport: str) -> None:
    """Syslog carries no token: off loopback, only TLS client certificates authenticate it."""
    host = intake.listeners.host
    if intake.auth_required and not is_loopback(host):
        raise ConfigError(
            f"{option}: syslog over {transport} has no authentication, so anyone who can reach "
            f"{host} could write events. Use --syslog-tls-port with --tls-cert, --tls-key and "
            "--tls-client-ca (clients present certificates), or listen on --host 127.0.0.1 "
            "for a local relay, or pass --insecure-no-auth on a trusted network"
        )


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _address(peer: Any) -> str:
    if isinstance(peer, tuple) and len(peer) >= 2:
        host, port = str(peer[0]), peer[1]
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return str(peer)


class Batch:
    """Messages waiting to be submitted together."""

    def __init__(self) -> None:
        self.records: list[Record] = []
        self.dead_letters: list[tuple[bytes, str]] = []
        self.size_bytes = 0
        self.started = 0.0

    def __len__(self) -> int:
        return len(self.records) + len(self.dead_letters)

    def add(self, record: Record | None, raw: bytes, reason: str | None = None) -> None:
        if not self:
            self.started = time.monotonic()
        if reason is None:
            self.records.append(record)
        else:
            self.dead_letters.append((raw[:DEAD_LETTER_PREFIX_BYTES], reason))
        self.size_bytes += len(raw)

    @property
    def full(self) -> bool:
        return len(self) >= MAX_BATCH_MESSAGES or self.size_bytes >= MAX_BATCH_BYTES

    def seconds_left(self) -> float:
        return max(0.0, self.started + MAX_BATCH_SECONDS - time.monotonic())


async def submit_until_stored(intake: Intake, batch: Batch, protocol: str) -> None:
    """Submit ``batch``; under overload wait as told and try again, for as long as it takes."""
    while True:
        try:
            await intake.submit(batch.records, SOURCE, protocol, dead_letters=batch.dead_letters)
            return
        except Overloaded as error:
            intake.reject(protocol, "overloaded-retry")
            await asyncio.sleep(error.retry_after_seconds)


def _record(raw: bytes, peer: str, transport: str, subject: str | None) -> Record:
    record = {
        "syslog": raw.decode("utf-8", "replace"),
        "log.source.address": peer,
        "network.transport": transport,
    }
    if subject:
        record["tls.client.subject"] = subject
    return record


# The usual short names of distinguished-name attributes (RFC 4514), as ssl spells them out.
_RDN_NAMES = {
    "commonName": "CN",
    "organizationName": "O",
    "organizationalUnitName": "OU",
    "countryName": "C",
    "stateOrProvinceName": "ST",
    "localityName": "L",
    "domainComponent": "DC",
}


def _subject(certificate: dict[str, Any] | None) -> str | None:
    """``O=…,CN=…`` of the client's certificate, if it sent one."""
    if not certificate:
        return None
    parts = [
        f"{_RDN_NAMES.get(key, key)}={value}"
        for rdn in certificate.get("subject", ())
        for key, value in rdn
    ]
    return ",".join(parts) or None


class SyslogTCP:
    """Syslog over TCP, or over TLS when given a server context."""

    def __init__(self, intake: Intake, host: str, port: int, tls: ssl.SSLContext | None) -> None:
        self.intake = intake
        self.host = host
        self.port = port
        self.tls = tls
        self.NAME = "syslog-tls" if tls else "syslog-tcp"
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()
        self._per_client: Counter[str] = Counter()
        self._waiting: Counter[str] = Counter()
        self._slot_freed = asyncio.Condition()
        self._stopping = asyncio.Event()

    async def start(self) -> None:
        self._server = await asyncio.start_server(
            self._accept, self.host, self.port, limit=READ_CHUNK_BYTES, reuse_address=True
        )

    async def stop(self) -> None:
        self._stopping.set()
        if self._server is not None:
            self._server.close()
        if self._connections:
            _, late = await asyncio.wait(self._connections, timeout=STOP_GRACE_SECONDS)
            for task in late:
                task.cancel()
        if self._server is not None:
            await self._server.wait_closed()

    async def _slot_for(self, client: str) -> bool:
        """Wait (unread) for one of the client's connection slots; False when none frees up.

        Syslog has no acknowledgement: a connection closed unread loses what the client already
        sent. So a client over its limit waits, up to as many connections again and the idle
        timeout, instead of being refused at once (a sender that opens a connection per batch
        is slowed down, not cut off).
        """
        limit = self.intake.listeners.max_connections_per_client
        if self._per_client[client] < limit:
            return True
        if self._waiting[client] >= limit:
            return False
        self._waiting[client] += 1
        try:
            async with self._slot_freed:
                await asyncio.wait_for(
                    self._slot_freed.wait_for(lambda: self._per_client[client] < limit),
                    self.intake.listeners.idle_timeout_seconds,
                )
            return True
        except TimeoutError:
            return False
        finally:
            self._waiting[client] -= 1
            if not self._waiting[client]:
                del self._waiting[client]

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        peer = writer.get_extra_info("peername")
        client = str(peer[0]) if isinstance(peer, tuple) else str(peer)
        admitted = False
        self._connections.add(task)  # waiting ones too: stop() must reach them
        try:
            admitted = await self._slot_for(client)
        finally:
            if not admitted:
                self._connections.discard(task)
        if not admitted:
            self.intake.reject(self.NAME, "too-many-connections")
            writer.close()
            return
        self._per_client[client] += 1
        try:
            read: Callable[[], Awaitable[bytes]] = functools.partial(reader.read, READ_CHUNK_BYTES)
            subject = None
            if self.tls is not None:
                tls = TLSChannel(reader, writer, self.tls)
                try:
                    await asyncio.wait_for(tls.handshake(), TLS_HANDSHAKE_TIMEOUT_SECONDS)
                except (ssl.SSLError, ConnectionError, OSError, TimeoutError) as error:
                    self.intake.reject(self.NAME, "tls-handshake-failed")
                    log.info("syslog TLS handshake with %s failed: %s", _address(peer), error)
                    return
                read = functools.partial(tls.read, READ_CHUNK_BYTES)
                subject = _subject(tls.peer_certificate())
            await self._serve(read, _address(peer), subject)
        except (ConnectionError, OSError) as error:
            log.debug("syslog connection from %s ended: %s", client, error)
        finally:
            self._connections.discard(task)
            self._per_client[client] -= 1
            if not self._per_client[client]:
                del self._per_client[client]
            async with self._slot_freed:
                self._slot_freed.notify_all()
            writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await writer.wait_closed()

    async def _serve(
        self, read_chunk: Callable[[], Awaitable[bytes]], peer: str, subject: str | None
    ) -> None:
        settings = self.intake.listeners
        framer = Framer(settings.max_frame_bytes)
        batch = Batch()
        read: asyncio.Task[bytes] | None = None
        stop = asyncio.ensure_future(self._stopping.wait())
        try:
            while True:
                if read is None:
                    read = asyncio.ensure_future(read_chunk())
                timeout = batch.seconds_left() if batch else settings.idle_timeout_seconds
                done, _ = await asyncio.wait(
                    {read, stop}, timeout=timeout, return_when="FIRST_COMPLETED"
                )
                if read in done:
                    data = read.result()
                    read = None
                    for frame in framer.feed(data):
                        self._add(batch, frame, peer, subject)
                        if batch.full:
                            await submit_until_stored(self.intake, batch, self.NAME)
                            batch = Batch()
                    if not data:
                        break
                elif stop in done:
                    break
                elif not batch:
                    self.intake.reject(self.NAME, "idle-timeout")
                    break
                if batch and (batch.full or not batch.seconds_left()):
                    await submit_until_stored(self.intake, batch, self.NAME)
                    batch = Batch()
        finally:
            for task in (read, stop):
                if task is not None:
                    task.cancel()
            for frame in framer.close():  # a last line without newline, or a truncated frame
                self._add(batch, frame, peer, subject)
            if batch:  # what was read is stored before the connection is let go
                await asyncio.shield(submit_until_stored(self.intake, batch, self.NAME))

    def _add(self, batch: Batch, frame: Frame, peer: str, subject: str | None) -> None:
        if frame.problem is not None:
            self.intake.reject(self.NAME, frame.problem)
            batch.add(None, frame.raw, frame.detail)
        else:
            batch.add(_record(frame.raw, peer, "tcp", subject), frame.raw)


class _UDPProtocol(asyncio.DatagramProtocol):
    def __init__(self, owner: SyslogUDP) -> None:
        self.owner = owner

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.owner.received(data, addr)

    def error_received(self, exc: Exception) -> None:
        log.debug("syslog UDP socket error: %s", exc)


class SyslogUDP:
    """Syslog over UDP: one datagram is one message; one batch for every sender."""

    NAME = "syslog-udp"

    def __init__(
        self,
        intake: Intake,
        host: str,
        port: int,
        *,
        max_pending_messages: int = MAX_UDP_PENDING_MESSAGES,
    ) -> None:
        self.intake = intake
        self.host = host
        self.port = port
        self.max_pending_messages = max_pending_messages
        self._transport: asyncio.DatagramTransport | None = None
        self._pending = Batch()
        self._arrived = asyncio.Event()
        self._full = asyncio.Event()
        self._stopping = False
        self._flusher: asyncio.Task[None] | None = None

    async def start(self) -> None:
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_DGRAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        with contextlib.suppress(OSError):  # bursts wait in the kernel while a batch is stored
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, UDP_RECEIVE_BUFFER_BYTES)
        try:
            sock.bind((self.host, self.port))
        except OSError:
            sock.close()
            raise
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(lambda: _UDPProtocol(self), sock=sock)
        self._transport = transport
        self._flusher = asyncio.create_task(self._flush_loop())

    async def stop(self) -> None:
        if self._transport is not None:
            self._transport.close()
        self._stopping = True
        self._arrived.set()
        self._full.set()
        if self._flusher is not None:
            _, late = await asyncio.wait({self._flusher}, timeout=STOP_GRACE_SECONDS)
            if late:
                log.error("syslog UDP: %d messages not stored at shutdown", len(self._pending))
                self._flusher.cancel()

    def received(self, data: bytes, addr: Any) -> None:
        pending = self._pending
        if len(pending) >= self.max_pending_messages or pending.size_bytes >= MAX_UDP_PENDING_BYTES:
            self.intake.reject(self.NAME, "overloaded")  # UDP cannot push back: count the drop
            return
        message = data.rstrip(b"\r\n\x00")
        if not message.strip():
            self.intake.reject(self.NAME, "empty-datagram")
            return
        limit = self.intake.listeners.max_frame_bytes
        if len(message) > limit:
            self.intake.reject(self.NAME, "frame-too-large")
            detail = f"frame-too-large: a datagram of {len(message)} bytes is over {limit}"
            pending.add(None, message, detail)
        else:
            pending.add(_record(message, _address(addr), "udp", None), message)
        self._arrived.set()
        if pending.full:
            self._full.set()

    async def _flush_loop(self) -> None:
        while not (self._stopping and not self._pending):
            await self._arrived.wait()
            # Let the batch fill for up to MAX_BATCH_SECONDS, unless it is full sooner.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._full.wait(), self._pending.seconds_left())
            batch, self._pending = self._pending, Batch()
            self._arrived.clear()
            if not self._stopping:
                self._full.clear()
            if batch:
                await submit_until_stored(self.intake, batch, self.NAME)
