"""The rule set: compiled rules indexed by log source and key values, matched in micro-batches.

Index, decided once at load:

1. ``event.dataset``: the values each rule's log-source condition allows (``bound``). The rule
   is compiled again for each of them with that test folded away, into that dataset's
   partition. Rules with no dataset bound are checked against every event.
2. Inside a partition, a decision tree over key fields (``keelwatch.detect.index``): e.g.
   ``kubernetes.audit.objectRef.resource``, then ``kubernetes.audit.verb`` below ``pods``. An
   event meets only the rules filed under its own values, plus the few no key bounds.

A bound is a necessary condition, never a sufficient one: every candidate still runs its whole
predicate (minus the tests its path decided), so the index changes speed, not results.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from keelwatch.detect.compile import Const, Node, Predicate, bound, fold
from keelwatch.detect.emit import emit
from keelwatch.detect.index import IndexNode, Member, build, visit
from keelwatch.detect.rules import Correlation, Rule

DATASET = "event.dataset"


@dataclass(frozen=True, slots=True)
class Match:
    """Rule ``rule`` matched ``event``, the ``index``-th event of the batch."""

    rule: Rule
    index: int
    event: Mapping[str, Any]


class RuleSet:
    """Compiled rules plus the loaded correlation rules (whose base rules are in ``rules``)."""

    def __init__(self, rules: Sequence[Rule], correlations: Sequence[Correlation] = ()) -> None:
        self.rules: tuple[Rule, ...] = tuple(rules)
        self.correlations: tuple[Correlation, ...] = tuple(correlations)
        self._by_id = {rule.id: rule for rule in self.rules}
        everywhere: list[tuple[Rule, Predicate]] = []
        bound_rules: list[tuple[Rule, Predicate]] = []
        by_dataset: dict[str, list[Member]] = {}
        for rule in self.rules:
            assert rule.tree is not None and rule.predicate is not None
            datasets = bound(rule.tree, DATASET)
            if datasets is None:
                everywhere.append((rule, rule.predicate))
                continue
            bound_rules.append((rule, rule.predicate))
            for dataset in sorted(datasets):
                tree: Node = fold(rule.tree, {DATASET: dataset})
                if tree != Const(False):
                    by_dataset.setdefault(dataset, []).append((rule, tree, emit(tree)))
        self._everywhere = tuple(everywhere)
        self._bound = tuple(bound_rules)  # unfolded, for an event whose dataset is not a string
        self._partitions = {dataset: build(members) for dataset, members in by_dataset.items()}

    def __len__(self) -> int:
        return len(self.rules)

    def __iter__(self) -> Iterator[Rule]:
        return iter(self.rules)

    def get(self, rule_id: str) -> Rule | None:
        return self._by_id.get(rule_id)

    @property
    def partitions(self) -> Mapping[str, IndexNode]:
        return self._partitions

    def match(self, events: Sequence[Mapping[str, Any]]) -> list[Match]:
        """Every (rule, event) pair that matches, in event order."""
        out: list[Match] = []
        partitions = self._partitions
        everywhere = self._everywhere
        found: list[Rule] = []
        for index, event in enumerate(events):
            dataset = event.get(DATASET)
            if type(dataset) is str:
                part = partitions.get(dataset)
                if part is None:
                    part = partitions.get(dataset.lower())
                if part is not None:
                    visit(part, event, found)
            elif dataset is not None:
                found.extend(rule for rule, predicate in self._bound if predicate(event))
            for rule, predicate in everywhere:
                if predicate(event):
                    found.append(rule)
            if found:
                if len(found) > 1:  # a rule filed under several alternatives: report it once
                    found = list({id(rule): rule for rule in found}.values())
                out.extend(Match(rule, index, event) for rule in found)
                found = []
        return out

    def match_event(self, event: Mapping[str, Any]) -> list[Rule]:
        return [found.rule for found in self.match((event,))]

    def describe(self) -> dict[str, Any]:
        """How the rules are indexed (for benchmarks and debugging)."""
        return {
            "rules": len(self.rules),
            "correlations": len(self.correlations),
            "everywhere": len(self._everywhere),
            "partitions": {
                name: part.describe() for name, part in sorted(self._partitions.items())
            },
        }
