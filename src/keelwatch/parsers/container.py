"""Container logs: docker json-file and CRI lines, Fluent Bit and Vector Kubernetes records.

Shapes accepted:

- docker json-file: ``{"log": "text\\n", "stream": "stdout", "time": "..."}``;
- CRI text lines: ``<RFC 3339 time> <stdout|stderr> <P|F> <message>``, split on spaces (a ``P``
  line is one piece of a longer line; it is kept as it is and flagged partial);
- Fluent Bit records with its kubernetes filter's ``kubernetes.{pod_name, namespace_name, …}``,
  also as Fluent Bit ``[time, record]`` pairs;
- Vector ``kubernetes_logs`` records: ``message``, ``kubernetes.{pod_name, pod_namespace, …}``.

The collector's record is kept under ``container_log.`` with its own names, except the log line
itself, which becomes ``message`` (without its trailing newline). A line that is a JSON object
(a structured application log) is also expanded under ``container_log.json.``.
"""

from __future__ import annotations

from typing import Any

import orjson

from keelwatch.errors import ParseError, RecordTooLarge
from keelwatch.model.fields import Fields, RecordLimits, flatten, parse_timestamp
from keelwatch.parsers.base import ParseContext, Record
from keelwatch.parsers.values import json_type

NAME = "container"
DATASET = "kubernetes.container_logs"
DESCRIPTION = (
    "Container logs: docker json-file, CRI lines, Fluent Bit and Vector Kubernetes records"
)

NATIVE = "container_log"
_STREAMS = frozenset(("stdout", "stderr"))
_MESSAGE_KEYS = ("log", "message", "MESSAGE")  # docker/Fluent Bit, Vector/CRI parser, journald
# docker/CRI, Vector, Elasticsearch-style, Fluent Bit json output, journald (µs since the epoch)
_TIME_KEYS = (
    "time",
    "timestamp",
    "@timestamp",
    "date",
    "_SOURCE_REALTIME_TIMESTAMP",
    "__REALTIME_TIMESTAMP",
)
_CRI_TAGS = frozenset(("P", "F"))
# (ECS field, Fluent Bit name, Vector name) for the strings of the kubernetes object.
_KUBERNETES_STRINGS = (
    ("kubernetes.namespace", "namespace_name", "pod_namespace"),
    ("kubernetes.pod.name", "pod_name", "pod_name"),
    ("kubernetes.pod.uid", "pod_id", "pod_uid"),
    ("kubernetes.node.name", "host", "pod_node_name"),
    ("container.name", "container_name", "container_name"),
    ("container.image.name", "container_image", "container_image"),
)


def matches(record: Record) -> bool:
    if isinstance(record, str):
        return _split_cri(record) is not None
    if isinstance(record, dict):
        return _is_log_record(record)
    if isinstance(record, list):
        pair = _fluent_pair(record)
        return pair is not None and _is_log_record(pair[1])
    return False


def parse(record: Record, ctx: ParseContext) -> None:
    if isinstance(record, str):
        _parse_cri(record, ctx)
    elif isinstance(record, dict):
        _parse_record(record, None, record, ctx)
    elif isinstance(record, list) and (pair := _fluent_pair(record)) is not None:
        _parse_record(pair[1], pair[0], record, ctx)
    else:
        raise ParseError(
            f"a container log is a JSON object or a CRI text line, not {_describe(record)}"
        )


def _parse_cri(line: str, ctx: ParseContext) -> None:
    parts = _split_cri(line)
    if parts is None:
        raise ParseError("text line is not a CRI log line (<time> <stdout|stderr> <P|F> <message>)")
    when, stream, tag, message = parts
    out: Fields = {
        "event.kind": "event",
        "event.dataset": DATASET,
        "message": message,
        "log.iostream": stream,
        f"{NATIVE}.time": when,
        f"{NATIVE}.stream": stream,
        f"{NATIVE}.logtag": tag,
    }
    if tag[0] == "P":
        out[f"{NATIVE}.partial"] = True
    _set_time(out, when, ctx)
    _expand_json(message, out, ctx)
    ctx.emit(out, line)


def _split_cri(line: str) -> tuple[str, str, str, str] | None:
    """(time, stream, tag, message) of a CRI line, or None if the line has another shape."""
    parts = line.split(" ", 3)
    if len(parts) < 3:
        return None
    when, stream, tag = parts[0], parts[1], parts[2]
    # The tag is a ':'-separated flag list; today only P (partial) or F (full) comes first.
    if stream not in _STREAMS or tag.partition(":")[0] not in _CRI_TAGS:
        return None
    if len(when) < 20 or when[4] != "-" or when[10] != "T" or not when[:4].isdigit():
        return None
    return when, stream, tag, parts[3] if len(parts) == 4 else ""


