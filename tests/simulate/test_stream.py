"""Streaming a simulation into a real server: every record stored, once, through each protocol."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from keelwatch.simulate.generate import Options, Simulation, simulate
from keelwatch.simulate.stream import StreamResult, Target, stream

from ..server_process import RunningServer, free_port, make_server

SHARED_KEY = "simulate-forward-key"
RUN = Options(seed=11, duration_seconds=60, rate=15, nodes=2, namespaces=2, workloads=5, users=4)


@pytest.fixture(scope="module")
def simulation() -> Simulation:
    return simulate(RUN)


def sql(server: RunningServer, query: str) -> list[list[object]]:
    answer = httpx.post(f"{server.url}/api/v1/sql", json={"query": query},
                        headers=server.headers("analyst"), timeout=60)  # fmt: skip
    answer.raise_for_status()
    rows: list[list[object]] = answer.json()["rows"]
    return rows


@pytest.mark.parametrize("protocol", ["native", "elasticsearch", "forward"])
def test_every_generated_record_is_stored_once(
    tmp_path: Path, simulation: Simulation, protocol: str
) -> None:
    port = free_port()
    server = make_server(tmp_path, "--forward-port", str(port), "--forward-shared-key", SHARED_KEY)
    server.start()
    try:
        target = Target(server.url, protocol, server.tokens["ingest"], port, SHARED_KEY)
        result = stream(simulation.records, target, rate=0, batch_size=150)
        total = len(simulation.records)
        assert (result.sent, result.accepted, result.rejected) == (total, total, {})
        assert sql(server, "SELECT count(*) FROM events") == [[total]]
        assert sql(server, "SELECT count(*) FROM dead_letters") == [[0]]
        per_dataset = dict(sql(server, "SELECT dataset, count(*) FROM events GROUP BY dataset"))
        assert sum(per_dataset.values()) == total and len(per_dataset) == 5
        labelled = {r["event_id"] for s in simulation.labels["scenarios"] for r in s["records"]}
        ids = ", ".join(f"'{event_id}'" for event_id in sorted(labelled))
        found = sql(
            server, f"SELECT count(DISTINCT event_id) FROM events WHERE event_id IN ({ids})"
        )
        assert found == [[len(labelled)]]
    finally:
        server.stop(kill=True)


def test_pacing_spaces_batches_by_the_rate(tmp_path: Path, simulation: Simulation) -> None:
    server = make_server(tmp_path)
    server.start()
    now = [0.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:  # a clock that moves only when the streamer waits
        slept.append(seconds)
        now[0] += seconds

    try:
        records = simulation.records[:400]
        target = Target(server.url, "native", server.tokens["ingest"])
        result: StreamResult = stream(
            records, target, rate=200, batch_size=100, clock=lambda: now[0], sleep=sleep
        )
    finally:
        server.stop(kill=True)
    # Batches are due at 0, 0.5, 1.0 and 1.5 s; the fourth batch's own share ends at 2 s.
    assert slept == pytest.approx([0.5, 0.5, 0.5, 0.5])
    assert result.seconds == pytest.approx(2.0) and result.sent == 400
    assert result.rate == pytest.approx(200)


def test_forward_refuses_a_wrong_shared_key(tmp_path: Path, simulation: Simulation) -> None:
    port = free_port()
    server = make_server(tmp_path, "--forward-port", str(port), "--forward-shared-key", SHARED_KEY)
    server.start()
    try:
        target = Target(server.url, "forward", None, port, "not-the-key")
        with pytest.raises(Exception, match="handshake refused"):
            stream(simulation.records[:10], target, rate=0)
    finally:
        server.stop(kill=True)
