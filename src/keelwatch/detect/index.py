"""A decision tree over key values: which rules an event can possibly match.

A node files rules under the values of a few key fields and keeps the rest (``always``). A key
is an exact value (case-folded), the last path segment of a value (``Image|endswith: '/curl'``
→ ``curl``), the first characters of a value (``startswith``), or the mere presence of a
field. A rule with no key of its own but an OR of keyed alternatives (``code: 403`` or
``decision: forbid``) is filed once per alternative; the engine reports it once.

Each group of rules under one key is indexed again by other keys, up to ``MAX_DEPTH`` levels,
and each rule is compiled again for its path with the tests the path already decided folded
away (``verb == "create"`` is true below ``create``).

Folding assumes one value per field. When an event's key field holds a list, the rules below
it run their unfolded predicates and each runs once (``seen``).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from keelwatch.detect.compile import (
    Node,
    Predicate,
    basenames,
    bound,
    branches,
    fields,
    fold,
    prefixes,
    requires,
)
from keelwatch.detect.emit import emit
from keelwatch.detect.matchers import getter, norm
from keelwatch.detect.rules import Rule

EXACT, BASENAME, PREFIX, PRESENT = 0, 1, 2, 3
KIND_NAMES = ("", "basename", "prefix", "present")
MAX_PREFIX_CHARS = 24
MAX_DEPTH = 3
MAX_KEYS_PER_NODE = 8
MIN_SPLIT = 3  # fewer rules than this are simply all checked

# (rule, predicate folded along the path, predicate folded by dataset only)
Candidate = tuple[Rule, Predicate, Predicate]
KeySpec = tuple[str, int]
Member = tuple[Rule, Node, Predicate]  # (rule, tree folded along the path, generic predicate)


Probe = Callable[[Mapping[str, Any], list[Rule], "set[int] | None"], None]


@dataclass(frozen=True, slots=True)
class IndexNode:
    always: tuple[Candidate, ...]
    # (field, kind, prefix length, key → node)
    tables: tuple[tuple[str, int, int, dict[str, IndexNode]], ...]
    # one closure per table, specialised to its kind (the hot loop calls these)
    probes: tuple[Probe, ...] = ()

    @classmethod
    def of(
        cls,
        always: tuple[Candidate, ...],
        tables: tuple[tuple[str, int, int, dict[str, IndexNode]], ...] = (),
    ) -> IndexNode:
        return cls(always, tables, tuple(_probe(*table) for table in tables))

    def rules(self) -> set[int]:
        found = {id(rule) for rule, _, _ in self.always}
        for _, _, _, table in self.tables:
            for child in table.values():
                found |= child.rules()
        return found

    def describe(self) -> dict[str, Any]:
        return {
            "rules": len(self.rules()),
            "always": len(self.always),
            "keys": {
                (f"{KIND_NAMES[kind]}({field})" if kind else field): len(table)
                for field, kind, _, table in self.tables
            },
        }


def build(
    members: list[Member], used: frozenset[KeySpec] = frozenset(), depth: int = 0
) -> IndexNode:
    if depth >= MAX_DEPTH or len(members) < MIN_SPLIT:
        return _leaf(members)
    members = _split(members, used)
    bounds = [_bounds(tree, used) for _, tree, _ in members]
    remaining = list(range(len(members)))
    tables: list[tuple[str, int, int, dict[str, IndexNode]]] = []
    while remaining and len(tables) < MAX_KEYS_PER_NODE:
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
            key=lambda s: (coverage[s] * math.log2(1 + len(distinct[s])), -s[1], s[0]),
        )
        field, kind = best
        length = 0
        if kind == PREFIX:  # the shortest beginning any filed rule needs
            length = min(
                MAX_PREFIX_CHARS, *(len(k) for i in remaining for k in bounds[i].get(best, ()))
            )
        groups: dict[str, list[Member]] = {}
        unfiled: list[int] = []
        for i in remaining:
            keys = bounds[i].get(best)
            if keys is None:
                unfiled.append(i)
                continue
            rule, tree, generic = members[i]
            for key in dict.fromkeys(k[:length] if length else k for k in keys):
                folded = fold(tree, {field: key}) if kind == EXACT else tree
                groups.setdefault(key, []).append((rule, folded, generic))
        table = {key: build(group, used | {best}, depth + 1) for key, group in groups.items()}
        tables.append((field, kind, length, table))
        remaining = unfiled
    leaf = _leaf([members[i] for i in remaining])
    return IndexNode.of(leaf.always, tuple(tables))


def _split(members: list[Member], used: frozenset[KeySpec]) -> list[Member]:
    """Replace a rule no key bounds by its OR-ed alternatives, when each has a key."""
    out: list[Member] = []
    for rule, tree, generic in members:
        alternatives = None if _bounds(tree, used) else branches(tree)
        if alternatives and all(_bounds(alt, used) for alt in alternatives):
            out.extend((rule, alt, generic) for alt in alternatives)
        else:
            out.append((rule, tree, generic))
    return out


def _leaf(members: list[Member]) -> IndexNode:
    return IndexNode.of(tuple((rule, emit(tree), generic) for rule, tree, generic in members))


def _bounds(tree: Node, used: frozenset[KeySpec]) -> dict[KeySpec, frozenset[str]]:
    found: dict[KeySpec, frozenset[str]] = {}
    for field in fields(tree):
        if getter(field) is not None:
            continue
        exact = bound(tree, field)
        if exact and (field, EXACT) not in used:
            found[(field, EXACT)] = exact
        names = _bound_keys(tree, field, basenames)
        if names and "" not in names and (field, BASENAME) not in used:
            found[(field, BASENAME)] = names
        starts = None if exact else _bound_keys(tree, field, prefixes)
        if starts and (field, PREFIX) not in used:
            found[(field, PREFIX)] = starts
        if not exact and (field, PRESENT) not in used and requires(tree, field):
            found[(field, PRESENT)] = frozenset([""])
    return found


def _bound_keys(tree: Node, field: str, keys: Any) -> frozenset[str] | None:
    return bound(tree, field, keys)


def visit(
    node: IndexNode,
    event: Mapping[str, Any],
    found: list[Rule],
    seen: set[int] | None = None,
) -> None:
    """Append to ``found`` every rule of ``node`` that matches ``event``."""
    if seen is None:
        for rule, predicate, _ in node.always:
            if predicate(event):
                found.append(rule)
    else:
        for rule, _, generic in node.always:
            if id(rule) not in seen:
                seen.add(id(rule))
                if generic(event):
                    found.append(rule)
    for probe in node.probes:
        probe(event, found, seen)


def _probe(field: str, kind: int, length: int, table: dict[str, IndexNode]) -> Probe:
    """The lookup of one table: the event's key for ``field``, then the rules under it."""
    get = table.get
    if kind == PRESENT:
        child = table[""]

        def present(event: Mapping[str, Any], found: list[Rule], seen: set[int] | None) -> None:
            if event.get(field) is not None:
                visit(child, event, found, seen)

        return present

    def other(
        value: Any, event: Mapping[str, Any], found: list[Rule], seen: set[int] | None
    ) -> None:
        if type(value) is not list:  # a number or boolean
            text = norm(value)
            child = get(text[:length] if length else text) if text is not None else None
            if child is not None:
                visit(child, event, found, seen)
            return
        children = []
        for item in value:
            if type(item) is str:  # the common case: a list of strings
                key = item.lower()
                if kind == BASENAME:
                    key = key.rpartition("/")[2]
                elif length:
                    key = key[:length]
                child = get(key)
                if child is not None:
                    children.append(child)
            elif item is not None:
                children.extend(c for c in map(get, _keys(item, kind == BASENAME, length)) if c)
        if children:  # several keys may lead to one rule: it runs once, unfolded
            shared = seen if seen is not None else set()
            for child in children:
                visit(child, event, found, shared)

    if kind == EXACT:

        def exact(event: Mapping[str, Any], found: list[Rule], seen: set[int] | None) -> None:
            value = event.get(field)
            if type(value) is str:
                child = get(value.lower())
                if child is not None:
                    if seen is None and not child.probes:  # a leaf: run its rules here
                        for rule, predicate, _ in child.always:
                            if predicate(event):
                                found.append(rule)
                    else:
                        visit(child, event, found, seen)
            elif type(value) is int:  # status codes, ports: the key is the digits
                child = get(str(value))
                if child is not None:
                    visit(child, event, found, seen)
            elif value is not None:
                other(value, event, found, seen)

        return exact

    def keyed(event: Mapping[str, Any], found: list[Rule], seen: set[int] | None) -> None:
        value = event.get(field)
        if type(value) is str:
            key = value.lower()
            child = get(key.rpartition("/")[2] if kind == BASENAME else key[:length])
            if child is not None:
                visit(child, event, found, seen)
        elif value is not None:
            other(value, event, found, seen)

    return keyed


def _keys(value: Any, by_basename: bool, length: int) -> list[str]:
    keys: list[str] = []
    for item in value if type(value) is list else (value,):
        if type(item) is list:
            keys.extend(_keys(item, by_basename, length))
            continue
        key = norm(item)
        if key is not None:
            keys.append(key.rpartition("/")[2] if by_basename else key[:length] if length else key)
    return list(dict.fromkeys(keys))
