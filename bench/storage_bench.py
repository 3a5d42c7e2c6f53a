"""Bytes per stored event: the DuckDB file after a CHECKPOINT, against zstd-compressed NDJSON.

N distinct 1.4 KB Kubernetes audit events are normalized and appended through
``DuckDBStore.append`` in 50,000-event batches (as the writer's group commits append them); the
figure is the database file's size after a CHECKPOINT divided by N (target: ≤ 120 B/event).
Anchor, same events, same run: the NDJSON lines compressed with zstd (level 3, the zstd CLI's
default) through pyarrow's codec. The analysis rows copy columns of the stored rows into fresh
files (the text columns with ZSTD forced, as the store declares them), to show where the bytes go.

    python -m bench.storage_bench [--events N] [--quick] [--record]
"""

from __future__ import annotations

import argparse
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pyarrow as pa

from bench.harness import append_results
from bench.workload import audit_lines, ndjson_bodies
from keelwatch.ingest.service import build_batch
from keelwatch.parsers.base import Batch
from keelwatch.store.columns import EVENT_COLUMNS
from keelwatch.store.duckdb_store import DATABASE_FILE, DuckDBStore

APPEND_BATCH = 50_000
TARGET_BYTES = 120
TYPED = ", ".join(column.name for column in EVENT_COLUMNS)
VARIANTS = (  # (label, SELECT list, forced compression or None): where the bytes go
    ("typed columns only", TYPED, None),
    ("`doc` column alone (as stored), ZSTD", "doc", "zstd"),
    ("`original` column alone, ZSTD", "original", "zstd"),
)


def store_events(lines: list[bytes], data_dir: Path) -> Path:
    """Append the events through DuckDBStore; returns the checkpointed database file."""
    store = DuckDBStore(data_dir)
    now = datetime.now(UTC)
    try:
        pending = Batch()
        for body in ndjson_bodies(lines, 10_000):
            pending.extend(build_batch(body, "k8s-audit", now)[0])
            if len(pending.events) >= APPEND_BATCH:
                store.append(pending)
                pending = Batch()
        if pending.events:
            store.append(pending)
    finally:
        store.close()
    path = data_dir / DATABASE_FILE
    con = duckdb.connect(str(path))
    try:
        stored = con.execute("SELECT count(*) FROM events").fetchall()[0][0]
        if stored != len(lines):
            raise SystemExit(f"stored {stored} of {len(lines)} events")
        con.execute("CHECKPOINT")
    finally:
        con.close()
    return path


def copy_size(source: Path, target: Path, columns: str, compression: str | None) -> int:
    """Size of a fresh file holding ``SELECT columns FROM events`` of ``source``."""
    con = duckdb.connect(str(target))
    try:
        if compression:
            con.execute(f"SET force_compression = '{compression}'")
        con.execute(f"ATTACH '{source}' AS source (READ_ONLY)")
        stored = con.execute(
            "SELECT count(*) FROM duckdb_tables() WHERE database_name = 'source' "
            "AND table_name = 'events_rows'"
        ).fetchall()[0][0]
        table = "events_rows" if stored else "events"  # the rows behind the view, if any
        con.execute(f"CREATE TABLE events AS SELECT {columns} FROM source.{table}")
        con.execute("DETACH source")
        con.execute("CHECKPOINT")
    finally:
        con.close()
    return target.stat().st_size


def zstd_bytes(data: bytes, level: int = 3) -> int:
    codec = pa.Codec("zstd", compression_level=level)
    return len(codec.compress(data, asbytes=True))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--quick", action="store_true", help="3,000 events, for a smoke test")
    parser.add_argument("--record", action="store_true", help="append to docs/benchmarks.md")
    args = parser.parse_args()
    count = 3_000 if args.quick else args.events
    lines = audit_lines(count, seed=29, large=True)
    ndjson = b"\n".join(lines) + b"\n"
    compressed = zstd_bytes(ndjson)
    with tempfile.TemporaryDirectory(prefix="keelwatch-bench-") as tmp:
        database = store_events(lines, Path(tmp) / "store")
        stored = database.stat().st_size
        rows = [
            "| what | bytes/event | vs zstd NDJSON |",
            "| --- | ---: | ---: |",
            f"| **Keelwatch DuckDB store** (target ≤ {TARGET_BYTES}) | {stored / count:,.0f}"
            f"{' ✓' if stored / count <= TARGET_BYTES else ' ✗'} | {stored / compressed:.2f} |",
            f"| anchor: NDJSON, zstd level 3 | {compressed / count:,.0f} | 1.00 |",
            f"| (raw NDJSON, uncompressed) | {len(ndjson) / count:,.0f} "
            f"| {len(ndjson) / compressed:.2f} |",
        ]
        print("\n".join(rows), flush=True)
        for number, (label, columns, compression) in enumerate(VARIANTS):
            size = copy_size(database, Path(tmp) / f"copy-{number}.duckdb", columns, compression)
            rows.append(f"| analysis: {label} | {size / count:,.0f} | {size / compressed:.2f} |")
            print(rows[-1], flush=True)
    body = "\n".join(
        [
            f"{count:,} distinct Kubernetes audit events of {len(ndjson) / count:,.0f} bytes "
            "(NDJSON), appended through DuckDBStore in batches of "
            f"{APPEND_BATCH:,}; file size after CHECKPOINT.",
            "",
            *rows,
        ]
    )
    if args.record:
        append_results("Storage per event", body)


if __name__ == "__main__":
    main()
