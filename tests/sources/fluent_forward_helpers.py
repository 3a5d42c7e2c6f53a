"""Shared helpers for the Fluent forward tests: raw frames over sockets and store queries."""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import json
import os
import shutil
import socket
import struct
import subprocess
from pathlib import Path
from typing import Any

import httpx
import msgpack
import pytest

from ..server_process import RunningServer

CONTAINER_TAG = "kube.var.log.containers.web-1_shop_app-0"
SHARED_KEY = "forward-test-key"
ROOT = Path(__file__).resolve().parents[2]
NODE_MODULES = Path(os.environ.get("KEELWATCH_NODE_CACHE", ROOT / ".cache" / "node")) / (
    "node_modules"
)


def container_line(message: str, pod: str = "web-1") -> dict[str, Any]:
    """A Fluent Bit tail + kubernetes filter record for one container log line."""
    return {
        "log": message + "\n",
        "stream": "stdout",
        "kubernetes": {"pod_name": pod, "namespace_name": "shop", "host": "node-7"},
    }


def event_time(seconds: int, nanoseconds: int) -> msgpack.ExtType:
    return msgpack.ExtType(0, struct.pack(">II", seconds, nanoseconds))


def entries(pairs: list[tuple[Any, dict[str, Any]]]) -> bytes:
    return b"".join(msgpack.packb([moment, record]) for moment, record in pairs)


def gzip_members(data: bytes, parts: int) -> bytes:
    """``data`` as ``parts`` gzip members one after the other (what Fluentd appends)."""
    step = max(1, len(data) // parts)
    pieces = [data[i : i + step] for i in range(0, len(data), step)]
    return b"".join(gzip.compress(piece) for piece in pieces)


def connect(port: int, timeout_seconds: float = 60.0) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=timeout_seconds)


def receive(sock: socket.socket) -> Any:
    """The next msgpack value the server sends; raises EOFError when it closed instead."""
    unpacker = msgpack.Unpacker(raw=False)
    while True:
        for value in unpacker:
            return value
        data = sock.recv(65536)
        if not data:
            raise EOFError("server closed the connection")
        unpacker.feed(data)


def closed_by_server(sock: socket.socket) -> bool:
    """Whether the server closed: EOF (or a reset) rather than data."""
    try:
        while True:
            data = sock.recv(65536)
            if not data:
                return True
    except ConnectionResetError:
        return True


def send_ignoring_close(sock: socket.socket, data: bytes) -> None:
    """Send as much as the server takes; it may close mid-way on purpose."""
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
        sock.sendall(data)


def ping(helo: Any, shared_key: str, hostname: str = "test-client") -> tuple[list[Any], bytes]:
    """The PING answering ``helo``, and the salt it used."""
    nonce = helo[1]["nonce"]
    nonce = nonce if isinstance(nonce, bytes) else nonce.encode()
    salt = b"0123456789abcdef"
    digest = hashlib.sha512(salt + hostname.encode() + nonce + shared_key.encode()).hexdigest()
    return ["PING", hostname, salt, digest, "", ""], salt


def messages_like(server: RunningServer, prefix: str) -> list[str]:
    rows = server.sql(f"SELECT message FROM events WHERE message LIKE '{prefix}%' ORDER BY 1")
    return [row[0] for row in rows]


def metrics(server: RunningServer) -> str:
    return httpx.get(server.url + "/metrics", headers=server.headers("analyst"), timeout=30).text


def node_send(port: int, config: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    node = shutil.which("node")
    if node is None or not (NODE_MODULES / "fluent-logger").is_dir():
        pytest.skip(
            "the Node.js fluent-logger is not installed; "
            "run scripts/test-deps/fluent-logger-node.sh (make test-deps)"
        )
    return subprocess.run(
        [node, str(Path(__file__).with_name("fluent_node_sender.js"))],
        input=json.dumps({"port": port, **config}),
        capture_output=True,
        text=True,
        timeout=180,
        env={**os.environ, "NODE_PATH": str(NODE_MODULES)},
    )
