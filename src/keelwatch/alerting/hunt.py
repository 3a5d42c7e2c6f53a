"""Retro-hunting: run rules over stored history with the same semantics as the live stream."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from keelwatch.alerting.dedup import Deduplicator
from keelwatch.alerting.raiser import AlertRaiser, MatchSource
from keelwatch.alerting.sigma_source import match_sources
from keelwatch.detect import load_texts
from keelwatch.model.alert import Alert
from keelwatch.parsers.base import Batch
from keelwatch.store.base import Store, TimeRange


def hunt(
    store: Store,
    sources: Sequence[MatchSource],
    window: TimeRange,
    *,
    alert_window_seconds: float = 600.0,
    batch_size: int = 10_000,
) -> list[Alert]:
    """The alerts ``sources`` raise over the events stored in ``window``, oldest first.

    Events are replayed in time order in micro-batches through a fresh deduplicator, exactly
    as the writer feeds live batches, so a rule raises the same alerts on history as it would
    have live.
    """
    raiser = AlertRaiser(sources, Deduplicator(alert_window_seconds))
    found: dict[str, Alert] = {}
    for events in store.scan(window, batch_size=batch_size):
        for alert in raiser.process(Batch(events=events)):
            found[alert.id] = alert
    return sorted(found.values(), key=lambda alert: alert.first_seen)


def hunt_report(
    store: Store,
    rules: Sequence[tuple[str, str]],
    window: TimeRange,
    *,
    alert_window_seconds: float = 600.0,
) -> dict[str, Any]:
    """Compile (name, Sigma YAML) ``rules`` and hunt with them: what the API and CLI show."""
    ruleset, problems = load_texts(rules)
    alerts = hunt(store, match_sources(ruleset), window, alert_window_seconds=alert_window_seconds)
    return {
        "rules": len(ruleset),
        "errors": [str(problem) for problem in problems],
        "alerts": [alert.as_json() for alert in alerts],
    }
