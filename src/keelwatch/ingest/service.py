"""From a request body to durably stored events: the steps every ingest route shares."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

from keelwatch.errors import PayloadTooLarge
from keelwatch.ingest.metrics import Metrics
from keelwatch.ingest.writer import BatchWriter
from keelwatch.model.fields import DEFAULT_LIMITS, RecordLimits
from keelwatch.parsers.base import Batch, DeadLetter, Record
from keelwatch.parsers.registry import AUTO, get_parser
from keelwatch.pipeline.decode import decode_body, decompress
from keelwatch.pipeline.normalize import normalize

MAX_REASONS_REPORTED = 20
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class IngestLimits:
    max_body_bytes: int = 16 * 1024 * 1024
    max_decompressed_bytes: int = 128 * 1024 * 1024
    record: RecordLimits = DEFAULT_LIMITS


@dataclass(slots=True)
class IngestResult:
    received: int
    accepted: int
    dead_lettered: int
    reasons: dict[str, int] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    # One entry per submitted record when asked for: None if stored, else why it was not.
    outcomes: list[str | None] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            "received": self.received,
            "accepted": self.accepted,
            "dead_lettered": self.dead_lettered,
            "dead_letter_reasons": [
                {"reason": reason, "count": count} for reason, count in self.reasons.items()
            ],
            "warnings": self.warnings[:MAX_REASONS_REPORTED],
        }


def build_batch(
    body: bytes, source: str, received_at: datetime, limits: RecordLimits = DEFAULT_LIMITS
) -> tuple[Batch, int]:
    """Decode and normalize a (decompressed) body; returns the batch and the records received."""
    decoded = decode_body(body)
    batch = Batch(
        dead_letters=[
            DeadLetter(source, reason, raw, received_at) for raw, reason in decoded.bad_lines
        ]
    )
    normalize(decoded.records, source, received_at, limits, batch)
    return batch, len(decoded.records) + len(decoded.bad_lines)


def summarize(batch: Batch, received: int) -> IngestResult:
    reasons = Counter(d.reason for d in batch.dead_letters)
    return IngestResult(
        received=received,
        accepted=len(batch.events) + len(batch.findings),
        dead_lettered=len(batch.dead_letters),
        reasons=dict(reasons.most_common(MAX_REASONS_REPORTED)),
        warnings=batch.warnings,
    )


class IngestService:
    """Turns bodies or decoded records into durable events; shared by every protocol adapter."""

    def __init__(self, writer: BatchWriter, metrics: Metrics, limits: IngestLimits) -> None:
        self.writer = writer
        self.metrics = metrics
        self.limits = limits
        # Parsing is CPU work; one thread keeps the event loop answering other requests.
        self._cpu = ThreadPoolExecutor(max_workers=1, thread_name_prefix="keelwatch-normalize")

    def check_source(self, source: str) -> None:
        if source != AUTO:
            get_parser(source)

    async def run_cpu(self, function: Callable[..., T], *args: Any) -> T:
        """Run CPU-bound work (decompression, decoding) off the event loop."""
        return await asyncio.get_running_loop().run_in_executor(self._cpu, function, *args)

    async def ingest(
        self, body: bytes, source: str, content_encoding: str = "", protocol: str = "http"
    ) -> IngestResult:
        """Store a raw body (JSON, NDJSON or text lines) named by ``source``."""
        if len(body) > self.limits.max_body_bytes:
            raise PayloadTooLarge(f"body is larger than {self.limits.max_body_bytes} bytes")
        batch, received = await self.run_cpu(self._prepare, body, source, content_encoding)
        return await self._store(batch, received, source, protocol)

    async def ingest_records(
        self,
        records: Sequence[Record],
        source: str,
        protocol: str,
        *,
        dead_letters: Sequence[tuple[bytes, str]] = (),
        item_outcomes: bool = False,
    ) -> IngestResult:
        """Store records a protocol adapter already decoded (``dead_letters``: raw + reason).

        Returns once everything is durable; raises ``Overloaded`` when the writer is full.
        """
        received_at = datetime.now(UTC)
        outcomes: list[str | None] | None = [] if item_outcomes else None
        batch = Batch(
            dead_letters=[
                DeadLetter(source, reason, raw, received_at) for raw, reason in dead_letters
            ]
        )
        await self.run_cpu(
            normalize, records, source, received_at, self.limits.record, batch, outcomes
        )
        result = await self._store(batch, len(records) + len(dead_letters), source, protocol)
        result.outcomes = outcomes or []
        return result

    async def _store(self, batch: Batch, received: int, source: str, protocol: str) -> IngestResult:
        await self.writer.write(batch)
        result = summarize(batch, received)
        labels = {"source": source, "protocol": protocol}
        self.metrics.add("keelwatch_records_received_total", received, **labels)
        self.metrics.add("keelwatch_events_stored_total", result.accepted, **labels)
        self.metrics.add("keelwatch_records_dead_lettered_total", result.dead_lettered, **labels)
        return result

    def _prepare(self, body: bytes, source: str, content_encoding: str) -> tuple[Batch, int]:
        plain = decompress(body, content_encoding, self.limits.max_decompressed_bytes)
        return build_batch(plain, source, datetime.now(UTC), self.limits.record)

    def close(self) -> None:
        self._cpu.shutdown(wait=True)
