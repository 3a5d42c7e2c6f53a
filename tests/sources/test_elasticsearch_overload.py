"""Elasticsearch `_bulk` under overload and at its limits, on an in-process server.

A real DuckDB store is wrapped so the test decides when commits happen: the only way to fill the
write queue at a known moment. Nothing stored yet → HTTP 429 for the whole request; part stored
→ those items 201 and the rest per-item 429, in request order.
"""

from __future__ import annotations

import asyncio
import gzip
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest

from keelwatch.api.app import ServerSettings
from keelwatch.errors import PayloadTooLarge
from keelwatch.ingest.service import IngestLimits
from keelwatch.sources.elasticsearch_bulk import MAX_BULK_ITEMS, BulkSyntaxError, parse_bulk

from ..fixtures import audit_event
from ..overload import WAIT_SECONDS, GatedStore, InProcessServer, in_process_server, until
from .elasticsearch_helpers import bulk, falco_alert


class SteppedStore(GatedStore):
    """A gated store whose first commit waits for ``first_release``, later ones for ``gate``."""

    def __init__(self, data: Path) -> None:
        super().__init__(data)
        self.appends = 0
        self.first_release = threading.Event()

    def hold(self) -> None:
        self.appends += 1
        if self.appends == 1:
            self.entered.set()
            self.first_release.wait(timeout=self.wait_seconds)
        else:
            self.gate.wait(timeout=self.wait_seconds)

    def open_all(self) -> None:
        self.first_release.set()
        super().open_all()


InProcess = InProcessServer[SteppedStore]


@pytest.fixture
def small_queue(tmp_path: Path) -> Iterator[InProcess]:
    settings = ServerSettings(max_queue_events=3, auth_required=False)
    with in_process_server(tmp_path, SteppedStore(tmp_path), settings) as server:
        yield server


@pytest.fixture
def small_limits(tmp_path: Path) -> Iterator[InProcess]:
    limits = IngestLimits(max_body_bytes=1024 * 1024, max_decompressed_bytes=2 * 1024 * 1024)
    settings = ServerSettings(limits=limits, auth_required=False)
    with in_process_server(tmp_path, SteppedStore(tmp_path), settings) as server:
        yield server


def stored_ids(url: str) -> set[str]:
    answer = httpx.post(url + "/api/v1/sql", json={"query": "SELECT event_id FROM events"})
    return {row[0] for row in answer.json()["rows"]}


def test_nothing_stored_means_429_for_the_whole_request(small_queue: InProcess) -> None:
    url, store = small_queue.url, small_queue.store
    first = audit_event(audit_id=str(uuid.uuid4()))
    refused = audit_event(audit_id=str(uuid.uuid4()))

    async def scenario() -> tuple[httpx.Response, httpx.Response]:
        async with httpx.AsyncClient(base_url=url, timeout=WAIT_SECONDS) as client:
            held = asyncio.create_task(client.post("/_bulk", content=bulk(("k8s-audit", first))))
            await until(store.entered.is_set)
            answer = await client.post("/_bulk", content=bulk(*[("k8s-audit", refused)] * 3))
            store.open_all()
            return await held, answer

    held, answer = asyncio.run(scenario())
    assert answer.status_code == 429
    assert answer.headers["Retry-After"] == "1"
    assert answer.headers["X-Elastic-Product"] == "Elasticsearch"
    error = answer.json()
    assert (error["status"], error["error"]["type"]) == (429, "es_rejected_execution_exception")
    assert "nothing from this request was stored" in error["error"]["reason"]
    assert held.status_code == 200 and held.json()["errors"] is False
    assert stored_ids(url) == {first["auditID"]}
    metrics = httpx.get(url + "/metrics").text
    assert 'keelwatch_requests_rejected_total{protocol="elasticsearch",reason="overloaded"} 1' in (
        metrics
    )


def test_partly_stored_means_per_item_429_in_order(small_queue: InProcess) -> None:
    """Falco (2 items) is stored; while it commits another request fills the queue, so the
    audit group (3 items) is refused: items answer 201/429 in the order they were sent."""
    url, store, api = small_queue.url, small_queue.store, small_queue.api
    alerts = [falco_alert(), falco_alert()]
    audits = [audit_event(audit_id=str(uuid.uuid4())) for _ in range(3)]
    other = audit_event(audit_id=str(uuid.uuid4()))
    body = bulk(
        ("falco", alerts[0]),
        ("k8s-audit", audits[0]),
        ("falco", alerts[1]),
        ("k8s-audit", audits[1]),
        ("k8s-audit", audits[2]),
    )

    async def scenario() -> tuple[httpx.Response, httpx.Response]:
        async with httpx.AsyncClient(base_url=url, timeout=WAIT_SECONDS) as client:
            mixed = asyncio.create_task(client.post("/_bulk", content=body))
            await until(store.entered.is_set)  # the Falco group is committing
            filler = asyncio.create_task(client.post("/_bulk", content=bulk(("k8s-audit", other))))
            await until(lambda: api.writer.queued_events == 3)  # 2 Falco + 1 filler
            store.first_release.set()
            answer = await mixed
            store.gate.set()
            return answer, await filler

    answer, filler = asyncio.run(scenario())
    assert answer.status_code == 200
    result = answer.json()
    assert result["errors"] is True
    statuses = [item["index"]["status"] for item in result["items"]]
    assert statuses == [201, 429, 201, 429, 429]
    refused = result["items"][1]["index"]["error"]
    assert refused["type"] == "es_rejected_execution_exception"
    assert filler.status_code == 200 and filler.json()["errors"] is False
    assert stored_ids(url) == {alerts[0]["uuid"], alerts[1]["uuid"], other["auditID"]}
    metrics = httpx.get(url + "/metrics").text
    line = 'keelwatch_requests_rejected_total{protocol="elasticsearch",reason="overloaded_item"} 3'
    assert line in metrics


def test_decompression_bomb_is_413(small_limits: InProcess) -> None:
    line = bulk(("k8s-audit", audit_event()))
    packed = gzip.compress(line * (3 * 1024 * 1024 // len(line)))
    assert len(packed) < 1024 * 1024  # under the body limit: only the decompressed size fails
    answer = httpx.post(
        small_limits.url + "/_bulk",
        content=packed,
        headers={"Content-Encoding": "gzip"},
        timeout=WAIT_SECONDS,
    )
    assert answer.status_code == 413
    assert "once decompressed" in answer.json()["error"]["reason"]
    assert stored_ids(small_limits.url) == set()


def test_item_count_is_bounded() -> None:
    pair = orjson.dumps({"index": {}}) + b"\n{}\n"
    assert len(parse_bulk(pair * MAX_BULK_ITEMS, "", 1 << 30, "k8s-audit")) == MAX_BULK_ITEMS
    with pytest.raises(PayloadTooLarge, match=f"at most {MAX_BULK_ITEMS} actions"):
        parse_bulk(pair * (MAX_BULK_ITEMS + 1), "", 1 << 30, "k8s-audit")


def test_blank_line_flood_is_cheap_and_refused() -> None:
    with pytest.raises(BulkSyntaxError, match="no requests added"):
        parse_bulk(b"\n" * 5_000_000, "", 1 << 30, "")
