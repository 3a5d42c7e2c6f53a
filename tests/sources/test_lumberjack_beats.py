"""Beats events → (parser, record): hints, JSON log lines, Kubernetes metadata renaming."""

from __future__ import annotations

import copy
from typing import Any

import orjson

from keelwatch.parsers.registry import AUTO
from keelwatch.sources.lumberjack_beats import DEAD, container_shape, prepare, route
from keelwatch.sources.lumberjack_codec import Event

from ..fixtures import audit_event


def filebeat(message: str, **extra: Any) -> dict[str, Any]:
    return {
        "@timestamp": "2026-03-01T10:00:00Z",
        "@metadata": {"beat": "filebeat", "version": "8.13.0"},
        "message": message,
        "log": {"file": {"path": "/var/log/kubernetes/audit/audit.log"}},
        **extra,
    }


def routed(event: dict[str, Any], hint: str | None = None) -> tuple[str, Any]:
    return route(event, hint, {})


def test_an_audit_line_read_from_a_file_reaches_the_audit_parser() -> None:
    audit = audit_event(audit_id="a-1")
    source, record = routed(filebeat(orjson.dumps(audit).decode()))
    assert (source, record) == ("k8s-audit", audit)


def test_a_structured_application_line_stays_a_log_line() -> None:
    event = filebeat('{"level": "info", "msg": "started"}')
    assert routed(event) == (AUTO, event)


def test_hints_in_order_of_precedence() -> None:
    audit = {**audit_event(), "fields": {"keelwatch_source": "k8s-audit"}}
    assert routed(audit)[0] == "k8s-audit"
    root = {**audit_event(), "keelwatch_source": "k8s_audit"}  # fields_under_root
    assert routed(root)[0] == "k8s-audit"
    by_dataset = filebeat("x", event={"dataset": "kubernetes.audit"})
    assert routed(by_dataset)[0] == "k8s-audit"
    explicit_wins = filebeat(
        "x", event={"dataset": "kubernetes.audit"}, fields={"keelwatch_source": "falco"}
    )
    assert routed(explicit_wins)[0] == "falco"
    assert routed(filebeat("x"), hint="container")[0] == "container"
    assert routed(filebeat("x", event={"dataset": "nginx.access"}))[0] == AUTO  # beat name only


def test_a_named_parser_gets_the_embedded_object_only_when_it_fits() -> None:
    audit = audit_event()
    hinted = filebeat(orjson.dumps(audit).decode(), fields={"keelwatch_source": "k8s-audit"})
    assert routed(hinted) == ("k8s-audit", audit)
    plain = filebeat("not json", fields={"keelwatch_source": "k8s-audit"})
    assert routed(plain) == ("k8s-audit", plain)  # the parser then says why it cannot


def kubernetes_line() -> dict[str, Any]:
    return filebeat(
        "GET /healthz 200",
        stream="stdout",
        container={"id": "c0ffee", "image": {"name": "web:2"}, "runtime": "containerd"},
        kubernetes={
            "pod": {"name": "web-1", "uid": "u-1", "ip": "10.0.0.9"},
            "namespace": "shop",
            "node": {"name": "node-3"},
            "container": {"name": "web"},
            "labels": {"app": "web"},
            "replicaset": {"name": "web-5d9"},
        },
    )


def test_kubernetes_metadata_gets_the_container_parsers_names() -> None:
    event = kubernetes_line()
    before = copy.deepcopy(event)
    shaped = container_shape(event)
    assert event == before  # the input is never modified
    assert shaped is not None
    assert shaped["kubernetes"] == {
        "pod_name": "web-1",
        "pod_id": "u-1",
        "pod": {"ip": "10.0.0.9"},
        "namespace_name": "shop",
        "host": "node-3",
        "container_name": "web",
        "container_image": "web:2",
        "docker_id": "c0ffee",
        "labels": {"app": "web"},
        "replicaset": {"name": "web-5d9"},
    }
    assert {k: v for k, v in shaped.items() if k != "kubernetes"} == {
        k: v for k, v in event.items() if k != "kubernetes"
    }
    assert routed(event) == (AUTO, shaped)


def test_events_without_pod_metadata_are_not_reshaped() -> None:
    assert container_shape(filebeat("x")) is None
    assert container_shape(filebeat("x", kubernetes={"namespace": "shop"})) is None
    no_line = {"kubernetes": {"pod": {"name": "p"}, "namespace": "n"}, "metricset": {}}
    assert container_shape(no_line) is None
    odd = filebeat("x", kubernetes={"pod": {"name": 7}, "namespace": "n"})
    assert container_shape(odd) is None


def test_prepare_groups_by_parser_and_dead_letters_bad_payloads() -> None:
    audit = audit_event(audit_id="g-1")
    events = [
        Event(1, orjson.dumps(filebeat("plain"))),
        Event(2, b'{"message": "cut'),
        Event(3, orjson.dumps(filebeat(orjson.dumps(audit).decode()))),
        Event(4, b'"just a string"'),
        Event(5, {"line": "from a forwarder", "file": "/var/log/a"}),
    ]
    prepared = prepare(events, None)
    assert prepared.members == [AUTO, DEAD, "k8s-audit", DEAD, AUTO]
    assert prepared.groups["k8s-audit"] == [audit]
    assert prepared.groups[AUTO][1] == {"message": "from a forwarder", "file": "/var/log/a"}
    reasons = [reason for _, reason in prepared.dead_letters]
    assert "invalid JSON" in reasons[0]
    assert reasons[1] == "a Beats event is a JSON object, not str"
