"""Filebeat's output.elasticsearch: Beats documents land in the common schema as they do
through Lumberjack (the same routing), sent with the official Elasticsearch client."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import orjson
import pytest
from elasticsearch import Elasticsearch
from elasticsearch import helpers as es_helpers

from ..fixtures import audit_event
from ..server_process import RunningServer, make_server
from .test_lumberjack import filebeat_line


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    running = make_server(tmp_path_factory.mktemp("data"))
    running.start()
    yield running
    running.stop()


def test_filebeat_documents_via_bulk_fill_the_kubernetes_fields(server: RunningServer) -> None:
    marker = uuid.uuid4().hex
    audit = audit_event(audit_id=f"beats-{marker}")
    docs = [
        filebeat_line(f"GET /cart {marker}", pod="web-2"),
        {**filebeat_line(orjson.dumps(audit).decode()), "kubernetes": {}},
    ]
    client = Elasticsearch(server.url, basic_auth=("filebeat", server.tokens["ingest"]))
    actions = [{"_op_type": "create", "_index": "filebeat-8.13.0", "_source": d} for d in docs]
    ok, errors = es_helpers.bulk(client, actions)
    assert (ok, errors) == (2, [])
    rows = server.sql(
        f"SELECT dataset, namespace, pod, node FROM events WHERE message = 'GET /cart {marker}'",
    )
    assert rows == [["kubernetes.container_logs", "shop", "web-2", "node-7"]]
    # A log line holding an audit event is handed to the audit parser, as over Lumberjack.
    audits = server.sql(
        "SELECT dataset FROM events "
        f"WHERE doc->>'$.\"kubernetes.audit.auditID\"' = 'beats-{marker}'",
    )
    assert audits == [["kubernetes.audit"]]
