"""Fluent forward against a real `keelwatch serve` process.

Clients: the Python fluent-logger (Message mode, integer, float and EventTime times, no acks),
the Node.js fluent-logger from npm (PackedForward, CompressedPackedForward, chunk acks and the
shared_key handshake; installed by scripts/test-deps/fluent-logger-node.sh) and raw frames
encoded here with msgpack for every mode and every refusal.
"""

from __future__ import annotations

import hashlib
import time
import uuid
import zlib
from collections.abc import Iterator
from pathlib import Path

import msgpack
import pytest
from fluent.sender import EventTime, FluentSender

from ..fixtures import audit_event
from ..server_process import RunningServer, free_port, make_server
from .fluent_forward_helpers import (
    CONTAINER_TAG,
    SHARED_KEY,
    closed_by_server,
    connect,
    container_line,
    entries,
    event_time,
    gzip_members,
    messages_like,
    metrics,
    node_send,
    ping,
    receive,
    send_ignoring_close,
)


@pytest.fixture(scope="module")
def open_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunningServer, int]]:
    port = free_port()
    running = make_server(
        tmp_path_factory.mktemp("open"), "--forward-port", str(port), "--insecure-no-auth"
    )
    running.start()
    yield running, port
    running.stop()


@pytest.fixture(scope="module")
def keyed_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunningServer, int]]:
    port = free_port()
    running = make_server(
        tmp_path_factory.mktemp("keyed"), "--forward-port", str(port),
        "--forward-shared-key", SHARED_KEY,
    )  # fmt: skip
    running.start()
    yield running, port
    running.stop()


def wait_for_count(server: RunningServer, prefix: str, count: int) -> list[str]:
    """Messages starting with ``prefix`` once ``count`` are stored (fluent-logger has no acks)."""
    deadline = time.monotonic() + 60
    found = messages_like(server, prefix)
    while len(found) < count and time.monotonic() < deadline:
        time.sleep(0.1)
        found = messages_like(server, prefix)
    return found


# -- the Python fluent-logger -------------------------------------------------------------------


def test_python_fluent_logger_events_are_stored_exactly(
    open_server: tuple[RunningServer, int],
) -> None:
    server, port = open_server
    run = uuid.uuid4().hex[:8]
    sent: dict[str, str] = {}
    plain = FluentSender(CONTAINER_TAG, port=port)
    for n in range(20):
        assert plain.emit_with_time(None, 1767261600 + n, container_line(f"py-{run}-int-{n}"))
        sent[f"py-{run}-int-{n}"] = f"2026-01-01 10:00:{n:02d}"
    assert plain.emit_with_time(None, 1767261600.5, container_line(f"py-{run}-float"))
    sent[f"py-{run}-float"] = "2026-01-01 10:00:00.5"
    plain.close()
    precise = FluentSender(CONTAINER_TAG, port=port, nanosecond_precision=True)
    for n in range(5):
        moment = EventTime.from_unix_nano(1767261600_000_000_000 + n * 1_000_001_000)
        assert precise.emit_with_time(None, moment, container_line(f"py-{run}-nano-{n}"))
        sent[f"py-{run}-nano-{n}"] = f"2026-01-01 10:00:{n:02d}.{n:06d}"
    precise.close()

    assert wait_for_count(server, f"py-{run}-", len(sent)) == sorted(sent)
    rows = server.sql(
        "SELECT message, strftime(ts, '%Y-%m-%d %H:%M:%S.%f'), namespace, pod, "
        """json_extract_string(doc, '$."container_log.fluent.tag"') """
        f"FROM events WHERE message LIKE 'py-{run}-%'",
    )
    for message, stamp, namespace, pod, tag in rows:
        expected = sent[message]
        assert stamp.startswith(expected), (message, stamp)
        assert (namespace, pod, tag) == ("shop", "web-1", CONTAINER_TAG)


# -- raw frames: every mode, acks after durable -------------------------------------------------


def test_message_mode_ack_means_already_stored(open_server: tuple[RunningServer, int]) -> None:
    server, port = open_server
    run = uuid.uuid4().hex[:8]
    with connect(port) as sock:
        sock.sendall(b"\xc0")  # a nil keep-alive is allowed between messages
        for n in range(3):
            chunk = f"chunk-{run}-{n}"
            record = container_line(f"msg-{run}-{n}")
            sock.sendall(msgpack.packb([CONTAINER_TAG, 1767261600, record, {"chunk": chunk}]))
            assert receive(sock) == {"ack": chunk}
            # The ack came after the commit: the event is searchable at once, no waiting.
            assert messages_like(server, f"msg-{run}-{n}") == [f"msg-{run}-{n}"]


