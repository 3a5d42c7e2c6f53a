"""Free text through the token filters: whole-token semantics, and narrowing never loses a match."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from keelwatch.errors import StoreError
from keelwatch.parsers.base import Batch
from keelwatch.store import id_filter, layout, token_filter
from keelwatch.store.base import TimeRange
from keelwatch.store.duckdb_store import DATABASE_FILE, DuckDBStore

T0 = datetime(2026, 11, 1, tzinfo=UTC)
EVERYTHING = TimeRange(None, None)


def _events(originals: list[str], first: int = 0, day: int = 0) -> list[dict[str, Any]]:
    return [
        {
            "@timestamp": T0 + timedelta(days=day, milliseconds=n),
            "event.id": f"id-{first + n}",
            "event.original": text,
        }
        for n, text in enumerate(originals)
    ]


@pytest.fixture
def store(tmp_path: Path) -> Iterator[DuckDBStore]:
    opened = DuckDBStore(tmp_path / "data")
    yield opened
    opened.close()


@pytest.fixture
def small_blocks(monkeypatch: pytest.MonkeyPatch) -> int:
    """Blocks of 4 rows, so a handful of events spans many filters."""
    monkeypatch.setattr(id_filter, "BLOCK_ROWS", 4)
    monkeypatch.setattr(token_filter, "BLOCK_ROWS", 4)
    return 4


def _found(store: DuckDBStore, query: str) -> set[str]:
    return {str(e["event.original"]) for e in store.search(query, EVERYTHING, limit=1000).events}


SEMANTICS = [
    "pod-0042 started",
    "pods listed",
    "xpod-00421 gone",
    "POD 0042 ready",
    "café Grün",
]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("pod", {0, 3}),  # a whole token, any ASCII case; not pods, not xpod
        ("POD", {0, 3}),
        ("0042", {0, 3}),
        ("pod-0042", {0}),  # several tokens: as written, on token boundaries
        ('"pod-0042"', {0}),
        ('"pod 0042"', {3}),
        ("*pod*", {0, 1, 2, 3}),  # wildcards keep substring semantics
        ("pod*", {0, 1, 2, 3}),
        ("*0042", {0, 2, 3}),
        ("café", {4}),  # non-ASCII characters belong to tokens
        ("caf", set()),
        ("grün", {4}),
        ("gr", set()),
        ('"-"', {0, 2}),  # no token at all: a substring match
        ("po", set()),
        ("nothing", set()),
    ],
)
def test_free_text_matches_whole_tokens(store: DuckDBStore, query: str, expected: set[int]) -> None:
    store.append(Batch(events=_events(SEMANTICS)))
    assert _found(store, query) == {SEMANTICS[i] for i in expected}


def _fold(text: str) -> str:
    return "".join(c.lower() if c.isascii() else c for c in text)


def _token_char(char: str) -> bool:
    return char.isalnum() if char.isascii() else True


def brute_force(original: str, term: str) -> bool:
    """The documented semantics, written without the index or regexes."""
    haystack, needle = _fold(original), _fold(term)
    if not any(_token_char(c) for c in needle):
        return needle in haystack
    at = haystack.find(needle)
    while at >= 0:
        end = at + len(needle)
        starts = not _token_char(needle[0]) or at == 0 or not _token_char(haystack[at - 1])
        ends = not _token_char(needle[-1]) or end == len(haystack) or not _token_char(haystack[end])
        if starts and ends:
            return True
        at = haystack.find(needle, at + 1)
    return False


_WORDS = ["pod", "Pod", "pods", "0042", "42", "a", "ä", "Ä", "ns", "kube", "x1"]
_SEPARATORS = [" ", "-", "/", ".", ":", '"', "_", "\\", "%", "*", "?"]
_TEXT = st.lists(st.sampled_from(_WORDS + _SEPARATORS), max_size=12).map("".join)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(originals=st.lists(_TEXT, min_size=1, max_size=30), terms=st.lists(_TEXT, max_size=6))
def test_indexed_search_equals_brute_force(
    tmp_path_factory: pytest.TempPathFactory, originals: list[str], terms: list[str]
) -> None:
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(id_filter, "BLOCK_ROWS", 4)
        patch.setattr(token_filter, "BLOCK_ROWS", 4)
        store = DuckDBStore(tmp_path_factory.mktemp("data"))
        try:
            store.append(Batch(events=_events(originals)))
            for term in [*terms, *originals[:3]]:
                if not term.strip() or "\\" in term:
                    continue
                quoted = '"' + term.replace('"', '\\"') + '"'
                found = [
                    str(e["event.original"])
                    for e in store.search(quoted, EVERYTHING, limit=100).events
                ]
                expected = [o for o in originals if brute_force(o, term)]
                assert sorted(found) == sorted(expected), term
        finally:
            store.close()


def test_terms_read_only_candidate_blocks_across_batches_reopen(
    tmp_path: Path, small_blocks: int
) -> None:
    store = DuckDBStore(tmp_path / "data")
    try:
        store.append(Batch(events=_events(["alpha one", "beta"])))  # part of block 0
        store.append(Batch(events=_events([f"filler {n}" for n in range(9)], first=2)))
        store.append(Batch(events=_events(["gamma alpha"], first=11)))  # block 2
        rows = store._con.execute("SELECT count(DISTINCT block) FROM token_filters").fetchone()
        assert rows == (3,)
        condition = store._compilers["events"].compile("alpha")
        assert "seq" in condition.sql  # narrowed to blocks 0 and 2 (unless a false positive)
        assert _found(store, "alpha") == {"alpha one", "gamma alpha"}
        assert _found(store, "filler") == {f"filler {n}" for n in range(9)}
        assert store._compilers["events"].compile("absentword").sql == "FALSE"
    finally:
        store.close()
    reader = DuckDBStore(tmp_path / "data", read_only=True)  # filters come back from disk
    try:
        assert _found(reader, "alpha") == {"alpha one", "gamma alpha"}
        assert _found(reader, "beta") == {"beta"}
    finally:
        reader.close()


def test_full_size_blocks(store: DuckDBStore) -> None:
    rows = id_filter.BLOCK_ROWS
    texts = [f"GET /api/v1/pods/pod-{n}" for n in range(rows + 10)]
    store.append(Batch(events=_events(texts[:100])))
    store.append(Batch(events=_events(texts[100:], first=100)))
    assert _found(store, f"pod-{rows + 3}") == {texts[rows + 3]}
    assert _found(store, "pod-7") == {texts[7]}
    assert store.search("pods", EVERYTHING, limit=0).total == rows + 10
    assert store._con.execute("SELECT count(DISTINCT block) FROM token_filters").fetchone() == (2,)


def test_a_rolled_back_batch_leaves_no_tokens(store: DuckDBStore, small_blocks: int) -> None:
    store.append(Batch(events=_events(["kept one"])))
    before = store._con.execute("SELECT block, segment, bits FROM token_filters").fetchall()
    with pytest.raises(TypeError):
        store.append(
            Batch(events=[*_events(["ghost token"], first=1), {"event.id": "bad", "x": object()}])
        )
    assert store._con.execute("SELECT block, segment, bits FROM token_filters").fetchall() == before
    assert _found(store, "ghost") == set()
    store.append(Batch(events=_events(["kept two", "ghost again"], first=2)))
    assert _found(store, "kept") == {"kept one", "kept two"}
    assert _found(store, "ghost") == {"ghost again"}


def test_retention_drops_token_filters_of_emptied_blocks(
    store: DuckDBStore, small_blocks: int
) -> None:
    store.append(Batch(events=_events([f"old {n}" for n in range(8)])))  # blocks 0 and 1
    store.append(Batch(events=_events(["new one", "old but new"], first=8, day=2)))  # block 2
    store.delete_older_than(T0 + timedelta(days=1))
    blocks = store._con.execute("SELECT DISTINCT block FROM token_filters").fetchall()
    assert blocks == [(2,)]
    assert _found(store, "old") == {"old but new"}
    store.delete_older_than(T0 + timedelta(days=3))
    assert store._con.execute("SELECT count(*) FROM token_filters").fetchone() == (0,)
    store.append(Batch(events=_events(["later"], first=10)))
    assert _found(store, "later") == {"later"}


@pytest.mark.parametrize("older", [2, 3])  # 3: the same filters hashed another way
def test_files_of_older_layouts_are_refused(tmp_path: Path, older: int) -> None:
    data = tmp_path / "data"
    data.mkdir()
    con = duckdb.connect(str(data / DATABASE_FILE))
    con.execute("CREATE TABLE keelwatch_schema (version INTEGER NOT NULL)")
    con.execute("INSERT INTO keelwatch_schema VALUES (?)", [older])
    con.close()
    expected = f"storage layout {older}; this Keelwatch reads layout {layout.SCHEMA_VERSION}"
    with pytest.raises(StoreError, match=expected):
        DuckDBStore(data)
