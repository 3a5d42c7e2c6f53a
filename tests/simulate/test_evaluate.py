"""Scoring alerts against labels: by event id, by entity and window when ids were capped."""

from __future__ import annotations

from typing import Any

from keelwatch.model.alert import MAX_EVENT_IDS
from keelwatch.simulate.evaluate import evaluate

LABELS: dict[str, Any] = {
    "start": "2025-06-02T09:00:00.000000Z",
    "end": "2025-06-02T09:10:00.000000Z",
    "scenarios": [
        {"name": "exec", "kind": "attack", "techniques": ["T1609"], "layers": ["audit"],
         "records": [{"source": "k8s-audit", "time": "2025-06-02T09:01:00.000000Z",
                      "event_id": "a-1", "entity": {"namespace": "shop", "pod": "web-1"}}]},
        {"name": "miner", "kind": "attack", "techniques": ["T1496"], "layers": ["runtime"],
         "records": [{"source": "tetragon", "time": "2025-06-02T09:05:00.000000Z",
                      "event_id": "m-1",
                      "entity": {"namespace": "kube-system", "pod": "agent-x"}}]},
        {"name": "quiet", "kind": "attack", "techniques": ["T1572"], "layers": ["audit"],
         "records": [{"source": "k8s-audit", "time": "2025-06-02T09:06:00.000000Z",
                      "event_id": "q-1", "entity": {"user": "bob@example.com"}}]},
        {"name": "backup", "kind": "benign", "techniques": ["T1552.007"], "layers": ["audit"],
         "records": [{"source": "k8s-audit", "time": "2025-06-02T09:02:00.000000Z",
                      "event_id": "b-1", "entity": {"namespace": "shop", "user": "velero"}}]},
    ],
}  # fmt: skip


def alert(ids: list[str], **entity: str) -> dict[str, Any]:
    return {
        "id": "-".join(ids)[:20] or "none", "rule_id": "r", "rule_title": "R", "event_ids": ids,
        "entity": {"cluster": None, "namespace": None, "pod": None, "user": None, "node": None,
                   **entity},
        "first_seen": "2025-06-02T09:04:00Z", "last_seen": "2025-06-02T09:08:00Z",
    }  # fmt: skip


def test_alerts_are_attributed_by_id_by_capped_entity_window_or_to_background() -> None:
    capped = alert([f"other-{n}" for n in range(MAX_EVENT_IDS)], namespace="kube-system",
                   pod="agent-x")  # fmt: skip
    uncapped_same_entity = alert(["other"], namespace="kube-system", pod="agent-x")
    result = evaluate(
        LABELS,
        [alert(["a-1", "x"]), capped, alert(["b-1"]), alert(["zzz"]), uncapped_same_entity],
        stored={"a-1", "m-1", "b-1"},
    )
    by_name = {item.name: item for item in result.scenarios}
    assert by_name["exec"].detected and by_name["miner"].detected
    assert not by_name["quiet"].detected and by_name["backup"].detected
    assert [a["id"] for a in by_name["miner"].alerts] == [capped["id"]]
    assert by_name["quiet"].stored == 0 and by_name["exec"].stored == 1
    summary = result.summary()
    assert summary["attacks_detected"] == 2 and summary["attacks"] == 3
    assert (summary["alerts_on_attacks"], summary["alerts_on_lookalikes"]) == (2, 1)
    assert summary["alerts_on_background"] == 2 and summary["alerts"] == 5
    assert summary["alert_precision"] == 2 / 5


def test_a_capped_alert_outside_the_window_does_not_cover_the_record() -> None:
    late = alert([f"o-{n}" for n in range(MAX_EVENT_IDS)], user="bob@example.com")
    late["first_seen"] = "2025-06-02T09:07:00Z"
    result = evaluate(LABELS, [late])
    assert not any(item.detected for item in result.scenarios)
    assert result.summary()["alerts_on_background"] == 1
    assert result.scenarios[0].stored is None
