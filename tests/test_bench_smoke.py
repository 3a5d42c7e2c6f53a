"""Every benchmark runs in --quick mode and prints its figures; nothing is recorded.

Benchmarks are never pass/fail on timing: these tests only check that each one runs end to end
against the real code (servers, store, parsers) and prints the rows it promises.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "docs" / "benchmarks.md"
SIGMA = ROOT.parent / "shared" / "corpus" / "sigma" / "rules"
NUMBER = r"[\d,]+(?:\.\d+)?"

# benchmark module → lines (regular expressions) its quick run must print
EXPECTED: dict[str, list[str]] = {
    "bench.ingest_bench": [
        rf"\| NDJSON \| {NUMBER} \| {NUMBER} \| {NUMBER} \| {NUMBER} \| 3,000 \| .*MiB → .*MiB \|",
        rf"\| EventList \| {NUMBER} \| {NUMBER} \| {NUMBER} \| {NUMBER} \| 3,000 \|",
        rf"\| msgspec typed decode, NDJSON \| {NUMBER} \|",
        rf"\| plain DuckDB Arrow append .* \| {NUMBER} \|",
    ],
    "bench.normalize_bench": [
        rf"\| build_batch, NDJSON \(decode \+ normalize\) \| {NUMBER} \| {NUMBER} \|",
        rf"\| build_batch, EventList \| {NUMBER} \| {NUMBER} \|",
        rf"\| anchor: msgspec typed decode, NDJSON \| {NUMBER} \| 1.000 \|",
    ],
    "bench.search_bench": [
        rf"\*\*50,000 events\*\* — database {NUMBER} GiB",
        *(
            rf"\| {re.escape(name)} \| .* \| {NUMBER} / {NUMBER} \| {NUMBER} / {NUMBER} \| "
            rf"{NUMBER} \| 3 / 3 \|"
            for name in (
                "count in a 24 h window",
                "per-minute histogram, 24 h",
                "top-10 users, 6 days",
                "lookup by event id",
                "free text, a rare term (8 hex digits of one event's id), all time",
                "free text (an object name), all time",
            )
        ),
    ],
    "bench.storage_bench": [
        rf"\| \*\*Keelwatch DuckDB store\*\* \(target ≤ 120\) \| {NUMBER} [✓✗] \| {NUMBER} \|",
        rf"\| anchor: NDJSON, zstd level 3 \| {NUMBER} \| 1.00 \|",
        rf"\| analysis: typed columns only \| {NUMBER} \|",
    ],
    "bench.latency_bench": [
        rf"capacity {NUMBER} events/s",
        rf"\| request due → alert queryable .* \| {NUMBER} \| {NUMBER} [✓✗] \| {NUMBER} \|",
        rf"\| request due → acknowledged \(durable\) \| {NUMBER} \| {NUMBER} \|",
    ],
    "bench.detect_bench": [rf"\| Keelwatch RuleSet.match, {NUMBER} rules \| {NUMBER} \|"],
    "bench.protocols_bench": [
        rf"\| native /ingest \| {NUMBER} \| {NUMBER} \| {NUMBER} \| 5,000 \|",
        rf"\| Fluent forward \| {NUMBER} \| {NUMBER} \| {NUMBER} \| 5,000 \|",
    ],
}


@pytest.mark.parametrize("module", sorted(EXPECTED))
def test_benchmark_runs_and_prints_its_figures(module: str, tmp_path: Path) -> None:
    if module == "bench.detect_bench" and not SIGMA.is_dir():
        pytest.skip(f"the detection benchmark reads SigmaHQ rules from {SIGMA}, absent here")
    extra = ["--cache", str(tmp_path / "cache")] if module == "bench.search_bench" else []
    recorded = RESULTS.read_bytes() if RESULTS.exists() else None
    done = subprocess.run(
        [sys.executable, "-m", module, "--quick", *extra],
        cwd=ROOT, capture_output=True, text=True, timeout=280,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    for pattern in EXPECTED[module]:
        assert re.search(pattern, done.stdout), f"{pattern!r} not in:\n{done.stdout}"
    after = RESULTS.read_bytes() if RESULTS.exists() else None
    assert after == recorded, "a --quick run must not append to docs/benchmarks.md"
