"""Differential test: Keelwatch's matches equal pySigma's SQLite backend's on the same events.

Every SigmaHQ rule of ../shared/corpus/sigma whose log source Keelwatch supports is loaded by
Keelwatch and converted to SQL by pySigma's SQLite backend through the same pipeline. Both run
over the same events: the corpus normalised by Keelwatch's parsers, plus events generated from
each rule (matches and near misses, tests/detect/near_miss.py). Every (rule, event) on which the
two disagree must fall under a difference docs/detection.md documents ("Differences from
pySigma's SQLite backend"); anything else fails the test with the list.
"""

from __future__ import annotations

import ipaddress
from collections import Counter, defaultdict
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from bench.sigma_sqlite import EventTable, convert_collection
from sigma.collection import SigmaCollection
from sigma.conditions import (
    ConditionAND,
    ConditionFieldEqualsValueExpression,
    ConditionNOT,
    ConditionOR,
    ConditionValueExpression,
)
from sigma.rule import SigmaRule
from sigma.types import (
    SigmaCIDRExpression,
    SigmaCompareExpression,
    SigmaFieldReference,
    SigmaNumber,
    SigmaRegularExpression,
    SigmaString,
)

from keelwatch.detect import RuleSet, load_rules
from keelwatch.detect.compile import KEYWORD_FIELDS
from keelwatch.detect.matchers import getter
from keelwatch.pipeline.decode import decode_body
from keelwatch.pipeline.normalize import normalize

from ..conftest import CORPUS
from ..corpus_sources import bodies, corpus_files
from .near_miss import events_for

RULE_FOLDERS = ("rules", "rules-threat-hunting", "rules-placeholder")
EVENT_SOURCES = ("k8s-audit", "cloudtrail", "gcp-audit", "falco", "tetragon", "hubble")
NOW = datetime(2026, 3, 1, tzinfo=UTC)
DOCS = Path(__file__).resolve().parents[2] / "docs" / "detection.md"

# The documented differences (docs/detection.md), each a test on the event and the rule.
LIST = "list value"
TYPED = "typed value"
UNICODE = "non-ASCII case folding"
CIDR = "cidr on text that is not a canonical IP address"
FIELD_CASE = "field names differing only in case"
REASONS = (LIST, TYPED, UNICODE, CIDR, FIELD_CASE)


@pytest.fixture(scope="module")
def setup() -> dict[str, Any]:
    if not CORPUS.is_dir():
        pytest.skip(f"shared corpus not found at {CORPUS} (it sits beside the checkout)")
    corpus = CORPUS
    folders = [corpus / "sigma" / name for name in RULE_FOLDERS]
    if not all(folder.is_dir() for folder in folders):
        pytest.skip("the corpus has no SigmaHQ rules (sigma/rules*)")
    ruleset, errors = load_rules(folders)
    reference = SigmaCollection.load_ruleset([str(f) for f in folders], collect_errors=True)
    queries, sql_errors = convert_collection(reference)
    events = _corpus_events(corpus)
    templates: dict[str, dict[str, Any]] = {}
    for event in events:
        templates.setdefault(str(event["event.dataset"]).lower(), event)
    sigma_rules = {
        str(rule.id): rule
        for rule in reference.rules
        if isinstance(rule, SigmaRule) and str(rule.id) in queries
    }
    corpus_count = len(events)
    for rule in ruleset:
        assert rule.sigma is not None
        events.extend(events_for(rule.sigma, templates))
    return {
        "ruleset": ruleset,
        "errors": errors,
        "queries": queries,
        "sql_errors": sql_errors,
        "events": events,
        "corpus_count": corpus_count,
        "sigma_rules": sigma_rules,
    }


def _corpus_events(corpus: Path) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    for source, path in corpus_files(corpus):
        if source not in EVENT_SOURCES:
            continue
        for body in bodies(path):
            events.extend(normalize(decode_body(body).records, source, NOW).events)
    return events


@pytest.mark.corpus
def test_same_rules_load_on_both_sides(setup: dict[str, Any]) -> None:
    ruleset: RuleSet = setup["ruleset"]
    loaded = {rule.id for rule in ruleset}
    failed = {error.rule for error in setup["errors"] if not error.unsupported}
    assert len(loaded) >= 200  # SigmaHQ's kubernetes, aws, gcp and linux rules
    # Rules SQLite converts but Keelwatch refuses are listed with Keelwatch's reason.
    refused = set(setup["queries"]) - loaded
    assert refused <= failed, sorted(refused - failed)
    for error in setup["errors"]:
        if not error.unsupported:
            assert error.path.endswith(".yml") and error.line and error.reason


