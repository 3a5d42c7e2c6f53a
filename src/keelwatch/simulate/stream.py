"""Stream a simulation to a server through one of its ingest protocols, paced to a rate.

Every sender returns only once the server acknowledged the batch (HTTP 200 with the answer
read, a Fluent forward ``ack``), and retries what the server refused for overload (HTTP 429/503
with Retry-After, per-item 429 in a ``_bulk`` answer). The wire conventions follow
bench/protocols_bench.py: ``/ingest/<source>`` NDJSON, ``_bulk`` with the source as index, OTLP
JSON with a ``keelwatch.source`` resource attribute, Fluent forward with the source as tag.
"""

from __future__ import annotations

import gzip
import hashlib
import secrets
import socket
import struct
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import urlsplit

import httpx
import msgpack  # type: ignore[import-untyped]
import orjson

from keelwatch.errors import KeelwatchError
from keelwatch.simulate.records import AUDIT, CONTAINER, SimRecord, epoch_ns
from keelwatch.simulate.writers import line

PROTOCOLS = ("native", "elasticsearch", "otlp", "forward")
FORWARD_TAGS = {AUDIT: "k8s.audit", CONTAINER: "kube.container"}  # others: the source name
MAX_RETRIES = 50


@dataclass(frozen=True, slots=True)
class Target:
    url: str
    protocol: str
    token: str | None = None
    forward_port: int | None = None
    forward_shared_key: str | None = None
    timeout_seconds: float = 60.0


@dataclass(slots=True)
class StreamResult:
    sent: int = 0
    accepted: int = 0  # as the server counted it, where the protocol answers per record
    rejected: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    retries: int = 0

    @property
    def rate(self) -> float:
        return self.sent / self.seconds if self.seconds > 0 else 0.0


class Sender(Protocol):
    def send(self, records: Sequence[SimRecord], result: StreamResult) -> None: ...

    def close(self) -> None: ...


def _groups(records: Sequence[SimRecord]) -> dict[str, list[SimRecord]]:
    grouped: dict[str, list[SimRecord]] = {}
    for record in records:
        grouped.setdefault(record.source, []).append(record)
    return grouped


def _reject(result: StreamResult, reason: str, count: int = 1) -> None:
    result.rejected[reason] = result.rejected.get(reason, 0) + count


class HttpSender:
    def __init__(self, target: Target) -> None:
        headers = {"Authorization": f"Bearer {target.token}"} if target.token else {}
        self.http = httpx.Client(
            base_url=target.url.rstrip("/"), headers=headers, timeout=target.timeout_seconds
        )

    def post(self, path: str, body: bytes, headers: dict[str, str], result: StreamResult) -> Any:
        """POST until the server takes it; overload answers are waited out and retried."""
        for _ in range(MAX_RETRIES):
            try:
                answer = self.http.post(path, content=body, headers=headers)
            except httpx.TransportError as error:
                raise KeelwatchError(f"cannot reach {self.http.base_url}: {error}") from None
            if answer.status_code in (429, 503):
                result.retries += 1
                time.sleep(min(30.0, float(answer.headers.get("retry-after", "1"))))
                continue
            if answer.status_code >= 300:
                raise KeelwatchError(
                    f"{path}: server answered {answer.status_code}: {answer.text[:300]}"
                )
            return orjson.loads(answer.content) if answer.content else {}
        raise KeelwatchError(f"{path}: still overloaded after {MAX_RETRIES} tries")

    def close(self) -> None:
        self.http.close()


class NativeSender(HttpSender):
    """``POST /ingest/<source>``: gzipped NDJSON, one request per source in the batch."""

    def send(self, records: Sequence[SimRecord], result: StreamResult) -> None:
        for source, group in _groups(records).items():
            body = gzip.compress(b"\n".join(line(record) for record in group), 1)
            headers = {"Content-Type": "application/x-ndjson", "Content-Encoding": "gzip"}
            answer = self.post(f"/ingest/{source}", body, headers, result)
            result.accepted += int(answer.get("accepted", 0))
            for item in answer.get("dead_letter_reasons", []):
                _reject(result, str(item.get("reason")), int(item.get("count", 1)))


class BulkSender(HttpSender):
    """``POST /_bulk``: a ``create`` action per record with the source as ``_index``."""

    def send(self, records: Sequence[SimRecord], result: StreamResult) -> None:
        pending = list(records)
        for _ in range(MAX_RETRIES):
            body = b"".join(
                orjson.dumps({"create": {"_index": record.source}}) + b"\n" + line(record) + b"\n"
                for record in pending
            )
            answer = self.post("/_bulk", body, {"Content-Type": "application/x-ndjson"}, result)
            retry: list[SimRecord] = []
            for record, item in zip(pending, answer.get("items", []), strict=False):
                outcome: dict[str, Any] = next(iter(item.values()), {})
                status = int(outcome.get("status", 0))
                if status == 429:
                    retry.append(record)
                elif status >= 300:
                    _reject(result, str(outcome.get("error", {}).get("reason", status)))
                else:
                    result.accepted += 1
            if not retry:
                return
            result.retries += 1
            time.sleep(1.0)
            pending = retry
        raise KeelwatchError(f"_bulk: items still refused after {MAX_RETRIES} tries")


