"""Overload on purpose: an in-process server over a real DuckDB store whose commits wait.

Holding commits back is the only deterministic way to fill the write queue: a first request
reaches the store and waits at the gate, the next finds the queue full and must get the
protocol's back-pressure answer; once the gate opens, both the held and a retried request are
stored.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar

import httpx
import pytest
import uvicorn

from keelwatch.api.app import Api, ServerSettings, create_app
from keelwatch.auth import TokenStore
from keelwatch.parsers.base import Batch
from keelwatch.store.duckdb_store import DuckDBStore

from .server_process import free_port

WAIT_SECONDS = 60.0


class GatedStore(DuckDBStore):
    """A real store whose commits wait while the gate is closed."""

    def __init__(
        self, data: Path, *, gate_open: bool = False, wait_seconds: float = WAIT_SECONDS
    ) -> None:
        super().__init__(data)
        self.wait_seconds = wait_seconds
        self.gate = threading.Event()
        if gate_open:
            self.gate.set()
        self.entered = threading.Event()  # a commit has reached the gate

    def append(self, batch: Batch) -> None:
        self.hold()
        super().append(batch)

    def hold(self) -> None:
        """Where a commit waits before it is written."""
        self.entered.set()
        self.gate.wait(timeout=self.wait_seconds)

    def open_all(self) -> None:
        self.gate.set()


StoreT = TypeVar("StoreT", bound=GatedStore)


@dataclass
class InProcessServer(Generic[StoreT]):
    url: str
    store: StoreT
    api: Api

    def rejected(self, protocol: str, reason: str) -> int:
        return self.api.metrics.value(
            "keelwatch_requests_rejected_total", protocol=protocol, reason=reason
        )


@contextlib.contextmanager
def in_process_server(
    data: Path, store: StoreT, settings: ServerSettings
) -> Iterator[InProcessServer[StoreT]]:
    """``store`` served with ``settings`` by uvicorn in a thread, on a loopback port."""
    app = create_app(store, TokenStore(data), settings)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):
        with contextlib.suppress(httpx.TransportError):
            httpx.get(url + "/healthz", timeout=1)
            break
        time.sleep(0.05)
    try:
        yield InProcessServer(url, store, app.state.api)
    finally:
        store.open_all()
        server.should_exit = True
        thread.join(timeout=60)
        store.close()


@pytest.fixture
def gated_server(tmp_path: Path) -> Iterator[InProcessServer[GatedStore]]:
    """A server without auth and a write queue of one event, its store's gate closed."""
    settings = ServerSettings(max_queue_events=1, auth_required=False)
    with in_process_server(tmp_path, GatedStore(tmp_path), settings) as server:
        yield server


async def until(condition: Callable[[], bool], timeout_seconds: float = WAIT_SECONDS) -> None:
    deadline = time.monotonic() + timeout_seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached")
        await asyncio.sleep(0.01)


@dataclass
class OverloadRound:
    held: httpx.Response  # waited at the gate, answered once it opened
    refused: httpx.Response  # sent while the queue was full
    retried: httpx.Response  # the refused request sent again after the gate opened


def overload_round(
    server: InProcessServer[GatedStore],
    path: str,
    body: bytes,
    headers: dict[str, str] | None = None,
) -> OverloadRound:
    """POST ``body`` three times: held at the gate, refused while it is held, then retried."""

    async def scenario() -> OverloadRound:
        async with httpx.AsyncClient(
            base_url=server.url, timeout=WAIT_SECONDS, headers=headers
        ) as client:
            held = asyncio.create_task(client.post(path, content=body))
            await until(server.store.entered.is_set)
            refused = await client.post(path, content=body)
            server.store.gate.set()
            return OverloadRound(await held, refused, await client.post(path, content=body))

    return asyncio.run(scenario())
