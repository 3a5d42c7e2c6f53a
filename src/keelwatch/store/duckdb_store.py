"""The embedded store: one DuckDB file in the data directory.

Writes come from one thread in large Arrow batches; each batch is one transaction, and DuckDB
syncs its write-ahead log on commit, so a returned ``append`` is durable (see docs/adr/0001).
Reads use their own cursors and read-only transactions. External file access is switched off
and the configuration locked, so user SQL cannot read or write files on the server.

Events and findings are stored in ``*_rows`` tables behind views of the same shape users always
saw (store/layout.py, docs/adr/0003); a file written with another layout is refused, not read.
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
from keelwatch.model.fields import Fields
from keelwatch.parsers.base import Batch, DeadLetter
from keelwatch.query.compile import Condition, QueryCompiler
from keelwatch.query.parse import FIELD_NAME
from keelwatch.store import id_filter, layout, token_filter
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
        try:
            self._open_schema(read_only)
        except BaseException:
            self._con.close()
            raise
        self._next_seq = {table: self._max_seq(table) + 1 for table in _TABLE_COLUMNS}
        self._id_filters = id_filter.IdFilters()
        self._token_filters = token_filter.TokenFilters()
        self._compilers = {
            "events": QueryCompiler(
                EVENT_COLUMNS, locate=self._locate_event, locate_text=self._locate_text
            ),
            "findings": QueryCompiler(FINDING_COLUMNS),
        }

    def _open_schema(self, read_only: bool) -> None:
        """Create the layout in a new file; refuse a file written with another layout."""
        tables = {
            str(row[0])
            for row in self._con.execute(
                "SELECT table_name FROM duckdb_tables() WHERE database_name = current_database()"
            ).fetchall()
        }
        if "keelwatch_schema" in tables:
            row = self._con.execute("SELECT max(version) FROM keelwatch_schema").fetchone()
            found = row[0] if row else None
        else:
            found = 1 if "events" in tables else None  # layout 1 had no version table
        if found is not None and found != layout.SCHEMA_VERSION:
            raise StoreError(
                f"{self.path} was written with storage layout {found}; this Keelwatch reads "
                f"layout {layout.SCHEMA_VERSION} only. Move the data directory away (or use "
                "the Keelwatch version that wrote it) and ingest again."
            )
        if found is None:
            if read_only:
                raise StoreError(f"{self.path} holds no Keelwatch data")
            self._create_schema()

    def _create_schema(self) -> None:
        con = self._con
        con.execute("BEGIN")
        try:
            for table, columns in _TABLE_COLUMNS.items():
                con.execute(layout.table_ddl(table, columns))
                con.execute(layout.view_ddl(table, columns))
            con.execute(ALERTS_DDL)
            con.execute(_DEAD_LETTERS_DDL)
            con.execute(id_filter.DDL)
            con.execute(token_filter.DDL)
            con.execute(layout.SCHEMA_DDL)
            con.execute("INSERT INTO keelwatch_schema VALUES (?)", [layout.SCHEMA_VERSION])
            con.execute("COMMIT")
        except Exception:
            con.execute("ROLLBACK")
            raise

    def _max_seq(self, table: str) -> int:
        row = self._con.execute(f"SELECT max(seq) FROM {layout.rows_table(table)}").fetchone()
        return -1 if row is None or row[0] is None else int(row[0])

    def _locate_event(self, event_id: str) -> list[tuple[int, int]] | None:
        return self._id_filters.ranges(self._con, event_id)

    def _locate_text(self, text: str) -> list[tuple[int, int]] | None:
        return self._token_filters.ranges(self._con, text)

    # -- writing ---------------------------------------------------------------------------

    def append(self, batch: Batch) -> None:
        with self._write_lock:
            con = self._con
            con.execute("BEGIN")
            try:
                for table, rows in (("events", batch.events), ("findings", batch.findings)):
                    if rows:
                        first_seq = self._next_seq[table]
                        data = layout.to_arrow(rows, _TABLE_COLUMNS[table], first_seq)
                        self._insert(layout.rows_table(table), data)
                        if table == "events":
                            ids = data.column("event_id").to_pylist()
                            self._id_filters.add(con, ids, first_seq)
                            originals = data.column("original").to_pylist()
                            self._token_filters.add(con, originals, first_seq)
                if batch.dead_letters:
                    self._insert("dead_letters", _dead_letters_arrow(batch.dead_letters))
                if batch.alerts:
                    self._upsert_alerts(alerts_arrow(batch.alerts))
                con.execute("COMMIT")
            except Exception:
                con.execute("ROLLBACK")
                raise
            # numbers of a rolled-back batch are simply not reused: seq only has to increase
            self._next_seq["events"] += len(batch.events)
            self._next_seq["findings"] += len(batch.findings)

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
            for table, stored, column in (
                ("events", layout.rows_table("events"), "ts"),
                ("findings", layout.rows_table("findings"), "ts"),
                ("alerts", "alerts", "last_seen"),
                ("dead_letters", "dead_letters", "received_at"),
            ):
                row = self._con.execute(
                    f"DELETE FROM {stored} WHERE {column} < ?", [moment]
                ).fetchone()
                deleted[table] = int(row[0]) if row else 0
            if deleted["events"]:
                row = self._con.execute(
                    f"SELECT min(seq) FROM {layout.rows_table('events')}"
                ).fetchone()
                first_seq = None if row is None else row[0]
                self._id_filters.forget_below(self._con, first_seq)
                self._token_filters.forget_below(self._con, first_seq)
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
                f"SELECT {layout.read_columns(EVENT_COLUMNS)} FROM {layout.rows_table('events')} "
                f"WHERE {condition.sql} ORDER BY ts, seq",
                condition.params,
            )
            while rows := cursor.fetchmany(batch_size):
                yield [layout.from_row(row, EVENT_COLUMNS) for row in rows]
        except duckdb.Error as error:
            raise QueryError(str(error).splitlines()[0]) from None
        finally:
            cursor.close()

    def search(
        self, query: str, window: TimeRange, *, limit: int = 100, table: Table = "events"
    ) -> SearchResult:
        where = self._where(table, query, window)
        stored, columns = layout.rows_table(table), _TABLE_COLUMNS[table]
        if limit <= 0:
            total_row = self._read(f"SELECT count(*) FROM {stored} WHERE {where.sql}", where.params)
            return SearchResult(int(total_row[0][0]) if total_row else 0, [])
        # One pass over the matches gives the total and the newest rows' numbers (a filter such
        # as free text is evaluated once, not twice); fetching those by seq reads few row groups.
        ((total, newest),) = self._read(
            f"SELECT count(*), max_by(seq, (COALESCE(ts, '-infinity'::TIMESTAMP), seq), ?) "
            f"FROM {stored} WHERE {where.sql}",
            [limit, *where.params],
        )
        rows = self._read(
            f"SELECT {layout.read_columns(columns)} FROM {stored} "
            "WHERE seq IN (SELECT unnest(?::BIGINT[])) ORDER BY ts DESC, seq DESC",
            [newest or []],
        )
        return SearchResult(int(total), [layout.from_row(row, columns) for row in rows])

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
            f"SELECT {key_sql} AS value, count(*) AS n FROM {layout.rows_table(table)} "
            f"WHERE {where.sql} "
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
            stored = layout.rows_table(table) if table in _TABLE_COLUMNS else table
            row = self._read(f"SELECT count(*) FROM {stored}", [])
            result[table] = int(row[0][0]) if row else 0
        return result

    def close(self) -> None:
        self._con.close()
