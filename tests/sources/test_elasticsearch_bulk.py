"""The Elasticsearch `_bulk` adapter against a real `keelwatch serve`, driven by real clients.

The official `elasticsearch` client (basic auth and API key) and `opensearch-py` send known sets
of Kubernetes audit events and Falco alerts; the test then reads back exactly what was stored.
Raw HTTP covers what clients do not: gzip, mixed good and bad items, bad action lines, auth
before the body is read and the body limit.
"""

from __future__ import annotations

import base64
import gzip
import socket
import uuid
import zlib
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from elasticsearch import Elasticsearch
from elasticsearch import helpers as es_helpers
from opensearchpy import OpenSearch
from opensearchpy import helpers as os_helpers

from ..fixtures import audit_event
from ..server_process import RunningServer, make_server
from .elasticsearch_helpers import falco_alert, ndjson

PRODUCT = "Elasticsearch"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    running = make_server(tmp_path_factory.mktemp("data"), "--max-body-mb", "1")
    running.start()
    yield running
    running.stop()


def ingest_headers(server: RunningServer, **extra: str) -> dict[str, str]:
    return {**server.headers("ingest"), **extra}


def stored(server: RunningServer, ids: list[str]) -> set[tuple[str, str]]:
    quoted = ", ".join(f"'{i}'" for i in ids)
    rows = server.sql(f"SELECT event_id, dataset FROM events WHERE event_id IN ({quoted})")
    return {(row[0], row[1]) for row in rows}


def dead_letters_containing(server: RunningServer, marker: str) -> list[list[Any]]:
    return server.sql(
        "SELECT source, reason FROM dead_letters "
        f"WHERE CAST(raw AS VARCHAR) LIKE '%{marker}%' ORDER BY reason",
    )


def post_bulk(
    server: RunningServer, body: bytes, path: str = "/_bulk", **headers: str
) -> httpx.Response:
    return httpx.post(
        server.url + path,
        content=body,
        headers=ingest_headers(server, **{"Content-Type": "application/x-ndjson", **headers}),
        timeout=60,
    )


def known_set() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    audits = [audit_event(name=f"pod-{n}", audit_id=str(uuid.uuid4())) for n in range(3)]
    alerts = [falco_alert(pod=f"pod-{n}") for n in range(2)]
    return audits, alerts


def expected(audits: list[dict[str, Any]], alerts: list[dict[str, Any]]) -> set[tuple[str, str]]:
    return {(a["auditID"], "kubernetes.audit") for a in audits} | {
        (f["uuid"], "falco.alerts") for f in alerts
    }


# -- real clients ------------------------------------------------------------------------------


def test_official_client_with_basic_auth_stores_exactly_the_set(server: RunningServer) -> None:
    audits, alerts = known_set()
    actions = [{"_index": "k8s-audit", "_source": event} for event in audits] + [
        {"_op_type": "create", "_index": "keelwatch-falco-2026.11", "_source": alert}
        for alert in alerts
    ]
    client = Elasticsearch(server.url, basic_auth=("elastic", server.tokens["ingest"]))
    assert client.info()["version"]["number"].startswith("9.")
    ok, errors = es_helpers.bulk(client, actions, chunk_size=2)
    assert (ok, errors) == (5, [])
    ids = [a["auditID"] for a in audits] + [f["uuid"] for f in alerts]
    assert stored(server, ids) == expected(audits, alerts)


def test_official_client_with_api_key_and_shape_recognition(server: RunningServer) -> None:
    audits, alerts = known_set()
    # A data-stream name that names no parser: every record is recognised by its shape.
    actions = [
        {"_op_type": "create", "_index": "logs-generic-default", "_source": event}
        for event in [*audits, *alerts]
    ]
    for api_key in (("keelwatch", server.tokens["ingest"]), server.tokens["ingest"]):
        client = Elasticsearch(server.url, api_key=api_key)
        ok, errors = es_helpers.bulk(client, actions)
        assert (ok, errors) == (5, [])
    ids = [a["auditID"] for a in audits] + [f["uuid"] for f in alerts]
    assert stored(server, ids) == expected(audits, alerts)
    counted = server.sql(f"SELECT count(*) FROM events WHERE event_id = '{ids[0]}'")
    assert counted == [[2]]  # sent twice, once per form of API key