class OtlpSender(HttpSender):
    """``POST /v1/logs`` (OTLP/HTTP JSON): one ResourceLogs per source, the line as body."""

    def send(self, records: Sequence[SimRecord], result: StreamResult) -> None:
        resource_logs = []
        for source, group in _groups(records).items():
            logs = [
                {"timeUnixNano": str(epoch_ns(r.time)), "body": {"stringValue": line(r).decode()}}
                for r in group
            ]
            attribute = {"key": "keelwatch.source", "value": {"stringValue": source}}
            resource_logs.append(
                {"resource": {"attributes": [attribute]}, "scopeLogs": [{"logRecords": logs}]}
            )
        body = orjson.dumps({"resourceLogs": resource_logs})
        answer = self.post("/v1/logs", body, {"Content-Type": "application/json"}, result)
        refused = int(answer.get("partialSuccess", {}).get("rejectedLogRecords", 0) or 0)
        if refused:
            _reject(result, answer["partialSuccess"].get("errorMessage", "rejected"), refused)
        result.accepted += len(records) - refused


class ForwardSender:
    """Fluent forward over TCP: a Forward-mode message per source, each waiting for its ack."""

    def __init__(self, target: Target) -> None:
        if target.forward_port is None:
            raise KeelwatchError("--protocol forward needs --forward-port")
        host = urlsplit(target.url).hostname or "127.0.0.1"
        try:
            self.sock = socket.create_connection(
                (host, target.forward_port), timeout=target.timeout_seconds
            )
        except OSError as error:
            raise KeelwatchError(f"cannot reach {host}:{target.forward_port}: {error}") from None
        self.unpacker = msgpack.Unpacker(raw=False, max_buffer_size=1 << 20)
        if target.forward_shared_key:
            try:
                self._handshake(target.forward_shared_key.encode())
            except BaseException:
                self.sock.close()
                raise

    def _read(self) -> Any:
        while True:
            for value in self.unpacker:
                return value
            data = self.sock.recv(65536)
            if not data:
                raise KeelwatchError("forward: the server closed the connection")
            self.unpacker.feed(data)

    def _handshake(self, shared_key: bytes) -> None:
        helo = self._read()
        if not (isinstance(helo, list) and helo and helo[0] == "HELO"):
            raise KeelwatchError(f"forward: expected HELO, got {str(helo)[:80]}")
        nonce = helo[1].get("nonce", b"")
        nonce = nonce.encode() if isinstance(nonce, str) else nonce
        hostname, salt = socket.gethostname(), secrets.token_bytes(16)
        digest = hashlib.sha512(salt + hostname.encode() + nonce + shared_key).hexdigest()
        self.sock.sendall(msgpack.packb(["PING", hostname, salt, digest, "", ""]))
        pong = self._read()
        if not (isinstance(pong, list) and len(pong) > 2 and pong[1] is True):
            reason = pong[2] if isinstance(pong, list) and len(pong) > 2 else pong
            raise KeelwatchError(f"forward: handshake refused: {reason}")

    def send(self, records: Sequence[SimRecord], result: StreamResult) -> None:
        for source, group in _groups(records).items():
            entries = [[_event_time(r), r.record] for r in group]
            chunk = secrets.token_hex(12)
            tag = FORWARD_TAGS.get(source, source)
            self.sock.sendall(msgpack.packb([tag, entries, {"chunk": chunk, "size": len(entries)}]))
            answer = self._read()
            if not (isinstance(answer, dict) and answer.get("ack") == chunk):
                raise KeelwatchError(f"forward: unexpected answer {str(answer)[:80]}")
            result.accepted += len(entries)

    def close(self) -> None:
        self.sock.close()


def _event_time(record: SimRecord) -> msgpack.ExtType:
    """Fluent's EventTime: seconds and nanoseconds, big-endian."""
    nanos = epoch_ns(record.time)
    return msgpack.ExtType(0, struct.pack(">II", nanos // 1_000_000_000, nanos % 1_000_000_000))


def open_sender(target: Target) -> Sender:
    senders: dict[str, Callable[[Target], Sender]] = {
        "native": NativeSender,
        "elasticsearch": BulkSender,
        "otlp": OtlpSender,
        "forward": ForwardSender,
    }
    if target.protocol not in senders:
        raise KeelwatchError(f"unknown protocol {target.protocol!r}; use {', '.join(PROTOCOLS)}")
    return senders[target.protocol](target)


def stream(
    records: Sequence[SimRecord],
    target: Target,
    *,
    rate: float,
    batch_size: int = 500,
    progress: Callable[[int], None] | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> StreamResult:
    """Send ``records`` in order, ``batch_size`` at a time, at ``rate`` records/s (0: no pacing)."""
    result = StreamResult()
    sender = open_sender(target)
    started = clock()
    try:
        for offset in range(0, len(records), batch_size):
            if rate > 0:  # the batch starting at ``offset`` is due at offset / rate
                delay = started + offset / rate - clock()
                if delay > 0:
                    sleep(delay)
            batch = records[offset : offset + batch_size]
            sender.send(batch, result)
            result.sent += len(batch)
            if progress is not None:
                progress(len(batch))
        if rate > 0:  # the last batch has its share of time too: n records take n / rate s
            delay = started + len(records) / rate - clock()
            if delay > 0:
                sleep(delay)
    finally:
        sender.close()
    result.seconds = clock() - started
    return result
