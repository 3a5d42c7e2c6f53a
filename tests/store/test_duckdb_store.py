"""The embedded DuckDB store: batches, read-only SQL, retention, locking, typed columns."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import orjson
import pytest

from keelwatch.errors import QueryError, StoreError, StoreLocked
from keelwatch.parsers.base import Batch, DeadLetter
from keelwatch.store.base import TimeRange
from keelwatch.store.duckdb_store import DATABASE_FILE, DuckDBStore

T0 = datetime(2026, 3, 1, tzinfo=UTC)
EVERYTHING = TimeRange()


def at(minute: int) -> datetime:
    return T0 + timedelta(minutes=minute)


def event(n: int, **fields: Any) -> dict[str, Any]:
    return {
        "@timestamp": at(n),
        "event.id": f"e{n}",
        "event.dataset": "kubernetes.audit",
        "kubernetes.audit.verb": "get",
        "event.original": f'{{"n":{n}}}',
        **fields,
    }


def finding(n: int, rule: str, status: str) -> dict[str, Any]:
    return {
        "@timestamp": at(n),
        "event.id": f"f{n}",
        "event.dataset": "kube-bench",
        "rule.id": rule,
        "rule.name": f"rule {rule}",
        "finding.status": status,
        "resource.kind": "Node",
        "message": f"Ensure that {rule} is set",
        "kube_bench.test.remediation": "chmod 600 /etc/kubernetes/manifests/kube-apiserver.yaml",
        "event.original": f'{{"test":"{rule}"}}',
    }


def letter(n: int, raw: bytes, reason: str = "not JSON") -> DeadLetter:
    return DeadLetter(source="k8s-audit", reason=reason, raw=raw, received_at=at(n))


@pytest.fixture
def store(tmp_path: Path) -> Iterator[DuckDBStore]:
    store = DuckDBStore(tmp_path / "data")
    yield store
    store.close()


def test_one_batch_holds_events_findings_and_dead_letters(store: DuckDBStore) -> None:
    store.append(
        Batch(
            events=[event(1), event(2, **{"kubernetes.audit.verb": "delete"}), event(3)],
            findings=[finding(1, "1.1.1", "FAIL"), finding(2, "1.1.2", "PASS")],
            dead_letters=[letter(1, b"{not json"), letter(2, b"\xff\xfe\x00bytes", "binary")],
        )
    )
    assert store.counts() == {"events": 3, "findings": 2, "alerts": 0, "dead_letters": 2}

    letters = store.dead_letters(EVERYTHING)
    assert letters == [
        {
            "received_at": datetime(2026, 3, 1, 0, 2),
            "source": "k8s-audit",
            "reason": "binary",
            "raw": "\ufffd\ufffd\x00bytes",  # invalid UTF-8 replaced, everything else kept
        },
        {
            "received_at": datetime(2026, 3, 1, 0, 1),
            "source": "k8s-audit",
            "reason": "not JSON",
            "raw": "{not json",
        },
    ]
    assert store.sql("SELECT raw FROM dead_letters ORDER BY received_at").rows == [
        (b"{not json",),
        (b"\xff\xfe\x00bytes",),
    ]
    assert store.dead_letters(TimeRange(since=at(2))) == letters[:1]
    assert store.dead_letters(TimeRange(until=at(2))) == letters[1:]
    assert store.dead_letters(EVERYTHING, limit=1) == letters[:1]

    failed = store.search("rule.id:1.1.1", EVERYTHING, table="findings")
    assert failed.total == 1
    (doc,) = failed.events
    assert doc["finding.status"] == "FAIL"
    assert doc["event.original"] == '{"test":"1.1.1"}'
    assert store.search("finding.status:PASS", EVERYTHING, table="findings").total == 1
    assert store.search("kube_bench.test.remediation:*", EVERYTHING, table="findings").total == 2
    assert store.search("*kube-apiserver*", EVERYTHING, table="findings").total == 0  # original
    assert store.search("1.1.2", EVERYTHING, table="findings").total == 1
    # message is not a findings column, yet it is still matched as text
    assert store.search("message:ENSURE", EVERYTHING, table="findings").total == 2
    assert store.search("message:*1.1.2*", EVERYTHING, table="findings").total == 1
    assert store.count_by("", "finding.status", EVERYTHING, table="findings") == [
        ("FAIL", 1),
        ("PASS", 1),
    ]
    assert store.count_by("", "resource.kind", EVERYTHING, table="findings") == [("Node", 2)]
    # each table answers with its own columns: rule.id is only promoted for findings
    assert store.search("rule.id:1.1.1", EVERYTHING).total == 0
    assert store.search("kubernetes.audit.verb:delete", EVERYTHING).total == 1


def test_the_caller_keeps_its_event(store: DuckDBStore) -> None:
    original = event(1)
    copy = dict(original)
    store.append(Batch(events=[original]))
    assert original == copy


def test_a_failing_batch_leaves_nothing_behind(store: DuckDBStore) -> None:
    store.append(Batch(events=[event(1)]))
    unserializable = finding(1, "1.1.1", "FAIL") | {"python.object": object()}
    with pytest.raises(TypeError):
        store.append(Batch(events=[event(2)], findings=[unserializable]))
    assert store.counts() == {"events": 1, "findings": 0, "alerts": 0, "dead_letters": 0}
    store.append(Batch(events=[event(3)]))  # and the store goes on
    assert store.counts()["events"] == 2


def test_an_empty_batch_is_fine(store: DuckDBStore) -> None:
    store.append(Batch())
    assert store.counts() == {"events": 0, "findings": 0, "alerts": 0, "dead_letters": 0}


# -- read-only SQL -----------------------------------------------------------------------------


@pytest.fixture
def filled(store: DuckDBStore) -> DuckDBStore:
    store.append(
        Batch(
            events=[event(n) for n in range(1, 6)],
            findings=[finding(1, "1.1.1", "FAIL")],
            dead_letters=[letter(1, b"x")],
        )
    )
    return store


def test_sql_select(filled: DuckDBStore) -> None:
    result = filled.sql("SELECT event_id, audit_verb FROM events ORDER BY ts DESC")
    assert result.columns == ["event_id", "audit_verb"]
    assert result.rows == [(f"e{n}", "get") for n in range(5, 0, -1)]
    assert not result.truncated
    result = filled.sql(
        "WITH v AS (SELECT audit_verb, count(*) AS n FROM events GROUP BY 1) SELECT * FROM v"
    )
    assert result.rows == [("get", 5)]
    result = filled.sql("SELECT json_extract_string(doc, '$.\"event.id\"') AS id FROM findings")
    assert (result.columns, result.rows) == (["id"], [("f1",)])
    assert filled.sql("  select 1 as one ;  ").rows == [(1,)]


def test_sql_truncates_at_max_rows(filled: DuckDBStore) -> None:
    result = filled.sql("SELECT event_id FROM events ORDER BY event_id", max_rows=3)
    assert result.rows == [("e1",), ("e2",), ("e3",)]
    assert result.truncated
    result = filled.sql("SELECT event_id FROM events", max_rows=5)
    assert len(result.rows) == 5
    assert not result.truncated
    result = filled.sql("SELECT * FROM range(100000)", max_rows=10)
    assert len(result.rows) == 10
    assert result.truncated


@pytest.mark.parametrize(
    "statement",
    [
        "DELETE FROM events",
        "INSERT INTO events (event_id) VALUES ('x')",
        "UPDATE events SET event_id = 'x'",
        "DROP TABLE events",
        "CREATE TABLE t AS SELECT 1",
        "ALTER TABLE events ADD COLUMN x INTEGER",
        "TRUNCATE events",
        "ATTACH '/tmp/keelwatch-other.duckdb' AS other",
        "DETACH other",
        "COPY events TO '/tmp/keelwatch-events.csv'",
        "COPY events FROM '/etc/passwd'",
        "EXPORT DATABASE '/tmp/keelwatch-export'",
        "PRAGMA database_list",
        "SET enable_external_access = true",
        "RESET lock_configuration",
        "INSTALL httpfs",
        "LOAD httpfs",
        "CALL pragma_version()",
        "CHECKPOINT",
        "VACUUM",
        "BEGIN TRANSACTION",
        "EXPLAIN SELECT 1",
        "SELECT 1; SELECT 2",
        "SELECT 1; DROP TABLE events",
        "SELECT * FROM events; DELETE FROM events",
        "",
        "   ;  ",
        "-- only a comment",
    ],
)
def test_sql_refuses_everything_but_one_select(filled: DuckDBStore, statement: str) -> None:
    with pytest.raises(QueryError, match="only one SELECT statement is allowed"):
        filled.sql(statement)
    assert filled.counts() == {"events": 5, "findings": 1, "alerts": 0, "dead_letters": 1}


@pytest.mark.parametrize(
    "statement",
    [
        "SELECT * FROM read_text('/etc/hostname')",
        "SELECT * FROM read_blob('/etc/hostname')",
        "SELECT * FROM read_csv('/etc/passwd')",
        "SELECT * FROM read_csv_auto('/etc/passwd')",
        "SELECT * FROM read_json('/etc/passwd')",
        "SELECT * FROM read_parquet('/etc/passwd')",
        "SELECT * FROM glob('/etc/*')",
        "SELECT * FROM '/etc/passwd'",
        "SELECT * FROM query('DROP TABLE events')",
        "SELECT * FROM query_table('events; DROP TABLE events')",
        "SELECT * FROM no_such_table",
        "SELECT no_such_function()",
        "SELEC 1",
    ],
)
def test_sql_cannot_reach_files_or_break_out(filled: DuckDBStore, statement: str) -> None:
    with pytest.raises(QueryError):
        filled.sql(statement)
    assert filled.counts() == {"events": 5, "findings": 1, "alerts": 0, "dead_letters": 1}


def test_sql_runs_in_a_read_only_transaction(filled: DuckDBStore) -> None:
    # A SELECT that writes (a sequence advancing) is refused by the transaction itself.
    filled._con.execute("CREATE SEQUENCE counter")
    with pytest.raises(QueryError, match="read-only"):
        filled.sql("SELECT nextval('counter')")
    assert filled.sql("SELECT current_setting('enable_external_access')").rows == [(False,)]
    filled.append(Batch(events=[event(9)]))  # a failed read leaves no transaction open
    assert filled.counts()["events"] == 6


# -- retention ---------------------------------------------------------------------------------


def test_delete_older_than_cleans_every_table(store: DuckDBStore) -> None:
    store.append(
        Batch(
            events=[event(1), event(2), event(10), event(11)],
            findings=[finding(1, "old", "FAIL"), finding(10, "new", "FAIL")],
            dead_letters=[letter(1, b"old"), letter(10, b"new")],
        )
    )
    # alerts have no writer yet; put two in as the alert stage will
    for minute, alert_id in ((1, "a-old"), (10, "a-new")):
        store._con.execute(
            "INSERT INTO alerts (alert_id, last_seen) VALUES (?, ?)",
            [alert_id, at(minute).replace(tzinfo=None)],
        )
    cutoff = at(5).astimezone(timezone(timedelta(hours=-5)))  # any zone: the same instant
    assert store.delete_older_than(cutoff) == {
        "events": 2,
        "findings": 1,
        "alerts": 1,
        "dead_letters": 1,
    }
    assert store.counts() == {"events": 2, "findings": 1, "alerts": 1, "dead_letters": 1}
    assert [e["event.id"] for e in store.search("", EVERYTHING).events] == ["e11", "e10"]
    assert store.search("", EVERYTHING, table="findings").events[0]["rule.id"] == "new"
    assert [d["raw"] for d in store.dead_letters(EVERYTHING)] == ["new"]
    assert store.sql("SELECT alert_id FROM alerts").rows == [("a-new",)]
    assert store.delete_older_than(at(5)) == {
        "events": 0,
        "findings": 0,
        "alerts": 0,
        "dead_letters": 0,
    }


def test_delete_at_the_cutoff_keeps_the_cutoff(store: DuckDBStore) -> None:
    store.append(Batch(events=[event(4), event(5), event(6)]))
    assert store.delete_older_than(at(5))["events"] == 1
    assert [e["event.id"] for e in store.search("", EVERYTHING).events] == ["e6", "e5"]


# -- opening, locking, reopening ----------------------------------------------------------------

_OPEN_AGAIN = """
import sys
from pathlib import Path
from keelwatch.errors import StoreLocked
from keelwatch.store.duckdb_store import DuckDBStore
try:
    DuckDBStore(Path(sys.argv[1]), read_only=sys.argv[2] == "ro")
