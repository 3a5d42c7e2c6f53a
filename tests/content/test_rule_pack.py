"""The Kubernetes rule pack: every rule loads, has test events, and fires exactly where it should.

Each rule's positive and negative events are raw records (audit Events as the API server sends
them, Tetragon/Falco/Hubble records for the runtime steps) read from ``<rule>.tests.json``
beside the rule, normalised by Keelwatch's parsers and matched by the engine.
"""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import pytest
import yaml

from keelwatch.detect import Correlation, load_rules
from tests.content.rule_cases import (
    Case,
    all_cases,
    cases_file_for,
    correlation_fires,
    events_of,
    matched_ids,
    member_ids,
    pack,
    read_cases,
    rule_by_id,
    rule_files,
)

TECHNIQUE = re.compile(r"attack\.t\d{4}(\.\d{3})?")
TACTIC = re.compile(r"attack\.[a-z]+(-[a-z]+)*")
RULE_FILES = rule_files()
CASES = all_cases()
REQUIRED_KEYS = (
    "title", "id", "status", "description", "author", "date", "tags", "falsepositives", "level",
)  # fmt: skip


def _documents(path: Path) -> list[dict[str, object]]:
    return [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc]


@pytest.mark.parametrize("path", RULE_FILES, ids=lambda p: p.name)
def test_rule_file_loads_alone(path: Path) -> None:
    ruleset, errors = load_rules([path])
    assert errors == []
    assert len(ruleset.rules) + len(ruleset.correlations) == len(_documents(path))


@pytest.mark.parametrize("path", RULE_FILES, ids=lambda p: p.name)
def test_rule_metadata(path: Path) -> None:
    for doc in _documents(path):
        missing = [key for key in REQUIRED_KEYS if key not in doc]
        assert not missing, f"{path.name}: {doc.get('title')} lacks {missing}"
        assert uuid.UUID(str(doc["id"])).version == 4
        assert doc["author"] == "Keelwatch"
        tags = [str(tag) for tag in doc["tags"]]  # type: ignore[attr-defined]
        assert any(TECHNIQUE.fullmatch(tag) for tag in tags), tags
        assert any(TACTIC.fullmatch(tag) for tag in tags), tags
        assert doc["falsepositives"] and "Unknown" not in doc["falsepositives"]  # type: ignore[operator]
        if "correlation" not in doc:
            logsource = doc["logsource"]
            assert isinstance(logsource, dict) and logsource.get("product") in (
                "kubernetes",
                "linux",
            )


@pytest.mark.parametrize("path", RULE_FILES, ids=lambda p: p.name)
def test_rule_has_positive_and_negative_cases(path: Path) -> None:
    tests = cases_file_for(path)
    assert tests.is_file(), f"{tests.name} is missing"
    cases = read_cases(tests)
    ids = {str(doc["id"]) for doc in _documents(path)}
    assert cases and all(case.rule in ids for case in cases)
    assert {case.match for case in cases} == {True, False}


def test_pack_ids_are_unique() -> None:
    ids = [str(doc["id"]) for path in RULE_FILES for doc in _documents(path)]
    assert len(ids) == len(set(ids))


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.label)
def test_case(case: Case) -> None:
    ruleset, _ = pack()
    if case.chained:
        _check_chain(case)
        return
    events = []
    for _, source, record in case.steps:
        events.extend(events_of([record], source))
    assert events, "the records produced no events"
    target = rule_by_id(ruleset, case.rule)
    assert target is not None, f"rule {case.rule} did not load"
    found = matched_ids(ruleset, events)
    if isinstance(target, Correlation):
        hits = [(rule_id, events[i]) for i, ids in enumerate(found) for rule_id in ids]
        assert correlation_fires(target, hits) is case.match, case.why
    else:
        fired = any(case.rule in ids for ids in found)
        assert fired is case.match, case.why


def _check_chain(case: Case) -> None:
    ruleset, _ = pack()
    hits = []
    for expected, source, record in case.steps:
        events = events_of([record], source)
        assert len(events) == 1
        found = matched_ids(ruleset, events)[0]
        if expected is None:
            members = _members_of(case.rule)
            assert not found & members, f"{source} record matched {found & members}"
        else:
            assert expected in found, f"{source} record did not match step rule {expected}"
            hits.append((expected, events[0]))
    correlation = rule_by_id(ruleset, case.rule)
    assert isinstance(correlation, Correlation), f"correlation {case.rule} did not load"
    assert correlation_fires(correlation, hits) is case.match, case.why


def _members_of(correlation_id: str) -> set[str]:
    """Member rule ids from the rule file itself (the correlation may not have loaded)."""
    for path in RULE_FILES:
        docs = _documents(path)
        for doc in docs:
            if str(doc.get("id")) == correlation_id:
                names = set(doc["correlation"]["rules"])  # type: ignore[index]
                return {str(d["id"]) for d in docs if d.get("name") in names}
    raise AssertionError(f"no correlation {correlation_id}")


def test_correlation_members_raise_no_alerts_of_their_own() -> None:
    ruleset, _ = pack()
    assert ruleset.correlations, "no correlation loaded"
    for correlation in ruleset.correlations:
        for rule_id in member_ids(correlation):
            member = ruleset.get(rule_id)
            assert member is not None and member.output is False
