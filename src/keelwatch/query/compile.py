"""Compile a query AST to a parameterized SQL condition. Values are never put in the SQL text.

Identifiers in the SQL text come only from the fixed column map; a field without a column is
read from the ``doc`` JSON column with its JSON path passed as a parameter. A store may pass a
``locate`` function that narrows an exact ``event.id`` match to ``seq`` ranges (store/id_filter.py)
and a ``locate_text`` function that does the same for free text (store/token_filter.py).

Free text without wildcards matches whole tokens of ``original`` (docs/adr/0004): ``pod`` finds
``pod-0042`` but not ``pods``; a term of several tokens (``pod-0042``, ``"GET /api"``) must occur
as written, starting and ending on token boundaries. ``*pod*``, ``pod*`` and ``*pod`` keep the
substring and prefix semantics of ILIKE and read every row.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from keelwatch.errors import QueryError
from keelwatch.query.ast import (
    WILDCARD_ANY,
    WILDCARD_ONE,
    And,
    Compare,
    Exists,
    Match,
    MatchAll,
    Node,
    Not,
    Or,
)
from keelwatch.query.parse import FIELD_NAME, parse
from keelwatch.query.timerange import read_timestamp
from keelwatch.store.columns import EVENT_COLUMNS, Column
from keelwatch.store.token_filter import token_pattern

TEXT_FIELDS = frozenset({"message"})  # matched as case-insensitive substrings, like analysed text
ID_FIELD = "event.id"

# ``[start, end)`` ranges of ``seq`` that may hold an event id, or None when the store cannot say
Locate = Callable[[str], list[tuple[int, int]] | None]


@dataclass(slots=True)
class Condition:
    sql: str
    params: list[Any] = field(default_factory=list)


def like_pattern(value: str, *, contains: bool = False) -> str:
    """A LIKE pattern (escape ``\\``) for a value whose wildcards are marked by the parser."""
    escaped = value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    escaped = escaped.replace(WILDCARD_ANY, "%").replace(WILDCARD_ONE, "_")
    return f"%{escaped}%" if contains else escaped


def _literal(value: str) -> str:
    """A value with wildcard markers turned back into plain characters."""
    return value.replace(WILDCARD_ANY, "*").replace(WILDCARD_ONE, "?")


def _number(value: str) -> float | int | None:
    try:
        integer = int(value)
    except ValueError:
        pass
    else:
        if -(2**63) <= integer < 2**63:  # DuckDB refuses wider Python ints as parameters
            return integer
    try:
        number = float(value)
    except ValueError:
        return None
    return number if number == number and abs(number) != float("inf") else None


def _moment(value: str) -> datetime | None:
    """A timestamp as the naive UTC value the TIMESTAMP columns hold."""
    moment = read_timestamp(value)
    return None if moment is None else moment.astimezone(UTC).replace(tzinfo=None)


class QueryCompiler:
    """Compiles queries against one table: its columns, a ``doc`` JSON and an ``original`` text."""

    def __init__(
        self,
        columns: tuple[Column, ...] = EVENT_COLUMNS,
        locate: Locate | None = None,
        locate_text: Locate | None = None,
    ) -> None:
        self.columns = {column.field: column for column in columns}
        self.locate = locate
        self.locate_text = locate_text

    def compile(self, query: str | Node) -> Condition:
        node = parse(query) if isinstance(query, str) else query
        return self._node(node)

    def _node(self, node: Node) -> Condition:
        if isinstance(node, MatchAll):
            return Condition("TRUE")
        if isinstance(node, And | Or):
            parts = [self._node(child) for child in node.children]
            joiner = " AND " if isinstance(node, And) else " OR "
            return Condition(
                "(" + joiner.join(p.sql for p in parts) + ")",
                [param for p in parts for param in p.params],
            )
        if isinstance(node, Not):
            inner = self._node(node.child)
            return Condition(f"(NOT COALESCE({inner.sql}, FALSE))", inner.params)
        if isinstance(node, Exists):
            return self._exists(node.field)
        if isinstance(node, Compare):
            return self._compare(node)
        return self._match(node)

    def _check(self, name: str) -> None:
        if not FIELD_NAME.fullmatch(name):
            raise QueryError(f"{name!r} is not a field name")

    @staticmethod
    def _path(name: str) -> str:
        return f'$."{name}"'

    def _exists(self, name: str) -> Condition:
        self._check(name)
        column = self.columns.get(name)
        if column is not None:
            return Condition(f"({column.name} IS NOT NULL)")
        return Condition("json_exists(doc, ?)", [self._path(name)])

    def _match(self, node: Match) -> Condition:
        if node.field is None:
            return self._free_text(node)
        name = node.field
        self._check(name)
        column = self.columns.get(name)
        if name in TEXT_FIELDS:
            target = column.name if column else "json_extract_string(doc, ?)"
            params: list[Any] = [] if column else [self._path(name)]
            return Condition(
                f"({target} ILIKE ? ESCAPE '\\')",
                [*params, like_pattern(node.value, contains=True)],
            )
        if column is not None:
            return self._match_column(column, node)
        path = self._path(name)
        if node.wildcard:
            pattern = like_pattern(node.value)
            return Condition(
                "(json_extract_string(doc, ?) LIKE ? ESCAPE '\\' OR len(list_filter("
                "json_extract_string(doc, ?), lambda v: v LIKE ? ESCAPE '\\')) > 0)",
                [path, pattern, path + "[*]", pattern],
            )
        return Condition(
            "(json_extract_string(doc, ?) = ? OR list_contains(json_extract_string(doc, ?), ?))",
            [path, node.value, path + "[*]", node.value],
        )

    def _free_text(self, node: Match) -> Condition:
        substring = like_pattern(node.value, contains=True)
        pattern = None if node.wildcard else token_pattern(node.value)
        if pattern is None:  # wildcards, or no letter or digit to index
            return Condition("(original ILIKE ? ESCAPE '\\')", [substring])
        # ILIKE is a cheaper superset that spares most rows the regex
        check = "original ILIKE ? ESCAPE '\\' AND regexp_matches(original, ?)"
        ranges = None if self.locate_text is None else self.locate_text(node.value)
        return _within(check, [substring, pattern], ranges)

    def _match_column(self, column: Column, node: Match) -> Condition:
        if node.wildcard:
            return Condition(
                f"(CAST({column.name} AS VARCHAR) LIKE ? ESCAPE '\\')", [like_pattern(node.value)]
            )
        if column.numeric:
            number = _number(node.value)
            if number is None:
                return Condition("FALSE")
            return Condition(f"({column.name} = ?)", [number])
        if column.temporal:
            moment = _moment(node.value)
            if moment is None:
                raise QueryError(f"{column.field}: {node.value!r} is not a timestamp")
            return Condition(f"({column.name} = ?)", [moment])
        if column.field == ID_FIELD and self.locate is not None:
            return self._match_id(column, node.value, self.locate)
        return Condition(f"({column.name} = ?)", [node.value])

    @staticmethod
    def _match_id(column: Column, value: str, locate: Locate) -> Condition:
        return _within(f"{column.name} = ?", [value], locate(value))

    def _compare(self, node: Compare) -> Condition:
        self._check(node.field)
        value = _literal(node.value)
        column = self.columns.get(node.field)
        number = _number(value)
        moment = _moment(value) if number is None else None
        if column is not None:
            if column.numeric:
                if number is None:
                    raise QueryError(f"{node.field} is numeric; {value!r} is not a number")
                return Condition(f"({column.name} {node.op} ?)", [number])
            if column.temporal:
                moment = _moment(value)
                if moment is None:
                    raise QueryError(f"{node.field}: {value!r} is not a timestamp")
                return Condition(f"({column.name} {node.op} ?)", [moment])
            return Condition(f"({column.name} {node.op} ?)", [value])
        path = self._path(node.field)
        if number is not None:
            return Condition(
                f"(TRY_CAST(json_extract_string(doc, ?) AS DOUBLE) {node.op} ?)", [path, number]
            )
        if moment is not None:
            return Condition(
                f"(TRY_CAST(json_extract_string(doc, ?) AS TIMESTAMP) {node.op} ?)",
                [path, moment],
            )
        return Condition(f"(json_extract_string(doc, ?) {node.op} ?)", [path, value])


def _within(sql: str, params: list[Any], ranges: list[tuple[int, int]] | None) -> Condition:
    """``sql`` limited to ``seq`` ranges a locate function gave (None: it could not say)."""
    if ranges is None:
        return Condition(f"({sql})", params)
    if not ranges:
        return Condition("FALSE")
    within = " OR ".join("(seq >= ? AND seq < ?)" for _ in ranges)
    return Condition(
        f"({sql} AND ({within}))", [*params, *(bound for pair in ranges for bound in pair)]
    )
