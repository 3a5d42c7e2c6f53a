"""Overload: a full write queue answers 503 with Retry-After, and nothing is dropped silently.

The server runs in-process on loopback (uvicorn) over a real DuckDB store wrapped so the test
can hold commits back: that is the only way to fill the queue deterministically.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest
import uvicorn

from keelwatch.api.app import ServerSettings, create_app
from keelwatch.auth import TokenStore
from keelwatch.parsers.base import Batch
from keelwatch.store.duckdb_store import DuckDBStore

from ..fixtures import audit_event
from ..server_process import free_port


class GatedStore(DuckDBStore):
    """A real store whose commits wait until the test opens the gate."""

    def __init__(self, data: Path) -> None:
        super().__init__(data)
        self.gate = threading.Event()
        self.entered = threading.Event()

    def append(self, batch: Batch) -> None:
        self.entered.set()
        self.gate.wait(timeout=60)
        super().append(batch)


@pytest.fixture
def gated(tmp_path: Path) -> Iterator[tuple[str, GatedStore]]:
    store = GatedStore(tmp_path)
    app = create_app(
        store, TokenStore(tmp_path), ServerSettings(max_queue_events=1, auth_required=False)
    )
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            httpx.get(url + "/healthz", timeout=1)
            break
        except httpx.TransportError:
            threading.Event().wait(0.05)
    yield url, store
    store.gate.set()
    server.should_exit = True
    thread.join(timeout=30)
    store.close()


def test_full_queue_answers_503_then_recovers(gated: tuple[str, GatedStore]) -> None:
    url, store = gated
    body = orjson.dumps(audit_event(name="first"))

    async def scenario() -> tuple[httpx.Response, httpx.Response]:
        async with httpx.AsyncClient(base_url=url, timeout=60) as client:
            first = asyncio.create_task(client.post("/ingest/k8s-audit", content=body))
            while not store.entered.is_set():
                await asyncio.sleep(0.01)
            second = await client.post("/ingest/k8s-audit", content=body)
            store.gate.set()
            return await first, second

    first, second = asyncio.run(scenario())
    assert second.status_code == 503
    assert second.headers["Retry-After"] == "1"
    assert first.status_code == 200 and first.json()["accepted"] == 1
    metrics = httpx.get(url + "/metrics").text
    assert 'keelwatch_requests_rejected_total{protocol="http",reason="overloaded"} 1' in metrics
