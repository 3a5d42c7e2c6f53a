"""Compile pySigma's parsed conditions into closures over flat events.

pySigma parses the rule (modifiers already applied to the values); the processing pipeline maps
its fields. This module walks ``rule.detection.parsed_condition`` into a small tree (``Node``),
simplifies it (OR-ed tests on one field merge into one test, ``|contains|all`` into one scan,
fields whose value is known fold to constants) and turns it into nested closures, once per rule.
``bound`` reads from the tree which values a field must have for the rule to match: the engine
indexes rules by them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sigma.conditions import (
    ConditionAND,
    ConditionFieldEqualsValueExpression,
    ConditionNOT,
    ConditionOR,
    ConditionValueExpression,
)
from sigma.rule import SigmaRule
from sigma.types import (
    Placeholder,
    SigmaBool,
    SigmaCasedString,
    SigmaCIDRExpression,
    SigmaCompareExpression,
    SigmaExists,
    SigmaExpansion,
    SigmaFieldReference,
    SigmaNull,
    SigmaNumber,
    SigmaRegularExpression,
    SigmaString,
    SigmaTimestampPart,
    SpecialChars,
)

from keelwatch.detect.matchers import (
    QUESTION,
    STAR,
    AllNeedles,
    CidrTest,
    CompareTest,
    PatternError,
    RegexTest,
    TextTest,
    TimestampPartTest,
    text,
    text_test,
)

Event = Mapping[str, Any]
Predicate = Callable[[Event], bool]

# Unbound values (Sigma "keywords") are searched in these fields, in this order.
KEYWORD_FIELDS = ("message", "event.original")


class CompileError(ValueError):
    """A detection Keelwatch cannot evaluate; the rule is reported and skipped."""


# --- the tree ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Match:
    """``field`` (any element of a list) passes ``test``; an absent field never does."""

    field: str
    test: Callable[[Any], bool]


@dataclass(frozen=True, slots=True)
class Null:
    field: str


@dataclass(frozen=True, slots=True)
class Exists:
    field: str


@dataclass(frozen=True, slots=True)
class FieldRef:
    field: str
    other: str
    starts: bool
    ends: bool


@dataclass(frozen=True, slots=True)
class Keyword:
    test: Callable[[Any], bool]


@dataclass(frozen=True, slots=True)
class And:
    children: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Or:
    children: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Not:
    child: Node


@dataclass(frozen=True, slots=True)
class Const:
    value: bool


Node = Match | Null | Exists | FieldRef | Keyword | And | Or | Not | Const


def rule_tree(rule: SigmaRule) -> Node:
    """The rule's conditions (OR-ed when there are several) as a simplified tree."""
    roots = []
    for condition in rule.detection.parsed_condition:
        parsed = condition.parsed
        if parsed is None:
            raise CompileError("the condition selects nothing")
        roots.append(_node(parsed))
    return simplify(roots[0] if len(roots) == 1 else Or(tuple(roots)))


def _node(cond: Any) -> Node:
    if isinstance(cond, ConditionAND):
        return And(tuple(_node(arg) for arg in cond.args))
    if isinstance(cond, ConditionOR):
        return Or(tuple(_node(arg) for arg in cond.args))
    if isinstance(cond, ConditionNOT):
        return Not(_node(cond.args[0]))
    if isinstance(cond, ConditionFieldEqualsValueExpression):
        return _field_node(cond.field, cond.value)
    if isinstance(cond, ConditionValueExpression):
        return _keyword_node(cond.value)
    raise CompileError(f"unsupported condition element {type(cond).__name__}")


def _field_node(field: str, value: Any) -> Node:
    if isinstance(value, SigmaExpansion):
        return Or(tuple(_field_node(field, item) for item in value.values))
    if isinstance(value, SigmaNull):
        return Null(field)
    if isinstance(value, SigmaExists):
        return Exists(field) if value.exists else Not(Exists(field))
    if isinstance(value, SigmaFieldReference):
        return FieldRef(field, value.field, value.starts_with, value.ends_with)
    return Match(field, _value_test(value))


def _value_test(value: Any) -> Callable[[Any], bool]:
    if isinstance(value, SigmaString):  # SigmaCasedString included
        return text_test(_parts(value), cased=isinstance(value, SigmaCasedString))
    if isinstance(value, SigmaTimestampPart):
        return TimestampPartTest(value.timestamp_part.name, value.number)
    if isinstance(value, SigmaBool):
        return _exact("true" if value.boolean else "false")
    if isinstance(value, SigmaNumber):
        return _exact(text(value.number) or "")
    if isinstance(value, SigmaRegularExpression):
        return _regex(value)
    if isinstance(value, SigmaCIDRExpression):
        return CidrTest([str(value.network)])
    if isinstance(value, SigmaCompareExpression):
        return CompareTest(value.op.name, value.number.number)
    raise CompileError(f"unsupported value type {type(value).__name__} ({value})")


