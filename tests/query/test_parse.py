"""The search language: every construct parses to the expected AST; bad input is a QueryError."""

from __future__ import annotations

import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

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
from keelwatch.query.compile import TEXT_FIELDS, QueryCompiler, like_pattern
from keelwatch.query.parse import MAX_DEPTH, MAX_QUERY_CHARS, MAX_TERMS, parse
from keelwatch.store.columns import EVENT_COLUMNS, FINDING_COLUMNS
from keelwatch.store.token_filter import token_pattern

# Deterministic, no deadlines, nothing written into the checkout.
PROPERTY = settings(
    derandomize=True,
    database=None,
    deadline=None,
    max_examples=400,
    suppress_health_check=[HealthCheck.too_slow],
)


def m(field: str | None, value: str, wildcard: bool = False) -> Match:
    return Match(field, value, wildcard)


A, B, C = m(None, "a"), m(None, "b"), m(None, "c")


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        # field:value and free text
        ("kubernetes.audit.verb:create", m("kubernetes.audit.verb", "create")),
        ("nginx", m(None, "nginx")),
        ("@timestamp:2026-01-01", m("@timestamp", "2026-01-01")),
        (
            "kubernetes.audit.annotations.authorization.k8s.io/decision:allow",
            m("kubernetes.audit.annotations.authorization.k8s.io/decision", "allow"),
        ),
        ("f: v", m("f", "v")),  # KQL puts a space after the colon
        ('f: "a b"', m("f", "a b")),
        # quoted phrases, escaped quotes inside, literal wildcards and backslashes
        ('"connection refused"', m(None, "connection refused")),
        ('message:"connection refused"', m("message", "connection refused")),
        (r'f:"say \"hi\""', m("f", 'say "hi"')),
        (r'"a\\b"', m(None, "a\\b")),
        ('f:"ba*"', m("f", "ba*")),
        ('f:"a:b (c) [d]"', m("f", "a:b (c) [d]")),
        ('f:""', m("f", "")),
        # wildcards
        ("process.name:ba*", m("process.name", f"ba{WILDCARD_ANY}", True)),
        ("f:b?d", m("f", f"b{WILDCARD_ONE}d", True)),
        ("f:*ab*", m("f", f"{WILDCARD_ANY}ab{WILDCARD_ANY}", True)),
        ("ng*nx", m(None, f"ng{WILDCARD_ANY}nx", True)),
        # escapes
        (r"f:\*", m("f", "*")),
        (r"f:a\?", m("f", "a?")),
        (r"f:a\:b", m("f", "a:b")),
        (r"f:a\\b", m("f", "a\\b")),
        (r"f:a\ b", m("f", "a b")),
        (r"f:\(x\)", m("f", "(x)")),
        (r"a\:b", m(None, "a:b")),
        (r"\-x", m(None, "-x")),
        # values containing colons (everything after the first colon is the value)
        (
            "user.name:system:serviceaccount:ns:sa",
            m("user.name", "system:serviceaccount:ns:sa"),
        ),
        ("source.ip:fe80::1", m("source.ip", "fe80::1")),
        ("source.ip:2001:db8::8a2e:370:7334", m("source.ip", "2001:db8::8a2e:370:7334")),
        ('source.ip:"::1"', m("source.ip", "::1")),
        ("url:http://x/y", m("url", "http://x/y")),
        # exists
        ("f:*", Exists("f")),
        ("user.group.name:*", Exists("user.group.name")),
        # empty query
        ("", MatchAll()),
        ("   \t\n ", MatchAll()),
    ],
)
def test_terms(query: str, expected: Node) -> None:
    assert parse(query) == expected


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("a AND b", And((A, B))),
        ("a and b", And((A, B))),
        ("a AnD b", And((A, B))),
        ("a OR b", Or((A, B))),
        ("a or b", Or((A, B))),
        ("a oR b", Or((A, B))),
        ("NOT a", Not(A)),
        ("not a", Not(A)),
        ("NoT a", Not(A)),
        ("NOT NOT a", Not(Not(A))),
        ("a b c", And((A, B, C))),  # implicit AND
        ("a b AND c", And((A, B, C))),
        ("a NOT b", And((A, Not(B)))),
        # AND binds tighter than OR
        ("a OR b AND c", Or((A, And((B, C))))),
        ("a AND b OR c", Or((And((A, B)), C))),
        ("a b OR c", Or((And((A, B)), C))),
        ("NOT a OR b", Or((Not(A), B))),
        ("a OR b OR c", Or((A, B, C))),
        # parentheses and nesting
        ("(a OR b) AND c", And((Or((A, B)), C))),
        ("(a OR b) c", And((Or((A, B)), C))),
        ("((a))", A),
        ("( a )", A),
        ("NOT (a OR b)", Not(Or((A, B)))),
        ("a AND (b OR (c AND NOT a))", And((A, Or((B, And((C, Not(A)))))))),
        # -term and -"phrase"
        ("-a", Not(A)),
        ("-f:v", Not(m("f", "v"))),
        ('-"a b"', Not(m(None, "a b"))),
        ("-(a OR b)", Not(Or((A, B)))),
        ("a -b", And((A, Not(B)))),
        ("-f:*", Not(Exists("f"))),
        ("a-b", m(None, "a-b")),  # a dash inside a word is not an operator
    ],
)
def test_operators(query: str, expected: Node) -> None:
    assert parse(query) == expected


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("f:(a OR b)", Or((m("f", "a"), m("f", "b")))),
        ("f:(a or b or c)", Or((m("f", "a"), m("f", "b"), m("f", "c")))),
        ("f:(a AND b)", And((m("f", "a"), m("f", "b")))),
        ("f:(a b)", And((m("f", "a"), m("f", "b")))),
        ("f:(a OR b AND c)", Or((m("f", "a"), And((m("f", "b"), m("f", "c")))))),
        ("f:(NOT a)", Not(m("f", "a"))),
        ("f:(a AND NOT b)", And((m("f", "a"), Not(m("f", "b"))))),
        ('f:("a b" OR c*)', Or((m("f", "a b"), m("f", f"c{WILDCARD_ANY}", True)))),
        ("f:(a)", m("f", "a")),
        ("f:(system:masters OR dev)", Or((m("f", "system:masters"), m("f", "dev")))),
        ("x f:(a OR b) y", And((m(None, "x"), Or((m("f", "a"), m("f", "b"))), m(None, "y")))),
    ],
)
def test_value_lists(query: str, expected: Node) -> None:
    assert parse(query) == expected


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("f:[400 TO 499]", And((Compare("f", ">=", "400"), Compare("f", "<=", "499")))),
        ("f:{400 TO 499}", And((Compare("f", ">", "400"), Compare("f", "<", "499")))),
        ("f:[400 TO 499}", And((Compare("f", ">=", "400"), Compare("f", "<", "499")))),
        ("f:{400 TO 499]", And((Compare("f", ">", "400"), Compare("f", "<=", "499")))),
        ("f:[400 to 499]", And((Compare("f", ">=", "400"), Compare("f", "<=", "499")))),
        ("f:[* TO 499]", Compare("f", "<=", "499")),
        ("f:{* TO 499}", Compare("f", "<", "499")),
        ("f:[400 TO *]", Compare("f", ">=", "400")),
        ("f:{400 TO *]", Compare("f", ">", "400")),
        ("f:[* TO *]", Exists("f")),
        ("f: [1 TO 2]", And((Compare("f", ">=", "1"), Compare("f", "<=", "2")))),
        (
            '@timestamp:["2026-01-01T00:00:00Z" TO 2026-01-02T00:00:00Z]',
            And(
                (
                    Compare("@timestamp", ">=", "2026-01-01T00:00:00Z"),
                    Compare("@timestamp", "<=", "2026-01-02T00:00:00Z"),
                )
            ),
        ),
        # comparisons, in every spelling
        ("f >= 400", Compare("f", ">=", "400")),
        ("f>=400", Compare("f", ">=", "400")),
        ("f:>=400", Compare("f", ">=", "400")),
        ("f: >= 400", Compare("f", ">=", "400")),
        ("f:>= 400", Compare("f", ">=", "400")),
        ("f <= 400", Compare("f", "<=", "400")),
        ("f<=400", Compare("f", "<=", "400")),
        ("f > 400", Compare("f", ">", "400")),
        ("f>400", Compare("f", ">", "400")),
        ("f:>400", Compare("f", ">", "400")),
        ("f < 400", Compare("f", "<", "400")),
        ("f<400", Compare("f", "<", "400")),
        ("f:<400", Compare("f", "<", "400")),
        ('f > "a b"', Compare("f", ">", "a b")),
        (r"f>a\ b", Compare("f", ">", "a b")),
        (
            "kubernetes.audit.responseStatus.code >= 400",
            Compare("kubernetes.audit.responseStatus.code", ">=", "400"),
        ),
        (
            "@timestamp>=2026-01-01T00:00:00Z",
            Compare("@timestamp", ">=", "2026-01-01T00:00:00Z"),
        ),
        (
            "@timestamp >= 2026-01-01T00:00:00+02:00",
            Compare("@timestamp", ">=", "2026-01-01T00:00:00+02:00"),
        ),
        ("f >= 400 AND g < 5", And((Compare("f", ">=", "400"), Compare("g", "<", "5")))),
        ("NOT f > 1", Not(Compare("f", ">", "1"))),
        ("-f>1", Not(Compare("f", ">", "1"))),
    ],
)
def test_ranges_and_comparisons(query: str, expected: Node) -> None:
    assert parse(query) == expected


