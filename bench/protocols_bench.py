"""Ingest throughput per protocol for ~1 KB Kubernetes audit events, end to end.

Each protocol sends the same events to a real `keelwatch serve` from a few client threads and
waits for every acknowledgement. The figure is events per second of wall time and per second
of server CPU (what one core sustains). Anchors in the same run: the same events normalized and
written straight to the store in-process, and the store append alone.

    python -m bench.protocols_bench [--events N] [--quick] [--record]
"""

from __future__ import annotations

import argparse
import gzip
import socket
import struct
import tempfile
import time
import zlib
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import httpx
import msgpack
import orjson

from bench.harness import BenchServer, append_results, bench_server
from bench.workload import audit_lines
from keelwatch.ingest.service import build_batch
from keelwatch.store.duckdb_store import DuckDBStore

BATCH = 1_000
CLIENTS = 4
Sender = Callable[[BenchServer, Sequence[bytes]], None]


def _http(server: BenchServer, path: str, body: bytes, headers: dict[str, str]) -> None:
    with httpx.Client(timeout=120) as client:
        while True:
            answer = client.post(server.url + path, content=body, headers=headers)
            if answer.status_code not in (429, 503):
                answer.raise_for_status()
                return
            time.sleep(float(answer.headers.get("retry-after", "1")))


def native(server: BenchServer, lines: Sequence[bytes]) -> None:
    body = gzip.compress(b"\n".join(lines), 1)
    headers = {**server.headers, "Content-Encoding": "gzip"}
    _http(server, "/ingest/k8s-audit", body, headers)


def elasticsearch_bulk(server: BenchServer, lines: Sequence[bytes]) -> None:
    action = b'{"create":{"_index":"k8s-audit"}}'
    body = b"".join(action + b"\n" + line + b"\n" for line in lines)
    headers = {**server.headers, "Content-Type": "application/x-ndjson"}
    _http(server, "/_bulk", body, headers)


def otlp_json(server: BenchServer, lines: Sequence[bytes]) -> None:
    records = [{"timeUnixNano": "0", "body": {"stringValue": line.decode()}} for line in lines]
    source = {"key": "keelwatch.source", "value": {"stringValue": "k8s-audit"}}
    body = orjson.dumps(
        {"resourceLogs": [{"resource": {"attributes": [source]},
                           "scopeLogs": [{"logRecords": records}]}]}
    )  # fmt: skip
    headers = {**server.headers, "Content-Type": "application/json"}
    _http(server, "/v1/logs", body, headers)


def splunk_hec(server: BenchServer, lines: Sequence[bytes]) -> None:
    body = b"".join(b'{"sourcetype":"k8s-audit","event":' + line + b"}" for line in lines)
    headers = {"Authorization": f"Splunk {server.token}"}
    _http(server, "/services/collector/event", body, headers)


def loki_json(server: BenchServer, lines: Sequence[bytes]) -> None:
    values = [[str(1_700_000_000_000_000_000 + n), line.decode()] for n, line in enumerate(lines)]
    body = orjson.dumps({"streams": [{"stream": {"job": "k8s-audit"}, "values": values}]})
    headers = {**server.headers, "Content-Type": "application/json"}
    _http(server, "/loki/api/v1/push", body, headers)


def fluent_forward(server: BenchServer, lines: Sequence[bytes]) -> None:
    entries = [[int(time.time()), orjson.loads(line)] for line in lines]
    chunk = str(id(lines))
    frame = msgpack.packb(["k8s.audit", entries, {"chunk": chunk, "size": len(entries)}])
    with socket.create_connection(("127.0.0.1", server.ports["forward"]), timeout=120) as sock:
        sock.sendall(frame)
        unpacker = msgpack.Unpacker()
        while True:
            data = sock.recv(65536)
            if not data:
                raise ConnectionError("forward: closed before the ack")
            unpacker.feed(data)
            for answer in unpacker:
                if answer.get("ack") == chunk:
                    return


def syslog_tcp(server: BenchServer, lines: Sequence[bytes]) -> None:
    # No acknowledgement exists in syslog: the run ends when the store holds every event.
    frames = []
    for line in lines:
        message = b"<86>1 2026-11-01T10:00:00Z node-a kube-apiserver - audit - " + line
        frames.append(str(len(message)).encode() + b" " + message)
    with socket.create_connection(("127.0.0.1", server.ports["syslog-tcp"]), timeout=120) as sock:
        sock.sendall(b"".join(frames))