def test_opensearch_client_stores_exactly_the_set(server: RunningServer) -> None:
    audits, alerts = known_set()
    actions = [{"_index": "k8s-audit", "_source": event} for event in audits] + [
        {"_index": "falco", "_source": alert} for alert in alerts
    ]
    client = OpenSearch(server.url, http_auth=("admin", server.tokens["ingest"]))
    ok, errors = os_helpers.bulk(client, actions)
    assert (ok, errors) == (5, [])
    ids = [a["auditID"] for a in audits] + [f["uuid"] for f in alerts]
    assert stored(server, ids) == expected(audits, alerts)


def test_official_client_setup_calls_succeed(server: RunningServer) -> None:
    """What Filebeat-style setup asks through the client: all acknowledged, all "present"."""
    client = Elasticsearch(server.url, basic_auth=("elastic", server.tokens["ingest"]))
    assert client.ping()
    assert client.cluster.health()["status"] == "green"
    assert client.license.get()["license"]["status"] == "active"
    assert client.xpack.info()["features"]["ilm"]["available"] is True
    template = {"index_patterns": ["filebeat-*"], "data_stream": {}}
    assert client.indices.put_index_template(name="filebeat-9.1.0", **template)["acknowledged"]
    assert client.indices.exists_index_template(name="filebeat-9.1.0")
    assert client.indices.exists_template(name="legacy")
    assert client.cluster.put_component_template(name="parts", template={})["acknowledged"]
    assert client.ilm.put_lifecycle(name="filebeat", policy={"phases": {}})["acknowledged"]
    assert "filebeat" in client.ilm.get_lifecycle(name="filebeat")
    assert client.indices.exists_alias(name="filebeat-9.1.0")
    assert client.indices.create_data_stream(name="logs-kw-default")["acknowledged"]
    assert client.indices.get_data_stream(name="logs-kw-default")["data_streams"]
    assert client.indices.exists(index="k8s-audit")
    assert client.indices.create(index="k8s-audit-new")["index"] == "k8s-audit-new"
    nodes = client.nodes.info(metric="http")["nodes"]
    assert [n["http"]["publish_address"] for n in nodes.values()] == [f"127.0.0.1:{server.port}"]


# -- handshake over raw HTTP -------------------------------------------------------------------


def test_info_answers_like_elasticsearch(server: RunningServer) -> None:
    compatible = "application/vnd.elasticsearch+json; compatible-with=9"
    answer = httpx.get(server.url + "/", headers=ingest_headers(server, Accept=compatible))
    assert answer.status_code == 200
    assert answer.headers["X-Elastic-Product"] == PRODUCT
    assert answer.headers["Content-Type"] == "application/vnd.elasticsearch+json;compatible-with=9"
    document = answer.json()
    assert document["version"]["number"].split(".")[0] == "9"
    assert document["version"]["build_flavor"] == "default"
    assert document["tagline"] == "You Know, for Search"
    plain = httpx.get(server.url + "/", headers=ingest_headers(server))
    assert plain.headers["Content-Type"] == "application/json"
    head = httpx.head(server.url + "/", headers=ingest_headers(server))
    assert (head.status_code, head.content) == (200, b"")
    assert head.headers["X-Elastic-Product"] == PRODUCT


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/_cluster/health"),
        ("GET", "/_cluster/state/version"),
        ("GET", "/_license"),
        ("GET", "/_xpack"),
        ("GET", "/_nodes/_all/http"),
        ("HEAD", "/_index_template/filebeat-8.19.0"),
        ("PUT", "/_index_template/filebeat-8.19.0"),
        ("GET", "/_template/filebeat"),
        ("PUT", "/_component_template/logs-settings"),
        ("GET", "/_ilm/policy/filebeat"),
        ("PUT", "/_ilm/policy/filebeat"),
        ("HEAD", "/_alias/filebeat-7.17.0"),
        ("GET", "/_data_stream/logs-generic-default"),
        ("PUT", "/_data_stream/logs-generic-default"),
        ("HEAD", "/fluent-bit"),
        ("PUT", "/fluent-bit"),
    ],
)
def test_handshake_endpoints_need_a_token_and_answer(
    server: RunningServer, method: str, path: str
) -> None:
    refused = httpx.request(method, server.url + path)
    assert refused.status_code == 401
    assert refused.headers["WWW-Authenticate"] == 'Basic realm="keelwatch"'
    answer = httpx.request(method, server.url + path, headers=ingest_headers(server), json={})
    assert answer.status_code == 200, answer.text
    assert answer.headers["X-Elastic-Product"] == PRODUCT
    if method != "HEAD":
        assert isinstance(answer.json(), dict)


