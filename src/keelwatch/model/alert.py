"""Alerts: what a rule raised about one entity, merged over a dedup window."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from keelwatch.model.fields import Fields, parse_timestamp
from keelwatch.model.severity import severity_name

MAX_EVENT_IDS = 100
ENTITY_FIELDS = ("cluster", "namespace", "pod", "user", "node")


@dataclass(frozen=True, slots=True)
class RuleInfo:
    """What an alert needs to know about the rule that raised it."""

    id: str
    title: str
    level: str
    severity: int
    techniques: tuple[str, ...] = ()
    description: str = ""
    origin: str = "sigma"  # sigma, correlation, falco, tetragon, tracee


@dataclass(frozen=True, slots=True)
class Entity:
    """Who or what an alert is about; the dedup key together with the rule."""

    cluster: str | None = None
    namespace: str | None = None
    pod: str | None = None
    user: str | None = None
    node: str | None = None

    @classmethod
    def of(cls, event: Fields) -> Entity:
        return cls(
            cluster=_text(event, "orchestrator.cluster.name"),
            namespace=_text(event, "kubernetes.namespace", "orchestrator.namespace"),
            pod=_text(event, "kubernetes.pod.name"),
            user=_text(event, "user.name"),
            node=_text(event, "kubernetes.node.name", "host.name"),
        )


def _text(event: Fields, *names: str) -> str | None:
    for name in names:
        value = event.get(name)
        if isinstance(value, str) and value:
            return value
    return None


@dataclass(slots=True)
class Alert:
    rule: RuleInfo
    entity: Entity
    first_seen: datetime
    last_seen: datetime
    count: int = 1
    event_ids: list[str] = field(default_factory=list)
    id: str = ""

    def __post_init__(self) -> None:
        if not self.id:
            seed = f"{self.rule.id}|{self.entity}|{self.first_seen.isoformat()}"
            self.id = hashlib.sha256(seed.encode()).hexdigest()[:32]

    def add(self, moment: datetime, event_ids: Iterable[str]) -> None:
        """Count one more match at ``moment``; keeps the first 100 distinct event ids."""
        self.count += 1
        self.first_seen = min(self.first_seen, moment)
        self.last_seen = max(self.last_seen, moment)
        for event_id in event_ids:
            if len(self.event_ids) >= MAX_EVENT_IDS:
                break
            if event_id and event_id not in self.event_ids:
                self.event_ids.append(event_id)

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "rule_id": self.rule.id,
            "rule_title": self.rule.title,
            "level": self.rule.level,
            "severity": severity_name(self.rule.severity),
            "techniques": list(self.rule.techniques),
            "origin": self.rule.origin,
            "description": self.rule.description,
            "entity": {
                "cluster": self.entity.cluster,
                "namespace": self.entity.namespace,
                "pod": self.entity.pod,
                "user": self.entity.user,
                "node": self.entity.node,
            },
            "first_seen": self.first_seen,
            "last_seen": self.last_seen,
            "count": self.count,
            "event_ids": list(self.event_ids),
        }


def event_time(event: Mapping[str, Any]) -> datetime | None:
    return parse_timestamp(event.get("@timestamp"))
