"""Run every benchmark in turn, each in its own process, and record the results.

    python -m bench.run            # full sizes, results appended to docs/benchmarks.md
    python -m bench.run --quick    # tiny sizes, nothing recorded (what the smoke test runs)
    python -m bench.run --only ingest,search

A benchmark that fails is reported and the others still run; the exit status is 1 if any did.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time

from bench.harness import ROOT

BENCHMARKS: dict[str, str] = {
    "ingest": "bench.ingest_bench",
    "normalize": "bench.normalize_bench",
    "search": "bench.search_bench",
    "storage": "bench.storage_bench",
    "latency": "bench.latency_bench",
    "detect": "bench.detect_bench",
    "protocols": "bench.protocols_bench",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes; record nothing")
    parser.add_argument("--no-record", action="store_true", help="full sizes, record nothing")
    parser.add_argument("--only", help=f"comma-separated, from: {', '.join(BENCHMARKS)}")
    args = parser.parse_args()
    names = args.only.split(",") if args.only else list(BENCHMARKS)
    unknown = [name for name in names if name not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark {', '.join(unknown)}; known: {', '.join(BENCHMARKS)}")
    flags = ["--quick"] if args.quick else ([] if args.no_record else ["--record"])
    failed = []
    for name in names:
        print(f"\n=== {name} ({BENCHMARKS[name]} {' '.join(flags)})", flush=True)
        start = time.perf_counter()
        code = subprocess.call([sys.executable, "-m", BENCHMARKS[name], *flags], cwd=ROOT)
        print(f"=== {name}: exit {code} after {time.perf_counter() - start:,.0f} s", flush=True)
        if code:
            failed.append(name)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
