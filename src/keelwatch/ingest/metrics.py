"""Counters and gauges for /metrics, in the Prometheus text exposition format."""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Callable

_HELP = {
    "keelwatch_records_received_total": "Records received, by source and protocol.",
    "keelwatch_events_stored_total": "Events and findings durably stored, by source and protocol.",
    "keelwatch_records_dead_lettered_total": "Records kept in the dead-letter table.",
    "keelwatch_requests_rejected_total": "Requests or frames refused, by protocol and reason.",
    "keelwatch_ingest_queue_events": "Events accepted but not yet durably written.",
    "keelwatch_connections_open": "Open TCP connections, by protocol.",
}

Labels = tuple[tuple[str, str], ...]


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class Metrics:
    """Thread-safe counters keyed by metric name and label set."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counters: dict[tuple[str, Labels], int] = defaultdict(int)
        self._gauges: dict[str, Callable[[], float]] = {}

    def add(self, metric: str, amount: int, **labels: str) -> None:
        if amount:
            key = (metric, tuple(sorted(labels.items())))
            with self._lock:
                self._counters[key] += amount

    def gauge(self, metric: str, read: Callable[[], float]) -> None:
        self._gauges[metric] = read

    def value(self, metric: str, **labels: str) -> int:
        """The sum of ``metric`` over every label set that contains ``labels``."""
        wanted = set(labels.items())
        with self._lock:
            return sum(
                n for (m, have), n in self._counters.items() if m == metric and wanted <= set(have)
            )

    def render(self) -> str:
        with self._lock:
            counters = sorted(self._counters.items())
        lines: list[str] = []
        seen: set[str] = set()
        for (metric, labels), number in counters:
            if metric not in seen:
                seen.add(metric)
                lines.append(f"# HELP {metric} {_HELP.get(metric, metric)}")
                lines.append(f"# TYPE {metric} counter")
            rendered = ",".join(f'{k}="{_escape(v)}"' for k, v in labels)
            lines.append(f"{metric}{{{rendered}}} {number}")
        for metric, read in sorted(self._gauges.items()):
            lines.append(f"# HELP {metric} {_HELP.get(metric, metric)}")
            lines.append(f"# TYPE {metric} gauge")
            lines.append(f"{metric} {read():g}")
        return "\n".join(lines) + "\n"
