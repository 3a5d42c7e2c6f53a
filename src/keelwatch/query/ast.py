"""The parsed form of a search query."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Comparison = Literal[">", ">=", "<", "<="]


@dataclass(frozen=True, slots=True)
class Match:
    """``field:value`` (exact) or free text when ``field`` is None."""

    field: str | None
    value: str
    wildcard: bool = False  # value holds unescaped * or ? (as "\x00*" markers, see parse)


@dataclass(frozen=True, slots=True)
class Exists:
    field: str


@dataclass(frozen=True, slots=True)
class Compare:
    field: str
    op: Comparison
    value: str


@dataclass(frozen=True, slots=True)
class Not:
    child: Node


@dataclass(frozen=True, slots=True)
class And:
    children: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Or:
    children: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class MatchAll:
    pass


Node = Match | Exists | Compare | Not | And | Or | MatchAll

WILDCARD_ANY = "\x00*"
WILDCARD_ONE = "\x00?"
