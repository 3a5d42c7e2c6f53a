"""`keelwatch ingest`: bulk import of files into the data directory or a running server."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from keelwatch.alerting.dedup import RESTORED_ALERTS, Deduplicator
from keelwatch.alerting.raiser import AlertRaiser
from keelwatch.alerting.runtime import runtime_alerts
from keelwatch.alerting.sigma_source import load_match_sources
from keelwatch.client import ServerClient
from keelwatch.files import read_chunks
from keelwatch.ingest.service import IngestResult, build_batch, summarize
from keelwatch.store.duckdb_store import DuckDBStore


def import_files(
    files: tuple[Path, ...],
    source: str,
    data: Path,
    server: str | None,
    token: str | None,
    advance: Callable[[int], None],
    rules: tuple[Path, ...] = (),
) -> IngestResult:
    """Send every chunk of every file through the parsers; report the totals.

    Into a data directory, batches go through the same detection as on a server (runtime tools'
    alerts, and the Sigma rules under ``rules``); through a server, the server's own rules apply.
    """
    total = IngestResult(0, 0, 0)
    reasons: Counter[str] = Counter()
    client = ServerClient(server, token) if server else None
    store = None if client else DuckDBStore(data)
    raiser = None
    if store is not None:
        raiser = AlertRaiser([runtime_alerts, *load_match_sources(rules)], Deduplicator())
        raiser.dedup.restore(store.latest_alerts(RESTORED_ALERTS))
    try:
        for path in files:
            size, done = path.stat().st_size, 0
            for chunk in read_chunks(path):
                if client is not None:
                    answer = client.post(f"/ingest/{source}", chunk)
                    result = IngestResult(
                        answer["received"],
                        answer["accepted"],
                        answer["dead_lettered"],
                        {r["reason"]: r["count"] for r in answer["dead_letter_reasons"]},
                    )
                else:
                    assert store is not None
                    batch, received = build_batch(chunk, source, datetime.now(UTC))
                    if raiser is not None:
                        raiser.process(batch)
                    store.append(batch)
                    result = summarize(batch, received)
                total.received += result.received
                total.accepted += result.accepted
                total.dead_lettered += result.dead_lettered
                reasons.update(result.reasons)
                step = min(len(chunk), max(0, size - done))
                done += step
                advance(step)
            advance(max(0, size - done))
    finally:
        if client is not None:
            client.close()
        if store is not None:
            store.close()
    total.reasons = dict(reasons.most_common(20))
    return total