def lumberjack(server: BenchServer, lines: Sequence[bytes]) -> None:
    frames = bytearray()
    for seq, line in enumerate(lines, 1):
        event = b'{"@timestamp":"2026-11-01T10:00:00Z","fields":{"keelwatch_source":"k8s-audit"},'
        event += b'"message":' + orjson.dumps(line.decode()) + b"}"
        frames += b"2J" + struct.pack(">II", seq, len(event)) + event
    packed = zlib.compress(bytes(frames), 1)
    payload = (
        b"2W" + struct.pack(">I", len(lines)) + b"2C" + struct.pack(">I", len(packed)) + packed
    )
    with socket.create_connection(("127.0.0.1", server.ports["lumberjack"]), timeout=120) as sock:
        sock.sendall(payload)
        buffer = b""
        while True:
            data = sock.recv(4096)
            if not data:
                raise ConnectionError("lumberjack: closed before the last ack")
            buffer += data
            while len(buffer) >= 6:
                _, seq = struct.unpack(">2sI", buffer[:6])
                buffer = buffer[6:]
                if seq == len(lines):
                    return


PROTOCOLS: dict[str, Sender] = {
    "native /ingest": native,
    "elasticsearch _bulk": elasticsearch_bulk,
    "OTLP/HTTP JSON": otlp_json,
    "Splunk HEC": splunk_hec,
    "Loki push JSON": loki_json,
    "Fluent forward": fluent_forward,
    "syslog TCP": syslog_tcp,
    "Lumberjack v2": lumberjack,
}
LISTENERS = ("forward", "syslog-tcp", "lumberjack")


def stored(server: BenchServer) -> int:
    answer = httpx.post(
        f"{server.url}/api/v1/sql", json={"query": "SELECT count(*) FROM events"},
        headers=server.headers, timeout=120,
    )  # fmt: skip
    answer.raise_for_status()
    return int(answer.json()["rows"][0][0])


def run_protocol(name: str, send: Sender, lines: Sequence[bytes]) -> tuple[float, float, int]:
    """(wall seconds, server CPU seconds, events stored) for one protocol on a fresh server."""
    with bench_server("--insecure-no-auth", listeners=LISTENERS) as server:
        batches = [lines[i : i + BATCH] for i in range(0, len(lines), BATCH)]
        before_cpu, start = server.cpu_seconds(), time.perf_counter()
        with ThreadPoolExecutor(CLIENTS) as pool:
            list(pool.map(lambda batch: send(server, batch), batches))
        deadline = time.monotonic() + 300
        count = stored(server)
        while count < len(lines) and time.monotonic() < deadline:  # syslog has no acks
            time.sleep(0.05)
            count = stored(server)
        return time.perf_counter() - start, server.cpu_seconds() - before_cpu, count


def anchors(lines: Sequence[bytes]) -> tuple[float, float]:
    """Events/s for normalize + store append in-process, and for the append alone."""
    body = b"\n".join(lines)
    with tempfile.TemporaryDirectory() as tmp:
        store = DuckDBStore(Path(tmp))
        start = time.perf_counter()
        batch, _ = build_batch(body, "k8s-audit", datetime.now(UTC))
        normalized = time.perf_counter() - start
        start = time.perf_counter()
        store.append(batch)
        appended = time.perf_counter() - start
        store.close()
    return len(lines) / (normalized + appended), len(lines) / appended


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--quick", action="store_true", help="5,000 events, for a smoke test")
    parser.add_argument("--record", action="store_true", help="append to docs/benchmarks.md")
    parser.add_argument("--only", help="comma-separated protocol names (default: all)")
    args = parser.parse_args()
    count = 5_000 if args.quick else args.events
    lines = audit_lines(count)
    size = sum(map(len, lines)) / len(lines)
    pipeline, append_only = anchors(lines)
    rows = [
        f"| normalize + append in-process (anchor) | {pipeline:,.0f} | — | 1.00 | {count:,} |",
        f"| store append alone (anchor) | {append_only:,.0f} | — | — | {count:,} |",
    ]
    print(rows[0], rows[1], sep="\n", flush=True)
    wanted = set(args.only.split(",")) if args.only else None
    for name, send in PROTOCOLS.items():
        if wanted and name not in wanted:
            continue
        wall, cpu, count_stored = run_protocol(name, send, lines)
        per_wall, per_cpu = count / wall, count / max(cpu, 1e-9)
        row = (
            f"| {name} | {per_wall:,.0f} | {per_cpu:,.0f} | {per_cpu / pipeline:.2f} "
            f"| {count_stored:,} |"
        )
        print(row, flush=True)
        rows.append(row)
    table = "\n".join(
        [
            f"{count:,} Kubernetes audit events of {size:,.0f} bytes, {CLIENTS} client threads, "
            f"batches of {BATCH:,}.",
            "",
            "| protocol | events/s (wall) | per server core | ratio to in-process | stored |",
            "| --- | ---: | ---: | ---: | ---: |",
            *rows,
        ]
    )
    if args.record:
        append_results("Ingest by protocol", table)


if __name__ == "__main__":
    main()
