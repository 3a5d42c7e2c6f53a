"""A byte channel over a TCP stream, plain or server-side TLS done in memory (ssl.MemoryBIO).

Why not ``asyncio.start_server(ssl=…)`` or ``StreamWriter.start_tls``: the first hides a failed
handshake (no client certificate, plain text on the TLS port) from the listener, so it cannot
be counted; the second loses a ClientHello that arrived before it was called (uvloop starts
reading at once) and the handshake then hangs. Here every byte goes through the ``SSLObject``,
whatever the event loop, and a failed handshake is an exception the listener counts.
"""

from __future__ import annotations

import asyncio
import ssl
from typing import Protocol

READ_CHUNK_BYTES = 64 * 1024


class Channel(Protocol):
    async def read(self, max_bytes: int) -> bytes:
        """Up to ``max_bytes``; b"" once the peer has closed."""
        ...

    def write(self, data: bytes) -> None: ...

    async def drain(self) -> None: ...

    def abort(self) -> None: ...


class PlainChannel:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer

    async def read(self, max_bytes: int) -> bytes:
        return await self._reader.read(max_bytes)

    def write(self, data: bytes) -> None:
        self._writer.write(data)

    async def drain(self) -> None:
        await self._writer.drain()

    def abort(self) -> None:
        self._writer.transport.abort()


class TLSChannel:
    """Server-side TLS; call ``handshake`` first (it raises ``ssl.SSLError`` on failure)."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        context: ssl.SSLContext,
    ) -> None:
        self._reader = reader
        self._writer = writer
        self._incoming = ssl.MemoryBIO()
        self._outgoing = ssl.MemoryBIO()
        self._tls = context.wrap_bio(self._incoming, self._outgoing, server_side=True)

    async def handshake(self) -> None:
        while True:
            try:
                self._tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                self._flush()
                if not await self._fill():
                    raise ConnectionResetError("closed during the TLS handshake") from None
            except ssl.SSLError:
                self._flush()  # the alert tells the client why
                raise
        self._flush()
        await self._writer.drain()

    def peer_certificate(self) -> dict[str, object] | None:
        certificate = self._tls.getpeercert()
        return dict(certificate) if certificate else None

    async def read(self, max_bytes: int) -> bytes:
        while True:
            try:
                data = self._tls.read(max_bytes)
            except ssl.SSLWantReadError:
                self._flush()  # TLS 1.3 may have something to send (tickets, key updates)
                if not await self._fill():
                    return b""
                continue
            except (ssl.SSLZeroReturnError, ssl.SSLEOFError):  # close_notify, or closed without
                return b""
            self._flush()
            return data

    def write(self, data: bytes) -> None:
        self._tls.write(data)
        self._flush()

    async def drain(self) -> None:
        await self._writer.drain()

    def abort(self) -> None:
        self._writer.transport.abort()

    async def _fill(self) -> bool:
        data = await self._reader.read(READ_CHUNK_BYTES)
        if not data:
            self._incoming.write_eof()
            return False
        self._incoming.write(data)
        return True

    def _flush(self) -> None:
        pending = self._outgoing.read()
        if pending:
            self._writer.write(pending)
