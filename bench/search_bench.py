"""Search latency on 1M and 10M stored events, through the Store API, against raw DuckDB SQL.

The events are 1.4 KB Kubernetes audit events spread over a week (bench/search_data.py builds
and caches them). Each query runs repeatedly with varied parameters (windows, verbs, ids,
terms), through ``DuckDBStore`` (``search``, ``count_by``, ``sql``: what the API and CLI call)
with one DuckDB thread, i.e. per core; the anchor is the same query hand-written in SQL on
a plain read-only DuckDB connection to the same file, also one thread, same parameters,
against the table the rows are stored in (``events_rows`` where the store keeps one behind the
``events`` view, else ``events``).
Wall time per call; p50 and p95 in milliseconds after one warm-up call.

    python -m bench.search_bench [--sizes 1000000,10000000] [--quick] [--record] [--explain]
"""

from __future__ import annotations

import argparse
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb

from bench.harness import append_results
from bench.measure import percentile
from bench.search_data import CACHE, SPAN, START, Dataset, dataset
from keelwatch.store.base import TimeRange
from keelwatch.store.duckdb_store import DuckDBStore

Params = dict[str, Any]
Statement = tuple[str, list[Any]]
VERBS = ("get", "list", "watch", "update", "patch", "create")
RAW = "<stored events>"  # replaced by the table that holds the rows
NAMES = ("lease", "pod", "endpointslice", "configmap", "event", "deployment", "secret")


@dataclass(frozen=True, slots=True)
class Query:
    name: str
    target_ms: float | None  # the target at 10M events, one core
    params: Callable[[random.Random, Dataset], Params]
    store: Callable[[DuckDBStore, Params], object]
    raw: Callable[[Params], list[Statement]]


def _window(rng: random.Random, days: float) -> tuple[datetime, datetime]:
    free = (SPAN - timedelta(days=days)).total_seconds()
    start = (START + timedelta(seconds=rng.uniform(0, free))).replace(tzinfo=None)
    return start, start + timedelta(days=days)


def _day(rng: random.Random, _: Dataset) -> Params:
    since, until = _window(rng, 1)
    return {"since": since, "until": until}


def _filtered(rng: random.Random, _: Dataset) -> Params:
    since, until = _window(rng, 6)
    outcome = rng.choice(("success", "failure"))
    return {"since": since, "until": until, "verb": rng.choice(VERBS), "outcome": outcome}


def _week(rng: random.Random, _: Dataset) -> Params:
    since, until = _window(rng, 6)
    return {"since": since, "until": until}


def _histogram_sql(p: Params, literal: bool, table: str = "events") -> Statement:
    bounds = (
        f"TIMESTAMP '{p['since'].isoformat()}' AND ts < TIMESTAMP '{p['until'].isoformat()}'"
        if literal
        else "? AND ts < ?"
    )
    sql = (
        f"SELECT time_bucket(INTERVAL 1 MINUTE, ts) AS minute, count(*) AS n FROM {table} "
        f"WHERE ts >= {bounds} GROUP BY 1 ORDER BY 1"
    )
    return sql, [] if literal else [p["since"], p["until"]]


def _top_sql(key: str, where: str = "") -> str:
    return (
        f"SELECT {key} AS value, count(*) AS n FROM {RAW} WHERE {where}ts >= ? AND ts < ? "
        "GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 10"
    )


