"""The rule set: compiled rules indexed by log source and key values, matched in micro-batches.

Index, per rule, decided once at load:

1. ``event.dataset``: the values the rule's log-source condition allows (``bound``). The rule is
   compiled again for each of them with that test folded away, into that dataset's partition.
   Rules with no dataset bound are checked against every event.
2. Inside a partition, a key field: the field whose exact values bound the most rules (e.g.
   ``kubernetes.audit.objectRef.resource``, then ``kubernetes.audit.verb``); a rule is filed
   under each value it allows. An event only meets the rules filed under its own values, plus
   the few rules no key field bounds.

The bound is a necessary condition, never a sufficient one: every candidate still runs its whole
predicate, so the index changes speed, not results.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from keelwatch.detect.compile import (
    Const,
    Node,
    Predicate,
    basenames,
    bound,
    emit,
    fields,
    fold,
)
from keelwatch.detect.matchers import getter, norm
from keelwatch.detect.rules import Correlation, Rule

DATASET = "event.dataset"
MAX_KEY_FIELDS = 4

Candidate = tuple[Rule, Predicate]


@dataclass(frozen=True, slots=True)
class Match:
    """Rule ``rule`` matched ``event``, the ``index``-th event of the batch."""

    rule: Rule
    index: int
    event: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Partition:
    """The rules of one dataset: filed under key-field values, or always checked."""

    dataset: str
    always: tuple[Candidate, ...]
    # (field, by basename?, key → rules): a basename key is the value's last path segment
    tables: tuple[tuple[str, bool, dict[str, tuple[Candidate, ...]]], ...]

    @property
    def size(self) -> int:
        filed = {
            id(rule) for _, _, table in self.tables for group in table.values() for rule, _ in group
        }
        return len(self.always) + len(filed)


class RuleSet:
    """Compiled rules plus the loaded correlation rules (whose base rules are in ``rules``)."""

    def __init__(self, rules: Sequence[Rule], correlations: Sequence[Correlation] = ()) -> None:
        self.rules: tuple[Rule, ...] = tuple(rules)
        self.correlations: tuple[Correlation, ...] = tuple(correlations)
        self._by_id = {rule.id: rule for rule in self.rules}
        self._everywhere: tuple[Candidate, ...] = ()
        self._bound: tuple[Candidate, ...] = ()  # generic predicates, for odd dataset values
        self._partitions: dict[str, Partition] = {}
        self._build()

    def __len__(self) -> int:
        return len(self.rules)

    def __iter__(self) -> Iterator[Rule]:
        return iter(self.rules)

    def get(self, rule_id: str) -> Rule | None:
        return self._by_id.get(rule_id)

    @property
    def partitions(self) -> Mapping[str, Partition]:
        return self._partitions

    # --- matching -----------------------------------------------------------------------------

    def match(self, events: Sequence[Mapping[str, Any]]) -> list[Match]:
        """Every (rule, event) pair that matches, in event order."""
        out: list[Match] = []
        append = out.append
        partitions = self._partitions
        everywhere = self._everywhere
        for index, event in enumerate(events):
            dataset = event.get(DATASET)
            if type(dataset) is str:
                part = partitions.get(dataset)
                if part is None:
                    part = partitions.get(dataset.lower())
                if part is not None:
                    for rule, predicate in part.always:
                        if predicate(event):
                            append(Match(rule, index, event))
                    for field, by_basename, table in part.tables:
                        value = event.get(field)
                        if value is None:
                            continue
                        if type(value) is str:
                            key = value.lower()
                            if by_basename:
                                key = key.rpartition("/")[2]
                            group = table.get(key)
                        else:
                            group = _lookup(table, value, by_basename)
                        if group:
                            for rule, predicate in group:
                                if predicate(event):
                                    append(Match(rule, index, event))
            elif dataset is not None:
                for rule, predicate in self._bound:
                    if predicate(event):
                        append(Match(rule, index, event))
            for rule, predicate in everywhere:
                if predicate(event):
                    append(Match(rule, index, event))
        return out

    def match_event(self, event: Mapping[str, Any]) -> list[Rule]:
        return [found.rule for found in self.match((event,))]

    # --- index --------------------------------------------------------------------------------

    def _build(self) -> None:
        by_dataset: dict[str, list[tuple[Rule, Node]]] = {}
        everywhere: list[Candidate] = []
        bound_rules: list[Candidate] = []
        for rule in self.rules:
            assert rule.tree is not None and rule.predicate is not None
            datasets = bound(rule.tree, DATASET)
            if datasets is None:
                everywhere.append((rule, rule.predicate))
                continue
            bound_rules.append((rule, rule.predicate))
            for dataset in sorted(datasets):
                folded = fold(rule.tree, {DATASET: dataset})
                if folded != Const(False):
                    by_dataset.setdefault(dataset, []).append((rule, folded))
        self._everywhere = tuple(everywhere)
        self._bound = tuple(bound_rules)
        self._partitions = {
            dataset: _partition(dataset, members) for dataset, members in by_dataset.items()
        }

    def describe(self) -> dict[str, Any]:
        """How the rules are indexed (for benchmarks and debugging)."""
        return {
            "rules": len(self.rules),
            "correlations": len(self.correlations),
            "everywhere": len(self._everywhere),
            "partitions": {
                name: {
                    "rules": part.size,
                    "always": len(part.always),
                    "keys": {
                        (f"basename({field})" if base else field): len(table)
                        for field, base, table in part.tables
                    },
                }
                for name, part in sorted(self._partitions.items())
            },
        }


def _lookup(
    table: dict[str, tuple[Candidate, ...]], value: Any, by_basename: bool
) -> tuple[Candidate, ...]:
    found: dict[int, Candidate] = {}
    for item in value if type(value) is list else (value,):
        if type(item) is list:
            group = _lookup(table, item, by_basename)
        else:
            key = norm(item)
            if key is None:
                continue
            group = table.get(key.rpartition("/")[2] if by_basename else key, ())
        for candidate in group:
            found.setdefault(id(candidate[0]), candidate)
    return tuple(found.values())


KeySpec = tuple[str, bool]  # (field, by basename)


def _partition(dataset: str, members: list[tuple[Rule, Node]]) -> Partition:
    """Pick key fields greedily: each next one files the most of the rules still unfiled."""
    bounds: list[dict[KeySpec, frozenset[str]]] = []
    for _, tree in members:
        found: dict[KeySpec, frozenset[str]] = {}
        for field in fields(tree):
            if field == DATASET or getter(field) is not None:
                continue
            exact = bound(tree, field)
            if exact:
                found[(field, False)] = exact
            names = bound(tree, field, basenames)
            if names and "" not in names:
                found[(field, True)] = names
        bounds.append(found)
    remaining = list(range(len(members)))
    tables: list[tuple[KeySpec, dict[str, list[Candidate]]]] = []
    while remaining and len(tables) < MAX_KEY_FIELDS:
        coverage = Counter(spec for i in remaining for spec in bounds[i])
        if not coverage:
            break
        distinct: dict[KeySpec, set[str]] = {}
        for i in remaining:
            for spec, values in bounds[i].items():
                distinct.setdefault(spec, set()).update(values)
        # Rules filed, weighted by how finely the key splits them: a key every rule shares
        # (tetragon.type = process_exec) files much but selects little.
        best = max(
            coverage,
            key=lambda s: (coverage[s] * math.log2(1 + len(distinct[s])), not s[1], s[0]),
        )
        table: dict[str, list[Candidate]] = {}
        unfiled: list[int] = []
        for i in remaining:
            keys = bounds[i].get(best)
            if keys is None:
                unfiled.append(i)
                continue
            rule, tree = members[i]
            candidate = (rule, emit(tree))
            for value in keys:
                table.setdefault(value, []).append(candidate)
        tables.append((best, table))
        remaining = unfiled
    always = tuple((members[i][0], emit(members[i][1])) for i in remaining)
    return Partition(
        dataset,
        always,
        tuple(
            (field, by_basename, {key: tuple(group) for key, group in table.items()})
            for (field, by_basename), table in tables
        ),
    )
