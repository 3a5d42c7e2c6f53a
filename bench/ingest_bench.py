"""Ingest over HTTP end to end: 1.4 KB Kubernetes audit events to ``POST /ingest/k8s-audit``.

NDJSON batches and EventList batches (what the API server's audit webhook sends) go from a few
client threads to a real `keelwatch serve` (no rules), each format on a fresh server; every
request is acknowledged only once durable. The figure is events per second of server CPU (what
one core sustains), with wall-clock events/s and the server's peak memory (VmHWM) beside it.

Anchors, same events, same run: the JSON-decode ceiling (msgspec decoding the same bytes into
typed Structs, bench/ceiling.py) and a raw DuckDB Arrow append of the same rows into a plain
table with the same columns, in one transaction.

    python -m bench.ingest_bench [--events N] [--quick] [--record]
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import httpx

from bench.ceiling import decode_event_lists, decode_ndjson
from bench.harness import BenchServer, append_results, bench_server
from bench.measure import (
    best_cpu_seconds,
    cpu_seconds,
    mib,
    peak_rss_bytes,
    rss_bytes,
    tune_gc_like_server,
)
from bench.workload import audit_lines, event_list_bodies, ndjson_bodies
from keelwatch.ingest.service import build_batch
from keelwatch.parsers.base import Batch
from keelwatch.store.duckdb_store import DATABASE_FILE, DuckDBStore

BATCH = 1_000
CLIENTS = 4
FORMATS = ("NDJSON", "EventList")


@dataclass(slots=True)
class ServerRun:
    wall_seconds: float
    cpu_seconds: float
    stored: int
    idle_rss_bytes: int
    peak_rss_bytes: int


def post_all(server: BenchServer, bodies: Sequence[bytes]) -> None:
    """POST every body from CLIENTS threads, honouring 429/503 back-pressure."""
    local = threading.local()
    headers = {**server.headers, "Content-Type": "application/json"}

    def post(body: bytes) -> None:
        client = getattr(local, "client", None)
        if client is None:
            client = local.client = httpx.Client(timeout=120)
        while True:
            answer = client.post(f"{server.url}/ingest/k8s-audit", content=body, headers=headers)
            if answer.status_code not in (429, 503):
                answer.raise_for_status()
                return
            time.sleep(float(answer.headers.get("retry-after", "1")))

    with ThreadPoolExecutor(CLIENTS) as pool:
        list(pool.map(post, bodies))


def stored_events(server: BenchServer) -> int:
    answer = httpx.post(
        f"{server.url}/api/v1/sql", json={"query": "SELECT count(*) FROM events"},
        headers=server.headers, timeout=120,
    )  # fmt: skip
    answer.raise_for_status()
    return int(answer.json()["rows"][0][0])


def run_server(bodies: Sequence[bytes]) -> ServerRun:
    with bench_server() as server:
        pid = server.process.pid
        idle = rss_bytes(pid)
        before, start = server.cpu_seconds(), time.perf_counter()
        post_all(server, bodies)
        wall, cpu = time.perf_counter() - start, server.cpu_seconds() - before
        return ServerRun(wall, cpu, stored_events(server), idle, peak_rss_bytes(pid))


def duckdb_append_rate(bodies: Sequence[bytes], count: int) -> float:
    """Events per CPU second of a plain DuckDB Arrow append of the rows Keelwatch stores."""
    with tempfile.TemporaryDirectory(prefix="keelwatch-bench-") as tmp:
        store = DuckDBStore(Path(tmp) / "store")
        now = datetime.now(UTC)
        batch = Batch()
        for body in bodies:
            batch.extend(build_batch(body, "k8s-audit", now)[0])
        store.append(batch)
        store.close()
        source = duckdb.connect(str(Path(tmp) / "store" / DATABASE_FILE), read_only=True)
        rows = source.sql("SELECT * FROM events").to_arrow_table()  # the rows as users see them
        source.close()
        assert rows.num_rows == count, "store did not keep every event"

        def append(target: duckdb.DuckDBPyConnection) -> None:
            target.execute("BEGIN")
            target.register("incoming", rows)
            target.execute("INSERT INTO events SELECT * FROM incoming")
            target.execute("COMMIT")
            target.unregister("incoming")

        seconds = []
        for attempt in range(3):
            target = duckdb.connect(str(Path(tmp) / f"plain-{attempt}.duckdb"))
            target.register("incoming", rows)
            target.execute("CREATE TABLE events AS SELECT * FROM incoming WHERE false")
            target.unregister("incoming")
            seconds.append(cpu_seconds(lambda t=target: append(t))[1])  # type: ignore[misc]
            target.close()
        return count / min(seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--quick", action="store_true", help="3,000 events, for a smoke test")
    parser.add_argument("--record", action="store_true", help="append to docs/benchmarks.md")
    args = parser.parse_args()
    count = 3_000 if args.quick else args.events
    lines = audit_lines(count, large=True)
    size = sum(map(len, lines)) / count
    bodies = {"NDJSON": ndjson_bodies(lines, BATCH), "EventList": event_list_bodies(lines, BATCH)}

    tune_gc_like_server()
    repeats = 1 if args.quick else 3
    ceilings = {
        "NDJSON": count / best_cpu_seconds(lambda: decode_ndjson(bodies["NDJSON"]), repeats),
        "EventList": count
        / best_cpu_seconds(lambda: decode_event_lists(bodies["EventList"]), repeats),
    }
    appended = duckdb_append_rate(bodies["NDJSON"], count)
    rows = [
        "| format | events/s (wall) | events/s per server core | vs msgspec ceiling "
        "| vs DuckDB append | stored | server RSS idle → peak |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for form in FORMATS:
        run = run_server(bodies[form])
        per_core = count / max(run.cpu_seconds, 1e-9)
        rows.append(
            f"| {form} | {count / run.wall_seconds:,.0f} | {per_core:,.0f} "
            f"| {per_core / ceilings[form]:.3f} | {per_core / appended:.3f} | {run.stored:,} "
            f"| {mib(run.idle_rss_bytes)} → {mib(run.peak_rss_bytes)} |"
        )
        print(rows[-1], flush=True)
    anchors = [
        "| anchor (same bytes, same run) | events/s per core |",
        "| --- | ---: |",
        *(f"| msgspec typed decode, {form} | {ceilings[form]:,.0f} |" for form in FORMATS),
        f"| plain DuckDB Arrow append of the stored rows, one transaction | {appended:,.0f} |",
    ]
    body = "\n".join(
        [
            f"{count:,} Kubernetes audit events of {size:,.0f} bytes, batches of {BATCH:,}, "
            f"{CLIENTS} client threads on the same machine, `POST /ingest/k8s-audit`, no rules.",
            "",
            *rows,
            "",
            *anchors,
        ]
    )
    print("\n".join(anchors))
    if args.record:
        append_results("Ingest over HTTP (1.4 KB audit events)", body)


if __name__ == "__main__":
    main()
