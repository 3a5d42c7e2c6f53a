"""Small measuring helpers the benchmarks share: CPU time, percentiles, process memory."""

from __future__ import annotations

import gc
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")


def cpu_seconds(work: Callable[[], T]) -> tuple[T, float]:
    """Run ``work`` once; returns its result and the CPU seconds of this process (all threads)."""
    start = time.process_time()
    result = work()
    return result, time.process_time() - start


def best_cpu_seconds(work: Callable[[], object], repeats: int) -> float:
    """The smallest CPU time of ``repeats`` runs (the run least disturbed by other work)."""
    return min(cpu_seconds(work)[1] for _ in range(max(1, repeats)))


def percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile (``fraction`` in 0..1) of a non-empty sequence."""
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(fraction * len(ordered) + 0.5) - 1))
    return ordered[rank]


def _status_kib(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{key} not in /proc/{pid}/status")


def peak_rss_bytes(pid: int) -> int:
    """The process's peak resident memory so far (VmHWM)."""
    return _status_kib(pid, "VmHWM") * 1024


def rss_bytes(pid: int) -> int:
    return _status_kib(pid, "VmRSS") * 1024


def tune_gc_like_server() -> None:
    """The collector settings ``keelwatch serve`` runs with (see keelwatch.server)."""
    from keelwatch.server import tune_garbage_collector

    tune_garbage_collector()


def default_gc() -> None:
    gc.unfreeze()
    gc.set_threshold(700, 10, 10)
    gc.collect()


def mib(size_bytes: float) -> str:
    return f"{size_bytes / 2**20:,.0f} MiB"
