"""API tokens: random bearer secrets, stored only as SHA-256 hashes, each with one role.

Roles: ``ingest`` may only send data; ``analyst`` may only read; ``admin`` may do both.
Tokens live in ``<data>/tokens.json`` (mode 0600) so the CLI can manage them while a server
runs; the server re-reads the file when it changes.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import threading
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

import orjson

from keelwatch.errors import AuthError, ConfigError

Role = Literal["ingest", "analyst", "admin"]
Permission = Literal["ingest", "read"]
ROLES: tuple[Role, ...] = ("ingest", "analyst", "admin")
_GRANTS: dict[Role, frozenset[Permission]] = {
    "ingest": frozenset({"ingest"}),
    "analyst": frozenset({"read"}),
    "admin": frozenset({"ingest", "read"}),
}
TOKENS_FILE = "tokens.json"
TOKEN_PREFIX = "kw_"  # noqa: S105 - a prefix that marks Keelwatch secrets, not a secret


@dataclass(frozen=True, slots=True)
class TokenRecord:
    id: str
    name: str
    role: Role
    sha256: str
    created: str


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class TokenStore:
    def __init__(self, data_dir: Path) -> None:
        self.path = Path(data_dir) / TOKENS_FILE
        self._lock = threading.Lock()
        self._records: list[TokenRecord] = []
        self._stamp: tuple[int, int] | None = None

    def _load(self) -> list[TokenRecord]:
        with self._lock:
            try:
                stat = self.path.stat()
            except FileNotFoundError:
                self._records, self._stamp = [], None
                return self._records
            stamp = (stat.st_mtime_ns, stat.st_size)
            if stamp != self._stamp:
                raw = orjson.loads(self.path.read_bytes())
                self._records = [TokenRecord(**item) for item in raw.get("tokens", [])]
                self._stamp = stamp
            return self._records

    def records(self) -> list[TokenRecord]:
        return list(self._load())

    def create(self, role: str, name: str = "") -> tuple[TokenRecord, str]:
        """Make a token; the secret is returned once and never stored."""
        if role not in ROLES:
            raise ConfigError(f"unknown role {role!r}; roles: {', '.join(ROLES)}")
        secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
        record = TokenRecord(
            id=secrets.token_hex(4),
            name=name or role,
            role=role,
            sha256=_digest(secret),
            created=datetime.now(UTC).isoformat(timespec="seconds"),
        )
        self._save([*self._load(), record])
        return record, secret

    def revoke(self, token_id: str) -> bool:
        records = self._load()
        kept = [r for r in records if r.id != token_id]
        if len(kept) == len(records):
            return False
        self._save(kept)
        return True

    def _save(self, records: list[TokenRecord]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_suffix(".tmp")
        payload = orjson.dumps({"tokens": [asdict(r) for r in records]}, option=orjson.OPT_INDENT_2)
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, self.path)

    def authenticate(self, secret: str) -> TokenRecord:
        """The record for ``secret``; AuthError if it is unknown."""
        digest = _digest(secret)
        match = None
        for record in self._load():
            # Compare every record in constant time so timing says nothing about the hash.
            if hmac.compare_digest(record.sha256, digest):
                match = record
        if match is None:
            raise AuthError("unknown token")
        return match

    @staticmethod
    def allows(record: TokenRecord, permission: Permission) -> bool:
        return permission in _GRANTS[record.role]
