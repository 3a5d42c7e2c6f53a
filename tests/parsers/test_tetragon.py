"""tetragon: shape recognition, dead letters, hostile values, argument splitting, the corpus."""

from __future__ import annotations

import time
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from keelwatch.model.fields import RecordLimits
from keelwatch.parsers import tetragon
from keelwatch.parsers.base import Parser
from keelwatch.parsers.registry import recognise
from keelwatch.pipeline.decode import decode_body

from .helpers import RECEIVED_AT, parse_records, paths, reasons, replaced

PARSER = Parser(
    tetragon.NAME, tetragon.DATASET, tetragon.DESCRIPTION, tetragon.matches, tetragon.parse
)
run = partial(parse_records, PARSER)
CRASHED = f"parser {tetragon.NAME} failed"
WRONG_VALUES: tuple[Any, ...] = (None, True, -1, 2.5, "", "x", [], [None, {"a": 1}], {}, {"k": [1]})


def process(
    pid: int = 4242, binary: str = "/usr/bin/wget", arguments: str = "-q -O- http://x"
) -> Any:
    return {
        "exec_id": f"bm9kZS0xOjEyMzQ1Njc4OjQyNDI{pid}",
        "pid": pid,
        "uid": 33,
        "cwd": "/var/www",
        "binary": binary,
        "arguments": arguments,
        "flags": "execve clone",
        "start_time": "2025-09-14T09:00:00.000000001Z",
        "auid": 4294967295,
        "pod": {
            "namespace": "web",
            "name": "wordpress-5b8d7c9f6-tq2mz",
            "container": {
                "id": "cri-o://9f8e7d6c5b4a39281706f5e4d3c2b1a09f8e7d6c5b4a39281706f5e4d3c2b1a0",
                "name": "wordpress",
                "image": {"id": "docker.io/library/wordpress@sha256:00", "name": "wordpress:6.6"},
            },
            "pod_labels": {"app": "wordpress"},
            "pod_annotations": {"team": "blog"},
        },
        "docker": "9f8e7d6c5b4a39281706f5e4d3c2b1a",
        "parent_exec_id": "bm9kZS0xOjEyMzQwMDAwOjQyMDA=",
    }


def event(kind: str, **inner: Any) -> dict[str, Any]:
    body = {"process": process(), "parent": process(4200, "/bin/sh", "-c worker")}
    body.update(inner)
    return {kind: body, "node_name": "node-1", "time": "2025-09-14T09:00:01.5Z"}


def kprobe(function: str, *args: Any, **inner: Any) -> dict[str, Any]:
    return event("process_kprobe", function_name=function, args=list(args), **inner)


def sock(**fields: Any) -> dict[str, Any]:
    base = {"family": "AF_INET", "protocol": "IPPROTO_TCP", "saddr": "10.0.1.5", "sport": 40000}
    base.update({"daddr": "192.0.2.10", "dport": 8443})
    base.update(fields)
    return {"sock_arg": base}


NEIGHBOURS: dict[str, Any] = {
    "falco alert": {"rule": "Terminal shell in container", "priority": "Notice", "output": "…"},
    "hubble envelope": {
        "flow": {"verdict": "FORWARDED", "IP": {"source": "10.0.0.1"}},
        "node_name": "node-1",
        "time": "2025-09-14T09:00:01Z",
    },
    "k8s audit event": {"kind": "Event", "apiVersion": "audit.k8s.io/v1", "verb": "get"},
    "cloudtrail record": {"eventVersion": "1.08", "eventSource": "s3.amazonaws.com"},
    "fluent bit record": {
        "log": "hello\n",
        "stream": "stdout",
        "time": "2025-09-14T09:00:01Z",
        "kubernetes": {"pod_name": "a", "namespace_name": "b"},
    },
    "type key without an object": {"process_exec": "nope", "node_name": "node-1"},
    "type object without node or time": {"process_exec": {"process": {}}},
    "CRI line": "2025-09-14T09:00:01Z stdout F process_exec",
    "list": [{"process_exec": {}}],
}


def test_matches_every_event_type() -> None:
    for kind in (
        "process_exec",
        "process_exit",
        "process_kprobe",
        "process_tracepoint",
        "process_uprobe",
        "process_lsm",
        "process_connect",
        "process_listen",
        "process_close",
        "process_future_kind",
    ):
        assert tetragon.matches(event(kind)), kind
    assert tetragon.matches(
        {"rate_limit_info": {"number_of_dropped_process_events": "3"}, "time": "t"}
    )


@pytest.mark.parametrize("name", list(NEIGHBOURS))
def test_matches_nothing_else(name: str) -> None:
    assert not tetragon.matches(NEIGHBOURS[name])


def test_auto_routes_events_to_tetragon() -> None:
    assert (parser := recognise(event("process_exec"))) is not None and parser.name == "tetragon"


def test_exec_and_exit_map_the_process_tree() -> None:
    exec_event, exit_event = run(
        event("process_exec"), event("process_exit", status=143, signal="SIGTERM")
    ).events
    assert exec_event["tetragon.type"] == exec_event["event.action"] == "process_exec"
    assert (exec_event["event.category"], exec_event["event.type"]) == (["process"], ["start"])
    assert exec_event["process.args"] == ["/usr/bin/wget", "-q", "-O-", "http://x"]
    assert exec_event["process.parent.command_line"] == "/bin/sh -c worker"
    assert (
        exec_event["container.id"].startswith("9f8e7d6c")
        and "://" not in exec_event["container.id"]
    )
    assert exec_event["kubernetes.annotations.team"] == "blog"
    assert exec_event["user.id"] == "33"
    assert exit_event["event.type"] == ["end"] and exit_event["process.exit_code"] == 143
    # exec_id names the process, so two events about it must still get different ids.
    assert exec_event["event.id"] != exit_event["event.id"]


