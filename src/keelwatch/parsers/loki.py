"""Loki push entries, as the Loki push adapter hands them on.

The adapter (``sources/loki_push.py``) turns each entry of a push request into one object::

    {"line": "GET /healthz 200", "timestamp": 1767225600000000000,
     "labels": {"namespace": "shop", "pod": "api-1", "container": "api", "job": "shop/api"},
     "structured_metadata": {"trace_id": "..."}, "tenant": "team-a"}

``timestamp`` is nanoseconds since the epoch; ``structured_metadata`` and ``tenant`` (the
``X-Scope-OrgID`` header) only when sent. A line that is a record Keelwatch knows goes to that
record's parser (see ``handoff``); every other line becomes one log event with the stream labels
under ``loki.labels.`` and the Kubernetes labels Promtail, Grafana Alloy and Fluent Bit set by
default (``namespace``, ``pod``, ``container``, ``node_name``, ``cluster``) in the common schema.
"""

from __future__ import annotations

from typing import Any

from keelwatch.errors import ParseError
from keelwatch.model.fields import Fields, flatten
from keelwatch.model.severity import severity_from_name
from keelwatch.parsers.base import ParseContext, Record
from keelwatch.parsers.handoff import expand, hand_off, json_object, original_of, unix_nano_time
from keelwatch.parsers.values import json_type, str_or_none

NAME = "loki"
DATASET = "loki.logs"
DESCRIPTION = "Loki push entries (Promtail, Grafana Alloy, Fluent Bit loki output)"

NATIVE = "loki"
# (common-schema field, label names in the order tried); the names the usual clients set.
_LABELS = (
    ("kubernetes.namespace", ("namespace", "namespace_name", "k8s_namespace_name")),
    ("kubernetes.pod.name", ("pod", "pod_name", "k8s_pod_name")),
    ("kubernetes.pod.uid", ("pod_uid", "k8s_pod_uid")),
    ("kubernetes.node.name", ("node_name", "node", "k8s_node_name")),
    ("container.name", ("container", "container_name", "k8s_container_name")),
    ("orchestrator.cluster.name", ("cluster", "k8s_cluster_name")),
    ("host.name", ("host", "hostname", "node_name", "node", "k8s_node_name")),
    ("service.name", ("service_name", "app")),
    ("log.file.path", ("filename",)),
)
_STREAMS = frozenset(("stdout", "stderr"))
_LEVEL_KEYS = ("level", "detected_level", "severity")
_LEVEL_ALIASES = {"warn": "warning", "err": "error", "fatal": "critical", "crit": "critical"}


def matches(record: Record) -> bool:
    return (
        isinstance(record, dict)
        and isinstance(record.get("line"), str)
        and isinstance(record.get("labels"), dict)
        and "timestamp" in record
    )


def parse(record: Record, ctx: ParseContext) -> None:
    if not isinstance(record, dict):
        raise ParseError(f"a Loki entry is a JSON object, not {json_type(record)}")
    line = record.get("line")
    labels = record.get("labels")
    if not isinstance(line, str):
        raise ParseError(f"line is {json_type(line)}, not a string")
    if not isinstance(labels, dict):
        raise ParseError(f"labels is {json_type(labels)}, not an object")
    structured = json_object(line)
    if hand_off(structured if structured is not None else line, record.get("hint"), ctx):
        return

    original = original_of(record)
    out: Fields = {"event.kind": "event", "event.dataset": DATASET, "message": line}
    flatten(
        {key: value for key, value in original.items() if key != "line"}, NATIVE, out, ctx.limits
    )
    if structured is not None:
        expand(structured, f"{NATIVE}.json", out, ctx)

    moment = unix_nano_time(record.get("timestamp"))
    if moment is None:
        ctx.warn(f"timestamp {record.get('timestamp')!r:.80} is not one; using the time of receipt")
    else:
        out["@timestamp"] = moment
    metadata = record.get("structured_metadata")
    _map_labels(labels, metadata if isinstance(metadata, dict) else {}, structured or {}, out)
    ctx.emit(out, original)


def _map_labels(
    labels: dict[str, Any], metadata: dict[str, Any], line: dict[str, Any], out: Fields
) -> None:
    """Labels first, then structured metadata, then (for the level) a JSON line's own fields."""
    for field, names in _LABELS:
        for name in names:
            if value := str_or_none(labels.get(name)):
                out[field] = value
                break
    if any(field.startswith("kubernetes.") for field in out):
        out["orchestrator.type"] = "kubernetes"
    stream = labels.get("stream")
    if isinstance(stream, str) and stream in _STREAMS:
        out["log.iostream"] = stream
    for key in _LEVEL_KEYS:
        level = next(
            (v for m in (labels, metadata, line) if (v := str_or_none(m.get(key))) is not None),
            None,
        )
        if level is not None:
            out["log.level"] = level
            word = level.strip().lower()
            severity = severity_from_name(_LEVEL_ALIASES.get(word, word))
            if severity is not None:
                out["event.severity"] = severity
            break
    if trace_id := str_or_none(metadata.get("trace_id")):
        out["trace.id"] = trace_id
    if span_id := str_or_none(metadata.get("span_id")):
        out["span.id"] = span_id
