"""Loki's stream label string, ``{app="api", namespace="shop"}``, read without a regex.

Protobuf push requests carry a stream's labels as the Prometheus text form: names, ``=``, and
Go-quoted values (``strconv.Quote`` escapes). One left-to-right pass, so hostile input costs
linear time; anything else raises ValueError with where it went wrong.
"""

from __future__ import annotations

MAX_LABELS = 256
_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_:.")
_SIMPLE_ESCAPES = {
    "n": "\n",
    "t": "\t",
    "r": "\r",
    "\\": "\\",
    '"': '"',
    "'": "'",
    "a": "\a",
    "b": "\b",
    "f": "\f",
    "v": "\v",
}
_HEX_ESCAPES = {"x": 2, "u": 4, "U": 8}  # escape letter → hex digits that follow


def parse_labels(text: str) -> dict[str, str]:
    """The label set of ``text``; raises ValueError for anything that is not one."""
    text = text.strip()
    if len(text) < 2 or text[0] != "{" or text[-1] != "}":
        raise ValueError('labels must look like {name="value", ...}')
    end = len(text) - 1
    labels: dict[str, str] = {}
    at = _skip_spaces(text, 1, end)
    while at < end:
        start = at
        while at < end and text[at] in _NAME_CHARS:
            at += 1
        if at == start:
            raise ValueError(f"expected a label name at offset {at}")
        name = text[start:at]
        at = _expect(text, _skip_spaces(text, at, end), end, "=")
        at = _expect(text, _skip_spaces(text, at, end), end, '"')
        value, at = _quoted(text, at, end)
        labels[name] = value
        if len(labels) > MAX_LABELS:
            raise ValueError(f"more than {MAX_LABELS} labels")
        at = _skip_spaces(text, at, end)
        if at < end:
            at = _skip_spaces(text, _expect(text, at, end, ","), end)
    return labels


def _skip_spaces(text: str, at: int, end: int) -> int:
    while at < end and text[at] in " \t\n":
        at += 1
    return at


def _expect(text: str, at: int, end: int, char: str) -> int:
    if at >= end or text[at] != char:
        raise ValueError(f"expected {char!r} at offset {at}")
    return at + 1


def _quoted(text: str, at: int, end: int) -> tuple[str, int]:
    """The value of a Go-quoted string whose opening quote is before ``at``; and where it ends."""
    pieces: list[str] = []
    start = at
    while at < end:
        char = text[at]
        if char == '"':
            pieces.append(text[start:at])
            return "".join(pieces), at + 1
        if char != "\\":
            at += 1
            continue
        pieces.append(text[start:at])
        if at + 1 >= end:
            break
        letter = text[at + 1]
        if letter in _SIMPLE_ESCAPES:
            pieces.append(_SIMPLE_ESCAPES[letter])
            at += 2
        elif letter in _HEX_ESCAPES:
            digits = text[at + 2 : at + 2 + _HEX_ESCAPES[letter]]
            if len(digits) != _HEX_ESCAPES[letter] or not _is_hex(digits):
                raise ValueError(f"bad \\{letter} escape at offset {at}")
            code = int(digits, 16)
            if code > 0x10FFFF or 0xD800 <= code <= 0xDFFF:
                raise ValueError(f"escape to no Unicode character at offset {at}")
            pieces.append(chr(code))
            at += 2 + len(digits)
        else:
            raise ValueError(f"unknown escape \\{letter} at offset {at}")
        start = at
    raise ValueError("unterminated label value")


def _is_hex(digits: str) -> bool:
    return all(char in "0123456789abcdefABCDEF" for char in digits)
