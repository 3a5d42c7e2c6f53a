"""What every protocol adapter shares: authentication, bounded body reads and the hand-off.

An adapter only turns bytes into records plus a source hint and answers its protocol's
acknowledgement once ``Intake.submit`` returns (the records are then durable). HTTP adapters
expose ``routes(intake)``; TCP/UDP adapters are ``Listener`` classes the server starts and stops.
"""

from __future__ import annotations

import base64
import binascii
import ssl
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from starlette.requests import Request

from keelwatch.auth import TokenStore
from keelwatch.errors import AuthError, ConfigError, PayloadTooLarge
from keelwatch.ingest.metrics import Metrics
from keelwatch.ingest.service import IngestLimits, IngestResult, IngestService
from keelwatch.parsers.base import Record
from keelwatch.parsers.registry import AUTO, parsers


@dataclass(frozen=True, slots=True)
class TLSFiles:
    """A server certificate and key; with ``client_ca``, clients must present a certificate."""

    cert: Path
    key: Path
    client_ca: Path | None = None

    def server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        try:
            context.load_cert_chain(self.cert, self.key)
            if self.client_ca is not None:
                context.load_verify_locations(cafile=str(self.client_ca))
                context.verify_mode = ssl.CERT_REQUIRED
        except (OSError, ssl.SSLError) as error:
            raise ConfigError(f"cannot load TLS files ({self.cert}, {self.key}): {error}") from None
        return context


@dataclass(frozen=True, slots=True)
class ListenerSettings:
    """Which TCP/UDP protocol listeners to start; a port of None leaves that one off."""

    host: str = "127.0.0.1"
    forward_port: int | None = None
    forward_shared_key: str | None = None  # the Fluent forward `shared_key`, also its auth
    forward_tls: bool = False
    syslog_udp_port: int | None = None
    syslog_tcp_port: int | None = None
    syslog_tls_port: int | None = None
    lumberjack_port: int | None = None
    lumberjack_tls: bool = False
    tls: TLSFiles | None = None
    max_connections_per_client: int = 64
    idle_timeout_seconds: float = 300.0
    max_frame_bytes: int = 16 * 1024 * 1024
    source_hint: dict[str, str] = field(default_factory=dict)  # protocol → parser name

    def tls_context(self, protocol: str) -> ssl.SSLContext:
        if self.tls is None:
            raise ConfigError(f"{protocol} over TLS needs --tls-cert and --tls-key")
        return self.tls.server_context()


class Listener(Protocol):
    """A TCP or UDP protocol server run inside `keelwatch serve`."""

    NAME: str

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


def credential(authorization: str) -> str | None:
    """The secret in an Authorization header, in any form collectors send.

    ``Bearer <token>``, ``Splunk <token>``, ``Basic base64(user:token)`` (the password is the
    token; the user name is ignored) and ``ApiKey base64(id:token)`` or ``ApiKey <token>``.
    """
    scheme, _, value = authorization.strip().partition(" ")
    value = value.strip()
    if not value:
        return None
    scheme = scheme.lower()
    if scheme in ("bearer", "splunk"):
        return value
    if scheme in ("basic", "apikey"):
        try:
            decoded = base64.b64decode(value, validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return value if scheme == "apikey" else None
        if ":" in decoded:
            return decoded.partition(":")[2]
        return value if scheme == "apikey" else None
    return None


def source_for(name: str | None) -> str:
    """The parser a protocol-level hint (index, tag, sourcetype) names, else auto recognition."""
    if name:
        known = parsers()
        candidate = name.strip().lower()
        if candidate in known:
            return candidate
        # "keelwatch-k8s-audit-2026.11", "k8s_audit": match by a parser name inside the hint
        flat = candidate.replace("_", "-")
        for parser_name in sorted(known, key=len, reverse=True):
            if parser_name in flat:
                return parser_name
    return AUTO


class Intake:
    """The one seam between protocol adapters and durable storage."""

    def __init__(
        self,
        service: IngestService,
        tokens: TokenStore,
        *,
        auth_required: bool,
        listeners: ListenerSettings | None = None,
    ) -> None:
        self.service = service
        self.tokens = tokens
        self.auth_required = auth_required
        self.listeners = listeners or ListenerSettings()

    @property
    def metrics(self) -> Metrics:
        return self.service.metrics

    @property
    def limits(self) -> IngestLimits:
        return self.service.limits

    def authorized(self, secret: str | None) -> bool:
        """True when ``secret`` is a token that may ingest (or auth is switched off)."""
        if not self.auth_required:
            return True
        if not secret:
            return False
        try:
            record = self.tokens.authenticate(secret)
        except AuthError:
            return False
        return TokenStore.allows(record, "ingest")

    def reject(self, protocol: str, reason: str, count: int = 1) -> None:
        self.metrics.add(
            "keelwatch_requests_rejected_total", count, protocol=protocol, reason=reason
        )

    async def read_body(self, request: Request) -> bytes:
        """The request body, refused with 413 as soon as it passes the body limit."""
        limit = self.limits.max_body_bytes
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise PayloadTooLarge(f"body is larger than {limit} bytes")
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise PayloadTooLarge(f"body is larger than {limit} bytes")
            chunks.append(chunk)
        return b"".join(chunks)

    async def submit(
        self,
        records: Sequence[Record],
        source: str,
        protocol: str,
        *,
        dead_letters: Sequence[tuple[bytes, str]] = (),
        item_outcomes: bool = False,
    ) -> IngestResult:
        """Normalize and store; returns once durable. Raises ``Overloaded`` under overload."""
        return await self.service.ingest_records(
            records, source, protocol, dead_letters=dead_letters, item_outcomes=item_outcomes
        )
