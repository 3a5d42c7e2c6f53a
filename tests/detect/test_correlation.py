"""The streaming correlation engine: each correlation type, and order independence within the
allowed lateness (Hypothesis), with bounded state."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from keelwatch.alerting.sigma_source import SigmaMatches
from keelwatch.detect import load_texts

T0 = datetime(2026, 11, 1, 10, 0, tzinfo=UTC)

BASE = """
title: Forbidden
id: 11111111-1111-4111-8111-111111111111
name: forbidden
status: test
logsource: {product: kubernetes, service: audit}
detection:
    selection:
        responseStatus.code: 403
    condition: selection
level: low
---
title: Secret read
id: 33333333-3333-4333-8333-333333333333
name: secret_read
status: test
logsource: {product: kubernetes, service: audit}
detection:
    selection:
        objectRef.resource: secrets
        verb: get
    condition: selection
level: low
"""


def correlation(kind: str, rules: str, condition: str = "", timespan: str = "1m") -> str:
    return (
        BASE
        + f"""---
title: Correlated
id: 22222222-2222-4222-8222-222222222222
status: test
correlation:
    type: {kind}
    rules: [{rules}]
    group-by: [user.username]
    timespan: {timespan}
    {condition}
level: high
"""
    )


def source(text: str) -> SigmaMatches:
    ruleset, errors = load_texts([("rules.yml", text)])
    assert errors == []
    return SigmaMatches(ruleset)


def audit(second: float, user: str = "mallory", *, code: int = 403, resource: str = "pods",
          verb: str = "list", name: str = "x") -> dict[str, Any]:  # fmt: skip
    return {
        "event.id": f"{user}-{second}-{resource}-{name}",
        "event.dataset": "kubernetes.audit",
        "@timestamp": T0 + timedelta(seconds=second),
        "user.name": user,
        "kubernetes.audit.user.username": user,
        "kubernetes.audit.verb": verb,
        "kubernetes.audit.objectRef.resource": resource,
        "kubernetes.audit.objectRef.name": name,
        "kubernetes.audit.responseStatus.code": code,
    }


def fired(matches: SigmaMatches, *batches: list[dict[str, Any]]) -> list[tuple[str, int]]:
    """(rule title, events in the window) for every alert raised, batch by batch."""
    return [(info.title, len(events)) for batch in batches for info, events in matches(batch)]


def test_event_count_fires_when_the_window_holds_enough() -> None:
    matches = source(correlation("event_count", "forbidden", "condition: {gte: 3}"))
    assert fired(matches, [audit(0), audit(10)]) == []
    assert fired(matches, [audit(20)]) == [("Correlated", 3)]


def test_event_count_ignores_matches_outside_the_timespan_and_other_groups() -> None:
    matches = source(correlation("event_count", "forbidden", "condition: {gte: 3}"))
    events = [audit(0), audit(61), audit(122), audit(130, "eve"), audit(131, "eve")]
    assert fired(matches, events) == []


def test_value_count_counts_distinct_values() -> None:
    text = correlation("value_count", "secret_read", "condition: {gte: 3, field: objectRef.name}")
    matches = source(text)
    reads = [audit(n, code=200, resource="secrets", verb="get", name=f"s{n % 2}") for n in range(4)]
    assert fired(matches, reads) == []
    assert fired(matches, [audit(5, code=200, resource="secrets", verb="get", name="s9")]) == [
        ("Correlated", 5)
    ]


def test_temporal_needs_every_rule_in_any_order() -> None:
    matches = source(correlation("temporal", "secret_read, forbidden"))
    assert fired(matches, [audit(0)]) == []
    read = audit(30, code=200, resource="secrets", verb="get")
    assert fired(matches, [read]) == [("Correlated", 2)]


def test_temporal_ordered_needs_the_order() -> None:
    matches = source(correlation("temporal_ordered", "forbidden, secret_read"))
    read = audit(0, code=200, resource="secrets", verb="get")
    assert fired(matches, [read, audit(10)]) == []
    # The window runs from the first forbidden request: both of them and the read.
    assert fired(matches, [audit(20), audit(40, code=200, resource="secrets", verb="get")]) == [
        ("Correlated", 3)
    ]


def test_late_events_beyond_the_allowed_lateness_are_not_counted() -> None:
    matches = source(correlation("event_count", "forbidden", "condition: {gte: 2}"))
    assert fired(matches, [audit(1000)]) == []
    assert fired(matches, [audit(0)]) == []  # 1000 s late: its window is gone


KINDS = ["event_count", "temporal_ordered", "temporal"]
SCENARIO = st.lists(
    st.tuples(
        st.integers(min_value=0, max_value=120),  # within the 120 s allowed lateness
        st.sampled_from(["mallory", "eve"]),
        st.sampled_from([("forbidden",), ("secret",)]),
    ),
    max_size=25,
)


@settings(max_examples=150, deadline=None)
@given(SCENARIO, st.randoms(use_true_random=False), st.sampled_from(KINDS))
def test_any_arrival_order_within_the_lateness_gives_the_same_alerts(
    scenario: list[tuple[int, str, tuple[str]]], shuffler: Any, kind: str
) -> None:
    condition = "condition: {gte: 3}" if kind == "event_count" else ""
    rules = "forbidden" if kind == "event_count" else "forbidden, secret_read"
    text = correlation(kind, rules, condition)
    events = [
        audit(second, user) if what == ("forbidden",)
        else audit(second, user, code=200, resource="secrets", verb="get")
        for second, user, what in scenario
    ]  # fmt: skip
    ordered = sorted(events, key=lambda e: e["@timestamp"])
    shuffled = list(events)
    shuffler.shuffle(shuffled)  # no event is more than the allowed lateness behind the newest

    def users(batch_events: list[dict[str, Any]]) -> set[str]:
        matches = source(text)
        return {
            events_[-1]["user.name"]
            for info, events_ in matches(batch_events)
            if info.title == "Correlated"
        }

    assert users(ordered) == users(shuffled)


def test_state_stays_bounded() -> None:
    matches = source(correlation("event_count", "forbidden", "condition: {gte: 1000000}"))
    for n in range(0, 20_000, 1000):
        list(matches([audit(n + i / 10, f"user-{i}") for i in range(1000)]))
    # Only the last timespan + lateness of matches is kept, whatever has gone through.
    assert matches.correlator.state_size() <= 1000 * 2
