"""Bloom filters over the tokens of ``original``, one per block of ``BLOCK_ROWS`` rows.

Free text matches whole tokens (see docs/adr/0004): a token is a maximal run of ASCII letters,
ASCII digits and non-ASCII characters, compared with ASCII letters folded to lower case. A term's
search reads only the blocks whose filter may hold all of its tokens, then checks the exact
condition on their rows, so a false positive costs one block read, never a wrong answer.

A block holds ~170,000 distinct tokens (1.1 KB audit events: ids, timestamps, addresses), so its
filter is 256 KB, too big to keep every block in memory. Each filter is cut into ``SEGMENTS``
rows of 1 KB and a token's probes all fall in one segment (a blocked Bloom filter): a search
reads one 1 KB row per block and token. Filters are written in the same transaction as their
events (the id filters' rule, store/id_filter.py); the bits of a rolled-back batch are gone too.

Writing is on the ingest path, so Python only splits the text into distinct tokens; DuckDB
hashes them (``md5_number_lower``: MD5 is specified, so the bits never depend on the DuckDB
version) and builds and merges the segments (``bitstring_agg``, ``|``) in C++, about twice as
fast as probing in Python. Searches compute the same probes with ``hashlib``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import duckdb
import pyarrow as pa

from keelwatch.store.id_filter import BLOCK_ROWS, MAX_RANGES, merge_blocks

SEGMENTS = 256
SEGMENT_BITS = 8_192  # 2 Mbit per block: ~12 bits per token, about 0.5 % false positives
PROBES = 4

DDL = (
    "CREATE TABLE IF NOT EXISTS token_filters "
    "(block BIGINT NOT NULL, segment SMALLINT NOT NULL, bits BIT NOT NULL)"
)
# The probes of _probes, in SQL over the registered token table; bitstring_agg sets bit p as
# the p-th bit from the most significant end (``_has_bits`` reads them that way).
_SEGMENTS_SQL = f"""
WITH hashed AS (SELECT md5_number_lower(token) AS h FROM _incoming_tokens),
probed AS (
    SELECT (h >> 56)::SMALLINT AS segment, (h >> 36) & 1048575 AS first,
           ((h >> 16) & 1048575) | 1 AS step
    FROM hashed
),
positions AS (
    SELECT segment, ((first + i * step) % {SEGMENT_BITS})::INTEGER AS position
    FROM probed, range({PROBES}) AS probe(i)
)
SELECT segment, bitstring_agg(position, 0, {SEGMENT_BITS - 1}) AS bits
FROM positions GROUP BY segment
"""

# bytes.translate table: ASCII letters to lower case, digits and non-ASCII bytes kept (UTF-8
# continuation bytes stay inside their token), everything else becomes a separator
_FOLD = bytes(
    c + 32 if 65 <= c <= 90 else c if 48 <= c <= 57 or 97 <= c <= 122 or c >= 128 else 32
    for c in range(256)
)


def tokens(text: str) -> set[bytes]:
    """The distinct tokens of ``text`` (folded UTF-8)."""
    return set(text.encode("utf-8", "surrogatepass").translate(_FOLD).split())


def _is_token_char(char: str) -> bool:
    return char.isalnum() if char.isascii() else True


_BOUNDARY = r"[^0-9A-Za-z\x{80}-\x{10ffff}]"


def token_pattern(text: str) -> str | None:
    """An RE2 pattern matching ``text`` where it starts and ends on token boundaries.

    ASCII letters match either case, everything else only itself; each character is written as
    a class or a ``\\x{..}`` escape, so no character of ``text`` can act as regex syntax. None
    when ``text`` has no token (it cannot use the filters).
    """
    if not any(_is_token_char(char) for char in text):
        return None
    parts = []
    for char in text:
        if char.isascii() and char.isalpha():
            parts.append(f"[{char.lower()}{char.upper()}]")
        elif char.isascii() and char.isdigit():
            parts.append(char)
        else:
            parts.append(f"\\x{{{ord(char):x}}}")
    start = f"(?:^|{_BOUNDARY})" if _is_token_char(text[0]) else ""
    end = f"(?:{_BOUNDARY}|$)" if _is_token_char(text[-1]) else ""
    return start + "".join(parts) + end


def _probes(token: bytes) -> tuple[int, list[int]]:
    """The segment and bit positions of a token (what _SEGMENTS_SQL computes in DuckDB)."""
    mixed = int.from_bytes(hashlib.md5(token, usedforsecurity=False).digest()[8:], "little")
    segment = mixed >> 56
    first, step = (mixed >> 36) & 0xFFFFF, ((mixed >> 16) & 0xFFFFF) | 1
    return segment, [(first + i * step) % SEGMENT_BITS for i in range(PROBES)]


def _has_bits(bits: bytes, positions: list[int]) -> bool:
    return all(bits[p >> 3] & (0x80 >> (p & 7)) for p in positions)


class TokenFilters:
    """The token filters of one events table; they live in DuckDB, not in memory."""

    def add(
        self, con: duckdb.DuckDBPyConnection, originals: Sequence[str | None], first_seq: int
    ) -> None:
        """Add the tokens of ``originals`` (numbered from ``first_seq``) to their blocks' filters.

        Runs inside the caller's (single writer's) transaction.
        """
        offset = 0
        while offset < len(originals):
            block = (first_seq + offset) // BLOCK_ROWS
            end = min(len(originals), (block + 1) * BLOCK_ROWS - first_seq)
            found: set[bytes] = set()
            for text in originals[offset:end]:
                if text:
                    found.update(text.encode("utf-8", "surrogatepass").translate(_FOLD).split())
            if found:
                self._write(con, block, found)
            offset = end

    @staticmethod
    def _write(con: duckdb.DuckDBPyConnection, block: int, found: set[bytes]) -> None:
        con.register("_incoming_tokens", pa.table({"token": pa.array(found, pa.binary())}))
        try:
            con.execute(f"CREATE OR REPLACE TEMP TABLE _new_segments AS {_SEGMENTS_SQL}")
        finally:
            con.unregister("_incoming_tokens")
        con.execute(
            "UPDATE token_filters SET bits = token_filters.bits | n.bits FROM _new_segments n "
            "WHERE token_filters.block = ? AND token_filters.segment = n.segment",
            [block],
        )
        con.execute(
            "INSERT INTO token_filters SELECT ?, n.segment, n.bits FROM _new_segments n "
            "WHERE n.segment NOT IN (SELECT segment FROM token_filters WHERE block = ?)",
            [block, block],
        )

    @staticmethod
    def forget_below(con: duckdb.DuckDBPyConnection, first_seq: int | None) -> None:
        """Drop the filters of blocks that retention emptied (all rows below ``first_seq``)."""
        if first_seq is None:
            con.execute("DELETE FROM token_filters")
        else:
            con.execute("DELETE FROM token_filters WHERE block < ?", [first_seq // BLOCK_ROWS])

    @staticmethod
    def ranges(con: duckdb.DuckDBPyConnection, text: str) -> list[tuple[int, int]] | None:
        """``[start, end)`` seq ranges whose rows may hold every token of ``text``.

        None when ``text`` has no token or the candidates are too many ranges to help.
        """
        wanted = [_probes(token) for token in tokens(text)]
        if not wanted:
            return None
        segments = sorted({segment for segment, _ in wanted})
        cursor = con.cursor()
        try:
            rows = cursor.execute(
                "SELECT block, segment, bits::BLOB FROM token_filters WHERE segment IN "
                f"({', '.join('?' for _ in segments)})",
                segments,
            ).fetchall()
        finally:
            cursor.close()
        by_block: dict[int, dict[int, bytes]] = {}
        for block, segment, bits in rows:
            by_block.setdefault(int(block), {})[int(segment)] = bytes(bits)
        blocks = sorted(
            block
            for block, held in by_block.items()
            if all(
                segment in held and _has_bits(held[segment], positions)
                for segment, positions in wanted
            )
        )
        merged = merge_blocks(blocks)
        return merged if len(merged) <= MAX_RANGES else None
