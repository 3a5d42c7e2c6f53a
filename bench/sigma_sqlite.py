"""pySigma's SQLite backend as a reference: the same rules, as SQL over the same flat events.

The backend converts each rule (through the same Keelwatch pipeline, so field names and the
log-source condition are identical) into ``SELECT * FROM logs WHERE ...``. Events become rows of
one untyped table with a column per field the rules read: strings as TEXT, integers and floats as
numbers, booleans as 'true'/'false' (as Zircolite stores them), lists and objects as JSON text.
Field paths of Keelwatch's own syntax (``a[].b``, ``a{}``) are resolved with Keelwatch's getter.
Unbound values (keywords) search a ``keelwatch_text`` column: ``message`` and
``event.original`` joined by a newline.
"""

from __future__ import annotations

import functools
import re
import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
from sigma.backends.sqlite import sqliteBackend
from sigma.collection import SigmaCollection
from sigma.exceptions import SigmaError
from sigma.rule import SigmaRule

from keelwatch.detect.compile import KEYWORD_FIELDS
from keelwatch.detect.matchers import getter
from keelwatch.detect.rules import rule_id
from keelwatch.detect.sigma_pipeline import build_pipeline, log_source_for

TEXT_COLUMN = "keelwatch_text"
TABLE = "logs"


def backend() -> sqliteBackend:
    return sqliteBackend(
        processing_pipeline=build_pipeline(), collate_nocase=True, fulltext_field=TEXT_COLUMN
    )


def convert_rules(paths: Iterable[str | Path]) -> tuple[dict[str, list[str]], dict[str, str]]:
    """SQL queries per rule id for every supported rule under ``paths``; errors per rule id."""
    collection = SigmaCollection.load_ruleset([str(p) for p in paths], collect_errors=True)
    return convert_collection(collection)


def convert_collection(
    collection: SigmaCollection,
) -> tuple[dict[str, list[str]], dict[str, str]]:
    queries: dict[str, list[str]] = {}
    errors: dict[str, str] = {}
    converter = backend()
    for rule in collection.rules:
        if not isinstance(rule, SigmaRule) or rule.errors:
            continue
        if log_source_for(rule.logsource) is None:
            continue
        try:
            queries[rule_id(rule)] = [str(q) for q in converter.convert_rule(rule)]
        except SigmaError as error:
            errors[rule_id(rule)] = str(error)
    return queries, errors


def cell(value: Any) -> Any:
    """How a flat event value is stored in its column."""
    if value is None:
        return None
    if type(value) is bool:
        return "true" if value else "false"
    if isinstance(value, int | float | str):
        return value
    if isinstance(value, datetime):
        return value.isoformat()
    return orjson.dumps(value, default=str).decode()


@functools.lru_cache(maxsize=512)
def _pattern(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


def _regexp(pattern: str, value: Any) -> int | None:
    if value is None or pattern is None:
        return None
    text = value if isinstance(value, str) else str(value)
    return 1 if _pattern(pattern).search(text) else 0


class EventTable:
    """An in-memory SQLite table of flat events, one untyped column per field."""

    def __init__(self, events: Sequence[Mapping[str, Any]], fields: Iterable[str]) -> None:
        self.connection = sqlite3.connect(":memory:")
        self.connection.create_function("regexp", 2, _regexp, deterministic=True)
        columns: dict[str, str] = {}  # lower-case name → field (SQLite names ignore case)
        self.shadowed: set[str] = set()  # fields whose column another field's name took
        for field in sorted(set(fields) - set(KEYWORD_FIELDS)):
            if field.lower() in columns or field.lower() == TEXT_COLUMN:
                self.shadowed.add(field)
            else:
                columns[field.lower()] = field
        self.fields = [*columns.values(), *KEYWORD_FIELDS]
        names = ", ".join(_quote(name) for name in [*self.fields, TEXT_COLUMN])
        self.connection.execute(f"CREATE TABLE {TABLE} ({names})")
        self.insert(events)

    def insert(self, events: Sequence[Mapping[str, Any]]) -> None:
        getters = [getter(field) for field in self.fields]
        rows = []
        for event in events:
            row = [
                cell(get(event) if get is not None else event.get(field))
                for field, get in zip(self.fields, getters, strict=True)
            ]
            texts = [event.get(name) for name in KEYWORD_FIELDS]
            row.append("\n".join(t for t in texts if isinstance(t, str)))
            rows.append(row)
        marks = ", ".join("?" for _ in range(len(self.fields) + 1))
        self.connection.executemany(f"INSERT INTO {TABLE} VALUES ({marks})", rows)

    def matching(self, queries: Sequence[str]) -> set[int]:
        """Indices (0-based, in insertion order) of the events any of ``queries`` selects."""
        found: set[int] = set()
        for query in queries:
            sql = query.replace("SELECT * FROM", "SELECT rowid FROM", 1)
            found.update(row[0] - 1 for row in self.connection.execute(sql))
        return found

    def close(self) -> None:
        self.connection.close()


def _quote(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"
