"""Splunk HEC: the splunk-handler logging client, and HEC's REST API driven with httpx.

The server is a real `keelwatch serve` process on loopback; what it stored is read back through
the search API. Error codes and bodies follow Splunk's HEC reply table.
"""

from __future__ import annotations

import asyncio
import base64
import gzip
import logging
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest
from splunk_handler import SplunkHandler

from ..fixtures import audit_event
from ..overload import GatedStore, InProcessServer, gated_server, until
from ..server_process import RunningServer, make_server

__all__ = ["gated_server"]  # the fixture

EVENT = "/services/collector/event"
RAW = "/services/collector/raw"
ACK = "/services/collector/ack"
HEALTH = "/services/collector/health"
INDEXED_FIELDS_ERROR = {"text": "Error in handling indexed fields", "code": 15}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    running = make_server(tmp_path_factory.mktemp("hec"), "--max-body-mb", "1")
    running.start()
    yield running
    running.stop()


def splunk_auth(server: RunningServer, role: str = "ingest") -> dict[str, str]:
    return {"Authorization": f"Splunk {server.tokens[role]}"}


def post(
    server: RunningServer,
    path: str,
    body: bytes,
    headers: dict[str, str] | None = None,
    params: dict[str, str] | None = None,
) -> httpx.Response:
    return httpx.post(
        server.url + path,
        content=body,
        headers=splunk_auth(server) if headers is None else headers,
        params=params,
        timeout=30,
    )


def dead_letters(server: RunningServer) -> list[dict[str, Any]]:
    answer = httpx.get(
        server.url + "/api/v1/dead-letters",
        params={"limit": "1000"},
        headers=server.headers("analyst"),
        timeout=30,
    )
    assert answer.status_code == 200, answer.text
    return answer.json()["dead_letters"]  # type: ignore[no-any-return]


def envelope(event: Any, **metadata: Any) -> bytes:
    return orjson.dumps({"event": event, **metadata})


def messages(server: RunningServer, sourcetype: str) -> list[str]:
    found = server.events(f'splunk.sourcetype:"{sourcetype}"', limit=1000)
    return sorted(event["message"] for event in found)


def hec_logger(name: str, handler: logging.Handler) -> logging.Logger:
    logger = logging.getLogger(f"keelwatch-test.{name}")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    return logger


# -- a real client: splunk-handler (a logging handler that posts to HEC) ----------------------


def test_splunk_handler_batch_of_concatenated_events_is_stored_exactly(
    server: RunningServer,
) -> None:
    # A long flush interval queues every record; close() sends them all in one request whose
    # body is the envelopes joined with no separator at all.
    handler = SplunkHandler(
        host="127.0.0.1",
        port=server.port,
        token=server.tokens["ingest"],
        index="main",
        protocol="http",
        verify=False,
        flush_interval=60,
        retry_count=0,
        sourcetype="hec-handler-batch",
        source="keelwatch-tests",
        hostname="worker-7",
    )
    logger = hec_logger("batch", handler)
    sent = [f"batch record {i}: user=alice action=login ok" for i in range(40)]
    sent.append('{"action": "delete", "user": "bob", "resource": "secrets"}')  # a JSON log line
    for message in sent:
        logger.info(message)
    handler.close()
    logger.removeHandler(handler)

    stored = server.events('splunk.sourcetype:"hec-handler-batch"', limit=1000)
    assert sorted(e["message"] for e in stored) == sorted(sent)
    assert {e["host.name"] for e in stored} == {"worker-7"}
    assert {e["splunk.index"] for e in stored} == {"main"}
    structured = [e for e in stored if e["message"].startswith("{")]
    assert structured[0]["splunk.event.user"] == "bob"


