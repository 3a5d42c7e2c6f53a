"""The storage seam: every backend implements ``Store``."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, Protocol

from keelwatch.model.alert import Alert
from keelwatch.model.fields import Fields
from keelwatch.parsers.base import Batch

Table = Literal["events", "findings", "alerts", "dead_letters"]
SEARCHABLE: tuple[Table, ...] = ("events", "findings")


@dataclass(slots=True)
class SearchResult:
    total: int
    events: list[dict[str, Any]]


@dataclass(slots=True)
class SqlResult:
    columns: list[str]
    rows: list[tuple[Any, ...]]
    truncated: bool


@dataclass(frozen=True, slots=True)
class TimeRange:
    since: datetime | None = None
    until: datetime | None = None


class Store(Protocol):
    """Append in batches, search with the query language, answer read-only SQL."""

    def append(self, batch: Batch) -> None:
        """Write a batch in one transaction; returns only once it is durable."""

    def search(
        self, query: str, window: TimeRange, *, limit: int = 100, table: Table = "events"
    ) -> SearchResult: ...

    def scan(self, window: TimeRange, *, batch_size: int = 10_000) -> Iterator[list[Fields]]:
        """Every stored event in ``window``, oldest first, in batches."""
        ...

    def count_by(
        self, query: str, field: str, window: TimeRange, *, limit: int = 10, table: Table = "events"
    ) -> list[tuple[Any, int]]: ...

    def sql(self, statement: str, *, max_rows: int = 10_000) -> SqlResult: ...

    def dead_letters(self, window: TimeRange, *, limit: int = 100) -> list[dict[str, Any]]: ...

    def alerts(
        self,
        window: TimeRange,
        *,
        rule: str | None = None,
        min_severity: int | None = None,
        limit: int = 100,
    ) -> tuple[int, list[dict[str, Any]]]: ...

    def latest_alerts(self, limit: int) -> list[Alert]: ...

    def delete_older_than(self, cutoff: datetime) -> dict[str, int]: ...

    def counts(self) -> dict[str, int]: ...

    def close(self) -> None: ...
