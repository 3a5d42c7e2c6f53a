"""Shared helpers for the parser unit tests: run a parser, read dead-letter reasons, and make
hostile values (any JSON shape; a record with one value replaced)."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from hypothesis import strategies as st

from keelwatch.model.fields import RecordLimits
from keelwatch.parsers.base import Batch, ParseContext, Parser
from keelwatch.pipeline.normalize import parse_one

RECEIVED_AT = datetime(2026, 1, 1, tzinfo=UTC)


def parse_records(
    parser: Parser, *records: Any, limits: RecordLimits | None = None, source: str | None = None
) -> Batch:
    """Parse each record as normalize does (failures become dead letters), into one batch."""
    batch = Batch()
    ctx = ParseContext(source or parser.name, RECEIVED_AT, batch, limits or RecordLimits())
    for record in records:
        parse_one(parser, record, ctx)
    return batch


def reasons(batch: Batch) -> list[str]:
    return [letter.reason for letter in batch.dead_letters]


def json_values(
    *, text_size: int = 8, key_size: int = 6, max_leaves: int = 10, allow_infinity: bool = True
) -> st.SearchStrategy[Any]:
    """Any value a JSON decoder can produce (integers within 64 bits, as orjson reads them)."""
    return st.recursive(
        st.none()
        | st.booleans()
        | st.integers(-(2**63), 2**63 - 1)
        | st.floats(allow_nan=False, allow_infinity=allow_infinity)
        | st.text(max_size=text_size),
        lambda inner: (
            st.lists(inner, max_size=3)
            | st.dictionaries(st.text(max_size=key_size), inner, max_size=3)
        ),
        max_leaves=max_leaves,
    )


def paths(value: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    items = value.items() if isinstance(value, dict) else enumerate(value)
    for key, item in items:
        yield (*prefix, key)
        if isinstance(item, dict | list):
            yield from paths(item, (*prefix, key))


def replaced(record: Any, path: tuple[Any, ...], value: Any) -> Any:
    copied = copy.deepcopy(record)
    node = copied
    for step in path[:-1]:
        node = node[step]
    node[path[-1]] = value
    return copied