@pytest.mark.corpus
def test_matches_equal_the_sqlite_backend(setup: dict[str, Any]) -> None:
    ruleset: RuleSet = setup["ruleset"]
    events: list[dict[str, Any]] = setup["events"]
    queries: dict[str, list[str]] = setup["queries"]
    rules = [rule for rule in ruleset if rule.id in queries]
    fields = set().union(*(rule.fields for rule in rules))
    table = EventTable(events, fields)
    ours: dict[str, set[int]] = defaultdict(set)
    for found in ruleset.match(events):
        ours[found.rule.id].add(found.index)

    unexplained: list[str] = []
    explained: Counter[str] = Counter()
    matched_rules = 0
    for rule in rules:
        theirs = table.matching(queries[rule.id])
        matched_rules += bool(theirs & ours[rule.id])
        for index in sorted(theirs ^ ours[rule.id]):
            event = events[index]
            sigma = setup["sigma_rules"][rule.id]
            reason = _explain(sigma, event, table.shadowed)
            side = "Keelwatch only" if index in ours[rule.id] else "SQLite only"
            if reason is None:
                values = {f: _value(event, f) for f in sorted(rule.fields)}
                unexplained.append(f"{rule.id} {rule.title!r} event {index} {side}: {values}")
            else:
                explained[reason] += 1
    table.close()
    print(f"{len(rules)} rules, {len(events)} events ({setup['corpus_count']} from the corpus)")
    print(f"rules matching at least one event on both sides: {matched_rules}")
    print(f"explained differences: {dict(explained)}")
    assert not unexplained, "\n".join(unexplained[:40])
    # The generated events reach most rules: a generator that stopped matching would hide bugs.
    assert matched_rules >= 0.9 * len(rules)


@pytest.mark.corpus
def test_every_reason_is_documented() -> None:
    text = DOCS.read_text()
    section = text.split("## Differences from pySigma's SQLite backend", 1)
    assert len(section) == 2
    for reason in REASONS:
        assert reason in section[1], reason


def _value(event: Mapping[str, Any], field: str) -> Any:
    get = getter(field)
    return get(event) if get is not None else event.get(field)


def _explain(rule: SigmaRule, event: Mapping[str, Any], shadowed: set[str]) -> str | None:
    """The documented difference behind a disagreement on ``event``, or None."""
    leaves = [leaf for c in rule.detection.parsed_condition for leaf in _leaves(c.parsed)]
    for field, value in leaves:
        if field in shadowed:
            return FIELD_CASE
        found = _value(event, field)
        other = _value(event, value.field) if isinstance(value, SigmaFieldReference) else None
        if isinstance(found, list) or isinstance(other, list):
            return LIST
    for field, value in leaves:
        found = _value(event, field)
        if found is None:
            continue
        if isinstance(value, SigmaFieldReference):
            other = _value(event, value.field)
            if type(found) is not type(other):
                return TYPED
            if _non_ascii(found) or _non_ascii(other):
                return UNICODE
            continue
        if _typed(found, value):
            return TYPED
        if _non_ascii(found) and isinstance(value, SigmaString | SigmaRegularExpression):
            return UNICODE
        if isinstance(value, SigmaCIDRExpression) and not _canonical_ipv4(found):
            return CIDR
    return None


def _leaves(cond: Any) -> list[tuple[str, Any]]:
    if isinstance(cond, ConditionAND | ConditionOR | ConditionNOT):
        return [leaf for arg in cond.args for leaf in _leaves(arg)]
    if isinstance(cond, ConditionValueExpression):  # a keyword: searched in the text fields
        return [(field, cond.value) for field in KEYWORD_FIELDS]
    if isinstance(cond, ConditionFieldEqualsValueExpression):
        values = getattr(cond.value, "values", None)  # SigmaExpansion
        if values is not None:
            return [(cond.field, value) for value in values]
        return [(cond.field, cond.value)]
    return []


def _typed(found: Any, value: Any) -> bool:
    """SQLite compares an INTEGER and a TEXT as unequal, and any TEXT above any number."""
    number_in_event = isinstance(found, int | float) and not isinstance(found, bool)
    if isinstance(value, SigmaNumber | SigmaCompareExpression):
        return isinstance(found, str | bool)
    if isinstance(value, SigmaString):
        return number_in_event or (isinstance(found, bool) and not value.contains_special())
    return False


def _non_ascii(value: Any) -> bool:
    return isinstance(value, str) and not value.isascii()


def _canonical_ipv4(value: Any) -> bool:
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        return False
    return address.version == 4 and str(address) == value
