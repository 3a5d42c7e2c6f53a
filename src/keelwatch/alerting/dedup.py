"""Merge matches of one rule on one entity within a window into a single alert.

A match whose event time falls within ``window_seconds`` of an open alert for the same rule and
entity raises that alert's count instead of opening a new one. Open alerts are bounded
(``max_open``, least recently touched first out); an evicted alert simply stays in the store and
the next match opens a new one.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from datetime import datetime, timedelta

from keelwatch.model.alert import Alert, Entity, RuleInfo

Key = tuple[str, Entity]
# How many of the latest stored alerts a restart (or an import) reopens.
RESTORED_ALERTS = 10_000


class Deduplicator:
    def __init__(self, window_seconds: float = 600.0, max_open: int = 100_000) -> None:
        self.window = timedelta(seconds=window_seconds)
        self.max_open = max_open
        self._open: OrderedDict[Key, Alert] = OrderedDict()

    def restore(self, alerts: Iterable[Alert]) -> None:
        """Reopen alerts read back from the store (after a restart)."""
        for alert in alerts:
            self._remember((alert.rule.id, alert.entity), alert)

    def observe(
        self, rule: RuleInfo, entity: Entity, moment: datetime, event_ids: Iterable[str]
    ) -> Alert:
        """Record one match; returns the alert it opened or updated."""
        key = (rule.id, entity)
        alert = self._open.get(key)
        if alert is not None and self._within(alert, moment):
            alert.add(moment, event_ids)
            self._open.move_to_end(key)
            return alert
        alert = Alert(rule, entity, moment, moment, count=0)
        alert.add(moment, event_ids)
        self._remember(key, alert)
        return alert

    def _within(self, alert: Alert, moment: datetime) -> bool:
        return alert.first_seen - self.window <= moment <= alert.last_seen + self.window

    def _remember(self, key: Key, alert: Alert) -> None:
        self._open[key] = alert
        self._open.move_to_end(key)
        while len(self._open) > self.max_open:
            self._open.popitem(last=False)

    def __len__(self) -> int:
        return len(self._open)
