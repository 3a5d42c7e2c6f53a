"""Server-side TLS over an already accepted asyncio stream, through memory BIOs.

Listeners that must see (and count) failed handshakes run TLS themselves instead of passing
``ssl=`` to ``start_server``, where a failed handshake never reaches the handler. Upgrading a
stream with ``StreamWriter.start_tls`` is no substitute: bytes the client sent at once (its
ClientHello) may already sit in the reader's buffer, out of the TLS layer's sight, and the
handshake then hangs. Here every byte read goes through ``ssl.SSLObject``, on any event loop.
"""

from __future__ import annotations

import asyncio
import ssl
from typing import Any

READ_CHUNK_BYTES = 64 * 1024


class TLSStream:
    """Reads application data from a TLS client; writes only what TLS itself needs to send."""

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
        """Complete the handshake; raises ``ssl.SSLError`` (after sending the alert) or
        ``ConnectionError`` when the client goes away first."""
        while True:
            try:
                self._tls.do_handshake()
                self._send()
                return
            except ssl.SSLWantReadError:
                self._send()
                if not await self._receive():
                    raise ConnectionError("closed during the TLS handshake") from None
            except ssl.SSLError:
                self._send()  # the alert tells the client why
                raise

    def peer_certificate(self) -> dict[str, Any] | None:
        certificate = self._tls.getpeercert()
        return dict(certificate) if certificate else None

    async def read(self, size: int = READ_CHUNK_BYTES) -> bytes:
        """Up to ``size`` bytes of application data; b"" at the end of the stream."""
        while True:
            try:
                data = self._tls.read(size)
                self._send()  # e.g. a key update the read produced
                return data
            except ssl.SSLWantReadError:
                self._send()
                if not await self._receive():
                    return b""  # closed without close_notify: what arrived is still good
            except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
                return b""

    async def _receive(self) -> bool:
        data = await self._reader.read(READ_CHUNK_BYTES)
        if not data:
            self._incoming.write_eof()
            return False
        self._incoming.write(data)
        return True

    def _send(self) -> None:
        pending = self._outgoing.read()
        if pending and not self._writer.is_closing():
            self._writer.write(pending)
