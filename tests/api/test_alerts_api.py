"""Runtime alerts end to end: ingest Falco alerts, read them from /api/v1/alerts and the CLI."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import httpx
import orjson
from click.testing import CliRunner

from keelwatch.cli import main

from ..server_process import make_server

GOLDEN = Path(__file__).parent.parent / "parsers" / "golden" / "falco" / "falcosidekick.input.json"


RULE = "Drop and execute new binary in container"


def falco_alert(pod: str, second: int) -> dict[str, Any]:
    alert = copy.deepcopy(orjson.loads(GOLDEN.read_bytes()))
    alert["time"] = f"2026-11-01T10:00:{second:02d}Z"
    alert["uuid"] = f"uuid-{pod}-{second}"
    alert["output_fields"]["k8s.pod.name"] = pod
    alert["output_fields"]["k8s.ns.name"] = "prod"
    return alert


def test_falco_alerts_are_stored_deduplicated_and_survive_a_restart(tmp_path: Path) -> None:
    server = make_server(tmp_path)
    server.start()
    try:
        body = b"\n".join(
            orjson.dumps(a)
            for a in (falco_alert("web-1", 1), falco_alert("web-1", 2), falco_alert("web-2", 3))
        )
        ingest = httpx.post(
            f"{server.url}/ingest/falco", content=body, headers=server.headers("ingest")
        )
        assert ingest.status_code == 200 and ingest.json()["accepted"] == 3

        answer = httpx.get(
            f"{server.url}/api/v1/alerts", params={"severity": "high"},
            headers=server.headers("analyst"),
        ).json()  # fmt: skip
        assert answer["total"] == 2
        by_pod = {a["entity"]["pod"]: a for a in answer["alerts"]}
        assert by_pod["web-1"]["count"] == 2 and len(by_pod["web-1"]["event_ids"]) == 2
        assert by_pod["web-2"]["rule_title"] == RULE
        assert by_pod["web-2"]["severity"] == "critical"
        events = httpx.get(
            f"{server.url}/api/v1/events",
            params={"q": f'event.id:"{by_pod["web-2"]["event_ids"][0]}"'},
            headers=server.headers("analyst"),
        ).json()
        assert events["total"] == 1

        # The CLI reads through the server while it owns the data directory.
        listed = CliRunner().invoke(
            main,
            ["alerts", "--data", str(tmp_path), "--server", server.url,
             "--token", server.tokens["analyst"], "--json", "--rule", f"falco:{RULE}"],
        )  # fmt: skip
        assert listed.exit_code == 0, listed.output
        assert len(listed.output.strip().splitlines()) == 2

        # After a restart, a match within the window joins the alert it belongs to.
        server.stop(kill=True)
        server.start()
        httpx.post(
            f"{server.url}/ingest/falco",
            content=orjson.dumps(falco_alert("web-2", 30)),
            headers=server.headers("ingest"),
        ).raise_for_status()
        after = httpx.get(f"{server.url}/api/v1/alerts", headers=server.headers("analyst")).json()
        assert after["total"] == 2
        assert {a["entity"]["pod"]: a["count"] for a in after["alerts"]} == {"web-1": 2, "web-2": 2}
    finally:
        server.stop()


def test_unknown_severity_is_a_clear_400(tmp_path: Path) -> None:
    server = make_server(tmp_path)
    server.start()
    try:
        answer = httpx.get(
            f"{server.url}/api/v1/alerts", params={"severity": "dire"},
            headers=server.headers("analyst"),
        )  # fmt: skip
        assert answer.status_code == 400 and "unknown severity" in answer.json()["error"]
    finally:
        server.stop()
