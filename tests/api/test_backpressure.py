"""Overload: a full write queue answers 503 with Retry-After, and nothing is dropped silently.

The server runs in-process on loopback (uvicorn) over a real DuckDB store wrapped so the test
can hold commits back: that is the only way to fill the queue deterministically.
"""

from __future__ import annotations

import httpx
import orjson

from ..fixtures import audit_event
from ..overload import GatedStore, InProcessServer, gated_server, overload_round

__all__ = ["gated_server"]  # the fixture


def test_full_queue_answers_503_then_recovers(gated_server: InProcessServer[GatedStore]) -> None:
    body = orjson.dumps(audit_event(name="first"))
    answers = overload_round(gated_server, "/ingest/k8s-audit", body)
    assert answers.refused.status_code == 503
    assert answers.refused.headers["Retry-After"] == "1"
    assert answers.held.status_code == 200 and answers.held.json()["accepted"] == 1
    assert answers.retried.status_code == 200 and answers.retried.json()["accepted"] == 1
    metrics = httpx.get(gated_server.url + "/metrics").text
    assert 'keelwatch_requests_rejected_total{protocol="http",reason="overloaded"} 1' in metrics