QUERIES: tuple[Query, ...] = (
    Query(
        "count in a 24 h window",
        50,
        _day,
        lambda s, p: s.search("", TimeRange(p["since"], p["until"]), limit=0).total,
        lambda p: [(f"SELECT count(*) FROM {RAW} WHERE ts >= ? AND ts < ?",
                    [p["since"], p["until"]])],
    ),
    Query(
        "per-minute histogram, 24 h",
        50,
        _day,
        lambda s, p: s.sql(_histogram_sql(p, literal=True)[0]).rows,
        lambda p: [_histogram_sql(p, literal=False, table=RAW)],
    ),
    Query(
        "filtered aggregation (verb, outcome → top namespaces), 6 days",
        50,
        _filtered,
        lambda s, p: s.count_by(
            f"kubernetes.audit.verb:{p['verb']} AND event.outcome:{p['outcome']}",
            "orchestrator.namespace", TimeRange(p["since"], p["until"]),
        ),
        lambda p: [(_top_sql("object_namespace", "audit_verb = ? AND outcome = ? AND "),
                    [p["verb"], p["outcome"], p["since"], p["until"]])],
    ),
    Query(
        "top-10 users, 6 days",
        200,
        _week,
        lambda s, p: s.count_by("", "user.name", TimeRange(p["since"], p["until"])),
        lambda p: [(_top_sql("user_name"), [p["since"], p["until"]])],
    ),
    Query(
        "top-10 user agents (a field kept only in doc), 6 days",
        200,
        _week,
        lambda s, p: s.count_by("", "user_agent.original", TimeRange(p["since"], p["until"])),
        lambda p: [(_top_sql("json_extract_string(doc, '$.\"user_agent.original\"')"),
                    [p["since"], p["until"]])],
    ),
    Query(
        "lookup by event id",
        50,
        lambda rng, data: {"id": rng.choice(data.ids)},
        lambda s, p: s.search(f'event.id:"{p["id"]}"', TimeRange(), limit=10).events,
        lambda p: [(f"SELECT * FROM {RAW} WHERE event_id = ?", [p["id"]])],
    ),
    Query(
        "free text, a rare term (8 hex digits of one event's id), all time",
        100,
        lambda rng, data: {"term": rng.choice(data.ids)[:8]},
        lambda s, p: s.search(p["term"], TimeRange(), limit=100).total,
        lambda p: [
            (f"SELECT count(*) FROM {RAW} WHERE original ILIKE ?", [f"%{p['term']}%"]),
            (f"SELECT * FROM {RAW} WHERE original ILIKE ? ORDER BY ts DESC LIMIT 100",
             [f"%{p['term']}%"]),
        ],
    ),
    Query(
        "free text (an object name), all time",
        100,
        lambda rng, _: {"term": f"{rng.choice(NAMES)}-{rng.randrange(10_000):04d}"},
        lambda s, p: s.search(p["term"], TimeRange(), limit=100).total,
        lambda p: [
            (f"SELECT count(*) FROM {RAW} WHERE original ILIKE ?", [f"%{p['term']}%"]),
            (f"SELECT * FROM {RAW} WHERE original ILIKE ? ORDER BY ts DESC LIMIT 100",
             [f"%{p['term']}%"]),
        ],
    ),
)  # fmt: skip


@dataclass(slots=True)
class Timing:
    store_ms: list[float]
    raw_ms: list[float]


def _timed(run: Callable[[], object], runs: int, budget_seconds: float) -> list[float]:
    run()  # warm-up: both sides start with the same pages cached
    times: list[float] = []
    spent = 0.0
    while len(times) < runs and (len(times) < 3 or spent < budget_seconds):
        start = time.perf_counter()
        run()
        elapsed = time.perf_counter() - start
        spent += elapsed
        times.append(elapsed * 1000)
    return times


def _run_raw(con: duckdb.DuckDBPyConnection, statements: list[Statement], table: str) -> None:
    for sql, params in statements:
        con.execute(sql.replace(RAW, table), params).fetchall()


def _stored_table(con: duckdb.DuckDBPyConnection) -> str:
    """Where the rows are: the store's ``events_rows`` behind the view, or ``events`` itself."""
    found = con.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE table_name = 'events_rows'"
    ).fetchall()
    return "events_rows" if found[0][0] else "events"


def measure(
    data: Dataset, runs: int, budget_seconds: float, queries: Sequence[Query] = QUERIES
) -> dict[str, Timing]:
    timings: dict[str, Timing] = {}
    store = DuckDBStore(data.data_dir, read_only=True, threads=1)
    try:
        for query in queries:
            rng = random.Random(query.name)
            params = [query.params(rng, data) for _ in range(runs + 1)]
            feed = iter(params)
            times = _timed(lambda q=query, f=feed: q.store(store, next(f)), runs, budget_seconds)  # type: ignore[misc]
            timings[query.name] = Timing(times, [])
            print(f"  store  {query.name}: p50 {percentile(times, 0.5):,.1f} ms", flush=True)
    finally:
        store.close()
    con = duckdb.connect(str(data.file), read_only=True, config={"threads": 1})
    table = _stored_table(con)
    try:
        for query in queries:
            rng = random.Random(query.name)
            params = [query.params(rng, data) for _ in range(runs + 1)]
            feed = iter(params)
            times = _timed(lambda q=query, f=feed: _run_raw(con, q.raw(next(f)), table), runs,  # type: ignore[misc]
                           budget_seconds)  # fmt: skip
            timings[query.name].raw_ms = times
            print(f"  raw    {query.name}: p50 {percentile(times, 0.5):,.1f} ms", flush=True)
    finally:
        con.close()
    return timings


