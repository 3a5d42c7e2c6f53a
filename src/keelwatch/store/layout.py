"""How events and findings sit on disk, and how the user-facing tables are put back together.

Each searchable table ``X`` is stored as ``X_rows``:

- ``seq``: a number the store gives each row, strictly increasing in append order. DuckDB keeps
  min/max per row group, so a ``seq`` range reads only the row groups that can hold it (the id
  filters in store/id_filter.py point lookups at such ranges, the token filters in
  store/token_filter.py free text).
- the typed columns of store/columns.py;
- ``in_column``: bit ``i`` is set when the ``i``-th column holds its field exactly and ``doc``
  therefore does not repeat it;
- ``doc``: JSON text of the remaining fields, zstd-compressed by DuckDB;
- ``original``: the record as received, zstd-compressed (about 4x smaller than DuckDB's default
  dictionary/FSST compression on 1 KB audit records, see docs/adr/0003).

``X`` itself is a view with the layout users query with SQL: the typed columns, the full ``doc``
(columns spliced back in) and ``original``. See docs/adr/0003.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
import pyarrow as pa

from keelwatch.model.fields import Fields, dumps, isoformat
from keelwatch.store.columns import Column

SCHEMA_VERSION = 4  # 1: plain tables (ADR 0003); 2: no token filters; 3: tokens hashed by crc32
SCHEMA_DDL = "CREATE TABLE IF NOT EXISTS keelwatch_schema (version INTEGER NOT NULL)"


def rows_table(table: str) -> str:
    return f"{table}_rows"


def table_ddl(table: str, columns: tuple[Column, ...]) -> str:
    if len(columns) > 62:
        raise ValueError(f"{table}: the in_column bit mask holds at most 62 columns")
    body = ", ".join(f"{c.name} {c.sql_type}" for c in columns)
    return (
        f"CREATE TABLE IF NOT EXISTS {rows_table(table)} (seq BIGINT NOT NULL, {body}, "
        "in_column BIGINT NOT NULL, doc VARCHAR USING COMPRESSION zstd, "
        "original VARCHAR USING COMPRESSION zstd)"
    )


def view_ddl(table: str, columns: tuple[Column, ...]) -> str:
    """The user-facing view: typed columns, the whole ``doc`` as JSON, and ``original``."""
    pairs = [
        f"CASE WHEN in_column & {1 << i} <> 0 THEN "
        f"'{dumps(c.field).decode()}:' || {c.json_sql()} END"
        for i, c in enumerate(columns)
    ]
    # concat_ws skips NULLs: absent fields and an empty stored doc add nothing
    rest = "NULLIF(substr(doc, 2, length(doc) - 2), '')"
    doc = f"CAST('{{' || concat_ws(',', {', '.join(pairs)}, {rest}) || '}}' AS JSON)"
    names = ", ".join(c.name for c in columns)
    return (
        f"CREATE OR REPLACE VIEW {table} AS SELECT {names}, {doc} AS doc, original "
        f"FROM {rows_table(table)}"
    )


def to_arrow(rows: list[Fields], columns: tuple[Column, ...], first_seq: int) -> pa.Table:
    """One Arrow table for ``rows`` in the stored layout; the caller's dicts are not changed."""
    count = len(rows)
    index = {c.field: (bit, c.holds, c.coerce) for bit, c in enumerate(columns)}
    values: list[list[Any]] = [[None] * count for _ in columns]
    masks = [0] * count
    docs: list[str] = []
    originals: list[str | None] = []
    for i, row in enumerate(rows):
        rest = dict(row)
        mask = 0
        for field in row.keys() & index:  # the few promoted fields a row has, not every column
            value = rest[field]
            if value is None:
                continue
            bit, holds, coerce = index[field]
            if holds(value):  # kept only in the column, which needs no coercion either
                values[bit][i] = value
                del rest[field]
                mask |= 1 << bit
            else:
                values[bit][i] = coerce(value)
        masks[i] = mask
        originals.append(rest.pop("event.original", None))
        docs.append(dumps(rest).decode())
    names = ["seq", *(c.name for c in columns), "in_column", "doc", "original"]
    return pa.Table.from_arrays(
        [
            pa.array(range(first_seq, first_seq + count), type=pa.int64()),
            *(pa.array(v, type=c.arrow_type) for v, c in zip(values, columns, strict=True)),
            pa.array(masks, type=pa.int64()),
            pa.array(docs, type=pa.string()),
            pa.array(originals, type=pa.string()),
        ],
        names=names,
    )


def read_columns(columns: tuple[Column, ...]) -> str:
    """The select list ``from_row`` expects."""
    return ", ".join([*(c.name for c in columns), "in_column", "doc", "original"])


def from_row(row: tuple[Any, ...], columns: tuple[Column, ...]) -> Fields:
    """An event as stored (timestamps as text, as in the JSON doc) from a ``read_columns`` row."""
    mask, doc, original = row[-3:]
    event: Fields = {}
    for bit, column in enumerate(columns):
        if mask & (1 << bit):
            value = row[bit]
            if isinstance(value, datetime):
                value = isoformat(value.replace(tzinfo=UTC))
            event[column.field] = value
    event.update(orjson.loads(doc))
    if original is not None:
        event["event.original"] = original
    return event
