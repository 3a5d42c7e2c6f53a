"""Start a real `keelwatch serve` process on loopback for integration tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from keelwatch.auth import TokenStore


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class RunningServer:
    data: Path
    port: int
    tokens: dict[str, str]
    args: tuple[str, ...] = ()
    process: subprocess.Popen[bytes] | None = None
    log: Path = field(init=False)

    def __post_init__(self) -> None:
        self.log = self.data / "server.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def headers(self, role: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[role]}"}

    def sql(self, query: str) -> list[list[Any]]:
        """The rows of a read-only SQL query (POST /api/v1/sql as an analyst)."""
        answer = httpx.post(
            f"{self.url}/api/v1/sql",
            json={"query": query},
            headers=self.headers("analyst"),
            timeout=60,
        )
        assert answer.status_code == 200, answer.text
        rows: list[list[Any]] = answer.json()["rows"]
        return rows

    def events(self, query: str, limit: int = 100) -> list[dict[str, Any]]:
        """Stored events matching a search (GET /api/v1/events as an analyst)."""
        answer = httpx.get(
            f"{self.url}/api/v1/events",
            params={"q": query, "limit": str(limit)},
            headers=self.headers("analyst"),
            timeout=60,
        )
        assert answer.status_code == 200, answer.text
        found: list[dict[str, Any]] = answer.json()["events"]
        return found

    def start(self, timeout_seconds: float = 30.0) -> None:
        command = [
            sys.executable, "-m", "keelwatch", "serve", "--data", str(self.data),
            "--port", str(self.port), "--log-level", "warning", *self.args,
        ]  # fmt: skip
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, env=os.environ.copy()
            )
        deadline = time.monotonic() + timeout_seconds
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited: {self.log.read_text()[-2000:]}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.1)
        raise RuntimeError(f"server did not start: {self.log.read_text()[-2000:]}")

    def stop(self, *, kill: bool = False) -> None:
        if self.process is None:
            return
        self.process.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
        self.process.wait(timeout=30)
        self.process = None


def make_server(data: Path, *args: str) -> RunningServer:
    store = TokenStore(data)
    tokens = {role: store.create(role)[1] for role in ("ingest", "analyst", "admin")}
    return RunningServer(data, free_port(), tokens, args)