@pytest.mark.parametrize(
    ("query", "message", "position"),
    [
        ('"abc', "unterminated quoted string", 0),
        ('f:"abc', "unterminated quoted string", 2),
        (r'"abc\"', "unterminated quoted string", 0),
        ('a "b', "unterminated quoted string", 2),
        ("a AND", "ends too early", 5),
        ("a OR", "ends too early", 4),
        ("NOT", "ends too early", 3),
        ("AND a", "AND needs a term on each side", 0),
        ("OR", "OR needs a term on each side", 0),
        ("a AND OR b", "OR needs a term on each side", 6),
        ("a OR OR b", "OR needs a term on each side", 5),
        ("a or and b", "and needs a term on each side", 5),
        ("f:(a OR)", "OR needs a value on each side", 5),
        ("f:(OR a)", "OR needs a value on each side", 3),
        ("f:(a AND)", "AND needs a value on each side", 5),
        ("f:(a OR OR b)", "OR needs a value on each side", 8),
        ("f:(a AND OR b)", "OR needs a value on each side", 9),
        ("(a", "'(' is never closed", 0),
        ("a AND (b OR (c)", "'(' is never closed", 6),
        ("f:(a OR b", "'(' is never closed", 2),
        ("a)", "unexpected ')'", 1),
        ("(a))", "unexpected ')'", 3),
        (")", "unexpected ')'", 0),
        ("()", "unexpected ')'", 1),
        ("f:()", "empty value list", None),
        ("f:(a (b))", "unexpected '(' in a value list", 5),
        ("[1 TO 2]", "unexpected '['", 0),
        ("f:[400 TO]", "range bound is missing", 9),
        ("f:[400 TO", "ends too early", 9),
        ("f:[TO 400]", "a range is written [low TO high]", 6),
        ("f:[400 499]", "a range is written [low TO high]", 7),
        ("f:[400 TO 499", "ends too early", 13),
        ("f:[400 TO 499)", "a range ends with ] or }", 13),
        ("f:[]", "range bound is missing", 3),
        ("f >=", "ends too early", 4),
        ("f:>=", "ends too early", 4),
        ("f > (", "a comparison needs a value", 2),
        ("f:", "ends too early", 2),
        ("f: AND", "f: needs a value", 3),
        ("f: )", "f: needs a value", 3),
        ("-", "ends too early", 1),
        ("a\x00b", "NUL character", 1),
    ],
)
def test_errors(query: str, message: str, position: int | None) -> None:
    with pytest.raises(QueryError, match=re.escape(message)) as caught:
        parse(query)
    assert caught.value.position == position
    if position is not None:
        assert f"at position {position}" in str(caught.value)


