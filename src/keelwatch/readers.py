"""Where read commands get their answers: the data directory, or a running server's API.

DuckDB lets one process write a database file. While `keelwatch serve` owns the data directory,
the CLI cannot open it, so it goes through the server (whose address `serve` records in
``<data>/server.json``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import orjson

from keelwatch.alerting.hunt import hunt_report
from keelwatch.client import ServerClient
from keelwatch.errors import QueryError, StoreLocked
from keelwatch.model.fields import dumps
from keelwatch.model.severity import NAMES, severity_from_name
from keelwatch.query.timerange import time_range
from keelwatch.store.base import Table
from keelwatch.store.duckdb_store import DuckDBStore

SERVER_FILE = "server.json"


class Reader(Protocol):
    def search(
        self, query: str, since: str | None, until: str | None, limit: int, table: Table
    ) -> dict[str, Any]: ...

    def count_by(
        self, query: str, field: str, since: str | None, until: str | None, limit: int, table: Table
    ) -> list[dict[str, Any]]: ...

    def sql(self, statement: str) -> dict[str, Any]: ...

    def dead_letters(self, since: str | None, limit: int) -> list[dict[str, Any]]: ...

    def alerts(self, query: AlertQuery) -> dict[str, Any]: ...

    def hunt(
        self, rules: list[tuple[str, str]], since: str | None, until: str | None
    ) -> dict[str, Any]: ...

    def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class AlertQuery:
    since: str | None = None
    until: str | None = None
    rule: str | None = None
    severity: str | None = None  # the lowest severity shown
    limit: int = 100

    def min_severity(self) -> int | None:
        if not self.severity:
            return None
        level = severity_from_name(self.severity)
        if level is None:
            raise QueryError(f"unknown severity {self.severity!r}; use {', '.join(NAMES)}")
        return level


class LocalReader:
    def __init__(self, store: DuckDBStore) -> None:
        self.store = store

    def search(
        self, query: str, since: str | None, until: str | None, limit: int, table: Table
    ) -> dict[str, Any]:
        result = self.store.search(query, time_range(since, until), limit=limit, table=table)
        return {"total": result.total, table: result.events}

    def count_by(
        self, query: str, field: str, since: str | None, until: str | None, limit: int, table: Table
    ) -> list[dict[str, Any]]:
        window = time_range(since, until)
        rows = self.store.count_by(query, field, window, limit=limit, table=table)
        return [{"value": value, "count": count} for value, count in rows]

    def sql(self, statement: str) -> dict[str, Any]:
        result = self.store.sql(statement)
        return {"columns": result.columns, "rows": result.rows, "truncated": result.truncated}

    def dead_letters(self, since: str | None, limit: int) -> list[dict[str, Any]]:
        return self.store.dead_letters(time_range(since, None), limit=limit)

    def alerts(self, query: AlertQuery) -> dict[str, Any]:
        total, rows = self.store.alerts(
            time_range(query.since, query.until),
            rule=query.rule,
            min_severity=query.min_severity(),
            limit=query.limit,
        )
        return {"total": total, "alerts": rows}

    def hunt(
        self, rules: list[tuple[str, str]], since: str | None, until: str | None
    ) -> dict[str, Any]:
        report = hunt_report(self.store, rules, time_range(since, until))
        result: dict[str, Any] = orjson.loads(dumps(report))  # the API's JSON types
        return result

    def close(self) -> None:
        self.store.close()


class RemoteReader:
    def __init__(self, client: ServerClient) -> None:
        self.client = client

    def search(
        self, query: str, since: str | None, until: str | None, limit: int, table: Table
    ) -> dict[str, Any]:
        answer: dict[str, Any] = self.client.get(
            f"/api/v1/{table}", q=query, since=since, until=until, limit=limit
        )
        return answer

    def count_by(
        self, query: str, field: str, since: str | None, until: str | None, limit: int, table: Table
    ) -> list[dict[str, Any]]:
        answer = self.client.get(
            f"/api/v1/{table}", q=query, since=since, until=until, limit=limit, count_by=field
        )
        buckets: list[dict[str, Any]] = answer["buckets"]
        return buckets

    def sql(self, statement: str) -> dict[str, Any]:
        answer: dict[str, Any] = self.client.post(
            "/api/v1/sql", orjson.dumps({"query": statement}), {"Content-Type": "application/json"}
        )
        return answer

    def dead_letters(self, since: str | None, limit: int) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = self.client.get(
            "/api/v1/dead-letters", since=since, limit=limit
        )["dead_letters"]
        return rows

    def alerts(self, query: AlertQuery) -> dict[str, Any]:
        query.min_severity()  # fail early, with the same message as the local reader
        result: dict[str, Any] = self.client.get(
            "/api/v1/alerts",
            since=query.since,
            until=query.until,
            rule=query.rule,
            severity=query.severity,
            limit=query.limit,
        )
        return result

    def hunt(
        self, rules: list[tuple[str, str]], since: str | None, until: str | None
    ) -> dict[str, Any]:
        body = {"rules": [{"name": n, "text": t} for n, t in rules], "since": since, "until": until}
        result: dict[str, Any] = self.client.post(
            "/api/v1/hunt", orjson.dumps(body), {"Content-Type": "application/json"}
        )
        return result

    def close(self) -> None:
        self.client.close()


def record_server(data_dir: Path, url: str) -> None:
    (data_dir / SERVER_FILE).write_bytes(orjson.dumps({"url": url}))


def open_reader(data_dir: Path, server: str | None, token: str | None) -> Reader:
    """The server's API when asked for or when a server owns ``data_dir``; else the files."""
    token = token or os.environ.get("KEELWATCH_TOKEN")
    if server:
        return RemoteReader(ServerClient(server, token))
    try:
        return LocalReader(DuckDBStore(data_dir, read_only=True))
    except StoreLocked:
        marker = data_dir / SERVER_FILE
        if not marker.exists():
            raise
        url = orjson.loads(marker.read_bytes())["url"]
        return RemoteReader(ServerClient(url, token))
