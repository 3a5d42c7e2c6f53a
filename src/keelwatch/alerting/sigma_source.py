"""The Sigma engine as a match source for alerts: detection rules and their correlations."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from pathlib import Path

from keelwatch.detect import Correlation, Rule, RuleSet, load_rules
from keelwatch.detect.correlation import CorrelationEngine
from keelwatch.model.alert import RuleInfo
from keelwatch.model.fields import Fields

log = logging.getLogger("keelwatch")


def alert_rule(rule: Rule | Correlation, origin: str = "sigma") -> RuleInfo:
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
    """``MatchSource`` over a compiled rule set.

    Every match of a rule that a correlation references also goes to the correlation engine,
    whose firings raise alerts of their own. Rules with ``output: false`` (a correlation's
    ``generate: false`` members) raise nothing alone.
    """

    def __init__(self, rules: RuleSet, *, allowed_lateness_seconds: float = 120.0) -> None:
        self.rules = rules
        self.correlator = CorrelationEngine(
            rules.correlations, allowed_lateness_seconds=allowed_lateness_seconds
        )
        self._info = {rule.id: alert_rule(rule) for rule in rules if rule.output}
        for correlation in rules.correlations:
            if correlation.output:
                self._info[correlation.id] = alert_rule(correlation, "correlation")
        self._correlated = self.correlator.referenced
        for correlation in self.correlator.unsupported:
            log.warning(
                "correlation %r (%s) is not evaluated live: its condition %s needs a closed window",
                correlation.title, correlation.path, dict(correlation.condition),
            )  # fmt: skip

    def __call__(self, events: Sequence[Fields]) -> Iterator[tuple[RuleInfo, Sequence[Fields]]]:
        for match in self.rules.match(events):
            event = events[match.index]
            info = self._info.get(match.rule.id)
            if info is not None:
                yield info, (event,)
            if match.rule.id not in self._correlated:
                continue
            for firing in self.correlator.observe(match.rule, event):
                found = self._info.get(firing.correlation.id)
                if found is not None:
                    yield found, firing.events  # type: ignore[misc]


def match_sources(rules: RuleSet) -> list[SigmaMatches]:
    """The match sources a loaded rule set contributes to alerting."""
    return [SigmaMatches(rules)] if len(rules) or rules.correlations else []


def load_match_sources(paths: Sequence[Path]) -> list[SigmaMatches]:
    """Compile the rules under ``paths``; a rule that cannot load is logged and skipped."""
    if not paths:
        return []
    ruleset, problems = load_rules(paths)
    for problem in problems:
        if not problem.unsupported:
            log.warning("rule not loaded: %s", problem)
    skipped = sum(1 for problem in problems if problem.unsupported)
    log.info(
        "detection: %d rules loaded from %s (%d for log sources Keelwatch does not read)",
        len(ruleset), ", ".join(map(str, paths)), skipped,
    )  # fmt: skip
    return match_sources(ruleset)