def test_limit_on_length() -> None:
    longest = "a" * MAX_QUERY_CHARS
    assert parse(longest) == m(None, longest)
    with pytest.raises(QueryError, match=f"longer than {MAX_QUERY_CHARS} characters"):
        parse(longest + "a")


def test_limit_on_nesting() -> None:
    def nested(depth: int) -> str:
        return "(" * depth + "a" + ")" * depth

    assert parse(nested(MAX_DEPTH)) == A
    with pytest.raises(QueryError, match=f"deeper than {MAX_DEPTH} levels"):
        parse(nested(MAX_DEPTH + 1))
    with pytest.raises(QueryError, match=f"deeper than {MAX_DEPTH} levels"):
        parse("(" * 200 + "a" + ")" * 200)
    with pytest.raises(QueryError, match=f"deeper than {MAX_DEPTH} levels"):
        parse("NOT " * 2000 + "a")  # a chain of NOTs must not recurse without bound
    with pytest.raises(QueryError, match=f"deeper than {MAX_DEPTH} levels"):
        parse("-(" * 200 + "a" + ")" * 200)
    chain: Node = A
    for _ in range(MAX_DEPTH):
        chain = Not(chain)
    assert parse("NOT " * MAX_DEPTH + "a") == chain


def test_limit_on_terms() -> None:
    assert isinstance(parse(" ".join(["a"] * MAX_TERMS)), And)
    with pytest.raises(QueryError, match=f"more than {MAX_TERMS} terms"):
        parse(" ".join(["a"] * (MAX_TERMS + 1)))
    with pytest.raises(QueryError, match=f"more than {MAX_TERMS} terms"):
        parse(" OR ".join(["f:a"] * (MAX_TERMS + 1)))
    with pytest.raises(QueryError, match=f"more than {MAX_TERMS} terms"):
        parse("f:(" + " OR ".join(["a"] * (MAX_TERMS + 1)) + ")")
    with pytest.raises(QueryError, match=f"more than {MAX_TERMS} terms"):
        parse("( " * 3000)  # many tokens are refused before parsing starts


