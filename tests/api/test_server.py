"""The HTTP server, run as a real process on loopback and driven with a real HTTP client."""

from __future__ import annotations

import gzip
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest

from ..fixtures import audit_event, event_list
from ..server_process import RunningServer, make_server


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    running = make_server(tmp_path_factory.mktemp("data"), "--max-body-mb", "1")
    running.start()
    yield running
    running.stop()


def post(
    server: RunningServer, path: str, body: bytes, role: str = "ingest", **headers: str
) -> httpx.Response:
    return httpx.post(
        server.url + path, content=body, headers={**server.headers(role), **headers}, timeout=30
    )


def get(server: RunningServer, path: str, role: str = "analyst", **params: str) -> httpx.Response:
    return httpx.get(server.url + path, params=params, headers=server.headers(role), timeout=30)


def test_healthz_needs_no_token(server: RunningServer) -> None:
    assert httpx.get(server.url + "/healthz").json() == {"status": "ok"}


@pytest.mark.parametrize("path", ["/api/v1/events", "/metrics", "/api/v1/sources"])
def test_reading_needs_a_token(server: RunningServer, path: str) -> None:
    missing = httpx.get(server.url + path)
    assert missing.status_code == 401
    assert "keelwatch tokens create" in missing.json()["error"]
    wrong = httpx.get(server.url + path, headers={"Authorization": "Bearer kw_not-a-token"})
    assert wrong.status_code == 401


def test_roles_are_enforced(server: RunningServer) -> None:
    assert get(server, "/api/v1/events", role="ingest").status_code == 403
    body = orjson.dumps(event_list(audit_event()))
    assert post(server, "/ingest/k8s-audit", body, role="analyst").status_code == 403
    assert post(server, "/ingest/k8s-audit", body, role="admin").status_code == 200
    assert get(server, "/api/v1/events", role="admin").status_code == 200


def test_webhook_eventlist_is_searchable(server: RunningServer) -> None:
    create = audit_event(
        "create", "pods", name="probe-pod", audit_id="a1b2c3d4-0000-4000-8000-000000000001"
    )
    listing = audit_event("list", "pods", audit_id="a1b2c3d4-0000-4000-8000-000000000002")
    answer = post(server, "/ingest/k8s-audit", orjson.dumps(event_list(create, listing)))
    assert answer.status_code == 200, answer.text
    assert answer.json()["accepted"] == 2
    found = get(
        server,
        "/api/v1/events",
        q="kubernetes.audit.verb:create AND kubernetes.audit.objectRef.resource:pods "
        "AND kubernetes.audit.objectRef.name:probe-pod",
    ).json()
    assert found["total"] == 1
    assert found["events"][0]["event.id"] == create["auditID"]
    assert found["events"][0]["user.name"] == "alice@example.com"


def test_cli_search_goes_through_the_running_server(server: RunningServer) -> None:
    """The server owns the DuckDB file, so the CLI must use the API (found via server.json)."""
    post(
        server,
        "/ingest/k8s-audit",
        orjson.dumps(audit_event("delete", "secrets", name="cli-probe")),
    )
    env = {**os.environ, "KEELWATCH_TOKEN": server.tokens["analyst"]}
    done = subprocess.run(
        [sys.executable, "-m", "keelwatch", "search", "--data", str(server.data), "--json",
         "kubernetes.audit.verb:delete AND kubernetes.audit.objectRef.name:cli-probe"],
        capture_output=True, env=env, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr.decode()
    rows = [orjson.loads(line) for line in done.stdout.splitlines()]
    assert [row["orchestrator.resource.name"] for row in rows] == ["cli-probe"]


def test_gzip_body(server: RunningServer) -> None:
    body = gzip.compress(orjson.dumps(event_list(audit_event(name="zipped"))))
    answer = post(server, "/ingest/k8s-audit", body, **{"Content-Encoding": "gzip"})
    assert answer.status_code == 200 and answer.json()["accepted"] == 1


def test_body_over_the_limit_is_413(server: RunningServer) -> None:
    answer = post(server, "/ingest/auto", b"x" * (2 * 1024 * 1024))
    assert answer.status_code == 413


def test_decompression_bomb_is_413(server: RunningServer) -> None:
    bomb = gzip.compress(b" " * (200 * 1024 * 1024), compresslevel=9)
    assert len(bomb) < 1024 * 1024
    answer = post(server, "/ingest/k8s-audit", bomb, **{"Content-Encoding": "gzip"})
    assert answer.status_code == 413
    assert "decompressed" in answer.json()["error"]


def test_bad_records_are_dead_lettered_and_good_ones_kept(server: RunningServer) -> None:
    good = [orjson.dumps(audit_event(name=f"mixed-{i}")) for i in range(2)]
    body = b"\n".join([good[0], b'{"kind": "Event", broken', good[1], b'{"hello": "world"}'])
    answer = post(server, "/ingest/k8s-audit", body)
    assert answer.status_code == 200
    result = answer.json()
    assert (result["received"], result["accepted"], result["dead_lettered"]) == (4, 2, 2)
    reasons = " ".join(r["reason"] for r in result["dead_letter_reasons"])
    assert "invalid JSON" in reasons
    letters = get(server, "/api/v1/dead-letters").json()["dead_letters"]
    assert any('"hello"' in letter["raw"] for letter in letters)


def test_unknown_source_lists_known_ones(server: RunningServer) -> None:
    answer = post(server, "/ingest/no-such-thing", b"{}")
    assert answer.status_code == 400
    assert "k8s-audit" in answer.json()["error"]


def test_metrics_count_per_source(server: RunningServer) -> None:
    post(server, "/ingest/k8s-audit", orjson.dumps(audit_event(name="metered")))
    text = get(server, "/metrics").text
    assert 'keelwatch_records_received_total{protocol="http",source="k8s-audit"}' in text
    assert "keelwatch_ingest_queue_events 0" in text


def test_sql_is_read_only(server: RunningServer) -> None:
    query = {"query": "SELECT count(*) AS n FROM events"}
    answer = post(server, "/api/v1/sql", orjson.dumps(query), role="analyst")
    assert answer.status_code == 200 and answer.json()["columns"] == ["n"]
    refused = post(
        server, "/api/v1/sql", orjson.dumps({"query": "DELETE FROM events"}), role="analyst"
    )
    assert refused.status_code == 400


def test_refuses_to_start_without_tokens(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "keelwatch", "serve", "--data", str(tmp_path), "--port", "0"],
        capture_output=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode != 0
    assert b"keelwatch tokens create" in done.stderr


def test_acknowledged_data_survives_a_kill(tmp_path: Path) -> None:
    running = make_server(tmp_path)
    running.start()
    try:
        event = audit_event(name="durable", audit_id="d0d0d0d0-0000-4000-8000-00000000beef")
        assert post(running, "/ingest/k8s-audit", orjson.dumps(event)).status_code == 200
        running.stop(kill=True)
        running.start()
        found = get(running, "/api/v1/events", q="event.id:d0d0d0d0-0000-4000-8000-00000000beef")
        assert found.json()["total"] == 1
    finally:
        running.stop()
