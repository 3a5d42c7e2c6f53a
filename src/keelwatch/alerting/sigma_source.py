"""The Sigma engine as a match source for alerts: each matching rule raises (or updates) one."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from keelwatch.detect import Rule, RuleSet
from keelwatch.model.alert import RuleInfo
from keelwatch.model.fields import Fields


def alert_rule(rule: Rule, origin: str = "sigma") -> RuleInfo:
    return RuleInfo(
        id=rule.id,
        title=rule.title,
        level=rule.level or "medium",
        severity=rule.severity,
        techniques=rule.techniques,
        description=rule.description[:1000],
        origin=origin,
    )


class SigmaMatches:
    """``MatchSource`` over a compiled rule set; rules with ``output: false`` stay silent."""

    def __init__(self, rules: RuleSet) -> None:
        self.rules = rules
        self._info = {rule.id: alert_rule(rule) for rule in rules if rule.output}

    def __call__(self, events: Sequence[Fields]) -> Iterator[tuple[RuleInfo, Sequence[Fields]]]:
        for match in self.rules.match(events):
            info = self._info.get(match.rule.id)
            if info is not None:
                yield info, (events[match.index],)


def match_sources(rules: RuleSet) -> list[SigmaMatches]:
    """The match sources a loaded rule set contributes to alerting."""
    return [SigmaMatches(rules)] if len(rules) else []
