"""Kill the server while a client is sending: after a restart and the client's retries,
everything that was acknowledged is stored, and everything sent is eventually acknowledged."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import msgpack
import orjson
import pytest

from .fixtures import audit_event
from .server_process import RunningServer, free_port, make_server

BATCHES = 120
PER_BATCH = 40


def audit_ids(batch: int) -> list[str]:
    return [f"crash-{batch:04d}-{n:03d}" for n in range(PER_BATCH)]


def events(batch: int) -> list[dict[str, object]]:
    return [audit_event(audit_id=i, name=f"pod-{batch}") for i in audit_ids(batch)]


def post_native(server: RunningServer, batch: int) -> bool:
    """One try over HTTP; True once the server answered 200."""
    body = b"\n".join(orjson.dumps(event) for event in events(batch))
    answer = httpx.post(
        f"{server.url}/ingest/k8s-audit", content=body, headers=server.headers("ingest"), timeout=10
    )
    return answer.status_code == 200


def send_forward(server: RunningServer, batch: int) -> bool:
    """One try in Fluent forward's Forward mode with a chunk id: True once the ack came back."""
    port = int(server.args[server.args.index("--forward-port") + 1])
    chunk = f"chunk-{batch}"
    frame = ["k8s.audit", [[1_700_000_000, e] for e in events(batch)], {"chunk": chunk}]
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(msgpack.packb(frame))
        unpacker = msgpack.Unpacker()
        while data := sock.recv(65536):
            unpacker.feed(data)
            for answer in unpacker:
                if isinstance(answer, dict) and answer.get("ack") == chunk:
                    return True
    return False


class RetryingSender(threading.Thread):
    """What collectors do: resend a batch until it is acknowledged."""

    def __init__(self, server: RunningServer, send: Callable[[RunningServer, int], bool]) -> None:
        super().__init__(daemon=True)
        self.server, self.send = server, send
        self.acknowledged: list[int] = []
        self.failures = 0

    def run(self) -> None:
        for batch in range(BATCHES):
            while True:
                try:
                    if self.send(self.server, batch):
                        break
                except (OSError, httpx.TransportError):  # the server is down
                    pass
                self.failures += 1
                time.sleep(0.1)
            self.acknowledged.append(batch)


@pytest.mark.parametrize("protocol", ["native", "forward"])
def test_nothing_acknowledged_is_lost_when_the_server_is_killed(
    tmp_path: Path, protocol: str
) -> None:
    if protocol == "forward":
        server = make_server(tmp_path, "--forward-port", str(free_port()), "--insecure-no-auth")
        sender = RetryingSender(server, send_forward)
    else:
        server = make_server(tmp_path)
        sender = RetryingSender(server, post_native)
    server.start()
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
