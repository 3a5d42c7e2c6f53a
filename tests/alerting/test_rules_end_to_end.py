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
