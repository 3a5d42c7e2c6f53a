"""Value tests for Sigma detection items, and field access on flat events.

Semantics (docs/detection.md has the full table):

* Strings match case-insensitively (``str.lower`` on both sides) unless the rule says ``|cased``;
  ``*`` and ``?`` are wildcards. Scalars that are not strings are compared by their text:
  integers as digits, integral floats as integers, booleans as ``true``/``false``.
* A field whose value is a list matches when any element matches.
* Regular expressions run on google-re2 (linear time), unanchored (a search), on the value's text.
* ``cidr`` parses the value as an IP address; ``lt``/``lte``/``gt``/``gte`` compare numbers
  (numeric strings included).

Each test is a callable on one scalar value (never None, never a list); ``keys`` of an exact
test are the normalised texts it accepts, which the engine indexes rules by.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Any

import orjson
import re2  # type: ignore[import-untyped]

from keelwatch.model.fields import parse_timestamp

Event = Mapping[str, Any]
Getter = Callable[[Event], Any]

MAX_REGEX_MEMORY_BYTES = 8 << 20


class PatternError(ValueError):
    """A regular expression the linear-time engine cannot compile."""


def compile_regex(pattern: str) -> Any:
    """Compile with re2; a pattern it rejects (look-around, back-references) is an error."""
    options = re2.Options()
    options.log_errors = False
    options.max_mem = MAX_REGEX_MEMORY_BYTES
    try:
        return re2.compile(pattern, options)
    except re2.error as error:
        detail = error.args[0] if error.args else error
        if isinstance(detail, bytes):
            detail = detail.decode("utf-8", "replace")
        raise PatternError(f"regular expression '{pattern}' cannot run in re2: {detail}") from None


# --- values -----------------------------------------------------------------------------------


def text(value: Any) -> str | None:
    """The text a scalar is compared by; None for objects and lists (never matched as text)."""
    kind = type(value)
    if kind is str:
        return str(value)
    if kind is bool:
        return "true" if value else "false"
    if kind is int:
        return str(value)
    if kind is float:
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, datetime):
        return value.isoformat()
    return None


def norm(value: Any) -> str | None:
    """Case-folded text: the key exact matches and the rule index compare."""
    if type(value) is str:
        return str(value).lower()
    rendered = text(value)
    return None if rendered is None else rendered.lower()


def number(value: Any) -> int | float | None:
    """A number for comparisons: ints and floats, and strings that spell one."""
    kind = type(value)
    if kind is int or kind is float:
        return value  # type: ignore[no-any-return]
    if kind is str:
        try:
            return int(value)
        except ValueError:
            try:
                parsed = float(value)
            except ValueError:
                return None
            return parsed if parsed == parsed and abs(parsed) != float("inf") else None
    return None


def any_value(value: Any, test: Callable[[Any], bool]) -> bool:
    """Apply ``test`` to a scalar, or to each element of a list (nested lists included)."""
    if type(value) is list:
        for item in value:  # a loop: cheaper than any() on a generator
            if type(item) is list:
                if any_value(item, test):
                    return True
            elif item is not None and test(item):
                return True
        return False
    return test(value)


# --- fields -----------------------------------------------------------------------------------


def getter(field: str) -> Getter | None:
    """A resolver for the special path forms; None for a plain flat key (use ``event.get``)."""
    if field.endswith("{}"):
        return _object_getter(field[:-2])
    if "[]" in field:
        head, _, rest = field.partition("[]")
        steps = [step for step in rest.split(".") if step]
        return _list_getter(head, steps)
    return None


def _object_getter(prefix: str) -> Getter:
    """The object flattened under ``prefix.``, rebuilt and rendered as compact JSON text."""
    dotted = prefix + "."
    cut = len(dotted)

    def get(event: Event) -> Any:
        value = event.get(prefix)
        if value is not None:
            return value
        tree: dict[str, Any] = {}
        for key, item in event.items():
            if key.startswith(dotted):
                node = tree
                *parents, leaf = key[cut:].split(".")
                for part in parents:
                    child = node.get(part)
                    if not isinstance(child, dict):
                        child = node[part] = {}
                    node = child
                node[leaf] = item
        return orjson.dumps(tree, default=str).decode() if tree else None

    return get


def _list_getter(head: str, steps: list[str]) -> Getter:
    def get(event: Event) -> Any:
        found: list[Any] = []
        _collect(event.get(head), steps, 0, found)
        return found or None

    return get


def _collect(node: Any, steps: list[str], at: int, out: list[Any]) -> None:
    if node is None:
        return
    if type(node) is list:
        for item in node:
            _collect(item, steps, at, out)
        return
    if at == len(steps):
        out.append(node)
    elif isinstance(node, dict):
        _collect(node.get(steps[at]), steps, at + 1, out)


# --- tests ------------------------------------------------------------------------------------


class TextTest:
    """Exact values, prefixes, suffixes, substrings and wildcard patterns, OR-ed together."""

    __slots__ = ("cased", "exact", "globs", "needles", "prefixes", "suffixes")

    def __init__(self, cased: bool = False) -> None:
        self.cased = cased
        self.exact: frozenset[str] = frozenset()
        self.prefixes: tuple[str, ...] = ()
        self.suffixes: tuple[str, ...] = ()
        self.needles: tuple[str, ...] = ()
        self.globs: tuple[Callable[[str], bool], ...] = ()

    @property
    def keys(self) -> frozenset[str] | None:
        """Normalised values this test accepts, when it is nothing but exact values."""
        if self.prefixes or self.suffixes or self.needles or self.globs or not self.exact:
            return None
        return self.exact if not self.cased else frozenset(v.lower() for v in self.exact)

    def merge(self, other: TextTest) -> TextTest:
        merged = TextTest(self.cased)
        merged.exact = self.exact | other.exact
        merged.prefixes = _unique(self.prefixes + other.prefixes)
        merged.suffixes = _unique(self.suffixes + other.suffixes)
        merged.needles = _unique(self.needles + other.needles)
        merged.globs = self.globs + other.globs
        return merged

    def __call__(self, value: Any) -> bool:
        s = value if type(value) is str else text(value)
        if s is None:
            return False
        if not self.cased:
            s = s.lower()
        if s in self.exact:
            return True
        if self.prefixes and s.startswith(self.prefixes):
            return True
        if self.suffixes and s.endswith(self.suffixes):
            return True
        for needle in self.needles:
            if needle in s:
                return True
        return any(glob(s) for glob in self.globs)

    def on_text(self) -> Callable[[str], bool]:
        """The test for a string value, specialised to what the test holds (the hot path)."""
        exact, prefixes, suffixes, needles = self.exact, self.prefixes, self.suffixes, self.needles
        plain = not self.globs
        if self.cased:
            return self.__call__
        if plain and not (prefixes or suffixes or needles):
            if len(exact) == 1:
                (only,) = exact
                return lambda s: s.lower() == only
            return lambda s: s.lower() in exact
        if plain and not (exact or suffixes or needles):
            return lambda s: s.lower().startswith(prefixes)
        if plain and not (exact or prefixes or needles):
            return lambda s: s.lower().endswith(suffixes)
        if plain and not (exact or prefixes or suffixes) and len(needles) == 1:
            (needle,) = needles
            return lambda s: needle in s.lower()
        return self.__call__

    def describe(self) -> str:
        parts = [f"{len(self.exact)} exact"] if self.exact else []
        for name in ("prefixes", "suffixes", "needles", "globs"):
            if getattr(self, name):
                parts.append(f"{len(getattr(self, name))} {name}")
        return ("cased " if self.cased else "") + ", ".join(parts)


def _unique(items: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(items))


def text_test(parts: Iterable[Any], *, cased: bool) -> TextTest:
    """Build the test for one Sigma string given as parts: str, "*" (multi) or "?" (single)."""
    pieces: list[Any] = []
    for part in parts:
        if isinstance(part, str):
            if not part:
                continue
            if pieces and isinstance(pieces[-1], str):
                pieces[-1] += part
                continue
        elif part is STAR and pieces and pieces[-1] is STAR:
            continue  # ** is *
        pieces.append(part)
    if not cased:
        pieces = [p.lower() if isinstance(p, str) else p for p in pieces]
    test = TextTest(cased)
    literal = [p for p in pieces if isinstance(p, str)]
    if len(pieces) == len(literal):  # no wildcard
        test.exact = frozenset(["".join(literal)])  # "" for an empty string
    elif any(p is QUESTION for p in pieces):
        test.globs = (_glob_regex(pieces),)
    elif pieces == [STAR]:
        test.prefixes = ("",)  # any text at all
    elif len(pieces) == 2 and pieces[1] is STAR:
        test.prefixes = (pieces[0],)
    elif len(pieces) == 2 and pieces[0] is STAR:
        test.suffixes = (pieces[1],)
    elif len(pieces) == 3 and pieces[0] is STAR and pieces[2] is STAR:
        test.needles = (pieces[1],)
    else:
        test.globs = (_star_glob(pieces),)
    return test


class _Wildcard:
    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


STAR = _Wildcard("*")
QUESTION = _Wildcard("?")


def _star_glob(pieces: list[Any]) -> Callable[[str], bool]:
    """``*``-only patterns: literal pieces found in order, leftmost first (linear, exact)."""
    anchored_start = pieces[0] is not STAR
    anchored_end = pieces[-1] is not STAR
    middle = [p for p in pieces if p is not STAR]
    first = middle[0] if anchored_start else None
    last = middle[-1] if anchored_end else None
    inner = middle[(1 if anchored_start else 0) : len(middle) - (1 if anchored_end else 0)]

    def match(s: str) -> bool:
        start, end = 0, len(s)
        if first is not None:
            if not s.startswith(first):
                return False
            start = len(first)
        if last is not None:
            if not s.endswith(last) or len(s) - len(last) < start:
                return False
            end = len(s) - len(last)
        for piece in inner:
            found = s.find(piece, start, end)
            if found < 0:
                return False
            start = found + len(piece)
        return True

    return match


def _glob_regex(pieces: list[Any]) -> Callable[[str], bool]:
    body = "".join(".*" if p is STAR else "." if p is QUESTION else re2.escape(p) for p in pieces)
    pattern = compile_regex(f"(?s)^{body}$")
    return lambda s: pattern.search(s) is not None


class AllNeedles:
    """``|contains|all`` merged: every substring must occur (in the same value)."""

    __slots__ = ("cased", "needles")

    def __init__(self, needles: tuple[str, ...], cased: bool) -> None:
        self.needles = needles
        self.cased = cased

    def __call__(self, value: Any) -> bool:
        s = value if type(value) is str else text(value)
        if s is None:
            return False
        if not self.cased:
            s = s.lower()
        return all(needle in s for needle in self.needles)


class RegexTest:
    __slots__ = ("pattern", "source")

    def __init__(self, source: str) -> None:
        self.source = source
        self.pattern = compile_regex(source)

    def __call__(self, value: Any) -> bool:
        s = value if type(value) is str else text(value)
        return s is not None and self.pattern.search(s) is not None


class CidrTest:
    """Membership in any of the networks; answers are remembered per address text."""

    __slots__ = ("memo", "networks", "ranges")
    MAX_MEMO = 4096

    def __init__(self, networks: Iterable[str]) -> None:
        self.networks = tuple(ipaddress.ip_network(n, strict=False) for n in networks)
        self.ranges = tuple(
            (net.version, int(net.network_address), int(net.broadcast_address))
            for net in self.networks
        )
        self.memo: dict[str, bool] = {}

    def merge(self, other: CidrTest) -> CidrTest:
        return CidrTest([str(net) for net in (*self.networks, *other.networks)])

    def __call__(self, value: Any) -> bool:
        if type(value) is not str:
            return False
        known = self.memo.get(value)
        if known is not None:
            return known
        address = ip_number(value)
        found = False
        if address is not None:
            version, number = address
            for net_version, low, high in self.ranges:
                if net_version == version and low <= number <= high:
                    found = True
                    break
        if len(self.memo) >= self.MAX_MEMO:
            self.memo.clear()
        self.memo[value] = found
        return found


def ip_number(value: str) -> tuple[int, int] | None:
    """(version, integer) of an IP address in the text forms ``ipaddress`` accepts."""
    parts = value.split(".")
    if len(parts) == 4 and ":" not in value:  # dotted quad: the common case, parsed by hand
        number = 0
        for part in parts:
            if not (part.isascii() and part.isdigit()) or len(part) > 3:
                return None
            if len(part) > 1 and part[0] == "0":  # leading zeros: octal or decimal? refused
                return None
            octet = int(part)
            if octet > 255:
                return None
            number = number * 256 + octet
        return 4, number
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        return None
    return address.version, int(address)


_COMPARE: dict[str, Callable[[float, float], bool]] = {
    "LT": lambda a, b: a < b,
    "LTE": lambda a, b: a <= b,
    "GT": lambda a, b: a > b,
    "GTE": lambda a, b: a >= b,
    "NEQ": lambda a, b: a != b,
}


class CompareTest:
    __slots__ = ("limit", "op", "operator")

    def __init__(self, operator: str, limit: float) -> None:
        self.operator = operator
        self.op = _COMPARE[operator]
        self.limit = limit

    def __call__(self, value: Any) -> bool:
        if type(value) is bool:
            return False
        found = number(value)
        return found is not None and self.op(found, self.limit)


_PARTS: dict[str, Callable[[datetime], int]] = {
    "MINUTE": lambda t: t.minute,
    "HOUR": lambda t: t.hour,
    "DAY": lambda t: t.day,
    "WEEK": lambda t: int(t.strftime("%W")),
    "MONTH": lambda t: t.month,
    "YEAR": lambda t: t.year,
}


class TimestampPartTest:
    """``|minute``, ``|hour``, … : a part of a timestamp value equals a number."""

    __slots__ = ("part", "wanted")

    def __init__(self, part: str, wanted: float) -> None:
        self.part = _PARTS[part]
        self.wanted = wanted

    def __call__(self, value: Any) -> bool:
        moment = value if isinstance(value, datetime) else parse_timestamp(value)
        return moment is not None and self.part(moment) == self.wanted
