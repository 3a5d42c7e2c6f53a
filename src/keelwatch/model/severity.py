"""One severity scale for every source: 0 info, 1 low, 2 medium, 3 high, 4 critical."""

from __future__ import annotations

from typing import Any

INFO, LOW, MEDIUM, HIGH, CRITICAL = range(5)
NAMES = ("info", "low", "medium", "high", "critical")

_BY_NAME = {
    # Falco / syslog priorities
    "emergency": CRITICAL,
    "alert": CRITICAL,
    "critical": CRITICAL,
    "error": HIGH,
    "warning": MEDIUM,
    "notice": LOW,
    "informational": INFO,
    "info": INFO,
    "debug": INFO,
    # Scanners and Sigma levels
    "high": HIGH,
    "medium": MEDIUM,
    "moderate": MEDIUM,
    "low": LOW,
    "negligible": INFO,
    "unknown": INFO,
    "none": INFO,
    "informative": INFO,
}


def severity_from_name(name: Any) -> int | None:
    """Map a source's severity word (any case) onto the scale; None if it is not one we know."""
    if not isinstance(name, str):
        return None
    return _BY_NAME.get(name.strip().lower())


def severity_name(level: int) -> str:
    return NAMES[max(INFO, min(CRITICAL, level))]