def test_vector_reads_the_major_version(server: RunningServer) -> None:
    # Vector's api_version "auto" takes the major of version.number from GET /.
    number = httpx.get(server.url + "/", headers=ingest_headers(server)).json()["version"]
    assert int(number["number"].split(".")[0]) >= 8


# -- bulk over raw HTTP ------------------------------------------------------------------------


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
def test_compressed_body(server: RunningServer, encoding: str) -> None:
    audits, alerts = known_set()
    body = ndjson(
        *[part for a in audits for part in ({"index": {}}, a)],
        *[part for f in alerts for part in ({"create": {"_index": "falco"}}, f)],
    )
    packed = gzip.compress(body) if encoding == "gzip" else zlib.compress(body)
    answer = post_bulk(server, packed, "/k8s-audit/_bulk", **{"Content-Encoding": encoding})
    assert answer.status_code == 200, answer.text
    result = answer.json()
    assert result["errors"] is False
    assert [next(iter(i)) for i in result["items"]] == ["index"] * 3 + ["create"] * 2
    assert [i["index"]["_index"] for i in result["items"][:3]] == ["k8s-audit"] * 3
    assert result["items"][3]["create"]["_index"] == "falco"
    ids = [a["auditID"] for a in audits] + [f["uuid"] for f in alerts]
    assert stored(server, ids) == expected(audits, alerts)


def test_mixed_items_answer_in_order_and_bad_ones_are_dead_lettered(server: RunningServer) -> None:
    marker = uuid.uuid4().hex
    good_audit = audit_event(audit_id=str(uuid.uuid4()))
    good_alert = falco_alert()
    not_json = f'{{"broken": "{marker}-json"'.encode()
    not_audit = {"kind": "Event", "apiVersion": "audit.k8s.io/v1", "note": f"{marker}-audit"}
    unknown = {"hello": f"{marker}-auto"}
    body = b"".join(
        [
            ndjson({"index": {"_index": "k8s-audit", "_id": "a1"}}, good_audit),
            ndjson({"index": {"_index": "k8s-audit"}}),
            not_json + b"\n",
            ndjson({"delete": {"_index": "k8s-audit", "_id": "a1"}}),
            ndjson({"create": {"_index": "keelwatch-falco-2026.11"}}, good_alert),
            ndjson({"index": {"_index": "k8s-audit"}}, [marker]),
            ndjson({"update": {"_index": "k8s-audit", "_id": "a1"}}, {"doc": {"x": 1}}),
            ndjson({"index": {"_index": "k8s-audit"}}, not_audit),
            ndjson({"index": {"_index": "logs-app"}}, unknown),
        ]
    )
    answer = post_bulk(server, body)
    assert answer.status_code == 200, answer.text
    result = answer.json()
    assert result["errors"] is True
    actions = [next(iter(item)) for item in result["items"]]
    assert actions == ["index", "index", "delete", "create", "index", "update", "index", "index"]
    statuses = [item[a]["status"] for item, a in zip(result["items"], actions, strict=True)]
    assert statuses == [201, 400, 400, 201, 400, 400, 400, 400]
    first = result["items"][0]["index"]
    assert (first["_id"], first["result"], first["_index"]) == ("a1", "created", "k8s-audit")
    errors = [item[a].get("error") for item, a in zip(result["items"], actions, strict=True)]
    assert errors[2]["reason"].startswith("keelwatch does not support the [delete] action")
    assert errors[5]["reason"].startswith("keelwatch does not support the [update] action")
    assert errors[1]["type"] == "document_parsing_exception"
    assert "must be a JSON object, not list" in errors[4]["reason"]
    assert "no parser recognises" in errors[7]["reason"]
    assert stored(server, [good_audit["auditID"], good_alert["uuid"]]) == {
        (good_audit["auditID"], "kubernetes.audit"),
        (good_alert["uuid"], "falco.alerts"),
    }
    kept = dead_letters_containing(server, marker)
    assert len(kept) == 4  # the broken JSON, the list, the bad audit event, the unknown shape
    assert {row[0] for row in kept} == {"k8s-audit", "auto"}
    assert not dead_letters_containing(server, '"doc"')  # updates are refused, not kept


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b'{"index": {}\n{"a": 1}\n', "Malformed action/metadata line [1]"),
        (b'{"index": {}}\n{"a": 1}\n{"upsert": {}}\n{"a": 1}\n', "but found [upsert]"),
        (b'{"index": {}, "create": {}}\n{"a": 1}\n', "Malformed action/metadata line [1]"),
        (b'{"index": {}}\n{"a": 1}\n\n{"create": {}}\n', "has no source line"),
        (b'{"index": {"_index": 5}}\n{"a": 1}\n', "[_index] must be a string"),
        (b"\n\n", "no requests added"),
    ],
)
def test_malformed_requests_are_refused_whole(
    server: RunningServer, body: bytes, reason: str
) -> None:
    answer = post_bulk(server, body, "/k8s-audit/_bulk")
    assert answer.status_code == 400
    assert answer.headers["X-Elastic-Product"] == PRODUCT
    error = answer.json()
    assert error["status"] == 400
    assert error["error"]["type"] == "illegal_argument_exception"
    assert reason in error["error"]["reason"]
    assert error["error"]["root_cause"][0]["reason"] == error["error"]["reason"]


