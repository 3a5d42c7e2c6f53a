"""Sigma rules in the live stream (`serve --rules`), retro-hunting and `rules validate`."""

from __future__ import annotations

from pathlib import Path

import httpx
import orjson
from click.testing import CliRunner

from keelwatch.cli import main

from ..fixtures import audit_event
from ..server_process import make_server

RULES = Path(__file__).parent / "rules"
RULE_ID = "6a1c9d0e-4b8f-4e52-9a57-0f3d2c7b1e11"


def exec_event(pod: str, second: int) -> dict[str, object]:
    event = audit_event("create", "pods", name=pod, when=f"2026-11-01T10:00:{second:02d}.000000Z")
    event["objectRef"]["subresource"] = "exec"  # type: ignore[index]
    return event


def test_rules_raise_alerts_live_and_hunting_finds_the_same(tmp_path: Path) -> None:
    server = make_server(tmp_path, "--rules", str(RULES))
    server.start()
    try:
        events = [exec_event("web-1", 1), exec_event("web-1", 2), audit_event("get", "pods")]
        answer = httpx.post(
            f"{server.url}/ingest/k8s-audit",
            content=b"\n".join(orjson.dumps(e) for e in events),
            headers=server.headers("ingest"),
        )
        assert answer.json()["accepted"] == 3
        live = httpx.get(f"{server.url}/api/v1/alerts", headers=server.headers("analyst")).json()
        assert live["total"] == 1
        (alert,) = live["alerts"]
        assert (alert["rule_id"], alert["count"], alert["techniques"]) == (RULE_ID, 2, ["T1609"])
        assert alert["severity"] == "high" and alert["entity"]["user"] == "alice@example.com"
        assert "broken.yml:10" in server.log.read_text()  # the bad rule is reported, not fatal

        through_server = CliRunner().invoke(
            main,
            ["hunt", str(RULES / "exec_into_pod.yml"), "--since", "3650d", "--json",
             "--data", str(tmp_path), "--server", server.url, "--token", server.tokens["analyst"]],
        )  # fmt: skip
        assert through_server.exit_code == 0, through_server.output
        hunted = [orjson.loads(line) for line in through_server.stdout.splitlines()]
        assert [(h["rule_id"], h["count"]) for h in hunted] == [(RULE_ID, 2)]
        assert sorted(hunted[0]["event_ids"]) == sorted(alert["event_ids"])
    finally:
        server.stop()

    local = CliRunner().invoke(
        main, ["hunt", str(RULES), "--since", "3650d", "--json", "--data", str(tmp_path)]
    )
    assert local.exit_code == 0, local.output
    assert [orjson.loads(line)["count"] for line in local.stdout.splitlines()] == [2]
    assert "broken.yml" in local.stderr


def test_validate_reports_file_and_line_and_fails() -> None:
    result = CliRunner().invoke(main, ["rules", "validate", str(RULES)])
    assert result.exit_code == 1
    assert "broken.yml:10" in result.stderr and "nowhere" in result.stderr
    assert "1 rules loaded" in result.stdout
    good = CliRunner().invoke(main, ["rules", "validate", str(RULES / "exec_into_pod.yml")])
    assert good.exit_code == 0, good.output


def test_rules_test_runs_the_cases_and_fails_on_a_broken_rule(tmp_path: Path) -> None:
    rule = RULES / "exec_into_pod.yml"
    passing = CliRunner().invoke(main, ["rules", "test", str(rule), "-v"])
    assert passing.exit_code == 0, passing.output
    assert "2 of 2 cases passed" in passing.stdout
    broken = tmp_path / "exec_into_pod.yml"
    broken.write_text(rule.read_text().replace("subresource: exec", "subresource: attach"))
    (tmp_path / "exec_into_pod.tests.json").write_bytes(
        (RULES / "exec_into_pod.tests.json").read_bytes()
    )
    failing = CliRunner().invoke(main, ["rules", "test", str(tmp_path)])
    assert failing.exit_code == 1
    assert "FAIL" in failing.stdout and "exec into a pod" in failing.stdout


def test_the_rule_pack_correlates_a_burst_of_forbidden_requests_live(tmp_path: Path) -> None:
    pack = Path(__file__).parents[2] / "content" / "rules"
    server = make_server(tmp_path, "--rules", str(pack))
    server.start()
    try:
        probes = [
            audit_event(
                "list", resource, user="system:serviceaccount:shop:web", code=403,
                when=f"2026-11-01T10:{n // 6:02d}:{n % 6 * 10:02d}.000000Z",
            )
            for n, resource in enumerate(["secrets", "nodes", "clusterroles", "pods"] * 6)
        ]  # fmt: skip
        answer = httpx.post(
            f"{server.url}/ingest/k8s-audit",
            content=b"\n".join(orjson.dumps(p) for p in probes),
            headers=server.headers("ingest"),
        )
        assert answer.json()["accepted"] == 24
        alerts = httpx.get(
            f"{server.url}/api/v1/alerts", params={"rule": BURST_ID},
            headers=server.headers("analyst"),
        ).json()  # fmt: skip
        assert alerts["total"] == 1
        (alert,) = alerts["alerts"]
        assert (
            alert["origin"] == "correlation"
            and alert["entity"]["user"] == probes[0]["user"]["username"]
        )  # type: ignore[index]
        assert len(alert["event_ids"]) >= 20
    finally:
        server.stop()


BURST_ID = "425afdf0-1542-4259-8a40-47054e36d3fa"


def test_importing_files_raises_the_same_alerts(tmp_path: Path) -> None:
    events = tmp_path / "audit.ndjson"
    events.write_bytes(
        b"\n".join(orjson.dumps(e) for e in (exec_event("web-1", 1), exec_event("web-1", 2)))
    )
    data = tmp_path / "data"
    result = CliRunner().invoke(
        main, ["ingest", str(events), "--source", "k8s-audit", "--rules", str(RULES),
               "--data", str(data)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    listed = CliRunner().invoke(main, ["alerts", "--json", "--data", str(data)])
    alerts = [orjson.loads(line) for line in listed.stdout.splitlines()]
    assert [(a["rule_id"], a["count"]) for a in alerts] == [(RULE_ID, 2)]
