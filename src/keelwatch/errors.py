"""The Keelwatch exception tree.

KeelwatchError
├── ConfigError            bad option or configuration value
├── RecordError            one record cannot be taken (it is dead-lettered, the batch goes on)
│   ├── RecordTooLarge     over a size, depth or field-count limit
│   └── ParseError         a parser could not make sense of the record
├── RequestError           a whole request is refused (maps to an HTTP 4xx)
│   └── PayloadTooLarge    body over its limit before or after decompression (HTTP 413)
├── QueryError             a search query that does not parse or compile
├── StoreError             the store refused an operation
│   └── StoreLocked        another process owns the data directory
└── AuthError              missing, unknown or insufficient credentials
"""

from __future__ import annotations


class KeelwatchError(Exception):
    """Root of every error Keelwatch raises on purpose."""


class ConfigError(KeelwatchError):
    pass


class RecordError(KeelwatchError):
    """A single record is refused; `where` says which source (and offset) it came from."""

    def __init__(self, reason: str, *, where: str = "") -> None:
        super().__init__(f"{where}: {reason}" if where else reason)
        self.reason = reason
        self.where = where


class RecordTooLarge(RecordError):
    pass


class ParseError(RecordError):
    pass


class RequestError(KeelwatchError):
    status: int = 400


class PayloadTooLarge(RequestError):
    status = 413


class QueryError(KeelwatchError):
    def __init__(self, message: str, *, position: int | None = None) -> None:
        where = f" at position {position}" if position is not None else ""
        super().__init__(f"{message}{where}")
        self.position = position


class StoreError(KeelwatchError):
    pass


class StoreLocked(StoreError):
    pass


class AuthError(KeelwatchError):
    pass
