"""Turn rule matches on a batch into alert upserts on that same batch.

Match sources are callables from events to ``(rule, matched events)`` pairs: the Sigma engine,
the correlation engine and the runtime tools' own alerts. A source that fails is logged and
counted; the batch and the other sources go on.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime

from keelwatch.alerting.dedup import Deduplicator
from keelwatch.model.alert import ENTITY_FIELDS, Alert, Entity, RuleInfo, event_time
from keelwatch.model.fields import Fields
from keelwatch.parsers.base import Batch

log = logging.getLogger(__name__)

MatchSource = Callable[[Sequence[Fields]], Iterable[tuple[RuleInfo, Sequence[Fields]]]]


class AlertRaiser:
    def __init__(self, sources: Sequence[MatchSource], dedup: Deduplicator) -> None:
        self.sources = list(sources)
        self.dedup = dedup
        self.failures = 0

    def process(self, batch: Batch) -> list[Alert]:
        """Run every source over ``batch.events``; the changed alerts go into ``batch.alerts``."""
        if not batch.events:
            return []
        changed: dict[str, Alert] = {}
        for source in self.sources:
            try:
                for rule, matched in source(batch.events):
                    alert = self.observe(rule, matched)
                    changed[alert.id] = alert
            except Exception:
                self.failures += 1
                log.exception("detection source %r failed on a batch", source)
        alerts = list(changed.values())
        batch.alerts.extend(alerts)
        return alerts

    def observe(self, rule: RuleInfo, matched: Sequence[Fields]) -> Alert:
        last = matched[-1]
        moment = event_time(last) or datetime.now(UTC)
        ids = [i for i in (event.get("event.id") for event in matched) if isinstance(i, str)]
        return self.dedup.observe(rule, shared_entity(matched), moment, ids)


def shared_entity(events: Sequence[Fields]) -> Entity:
    """What all ``events`` have in common: the entity a correlation alert is about."""
    first = Entity.of(events[0])
    if len(events) == 1:
        return first
    others = [Entity.of(event) for event in events[1:]]
    shared: dict[str, str | None] = {}
    for name in ENTITY_FIELDS:
        value = getattr(first, name)
        shared[name] = value if all(getattr(o, name) == value for o in others) else None
    return Entity(**shared)