# -- properties --------------------------------------------------------------------------------

# Characters the language gives meaning to, plus a little of everything else.
_QUERY_CHARS = st.one_of(
    st.sampled_from(list(" \t()[]{}\"\\:*?-><=!@./_%'")),
    st.sampled_from(["AND", "OR", "NOT", "TO", " and ", " or ", " not ", "f:", "message:"]),
    st.characters(codec="utf-8"),
)
_ARBITRARY_QUERIES = st.one_of(
    st.text(max_size=80),
    st.lists(_QUERY_CHARS, max_size=40).map("".join),
)

_FIELDS = st.sampled_from(
    [
        "message",
        "user.name",
        "user.group.name",
        "@timestamp",
        "event.severity",
        "destination.port",
        "kubernetes.audit.responseStatus.code",
        "kubernetes.audit.annotations.authorization.k8s.io/decision",
        "falco.output_fields.proc.cmdline",
        "x",
    ]
)
_VALUE_TEXT = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=20)


def _quoted(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _bare(value: str) -> str:
    """A value as a bare word: every character that means something is escaped."""
    if value.upper() in ("AND", "OR", "NOT"):
        return "\\" + value
    return "".join("\\" + c if not c.isalnum() else c for c in value) or '""'


# Numbers and times of every shape, including digits float() refuses (superscript two).
_ODD_VALUES = [
    *("*", "a*", "?b", "400", "-1", "1e3", "nan", "1e999", "9" * 30, "\u00b2", "\u0663"),
    *("2026-01-01T00:00:00Z", "2026-01-01T02:00:00+02:00", "1767225600", "1767225600000"),
]
_VALUES = st.one_of(
    _VALUE_TEXT.map(_quoted),
    _VALUE_TEXT.map(_bare),
    st.sampled_from(_ODD_VALUES),
)


@st.composite
def _terms(draw: st.DrawFn) -> str:
    field, value = draw(_FIELDS), draw(_VALUES)
    shape = draw(st.integers(0, 6))
    if shape == 0:
        return f"{field}:{value}"
    if shape == 1:
        return f"{field} {draw(st.sampled_from(['>', '>=', '<', '<=']))} {value}"
    if shape == 2:
        low, high = draw(_VALUES), draw(_VALUES)
        return f"{field}:{draw(st.sampled_from('[{'))}{low} TO {high}{draw(st.sampled_from(']}'))}"
    if shape == 3:
        return f"{field}:({value} OR {draw(_VALUES)})"
    if shape == 4:
        return f"{field}:*"
    return value


_WELL_FORMED = st.recursive(
    _terms(),
    lambda inner: st.one_of(
        st.tuples(inner, st.sampled_from([" AND ", " OR ", " ", " and "]), inner).map("".join),
        inner.map(lambda q: f"NOT {q}"),
        inner.map(lambda q: f"-({q})"),
        inner.map(lambda q: f"({q})"),
    ),
    max_leaves=8,
)

_SQL_WORDS = (
    {c.name for c in EVENT_COLUMNS + FINDING_COLUMNS}
    | {"doc", "original", "v", "lambda", "TRUE", "FALSE", "AND", "OR", "NOT", "IS", "NULL"}
    | {"COALESCE", "ILIKE", "LIKE", "ESCAPE", "CAST", "AS", "TRY_CAST", "VARCHAR", "DOUBLE"}
    | {"TIMESTAMP", "json_extract_string", "json_exists", "list_contains", "list_filter", "len"}
    | {"regexp_matches", "seq"}
)


def _assert_only_placeholders(sql: str, params: list[object]) -> None:
    """The SQL text is made of fixed words, operators and ``?``: no user text can be in it."""
    assert set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", sql)) <= _SQL_WORDS, sql
    without_escape = sql.replace("ESCAPE '\\'", "ESCAPE")
    assert re.fullmatch(r"[A-Za-z0-9_ (),?=<>:]*", without_escape), sql
    assert sql.count("?") == len(params)


def _compile_or_refuse(text: str) -> None:
    try:
        node = parse(text)
    except QueryError:
        return
    for compiler in (QueryCompiler(EVENT_COLUMNS), QueryCompiler(FINDING_COLUMNS)):
        try:
            condition = compiler.compile(node)
        except QueryError:
            continue
        _assert_only_placeholders(condition.sql, condition.params)


@PROPERTY
@given(_ARBITRARY_QUERIES)
def test_any_text_parses_or_raises_query_error(text: str) -> None:
    _compile_or_refuse(text)


@PROPERTY
@given(_WELL_FORMED)
def test_well_formed_queries_compile_to_placeholders_only(text: str) -> None:
    node = parse(text)  # the grammar above only writes valid queries
    assert not isinstance(node, MatchAll)
    _compile_or_refuse(text)


@PROPERTY
@given(st.sampled_from(["message", "user.name", "x", "user.group.name"]), _VALUE_TEXT)
def test_a_quoted_value_reaches_sql_only_as_a_parameter(field: str, value: str) -> None:
    compiler = QueryCompiler()
    for query, node in (
        (f"{field}:{_quoted(value)}", Match(field, value)),
        (f"{field}:{_bare(value)}", Match(field, value)),
        (_quoted(value), Match(None, value)),
    ):
        assert parse(query) == node
        condition = compiler.compile(query)
        # free text without any letter or digit has no token to match: a substring match
        same_shape = "x" if node.field or token_pattern(value) else "-"
        assert condition.sql == compiler.compile(node.__class__(node.field, same_shape)).sql
        expected = value if field not in TEXT_FIELDS and node.field else None
        if expected is None:
            expected = like_pattern(value, contains=True)
        assert expected in condition.params
