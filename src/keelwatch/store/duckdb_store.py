"""The embedded store: one DuckDB file in the data directory.

Writes come from one thread in large Arrow batches; each batch is one transaction, and DuckDB
syncs its write-ahead log on commit, so a returned ``append`` is durable (see docs/adr/0001).
Reads use their own cursors and read-only transactions. External file access is switched off
and the configuration locked, so user SQL cannot read or write files on the server.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import orjson
import pyarrow as pa

from keelwatch.errors import QueryError, StoreError, StoreLocked
from keelwatch.model.alert import Alert
from keelwatch.model.fields import Fields, dumps
from keelwatch.parsers.base import Batch, DeadLetter
from keelwatch.query.compile import Condition, QueryCompiler
from keelwatch.query.parse import FIELD_NAME
from keelwatch.store.alert_rows import ALERTS_DDL, alert_from_doc, alerts_arrow
from keelwatch.store.base import SEARCHABLE, SearchResult, SqlResult, Table, TimeRange
from keelwatch.store.columns import EVENT_COLUMNS, FINDING_COLUMNS, Column

DATABASE_FILE = "keelwatch.duckdb"

_DEAD_LETTERS_DDL = """
CREATE TABLE IF NOT EXISTS dead_letters (
    received_at TIMESTAMP, source VARCHAR, reason VARCHAR, raw BLOB
)"""
_TABLE_COLUMNS: dict[str, tuple[Column, ...]] = {
    "events": EVENT_COLUMNS,
    "findings": FINDING_COLUMNS,
}


def _ddl(table: str, columns: tuple[Column, ...]) -> str:
    body = ", ".join(f"{c.name} {c.sql_type}" for c in columns)
    return f"CREATE TABLE IF NOT EXISTS {table} ({body}, doc JSON, original VARCHAR)"


def _to_arrow(rows: list[Fields], columns: tuple[Column, ...]) -> pa.Table:
    arrays = [
        pa.array([column.coerce(row.get(column.field)) for row in rows], type=column.arrow_type)
        for column in columns
    ]
    docs: list[str] = []
    originals: list[str | None] = []
    for row in rows:
        original = row.pop("event.original", None)
        try:
            docs.append(dumps(row).decode())
        finally:
            if original is not None:
                row["event.original"] = original
        originals.append(original)
    names = [column.name for column in columns] + ["doc", "original"]
    return pa.Table.from_arrays([*arrays, pa.array(docs), pa.array(originals)], names=names)


def _dead_letters_arrow(letters: list[DeadLetter]) -> pa.Table:
    return pa.table(
        {
            "received_at": pa.array([d.received_at for d in letters], type=pa.timestamp("us")),
            "source": [d.source for d in letters],
            "reason": [d.reason for d in letters],
            "raw": pa.array([d.raw for d in letters], type=pa.binary()),
        }
    )


def _naive(moment: datetime) -> datetime:
    return moment if moment.tzinfo is None else moment.astimezone(UTC).replace(tzinfo=None)


class DuckDBStore:
    """``Store`` on an embedded DuckDB database in ``data_dir``."""

    def __init__(self, data_dir: Path, *, read_only: bool = False, threads: int = 2) -> None:
        self.path = Path(data_dir) / DATABASE_FILE
        if read_only and not self.path.exists():
            raise StoreError(f"no Keelwatch data in {data_dir} (start `keelwatch serve` or ingest)")
        if not read_only:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        config: dict[str, str | bool | int | float | list[str]] = {
            "enable_external_access": False,
            "lock_configuration": True,
            "threads": threads,
        }
        try:
            self._con = duckdb.connect(str(self.path), read_only=read_only, config=config)
        except duckdb.IOException as error:
            if "lock" in str(error).lower():
                raise StoreLocked(
                    f"{self.path} is in use by another process (a running `keelwatch serve`?); "
                    "go through its API with --server URL"
                ) from None
            raise StoreError(str(error)) from None
        self._write_lock = threading.Lock()
        self._compilers = {t: QueryCompiler(cols) for t, cols in _TABLE_COLUMNS.items()}
        if not read_only:
            for table, columns in _TABLE_COLUMNS.items():
                self._con.execute(_ddl(table, columns))
            self._con.execute(ALERTS_DDL)
            self._con.execute(_DEAD_LETTERS_DDL)

    # -- writing ---------------------------------------------------------------------------

    def append(self, batch: Batch) -> None:
        with self._write_lock:
            con = self._con
            con.execute("BEGIN")
            try:
                for table, rows in (("events", batch.events), ("findings", batch.findings)):
                    if rows:
                        self._insert(table, _to_arrow(rows, _TABLE_COLUMNS[table]))
                if batch.dead_letters:
                    self._insert("dead_letters", _dead_letters_arrow(batch.dead_letters))
                if batch.alerts:
                    self._upsert_alerts(alerts_arrow(batch.alerts))
                con.execute("COMMIT")
            except Exception:
                con.execute("ROLLBACK")
                raise

    def _upsert_alerts(self, data: pa.Table) -> None:
        self._con.register("_incoming_alerts", data)
        try:
            self._con.execute(
                "DELETE FROM alerts WHERE alert_id IN (SELECT alert_id FROM _incoming_alerts)"
            )
            self._con.execute("INSERT INTO alerts SELECT * FROM _incoming_alerts")
        finally:
            self._con.unregister("_incoming_alerts")

    def _insert(self, table: str, data: pa.Table) -> None:
        view = f"_incoming_{table}"
        self._con.register(view, data)
        try:
            self._con.execute(f"INSERT INTO {table} SELECT * FROM {view}")
        finally:
            self._con.unregister(view)

    def delete_older_than(self, cutoff: datetime) -> dict[str, int]:
        moment = _naive(cutoff)
        deleted: dict[str, int] = {}
        with self._write_lock:
            for table, column in (
                ("events", "ts"),
                ("findings", "ts"),
                ("alerts", "last_seen"),
                ("dead_letters", "received_at"),
            ):
                row = self._con.execute(
                    f"DELETE FROM {table} WHERE {column} < ?", [moment]
                ).fetchone()
                deleted[table] = int(row[0]) if row else 0
        return deleted

    # -- reading ---------------------------------------------------------------------------

    def _where(self, table: Table, query: str, window: TimeRange) -> Condition:
        if table not in SEARCHABLE:
            raise QueryError(f"cannot search {table!r}; searchable: {', '.join(SEARCHABLE)}")
        condition = self._compilers[table].compile(query)
        sql, params = [condition.sql], list(condition.params)
        if window.since is not None:
            sql.append("ts >= ?")
            params.append(_naive(window.since))
        if window.until is not None:
            sql.append("ts < ?")
            params.append(_naive(window.until))
        return Condition(" AND ".join(sql), params)

    def _read(self, sql: str, params: list[Any]) -> list[tuple[Any, ...]]:
        cursor = self._con.cursor()
        try:
            return cursor.execute(sql, params).fetchall()
        except duckdb.Error as error:
            raise QueryError(str(error).splitlines()[0]) from None
        finally:
            cursor.close()

    def scan(self, window: TimeRange, *, batch_size: int = 10_000) -> Iterator[list[Fields]]:
        """Every stored event in ``window``, oldest first, in batches (for retro-hunting)."""
        condition = self._where("events", "", window)
        cursor = self._con.cursor()
        try:
            cursor.execute(
                f"SELECT doc, original FROM events WHERE {condition.sql} ORDER BY ts",
                condition.params,
            )
            while rows := cursor.fetchmany(batch_size):
                batch = []
                for doc, original in rows:
                    event: Fields = orjson.loads(doc)
                    if original is not None:
                        event["event.original"] = original
                    batch.append(event)
                yield batch
        except duckdb.Error as error:
            raise QueryError(str(error).splitlines()[0]) from None
        finally:
            cursor.close()

    def search(
        self, query: str, window: TimeRange, *, limit: int = 100, table: Table = "events"
    ) -> SearchResult:
        where = self._where(table, query, window)
        total_row = self._read(f"SELECT count(*) FROM {table} WHERE {where.sql}", where.params)
        rows = self._read(
            f"SELECT doc, original FROM {table} WHERE {where.sql} ORDER BY ts DESC LIMIT ?",
            [*where.params, max(0, limit)],
        )
        events = []
        for doc, original in rows:
            event = orjson.loads(doc)
            if original is not None:
                event["event.original"] = original
            events.append(event)
        return SearchResult(total_row[0][0] if total_row else 0, events)

    def count_by(
        self, query: str, field: str, window: TimeRange, *, limit: int = 10, table: Table = "events"
    ) -> list[tuple[Any, int]]:
        if not FIELD_NAME.fullmatch(field):
            raise QueryError(f"{field!r} is not a field name")
        where = self._where(table, query, window)
        column = {c.field: c for c in _TABLE_COLUMNS[table]}.get(field)
        key_sql, key_params = (
            (column.name, []) if column else ("json_extract_string(doc, ?)", [f'$."{field}"'])
        )
        rows = self._read(
            f"SELECT {key_sql} AS value, count(*) AS n FROM {table} WHERE {where.sql} "
            "GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT ?",
            [*key_params, *where.params, max(0, limit)],
        )
        return [(value, int(n)) for value, n in rows]

    def sql(self, statement: str, *, max_rows: int = 10_000) -> SqlResult:
        """Run one read-only SELECT (also WITH … SELECT) and return at most ``max_rows`` rows."""
        try:
            statements = duckdb.extract_statements(statement)
        except duckdb.Error as error:
            raise QueryError(str(error).splitlines()[0]) from None
        if len(statements) != 1 or statements[0].type != duckdb.StatementType.SELECT:
            raise QueryError(
                "only one SELECT statement is allowed (the SQL interface is read-only)"
            )
        cursor = self._con.cursor()
        try:
            cursor.execute("BEGIN TRANSACTION READ ONLY")
            cursor.execute(statement)
            columns = [d[0] for d in cursor.description or []]
            rows = cursor.fetchmany(max_rows + 1)
            cursor.execute("ROLLBACK")
        except duckdb.Error as error:
            raise QueryError(str(error).splitlines()[0]) from None
        finally:
            cursor.close()
        return SqlResult(columns, rows[:max_rows], len(rows) > max_rows)

    def dead_letters(self, window: TimeRange, *, limit: int = 100) -> list[dict[str, Any]]:
        conditions, params = ["TRUE"], []
        if window.since is not None:
            conditions.append("received_at >= ?")
            params.append(_naive(window.since))
        if window.until is not None:
            conditions.append("received_at < ?")
            params.append(_naive(window.until))
        rows = self._read(
            "SELECT received_at, source, reason, raw FROM dead_letters WHERE "
            + " AND ".join(conditions)
            + " ORDER BY received_at DESC LIMIT ?",
            [*params, max(0, limit)],
        )
        return [
            {
                "received_at": r[0],
                "source": r[1],
                "reason": r[2],
                "raw": bytes(r[3]).decode("utf-8", "replace"),
            }
            for r in rows
        ]

    def alerts(
        self,
        window: TimeRange,
        *,
        rule: str | None = None,
        min_severity: int | None = None,
        limit: int = 100,
    ) -> tuple[int, list[dict[str, Any]]]:
        """Alerts active in ``window`` (newest first), with the total before ``limit``."""
        conditions: list[str] = ["TRUE"]
        params: list[Any] = []
        if window.since is not None:
            conditions.append("last_seen >= ?")
            params.append(_naive(window.since))
        if window.until is not None:
            conditions.append("first_seen < ?")
            params.append(_naive(window.until))
        if rule:
            conditions.append("(rule_id = ? OR rule_title = ?)")
            params.extend([rule, rule])
        if min_severity is not None:
            conditions.append("severity >= ?")
            params.append(min_severity)
        where = " AND ".join(conditions)
        total = self._read(f"SELECT count(*) FROM alerts WHERE {where}", params)
        rows = self._read(
            f"SELECT doc FROM alerts WHERE {where} ORDER BY last_seen DESC, alert_id LIMIT ?",
            [*params, max(0, limit)],
        )
        return int(total[0][0]), [orjson.loads(r[0]) for r in rows]

    def latest_alerts(self, limit: int) -> list[Alert]:
        """The ``limit`` alerts seen last: the dedup state to restore after a restart."""
        rows = self._read("SELECT doc FROM alerts ORDER BY last_seen DESC LIMIT ?", [limit])
        return [alert_from_doc(r[0]) for r in reversed(rows)]

    def counts(self) -> dict[str, int]:
        result = {}
        for table in ("events", "findings", "alerts", "dead_letters"):
            row = self._read(f"SELECT count(*) FROM {table}", [])
            result[table] = int(row[0][0]) if row else 0
        return result

    def close(self) -> None:
        self._con.close()
