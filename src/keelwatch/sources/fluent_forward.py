"""Fluent forward (v1) over TCP or TLS: what Fluentd's out_forward and Fluent Bit's forward send.

Each connection reads a stream of msgpack values (``fluent_forward_codec``). Consecutive
Message-mode events are stored together; each Forward/PackedForward message is stored on its
own. ``{"ack": chunk}`` is written only after ``Intake.submit`` returned (the events are durable).
Under overload nothing is acknowledged and nothing more is read from that connection (TCP
back-pressure) until a retry of the same submit succeeds. The UDP heartbeat is not served.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from keelwatch.errors import ConfigError
from keelwatch.ingest.writer import Overloaded
from keelwatch.parsers.base import Record
from keelwatch.parsers.registry import AUTO, get_parser, recognise
from keelwatch.sources.base import Intake, Listener, source_for
from keelwatch.sources.fluent_forward_codec import (
    DeadLetters,
    Entry,
    FrameRefused,
    Handshake,
    Message,
    classify,
    expand,
    new_unpacker,
    pack,
)

log = logging.getLogger(__name__)

PROTOCOL = "fluent-forward"
TAG_FIELD = "fluent.tag"
READ_BYTES = 64 * 1024
MAX_GROUP_EVENTS = 10_000  # Message-mode events stored in one submit
_EOF = object()


class FrameReader:
    """Top-level msgpack values from a connection, each at most ``max_frame_bytes`` long."""

    def __init__(
        self, reader: asyncio.StreamReader, max_frame_bytes: int, idle_timeout_seconds: float
    ) -> None:
        self._reader = reader
        self._max_frame_bytes = max_frame_bytes
        self._idle_timeout_seconds = idle_timeout_seconds
        self._unpacker = new_unpacker(max_frame_bytes + READ_BYTES, max_frame_bytes)
        self._fed = 0  # bytes fed so far
        self._end = 0  # stream offset just after the last complete value

    def _pop(self) -> Any:
        try:
            value = next(self._unpacker)
        except StopIteration:
            if self._fed - self._end > self._max_frame_bytes:
                raise FrameRefused(
                    "frame too large", f"over {self._max_frame_bytes} bytes"
                ) from None
            return _EOF
        except ValueError as error:  # FormatError, or a declared length over the limit
            if "exceeds max" in str(error):
                raise FrameRefused("frame too large", str(error)) from None
            raise FrameRefused("undecodable msgpack", str(error) or type(error).__name__) from None
        except Exception as error:  # StackError and the like
            raise FrameRefused("undecodable msgpack", type(error).__name__) from None
        end = self._unpacker.tell()
        size, self._end = end - self._end, end
        if size > self._max_frame_bytes:
            raise FrameRefused("frame too large", f"{size} bytes")
        return value

    async def next(self) -> Any:
        """The next value; ``_EOF`` when the client closed the connection."""
        while True:
            value = self._pop()
            if value is not _EOF:
                return value
            try:
                data = await asyncio.wait_for(
                    self._reader.read(READ_BYTES), self._idle_timeout_seconds
                )
            except TimeoutError:
                raise FrameRefused("idle timeout", f"{self._idle_timeout_seconds:g} s") from None
            if not data:
                if self._fed > self._end:
                    raise FrameRefused("truncated frame", f"{self._fed - self._end} bytes left")
                return _EOF
            self._fed += len(data)
            self._unpacker.feed(data)  # cannot overflow: _pop bounds what stays buffered

    def buffered(self) -> Any:
        """The next value if it is already complete in the buffer, else ``_EOF`` (no reading)."""
        return self._pop()


@dataclass(slots=True)
class _Group:
    source: str
    messages: list[Message]

    @property
    def events(self) -> int:
        return sum(1 if m.single else 0 for m in self.messages)


class FluentForwardListener:
    NAME = "fluent-forward"

    def __init__(self, intake: Intake, tls: ssl.SSLContext | None) -> None:
        self.intake = intake
        self.settings = intake.listeners
        self.tls = tls
        key = self.settings.forward_shared_key
        self.shared_key = key.encode() if key else None
        self.server_hostname = f"keelwatch-{socket.gethostname()}"
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()
        self._per_client: dict[str, int] = {}
        self._sources: dict[str, str] = {}

    async def start(self) -> None:
        port = self.settings.forward_port
        self._server = await asyncio.start_server(
            self._accept,
            self.settings.host,
            port,
            ssl=self.tls,
            ssl_handshake_timeout=min(self.settings.idle_timeout_seconds, 60.0)
            if self.tls
            else None,
            limit=READ_BYTES,
        )
        self.intake.metrics.gauge(
            "keelwatch_fluent_forward_connections_open", lambda: len(self._connections)
        )
        auth = "shared_key handshake" if self.shared_key else "NO authentication"
        log.info("fluent forward listening on %s:%s (%s, tls=%s)", self.settings.host, port, auth,
                 self.tls is not None)  # fmt: skip

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._connections):
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    # -- one connection -----------------------------------------------------------------------

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        peer = writer.get_extra_info("peername")
        client = str(peer[0]) if isinstance(peer, tuple) and peer else "unknown"
        if self._per_client.get(client, 0) >= self.settings.max_connections_per_client:
            self._refuse(client, FrameRefused("too many connections", client))
            writer.close()
            return
        self._per_client[client] = self._per_client.get(client, 0) + 1
        self._connections.add(task)
        try:
            await self._serve(reader, writer, client)
        except FrameRefused as refused:
            self._refuse(client, refused)
        except (ConnectionError, ssl.SSLError) as error:
            log.info("fluent forward: connection from %s lost: %s", client, error)
        except asyncio.CancelledError:
            pass  # the server is stopping; whatever was not acknowledged will be resent
        finally:
            self._connections.discard(task)
            left = self._per_client.pop(client, 1) - 1
            if left:
                self._per_client[client] = left
            writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.wait_closed(), 5.0)

    def _refuse(self, client: str, refused: FrameRefused) -> None:
        self.intake.reject(PROTOCOL, refused.reason)
        log.warning("fluent forward: closing connection from %s: %s", client, refused)

    async def _serve(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, client: str
    ) -> None:
        frames = FrameReader(
            reader, self.settings.max_frame_bytes, self.settings.idle_timeout_seconds
        )
        if self.shared_key is not None and not await self._handshake(frames, writer, client):
            return
        pending: Message | None = None
        while True:
            first = pending if pending is not None else classify_or_skip(await frames.next())
            pending = None
            if first is _EOF:
                return
            if first is None:
                continue
            group = _Group(self._source(first.tag), [first])
            refused: FrameRefused | None = None
            # Message-mode events already waiting in the buffer join the same submit.
            while first.single and group.events < MAX_GROUP_EVENTS:
                try:
                    more = classify_or_skip(frames.buffered())
                except FrameRefused as error:
                    refused = error  # store and acknowledge what came before it first
                    break
                if more is None:
                    continue
                if more is _EOF:
                    break
                if not more.single or self._source(more.tag) != group.source:
                    pending = more
                    break
                group.messages.append(more)
            await self._store(group)
            acks = [pack({"ack": m.chunk}) for m in group.messages if m.chunk is not None]
            if acks:
                writer.write(b"".join(acks))
                await asyncio.wait_for(writer.drain(), self.settings.idle_timeout_seconds)
            if refused is not None:
                raise refused

    async def _handshake(
        self, frames: FrameReader, writer: asyncio.StreamWriter, client: str
    ) -> bool:
        assert self.shared_key is not None
        handshake = Handshake(self.shared_key, self.server_hostname)
        writer.write(handshake.helo())
        await writer.drain()
        ping = await frames.next()
        if ping is _EOF:
            return False
        pong, failure = handshake.answer(ping)
        writer.write(pong)
        await asyncio.wait_for(writer.drain(), self.settings.idle_timeout_seconds)
        if failure:
            reason = "handshake missing" if failure == "expected a PING message" else "auth failed"
            raise FrameRefused(reason, failure)
        log.debug("fluent forward: %s authenticated", client)
        return True

    def _source(self, tag: str) -> str:
        source = self._sources.get(tag)
        if source is None:
            # Fluent tags are dot-separated words: "k8s.audit" names the k8s-audit parser.
            source = source_for(tag.replace(".", "-"))
            if len(self._sources) < 1024:
                self._sources[tag] = source
        return source

    async def _store(self, group: _Group) -> None:
        """Submit the group's events; returns once durable, retrying while overloaded."""
        limits = self.intake.limits
        records, dead_letters = await self.intake.service.run_cpu(
            prepare,
            group.messages,
            group.source,
            limits.max_decompressed_bytes,
            limits.record.max_depth + 1,
        )
        while True:
            try:
                await self.intake.submit(records, group.source, PROTOCOL, dead_letters=dead_letters)
                return
            except Overloaded as error:
                # Not acknowledged and not read further: the client waits (or resends later).
                self.intake.reject(PROTOCOL, "overloaded")
                log.info(
                    "fluent forward: store overloaded, retrying in %ss", error.retry_after_seconds
                )
                await asyncio.sleep(error.retry_after_seconds)