def _read_response(sock: socket.socket) -> bytes:
    """One whole HTTP response: headers and body may arrive in separate segments."""
    data = b""
    while True:
        head, separator, body = data.partition(b"\r\n\r\n")
        if separator:
            lengths = [
                int(line.split(b":", 1)[1])
                for line in head.lower().split(b"\r\n")
                if line.startswith(b"content-length:")
            ]
            if len(body) >= (lengths[0] if lengths else 0):
                return data
        more = sock.recv(65536)
        if not more:
            return data
        data += more


def _raw_request(server: RunningServer, authorization: str) -> bytes:
    """Send headers and only the start of a 1 MB body; the answer must come without the rest."""
    head = (
        "POST /_bulk HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-ndjson\r\n"
        f"{authorization}Content-Length: 1000000\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", server.port), timeout=60) as sock:
        sock.sendall(head.encode() + b'{"index": {}}\n')
        return _read_response(sock)  # a server waiting for the body would time out here


@pytest.mark.parametrize(
    "authorization",
    [
        "",
        "Authorization: Basic " + base64.b64encode(b"elastic:kw_wrong").decode() + "\r\n",
        "Authorization: ApiKey " + base64.b64encode(b"id:kw_wrong").decode() + "\r\n",
        "Authorization: Bearer kw_wrong\r\n",
    ],
)
def test_wrong_token_is_refused_before_the_body_is_read(
    server: RunningServer, authorization: str
) -> None:
    response = _raw_request(server, authorization)
    assert response.startswith(b"HTTP/1.1 401")
    assert b'www-authenticate: basic realm="keelwatch"' in response.lower()
    assert b"security_exception" in response


def test_analyst_token_cannot_ingest(server: RunningServer) -> None:
    answer = httpx.post(
        server.url + "/_bulk", content=ndjson({"index": {}}, {}), headers=server.headers("analyst")
    )
    assert answer.status_code == 401


def test_every_credential_form_is_accepted(server: RunningServer) -> None:
    token = server.tokens["ingest"]
    forms = [
        "Basic " + base64.b64encode(f"elastic:{token}".encode()).decode(),
        "ApiKey " + base64.b64encode(f"id:{token}".encode()).decode(),
        f"ApiKey {token}",
        f"Bearer {token}",
    ]
    for form in forms:
        answer = httpx.get(server.url + "/", headers={"Authorization": form})
        assert answer.status_code == 200, form


def test_oversize_body_is_413(server: RunningServer) -> None:
    line = ndjson({"index": {"_index": "k8s-audit"}}, audit_event())
    body = line * (2 * 1024 * 1024 // len(line) + 1)
    answer = post_bulk(server, body)
    assert answer.status_code == 413
    assert answer.json()["status"] == 413
    assert answer.headers["X-Elastic-Product"] == PRODUCT


def test_bad_gzip_is_400(server: RunningServer) -> None:
    answer = post_bulk(server, b"\x1f\x8bnot gzip at all", **{"Content-Encoding": "gzip"})
    assert answer.status_code == 400
    assert "does not decompress" in answer.json()["error"]["reason"]


def test_rejects_are_counted(server: RunningServer) -> None:
    httpx.post(server.url + "/_bulk", content=b"{}")
    metrics = httpx.get(server.url + "/metrics", headers=server.headers("analyst")).text
    counted = [line for line in metrics.splitlines() if 'protocol="elasticsearch"' in line]
    assert any('reason="unauthorized"' in line for line in counted)
