"""`keelwatch simulate --evaluate` against a real server, with and without a rule pack.

What must be detected is derived, not written down: the records Keelwatch's runtime alerting
(Falco alerts, Tetragon policy events) turns into alerts on its own. With no rules loaded, every
other scenario must be reported as missed; with the rule pack, whatever it catches is reported,
and every alert credited to a scenario really holds one of its events.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from click.testing import CliRunner

from keelwatch.alerting.runtime import runtime_alerts
from keelwatch.cli import main
from keelwatch.model.alert import MAX_EVENT_IDS
from keelwatch.pipeline.normalize import normalize
from keelwatch.simulate.writers import FILE_NAMES

from ..server_process import RunningServer, make_server

RULES = Path(__file__).resolve().parents[2] / "content" / "rules"
RUN = ["--duration", "3m", "--rate", "15", "--seed", "5", "--nodes", "2", "--workloads", "6"]


def runtime_alert_ids(out: Path) -> set[str]:
    """Event ids of the generated records that runtime alerting alone raises alerts for."""
    ids: set[str] = set()
    for source, name in FILE_NAMES.items():
        records = [orjson.loads(line) for line in (out / name).read_bytes().splitlines()]
        events = normalize(records, source, datetime.now(UTC)).events
        for _, matched in runtime_alerts(events):
            ids.update(str(event["event.id"]) for event in matched)
    return ids


def simulate_and_evaluate(server: RunningServer, out: Path) -> dict[str, Any]:
    result = CliRunner().invoke(
        main,
        ["simulate", *RUN, "--server", server.url, "--token", server.tokens["admin"],
         "--send-rate", "0", "--out", str(out), "--evaluate", "--json"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    report: dict[str, Any] = orjson.loads(result.stdout)
    return report


def check_consistent(report: dict[str, Any], labels: dict[str, Any], alerts: list[Any]) -> None:
    by_id = {alert["id"]: alert for alert in alerts}
    for scenario, label in zip(report["scenarios"], labels["scenarios"], strict=True):
        assert scenario["name"] == label["name"]
        assert scenario["stored"] == scenario["records"]  # everything arrived
        ids = {record["event_id"] for record in label["records"]}
        for credited in scenario["alerts"]:
            held = by_id[credited["id"]]["event_ids"]  # or capped: covered by entity and window
            assert ids & set(held) or len(held) >= MAX_EVENT_IDS, (scenario["name"], credited)
    summary = report["summary"]
    assert summary["alerts"] == len(alerts) == (
        summary["alerts_on_attacks"] + summary["alerts_on_lookalikes"]
        + summary["alerts_on_background"]
    )  # fmt: skip


def all_alerts(server: RunningServer) -> list[Any]:
    answer = httpx.get(f"{server.url}/api/v1/alerts", params={"limit": 10000},
                       headers=server.headers("analyst"), timeout=60)  # fmt: skip
    answer.raise_for_status()
    alerts: list[Any] = answer.json()["alerts"]
    return alerts


def test_runtime_scenarios_are_detected_and_the_rest_missed_without_rules(tmp_path: Path) -> None:
    server = make_server(tmp_path / "data")
    server.start()
    try:
        report = simulate_and_evaluate(server, tmp_path / "out")
        alerts = all_alerts(server)
    finally:
        server.stop()
    labels = orjson.loads((tmp_path / "out" / "labels.json").read_bytes())
    runtime = runtime_alert_ids(tmp_path / "out")
    expected = {
        label["name"]: any(r["event_id"] in runtime for r in label["records"])
        for label in labels["scenarios"]
    }
    assert any(expected.values()) and not all(expected.values())
    assert {s["name"]: s["detected"] for s in report["scenarios"]} == expected
    falco = {
        s["name"] for s in labels["scenarios"] if any(r["source"] == "falco" for r in s["records"])
    }
    for scenario in report["scenarios"]:
        if scenario["name"] in falco:
            assert any(a["rule_id"].startswith("falco:") for a in scenario["alerts"])
    check_consistent(report, labels, alerts)
    assert report["summary"]["lookalikes_alerted"] >= 1  # the admin's shell is a Falco alert

    # The same evaluation from the data directory once the server is gone.
    local = CliRunner().invoke(
        main,
        ["simulate", "--evaluate", "--labels", str(tmp_path / "out" / "labels.json"),
         "--data", str(tmp_path / "data"), "--json"],
    )  # fmt: skip
    assert local.exit_code == 0, local.output
    assert orjson.loads(local.stdout) == report


def test_with_the_rule_pack_detection_is_whatever_the_rules_raise(tmp_path: Path) -> None:
    if not RULES.is_dir():
        pytest.skip(f"no rule pack at {RULES}")
    server = make_server(tmp_path / "data", "--rules", str(RULES))
    server.start()
    try:
        report = simulate_and_evaluate(server, tmp_path / "out")
        alerts = all_alerts(server)
    finally:
        server.stop()
    labels = orjson.loads((tmp_path / "out" / "labels.json").read_bytes())
    runtime = runtime_alert_ids(tmp_path / "out")
    for scenario, label in zip(report["scenarios"], labels["scenarios"], strict=True):
        if any(r["event_id"] in runtime for r in label["records"]):
            assert scenario["detected"], scenario["name"]
    check_consistent(report, labels, alerts)
    # Rule alerts count where they hold a scenario's event (or, capped at the id limit, cover it).
    by_id = {alert["id"]: alert for alert in alerts}
    for scenario, label in zip(report["scenarios"], labels["scenarios"], strict=True):
        ids = {record["event_id"] for record in label["records"]}
        holding = any(ids & set(alert["event_ids"]) for alert in alerts)
        assert scenario["detected"] or not holding, scenario["name"]
        if scenario["detected"] and not holding:
            assert all(
                len(by_id[a["id"]]["event_ids"]) >= MAX_EVENT_IDS for a in scenario["alerts"]
            )
    rule_alerts = [a for a in alerts if a["origin"] not in ("falco", "tetragon")]
    assert rule_alerts, "the rule pack raised nothing on a run with 18 attacks"
