"""Storage layout 2: the views give back exactly what was appended; id filters; layout versions."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import duckdb
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from keelwatch.errors import StoreError
from keelwatch.model.fields import dumps
from keelwatch.parsers.base import Batch
from keelwatch.store import id_filter, layout
from keelwatch.store.base import TimeRange
from keelwatch.store.columns import EVENT_COLUMNS
from keelwatch.store.duckdb_store import DATABASE_FILE, DuckDBStore

T0 = datetime(2026, 3, 1, tzinfo=UTC)
EVERYTHING = TimeRange()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[DuckDBStore]:
    store = DuckDBStore(tmp_path / "data")
    yield store
    store.close()


# -- the stored form gives back every field ------------------------------------------------------

_TEXT = st.text(st.characters(exclude_characters="\x00", exclude_categories=("Cs",)), max_size=12)
_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    _TEXT,
    st.datetimes(
        min_value=datetime(1990, 1, 1),
        max_value=datetime(2100, 1, 1),
        timezones=st.sampled_from([UTC, timezone(timedelta(hours=5, minutes=30))]) | st.none(),
    ),
)
_VALUES = st.one_of(_SCALARS, st.lists(st.one_of(st.none(), st.booleans(), _TEXT), max_size=3))
# promoted fields of every column type, and fields kept only in doc
_FIELDS = st.sampled_from(
    [
        "event.id",
        "message",
        "event.severity",
        "destination.port",
        "event.ingested",
        "kubernetes.audit.verb",
        "user.name",
        "kubernetes.labels.app",
        "falco.output_fields.proc.cmdline",
        'odd "quoted" key',
    ]
)


def _stored_form(fields: dict[str, Any]) -> dict[str, Any]:
    """What an event looks like once written as JSON (timestamps as text)."""
    return orjson.loads(dumps(fields))  # type: ignore[no-any-return]


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(events=st.lists(st.dictionaries(_FIELDS, _VALUES, max_size=8), min_size=1, max_size=6))
def test_search_and_the_sql_view_give_back_every_field(
    store: DuckDBStore, events: list[dict[str, Any]]
) -> None:
    store.delete_older_than(datetime(9999, 1, 1, tzinfo=UTC))  # hypothesis reuses the store
    appended = []
    for n, fields in enumerate(events):
        event = {**fields, "@timestamp": T0 + timedelta(seconds=n), "event.original": f"raw {n}"}
        appended.append(event)
    store.append(Batch(events=appended))

    found = store.search("", EVERYTHING, limit=100).events
    assert list(reversed(found)) == [_stored_form(e) for e in appended]
    rows = store.sql("SELECT doc, original FROM events ORDER BY ts").rows
    assert [(orjson.loads(doc), original) for doc, original in rows] == [
        (_stored_form({k: v for k, v in e.items() if k != "event.original"}), e["event.original"])
        for e in appended
    ]


def test_a_column_holds_a_value_once(store: DuckDBStore) -> None:
    store.append(
        Batch(
            events=[
                {
                    "@timestamp": T0,
                    "event.id": "e1",
                    "user.name": "alice",
                    "destination.port": "8080",  # a digit string: column 8080, doc keeps the text
                    "kubernetes.labels.app": "web",
                }
            ]
        )
    )
    ((doc, port),) = store._con.execute("SELECT doc, destination_port FROM events_rows").fetchall()
    assert orjson.loads(doc) == {"destination.port": "8080", "kubernetes.labels.app": "web"}
    assert port == 8080
    assert store.search("destination.port:8080 AND user.name:alice", EVERYTHING).total == 1
    assert store.count_by("", "kubernetes.labels.app", EVERYTHING) == [("web", 1)]


# -- lookups by event id -------------------------------------------------------------------------


def _many(first: int, count: int) -> list[dict[str, Any]]:
    return [
        {"@timestamp": T0 + timedelta(milliseconds=n), "event.id": f"id-{n}", "message": f"m{n}"}
        for n in range(first, first + count)
    ]


def test_lookups_by_id_read_only_the_blocks_that_may_hold_it(tmp_path: Path) -> None:
    total = id_filter.BLOCK_ROWS * 2 + 500
    store = DuckDBStore(tmp_path / "data")
    try:
        store.append(Batch(events=_many(0, 10)))  # a small batch, then ones crossing blocks
        store.append(Batch(events=_many(10, id_filter.BLOCK_ROWS)))
        store.append(
            Batch(events=_many(10 + id_filter.BLOCK_ROWS, total - 10 - id_filter.BLOCK_ROWS))
        )
        assert store._con.execute("SELECT count(*) FROM id_filters").fetchone() == (3,)
        compiler = store._compilers["events"]
        pruned = 0
        for n in (0, 9, 10, id_filter.BLOCK_ROWS - 1, id_filter.BLOCK_ROWS, total - 1):
            (event,) = store.search(f"event.id:id-{n}", EVERYTHING).events
            assert event["message"] == f"m{n}"
            condition = compiler.compile(f"event.id:id-{n}")
            pruned += "seq" in condition.sql
        assert pruned >= 5  # at 0.6 % false positives per block, nearly always 6
        assert store.search("event.id:id-nope", EVERYTHING).total == 0
        assert store.search("event.id:id-1*", EVERYTHING).total == 11_111  # wildcards: no filter
        assert store.search("NOT event.id:id-3", EVERYTHING).total == total - 1
    finally:
        store.close()

    reader = DuckDBStore(tmp_path / "data", read_only=True)  # filters come back from disk
    try:
        assert [e["event.id"] for e in reader.search("event.id:id-20000", EVERYTHING).events] == [
            "id-20000"
        ]
    finally:
        reader.close()


def test_a_rolled_back_batch_leaves_ids_findable(store: DuckDBStore) -> None:
    with pytest.raises(TypeError):
        store.append(Batch(events=[*_many(0, 3), {"event.id": "bad", "x": object()}]))
    store.append(Batch(events=_many(3, 3)))
    assert store.search("event.id:id-0", EVERYTHING).total == 0
    assert store.search("event.id:id-4", EVERYTHING).total == 1
    seqs = store._con.execute("SELECT seq FROM events_rows ORDER BY seq").fetchall()
    assert len(seqs) == 3 and seqs == sorted(set(seqs))


def test_retention_drops_filters_of_emptied_blocks(store: DuckDBStore) -> None:
    old = _many(0, id_filter.BLOCK_ROWS)
    store.append(Batch(events=old))
    store.append(Batch(events=_many(id_filter.BLOCK_ROWS, 5)))
    store.append(Batch(events=[{"@timestamp": T0 + timedelta(days=2), "event.id": "new"}]))
    assert store._con.execute("SELECT count(*) FROM id_filters").fetchone() == (2,)
    store.delete_older_than(T0 + timedelta(days=1))
    assert store._con.execute("SELECT block FROM id_filters").fetchall() == [(1,)]
    assert store.search("event.id:new", EVERYTHING).total == 1
    store.delete_older_than(T0 + timedelta(days=3))
    assert store._con.execute("SELECT count(*) FROM id_filters").fetchone() == (0,)
    store.append(Batch(events=[{"@timestamp": T0, "event.id": "later"}]))
    assert store.search("event.id:later", EVERYTHING).total == 1


def test_seq_keeps_rising_across_reopen(tmp_path: Path) -> None:
    for first in (0, 5):
        store = DuckDBStore(tmp_path / "data")
        try:
            store.append(Batch(events=_many(first, 5)))
        finally:
            store.close()
    store = DuckDBStore(tmp_path / "data", read_only=True)
    try:
        rows = store._con.execute("SELECT seq, event_id FROM events_rows ORDER BY seq").fetchall()
    finally:
        store.close()
    assert [seq for seq, _ in rows] == list(range(10))
    assert [event_id for _, event_id in rows] == [f"id-{n}" for n in range(10)]


# -- layout versions ------------------------------------------------------------------------------


def _database(tmp_path: Path, *statements: str) -> Path:
    data = tmp_path / "data"
    data.mkdir()
    con = duckdb.connect(str(data / DATABASE_FILE))
    for statement in statements:
        con.execute(statement)
    con.close()
    return data


@pytest.mark.parametrize("read_only", [False, True])
def test_a_layout_1_file_is_refused_with_a_clear_error(tmp_path: Path, read_only: bool) -> None:
    columns = ", ".join(f"{c.name} {c.sql_type}" for c in EVENT_COLUMNS)
    data = _database(
        tmp_path,
        f"CREATE TABLE events ({columns}, doc JSON, original VARCHAR)",
        "INSERT INTO events (event_id, original) VALUES ('e1', 'raw')",
    )
    expected = f"storage layout 1; this Keelwatch reads layout {layout.SCHEMA_VERSION}"
    with pytest.raises(StoreError, match=expected):
        DuckDBStore(data, read_only=read_only)
    con = duckdb.connect(str(data / DATABASE_FILE), read_only=True)  # untouched, still closed
    assert con.execute("SELECT table_name FROM duckdb_tables()").fetchall() == [("events",)]
    con.close()


def test_a_newer_layout_is_refused(tmp_path: Path) -> None:
    data = _database(
        tmp_path,
        "CREATE TABLE keelwatch_schema (version INTEGER NOT NULL)",
        f"INSERT INTO keelwatch_schema VALUES ({layout.SCHEMA_VERSION + 1})",
    )
    with pytest.raises(StoreError, match=f"storage layout {layout.SCHEMA_VERSION + 1}"):
        DuckDBStore(data)


def test_an_empty_database_file_is_no_store_to_read(tmp_path: Path) -> None:
    data = _database(tmp_path)
    with pytest.raises(StoreError, match="holds no Keelwatch data"):
        DuckDBStore(data, read_only=True)
    store = DuckDBStore(data)  # a writer sets it up
    store.close()
    DuckDBStore(data, read_only=True).close()
