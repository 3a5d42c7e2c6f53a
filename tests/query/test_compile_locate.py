"""Exact ``event.id`` matches narrowed to ``seq`` ranges by a store's ``locate`` function."""

from __future__ import annotations

import pytest

from keelwatch.query.compile import QueryCompiler
from keelwatch.store.columns import EVENT_COLUMNS, FINDING_COLUMNS


def _compiler(answer: list[tuple[int, int]] | None, asked: list[str]) -> QueryCompiler:
    def locate(event_id: str) -> list[tuple[int, int]] | None:
        asked.append(event_id)
        return answer

    return QueryCompiler(EVENT_COLUMNS, locate=locate)


def test_ranges_become_seq_bounds_next_to_the_id() -> None:
    asked: list[str] = []
    condition = _compiler([(0, 10), (30, 40)], asked).compile('event.id:"a b"')
    assert condition.sql == "(event_id = ? AND ((seq >= ? AND seq < ?) OR (seq >= ? AND seq < ?)))"
    assert condition.params == ["a b", 0, 10, 30, 40]
    assert asked == ["a b"]


def test_no_candidate_block_means_no_match() -> None:
    condition = _compiler([], []).compile("event.id:x OR user.name:alice")
    assert condition.sql == "(FALSE OR (user_name = ?))"
    assert _compiler([], []).compile("NOT event.id:x").sql == "(NOT COALESCE(FALSE, FALSE))"


def test_unknown_means_a_plain_comparison() -> None:
    condition = _compiler(None, []).compile("event.id:x")
    assert (condition.sql, condition.params) == ("(event_id = ?)", ["x"])


@pytest.mark.parametrize("query", ["event.id:x*", "event.id:*", "event.id >= x", "x", "message:x"])
def test_only_exact_id_matches_ask(query: str) -> None:
    asked: list[str] = []
    _compiler([(0, 1)], asked).compile(query)
    assert asked == []


def test_without_locate_nothing_changes() -> None:
    assert QueryCompiler(EVENT_COLUMNS).compile("event.id:x").sql == "(event_id = ?)"
    assert QueryCompiler(FINDING_COLUMNS).compile("event.id:x").sql == "(event_id = ?)"