def test_splunk_handler_one_request_per_record(server: RunningServer) -> None:
    handler = SplunkHandler(
        host="127.0.0.1",
        port=server.port,
        token=server.tokens["ingest"],
        index="main",
        protocol="http",
        verify=False,
        flush_interval=0,  # every record is posted at once, in its own request
        retry_count=0,
        sourcetype="hec-handler-single",
        source="keelwatch-tests",
    )
    logger = hec_logger("single", handler)
    sent = [f"single record {i}" for i in range(5)]
    for message in sent:
        logger.warning(message)
    handler.close()
    logger.removeHandler(handler)
    assert messages(server, "hec-handler-single") == sorted(sent)


# -- the event endpoint --------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/services/collector", EVENT, "/services/collector/event/1.0"])
def test_event_paths_take_concatenated_envelopes(server: RunningServer, path: str) -> None:
    sourcetype = f"concat-{path.rsplit('/', 1)[-1]}"
    body = (
        envelope("first", sourcetype=sourcetype)
        + envelope("second", sourcetype=sourcetype)  # no separator
        + b" \r\n\t"
        + orjson.dumps([{"event": "third", "sourcetype": sourcetype}])  # an array is a batch
        + b"\n"
        + envelope({"answer": 42}, sourcetype=sourcetype, time="1767225600.25")
    )
    answer = post(server, path, body)
    assert answer.status_code == 200
    assert answer.json() == {"text": "Success", "code": 0}
    stored = server.events(f'splunk.sourcetype:"{sourcetype}"', limit=1000)
    assert sorted(e["message"] for e in stored) == sorted(
        ["first", "second", "third", '{"answer":42}']
    )
    timed = next(e for e in stored if e["message"].startswith("{"))
    assert timed["@timestamp"] == "2026-01-01T00:00:00.250000Z"
    assert timed["splunk.event.answer"] == 42


def test_metadata_and_indexed_fields_are_kept(server: RunningServer) -> None:
    body = envelope(
        "payment failed",
        host="node-3",
        source="/var/log/pay.log",
        sourcetype="pay-app",
        index="shop",
        time=1767225600,
        fields={"team": "payments", "tags": ["a", "b"], "attempt": 3},
    )
    assert post(server, EVENT, body).status_code == 200
    [stored] = server.events('splunk.sourcetype:"pay-app"', limit=1000)
    assert stored["host.name"] == "node-3"
    assert stored["splunk.source"] == "/var/log/pay.log"
    assert stored["splunk.index"] == "shop"
    assert stored["splunk.fields.team"] == "payments"
    assert stored["splunk.fields.tags"] == ["a", "b"]
    assert stored["splunk.fields.attempt"] == 3
    assert stored["@timestamp"] == "2026-01-01T00:00:00.000000Z"


def test_known_records_go_to_their_parser(server: RunningServer) -> None:
    as_object = audit_event("delete", "secrets", name="hec-object")
    as_string = audit_event("delete", "secrets", name="hec-string")
    body = envelope(as_object, sourcetype="kube:apiserver") + envelope(
        orjson.dumps(as_string).decode(), sourcetype="k8s-audit"
    )
    assert post(server, EVENT, body).status_code == 200
    for name, sent in (("hec-object", as_object), ("hec-string", as_string)):
        [stored] = server.events(f"kubernetes.audit.objectRef.name:{name}", limit=1000)
        assert stored["event.dataset"] == "kubernetes.audit"
        assert stored["event.id"] == sent["auditID"]


def test_fluent_bit_kubernetes_records_go_to_the_container_parser(
    server: RunningServer,
) -> None:
    record = {
        "log": "GET /cart 200\n",
        "stream": "stdout",
        "kubernetes": {"pod_name": "cart-5d8", "namespace_name": "hec-shop"},
    }
    assert post(server, EVENT, envelope(record, sourcetype="fluentbit")).status_code == 200
    [stored] = server.events("kubernetes.namespace:hec-shop", limit=1000)
    assert stored["event.dataset"] == "kubernetes.container_logs"
    assert stored["message"] == "GET /cart 200"


# -- the raw endpoint ----------------------------------------------------------------------


