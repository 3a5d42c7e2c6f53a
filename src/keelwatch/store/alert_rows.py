"""Alerts as rows: Arrow for writing, and back to ``Alert`` for reading and restoring."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
import pyarrow as pa

from keelwatch.model.alert import Alert, Entity, RuleInfo
from keelwatch.model.fields import dumps
from keelwatch.model.severity import severity_from_name

ALERTS_DDL = """
CREATE TABLE IF NOT EXISTS alerts (
    alert_id VARCHAR, rule_id VARCHAR, rule_title VARCHAR, level VARCHAR, severity INTEGER,
    techniques VARCHAR[], cluster VARCHAR, namespace VARCHAR, pod VARCHAR, user_name VARCHAR,
    node VARCHAR, first_seen TIMESTAMP, last_seen TIMESTAMP, count BIGINT, event_ids VARCHAR[],
    doc JSON
)"""


def _naive(moment: datetime) -> datetime:
    return moment if moment.tzinfo is None else moment.astimezone(UTC).replace(tzinfo=None)


def alerts_arrow(alerts: list[Alert]) -> pa.Table:
    """One row per alert id (the newest state of each)."""
    latest = {alert.id: alert for alert in alerts}
    rows = list(latest.values())
    return pa.table(
        {
            "alert_id": [a.id for a in rows],
            "rule_id": [a.rule.id for a in rows],
            "rule_title": [a.rule.title for a in rows],
            "level": [a.rule.level for a in rows],
            "severity": pa.array([a.rule.severity for a in rows], type=pa.int32()),
            "techniques": pa.array([list(a.rule.techniques) for a in rows], pa.list_(pa.string())),
            "cluster": [a.entity.cluster for a in rows],
            "namespace": [a.entity.namespace for a in rows],
            "pod": [a.entity.pod for a in rows],
            "user_name": [a.entity.user for a in rows],
            "node": [a.entity.node for a in rows],
            "first_seen": pa.array([_naive(a.first_seen) for a in rows], pa.timestamp("us")),
            "last_seen": pa.array([_naive(a.last_seen) for a in rows], pa.timestamp("us")),
            "count": pa.array([a.count for a in rows], type=pa.int64()),
            "event_ids": pa.array([a.event_ids for a in rows], pa.list_(pa.string())),
            "doc": [dumps(a.as_json()).decode() for a in rows],
        }
    )


def alert_from_doc(doc: str) -> Alert:
    data: dict[str, Any] = orjson.loads(doc)
    entity = data.get("entity") or {}
    rule = RuleInfo(
        id=data["rule_id"],
        title=data.get("rule_title", ""),
        level=data.get("level", ""),
        severity=severity_from_name(data.get("severity")) or 0,
        techniques=tuple(data.get("techniques") or ()),
        description=data.get("description", ""),
        origin=data.get("origin", "sigma"),
    )
    return Alert(
        rule=rule,
        entity=Entity(
            **{k: entity.get(k) for k in ("cluster", "namespace", "pod", "user", "node")}
        ),
        first_seen=datetime.fromisoformat(data["first_seen"]),
        last_seen=datetime.fromisoformat(data["last_seen"]),
        count=int(data.get("count", 1)),
        event_ids=list(data.get("event_ids") or []),
        id=data["id"],
    )