def explain(data: Dataset) -> str:
    """EXPLAIN ANALYZE of each hand-written query (one parameter set), for the analysis."""
    con = duckdb.connect(str(data.file), read_only=True, config={"threads": 1})
    out = []
    try:
        for query in QUERIES:
            sql, params = query.raw(query.params(random.Random(query.name), data))[0]
            sql = sql.replace(RAW, _stored_table(con))
            plan = con.execute("EXPLAIN ANALYZE " + sql, params).fetchall()
            out.append(f"### {query.name}\n{sql}\n{plan[0][1]}")
    finally:
        con.close()
    return "\n".join(out)


def report(data: Dataset, timings: dict[str, Timing], queries: Sequence[Query]) -> str:
    size_bytes = data.file.stat().st_size
    loaded = (
        "cached (built by an earlier run)"
        if data.load_seconds is None
        else f"{data.load_seconds:,.0f} s ({data.size / data.load_seconds:,.0f} events/s)"
    )
    lines = [
        f"**{data.size:,} events** — database {size_bytes / 2**30:,.2f} GiB "
        f"({size_bytes / data.size:,.0f} B/event); load through DuckDBStore.append: {loaded}.",
        "",
        "| query | target at 10M | Store API p50 / p95 ms | raw SQL p50 / p95 ms "
        "| Store / raw (p50) | runs |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for query in queries:
        t = timings[query.name]
        store50, raw50 = percentile(t.store_ms, 0.5), percentile(t.raw_ms, 0.5)
        target = "—" if query.target_ms is None else f"≤ {query.target_ms:,.0f} ms"
        if query.target_ms is not None and data.size >= 10_000_000:
            target += " ✓" if percentile(t.store_ms, 0.95) <= query.target_ms else " ✗"
        lines.append(
            f"| {query.name} | {target} "
            f"| {store50:,.1f} / {percentile(t.store_ms, 0.95):,.1f} "
            f"| {raw50:,.1f} / {percentile(t.raw_ms, 0.95):,.1f} "
            f"| {store50 / max(raw50, 1e-9):.2f} | {len(t.store_ms)} / {len(t.raw_ms)} |"
        )
    return "\n".join(lines)


def run(
    sizes: Sequence[int],
    runs: int,
    budget_seconds: float,
    cache: Path,
    show: bool,
    queries: Sequence[Query] = QUERIES,
) -> str:
    sections = []
    for size in sizes:
        print(f"{size:,} events: loading (or reusing the cache in {cache})", flush=True)
        data = dataset(size, cache)
        sections.append(report(data, measure(data, runs, budget_seconds, queries), queries))
        print(sections[-1], flush=True)
        if show:
            print(explain(data), flush=True)
    return "\n\n".join(sections)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000000,10000000", help="comma-separated counts")
    parser.add_argument("--quick", action="store_true", help="50,000 events, 3 runs")
    parser.add_argument("--runs", type=int, default=20, help="timed runs per query and side")
    parser.add_argument(
        "--budget-seconds",
        type=float,
        default=30.0,
        help="stop repeating a query after this long (at least 3 runs)",
    )
    parser.add_argument("--cache", type=Path, default=CACHE, help="where built stores are kept")
    parser.add_argument("--record", action="store_true", help="append to docs/benchmarks.md")
    parser.add_argument("--explain", action="store_true", help="print EXPLAIN ANALYZE plans")
    parser.add_argument("--queries", help="run only the queries whose name contains this text")
    args = parser.parse_args()  # fmt: skip
    sizes = [50_000] if args.quick else [int(s) for s in args.sizes.split(",")]
    runs = 3 if args.quick else args.runs
    queries = [q for q in QUERIES if not args.queries or args.queries in q.name]
    body = run(sizes, runs, args.budget_seconds, args.cache, args.explain, queries)
    if args.record:
        intro = (
            "1.4 KB Kubernetes audit events over 7 days; one DuckDB thread (one core); wall "
            "time per call after a warm-up; varied parameters per run. Targets (p95) are the "
            "issue's, at 10M events per core."
        )
        append_results("Search latency", f"{intro}\n\n{body}")


if __name__ == "__main__":
    main()
