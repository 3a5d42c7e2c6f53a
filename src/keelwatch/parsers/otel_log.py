"""OpenTelemetry log records, as the OTLP/HTTP adapter hands them on.

The adapter (``sources/otlp_http.py``) turns each OTLP LogRecord into one JSON object with the
OTLP field names, attribute lists made plain maps, ids as hex, and its resource and scope inline::

    {"resource": {"k8s.pod.name": "api-1", ...}, "scope": {"name": "...", "version": "..."},
     "time_unix_nano": 1767225600000000000, "observed_time_unix_nano": ...,
     "severity_number": 9, "severity_text": "INFO", "body": "GET /healthz 200",
     "attributes": {...}, "trace_id": "5b8e...", "span_id": "eee1...", "flags": 1}

A body that is a record Keelwatch knows (a JSON object string or a kvlist: an audit event, a
Falco alert) goes to that record's parser (see ``handoff``). Everything else becomes one log
event: the record under ``otel.`` with its own names, Kubernetes and service facts from the
resource attributes (OpenTelemetry semantic conventions) in the common schema.
"""

from __future__ import annotations

from typing import Any

from keelwatch.errors import ParseError
from keelwatch.model.fields import Fields, flatten
from keelwatch.model.severity import CRITICAL, HIGH, INFO, MEDIUM
from keelwatch.parsers.base import ParseContext, Record
from keelwatch.parsers.handoff import expand, hand_off, json_object, original_of, unix_nano_time
from keelwatch.parsers.values import json_type, str_or_none

NAME = "otel-log"
DATASET = "otel.logs"
DESCRIPTION = "OpenTelemetry log records (OTLP), with their resource's Kubernetes metadata"

NATIVE = "otel"
_TIME_KEYS = ("time_unix_nano", "observed_time_unix_nano")
# (common-schema field, semantic-convention attribute) copied when a string.
_STRINGS = (
    ("kubernetes.namespace", "k8s.namespace.name"),
    ("kubernetes.pod.name", "k8s.pod.name"),
    ("kubernetes.pod.uid", "k8s.pod.uid"),
    ("kubernetes.node.name", "k8s.node.name"),
    ("orchestrator.cluster.name", "k8s.cluster.name"),
    ("container.name", "k8s.container.name"),
    ("container.id", "container.id"),
    ("container.image.name", "container.image.name"),
    ("host.name", "host.name"),
    ("service.name", "service.name"),
    ("service.namespace", "service.namespace"),
    ("service.version", "service.version"),
    ("service.instance.id", "service.instance.id"),
    ("cloud.provider", "cloud.provider"),
    ("cloud.region", "cloud.region"),
    ("cloud.account.id", "cloud.account.id"),
    ("log.iostream", "log.iostream"),
    ("log.file.path", "log.file.path"),
)
# Pod labels: the semantic conventions' k8s.pod.label.<key>, the k8sattributes default tag.
_LABEL_PREFIXES = ("k8s.pod.label.", "k8s.pod.labels.")
# SeverityNumber ranges (1-4 TRACE … 21-24 FATAL) onto the common scale and a level word.
_SEVERITIES = (
    (4, INFO, "trace"),
    (8, INFO, "debug"),
    (12, INFO, "info"),
    (16, MEDIUM, "warn"),
    (20, HIGH, "error"),
    (24, CRITICAL, "fatal"),
)


def matches(record: Record) -> bool:
    return (
        isinstance(record, dict)
        and isinstance(record.get("resource"), dict)
        and any(key in record for key in _TIME_KEYS)
    )


def parse(record: Record, ctx: ParseContext) -> None:
    if not isinstance(record, dict):
        raise ParseError(f"an OpenTelemetry log record is a JSON object, not {json_type(record)}")
    body = record.get("body")
    line = json_object(body) if isinstance(body, str) else body
    if hand_off(line if line is not None else body, record.get("hint"), ctx):
        return

    original = original_of(record)
    out: Fields = {"event.kind": "event", "event.dataset": DATASET}
    flatten(
        {key: value for key, value in original.items() if key != "body"}, NATIVE, out, ctx.limits
    )
    if isinstance(body, str):
        out["message"] = body
        if isinstance(line, dict):
            expand(line, f"{NATIVE}.body", out, ctx)
    elif isinstance(body, dict):
        expand(body, f"{NATIVE}.body", out, ctx)
    elif body is not None:
        out[f"{NATIVE}.body"] = body

    _set_time(record, out, ctx)
    _set_severity(record, out)
    _map_attributes(record, out)
    if trace_id := str_or_none(record.get("trace_id")):
        out["trace.id"] = trace_id
    if span_id := str_or_none(record.get("span_id")):
        out["span.id"] = span_id
    if event_name := str_or_none(record.get("event_name")):
        out["event.action"] = event_name
    ctx.emit(out, original)


def _set_time(record: dict[str, Any], out: Fields, ctx: ParseContext) -> None:
    for key in _TIME_KEYS:  # time_unix_nano 0 means unknown: use the observed time
        value = record.get(key)
        if value in (None, 0, "0", ""):
            continue
        moment = unix_nano_time(value)
        if moment is None:
            ctx.warn(f"{key} {value!r:.80} is not a timestamp; using the time of receipt")
        else:
            out["@timestamp"] = moment
        return


def _set_severity(record: dict[str, Any], out: Fields) -> None:
    number = record.get("severity_number")
    text = str_or_none(record.get("severity_text"))
    level = None
    if type(number) is int and 1 <= number <= 24:
        for upper, severity, word in _SEVERITIES:
            if number <= upper:
                out["event.severity"] = severity
                level = word
                break
    if text is not None:
        level = text
    if level is not None:
        out["log.level"] = level


def _map_attributes(record: dict[str, Any], out: Fields) -> None:
    """Resource attributes first; a log attribute fills what the resource leaves out."""
    resource = record.get("resource")
    attributes = record.get("attributes")
    sources = [m for m in (resource, attributes) if isinstance(m, dict)]
    for field, key in _STRINGS:
        for mapping in sources:
            value = mapping.get(key)
            if isinstance(value, str) and value:
                out[field] = value
                break
    if "host.name" not in out and "kubernetes.node.name" in out:
        out["host.name"] = out["kubernetes.node.name"]
    if any(key.startswith("k8s.") for mapping in sources for key in mapping):
        out["orchestrator.type"] = "kubernetes"
    for mapping in sources:
        for key, value in mapping.items():
            if isinstance(value, str) and key.startswith(_LABEL_PREFIXES):
                label = key.split(".", 3)[3]
                if label:
                    out.setdefault(f"kubernetes.labels.{label}", value)
