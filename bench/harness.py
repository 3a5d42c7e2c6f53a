"""What every benchmark shares: a real server process, CPU accounting, the machine, results."""

from __future__ import annotations

import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx

from keelwatch.auth import TokenStore

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "docs" / "benchmarks.md"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import duckdb

    return (
        f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"DuckDB {duckdb.__version__}, {platform.system()} {platform.release()}"
    )


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (all its threads), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


@dataclass
class BenchServer:
    url: str
    token: str
    process: subprocess.Popen[bytes]
    data: Path
    ports: dict[str, int]

    def cpu_seconds(self) -> float:
        return process_cpu_seconds(self.process.pid)

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@contextmanager
def bench_server(*args: str, listeners: tuple[str, ...] = ()) -> Iterator[BenchServer]:
    """Start `keelwatch serve` on loopback with a fresh data directory; ``listeners`` names
    TCP protocols (forward, syslog-tcp, lumberjack) to open on free ports."""
    with tempfile.TemporaryDirectory(prefix="keelwatch-bench-") as tmp:
        data = Path(tmp)
        _, token = TokenStore(data).create("admin")
        port = free_port()
        ports = {name: free_port() for name in listeners}
        extra = [arg for name, p in ports.items() for arg in (f"--{name}-port", str(p))]
        command = [
            sys.executable, "-m", "keelwatch", "serve", "--data", str(data),
            "--port", str(port), "--log-level", "warning", *extra, *args,
        ]  # fmt: skip
        log = (data / "server.log").open("wb")
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}"
        try:
            _wait_healthy(url, process, data)
            yield BenchServer(url, token, process, data, ports)
        finally:
            process.terminate()
            process.wait(timeout=60)
            log.close()


def _wait_healthy(url: str, process: subprocess.Popen[bytes], data: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError((data / "server.log").read_text()[-2000:])
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.1)
    raise RuntimeError("server did not start")


def code_version() -> str:
    """The commit measured, marked when the work tree had uncommitted changes under src/."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
            check=True,
        ).stdout.strip()  # fmt: skip
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "src"], cwd=ROOT, capture_output=True,
            text=True, check=True,
        ).stdout.strip()  # fmt: skip
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{commit}{' + uncommitted changes in src/' if dirty else ''}"


# Taken when a benchmark starts: the code it imported, even if the tree changes while it runs.
CODE_AT_START = code_version()


def append_results(title: str, body: str) -> None:
    """Add a dated section with the machine to docs/benchmarks.md."""
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    section = (
        f"\n## {title} — {stamp}\n\nMachine: {machine()}; code: {CODE_AT_START}\n\n{body.strip()}\n"
    )
    if not RESULTS.exists():
        RESULTS.write_text("# Benchmark results\n\nAppended by `make bench`; newest last.\n")
    with RESULTS.open("a") as out:
        out.write(section)
