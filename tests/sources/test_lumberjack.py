"""Lumberjack v2 against a real `keelwatch serve` process, driven by the pylogbeat client.

pylogbeat sends a window frame plus one zlib-compressed frame of JSON frames and blocks until
the server's ACK carries the last sequence number, so every ``send`` returning here means the
server acknowledged, and the test then checks that exactly those events were stored.
"""

from __future__ import annotations

import socket
import ssl
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pylogbeat
import pytest

from ..fixtures import audit_event
from ..server_process import RunningServer, free_port, make_server


def sql(server: RunningServer, query: str) -> list[list[Any]]:
    answer = httpx.post(
        server.url + "/api/v1/sql",
        content=orjson.dumps({"query": query}),
        headers=server.headers("analyst"),
        timeout=30,
    )
    assert answer.status_code == 200, answer.text
    rows: list[list[Any]] = answer.json()["rows"]
    return rows


def filebeat_line(message: str, *, pod: str = "web-1", stream: str = "stdout") -> dict[str, Any]:
    """What Filebeat's container input with add_kubernetes_metadata ships for one log line."""
    return {
        "@timestamp": "2026-03-01T10:00:00.250Z",
        "@metadata": {"beat": "filebeat", "type": "_doc", "version": "8.13.0"},
        "message": message,
        "stream": stream,
        "input": {"type": "container"},
        "log": {"offset": 1024, "file": {"path": f"/var/log/containers/{pod}_shop_app-0.log"}},
        "container": {"id": "4f1c0ffee", "runtime": "containerd", "image": {"name": "shop:1.2"}},
        "kubernetes": {
            "pod": {"name": pod, "uid": "9d2e-uid", "ip": "10.1.2.3"},
            "namespace": "shop",
            "node": {"name": "node-7"},
            "labels": {"app": "shop"},
            "container": {"name": "app"},
            "deployment": {"name": "shop"},
        },
        "host": {"name": "node-7"},
        "agent": {"type": "filebeat", "version": "8.13.0"},
        "ecs": {"version": "8.0.0"},
    }


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunningServer, int]]:
    port = free_port()
    running = make_server(
        tmp_path_factory.mktemp("data"), "--lumberjack-port", str(port), "--insecure-no-auth"
    )
    running.start()
    yield running, port
    running.stop()


def test_pylogbeat_events_are_stored_exactly_once(server: tuple[RunningServer, int]) -> None:
    running, port = server
    run = uuid.uuid4().hex[:8]
    lines = [filebeat_line(f"{run} line {n}", pod=f"web-{n % 3}") for n in range(120)]
    audit_ids = [f"{run}-audit-{n}" for n in range(6)]
    # An audit log file read by Filebeat: the line is the audit event, as JSON text.
    audit_lines = [
        {**filebeat_line(orjson.dumps(audit_event(audit_id=i)).decode()), "kubernetes": {}}
        for i in audit_ids[:3]
    ]
    # Audit events already decoded (ndjson parser into the root), named by a custom field.
    audit_objects = [
        {**audit_event(audit_id=i), "fields": {"keelwatch_source": "k8s-audit"}}
        for i in audit_ids[3:]
    ]
    with pylogbeat.PyLogBeatClient("127.0.0.1", port, timeout=60) as client:
        client.send(lines[:100])
        client.send(audit_lines + lines[100:])
        client.send(audit_objects)

    stored = sql(running, f"SELECT message FROM events WHERE message LIKE '{run} line %'")
    assert sorted(row[0] for row in stored) == sorted(line["message"] for line in lines)
    audits = sql(
        running,
        f"SELECT event_id, dataset FROM events WHERE event_id LIKE '{run}-audit-%'",
    )
    assert sorted(audits) == sorted([i, "kubernetes.audit"] for i in audit_ids)
    dead = sql(running, "SELECT count(*) FROM dead_letters")
    assert dead == [[0]]


def test_filebeat_kubernetes_line_lands_in_the_common_schema(
    server: tuple[RunningServer, int],
) -> None:
    running, port = server
    marker = uuid.uuid4().hex
    with pylogbeat.PyLogBeatClient("127.0.0.1", port, timeout=60) as client:
        client.send([filebeat_line(f"GET /cart {marker}", pod="web-2", stream="stderr")])
    rows = sql(
        running,
        "SELECT dataset, namespace, pod, node, container_id, image, host, ts, doc "
        f"FROM events WHERE message = 'GET /cart {marker}'",
    )
    assert len(rows) == 1
    dataset, namespace, pod, node, container_id, image, host, ts, doc = rows[0]
    assert (dataset, namespace, pod, node) == (
        "kubernetes.container_logs",
        "shop",
        "web-2",
        "node-7",
    )
    assert (container_id, image, host) == ("4f1c0ffee", "shop:1.2", "node-7")
    assert ts.startswith("2026-03-01")
    fields = orjson.loads(doc)
    assert fields["log.iostream"] == "stderr"
    assert fields["container.name"] == "app"
    assert fields["kubernetes.pod.uid"] == "9d2e-uid"
    assert fields["kubernetes.labels.app"] == "shop"
    # Beats' own fields stay, under the container parser's native namespace.
    assert fields["container_log.log.file.path"] == "/var/log/containers/web-2_shop_app-0.log"
    assert fields["container_log.agent.type"] == "filebeat"