def test_forward_mode_stores_good_entries_and_dead_letters_bad_ones(
    open_server: tuple[RunningServer, int],
) -> None:
    server, port = open_server
    run = uuid.uuid4().hex[:8]
    batch = [
        [1767261600, container_line(f"fwd-{run}-int")],
        [event_time(1767261601, 250_000_000), container_line(f"fwd-{run}-eventtime")],
        [
            [event_time(1767261602, 0), {"source": "fluent-bit-v2"}],
            container_line(f"fwd-{run}-meta"),
        ],
        ["yesterday", container_line(f"fwd-{run}-bad-time")],
        [1767261603, f"fwd-{run}-not-a-map"],
        [1767261604],
    ]
    with connect(port) as sock:
        sock.sendall(msgpack.packb([CONTAINER_TAG, batch, {"chunk": f"fwd-{run}"}]))
        assert receive(sock) == {"ack": f"fwd-{run}"}
    assert messages_like(server, f"fwd-{run}-") == [
        f"fwd-{run}-eventtime", f"fwd-{run}-int", f"fwd-{run}-meta",
    ]  # fmt: skip
    stamps = server.sql(
        f"SELECT strftime(ts, '%S.%f') FROM events WHERE message = 'fwd-{run}-eventtime'",
    )
    assert stamps == [["01.250000"]]
    reasons = server.sql(
        "SELECT reason FROM dead_letters WHERE "
        f"CAST(raw AS VARCHAR) LIKE '%fwd-{run}-%' OR reason LIKE 'entry is an array%' ORDER BY 1",
    )
    assert [r[0] for r in reasons] == [
        "entry is an array, not [time, record]",
        "event time is a string, not an integer or EventTime",
        "record is a string, not a map",
    ]


@pytest.mark.parametrize("as_str", [False, True], ids=["bin", "str"])
def test_packed_forward(open_server: tuple[RunningServer, int], as_str: bool) -> None:
    server, port = open_server
    run = uuid.uuid4().hex[:8]
    pairs = [(1767261600 + n, container_line(f"packed-{run}-{n}")) for n in range(50)]
    # Older clients send the entries as a msgpack str rather than bin: both must work.
    frame = msgpack.packb(
        [CONTAINER_TAG, entries(pairs), {"chunk": run, "size": 50}], use_bin_type=not as_str
    )
    with connect(port) as sock:
        sock.sendall(frame)
        assert receive(sock) == {"ack": run}
    assert len(messages_like(server, f"packed-{run}-")) == 50


def test_compressed_packed_forward_with_several_gzip_members(
    open_server: tuple[RunningServer, int],
) -> None:
    server, port = open_server
    run = uuid.uuid4().hex[:8]
    pairs = [(event_time(1767261600, n), container_line(f"gz-{run}-{n:03d}")) for n in range(300)]
    blob = gzip_members(entries(pairs), parts=3)
    with connect(port) as sock:
        sock.sendall(msgpack.packb([CONTAINER_TAG, blob, {"chunk": run, "compressed": "gzip"}]))
        assert receive(sock) == {"ack": run}
    assert messages_like(server, f"gz-{run}-") == [f"gz-{run}-{n:03d}" for n in range(300)]


def test_decompression_bomb_is_dead_lettered_and_acknowledged(
    open_server: tuple[RunningServer, int],
) -> None:
    server, port = open_server
    run = uuid.uuid4().hex[:8]
    packer = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    zeros = bytes(1 << 20)
    bomb = b"".join(packer.compress(zeros) for _ in range(200)) + packer.flush()  # 200 MiB
    with connect(port) as sock:
        sock.sendall(msgpack.packb([CONTAINER_TAG, bomb, {"chunk": run, "compressed": "gzip"}]))
        assert receive(sock) == {"ack": run}  # dead letters are durable too: no endless resend
    reasons = server.sql("SELECT reason FROM dead_letters WHERE reason LIKE '%decompressed%'")
    assert reasons and "once decompressed" in reasons[0][0]


def test_audit_events_keep_their_own_shape(open_server: tuple[RunningServer, int]) -> None:
    """A tag naming a parser picks it; records that parser reads as maps arrive unchanged."""
    server, port = open_server
    name = f"audit-{uuid.uuid4().hex[:8]}"
    with connect(port) as sock:
        sock.sendall(
            msgpack.packb(["k8s.audit", 1767261600, audit_event(name=name), {"chunk": "a"}])
        )
        assert receive(sock) == {"ack": "a"}
    rows = server.sql(f"SELECT dataset, object_name FROM events WHERE object_name = '{name}'")
    assert rows == [["kubernetes.audit", name]]


# -- refusals ---------------------------------------------------------------------------------


