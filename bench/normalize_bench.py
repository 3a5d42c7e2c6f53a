"""Decode + normalize only: the k8s-audit pipeline stages on one core, no server, no store.

``keelwatch.ingest.service.build_batch`` (orjson decode, then the k8s-audit parser flattening
every field into the common schema) on the same 1.4 KB audit events the ingest benchmark
sends, as NDJSON and as EventList bodies, with the garbage collector set as ``keelwatch serve``
sets it. Anchor in the same run, same bytes: msgspec typed decode (bench/ceiling.py). Beside
it: decode alone, and the default collector settings, to show where the time goes.

    python -m bench.normalize_bench [--events N] [--quick] [--record] [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from bench.ceiling import decode_event_lists, decode_ndjson
from bench.harness import append_results
from bench.measure import best_cpu_seconds, default_gc, tune_gc_like_server
from bench.workload import audit_lines, event_list_bodies, ndjson_bodies
from keelwatch.ingest.service import build_batch
from keelwatch.pipeline.decode import decode_body

BATCH = 1_000


def normalize_all(bodies: Sequence[bytes]) -> int:
    now = datetime.now(UTC)
    stored = 0
    for body in bodies:
        batch, _ = build_batch(body, "k8s-audit", now)
        stored += len(batch.events)
    return stored


def decode_all(bodies: Sequence[bytes]) -> int:
    return sum(len(decode_body(body).records) for body in bodies)


def profile(work: Callable[[], object], top: int = 20) -> str:
    profiler = cProfile.Profile()
    profiler.runcall(work)
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(top)
    return out.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--quick", action="store_true", help="2,000 events, for a smoke test")
    parser.add_argument("--record", action="store_true", help="append to docs/benchmarks.md")
    parser.add_argument("--profile", action="store_true", help="print a cProfile of NDJSON")
    args = parser.parse_args()
    count = 2_000 if args.quick else args.events
    repeats = 1 if args.quick else 3
    lines = audit_lines(count, large=True)
    size = sum(map(len, lines)) / count
    ndjson, lists = ndjson_bodies(lines, BATCH), event_list_bodies(lines, BATCH)
    if normalize_all(ndjson) != count or normalize_all(lists) != count:
        raise SystemExit("build_batch did not turn every record into an event")

    def rate(work: Callable[[], object]) -> float:
        return count / best_cpu_seconds(work, repeats)

    default_gc()
    default_ndjson = rate(lambda: normalize_all(ndjson))
    tune_gc_like_server()
    results = {
        "ceiling NDJSON": rate(lambda: decode_ndjson(ndjson)),
        "ceiling EventList": rate(lambda: decode_event_lists(lists)),
        "decode NDJSON": rate(lambda: decode_all(ndjson)),
        "normalize NDJSON": rate(lambda: normalize_all(ndjson)),
        "normalize EventList": rate(lambda: normalize_all(lists)),
    }
    ceiling = results["ceiling NDJSON"]
    table = [
        "| stage (one core, GC as the server sets it) | events/s | vs msgspec ceiling |",
        "| --- | ---: | ---: |",
        f"| build_batch, NDJSON (decode + normalize) | {results['normalize NDJSON']:,.0f} "
        f"| {results['normalize NDJSON'] / ceiling:.3f} |",
        f"| build_batch, EventList | {results['normalize EventList']:,.0f} "
        f"| {results['normalize EventList'] / results['ceiling EventList']:.3f} |",
        f"| build_batch, NDJSON, default GC thresholds | {default_ndjson:,.0f} "
        f"| {default_ndjson / ceiling:.3f} |",
        f"| decode_body alone (orjson to dicts), NDJSON | {results['decode NDJSON']:,.0f} "
        f"| {results['decode NDJSON'] / ceiling:.3f} |",
        f"| anchor: msgspec typed decode, NDJSON | {ceiling:,.0f} | 1.000 |",
        f"| anchor: msgspec typed decode, EventList | {results['ceiling EventList']:,.0f} | — |",
    ]
    body = "\n".join(
        [
            f"{count:,} Kubernetes audit events of {size:,.0f} bytes, bodies of {BATCH:,}; "
            f"CPU time, best of {repeats}.",
            "",
            *table,
        ]
    )
    print(body, flush=True)
    if args.profile:
        print(profile(lambda: normalize_all(ndjson)))
    if args.record:
        append_results("Decode + normalize (1.4 KB audit events)", body)


if __name__ == "__main__":
    main()