def _exact(value: str) -> TextTest:
    test = TextTest()
    test.exact = frozenset([value.lower()])
    return test


def _regex(value: SigmaRegularExpression) -> RegexTest:
    if any(isinstance(part, Placeholder) for part in value.regexp.s):
        raise CompileError(f"unresolved placeholder in regular expression {value.regexp}")
    flags = "".join(sorted(value.sigma_to_re_flag[flag] for flag in value.flags))
    pattern = str(value.regexp)
    try:
        return RegexTest(f"(?{flags}){pattern}" if flags else pattern)
    except PatternError as error:
        raise CompileError(str(error)) from None


def _parts(value: SigmaString) -> list[Any]:
    parts: list[Any] = []
    for part in value.s:
        if isinstance(part, str):
            parts.append(part)
        elif part is SpecialChars.WILDCARD_MULTI:
            parts.append(STAR)
        elif part is SpecialChars.WILDCARD_SINGLE:
            parts.append(QUESTION)
        elif isinstance(part, Placeholder):
            raise CompileError(f"unresolved placeholder %{part.name}% (no value list defines it)")
        else:
            raise CompileError(f"unsupported string part {part!r}")
    return parts


def _keyword_node(value: Any) -> Node:
    if isinstance(value, SigmaExpansion):
        return Or(tuple(_keyword_node(item) for item in value.values))
    if isinstance(value, SigmaString):
        parts = _parts(value)
        if not parts or parts[0] is not STAR:
            parts.insert(0, STAR)
        if parts[-1] is not STAR:
            parts.append(STAR)
        return Keyword(text_test(parts, cased=isinstance(value, SigmaCasedString)))
    if isinstance(value, SigmaNumber):
        return Keyword(text_test([STAR, text(value.number), STAR], cased=False))
    if isinstance(value, SigmaRegularExpression):
        return Keyword(_regex(value))
    raise CompileError(f"unsupported keyword value {type(value).__name__} ({value})")


# --- simplification ---------------------------------------------------------------------------


def simplify(node: Node) -> Node:
    if isinstance(node, Not):
        child = simplify(node.child)
        if isinstance(child, Const):
            return Const(not child.value)
        if isinstance(child, Not):
            return child.child
        return Not(child)
    if isinstance(node, And | Or):
        kind = type(node)
        children: list[Node] = []
        for child in (simplify(c) for c in node.children):
            if isinstance(child, kind):
                children.extend(child.children)
            elif isinstance(child, Const):
                if child.value is (kind is Or):  # True in an OR, False in an AND
                    return child
            else:
                children.append(child)
        children = _merge_or(children) if kind is Or else _merge_and(children)
        if not children:
            return Const(kind is And)
        if len(children) == 1:
            return children[0]
        return kind(tuple(sorted(children, key=_cost)))
    return node


def _merge_or(children: list[Node]) -> list[Node]:
    """OR-ed tests of one kind on one field become one test (one lookup, one lower())."""
    merged: dict[tuple[str, str], int] = {}
    out: list[Node] = []
    for child in children:
        test = child.test if isinstance(child, Match) else None
        kind = (
            f"text-{test.cased}"
            if isinstance(test, TextTest)
            else "cidr"
            if isinstance(test, CidrTest)
            else None
        )
        if isinstance(child, Match) and kind is not None:
            key = (child.field, kind)
            if key in merged:
                index = merged[key]
                previous = out[index]
                assert isinstance(previous, Match)
                out[index] = Match(child.field, previous.test.merge(child.test))  # type: ignore[attr-defined]
                continue
            merged[key] = len(out)
        out.append(child)
    return out


def _merge_and(children: list[Node]) -> list[Node]:
    """AND-ed substrings of one field (``|contains|all``) become one scan of one string."""
    groups: dict[tuple[str, bool], list[str]] = {}
    order: list[Node | tuple[str, bool]] = []
    for child in children:
        test = child.test if isinstance(child, Match) else None
        if (
            isinstance(child, Match)
            and isinstance(test, TextTest)
            and len(test.needles) == 1
            and not (test.exact or test.prefixes or test.suffixes or test.globs)
        ):
            key = (child.field, test.cased)
            if key not in groups:
                groups[key] = []
                order.append(key)
            groups[key].append(test.needles[0])
        else:
            order.append(child)
    out: list[Node] = []
    for item in order:
        if not isinstance(item, tuple):
            out.append(item)
            continue
        field, cased = item
        needles = tuple(dict.fromkeys(groups[item]))
        if len(needles) == 1:
            single = TextTest(cased)
            single.needles = needles
            out.append(Match(field, single))
        else:
            out.append(Match(field, AllNeedles(needles, cased)))
    return out


