"""Helpers for the wrong-typed-value tests: every path in a record, and a copy with one replaced."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any


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
