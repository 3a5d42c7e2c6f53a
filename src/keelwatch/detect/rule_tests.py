"""Detection as code: run each rule's own positive and negative test events.

Every ``<stem>.yml`` may have a ``<stem>.tests.json`` beside it (JSON, so the rule loader never
takes it for a rule): ``{"rule": <id>, "cases": [...]}``, where a case is either

* ``{"name", "match", "why", "source", "records": [raw records]}``: the records go through the
  parser ``source`` (default k8s-audit) and ``match`` says whether rule ``rule`` fires; or
* ``{"name", "match", "why", "steps": [{"rule", "source", "record"}]}``: for correlations
  across sources, each step one raw record that must match the member rule ``rule`` (null: none
  of the correlation's members).

Records are normalized by Keelwatch's parsers and matched by the same engine as the stream;
correlations are judged by the streaming correlation engine, fed in time order.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from keelwatch.detect.correlation import CorrelationEngine
from keelwatch.detect.engine import RuleSet
from keelwatch.detect.rules import Correlation, Rule
from keelwatch.errors import KeelwatchError
from keelwatch.model.alert import event_time
from keelwatch.pipeline.normalize import normalize

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
    # (member rule id or None, parser name, raw record); None for plain cases.
    steps: tuple[tuple[str | None, str, Any], ...]
    chained: bool

    @property
    def label(self) -> str:
        return f"{self.file.name.removesuffix(TESTS_SUFFIX)}: {self.name}"


@dataclass(frozen=True)
class CaseResult:
    case: Case
    passed: bool
    detail: str = ""


def cases_file_for(rule_file: Path) -> Path:
    return rule_file.with_name(rule_file.stem + TESTS_SUFFIX)


def read_cases(path: Path) -> list[Case]:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        cases = []
        for item in doc["cases"]:
            if "steps" in item:
                steps = tuple((s["rule"], s["source"], s["record"]) for s in item["steps"])
            else:
                source = item.get("source", DEFAULT_SOURCE)
                steps = tuple((None, source, record) for record in item["records"])
            cases.append(
                Case(
                    path, str(doc["rule"]), str(item["name"]), bool(item["match"]),
                    str(item.get("why", "")), steps, "steps" in item,
                )
            )  # fmt: skip
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise KeelwatchError(f"{path}: not a rule test file: {error}") from None
    return cases


def find_cases(paths: Iterable[Path]) -> list[Case]:
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files.extend(sorted(path.rglob("*" + TESTS_SUFFIX)))
        elif path.name.endswith(TESTS_SUFFIX):
            files.append(path)
        elif cases_file_for(path).is_file():
            files.append(cases_file_for(path))
    return [case for file in files for case in read_cases(file)]


def events_of(records: Iterable[Any], source: str) -> list[dict[str, Any]]:
    """Normalize raw records with parser ``source``; a record that does not parse is an error."""
    batch = normalize(list(records), source, RECEIVED_AT)
    if batch.dead_letters:
        reasons = "; ".join(letter.reason for letter in batch.dead_letters)
        raise KeelwatchError(f"{source} dead-lettered a test record: {reasons}")
    return [dict(event) for event in batch.events]


def rule_by_id(ruleset: RuleSet, rule_id: str) -> Rule | Correlation | None:
    rule = ruleset.get(rule_id)
    if rule is not None:
        return rule
    return next((c for c in ruleset.correlations if c.id == rule_id), None)


def correlation_fires(correlation: Correlation, hits: Sequence[tuple[str, Event]]) -> bool:
    """Whether the streaming engine fires ``correlation`` on (member rule id, event) hits."""
    engine = CorrelationEngine([correlation])
    members = {rule.id: rule for rule in correlation.rules}
    ordered = sorted(hits, key=lambda hit: event_time(hit[1]) or RECEIVED_AT)
    return any(
        engine.observe(members[rule_id], event) for rule_id, event in ordered if rule_id in members
    )


def run_case(ruleset: RuleSet, case: Case) -> CaseResult:
    target = rule_by_id(ruleset, case.rule)
    if target is None:
        return CaseResult(case, False, f"rule {case.rule} did not load")
    try:
        hits: list[tuple[str, Event]] = []
        for expected, source, record in case.steps:
            for event in events_of([record], source):
                found = {match.rule.id for match in ruleset.match([event])}
                if case.chained and isinstance(target, Correlation):
                    members = {rule.id for rule in target.rules}
                    if expected is None and found & members:
                        return CaseResult(case, False, f"step matched {sorted(found & members)}")
                    if expected is not None and expected not in found:
                        return CaseResult(case, False, f"a {source} step missed rule {expected}")
                hits.extend((rule_id, event) for rule_id in found)
    except KeelwatchError as error:
        return CaseResult(case, False, str(error))
    if isinstance(target, Correlation):
        fired = correlation_fires(target, hits)
    else:
        fired = any(rule_id == target.id for rule_id, _ in hits)
    if fired is case.match:
        return CaseResult(case, True)
    verb = "did not fire" if case.match else "fired"
    return CaseResult(case, False, f"{verb}: {case.why}")