@pytest.mark.parametrize("path", [RAW, "/services/collector/raw/1.0"])
def test_raw_lines_take_metadata_from_the_query(server: RunningServer, path: str) -> None:
    sourcetype = f"raw-{path.rsplit('/', 1)[-1]}"
    body = b"line one\r\n\n  \nline two with {json-ish} text\nline three"
    channel = str(uuid.uuid4())
    answer = post(
        server,
        path,
        body,
        headers={**splunk_auth(server), "X-Splunk-Request-Channel": channel},
        params={"sourcetype": sourcetype, "host": "edge-1", "source": "stdin"},
    )
    assert answer.status_code == 200
    assert answer.json() == {"text": "Success", "code": 0, "ackId": 0}
    stored = server.events(f'splunk.sourcetype:"{sourcetype}"', limit=1000)
    assert sorted(e["message"] for e in stored) == [
        "line one",
        "line three",
        "line two with {json-ish} text",
    ]
    assert {(e["host.name"], e["splunk.source"], e["splunk.channel"]) for e in stored} == {
        ("edge-1", "stdin", channel)
    }


def test_raw_without_a_channel_is_taken(server: RunningServer) -> None:
    answer = post(server, RAW, b"no channel here", params={"sourcetype": "raw-nochannel"})
    assert answer.json() == {"text": "Success", "code": 0}
    assert messages(server, "raw-nochannel") == ["no channel here"]


# -- gzip ----------------------------------------------------------------------------------


def test_gzip_bodies_are_taken_and_bombs_refused(server: RunningServer) -> None:
    body = gzip.compress(envelope("zipped", sourcetype="gz") * 3)
    headers = {**splunk_auth(server), "Content-Encoding": "gzip"}
    assert post(server, EVENT, body, headers=headers).status_code == 200
    assert messages(server, "gz") == ["zipped"] * 3

    bomb = gzip.compress(b" " * (200 * 1024 * 1024), compresslevel=9)
    answer = post(server, EVENT, bomb, headers=headers)
    assert answer.status_code == 413
    assert answer.json()["code"] == 6
    assert "decompressed" in answer.json()["text"]
    broken = post(server, EVENT, b"\x1f\x8b not gzip", headers=headers)
    assert (broken.status_code, broken.json()["code"]) == (400, 6)
    odd = post(server, EVENT, b"{}", headers={**splunk_auth(server), "Content-Encoding": "br"})
    assert odd.status_code == 415


# -- authentication ------------------------------------------------------------------------


def test_token_errors_follow_the_hec_table(server: RunningServer) -> None:
    body = envelope("never stored", sourcetype="refused")
    cases = [
        ({}, None, 401, {"text": "Token is required", "code": 2}),
        ({"Authorization": "Token abc"}, None, 401, {"text": "Invalid authorization", "code": 3}),
        ({"Authorization": "Splunk kw_wrong"}, None, 403, {"text": "Invalid token", "code": 4}),
        (splunk_auth(server, "analyst"), None, 403, {"text": "Invalid token", "code": 4}),
        (
            {},
            {"token": server.tokens["ingest"]},
            400,
            {"text": "Query string authorization is not enabled", "code": 16},
        ),
    ]
    for headers, params, status, reply in cases:
        answer = post(server, EVENT, body, headers=headers, params=params)
        assert (answer.status_code, answer.json()) == (status, reply), headers
    assert messages(server, "refused") == []


@pytest.mark.parametrize("scheme", ["Bearer", "Basic"])
def test_other_authorization_schemes_carry_the_token(server: RunningServer, scheme: str) -> None:
    token = server.tokens["ingest"]
    if scheme == "Basic":
        token = base64.b64encode(f"x:{token}".encode()).decode()
    sourcetype = f"auth-{scheme.lower()}"
    answer = post(
        server, EVENT, envelope("ok", sourcetype=sourcetype), {"Authorization": f"{scheme} {token}"}
    )
    assert answer.status_code == 200
    assert messages(server, sourcetype) == ["ok"]


# -- bad events ----------------------------------------------------------------------------