except StoreLocked as error:
    print("StoreLocked:", error)
else:
    print("opened")
"""


@pytest.mark.parametrize("mode", ["rw", "ro"])
def test_a_second_process_is_told_to_use_the_server(tmp_path: Path, mode: str) -> None:
    store = DuckDBStore(tmp_path)
    try:
        store.append(Batch(events=[event(1)]))
        child = subprocess.run(
            [sys.executable, "-c", _OPEN_AGAIN, str(tmp_path), mode],
            capture_output=True,
            text=True,
            check=True,
        )
    finally:
        store.close()
    assert child.stdout.startswith("StoreLocked:"), child.stdout + child.stderr
    assert "--server" in child.stdout
    assert str(tmp_path / DATABASE_FILE) in child.stdout


def test_store_locked_is_a_store_error() -> None:
    assert issubclass(StoreLocked, StoreError)


def test_read_only_on_a_missing_directory(tmp_path: Path) -> None:
    missing = tmp_path / "nothing-here"
    with pytest.raises(StoreError, match="no Keelwatch data") as caught:
        DuckDBStore(missing, read_only=True)
    assert not isinstance(caught.value, StoreLocked)
    assert not missing.exists()  # a reader creates nothing


def test_data_survives_close_and_reopen(tmp_path: Path) -> None:
    store = DuckDBStore(tmp_path / "data")
    store.append(
        Batch(
            events=[event(1), event(2)],
            findings=[finding(1, "1.1.1", "FAIL")],
            dead_letters=[letter(1, b"raw")],
        )
    )
    store.close()

    reader = DuckDBStore(tmp_path / "data", read_only=True)
    try:
        assert reader.counts() == {"events": 2, "findings": 1, "alerts": 0, "dead_letters": 1}
        assert [e["event.id"] for e in reader.search("", EVERYTHING).events] == ["e2", "e1"]
        assert reader.search("", EVERYTHING, table="findings").total == 1
        assert reader.dead_letters(EVERYTHING)[0]["raw"] == "raw"
    finally:
        reader.close()

    writer = DuckDBStore(tmp_path / "data")
    try:
        writer.append(Batch(events=[event(3)]))
        assert writer.counts()["events"] == 3
    finally:
        writer.close()


# -- typed columns --------------------------------------------------------------------------------


def _column_and_doc(store: DuckDBStore, event_id: str, column: str, field: str) -> tuple[Any, Any]:
    ((value, doc),) = store.sql(
        f"SELECT {column}, doc FROM events WHERE event_id = '{event_id}'"
    ).rows
    return value, orjson.loads(doc).get(field)


@pytest.mark.parametrize(
    ("field", "column", "value", "stored"),
    [
        ("destination.port", "destination_port", "https", None),
        ("destination.port", "destination_port", 2**31, None),  # beyond INTEGER
        ("destination.port", "destination_port", -(2**31) - 1, None),
        ("destination.port", "destination_port", 2**64 - 1, None),  # the largest JSON integer
        ("destination.port", "destination_port", 8080.5, None),
        ("destination.port", "destination_port", [443, 8443], None),
        ("destination.port", "destination_port", "--5", None),
        ("destination.port", "destination_port", "\u00b2", None),
        ("destination.port", "destination_port", "9" * 5000, None),
        ("destination.port", "destination_port", 2**31 - 1, 2**31 - 1),
        ("destination.port", "destination_port", " 8080 ", 8080),  # digit strings are numbers
        ("event.severity", "severity", True, None),
        ("event.severity", "severity", False, None),
        ("event.severity", "severity", "high", None),
        ("event.severity", "severity", 2**40, None),
        ("event.severity", "severity", "-3", -3),
        ("kubernetes.audit.responseStatus.code", "audit_status", 2**63, None),
        ("kubernetes.audit.responseStatus.code", "audit_status", {"code": 200}, None),
        ("@timestamp", "ts", "2026-03-01T00:00:00Z", None),  # only datetimes fill ts
        ("@timestamp", "ts", 1772323200, None),
        ("message", "message", 42, "42"),
    ],
)
def test_wrong_types_become_null_columns_but_stay_in_the_doc(
    store: DuckDBStore, field: str, column: str, value: Any, stored: Any
) -> None:
    store.append(Batch(events=[event(1, **{field: value}), event(2)]))
    in_column, in_doc = _column_and_doc(store, "e1", column, field)
    assert in_column == stored
    assert in_doc == value
    assert store.counts()["events"] == 2


def test_timestamps_are_stored_in_utc(store: DuckDBStore) -> None:
    tokyo = timezone(timedelta(hours=9))
    store.append(Batch(events=[event(1, **{"@timestamp": at(1).astimezone(tokyo)})]))
    ts, doc_ts = _column_and_doc(store, "e1", "ts", "@timestamp")
    assert ts == datetime(2026, 3, 1, 0, 1)
    assert doc_ts == "2026-03-01T00:01:00.000000Z"
    assert store.search("@timestamp:2026-03-01T00:01:00Z", EVERYTHING).total == 1
