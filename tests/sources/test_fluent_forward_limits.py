"""Fluent forward under overload, over TLS, and at its connection limits.

Overload and the limits run the server in-process over a real DuckDB store wrapped so the test
can hold commits back (the only deterministic way to fill the write queue); TLS runs the real
`keelwatch serve` process with a certificate made by openssl.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgpack
import pytest

from keelwatch.api.app import ServerSettings
from keelwatch.sources.base import ListenerSettings

from ..overload import GatedStore, InProcessServer, in_process_server
from ..server_process import free_port, make_server
from .fluent_forward_helpers import (
    CONTAINER_TAG,
    SHARED_KEY,
    closed_by_server,
    connect,
    container_line,
    messages_like,
    node_send,
    ping,
    receive,
)


@dataclass
class ForwardServer:
    http: InProcessServer[GatedStore]
    port: int  # the forward listener's

    @property
    def store(self) -> GatedStore:
        return self.http.store

    def rejected(self, reason: str) -> int:
        return self.http.rejected("fluent-forward", reason)

    def stored_messages(self) -> list[str]:
        return sorted(row[0] for row in self.store.sql("SELECT message FROM events").rows)


@contextlib.contextmanager
def in_process(tmp_path: Path, *, open_gate: bool, **listener: Any) -> Iterator[ForwardServer]:
    port = free_port()
    settings = ServerSettings(
        max_queue_events=1,
        auth_required=False,
        listeners=ListenerSettings(forward_port=port, **listener),
    )
    store = GatedStore(tmp_path, gate_open=open_gate, wait_seconds=120)
    with in_process_server(tmp_path, store, settings) as http:
        yield ForwardServer(http, port)


def message(text: str, chunk: str) -> bytes:
    return msgpack.packb([CONTAINER_TAG, 1767261600, container_line(text), {"chunk": chunk}])


def nothing_received(sock: socket.socket) -> bool:
    sock.setblocking(False)
    try:
        sock.recv(1)
    except BlockingIOError:
        return True
    finally:
        sock.setblocking(True)
    return False


def test_overload_holds_the_ack_and_retries_until_stored(tmp_path: Path) -> None:
    with in_process(tmp_path, open_gate=False) as server:
        with connect(server.port) as first, connect(server.port) as second:
            first.sendall(message("overload-first", "one"))
            assert server.store.entered.wait(timeout=60)  # its commit is held at the gate
            second.sendall(message("overload-second", "two"))
            deadline = time.monotonic() + 60
            while server.rejected("overloaded") == 0 and time.monotonic() < deadline:
                time.sleep(0.05)
            assert server.rejected("overloaded") >= 1
            # Neither is durable yet, so neither may be acknowledged.
            assert nothing_received(first) and nothing_received(second)
            server.store.gate.set()
            assert receive(first) == {"ack": "one"}
            assert receive(second) == {"ack": "two"}
        assert server.stored_messages() == ["overload-first", "overload-second"]


def test_connections_per_client_are_limited(tmp_path: Path) -> None:
    with in_process(tmp_path, open_gate=True, max_connections_per_client=2) as server:
        with connect(server.port) as one, connect(server.port) as two:
            for n, sock in enumerate((one, two)):
                sock.sendall(message(f"limit-{n}", str(n)))
                assert receive(sock) == {"ack": str(n)}  # both are being served now
            with connect(server.port) as third:
                assert closed_by_server(third)
            assert server.rejected("too many connections") == 1
        # The slots are given back on close (the server may not have seen both closes yet).
        deadline = time.monotonic() + 60
        while True:
            with connect(server.port) as again:
                again.sendall(message("limit-again", "again"))
                try:
                    assert receive(again) == {"ack": "again"}
                    break
                except EOFError:
                    assert time.monotonic() < deadline, "the slots were never given back"
                    time.sleep(0.05)


def test_idle_connections_are_closed(tmp_path: Path) -> None:
    with in_process(tmp_path, open_gate=True, idle_timeout_seconds=0.2) as server:
        with connect(server.port) as sock:
            assert closed_by_server(sock)
        assert server.rejected("idle timeout") == 1


# -- TLS ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("pki")
    subprocess.run(
        [
            "openssl", "req", "-x509", "-nodes",
            "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-keyout", str(directory / "server.key"), "-out", str(directory / "server.pem"),
            "-days", "2", "-subj", "/CN=localhost",
            "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
        ],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    return directory


def test_tls_with_the_handshake(certificate: Path, tmp_path: Path) -> None:
    port = free_port()
    server = make_server(
        tmp_path, "--forward-port", str(port), "--forward-tls",
        "--forward-shared-key", SHARED_KEY,
        "--tls-cert", str(certificate / "server.pem"), "--tls-key", str(certificate / "server.key"),
    )  # fmt: skip
    server.start()
    try:
        run = uuid.uuid4().hex[:8]
        context = ssl.create_default_context(cafile=str(certificate / "server.pem"))
        with context.wrap_socket(connect(port), server_hostname="localhost") as sock:
            sock.sendall(msgpack.packb(ping(receive(sock), SHARED_KEY)[0]))
            assert receive(sock)[:2] == ["PONG", True]
            sock.sendall(message(f"tls-{run}", run))
            assert receive(sock) == {"ack": run}
        with connect(port) as plain:  # no TLS: the TLS handshake fails, nothing is stored
            plain.sendall(message(f"plain-{run}", "x"))
            assert closed_by_server(plain)
        events = [{"tag": CONTAINER_TAG, "seconds": 5, "record": container_line(f"tlsnode-{run}")}]
        config = {"mode": "CompressedPackedForward", "ack": True, "sharedKey": SHARED_KEY}
        done = node_send(port, {**config, "ca": str(certificate / "server.pem"), "events": events})
        assert done.returncode == 0, done.stderr
        assert messages_like(server, f"tls-{run}") == [f"tls-{run}"]
        assert messages_like(server, f"tlsnode-{run}") == [f"tlsnode-{run}"]
        assert messages_like(server, f"plain-{run}") == []
    finally:
        server.stop()
