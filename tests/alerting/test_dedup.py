"""Deduplication of matches into alerts, and the runtime tools' own alerts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from keelwatch.alerting.dedup import Deduplicator
from keelwatch.alerting.raiser import AlertRaiser
from keelwatch.alerting.runtime import runtime_alerts
from keelwatch.model.alert import MAX_EVENT_IDS, Entity, RuleInfo
from keelwatch.parsers.base import Batch

RULE = RuleInfo(id="r1", title="Exec into pod", level="high", severity=3, techniques=("T1609",))
T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
POD = Entity(cluster="c1", namespace="prod", pod="web-1", user="alice")


def test_matches_within_the_window_merge_into_one_alert() -> None:
    dedup = Deduplicator(window_seconds=60)
    first = dedup.observe(RULE, POD, T0, ["e1"])
    second = dedup.observe(RULE, POD, T0 + timedelta(seconds=59), ["e2"])
    assert first is second
    assert (second.count, second.event_ids) == (2, ["e1", "e2"])
    assert (second.first_seen, second.last_seen) == (T0, T0 + timedelta(seconds=59))


def test_a_match_after_the_window_opens_a_new_alert() -> None:
    dedup = Deduplicator(window_seconds=60)
    first = dedup.observe(RULE, POD, T0, ["e1"])
    later = dedup.observe(RULE, POD, T0 + timedelta(seconds=61), ["e2"])
    assert later is not first and later.id != first.id and later.count == 1


def test_other_entities_and_rules_get_their_own_alerts() -> None:
    dedup = Deduplicator()
    a = dedup.observe(RULE, POD, T0, ["e1"])
    b = dedup.observe(RULE, Entity(cluster="c1", namespace="prod", pod="web-2"), T0, ["e2"])
    other = RuleInfo(id="r2", title="other", level="low", severity=1)
    c = dedup.observe(other, POD, T0, ["e3"])
    assert len({a.id, b.id, c.id}) == 3


def test_late_events_within_the_window_join_and_move_first_seen() -> None:
    dedup = Deduplicator(window_seconds=60)
    alert = dedup.observe(RULE, POD, T0, ["e1"])
    dedup.observe(RULE, POD, T0 - timedelta(seconds=30), ["e0"])
    assert alert.first_seen == T0 - timedelta(seconds=30) and alert.count == 2


def test_event_ids_are_capped_and_distinct() -> None:
    dedup = Deduplicator()
    for n in range(MAX_EVENT_IDS + 50):
        alert = dedup.observe(RULE, POD, T0, [f"e{n % (MAX_EVENT_IDS + 20)}"])
    assert alert.count == MAX_EVENT_IDS + 50
    assert len(alert.event_ids) == MAX_EVENT_IDS == len(set(alert.event_ids))


def test_open_alerts_are_bounded() -> None:
    dedup = Deduplicator(max_open=10)
    for n in range(100):
        dedup.observe(RULE, Entity(pod=f"p{n}"), T0, [f"e{n}"])
    assert len(dedup) == 10


def falco_event(rule: str, pod: str, event_id: str) -> dict[str, object]:
    return {
        "event.id": event_id,
        "event.kind": "alert",
        "event.dataset": "falco.alerts",
        "event.severity": 2,
        "rule.name": rule,
        "message": "A shell was spawned",
        "threat.technique.id": ["T1059"],
        "kubernetes.namespace": "prod",
        "kubernetes.pod.name": pod,
        "@timestamp": T0,
    }


def test_runtime_alerts_become_alerts_deduplicated_per_pod() -> None:
    raiser = AlertRaiser([runtime_alerts], Deduplicator())
    batch = Batch(
        events=[
            falco_event("Terminal shell in container", "web-1", "a"),
            falco_event("Terminal shell in container", "web-1", "b"),
            falco_event("Terminal shell in container", "web-2", "c"),
            {"event.id": "d", "event.kind": "event", "event.dataset": "kubernetes.audit"},
        ]
    )
    alerts = raiser.process(batch)
    assert batch.alerts == alerts
    by_pod = {a.entity.pod: a for a in alerts}
    assert by_pod["web-1"].count == 2 and by_pod["web-1"].event_ids == ["a", "b"]
    assert by_pod["web-2"].rule.id == "falco:Terminal shell in container"
    assert by_pod["web-2"].rule.techniques == ("T1059",)
    assert by_pod["web-2"].rule.level == "medium"


def test_tetragon_policy_events_are_alerts_and_enforcement_is_high() -> None:
    event = {
        "event.id": "t1",
        "event.dataset": "tetragon.events",
        "event.action": "process_kprobe",
        "tetragon.policy_name": "block-write-etc",
        "tetragon.action": "KPROBE_ACTION_SIGKILL",
        "@timestamp": T0,
    }
    ((rule, matched),) = list(runtime_alerts([event]))
    assert rule.id == "tetragon:block-write-etc" and rule.severity == 3 and matched == (event,)
    observing = {**event, "tetragon.action": "KPROBE_ACTION_POST"}
    assert list(runtime_alerts([observing])) == []  # observation is for rules, not an alert


def test_a_failing_source_does_not_stop_the_others() -> None:
    def broken(events: object) -> list[tuple[RuleInfo, list[dict[str, object]]]]:
        raise RuntimeError("bug")

    raiser = AlertRaiser([broken, runtime_alerts], Deduplicator())
    batch = Batch(events=[falco_event("x", "p", "e")])
    assert len(raiser.process(batch)) == 1 and raiser.failures == 1
