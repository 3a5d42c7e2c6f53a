"""Parse the search language into an AST.

The language is the one users know from Kibana (KQL, Lucene query strings):

    kubernetes.audit.verb:create AND kubernetes.audit.objectRef.resource:pods
    user.name:"system:anonymous" OR NOT event.outcome:success
    kubernetes.audit.responseStatus.code >= 400      status:[400 TO 499]
    process.name:ba*       message:"connection refused"      field:*       nginx

Terms side by side are ANDed. ``AND``/``OR``/``NOT`` may be any case; ``-term`` negates.
In a bare value ``*`` and ``?`` are wildcards and ``\\`` escapes the next character; a quoted
value is taken literally. A value may contain ``:`` (everything after the first ``:`` of a
``field:value`` word belongs to the value), so ``user.name:system:serviceaccount:ns:sa`` works.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from keelwatch.errors import QueryError
from keelwatch.query.ast import (
    WILDCARD_ANY,
    WILDCARD_ONE,
    And,
    Compare,
    Comparison,
    Exists,
    Match,
    MatchAll,
    Node,
    Not,
    Or,
)

MAX_QUERY_CHARS = 8_192
MAX_DEPTH = 32
MAX_TERMS = 512
FIELD_NAME = re.compile(r"[A-Za-z0-9_@][A-Za-z0-9_@.\-/]{0,255}")
_OPERATORS: tuple[Comparison, ...] = (">=", "<=", ">", "<")
_SPECIAL = set('()[]{}"')


@dataclass(frozen=True, slots=True)
class Token:
    kind: str  # WORD, QUOTED, ( ) [ ] { }
    text: str  # for WORD: the raw text (escapes still in it); for QUOTED: the unescaped value
    position: int


def tokenize(text: str) -> list[Token]:
    if len(text) > MAX_QUERY_CHARS:
        raise QueryError(f"query is longer than {MAX_QUERY_CHARS} characters")
    if "\x00" in text:  # NUL marks wildcards inside parsed values (see ast.WILDCARD_ANY)
        raise QueryError("query contains a NUL character", position=text.index("\x00"))
    tokens: list[Token] = []
    i, n = 0, len(text)
    while i < n:
        char = text[i]
        if char.isspace():
            i += 1
        elif char == '"':
            start, i, chars = i, i + 1, []
            while i < n and text[i] != '"':
                if text[i] == "\\" and i + 1 < n:
                    i += 1
                chars.append(text[i])
                i += 1
            if i >= n:
                raise QueryError("unterminated quoted string", position=start)
            tokens.append(Token("QUOTED", "".join(chars), start))
            i += 1
        elif char in _SPECIAL:
            tokens.append(Token(char, char, i))
            i += 1
        else:
            start = i
            while i < n and not text[i].isspace() and text[i] not in _SPECIAL:
                i += 2 if text[i] == "\\" and i + 1 < n else 1
            tokens.append(Token("WORD", text[start:i], start))
        if len(tokens) > MAX_TERMS * 4:
            raise QueryError(f"query has more than {MAX_TERMS} terms")
    return tokens


def parse(text: str) -> Node:
    """Parse ``text``; an empty query matches everything."""
    tokens = tokenize(text)
    if not tokens:
        return MatchAll()
    parser = _Parser(tokens)
    node = parser.parse_or(0)
    if parser.index < len(tokens):
        token = tokens[parser.index]
        raise QueryError(f"unexpected {token.text!r}", position=token.position)
    return node


def _unescape(raw: str) -> tuple[str, bool]:
    """Turn a bare word into a value: escapes resolved, unescaped * and ? marked as wildcards."""
    out: list[str] = []
    wildcard = False
    i = 0
    while i < len(raw):
        char = raw[i]
        if char == "\\" and i + 1 < len(raw):
            out.append(raw[i + 1])
            i += 2
            continue
        if char in "*?":
            out.append(WILDCARD_ANY if char == "*" else WILDCARD_ONE)
            wildcard = True
        else:
            out.append(char)
        i += 1
    return "".join(out), wildcard


def _split_field(raw: str) -> tuple[str, str] | None:
    """``field:rest`` at the first unescaped colon, if the left side is a field name."""
    i = 0
    while i < len(raw):
        if raw[i] == "\\":
            i += 2
            continue
        if raw[i] == ":":
            name = raw[:i]
            return (name, raw[i + 1 :]) if FIELD_NAME.fullmatch(name) else None
        i += 1
    return None


def _split_operator(raw: str) -> tuple[str, Comparison, str] | None:
    """``field>=value`` written as one word."""
    for op in _OPERATORS:
        at = raw.find(op)
        if at > 0 and FIELD_NAME.fullmatch(raw[:at]):
            return raw[:at], op, raw[at + len(op) :]
    return None


class _Parser:
    def __init__(self, tokens: list[Token]) -> None:
        self.tokens = tokens
        self.index = 0
        self.terms = 0

    def peek(self) -> Token | None:
        return self.tokens[self.index] if self.index < len(self.tokens) else None

    def take(self) -> Token:
        token = self.peek()
        if token is None:
            last = self.tokens[-1]
            raise QueryError("query ends too early", position=last.position + len(last.text))
        self.index += 1
        return token

    def keyword(self, word: str) -> bool:
        token = self.peek()
        return token is not None and token.kind == "WORD" and token.text.upper() == word

    def parse_or(self, depth: int) -> Node:
        if depth > MAX_DEPTH:
            raise QueryError(f"query nests deeper than {MAX_DEPTH} levels")
        children = [self.parse_and(depth)]
        while self.keyword("OR"):
            self.index += 1
            children.append(self.parse_and(depth))
        return children[0] if len(children) == 1 else Or(tuple(children))

    def parse_and(self, depth: int) -> Node:
        children = [self.parse_not(depth)]
        while True:
            token = self.peek()
            if token is None or token.kind == ")" or self.keyword("OR"):
                break
            if self.keyword("AND"):
                self.index += 1
            children.append(self.parse_not(depth))
        return children[0] if len(children) == 1 else And(tuple(children))

    def parse_not(self, depth: int) -> Node:
        if depth > MAX_DEPTH:
            raise QueryError(f"query nests deeper than {MAX_DEPTH} levels")
        if self.keyword("NOT"):
            self.index += 1
            return Not(self.parse_not(depth + 1))
        token = self.peek()
        if token is not None and token.kind == "WORD" and token.text.startswith("-"):
            if token.text == "-":  # -"quoted phrase" or -(group)
                self.index += 1
            else:
                self.tokens[self.index] = Token("WORD", token.text[1:], token.position + 1)
            return Not(self.parse_primary(depth))
        return self.parse_primary(depth)

    def parse_primary(self, depth: int) -> Node:
        self.terms += 1
        if self.terms > MAX_TERMS:
            raise QueryError(f"query has more than {MAX_TERMS} terms")
        token = self.take()
        if token.kind == "(":
            node = self.parse_or(depth + 1)
            if self.peek() is None:
                raise QueryError("this '(' is never closed", position=token.position)
            self.expect(")")
            return node
        if token.kind == "QUOTED":
            return Match(None, token.text)
        if token.kind != "WORD":
            raise QueryError(f"unexpected {token.text!r}", position=token.position)
        if token.text.upper() in ("AND", "OR"):
            raise QueryError(f"{token.text} needs a term on each side", position=token.position)
        split = _split_field(token.text)
        if split is not None:
            return self.parse_field_value(split[0], split[1], token, depth)
        operator = _split_operator(token.text)
        if operator is not None:
            name, op, rest = operator
            return Compare(name, op, self.comparison_value(rest, token))
        following = self.peek()
        if (
            following is not None
            and following.kind == "WORD"
            and following.text in _OPERATORS
            and FIELD_NAME.fullmatch(token.text)
        ):
            self.index += 1
            op = following.text
            return Compare(token.text, op, self.comparison_value("", following))
        value, wildcard = _unescape(token.text)
        return Match(None, value, wildcard)

    def comparison_value(self, rest: str, after: Token) -> str:
        if rest:
            return _unescape(rest)[0]
        token = self.take()
        if token.kind not in ("WORD", "QUOTED"):
            raise QueryError("a comparison needs a value", position=after.position)
        return _unescape(token.text)[0] if token.kind == "WORD" else token.text

    def parse_field_value(self, field: str, rest: str, token: Token, depth: int) -> Node:
        if rest:
            for op in _OPERATORS:
                if rest.startswith(op):
                    return Compare(field, op, self.comparison_value(rest[len(op) :], token))
            if rest == "*":
                return Exists(field)
            value, wildcard = _unescape(rest)
            return Match(field, value, wildcard)
        following = self.take()
        if following.kind == "QUOTED":
            return Match(field, following.text)
        if following.kind == "WORD" and following.text in _OPERATORS:
            op = following.text
            return Compare(field, op, self.comparison_value("", following))
        if following.kind in ("[", "{"):
            return self.parse_range(field, following)
        if following.kind == "(":
            return self.parse_value_group(field, depth + 1, following)
        if following.kind == "WORD" and following.text.upper() not in ("AND", "OR", "NOT"):
            return self.parse_field_value(field, following.text, following, depth)  # KQL `f: v`
        raise QueryError(f"{field}: needs a value", position=following.position)

    def parse_value_group(self, field: str, depth: int, opener: Token) -> Node:
        """``field:(a OR b AND c)``: the same operators, applied to values of one field."""
        if depth > MAX_DEPTH:
            raise QueryError(f"query nests deeper than {MAX_DEPTH} levels")
        groups: list[list[Node]] = [[]]
        operator: Token | None = None  # the last AND/OR, until a value follows it
        while True:
            if self.peek() is None:
                raise QueryError("this '(' is never closed", position=opener.position)
            token = self.take()
            if token.kind == ")":
                break
            if token.kind == "WORD" and token.text.upper() in ("AND", "OR"):
                if operator is not None or not groups[-1]:
                    raise QueryError(
                        f"{token.text} needs a value on each side", position=token.position
                    )
                operator = token
                if token.text.upper() == "OR":
                    groups.append([])
                continue
            operator = None
            negate = token.kind == "WORD" and token.text.upper() == "NOT"
            if negate:
                token = self.take()
            if token.kind == "QUOTED":
                node: Node = Match(field, token.text)
            elif token.kind == "WORD":
                value, wildcard = _unescape(token.text)
                node = Match(field, value, wildcard)
            else:
                raise QueryError(
                    f"unexpected {token.text!r} in a value list", position=token.position
                )
            groups[-1].append(Not(node) if negate else node)
            self.terms += 1
            if self.terms > MAX_TERMS:
                raise QueryError(f"query has more than {MAX_TERMS} terms")
        if operator is not None:
            raise QueryError(
                f"{operator.text} needs a value on each side", position=operator.position
            )
        parts = [g[0] if len(g) == 1 else And(tuple(g)) for g in groups if g]
        if not parts:
            raise QueryError(f"{field}: an empty value list")
        return parts[0] if len(parts) == 1 else Or(tuple(parts))

    def parse_range(self, field: str, opener: Token) -> Node:
        low = self.range_bound()
        to = self.take()
        if to.kind != "WORD" or to.text.upper() != "TO":
            raise QueryError("a range is written [low TO high]", position=to.position)
        high = self.range_bound()
        closer = self.take()
        if closer.kind not in ("]", "}"):
            raise QueryError("a range ends with ] or }", position=closer.position)
        parts: list[Node] = []
        if low != "*":
            parts.append(Compare(field, ">=" if opener.kind == "[" else ">", low))
        if high != "*":
            parts.append(Compare(field, "<=" if closer.kind == "]" else "<", high))
        if not parts:
            return Exists(field)
        return parts[0] if len(parts) == 1 else And(tuple(parts))

    def range_bound(self) -> str:
        token = self.take()
        if token.kind == "QUOTED":
            return token.text
        if token.kind != "WORD":
            raise QueryError("a range bound is missing", position=token.position)
        return token.text if token.text == "*" else _unescape(token.text)[0]

    def expect(self, kind: str) -> None:
        token = self.take()
        if token.kind != kind:
            raise QueryError(f"expected {kind!r}, found {token.text!r}", position=token.position)
