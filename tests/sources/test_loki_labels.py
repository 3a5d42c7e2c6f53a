"""The Loki label-string reader: Go-quoted values, and refusals with a reason for anything else."""

from __future__ import annotations

import pytest

from keelwatch.sources.loki_labels import MAX_LABELS, parse_labels


@pytest.mark.parametrize(
    ("text", "labels"),
    [
        ("{}", {}),
        (' { app="api" } ', {"app": "api"}),
        ('{app="api",namespace="shop",}', {"app": "api", "namespace": "shop"}),
        ('{q="say \\"hi\\"", path="C:\\\\logs"}', {"q": 'say "hi"', "path": "C:\\logs"}),
        ('{nl="a\\nb", e="\\u00e9\\x41\\U0001F600"}', {"nl": "a\nb", "e": "éA😀"}),
        ('{service.name="x", a:b="y"}', {"service.name": "x", "a:b": "y"}),
        ('{v="{,}="}', {"v": "{,}="}),
    ],
)
def test_reads_label_sets(text: str, labels: dict[str, str]) -> None:
    assert parse_labels(text) == labels


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("app=api", "must look like"),
        ('{app="api"', "must look like"),
        ("{app}", "expected '='"),
        ("{app=api}", "expected '\"'"),
        ('{="x"}', "label name"),
        ('{a="x" b="y"}', "expected ','"),
        ('{a="x}', "unterminated"),
        ('{a="\\q"}', "unknown escape"),
        ('{a="\\u12"}', "bad \\u escape"),
        ('{a="\\ud800"}', "no Unicode character"),
        ('{a="\\"}', "unterminated"),
    ],
)
def test_refuses_what_is_not_a_label_set(text: str, reason: str) -> None:
    with pytest.raises(ValueError) as error:
        parse_labels(text)
    assert reason in str(error.value)


def test_label_count_is_bounded() -> None:
    text = "{" + ",".join(f'l{n}="v"' for n in range(MAX_LABELS + 1)) + "}"
    with pytest.raises(ValueError, match="more than"):
        parse_labels(text)
    assert (
        len(parse_labels("{" + ",".join(f'l{n}="v"' for n in range(MAX_LABELS)) + "}"))
        == MAX_LABELS
    )