def _parse_record(
    record: dict[str, Any], pair_time: float | None, original: Record, ctx: ParseContext
) -> None:
    found = _message_of(record)
    out: Fields = {"event.kind": "event", "event.dataset": DATASET}
    flatten(record, NATIVE, out, ctx.limits)
    if found is not None:
        key, line = found
        del out[f"{NATIVE}.{key}"]  # the line itself is `message`
        out["message"] = line

    stream = record.get("stream")
    if isinstance(stream, str) and stream in _STREAMS:
        out["log.iostream"] = stream
    if record.get("logtag") == "P":  # Fluent Bit's CRI parser keeps the tag here
        out[f"{NATIVE}.partial"] = True
    if pair_time is not None:
        _set_time(out, pair_time, ctx)
    else:
        for time_key in _TIME_KEYS:
            if time_key in record:
                _set_time(out, record[time_key], ctx)
                break

    kubernetes = record.get("kubernetes")
    if isinstance(kubernetes, dict):
        _map_kubernetes(kubernetes, out)
    if found is not None:
        _expand_json(found[1], out, ctx)
    ctx.emit(out, original)


def _message_of(record: dict[str, Any]) -> tuple[str, str] | None:
    """(key, line) of the record's log line; None when a collector merged it away."""
    for key in _MESSAGE_KEYS:
        value = record.get(key)
        if isinstance(value, str):
            # Docker ends every line with "\n" (Windows programs with "\r\n").
            if value.endswith("\n"):
                value = value[:-2] if value.endswith("\r\n") else value[:-1]
            return key, value
    for key in _MESSAGE_KEYS:
        if record.get(key) is not None:
            raise ParseError(f"{key} is {json_type(record[key])}, not a string")
    # Fluent Bit with Merge_Log On and Keep_Log Off drops the line after merging its fields.
    if not isinstance(record.get("kubernetes"), dict):
        raise ParseError("no log line in the record (log, message or MESSAGE)")
    return None


def _map_kubernetes(kubernetes: dict[str, Any], out: Fields) -> None:
    get = kubernetes.get
    for field, fluent_bit, vector in _KUBERNETES_STRINGS:
        value = get(fluent_bit)
        if not isinstance(value, str) or not value:
            value = get(vector)
        if isinstance(value, str) and value:
            out[field] = value
    if "kubernetes.node.name" in out:
        out["host.name"] = out["kubernetes.node.name"]
    container_id = get("docker_id")
    if not isinstance(container_id, str) or not container_id:
        container_id = get("container_id")
    if isinstance(container_id, str) and container_id:
        # Vector reports the runtime's "containerd://<id>" form.
        out["container.id"] = container_id.rpartition("://")[2]
    labels = get("labels")
    _copy_strings(labels if isinstance(labels, dict) else get("pod_labels"), "labels", out)
    annotations = get("annotations")
    if not isinstance(annotations, dict):
        annotations = get("pod_annotations")
    _copy_strings(annotations, "annotations", out)


def _expand_json(line: str, out: Fields, ctx: ParseContext) -> None:
    """Keep a structured (JSON object) log line's fields under container_log.json."""
    if len(line) < 2 or line[0] != "{" or line[-1] != "}":
        return
    try:
        value = orjson.loads(line)
    except orjson.JSONDecodeError:
        return  # text that merely looks like JSON stays text
    if not isinstance(value, dict) or not value:
        return
    # Flatten apart so that a line over the limits costs its expansion, not the whole event.
    limits = RecordLimits(ctx.limits.max_depth, ctx.limits.max_fields - len(out))
    try:
        expanded = flatten(value, f"{NATIVE}.json", {}, limits)
    except RecordTooLarge as error:
        ctx.warn(f"structured log line kept as text only: {error.reason}")
        return
    out.update(expanded)


def _is_log_record(record: dict[str, Any]) -> bool:
    kubernetes = record.get("kubernetes")
    if isinstance(kubernetes, dict) and "pod_name" in kubernetes:
        return "namespace_name" in kubernetes or "pod_namespace" in kubernetes
    stream = record.get("stream")
    if isinstance(stream, str) and stream in _STREAMS:
        return isinstance(record.get("log"), str) or isinstance(record.get("message"), str)
    return False


def _fluent_pair(record: list[Any]) -> tuple[float, dict[str, Any]] | None:
    """Fluent Bit's ``[time, record]`` (or ``[[time, metadata], record]``) event, if it is one."""
    if len(record) != 2 or not isinstance(record[1], dict):
        return None
    head = record[0]
    if isinstance(head, list) and head:
        head = head[0]
    if type(head) is int or type(head) is float:
        return head, record[1]
    return None


def _set_time(out: Fields, value: Any, ctx: ParseContext) -> None:
    moment = parse_timestamp(value)
    if moment is None:
        ctx.warn(f"log time {value!r:.80} is not a timestamp; using the time of receipt")
    else:
        out["@timestamp"] = moment


def _copy_strings(mapping: Any, prefix: str, out: Fields) -> None:
    if isinstance(mapping, dict):
        for key, value in mapping.items():
            if isinstance(value, str):
                out[f"kubernetes.{prefix}.{key}"] = value


def _describe(record: Record) -> str:
    if isinstance(record, list):
        return "an array that is not a Fluent Bit [time, record] pair"
    return json_type(record)
