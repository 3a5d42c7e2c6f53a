"""Sigma correlation rules over the event stream, with bounded state.

Each correlation keeps, per group-by value, the recent matches of the rules it references
(event time, member rule, event). A new match is filed in time order and the rule's condition
is checked on the windows of ``timespan`` that contain it:

- ``event_count``: matches in the window meet the condition (gte, gt, eq);
- ``value_count``: distinct values of the condition's field meet it;
- ``temporal``: every referenced rule matched within the window, in any order;
- ``temporal_ordered``: they matched in the order listed.

Because windows are judged on event time, the same events give the same firings in any arrival
order, as long as no event is later than ``allowed_lateness_seconds`` behind the newest one
seen: older matches are pruned, so state stays bounded (also per group and in group count).
Conditions that can only be judged when a window closes (lt, lte, neq) are not evaluated in
the stream; ``unsupported`` lists the rules that use them.
"""

from __future__ import annotations

import bisect
from collections import OrderedDict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from keelwatch.detect.rules import Correlation, Rule
from keelwatch.model.alert import event_time

Event = Mapping[str, Any]
STREAMABLE = frozenset({"gte", "gt", "eq"})


@dataclass(order=True, slots=True)
class Hit:
    moment: datetime
    sequence: int  # arrival number: a stable tie-break for equal times
    rule_id: str = field(compare=False)
    event: Event = field(compare=False, repr=False)


@dataclass(slots=True)
class Firing:
    """A correlation whose condition held; ``events`` are the matches in the window."""

    correlation: Correlation
    events: list[Event]


class CorrelationEngine:
    def __init__(
        self,
        correlations: Sequence[Correlation],
        *,
        allowed_lateness_seconds: float = 120.0,
        max_groups: int = 50_000,
        max_hits_per_group: int = 1_000,
    ) -> None:
        self.lateness = timedelta(seconds=allowed_lateness_seconds)
        self.max_groups = max_groups
        self.max_hits_per_group = max_hits_per_group
        self.unsupported = [c for c in correlations if not _streamable(c)]
        self.correlations = [c for c in correlations if _streamable(c)]
        self._parents: dict[str, list[Correlation]] = {}
        for correlation in self.correlations:
            for member in correlation.rules:
                self._parents.setdefault(member.id, []).append(correlation)
        self._groups: OrderedDict[tuple[str, tuple[Any, ...]], list[Hit]] = OrderedDict()
        self._newest: datetime | None = None
        self._sequence = 0
        self._horizon = max((_span(c) for c in self.correlations), default=timedelta())

    @property
    def referenced(self) -> frozenset[str]:
        """Rule ids whose matches this engine wants."""
        return frozenset(self._parents)

    def state_size(self) -> int:
        return sum(len(hits) for hits in self._groups.values())

    def observe(self, rule: Rule | Correlation, event: Event) -> list[Firing]:
        """File one match of ``rule``; returns the correlations it made fire."""
        firings: list[Firing] = []
        pending: list[tuple[str, Event]] = [(rule.id, event)]
        while pending:  # a firing is itself a match for correlations of correlations
            rule_id, matched = pending.pop()
            for correlation in self._parents.get(rule_id, ()):
                firing = self._file(correlation, rule_id, matched)
                if firing is not None:
                    firings.append(firing)
                    pending.append((correlation.id, firing.events[-1]))
        return firings

    def _file(self, correlation: Correlation, rule_id: str, event: Event) -> Firing | None:
        key = tuple(
            _hashable(event.get(correlation.field_for(rule_id, name)))
            for name in correlation.group_by
        )
        if any(value is None for value in key):
            return None  # Sigma: an event without a group-by value joins no group
        moment = event_time(event) or datetime.now(UTC)
        self._advance(moment)
        if self._newest is not None and moment < self._newest - self.lateness - _span(correlation):
            return None  # later than the allowed lateness: its window is gone
        group = self._groups.setdefault((correlation.id, key), [])
        self._groups.move_to_end((correlation.id, key))
        self._sequence += 1
        bisect.insort(group, Hit(moment, self._sequence, rule_id, event))
        assert self._newest is not None
        expired = bisect.bisect_left(
            [hit.moment for hit in group], self._newest - self.lateness - _span(correlation)
        )
        del group[: max(expired, len(group) - self.max_hits_per_group)]
        while len(self._groups) > self.max_groups:
            self._groups.popitem(last=False)
        window = _satisfied(correlation, group, moment)
        return None if window is None else Firing(correlation, [hit.event for hit in window])

    def _advance(self, moment: datetime) -> None:
        if self._newest is not None and moment <= self._newest:
            return
        self._newest = moment
        # Drop expired groups from the least recently touched end and stop at the first live
        # one: touch order follows event time closely, and this keeps each event O(1).
        cutoff = moment - self.lateness - self._horizon
        while self._groups:
            key, hits = next(iter(self._groups.items()))
            if hits and hits[-1].moment >= cutoff:
                break
            del self._groups[key]


def _streamable(correlation: Correlation) -> bool:
    if correlation.type in ("temporal", "temporal_ordered"):
        return True
    return bool(set(correlation.condition) & STREAMABLE)


def _span(correlation: Correlation) -> timedelta:
    return timedelta(seconds=correlation.timespan_seconds)


def _hashable(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(_hashable(item) for item in value)
    if isinstance(value, dict):
        return None
    return value


def _windows(group: list[Hit], moment: datetime, span: timedelta) -> Iterator[list[Hit]]:
    """Each window of ``span`` that starts at a hit's time and contains ``moment``.

    A window starts with every hit of its first instant, so equal times never depend on
    which of them arrived first.
    """
    moments = [hit.moment for hit in group]
    start = bisect.bisect_left(moments, moment - span)
    while start < len(group) and moments[start] <= moment:
        begin = moments[start]
        yield group[start : bisect.bisect_right(moments, begin + span)]
        start = bisect.bisect_right(moments, begin)


def _satisfied(correlation: Correlation, group: list[Hit], moment: datetime) -> list[Hit] | None:
    span = _span(correlation)
    members = [rule.id for rule in correlation.rules]
    for window in _windows(group, moment, span):
        if correlation.type == "event_count" and _meets(correlation, len(window)):
            return window
        if correlation.type == "value_count":
            name = str(correlation.condition.get("field", ""))
            values = {
                _hashable(hit.event.get(correlation.field_for(hit.rule_id, name))) for hit in window
            }
            values.discard(None)
            if _meets(correlation, len(values)):
                return window
        if correlation.type == "temporal" and set(members) <= {hit.rule_id for hit in window}:
            return window
        if correlation.type == "temporal_ordered" and _in_order(window, members):
            return window
    return None


def _meets(correlation: Correlation, count: int) -> bool:
    wanted = correlation.condition
    return (
        ("gte" in wanted and count >= wanted["gte"])
        or ("gt" in wanted and count > wanted["gt"])
        or ("eq" in wanted and count == wanted["eq"])
    )


def _in_order(window: list[Hit], order: list[str]) -> bool:
    """The window's first instant has order[0], and the rest of ``order`` follows in time.

    Matches at the same instant count in whichever order the rule lists them.
    """
    position = 0
    index = 0
    while index < len(window) and position < len(order):
        instant = window[index].moment
        seen = set()
        while index < len(window) and window[index].moment == instant:
            seen.add(window[index].rule_id)
            index += 1
        if position == 0 and order[0] not in seen:
            return False
        while position < len(order) and order[position] in seen:
            position += 1
    return position == len(order)