def test_events_before_an_invalid_one_are_kept_and_the_rest_dead_lettered(
    server: RunningServer,
) -> None:
    body = (
        envelope("kept 0", sourcetype="partial")
        + envelope("kept 1", sourcetype="partial")
        + b'{"event": "broken", sourcetype}'
        + envelope("after the break", sourcetype="partial")
    )
    answer = post(server, EVENT, body)
    assert answer.status_code == 400
    assert answer.json() == {"text": "Invalid data format", "code": 6, "invalid-event-number": 2}
    assert messages(server, "partial") == ["kept 0", "kept 1"]
    letters = [d for d in dead_letters(server) if "broken" in d["raw"]]
    assert len(letters) == 1
    assert letters[0]["reason"].startswith("HEC event 2: invalid JSON")
    assert "after the break" in letters[0]["raw"]  # unread, but kept


@pytest.mark.parametrize(
    ("bad", "status"),
    [
        ({"sourcetype": "bad"}, {"text": "Event field is required", "code": 12}),
        ({"event": ""}, {"text": "Event field cannot be blank", "code": 13}),
        ({"event": "  "}, {"text": "Event field cannot be blank", "code": 13}),
        ({"event": None}, {"text": "Event field cannot be blank", "code": 13}),
        ({"event": "x", "time": "yesterday"}, INDEXED_FIELDS_ERROR),
        ({"event": "x", "fields": {"a": {"b": 1}}}, INDEXED_FIELDS_ERROR),
        ({"event": "x", "host": 7}, {"text": "Invalid data format", "code": 6}),
        ("just a string", {"text": "Invalid data format", "code": 6}),
    ],
)  # fmt: skip
def test_invalid_envelopes_are_refused_with_their_number(
    server: RunningServer, bad: Any, status: dict[str, Any]
) -> None:
    marker = uuid.uuid4().hex
    body = (
        envelope(f"good {marker}", sourcetype="numbered")
        + orjson.dumps(bad)
        + envelope(f"later {marker}", sourcetype="numbered")
    )
    answer = post(server, EVENT, body)
    assert answer.status_code == 400
    assert answer.json() == {**status, "invalid-event-number": 1}
    assert f"good {marker}" in messages(server, "numbered")
    assert f"later {marker}" not in messages(server, "numbered")
    raws = " ".join(d["raw"] for d in dead_letters(server))
    assert orjson.dumps(bad).decode() in raws and f"later {marker}" in raws


@pytest.mark.parametrize("body", [b"", b"  \n ", b"[]"])
def test_no_data(server: RunningServer, body: bytes) -> None:
    answer = post(server, EVENT, body)
    assert (answer.status_code, answer.json()) == (400, {"text": "No data", "code": 5})
    assert post(server, RAW, body.replace(b"[]", b"")).json()["code"] == 5


# -- health and acknowledgements -----------------------------------------------------------


@pytest.mark.parametrize("path", [HEALTH, "/services/collector/health/1.0"])
def test_health(server: RunningServer, path: str) -> None:
    answer = httpx.get(server.url + path, timeout=30)
    assert (answer.status_code, answer.json()) == (200, {"text": "HEC is healthy", "code": 17})
    good = httpx.get(server.url + path, headers=splunk_auth(server), timeout=30)
    assert good.json()["code"] == 17
    bad = httpx.get(server.url + path, headers={"Authorization": "Splunk nope"}, timeout=30)
    assert (bad.status_code, bad.json()) == (400, {"text": "Invalid token", "code": 21})


def test_ack_ids_per_channel_and_the_ack_query(server: RunningServer) -> None:
    channel = str(uuid.uuid4())
    other = str(uuid.uuid4())
    with_channel = {**splunk_auth(server), "X-Splunk-Request-Channel": channel}
    ids = [
        post(server, EVENT, envelope(f"acked {i}"), with_channel).json()["ackId"] for i in range(3)
    ]
    assert ids == [0, 1, 2]
    # The query parameter and an upper-case spelling name the same channel.
    upper = post(server, RAW, b"raw acked", params={"channel": channel.upper()})
    assert upper.json()["ackId"] == 3
    assert post(server, EVENT, envelope("other"), params={"channel": other}).json()["ackId"] == 0
    assert "ackId" not in post(server, EVENT, envelope("no channel")).json()

    query = orjson.dumps({"acks": [0, 3, 4, 99]})
    answer = post(server, ACK, query, {**splunk_auth(server), "X-Splunk-Request-Channel": channel})
    assert answer.status_code == 200
    assert answer.json() == {"acks": {"0": True, "3": True, "4": False, "99": False}}
    assert post(server, ACK, query, params={"channel": other}).json()["acks"]["0"] is True


