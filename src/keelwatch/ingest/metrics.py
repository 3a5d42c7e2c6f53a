"""Counters and gauges for /metrics, in the Prometheus text exposition format."""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Callable

_HELP = {
    "keelwatch_records_received_total": "Records received, by source.",
    "keelwatch_events_stored_total": "Events and findings durably stored, by source.",
    "keelwatch_records_dead_lettered_total": "Records kept in the dead-letter table, by source.",
    "keelwatch_requests_rejected_total": "Requests refused whole, by reason.",
    "keelwatch_ingest_queue_events": "Events accepted but not yet durably written.",
}


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class Metrics:
    """Thread-safe counters keyed by (metric, label value)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counters: dict[tuple[str, str, str], int] = defaultdict(int)
        self._gauges: dict[str, Callable[[], float]] = {}

    def add(self, metric: str, amount: int, label: str = "source", value: str = "") -> None:
        if amount:
            with self._lock:
                self._counters[(metric, label, value)] += amount

    def gauge(self, metric: str, read: Callable[[], float]) -> None:
        self._gauges[metric] = read

    def value(self, metric: str, label_value: str = "") -> int:
        with self._lock:
            return sum(
                n for (m, _, v), n in self._counters.items() if m == metric and v == label_value
            )

    def render(self) -> str:
        with self._lock:
            counters = sorted(self._counters.items())
        lines: list[str] = []
        seen: set[str] = set()
        for (metric, label, value), number in counters:
            if metric not in seen:
                seen.add(metric)
                lines.append(f"# HELP {metric} {_HELP.get(metric, metric)}")
                lines.append(f"# TYPE {metric} counter")
            lines.append(f'{metric}{{{label}="{_escape(value)}"}} {number}')
        for metric, read in sorted(self._gauges.items()):
            lines.append(f"# HELP {metric} {_HELP.get(metric, metric)}")
            lines.append(f"# TYPE {metric} gauge")
            lines.append(f"{metric} {read():g}")
        return "\n".join(lines) + "\n"