def _cost(node: Node) -> int:
    """Cheap tests first, so an AND fails early."""
    if isinstance(node, Match):
        if isinstance(node.test, TextTest):
            return 1 if node.test.keys is not None else 3
        return 6 if isinstance(node.test, RegexTest) else 4
    if isinstance(node, Null | Exists):
        return 0
    if isinstance(node, Not):
        return _cost(node.child) + 1
    if isinstance(node, And | Or):
        return 2 + sum(_cost(child) for child in node.children)
    return 8


def fold(node: Node, known: Mapping[str, str]) -> Node:
    """Replace tests on fields whose (case-folded) value is known by their result."""
    return simplify(_fold(node, known))


def _fold(node: Node, known: Mapping[str, str]) -> Node:
    if isinstance(node, Match) and node.field in known:
        test = node.test
        if isinstance(test, TextTest) and not test.cased:
            return Const(test(known[node.field]))
        return node
    if isinstance(node, Null | Exists) and node.field in known:
        return Const(isinstance(node, Exists))
    if isinstance(node, And):
        return And(tuple(_fold(child, known) for child in node.children))
    if isinstance(node, Or):
        return Or(tuple(_fold(child, known) for child in node.children))
    if isinstance(node, Not):
        return Not(_fold(node.child, known))
    return node


def bound(
    node: Node, field: str, keys: Callable[[Any], frozenset[str] | None] | None = None
) -> frozenset[str] | None:
    """Keys ``field`` must yield (one of) for ``node`` to match; None if unbounded.

    ``keys`` reads a test's keys (default: its exact normalised values; ``basenames`` for the
    last path segment).
    """
    if isinstance(node, Match):
        if node.field == field and isinstance(node.test, TextTest):
            return node.test.keys if keys is None else keys(node.test)
        return None
    if isinstance(node, And):
        best: frozenset[str] | None = None
        for child in node.children:
            found = bound(child, field, keys)
            if found is not None and (best is None or len(found) < len(best)):
                best = found
        return best
    if isinstance(node, Or):
        union: set[str] = set()
        for child in node.children:
            found = bound(child, field, keys)
            if found is None:
                return None
            union |= found
        return frozenset(union)
    return None


def basenames(test: TextTest) -> frozenset[str] | None:
    """Last path segments a value must end in: exact paths and suffixes starting with '/'."""
    if test.prefixes or test.needles or test.globs or not (test.exact or test.suffixes):
        return None
    if any("/" not in suffix for suffix in test.suffixes):
        return None
    values = [*test.exact, *test.suffixes]
    return frozenset(value.rpartition("/")[2].lower() for value in values)


def prefixes(test: TextTest) -> frozenset[str] | None:
    """Beginnings a value must have: its exact values and prefixes (case-folded)."""
    if test.cased or test.suffixes or test.needles or test.globs:
        return None
    found = frozenset([*test.exact, *test.prefixes])
    return found if found and "" not in found else None


def branches(node: Node, limit: int = 8) -> list[Node] | None:
    """The node as an OR of alternatives, splitting the first OR inside a top-level AND."""
    if isinstance(node, Or):
        return list(node.children) if len(node.children) <= limit else None
    if not isinstance(node, And):
        return None
    for position, child in enumerate(node.children):
        if isinstance(child, Or) and len(child.children) <= limit:
            rest = node.children[:position] + node.children[position + 1 :]
            return [simplify(And((*rest, alternative))) for alternative in child.children]
    return None


def requires(node: Node, field: str) -> bool:
    """True when ``node`` can only match events in which ``field`` has a value."""
    if isinstance(node, Match | Exists):
        return node.field == field
    if isinstance(node, FieldRef):
        return field in (node.field, node.other)
    if isinstance(node, And):
        return any(requires(child, field) for child in node.children)
    if isinstance(node, Or):
        return all(requires(child, field) for child in node.children)
    return False


def fields(node: Node) -> set[str]:
    """Every field the tree reads."""
    if isinstance(node, Match | Null | Exists):
        return {node.field}
    if isinstance(node, FieldRef):
        return {node.field, node.other}
    if isinstance(node, Keyword):
        return set(KEYWORD_FIELDS)
    if isinstance(node, And | Or):
        return set().union(*(fields(child) for child in node.children))
    if isinstance(node, Not):
        return fields(node.child)
    return set()