def test_ack_errors(server: RunningServer) -> None:
    known = str(uuid.uuid4())
    post(server, EVENT, envelope("opens a channel"), params={"channel": known})
    query = orjson.dumps({"acks": [0]})
    cases = [
        (None, query, 400, 10),  # no channel
        (str(uuid.uuid4()), query, 400, 11),  # never used
        ("not-a-guid", query, 400, 11),
        (known, b"", 400, 5),
        (known, b"{not json", 400, 6),
        (known, orjson.dumps({"acks": ["0"]}), 400, 6),
        (known, orjson.dumps({"acks": [-1]}), 400, 6),
        (known, orjson.dumps({"acks": list(range(10_001))}), 400, 6),
    ]
    for channel, body, status, code in cases:
        params = {"channel": channel} if channel else None
        answer = post(server, ACK, body, params=params)
        assert (answer.status_code, answer.json()["code"]) == (status, code), (channel, body[:40])
    refused = post(server, ACK, query, headers={}, params={"channel": known})
    assert (refused.status_code, refused.json()["code"]) == (401, 2)
    bad_channel = post(server, EVENT, envelope("x"), params={"channel": "nope"})
    assert (bad_channel.status_code, bad_channel.json()["code"]) == (400, 11)


def test_receipts_and_refusals_are_counted(server: RunningServer) -> None:
    assert post(server, EVENT, envelope("counted")).status_code == 200
    post(server, EVENT, b"", headers={})
    too_large = post(server, EVENT, b" " * (1024 * 1024 + 1))
    assert (too_large.status_code, too_large.json()["code"]) == (413, 6)
    text = httpx.get(server.url + "/metrics", headers=server.headers("analyst"), timeout=30).text
    assert (
        'keelwatch_requests_rejected_total{protocol="splunk-hec",reason="token_is_required"}'
        in text
    )
    assert 'protocol="splunk-hec",reason="payload_too_large"}' in text
    assert 'keelwatch_records_received_total{protocol="splunk-hec",source="splunk-hec"}' in text


# -- overload ------------------------------------------------------------------------------


def test_overload_answers_503_code_9_and_health_reports_full_queues(
    gated_server: InProcessServer[GatedStore],
) -> None:
    url, store = gated_server.url, gated_server.store
    body = envelope("under pressure", sourcetype="busy")

    async def scenario() -> tuple[httpx.Response, ...]:
        async with httpx.AsyncClient(base_url=url, timeout=60) as client:
            first = asyncio.create_task(client.post(EVENT, content=body))
            await until(store.entered.is_set)
            health = await client.get(HEALTH)
            second = await client.post(EVENT, content=body)
            store.gate.set()
            done = await first
            healthy = await client.get(HEALTH)
            retried = await client.post(EVENT, content=body)
            return done, health, second, healthy, retried

    first, health, second, healthy, retried = asyncio.run(scenario())
    assert (health.status_code, health.json()["code"]) == (503, 18)
    assert second.status_code == 503
    assert second.json() == {"text": "Server is busy", "code": 9}
    assert second.headers["Retry-After"] == "1"
    assert first.json() == retried.json() == {"text": "Success", "code": 0}
    assert healthy.json()["code"] == 17
    rows = store.sql("SELECT count(*) FROM events").rows
    assert rows == [(2,)]  # the refused request stored nothing
    metrics = httpx.get(url + "/metrics", timeout=30).text
    assert (
        'keelwatch_requests_rejected_total{protocol="splunk-hec",reason="overloaded"} 1' in metrics
    )
