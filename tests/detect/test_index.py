"""The index changes speed, never results: indexed matching equals each rule on its own."""

from __future__ import annotations

from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from keelwatch.detect import load_texts
from keelwatch.detect.matchers import PatternError, compile_regex

FIELDS = ("verb", "resource", "user", "path", "code")
WORDS = ("create", "Create", "pods", "secrets", "/bin/sh", "/usr/bin/curl", "sys:sa:x", "403", "")
MODIFIERS = ("", "|contains", "|startswith", "|endswith", "|cased", "|re")


def _value(modifier: str, word: str) -> str:
    return "^" + word[:3] if modifier == "|re" else word


selection = st.dictionaries(
    st.tuples(st.sampled_from(FIELDS), st.sampled_from(MODIFIERS)).map(lambda t: t[0] + t[1]),
    st.lists(st.sampled_from(WORDS), min_size=1, max_size=3),
    min_size=1,
    max_size=3,
)
condition = st.sampled_from(
    [
        "a",
        "a and b",
        "a or b",
        "a and not b",
        "not a",
        "1 of them",
        "all of them",
        "(a or b) and not c",
    ]
)


@st.composite
def rule_text(draw: st.DrawFn, number: int) -> str:
    detection: dict[str, Any] = {}
    for name in ("a", "b", "c"):
        chosen = draw(selection)
        fixed = {}
        for key, values in chosen.items():
            modifier = key[key.index("|") :] if "|" in key else ""
            fixed[key] = [_value(modifier, value) for value in values]
        detection[name] = fixed if draw(st.booleans()) else [fixed, draw(selection)]
    detection["condition"] = draw(condition)
    datasets = draw(st.sampled_from([None, "audit", "runtime"]))
    logsource = {"product": "keelwatch", **({"service": datasets} if datasets else {})}
    return yaml.safe_dump(
        {
            "title": f"rule {number}",
            "id": f"00000000-0000-4000-8000-{number:012d}",
            "logsource": logsource,
            "detection": detection,
        }
    )


event_value = st.one_of(
    st.sampled_from(WORDS),
    st.sampled_from(WORDS).map(str.upper),
    st.lists(st.sampled_from(WORDS), max_size=3),
    st.integers(400, 405),
    st.none(),
)
events = st.lists(
    st.builds(
        lambda dataset, values: {"event.dataset": dataset, **values},
        st.sampled_from(["audit", "runtime", "AUDIT", "other"]),
        st.dictionaries(st.sampled_from(FIELDS), event_value, max_size=5),
    ),
    min_size=1,
    max_size=30,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.integers(0, 10_000), min_size=1, max_size=12, unique=True).flatmap(
    lambda numbers: st.tuples(*(rule_text(n) for n in numbers))
), events)  # fmt: skip
def test_indexed_matches_equal_rule_by_rule(
    texts: tuple[str, ...], batch: list[dict[str, Any]]
) -> None:
    ruleset, errors = load_texts([(f"r{n}.yml", text) for n, text in enumerate(texts)])
    assert not [e for e in errors if "invalid" not in e.reason], errors
    indexed = {(m.rule.id, m.index) for m in ruleset.match(batch)}
    direct = {
        (rule.id, index)
        for rule in ruleset
        for index, event in enumerate(batch)
        if rule.matches(event)
    }
    assert indexed == direct
    # a rule is reported once per event, even when filed under several of its values
    assert len(ruleset.match(batch)) == len(indexed)


def test_describe_names_the_key_fields() -> None:
    text = yaml.safe_dump(
        {
            "title": "t",
            "id": "00000000-0000-4000-8000-000000000001",
            "logsource": {"product": "keelwatch", "service": "audit"},
            "detection": {
                "s": {"resource": ["pods", "secrets"], "verb": "create"},
                "condition": "s",
            },
        }
    )
    texts = [(f"{n}.yml", text.replace("000000000001", f"{n:012d}")) for n in range(1, 5)]
    ruleset, _ = load_texts(texts)
    described = ruleset.describe()["partitions"]["audit"]
    assert described["rules"] == 4 and described["always"] == 0
    assert set(described["keys"]) <= {"resource", "verb"}


def test_regex_the_linear_engine_refuses_is_an_error() -> None:
    assert compile_regex("a+b").search("xaab")
    for pattern in ("(?=a)", r"(a)\1", "(?<!x)y"):
        try:
            compile_regex(pattern)
        except PatternError as error:
            assert pattern in str(error)
        else:
            raise AssertionError(pattern)
