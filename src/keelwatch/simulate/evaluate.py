"""Score Keelwatch's alerts against a simulation's ground truth (``labels.json``).

An alert covers a labelled record when the record's event id is among the alert's
``event_ids``; or, when the alert kept its maximum of ids (so later ones were not listed), when
the alert is about the record's entity and its first/last seen window holds the record's time.
Per scenario: detected when some alert covers one of its records. Per alert: on an attack when
it covers an attack's record, else on a benign look-alike, else on background traffic only.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from keelwatch.model.alert import MAX_EVENT_IDS
from keelwatch.model.fields import isoformat, parse_timestamp
from keelwatch.readers import AlertQuery, Reader

MAX_ALERTS = 10_000
ID_CHUNK = 500
ENTITY_KEYS = ("cluster", "namespace", "pod", "user", "node")


@dataclass(slots=True)
class ScenarioResult:
    name: str
    kind: str  # attack | benign
    title: str
    techniques: list[str]
    layers: list[str]
    records: int
    stored: int | None  # labelled records found in the store (None: not checked)
    alerts: list[dict[str, Any]] = field(default_factory=list)  # {id, rule_id, rule_title}

    @property
    def detected(self) -> bool:
        return bool(self.alerts)

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "title": self.title,
            "techniques": self.techniques,
            "layers": self.layers,
            "records": self.records,
            "stored": self.stored,
            "detected": self.detected,
            "alerts": self.alerts,
        }


@dataclass(slots=True)
class Evaluation:
    scenarios: list[ScenarioResult]
    alerts_total: int
    alerts_on_attacks: int
    alerts_on_lookalikes: int
    alerts_on_background: int
    alerts_truncated: bool = False

    def summary(self) -> dict[str, Any]:
        attacks = [s for s in self.scenarios if s.kind == "attack"]
        benign = [s for s in self.scenarios if s.kind == "benign"]
        detected = sum(s.detected for s in attacks)
        precision = self.alerts_on_attacks / self.alerts_total if self.alerts_total else None
        return {
            "attacks": len(attacks),
            "attacks_detected": detected,
            "recall": detected / len(attacks) if attacks else None,
            "lookalikes": len(benign),
            "lookalikes_alerted": sum(s.detected for s in benign),
            "alerts": self.alerts_total,
            "alerts_on_attacks": self.alerts_on_attacks,
            "alerts_on_lookalikes": self.alerts_on_lookalikes,
            "alerts_on_background": self.alerts_on_background,
            "alert_precision": precision,
            "alerts_truncated": self.alerts_truncated,
        }

    def as_json(self) -> dict[str, Any]:
        return {
            "summary": self.summary(),
            "scenarios": [item.as_json() for item in self.scenarios],
        }


@dataclass(frozen=True, slots=True)
class _Labelled:
    scenario: int  # index into the labels' scenarios
    moment: datetime
    entity: tuple[tuple[str, str], ...]


def _entity(value: Any) -> tuple[tuple[str, str], ...]:
    if not isinstance(value, dict):
        return ()
    return tuple((key, str(value[key])) for key in ENTITY_KEYS if value.get(key))


def _index(labels: dict[str, Any]) -> tuple[dict[str, list[_Labelled]], list[_Labelled]]:
    by_id: dict[str, list[_Labelled]] = {}
    every: list[_Labelled] = []
    for number, scenario in enumerate(labels.get("scenarios", [])):
        for record in scenario.get("records", []):
            moment = parse_timestamp(record.get("time"))
            if moment is None:
                continue
            item = _Labelled(number, moment, _entity(record.get("entity")))
            by_id.setdefault(str(record.get("event_id")), []).append(item)
            every.append(item)
    return by_id, every


def covered(
    alert: dict[str, Any], by_id: dict[str, list[_Labelled]], every: list[_Labelled]
) -> set[int]:
    """The scenarios (by index) with at least one record this alert covers."""
    ids = alert.get("event_ids") or []
    found = {item.scenario for event_id in ids for item in by_id.get(str(event_id), [])}
    if len(ids) >= MAX_EVENT_IDS:  # the alert stopped listing ids: fall back to entity + window
        entity = _entity(alert.get("entity"))
        first, last = (
            parse_timestamp(alert.get("first_seen")),
            parse_timestamp(alert.get("last_seen")),
        )
        if entity and first and last:
            found.update(
                item.scenario
                for item in every
                if item.entity == entity and first <= item.moment <= last
            )
    return found


def evaluate(
    labels: dict[str, Any], alerts: Iterable[dict[str, Any]], stored: set[str] | None = None
) -> Evaluation:
    scenarios = labels.get("scenarios", [])
    results = [
        ScenarioResult(
            name=str(item.get("name")),
            kind=str(item.get("kind")),
            title=str(item.get("title", "")),
            techniques=list(item.get("techniques", [])),
            layers=list(item.get("layers", [])),
            records=len(item.get("records", [])),
            stored=None
            if stored is None
            else sum(str(r.get("event_id")) in stored for r in item.get("records", [])),
        )
        for item in scenarios
    ]
    by_id, every = _index(labels)
    counts = {"attack": 0, "benign": 0, "background": 0}
    total = 0
    for alert in alerts:
        total += 1
        hits = covered(alert, by_id, every)
        summary = {key: alert.get(key) for key in ("id", "rule_id", "rule_title")}
        for number in sorted(hits):
            results[number].alerts.append(summary)
        kinds = {results[number].kind for number in hits}
        counts["attack" if "attack" in kinds else "benign" if kinds else "background"] += 1
    return Evaluation(results, total, counts["attack"], counts["benign"], counts["background"])


def fetch_alerts(reader: Reader, labels: dict[str, Any]) -> tuple[list[dict[str, Any]], bool]:
    """Alerts active during the run (an hour of slack after it); True when capped."""
    start = parse_timestamp(labels.get("start"))
    end = parse_timestamp(labels.get("end"))
    since = isoformat(start - timedelta(minutes=1)) if start else None
    until = isoformat(end + timedelta(hours=1)) if end else None
    answer = reader.alerts(AlertQuery(since=since, until=until, limit=MAX_ALERTS))
    alerts: list[dict[str, Any]] = answer["alerts"]
    return alerts, int(answer.get("total", len(alerts))) > len(alerts)


def stored_ids(reader: Reader, labels: dict[str, Any]) -> set[str]:
    """Which labelled event ids the store holds (read-only SQL on the events table)."""
    wanted = sorted(
        {str(r.get("event_id")) for s in labels.get("scenarios", []) for r in s.get("records", [])}
    )
    found: set[str] = set()
    for offset in range(0, len(wanted), ID_CHUNK):
        chunk = wanted[offset : offset + ID_CHUNK]
        quoted = ", ".join("'" + value.replace("'", "''") + "'" for value in chunk)
        answer = reader.sql(f"SELECT DISTINCT event_id FROM events WHERE event_id IN ({quoted})")
        found.update(str(row[0]) for row in answer["rows"])
    return found


def run(reader: Reader, labels: dict[str, Any]) -> Evaluation:
    alerts, truncated = fetch_alerts(reader, labels)
    evaluation = evaluate(labels, alerts, stored_ids(reader, labels))
    evaluation.alerts_truncated = truncated
    return evaluation
