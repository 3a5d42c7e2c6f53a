"""Bloom filters over event ids, one per block of ``BLOCK_ROWS`` consecutive ``seq`` numbers.

Ids are hashes or source UUIDs, so they are spread evenly and DuckDB's min/max zonemaps cannot
skip anything for ``event_id = ?``: a lookup reads the whole column (136-179 ms at 10M events).
A filter says which blocks may hold an id; the lookup then adds their ``seq`` ranges, which
zonemaps do prune (see docs/adr/0003). A false positive costs one block read, never a wrong
answer: the query still compares ``event_id``.

Filters are written in the same transaction as their events, so they are as durable as the
events. The in-memory copy takes the new bits before that transaction commits: a reader never
misses a committed id, and bits left by a batch that rolled back only cost a false positive.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence

import duckdb

BLOCK_ROWS = 16_384
BITS_PER_ID = 12  # with 4 probes: about 0.6 % false positives per block
PROBES = 4
FILTER_BITS = BLOCK_ROWS * BITS_PER_ID
MAX_RANGES = 32  # beyond this many candidate blocks a plain scan is as good

DDL = "CREATE TABLE IF NOT EXISTS id_filters (block BIGINT NOT NULL, bits BLOB NOT NULL)"


def set_bits(bits: bytearray, positions: Iterable[int]) -> None:
    for position in positions:
        bits[position >> 3] |= 1 << (position & 7)


def has_bits(bits: bytes, positions: Iterable[int]) -> bool:
    return all(bits[p >> 3] & (1 << (p & 7)) for p in positions)


def _positions(event_id: str) -> list[int]:
    digest = hashlib.blake2b(event_id.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    value = int.from_bytes(digest, "little")
    first, step = value & 0xFFFFFFFF, (value >> 32) | 1
    return [(first + i * step) % FILTER_BITS for i in range(PROBES)]


class IdFilters:
    """The filters of one events table, cached in memory (about 24 KB per 16,384 events)."""

    def __init__(self) -> None:
        self._blocks: dict[int, bytes] | None = None

    def _loaded(self, con: duckdb.DuckDBPyConnection) -> dict[int, bytes]:
        if self._blocks is None:
            cursor = con.cursor()
            try:
                rows = cursor.execute("SELECT block, bits FROM id_filters").fetchall()
            finally:
                cursor.close()
            self._blocks = {int(block): bytes(bits) for block, bits in rows}
        return self._blocks

    def add(self, con: duckdb.DuckDBPyConnection, ids: Sequence[object], first_seq: int) -> None:
        """Write the filters that ``ids`` (numbered from ``first_seq``) change.

        Runs inside the caller's (single writer's) transaction.
        """
        blocks = self._loaded(con)
        changed: dict[int, bytearray] = {}
        for offset, event_id in enumerate(ids):
            if not isinstance(event_id, str):
                continue
            block = (first_seq + offset) // BLOCK_ROWS
            bits = changed.get(block)
            if bits is None:
                old = blocks.get(block)
                bits = changed[block] = bytearray(old) if old else bytearray(FILTER_BITS // 8)
            set_bits(bits, _positions(event_id))
        result = {block: bytes(filter_bits) for block, filter_bits in changed.items()}
        self._blocks = {**blocks, **result}  # replaced, not changed: readers iterate the old one
        for block, stored in result.items():
            con.execute("DELETE FROM id_filters WHERE block = ?", [block])
            con.execute("INSERT INTO id_filters VALUES (?, ?)", [block, stored])

    def forget_below(self, con: duckdb.DuckDBPyConnection, first_seq: int | None) -> None:
        """Drop the filters of blocks that retention emptied (all rows below ``first_seq``)."""
        if first_seq is None:
            con.execute("DELETE FROM id_filters")
            self._blocks = {}
            return
        first_block = first_seq // BLOCK_ROWS
        con.execute("DELETE FROM id_filters WHERE block < ?", [first_block])
        if self._blocks is not None:
            self._blocks = {b: bits for b, bits in self._blocks.items() if b >= first_block}

    def ranges(self, con: duckdb.DuckDBPyConnection, event_id: str) -> list[tuple[int, int]] | None:
        """``[start, end)`` seq ranges that may hold ``event_id``; None when too many to help."""
        positions = _positions(event_id)
        blocks = sorted(
            block for block, bits in self._loaded(con).items() if has_bits(bits, positions)
        )
        merged = merge_blocks(blocks)
        return merged if len(merged) <= MAX_RANGES else None


def merge_blocks(blocks: Iterable[int]) -> list[tuple[int, int]]:
    """Sorted block numbers as ``[start, end)`` seq ranges, adjacent blocks joined."""
    ranges: list[tuple[int, int]] = []
    for block in blocks:
        start, end = block * BLOCK_ROWS, (block + 1) * BLOCK_ROWS
        if ranges and ranges[-1][1] == start:
            ranges[-1] = (ranges[-1][0], end)
        else:
            ranges.append((start, end))
    return ranges
