"""Lumberjack v2: the protocol of Beats' ``output.logstash`` (Filebeat, Auditbeat, …).

A client announces a window (``W``, N events), sends the events (``J`` frames, usually inside
one zlib ``C`` frame) and waits for an ``A`` frame carrying the sequence number of the last
event. Here that ACK is written only after ``Intake.submit`` returned for every event of the
window, so an acknowledged event is durable. While a window is being stored the connection is
not read (the client's own window is the back-pressure) and an ACK with the last durable
sequence (0 while none is, the keepalive go-lumber and Logstash send) goes out every
``keepalive_seconds`` so Beats do not time out and resend. Under overload the store is retried
after ``retry_after_seconds``; nothing is dropped and nothing is acknowledged early.

Lumberjack has no credentials of its own: clients authenticate with TLS client certificates
(``--lumberjack-tls --tls-client-ca``). With tokens required and no client CA the listener
refuses to start rather than accept anyone.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections import deque
from collections.abc import Callable

from keelwatch.errors import ConfigError
from keelwatch.ingest.service import IngestResult
from keelwatch.ingest.writer import Overloaded
from keelwatch.parsers.registry import AUTO
from keelwatch.sources.base import Intake, Listener
from keelwatch.sources.lumberjack_beats import DEAD, WindowRecords, prepare
from keelwatch.sources.lumberjack_codec import (
    Compressed,
    Event,
    FrameLimits,
    FrameReader,
    ProtocolViolation,
    Window,
    WindowBudget,
    ack_frame,
    expand,
)
from keelwatch.sources.tls_channel import READ_CHUNK_BYTES, Channel, PlainChannel, TLSChannel

log = logging.getLogger(__name__)

# asyncio.timeout, not wait_for: on 3.11 wait_for loses a cancel that lands as its awaitable
# finishes, and ``stop`` would then wait for a connection that never ends.
PROTOCOL = "lumberjack"
KEEPALIVE_SECONDS = 5.0  # Beats time out after 30 s without an ACK by default
MAX_WINDOW_EVENTS = 65_536  # Beats send bulk_max_size (2048 by default) events per window
EXTRA_COMPRESSED_FRAMES = 16  # compressed frames allowed per window beyond one per event


class LumberjackListener:
    """An asyncio TCP (or TLS) server speaking Lumberjack v2 to Beats."""

    NAME: str = PROTOCOL

    def __init__(
        self,
        intake: Intake,
        *,
        port: int,
        ssl_context: ssl.SSLContext | None = None,
        keepalive_seconds: float = KEEPALIVE_SECONDS,
        max_window_events: int = MAX_WINDOW_EVENTS,
    ) -> None:
        settings = intake.listeners
        self.intake = intake
        self.host = settings.host
        self.port = port
        self.ssl_context = ssl_context
        self.keepalive_seconds = keepalive_seconds
        self.max_window_events = max_window_events
        self.idle_timeout_seconds = settings.idle_timeout_seconds
        self.max_connections_per_client = settings.max_connections_per_client
        self.limits = FrameLimits(settings.max_frame_bytes, intake.limits.record.max_fields)
        self.source_hint = settings.source_hint.get(PROTOCOL)
        self._server: asyncio.Server | None = None
        self._connections: dict[str, int] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, self.host, self.port)
        scheme = "TLS" if self.ssl_context else "TCP"
        log.info("lumberjack listening on %s:%s (%s)", self.host, self.port, scheme)

    async def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if server is not None:
            await server.wait_closed()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        client = str(peer[0]) if isinstance(peer, tuple) else str(peer)
        if self._connections.get(client, 0) >= self.max_connections_per_client:
            self.intake.reject(PROTOCOL, "too_many_connections")
            writer.close()
            return
        self._connections[client] = self._connections.get(client, 0) + 1
        try:
            channel = await self._open(reader, writer, client)
            if channel is not None:
                await self._run_cancellable(channel, client)
        finally:
            self._connections[client] -= 1
            if not self._connections[client]:
                del self._connections[client]
            writer.close()
            with contextlib.suppress(OSError, ssl.SSLError):  # TimeoutError is an OSError
                async with asyncio.timeout(5):
                    await writer.wait_closed()

    async def _open(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, client: str
    ) -> Channel | None:
        if self.ssl_context is None:
            return PlainChannel(reader, writer)
        channel = TLSChannel(reader, writer, self.ssl_context)
        try:
            async with asyncio.timeout(self.idle_timeout_seconds):
                await channel.handshake()
        except (OSError, ssl.SSLError) as error:  # TimeoutError is an OSError
            self.intake.reject(PROTOCOL, "tls_handshake_failed")
            log.info("lumberjack: TLS handshake with %s failed: %s", client, error)
            return None
        return channel

    async def _run_cancellable(self, channel: Channel, client: str) -> None:
        """Serve in a task of our own: ``stop`` cancels it, never asyncio's callback task
        (on 3.11 cancelling that one is logged as an error)."""
        if self._server is None:
            return  # stopping
        task = asyncio.create_task(self._serve(channel, client))
        self._tasks.add(task)
        try:
            await task
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise
        finally:
            self._tasks.discard(task)

    async def _serve(self, channel: Channel, client: str) -> None:
        connection = _Connection(self, channel)
        try:
            await connection.run()
        except ProtocolViolation as violation:
            self.intake.reject(PROTOCOL, violation.reason)
            log.info("lumberjack: closing %s: %s", client, violation)
        except ConnectionError as error:
            log.info("lumberjack: connection from %s lost: %s", client, error)
        except ssl.SSLError as error:
            self.intake.reject(PROTOCOL, "tls_error")
            log.info("lumberjack: TLS error from %s: %s", client, error)
        except Exception:  # e.g. the store failed: nothing was acknowledged, the client resends
            self.intake.reject(PROTOCOL, "internal_error")
            log.exception("lumberjack: closing %s after an internal error", client)


class _Connection:
    """One client: read frames into a window, store the window, acknowledge it."""

    def __init__(self, listener: LumberjackListener, channel: Channel) -> None:
        self.listener = listener
        self.intake = listener.intake
        self.channel = channel
        self.frames = FrameReader(listener.limits)
        # Between a window frame and its ACK: the version to answer keepalives with, and how
        # far the window is durable (as Logstash, keepalives flow only while a window is open).
        self.open_version: int | None = None
        self.durable_seq: Callable[[], int] = lambda: 0

    async def run(self) -> None:
        keepalive = asyncio.create_task(self._keepalive())
        try:
            await self._run()
        finally:
            keepalive.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await keepalive

    async def _run(self) -> None:
        window: Window | None = None
        budget: WindowBudget | None = None
        events: list[Event] = []
        pending: deque[Compressed | Event | Window] = deque()
        while True:
            if not pending:
                data = await self._read(mid_window=window is not None)
                if not data:
                    if window is not None or self.frames.partial_bytes:
                        raise ProtocolViolation(
                            "truncated_window", "connection closed in the middle of a window"
                        )
                    return
                pending.extend(self.frames.feed(data))
                continue
            frame = pending.popleft()
            if isinstance(frame, Window):
                if window is not None:
                    raise ProtocolViolation(
                        "window_incomplete",
                        f"new window after {len(events)} of {window.size} events",
                    )
                if frame.size > self.listener.max_window_events:
                    raise ProtocolViolation(
                        "window_too_many_events",
                        f"window of {frame.size} events (limit {self.listener.max_window_events})",
                    )
                if frame.size == 0:  # nothing to wait for; Logstash answers 0 as well
                    await self._send(ack_frame(frame.version, 0))
                    continue
                window = frame
                self.open_version = frame.version
                budget = WindowBudget(
                    self.intake.limits.max_decompressed_bytes,
                    frame.size + EXTRA_COMPRESSED_FRAMES,
                )
                events = []
                continue
            if window is None or budget is None:
                raise ProtocolViolation("data_outside_window", "data frame before a window frame")
            if isinstance(frame, Compressed):
                events.extend(await self._expand(frame, budget))
            else:
                budget.charge(10 + (len(frame.payload) if isinstance(frame.payload, bytes) else 0))
                events.append(frame)
            if len(events) > window.size:
                raise ProtocolViolation(
                    "window_overrun", f"{len(events)} events in a window of {window.size}"
                )
            if len(events) == window.size:
                await self._store(window, events)
                window, budget, events = None, None, []

    async def _read(self, *, mid_window: bool) -> bytes:
        try:
            async with asyncio.timeout(self.listener.idle_timeout_seconds):
                return await self.channel.read(READ_CHUNK_BYTES)
        except TimeoutError:
            if mid_window:
                raise ProtocolViolation(
                    "idle_timeout", "no data for the rest of the window within the idle timeout"
                ) from None
            return b""  # an idle client between windows: close quietly, it reconnects

    async def _expand(self, frame: Compressed, budget: WindowBudget) -> list[Event]:
        return await self.intake.service.run_cpu(
            expand, frame.payload, self.listener.limits, budget
        )

    async def _store(self, window: Window, events: list[Event]) -> None:
        prepared = await self.intake.service.run_cpu(prepare, events, self.listener.source_hint)
        done: set[str] = set()
        self.durable_seq = lambda: _durable_seq(events, prepared, done)
        await self._submit_all(prepared, done)
        self.open_version, self.durable_seq = None, lambda: 0
        await self._send(ack_frame(window.version, max(event.seq for event in events)))

    async def _submit_all(self, prepared: WindowRecords, done: set[str]) -> None:
        """Submit every group until each is durable, waiting out overload."""
        keys = list(prepared.groups)
        if prepared.dead_letters:
            keys.append(DEAD)
        while True:
            todo = [key for key in keys if key not in done]
            if not todo:
                return
            results = await asyncio.gather(
                *(self._submit(prepared, key) for key in todo), return_exceptions=True
            )
            overloaded: Overloaded | None = None
            for key, result in zip(todo, results, strict=True):
                if isinstance(result, Overloaded):
                    overloaded = result
                elif isinstance(result, BaseException):
                    raise result  # the store failed: no ACK, the client resends
                else:
                    done.add(key)
            if overloaded is not None:
                self.intake.reject(PROTOCOL, "overloaded")
                await asyncio.sleep(overloaded.retry_after_seconds)

    async def _submit(self, prepared: WindowRecords, key: str) -> IngestResult:
        if key == DEAD:
            return await self.intake.submit([], AUTO, PROTOCOL, dead_letters=prepared.dead_letters)
        return await self.intake.submit(prepared.groups[key], key, PROTOCOL)

    async def _keepalive(self) -> None:
        """While a window is open, tell the client every few seconds it is still being taken."""
        while True:
            await asyncio.sleep(self.listener.keepalive_seconds)
            if self.open_version is None:
                continue
            try:
                await self._send(ack_frame(self.open_version, self.durable_seq()))
            except (ConnectionError, ssl.SSLError, ProtocolViolation):
                self.channel.abort()  # the reading side then ends the connection
                return

    async def _send(self, frame: bytes) -> None:
        self.channel.write(frame)
        try:
            async with asyncio.timeout(self.listener.idle_timeout_seconds):
                await self.channel.drain()
        except TimeoutError:
            raise ProtocolViolation("ack_not_read", "the client does not read its ACKs") from None


def _durable_seq(events: list[Event], prepared: WindowRecords, done: set[str]) -> int:
    """The sequence number up to which every event of the window is durable (0: none yet)."""
    last = 0
    for event, group in zip(events, prepared.members, strict=True):
        if group not in done:
            break
        last = event.seq
    return last


def listeners(intake: Intake) -> list[Listener]:
    settings = intake.listeners
    if settings.lumberjack_port is None:
        return []
    context = settings.tls_context(PROTOCOL) if settings.lumberjack_tls else None
    verifies_clients = (
        context is not None and settings.tls is not None and settings.tls.client_ca is not None
    )
    if intake.auth_required and not verifies_clients:
        raise ConfigError(
            "--lumberjack-port: Lumberjack carries no token, so clients must authenticate with "
            "TLS client certificates: add --lumberjack-tls --tls-cert --tls-key --tls-client-ca "
            "(or pass --insecure-no-auth to accept any client on a trusted network)"
        )
    return [LumberjackListener(intake, port=settings.lumberjack_port, ssl_context=context)]
