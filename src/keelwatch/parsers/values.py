"""Typed reads of untrusted JSON values, shared by the parsers."""

from __future__ import annotations

from typing import Any

_JSON_TYPES: dict[type, str] = {dict: "an object", list: "an array", str: "a string"}


def str_or_none(value: Any) -> str | None:
    """A non-empty string, else None."""
    return value if isinstance(value, str) and value else None


def int_or_none(value: Any) -> int | None:
    """An integer (not a boolean), else None."""
    return value if type(value) is int else None


def port_or_none(value: Any) -> int | None:
    """A TCP/UDP port number, else None."""
    return value if type(value) is int and 0 <= value <= 65535 else None


def json_type(value: Any) -> str:
    """How a value reads in JSON terms, for dead-letter reasons."""
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if value is None:
        return "null"
    return _JSON_TYPES.get(type(value), type(value).__name__)


def text_at(node: Any, *path: str) -> str | None:
    """A non-empty string at ``path`` through nested objects, else None."""
    for step in path:
        if not isinstance(node, dict):
            return None
        node = node.get(step)
    return node if isinstance(node, str) and node else None