def test_network_hooks_map_endpoints_in_the_initiators_order() -> None:
    connect, accept, skb, udp = run(
        kprobe("tcp_connect", sock()),
        kprobe("inet_csk_accept", **{"return": sock(saddr="10.0.1.5", sport=443)}),
        kprobe("ip_output", {"skb_arg": {"saddr": "10.0.1.5", "daddr": "10.0.1.6", "proto": 17}}),
        kprobe("udp_sendmsg", sock(family="AF_INET6", protocol="IPPROTO_UDP", daddr="2001:db8::1")),
    ).events
    assert (connect["source.ip"], connect["destination.port"]) == ("10.0.1.5", 8443)
    assert connect["event.type"] == ["connection", "start"] and connect["network.type"] == "ipv4"
    # On an accepted socket the peer is the initiator.
    assert (accept["source.ip"], accept["destination.ip"]) == ("192.0.2.10", "10.0.1.5")
    assert accept["destination.port"] == 443
    assert skb["network.transport"] == "udp" and skb["event.type"] == ["info"]
    assert udp["network.type"] == "ipv6" and udp["destination.ip"] == "2001:db8::1"


def test_file_hooks_classify_and_fix_relative_paths() -> None:
    read, write, unlink = run(
        kprobe("security_file_permission", {"file_arg": {"path": "/etc/shadow"}}, {"int_arg": 4}),
        kprobe("__x64_sys_write", {"file_arg": {"path": "etc/passwd"}}),
        kprobe("security_path_unlink", {"path_arg": {"path": "/var/log/syslog"}}),
    ).events
    assert (read["file.path"], read["event.type"]) == ("/etc/shadow", ["access"])
    assert (write["file.path"], write["event.type"]) == ("/etc/passwd", ["change"])
    assert write["tetragon.args"] == [{"file_arg": {"path": "etc/passwd"}}]
    assert unlink["event.type"] == ["deletion"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a b  c", ["a", "b", "c"]),
        ('-c "echo hi there"', ["-c", "echo hi there"]),
        ('"only one"', ["only one"]),
        ('"unterminated arg', ['"unterminated', "arg"]),
        ('x "a b" "c d" y', ["x", "a b", "c d", "y"]),
        ('"', ['"']),
        ("", []),
    ],
)
def test_split_arguments(text: str, expected: list[str]) -> None:
    assert tetragon.split_arguments(text) == expected


def test_split_arguments_is_linear_on_hostile_quotes() -> None:
    hostile = '"a ' * 200_000
    started = time.perf_counter()
    assert len(tetragon.split_arguments(hostile)) == 200_000
    assert time.perf_counter() - started < 2


def test_bad_records_are_dead_lettered_and_good_ones_kept() -> None:
    batch = run(
        event("process_exec"),
        "process_exec",
        {"process_exec": ["x"], "node_name": "n", "time": "t"},
        {"node_name": "n", "time": "t"},
        event("process_exit"),
    )
    assert [e["event.action"] for e in batch.events] == ["process_exec", "process_exit"]
    assert reasons(batch) == [
        "a Tetragon event is a JSON object, not a string",
        "no Tetragon event-type key (process_exec, process_kprobe, …)",
        "no Tetragon event-type key (process_exec, process_kprobe, …)",
    ]


def test_nesting_and_field_count_over_the_limits() -> None:
    deep: Any = {"leaf": 1}
    for _ in range(60):
        deep = {"n": deep}
    batch = run(
        kprobe("tcp_connect", sock(), extra=deep),
        event("process_exec", cap={"permitted": [f"CAP_{i}" for i in range(300)]}),
        event("process_exec"),
        limits=RecordLimits(max_depth=48, max_fields=200),
    )
    assert len(batch.events) == 1
    assert [r.split(" ")[0] for r in reasons(batch)] == ["nesting", "more"]


@pytest.mark.parametrize(
    "record",
    [
        event("process_exit", status=1),
        kprobe("tcp_connect", sock(), {"file_arg": {"path": "/x"}}, message="m"),
        event("process_connect", source_ip="10.0.0.1", destination_port=80, protocol="TCP"),
        event("process_listen", ip="0.0.0.0", port=80, protocol="TCP"),
    ],
    ids=["exit", "kprobe", "connect", "listen"],
)
def test_a_wrong_type_anywhere_never_crashes_the_parser(record: dict[str, Any]) -> None:
    for path in paths(record):
        for value in WRONG_VALUES:
            batch = run(replaced(record, path, value))
            assert not [r for r in reasons(batch) if r.startswith(CRASHED)], (path, value)
            assert len(batch.events) + len(batch.dead_letters) == 1


def test_bad_time_is_a_warning() -> None:
    batch = run(dict(event("process_exec"), time=12.5e30))
    assert batch.events[0]["@timestamp"] == RECEIVED_AT
    assert len(batch.warnings) == 1


def corpus_files(corpus: Path) -> list[Path]:
    root = corpus / "tetragon"
    return sorted([*root.rglob("*.json"), *root.rglob("*.log")])


def test_every_corpus_record_parses_or_is_dead_lettered(corpus: Path) -> None:
    files = corpus_files(corpus)
    assert len(files) >= 40
    for path in files:
        decoded = decode_body(path.read_bytes())
        batch = run(*decoded.records)
        assert len(batch.events) + len(batch.dead_letters) == len(decoded.records), path
        assert batch.dead_letters == [] and batch.warnings == [], path
