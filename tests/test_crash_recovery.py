"""Kill the server while a client is sending: after a restart and the client's retries,
everything that was acknowledged is stored, and everything sent is eventually acknowledged."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import httpx
import orjson

from .fixtures import audit_event
from .server_process import make_server

BATCHES = 120
PER_BATCH = 40


def audit_ids(batch: int) -> list[str]:
    return [f"crash-{batch:04d}-{n:03d}" for n in range(PER_BATCH)]


class RetryingSender(threading.Thread):
    """What collectors do: resend a batch until it is acknowledged with a 2xx."""

    def __init__(self, url: str, token: str) -> None:
        super().__init__(daemon=True)
        self.url, self.token = url, token
        self.acknowledged: list[int] = []
        self.failures = 0

    def run(self) -> None:
        headers = {"Authorization": f"Bearer {self.token}"}
        with httpx.Client(timeout=10) as client:
            for batch in range(BATCHES):
                body = b"\n".join(
                    orjson.dumps(audit_event(audit_id=i, name=f"pod-{batch}"))
                    for i in audit_ids(batch)
                )
                while True:
                    try:
                        answer = client.post(
                            f"{self.url}/ingest/k8s-audit", content=body, headers=headers
                        )
                        if answer.status_code == 200:
                            break
                    except httpx.TransportError:
                        pass
                    self.failures += 1
                    time.sleep(0.1)
                self.acknowledged.append(batch)


def test_nothing_acknowledged_is_lost_when_the_server_is_killed(tmp_path: Path) -> None:
    server = make_server(tmp_path)
    server.start()
    sender = RetryingSender(server.url, server.tokens["ingest"])
    sender.start()
    try:
        while len(sender.acknowledged) < BATCHES // 3:
            assert sender.is_alive()
            time.sleep(0.01)
        server.stop(kill=True)  # SIGKILL: no shutdown, no flush
        acknowledged_before_kill = list(sender.acknowledged)
        server.start()
        sender.join(timeout=240)
        assert not sender.is_alive()

        answer = httpx.post(
            f"{server.url}/api/v1/sql",
            json={"query": "SELECT DISTINCT doc->>'$.\"kubernetes.audit.auditID\"' FROM events"},
            headers=server.headers("analyst"),
            timeout=60,
        ).json()
        stored = {row[0] for row in answer["rows"]}
        for batch in acknowledged_before_kill:
            assert set(audit_ids(batch)) <= stored, f"acknowledged batch {batch} was lost"
        expected = {i for batch in range(BATCHES) for i in audit_ids(batch)}
        assert stored == expected
        assert sender.failures > 0  # the kill really interrupted the client
    finally:
        server.stop()