def test_garbage_and_oversize_frames_close_the_connection(
    open_server: tuple[RunningServer, int],
) -> None:
    server, port = open_server
    run = uuid.uuid4().hex[:8]
    with connect(port) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert closed_by_server(sock)
    with connect(port) as sock:
        sock.sendall(b"\xc1" + msgpack.packb([CONTAINER_TAG, 1, container_line(f"after-{run}")]))
        assert closed_by_server(sock)
    with connect(port) as sock:  # a 64 MiB string: refused once 16 MiB of it are buffered
        header = b"\x93\xa3tag\x01\xdb" + (64 << 20).to_bytes(4, "big")
        send_ignoring_close(sock, header + b"x" * (17 << 20))
        assert closed_by_server(sock)
    with connect(port) as sock:  # 17 MiB of 1 KiB entries: refused once past 16 MiB
        header = b"\x92\xa3tag\xdd" + (1 << 20).to_bytes(4, "big")
        item = msgpack.packb([1, {"log": "y" * 1024}])
        send_ignoring_close(sock, header + item * ((17 << 20) // len(item)))
        assert closed_by_server(sock)
    assert messages_like(server, f"after-{run}") == []
    text = metrics(server)
    for reason in ("not a forward message", "undecodable msgpack", "frame too large"):
        assert f'protocol="fluent-forward",reason="{reason}"' in text


# -- the shared_key handshake -------------------------------------------------------------------


def test_handshake_with_the_right_key(keyed_server: tuple[RunningServer, int]) -> None:
    server, port = keyed_server
    run = uuid.uuid4().hex[:8]
    with connect(port) as sock:
        helo = receive(sock)
        assert helo[0] == "HELO" and len(helo[1]["nonce"]) == 16 and helo[1]["keepalive"] is True
        message, salt = ping(helo, SHARED_KEY)
        sock.sendall(msgpack.packb(message))
        pong = receive(sock)
        assert pong[:3] == ["PONG", True, ""]
        nonce = helo[1]["nonce"]
        proof = hashlib.sha512(salt + pong[3].encode() + nonce + SHARED_KEY.encode()).hexdigest()
        assert pong[4] == proof  # the server knows the key too
        sock.sendall(
            msgpack.packb([CONTAINER_TAG, 1, container_line(f"auth-{run}"), {"chunk": run}])
        )
        assert receive(sock) == {"ack": run}
    assert messages_like(server, f"auth-{run}") == [f"auth-{run}"]


def test_wrong_key_or_no_handshake_stores_nothing(keyed_server: tuple[RunningServer, int]) -> None:
    server, port = keyed_server
    run = uuid.uuid4().hex[:8]
    with connect(port) as sock:
        message, _ = ping(receive(sock), "not-the-key")
        sock.sendall(msgpack.packb(message))
        assert receive(sock)[:3] == ["PONG", False, "shared_key mismatch"]
        send_ignoring_close(sock, msgpack.packb([CONTAINER_TAG, 1, container_line(f"bad-{run}")]))
        assert closed_by_server(sock)
    with connect(port) as sock:
        receive(sock)  # HELO, ignored: data straight away
        sock.sendall(msgpack.packb([CONTAINER_TAG, 1, container_line(f"nohelo-{run}")]))
        assert receive(sock)[:2] == ["PONG", False]
        assert closed_by_server(sock)
    assert messages_like(server, f"bad-{run}") == messages_like(server, f"nohelo-{run}") == []
    text = metrics(server)
    assert 'protocol="fluent-forward",reason="auth failed"' in text
    assert 'protocol="fluent-forward",reason="handshake missing"' in text


def test_refuses_to_start_without_a_shared_key_when_auth_is_on(tmp_path: Path) -> None:
    running = make_server(tmp_path, "--forward-port", str(free_port()))
    with pytest.raises(RuntimeError) as failure:
        running.start()
    running.stop(kill=True)
    assert "--forward-shared-key" in str(failure.value)
    assert "--insecure-no-auth" in str(failure.value)


# -- the Node.js fluent-logger ------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["Message", "PackedForward", "CompressedPackedForward"])
def test_node_fluent_logger_with_shared_key_and_acks(
    keyed_server: tuple[RunningServer, int], mode: str
) -> None:
    server, port = keyed_server
    run = uuid.uuid4().hex[:8]
    events = [
        {"tag": CONTAINER_TAG, "seconds": 1767261600 + n, "nanos": n * 1000,
         "record": container_line(f"node-{mode}-{run}-{n:03d}")}
        for n in range(120)
    ]  # fmt: skip
    done = node_send(port, {"mode": mode, "ack": True, "sharedKey": SHARED_KEY, "events": events})
    assert done.returncode == 0, done.stderr
    # Every callback ran after its ack, so everything is stored now, exactly once.
    prefix = f"node-{mode}-{run}-"
    assert messages_like(server, prefix) == [f"{prefix}{n:03d}" for n in range(120)]
    stamps = server.sql(f"SELECT strftime(ts, '%S.%f') FROM events WHERE message = '{prefix}007'")
    assert stamps == [["07.000007"]]


def test_node_fluent_logger_with_a_wrong_key_is_refused(
    keyed_server: tuple[RunningServer, int],
) -> None:
    server, port = keyed_server
    run = uuid.uuid4().hex[:8]
    events = [{"tag": CONTAINER_TAG, "seconds": 1, "record": container_line(f"nodebad-{run}")}]
    done = node_send(port, {"mode": "Message", "ack": True, "sharedKey": "wrong", "events": events})
    assert done.returncode == 2 and "shared_key mismatch" in done.stderr
    assert messages_like(server, f"nodebad-{run}") == []
