"""Turn a compiled rule tree (detect/compile.py) into nested closures over flat events, once
per rule: each node becomes a small function, with the field lookups bound in advance."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from keelwatch.detect.compile import (
    KEYWORD_FIELDS,
    And,
    Event,
    Exists,
    FieldRef,
    Keyword,
    Match,
    Node,
    Not,
    Null,
    Or,
    Predicate,
)
from keelwatch.detect.matchers import AllNeedles, TextTest, any_value, getter, norm


def emit(node: Node) -> Predicate:
    """The tree as one predicate over a flat event."""
    if isinstance(node, Match):
        return _emit_match(node)
    if isinstance(node, Null):
        get = _get(node.field)
        return lambda event: get(event) is None
    if isinstance(node, Exists):
        get = _get(node.field)
        return lambda event: get(event) is not None
    if isinstance(node, FieldRef):
        return _emit_fieldref(node)
    if isinstance(node, Keyword):
        return _emit_keyword(node.test)
    if isinstance(node, Not):
        inner = emit(node.child)
        return lambda event: not inner(event)
    if isinstance(node, And):
        return _emit_all([emit(child) for child in node.children])
    if isinstance(node, Or):
        return _emit_any([emit(child) for child in node.children])
    value = node.value
    return lambda event: value


def _get(field: str) -> Callable[[Event], Any]:
    special = getter(field)
    if special is not None:
        return special
    return lambda event: event.get(field)


def _emit_match(node: Match) -> Predicate:
    field, test = node.field, node.test
    if isinstance(test, AllNeedles):
        return _emit_all_needles(_get(field), test)
    special = getter(field)
    if special is not None:

        def special_leaf(event: Event) -> bool:
            value = special(event)
            return value is not None and any_value(value, test)

        return special_leaf
    if isinstance(test, TextTest):
        on_text = test.on_text()

        def text_leaf(event: Event) -> bool:
            value = event.get(field)
            if type(value) is str:
                return on_text(value)
            return value is not None and any_value(value, test)

        return text_leaf

    def leaf(event: Event) -> bool:
        value = event.get(field)
        if value is None:
            return False
        if type(value) is list:
            return any_value(value, test)
        return test(value)

    return leaf


def _emit_all_needles(get: Callable[[Event], Any], test: AllNeedles) -> Predicate:
    """One lower() and a scan for a string; for a list, each needle in any element."""
    singles = [AllNeedles((needle,), test.cased) for needle in test.needles]

    def all_needles(event: Event) -> bool:
        value = get(event)
        if type(value) is str:
            return test(value)
        if value is None:
            return False
        return all(any_value(value, single) for single in singles)

    return all_needles


def _emit_keyword(test: Callable[[Any], bool]) -> Predicate:
    def keyword(event: Event) -> bool:
        for name in KEYWORD_FIELDS:
            value = event.get(name)
            if value is not None and any_value(value, test):
                return True
        return False

    return keyword


def _emit_fieldref(node: FieldRef) -> Predicate:
    left, right = _get(node.field), _get(node.other)
    starts, ends = node.starts, node.ends

    def compare(a: str, b: str) -> bool:
        if starts and ends:
            return b in a
        if starts:
            return a.startswith(b)
        if ends:
            return a.endswith(b)
        return a == b

    def fieldref(event: Event) -> bool:
        a, b = left(event), right(event)
        if a is None or b is None:
            return False
        a_texts = [t for t in map(norm, _scalars(a)) if t is not None]
        b_texts = [t for t in map(norm, _scalars(b)) if t is not None]
        return any(compare(x, y) for x in a_texts for y in b_texts)

    return fieldref


def _scalars(value: Any) -> Iterable[Any]:
    if type(value) is list:
        for item in value:
            yield from _scalars(item)
    elif value is not None:
        yield value


def _emit_all(parts: list[Predicate]) -> Predicate:
    if len(parts) == 2:
        a, b = parts
        return lambda event: a(event) and b(event)
    if len(parts) == 3:
        a, b, c = parts
        return lambda event: a(event) and b(event) and c(event)

    def every(event: Event) -> bool:
        for part in parts:  # noqa: SIM110 - a plain loop is cheaper than all() on a generator
            if not part(event):
                return False
        return True

    return every


def _emit_any(parts: list[Predicate]) -> Predicate:
    if len(parts) == 2:
        a, b = parts
        return lambda event: a(event) or b(event)
    if len(parts) == 3:
        a, b, c = parts
        return lambda event: a(event) or b(event) or c(event)

    def some(event: Event) -> bool:
        for part in parts:  # noqa: SIM110 - as in every()
            if part(event):
                return True
        return False

    return some