def classify_or_skip(value: Any) -> Any:
    """``classify`` that passes ``_EOF`` through."""
    return value if value is _EOF else classify(value)


def prepare(
    messages: Sequence[Message], source: str, max_decompressed_bytes: int, max_depth: int
) -> tuple[list[Record], DeadLetters]:
    """Records for ``Intake.submit``, shaped for the parser that will read each one.

    A parser that understands Fluent Bit's ``[time, record]`` pair (container logs) gets the pair,
    so the event keeps the collector's time, and the tag as ``fluent.tag`` in the record. Parsers
    that read only maps (audit, Falco, ...) get the record unchanged; it carries its own time.
    """
    fixed = None if source == AUTO else get_parser(source)
    records: list[Record] = []
    dead_letters: DeadLetters = []
    for message in messages:
        expanded = expand(message, max_decompressed_bytes, max_depth)
        dead_letters.extend(expanded.dead_letters)
        records.extend(_shape(entry, message.tag, fixed) for entry in expanded.entries)
    return records, dead_letters


def _shape(entry: Entry, tag: str, fixed: Any) -> Record:
    moment, record = entry
    parser = fixed or recognise(record)
    tagged = record if TAG_FIELD in record else {**record, TAG_FIELD: tag}
    pair = [moment, tagged]
    if parser is None or parser.matches(pair):
        return pair  # unrecognised: the dead letter keeps the time and the tag
    return record


def listeners(intake: Intake) -> list[Listener]:
    settings = intake.listeners
    if settings.forward_port is None:
        return []
    if not settings.forward_shared_key and intake.auth_required:
        raise ConfigError(
            "the Fluent forward listener needs --forward-shared-key: clients prove it with the "
            "forward protocol's shared_key handshake (the same value as shared_key in the "
            "collector's <security> or Shared_Key setting); on a trusted network pass "
            "--insecure-no-auth to accept forward connections without it"
        )
    tls = settings.tls_context("fluent forward") if settings.forward_tls else None
    return [FluentForwardListener(intake, tls)]
