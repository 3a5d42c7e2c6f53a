"""Alerts in the DuckDB store: upsert by id, filters, and reading back for dedup restore."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from keelwatch.model.alert import Alert, Entity, RuleInfo
from keelwatch.parsers.base import Batch
from keelwatch.store.base import TimeRange
from keelwatch.store.duckdb_store import DuckDBStore

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
HIGH = RuleInfo(
    id="r-high", title="Privileged pod", level="high", severity=3, techniques=("T1611",)
)
LOW = RuleInfo(id="r-low", title="Port forward", level="low", severity=1)


def alert(rule: RuleInfo, pod: str, minutes: int) -> Alert:
    moment = T0 + timedelta(minutes=minutes)
    return Alert(rule, Entity(namespace="prod", pod=pod), moment, moment, event_ids=[f"{pod}-e"])


def test_an_updated_alert_replaces_its_row(tmp_path: Path) -> None:
    store = DuckDBStore(tmp_path)
    first = alert(HIGH, "web-1", 0)
    store.append(Batch(alerts=[first]))
    first.add(T0 + timedelta(minutes=5), ["second"])
    store.append(Batch(alerts=[first]))
    total, rows = store.alerts(TimeRange())
    assert total == 1
    assert rows[0]["count"] == 2 and rows[0]["event_ids"] == ["web-1-e", "second"]
    assert rows[0]["techniques"] == ["T1611"] and rows[0]["entity"]["pod"] == "web-1"
    store.close()


def test_filters_by_rule_severity_and_time(tmp_path: Path) -> None:
    store = DuckDBStore(tmp_path)
    store.append(Batch(alerts=[alert(HIGH, "a", 0), alert(LOW, "b", 10), alert(HIGH, "c", 20)]))
    assert store.alerts(TimeRange(), rule="r-low")[0] == 1
    assert store.alerts(TimeRange(), rule="Privileged pod")[0] == 2
    assert store.alerts(TimeRange(), min_severity=2)[0] == 2
    since = TimeRange(since=T0 + timedelta(minutes=5))
    total, rows = store.alerts(since, limit=1)
    assert total == 2 and rows[0]["entity"]["pod"] == "c"  # newest first
    store.close()


def test_recent_alerts_come_back_whole(tmp_path: Path) -> None:
    store = DuckDBStore(tmp_path)
    original = alert(HIGH, "web-1", 0)
    store.append(Batch(alerts=[original]))
    newer = alert(LOW, "web-2", 5)
    store.append(Batch(alerts=[newer]))
    (restored,) = store.latest_alerts(1)
    assert restored.id == newer.id and restored.rule == newer.rule
    assert restored.entity == newer.entity and restored.first_seen == newer.first_seen
    assert [a.id for a in store.latest_alerts(10)] == [original.id, newer.id]  # oldest first
    store.close()
