"""Rule-pack test cases: read ``<rule>.tests.json`` beside each rule, normalise, match, judge.

Layout (content/rules/README.md): every ``<stem>.yml`` under content/rules has a
``<stem>.tests.json`` beside it (JSON so the rule loader, which reads every *.yml, never takes
it for a rule). ``{"rule": <id>, "cases": [...]}``; a case is either

* ``{"name", "match", "why", "source", "records": [raw records]}`` — the records go through the
  parser named ``source`` (default ``k8s-audit``); ``match`` says whether the rule ``rule``
  (a detection or a correlation rule) fires on them;
* ``{"name", "match", "why", "steps": [{"rule", "source", "record"}]}`` — for correlations over
  several sources: each step is one raw record for its own parser, and ``rule`` names the
  correlation's member rule it must match (null: it must match none of them).

The reader and the judge live in ``keelwatch.detect.rule_tests`` (``keelwatch rules test``
uses them too); correlations are judged by the streaming correlation engine.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import cache
from pathlib import Path
from typing import Any

from keelwatch.detect import Correlation, RuleLoadError, RuleSet, load_rules
from keelwatch.detect.rule_tests import (
    TESTS_SUFFIX,
    Case,
    cases_file_for,
    correlation_fires,
    events_of,
    read_cases,
    rule_by_id,
)

__all__ = [
    "Case",
    "all_cases",
    "cases_file_for",
    "correlation_fires",
    "events_of",
    "matched_ids",
    "member_ids",
    "pack",
    "read_cases",
    "rule_by_id",
    "rule_files",
]

RULES_ROOT = Path(__file__).resolve().parents[2] / "content" / "rules"
KUBERNETES_RULES = RULES_ROOT / "kubernetes"

Event = Mapping[str, Any]


def rule_files(root: Path = KUBERNETES_RULES) -> list[Path]:
    return sorted(root.rglob("*.yml"))


def all_cases(root: Path = KUBERNETES_RULES) -> list[Case]:
    return [case for path in sorted(root.rglob("*" + TESTS_SUFFIX)) for case in read_cases(path)]


@cache
def pack(root: Path = KUBERNETES_RULES) -> tuple[RuleSet, tuple[RuleLoadError, ...]]:
    ruleset, errors = load_rules([root])
    return ruleset, tuple(errors)


def matched_ids(ruleset: RuleSet, events: Sequence[Event]) -> list[set[str]]:
    """For each event, the ids of every rule that matches it (alerting or not)."""
    found: list[set[str]] = [set() for _ in events]
    for match in ruleset.match(events):
        found[match.index].add(match.rule.id)
    return found


def member_ids(correlation: Correlation) -> list[str]:
    return [rule.id for rule in correlation.rules]