def test_refuses_to_start_without_client_certificates(tmp_path: Path) -> None:
    running = make_server(tmp_path, "--lumberjack-port", str(free_port()))
    with pytest.raises(RuntimeError) as failure:
        running.start()
    running.stop(kill=True)
    assert "--tls-client-ca" in str(failure.value)
    assert "--insecure-no-auth" in str(failure.value)


# -- TLS with client certificates ---------------------------------------------------------


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60)


def _issue(directory: Path, name: str, ca: Path, ca_key: Path, extensions: str) -> None:
    key, csr = directory / f"{name}.key", directory / f"{name}.csr"
    _openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", str(key))
    _openssl("req", "-new", "-key", str(key), "-out", str(csr), "-subj", f"/CN={name}")
    ext = directory / f"{name}.ext"
    ext.write_text(
        extensions + "\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n"
        "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n"
    )
    _openssl(
        "x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key),
        "-CAcreateserial", "-out", str(directory / f"{name}.pem"), "-days", "2",
        "-extfile", str(ext),
    )  # fmt: skip


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("pki")
    ca, ca_key = directory / "ca.pem", directory / "ca.key"
    _openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", str(ca_key))
    _openssl(
        "req", "-x509", "-new", "-key", str(ca_key), "-out", str(ca), "-days", "2",
        "-subj", "/CN=keelwatch-test-ca",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
    )  # fmt: skip
    _issue(
        directory, "server", ca, ca_key,
        "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth",
    )  # fmt: skip
    _issue(directory, "beat", ca, ca_key, "extendedKeyUsage=clientAuth")
    return directory


@pytest.fixture
def tls_server(certificates: Path, tmp_path: Path) -> Iterator[tuple[RunningServer, int]]:
    port = free_port()
    running = make_server(
        tmp_path,
        "--lumberjack-port", str(port), "--lumberjack-tls",
        "--tls-cert", str(certificates / "server.pem"),
        "--tls-key", str(certificates / "server.key"),
        "--tls-client-ca", str(certificates / "ca.pem"),
    )  # fmt: skip
    running.start()
    yield running, port
    running.stop()


def test_tls_with_a_client_certificate_is_stored(
    tls_server: tuple[RunningServer, int], certificates: Path
) -> None:
    running, port = tls_server
    lines = [filebeat_line(f"over tls {n}") for n in range(25)]
    with pylogbeat.PyLogBeatClient(
        "127.0.0.1", port, timeout=60, ssl_enable=True, ssl_verify=True,
        ca_certs=str(certificates / "ca.pem"),
        certfile=str(certificates / "beat.pem"), keyfile=str(certificates / "beat.key"),
    ) as client:  # fmt: skip
        client.send(lines)
    stored = sql(running, "SELECT message FROM events WHERE message LIKE 'over tls %'")
    assert sorted(row[0] for row in stored) == sorted(line["message"] for line in lines)


def test_tls_without_a_client_certificate_is_refused(
    tls_server: tuple[RunningServer, int], certificates: Path
) -> None:
    running, port = tls_server
    client = pylogbeat.PyLogBeatClient(
        "127.0.0.1", port, timeout=60, ssl_enable=True, ssl_verify=True,
        ca_certs=str(certificates / "ca.pem"),
    )  # fmt: skip
    with pytest.raises((pylogbeat.ConnectionException, ssl.SSLError, OSError)):
        client.send([filebeat_line("no certificate")])
    client.close()
    # Plain TCP to the TLS port is refused too.
    with socket.create_connection(("127.0.0.1", port), timeout=60) as plain:
        plain.sendall(b"2W\x00\x00\x00\x01" + b"2J\x00\x00\x00\x01\x00\x00\x00\x02{}")
        try:
            reply = plain.recv(64)
        except ConnectionResetError:
            reply = b""
        assert not reply.startswith(b"2A")
    assert sql(running, "SELECT count(*) FROM events") == [[0]]
    metrics = httpx.get(running.url + "/metrics", headers=running.headers("analyst")).text
    assert 'protocol="lumberjack",reason="tls_handshake_failed"' in metrics
