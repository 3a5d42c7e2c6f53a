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

Correlation rules are judged by ``correlation_fires``, a reference reading of Sigma's
event_count and temporal_ordered semantics over the member rules' matches (the engine's
stateful evaluator is still to come; when it lands, the harness should call it instead).
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

from keelwatch.detect import Correlation, Rule, RuleLoadError, RuleSet, load_rules
from keelwatch.pipeline.normalize import normalize

RULES_ROOT = Path(__file__).resolve().parents[2] / "content" / "rules"
KUBERNETES_RULES = RULES_ROOT / "kubernetes"
TESTS_SUFFIX = ".tests.json"
DEFAULT_SOURCE = "k8s-audit"
RECEIVED_AT = datetime(2026, 3, 14, 12, 0, tzinfo=UTC)

Event = Mapping[str, Any]


@dataclass(frozen=True)
class Case:
    file: Path
    rule: str
    name: str
    match: bool
    why: str
    # (expected member rule id or None, parser name, raw record); the member is None for
    # plain cases, whose records all feed the rule under test.
    steps: tuple[tuple[str | None, str, Any], ...]
    chained: bool

    @property
    def label(self) -> str:
        return f"{self.file.name.removesuffix(TESTS_SUFFIX)}: {self.name}"


def rule_files(root: Path = KUBERNETES_RULES) -> list[Path]:
    return sorted(root.rglob("*.yml"))


def cases_file_for(rule_file: Path) -> Path:
    return rule_file.with_name(rule_file.stem + TESTS_SUFFIX)


def read_cases(path: Path) -> list[Case]:
    doc = json.loads(path.read_text(encoding="utf-8"))
    cases = []
    for item in doc["cases"]:
        if "steps" in item:
            steps = tuple((s["rule"], s["source"], s["record"]) for s in item["steps"])
            chained = True
        else:
            source = item.get("source", DEFAULT_SOURCE)
            steps = tuple((None, source, record) for record in item["records"])
            chained = False
        cases.append(
            Case(path, doc["rule"], item["name"], bool(item["match"]), item["why"], steps, chained)
        )
    return cases


def all_cases(root: Path = KUBERNETES_RULES) -> list[Case]:
    return [case for path in sorted(root.rglob("*" + TESTS_SUFFIX)) for case in read_cases(path)]


@cache
def pack(root: Path = KUBERNETES_RULES) -> tuple[RuleSet, tuple[RuleLoadError, ...]]:
    ruleset, errors = load_rules([root])
    return ruleset, tuple(errors)


def events_of(records: Iterable[Any], source: str) -> list[dict[str, Any]]:
    """Normalise raw records with the named parser; a record that does not parse is an error."""
    batch = normalize(list(records), source, RECEIVED_AT)
    if batch.dead_letters:
        reasons = "; ".join(letter.reason for letter in batch.dead_letters)
        raise AssertionError(f"{source} dead-lettered a test record: {reasons}")
    return [dict(event) for event in batch.events]


def matched_ids(ruleset: RuleSet, events: Sequence[Event]) -> list[set[str]]:
    """For each event, the ids of every rule that matches it (alerting or not)."""
    found: list[set[str]] = [set() for _ in events]
    for match in ruleset.match(events):
        found[match.index].add(match.rule.id)
    return found


def member_ids(correlation: Correlation) -> list[str]:
    return [rule.id for rule in correlation.rules]


def correlation_fires(correlation: Correlation, hits: Sequence[tuple[str, Event]]) -> bool:
    """Whether ``correlation`` fires over ``hits`` ((member rule id, event), any order)."""
    groups: dict[tuple[Any, ...], list[tuple[datetime, str]]] = defaultdict(list)
    members = set(member_ids(correlation))
    for rule_id, event in hits:
        if rule_id not in members:
            continue
        key = tuple(
            _group_value(event, correlation.field_for(rule_id, name))
            for name in correlation.group_by
        )
        if any(value is None for value in key):
            continue  # Sigma: an event without a group-by field joins no group
        groups[key].append((_moment(event), rule_id))
    window = correlation.timespan_seconds
    for items in groups.values():
        items.sort(key=lambda item: item[0])
        if correlation.type == "event_count" and _count_reaches(items, window, correlation):
            return True
        if correlation.type == "temporal_ordered" and _ordered(
            items, window, member_ids(correlation)
        ):
            return True
    return False


def _group_value(event: Event, name: str) -> Any:
    value = event.get(name)
    return tuple(value) if isinstance(value, list) else value


def _moment(event: Event) -> datetime:
    moment = event.get("@timestamp")
    if not isinstance(moment, datetime):
        raise AssertionError(f"test event without @timestamp: {event.get('event.id')}")
    return moment


def _count_reaches(
    items: list[tuple[datetime, str]], window_seconds: int, correlation: Correlation
) -> bool:
    wanted = correlation.condition
    start = 0
    for end in range(len(items)):
        while (items[end][0] - items[start][0]).total_seconds() > window_seconds:
            start += 1
        count = end - start + 1
        if "gte" in wanted and count >= wanted["gte"]:
            return True
        if "gt" in wanted and count > wanted["gt"]:
            return True
    return False


def _ordered(items: list[tuple[datetime, str]], window_seconds: int, order: list[str]) -> bool:
    """Some run of events matching order[0], order[1], … in time order within the window."""
    for index, (first_at, rule_id) in enumerate(items):
        if rule_id != order[0]:
            continue
        position = 1
        for moment, later in items[index + 1 :]:
            if (moment - first_at).total_seconds() > window_seconds:
                break
            if later == order[position]:
                position += 1
                if position == len(order):
                    return True
    return False


def rule_by_id(ruleset: RuleSet, rule_id: str) -> Rule | Correlation | None:
    rule = ruleset.get(rule_id)
    if rule is not None:
        return rule
    return next((c for c in ruleset.correlations if c.id == rule_id), None)
