"""Real rsyslog and syslog-ng forward a file of known lines to a real `keelwatch serve`.

Each case starts the daemon unprivileged with a private configuration (high ports, its own work
directory, pid file and control socket) that reads a file through imfile / file() and forwards
it over UDP, TCP (octet-counted and newline framing), TLS with a client certificate, or HTTP
(syslog-ng's http() destination with a Bearer token). The test then checks that exactly the
file's lines were stored, once each, with the header facts the daemon sent.

The daemons come unpacked from Debian's packages by scripts/test-deps/syslog-daemons.sh into
.cache/debian/root (they conflict as installed packages); without them these tests skip.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest

from ..fixtures import audit_event
from ..server_process import RunningServer, free_port, make_server
from .syslog_pki import make_pki

REPO = Path(__file__).resolve().parents[2]
CACHE = Path(os.environ.get("KEELWATCH_DEBIAN_CACHE", REPO / ".cache" / "debian"))
ROOT = CACHE / "root"
RSYSLOGD = ROOT / "usr/sbin/rsyslogd"
SYSLOG_NG = ROOT / "usr/sbin/syslog-ng"
LIBRARY_PATH = ":".join(
    str(ROOT / part)
    for part in ("usr/lib/x86_64-linux-gnu", "lib/x86_64-linux-gnu", "usr/lib/syslog-ng")
)
INSTALL_HINT = "run scripts/test-deps/syslog-daemons.sh to unpack rsyslog and syslog-ng"
LINES = 40


@dataclass
class Keelwatch:
    server: RunningServer
    udp: int
    tcp: int
    tls: int
    pki: Path

    def stored(self, case: str) -> list[dict[str, Any]]:
        rows = self.server.sql(
            f"SELECT doc FROM events WHERE doc->>'message' LIKE '%case={case} %'"
        )
        return [orjson.loads(doc) for (doc,) in rows]


@pytest.fixture(scope="module")
def keelwatch(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Keelwatch]:
    pki = make_pki(tmp_path_factory.mktemp("pki"))
    udp, tcp, tls = free_port(), free_port(), free_port()
    server = make_server(
        tmp_path_factory.mktemp("keelwatch"),
        "--syslog-udp-port", str(udp), "--syslog-tcp-port", str(tcp),
        "--syslog-tls-port", str(tls), "--tls-cert", str(pki / "server.pem"),
        "--tls-key", str(pki / "server.key"), "--tls-client-ca", str(pki / "ca.pem"),
    )  # fmt: skip
    server.start()
    yield Keelwatch(server, udp, tcp, tls, pki)
    server.stop()


def known_lines(case: str) -> list[str]:
    return [f"case={case} line={n} user=u{n % 7} action=login ok" for n in range(LINES)]


@dataclass
class Daemon:
    command: list[str]
    directory: Path
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = {**os.environ, "LD_LIBRARY_PATH": LIBRARY_PATH, "TZ": "UTC"}
        with (self.directory / "daemon.log").open("ab") as log:
            self.process = subprocess.Popen(
                self.command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=self.directory
            )

    def log(self) -> str:
        return (self.directory / "daemon.log").read_text(errors="replace")[-3000:]

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=20)


def wait_for(found: Callable[[], list[dict[str, Any]]], daemon: Daemon) -> list[dict[str, Any]]:
    """The stored events once all LINES arrived (the pytest timeout bounds the wait)."""
    while True:
        events = found()
        if len(events) >= LINES:
            return events
        assert daemon.process is not None
        if daemon.process.poll() is not None:
            pytest.fail(f"the daemon exited: {daemon.log()}")
        time.sleep(0.2)


def check_exactly(events: list[dict[str, Any]], case: str) -> None:
    assert sorted(e["message"] for e in events) == sorted(known_lines(case))


# -- rsyslog ----------------------------------------------------------------------------------

RSYSLOG_ACTIONS = {
    "udp": 'protocol="udp" template="RSYSLOG_ForwardFormat"',
    "tcp-octet-counted": (
        'protocol="tcp" TCP_Framing="octet-counted" template="RSYSLOG_SyslogProtocol23Format"'
    ),
    "tcp-newline": 'protocol="tcp" TCP_Framing="traditional" template="RSYSLOG_ForwardFormat"',
    "tls": (
        'protocol="tcp" TCP_Framing="octet-counted" template="RSYSLOG_SyslogProtocol23Format" '
        'StreamDriver="gtls" StreamDriverMode="1" StreamDriverAuthMode="x509/certvalid"'
    ),
}


def rsyslog(tmp_path: Path, keelwatch: Keelwatch, transport: str, source: Path) -> Daemon:
    port = {"udp": keelwatch.udp, "tls": keelwatch.tls}.get(transport, keelwatch.tcp)
    work = tmp_path / "work"
    work.mkdir()
    pki = keelwatch.pki
    config = tmp_path / "rsyslog.conf"
    config.write_text(
        f'global(workDirectory="{work}" maxMessageSize="64k"\n'
        f'  defaultNetstreamDriverCAFile="{pki / "ca.pem"}"\n'
        f'  defaultNetstreamDriverCertFile="{pki / "relay.pem"}"\n'
        f'  defaultNetstreamDriverKeyFile="{pki / "relay.key"}")\n'
        'module(load="imfile" mode="polling" PollingInterval="1")\n'
        f'input(type="imfile" File="{source}" Tag="shop-api[77]:" Facility="local3" '
        'Severity="warning")\n'
        f'action(type="omfwd" target="127.0.0.1" port="{port}" {RSYSLOG_ACTIONS[transport]})\n'
    )
    command = [
        str(RSYSLOGD), "-n", "-f", str(config), "-i", str(tmp_path / "rsyslogd.pid"),
        "-M", str(ROOT / "usr/lib/x86_64-linux-gnu/rsyslog"),
    ]  # fmt: skip
    return Daemon(command, tmp_path)


@pytest.mark.skipif(not RSYSLOGD.exists(), reason=INSTALL_HINT)
@pytest.mark.parametrize("transport", list(RSYSLOG_ACTIONS))
def test_rsyslog_forwards_a_file(tmp_path: Path, keelwatch: Keelwatch, transport: str) -> None:
    case = f"rsyslog-{transport}"
    source = tmp_path / "app.log"
    audit = audit_event("delete", "secrets", name=f"from-{case}", user="mallory")
    source.write_text("\n".join([*known_lines(case), orjson.dumps(audit).decode()]) + "\n")
    daemon = rsyslog(tmp_path, keelwatch, transport, source)
    daemon.start()
    try:
        events = wait_for(lambda: keelwatch.stored(case), daemon)
        audits = wait_for_audit(keelwatch, f"from-{case}", daemon)
    finally:
        daemon.stop()
    check_exactly(events, case)
    for event in events:
        assert event["log.syslog.facility.name"] == "local3"
        assert event["log.syslog.severity.name"] == "Warning"
        assert event["process.name"] == "shop-api"
        assert event["process.pid"] == 77
        assert event["host.name"]
        assert event["log.syslog.format"] == (
            "rfc3164" if "ForwardFormat" in RSYSLOG_ACTIONS[transport] else "rfc5424"
        )
        assert event["network.transport"] == ("udp" if transport == "udp" else "tcp")
        if transport == "tls":
            assert event["tls.client.subject"] == "O=keelwatch,CN=relay"
    # The JSON line is a Kubernetes audit event: it reached the k8s-audit parser.
    (audit_fields,) = audits
    assert audit_fields["event.dataset"] == "kubernetes.audit"
    assert audit_fields["user.name"] == "mallory"
    assert audit_fields["log.syslog.appname"] == "shop-api"


def wait_for_audit(keelwatch: Keelwatch, name: str, daemon: Daemon) -> list[dict[str, Any]]:
    query = f"SELECT doc FROM events WHERE doc->>'orchestrator.resource.name' = '{name}'"
    while not (rows := keelwatch.server.sql(query)):
        assert daemon.process is not None and daemon.process.poll() is None, daemon.log()
        time.sleep(0.2)
    return [orjson.loads(doc) for (doc,) in rows]


# -- syslog-ng --------------------------------------------------------------------------------


def syslog_ng_destination(keelwatch: Keelwatch, transport: str) -> str:
    pki = keelwatch.pki
    if transport == "udp":
        return f'network("127.0.0.1" port({keelwatch.udp}) transport("udp"))'
    if transport == "tcp-newline":
        return f'network("127.0.0.1" port({keelwatch.tcp}) transport("tcp"))'
    if transport == "tcp-octet-counted":
        return f'syslog("127.0.0.1" port({keelwatch.tcp}) transport("tcp"))'
    if transport == "tls":
        return (
            f'syslog("127.0.0.1" port({keelwatch.tls}) transport("tls") tls('
            f'ca-file("{pki / "ca.pem"}") cert-file("{pki / "relay.pem"}") '
            f'key-file("{pki / "relay.key"}") peer-verify(required-trusted)))'
        )
    token = keelwatch.server.tokens["ingest"]
    return (
        f'http(url("{keelwatch.server.url}/ingest/auto") method("POST") '
        f'headers("Authorization: Bearer {token}" "Content-Type: text/plain") '
        'body("<${PRI}>${ISODATE} ${HOST} ${MSGHDR}${MSG}") body-suffix("\\n") '
        "batch-lines(16) batch-timeout(200))"
    )


SYSLOG_NG_TRANSPORTS = ("udp", "tcp-newline", "tcp-octet-counted", "tls", "http")


def syslog_ng(tmp_path: Path, keelwatch: Keelwatch, transport: str, source: Path) -> Daemon:
    config = tmp_path / "syslog-ng.conf"
    config.write_text(
        "@version: 3.38\n"
        "options { keep-hostname(yes); use-dns(no); stats-freq(0); };\n"
        f'source s_file {{ file("{source}" follow-freq(0.2) flags(no-parse) '
        'program-override("shop-api") default-facility(local3) default-severity(warning)); };\n'
        f"destination d_keelwatch {{ {syslog_ng_destination(keelwatch, transport)}; }};\n"
        "log { source(s_file); destination(d_keelwatch); };\n"
    )
    command = [
        str(SYSLOG_NG), "--no-caps", "-F", "-e", "-f", str(config),
        "-p", str(tmp_path / "syslog-ng.pid"), "-R", str(tmp_path / "syslog-ng.persist"),
        "-c", str(tmp_path / "syslog-ng.ctl"),
        f"--module-path={ROOT / 'usr/lib/syslog-ng/3.38'}",
    ]  # fmt: skip
    return Daemon(command, tmp_path)


@pytest.mark.skipif(not SYSLOG_NG.exists(), reason=INSTALL_HINT)
@pytest.mark.parametrize("transport", SYSLOG_NG_TRANSPORTS)
def test_syslog_ng_forwards_a_file(tmp_path: Path, keelwatch: Keelwatch, transport: str) -> None:
    case = f"syslog-ng-{transport}"
    source = tmp_path / "app.log"
    source.write_text("\n".join(known_lines(case)) + "\n")
    daemon = syslog_ng(tmp_path, keelwatch, transport, source)
    daemon.start()
    try:
        events = wait_for(lambda: keelwatch.stored(case), daemon)
    finally:
        daemon.stop()
    check_exactly(events, case)
    for event in events:
        assert event["log.syslog.facility.name"] == "local3"
        assert event["log.syslog.severity.name"] == "Warning"
        assert event["process.name"] == "shop-api"
        assert event["host.name"]
        assert event["log.syslog.format"] == (
            "rfc5424" if "octet" in transport or transport == "tls" else "rfc3164"
        )
        if transport == "tls":
            assert event["tls.client.subject"] == "O=keelwatch,CN=relay"
        if transport == "http":
            assert "network.transport" not in event  # posted lines carry no listener facts
