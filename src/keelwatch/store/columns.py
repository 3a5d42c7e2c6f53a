"""Which schema fields get a typed column of their own.

The fields below are promoted to typed columns because searches, histograms and rules use them
most. A value its column holds exactly (see ``Column.holds``) is stored only there; any other
value stays in the ``doc`` JSON (the column then holds a lossy copy or NULL). The query compiler
reads a promoted field from its column and any other field from ``doc``; the ``events`` view puts
the full ``doc`` back together (see store/layout.py).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pyarrow as pa


def _text(value: Any) -> str | None:
    if value is None:
        return None
    return value if isinstance(value, str) else str(value)


_INTEGER_TEXT = re.compile(r"\s*-?[0-9]{1,20}\s*")


def _integer(value: Any, bits: int) -> int | None:
    """An int (or digit string) that fits a ``bits``-wide signed column; None for anything else."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str) and _INTEGER_TEXT.fullmatch(value):
        value = int(value)
    if isinstance(value, int):
        return value if -(2 ** (bits - 1)) <= value < 2 ** (bits - 1) else None
    return None


def _int32(value: Any) -> int | None:
    return _integer(value, 32)


def _int64(value: Any) -> int | None:
    return _integer(value, 64)


def _moment(value: Any) -> datetime | None:
    return value if isinstance(value, datetime) else None


@dataclass(frozen=True, slots=True)
class Column:
    field: str
    name: str
    sql_type: str
    arrow_type: pa.DataType
    coerce: Callable[[Any], Any]

    @property
    def numeric(self) -> bool:
        return self.sql_type in ("INTEGER", "BIGINT")

    @property
    def temporal(self) -> bool:
        return self.sql_type == "TIMESTAMP"

    def holds(self, value: Any) -> bool:
        """Whether the column gives ``value`` back exactly, so ``doc`` need not keep it."""
        if self.sql_type == "VARCHAR":
            return type(value) is str
        if self.temporal:  # naive datetimes would render differently; they stay in doc
            return type(value) is datetime and value.tzinfo is not None
        return type(value) is int and self.coerce(value) is not None

    def json_sql(self) -> str:
        """A SQL expression rendering the column as JSON text, as ``model.fields.dumps`` does."""
        if self.temporal:
            return f"'\"' || strftime({self.name}, '%Y-%m-%dT%H:%M:%S.%fZ') || '\"'"
        return f"CAST(to_json({self.name}) AS VARCHAR)"


def _col(field: str, name: str, sql_type: str = "VARCHAR") -> Column:
    kinds: dict[str, tuple[pa.DataType, Callable[[Any], Any]]] = {
        "VARCHAR": (pa.string(), _text),
        "INTEGER": (pa.int32(), _int32),
        "BIGINT": (pa.int64(), _int64),
        "TIMESTAMP": (pa.timestamp("us"), _moment),
    }
    arrow_type, coerce = kinds[sql_type]
    return Column(field, name, sql_type, arrow_type, coerce)


EVENT_COLUMNS: tuple[Column, ...] = (
    _col("@timestamp", "ts", "TIMESTAMP"),
    _col("event.ingested", "ingested", "TIMESTAMP"),
    _col("event.id", "event_id"),
    _col("event.dataset", "dataset"),
    _col("event.kind", "kind"),
    _col("event.action", "action"),
    _col("event.outcome", "outcome"),
    _col("event.severity", "severity", "INTEGER"),
    _col("orchestrator.cluster.name", "cluster"),
    _col("orchestrator.namespace", "object_namespace"),
    _col("orchestrator.resource.type", "object_resource"),
    _col("orchestrator.resource.name", "object_name"),
    _col("kubernetes.namespace", "namespace"),
    _col("kubernetes.pod.name", "pod"),
    _col("kubernetes.node.name", "node"),
    _col("container.id", "container_id"),
    _col("container.image.name", "image"),
    _col("user.name", "user_name"),
    _col("source.ip", "source_ip"),
    _col("destination.ip", "destination_ip"),
    _col("destination.port", "destination_port", "INTEGER"),
    _col("process.executable", "process_executable"),
    _col("host.name", "host"),
    _col("message", "message"),
    _col("kubernetes.audit.verb", "audit_verb"),
    _col("kubernetes.audit.objectRef.resource", "audit_resource"),
    _col("kubernetes.audit.responseStatus.code", "audit_status", "INTEGER"),
)

FINDING_COLUMNS: tuple[Column, ...] = (
    _col("@timestamp", "ts", "TIMESTAMP"),
    _col("event.ingested", "ingested", "TIMESTAMP"),
    _col("event.id", "event_id"),
    _col("event.dataset", "dataset"),
    _col("event.severity", "severity", "INTEGER"),
    _col("rule.id", "rule_id"),
    _col("rule.name", "rule_name"),
    _col("finding.status", "status"),
    _col("finding.severity", "finding_severity"),
    _col("resource.kind", "resource_kind"),
    _col("resource.namespace", "resource_namespace"),
    _col("resource.name", "resource_name"),
    _col("orchestrator.cluster.name", "cluster"),
    _col("host.name", "host"),
)
