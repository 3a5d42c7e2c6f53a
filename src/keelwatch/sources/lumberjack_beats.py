"""Beats events → records for the parsers, each with the parser it is meant for.

A Beats event is a JSON object: ``@timestamp``, ``message``, ``@metadata.beat``, ``fields``,
``host``, ``agent``, ``log.file.path`` and, from ``add_kubernetes_metadata``, ``kubernetes.*``
and ``container.*`` in ECS shape. Nothing here parses log content. Three things happen:

- the parser: ``fields.keelwatch_source`` (or ``keelwatch_source`` with ``fields_under_root``),
  then the listener's configured hint, then ``event.dataset`` (a parser name or dataset),
  then ``@metadata.beat``; anything unknown means "auto" (recognise each record by shape);
- a ``message`` that is a JSON object of a shape a parser knows (an audit log line read from a
  file, a Falco alert printed by a pod) is handed to that parser as the object itself;
- a log line with Kubernetes metadata is given the key names the container parser reads
  (Fluent Bit's ``kubernetes.pod_name``, ``namespace_name``, …); the rest stays as it is.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from keelwatch.parsers.base import Record
from keelwatch.parsers.registry import AUTO, parsers, recognise
from keelwatch.sources.base import source_for
from keelwatch.sources.lumberjack_codec import Event

CONTAINER = "container"
DEAD = ""  # the group of payloads that are not events: dead-lettered with their reason


@dataclass(slots=True)
class WindowRecords:
    """One window's records grouped by parser, and which group each event joined."""

    groups: dict[str, list[Record]] = field(default_factory=dict)
    dead_letters: list[tuple[bytes, str]] = field(default_factory=list)
    members: list[str] = field(default_factory=list)  # per event, in window order


def prepare(events: Sequence[Event], default_hint: str | None) -> WindowRecords:
    """Decode a window's events (CPU work: run it off the event loop)."""
    prepared = WindowRecords()
    hints: dict[str, str] = {}
    for event in events:
        payload = event.payload
        if isinstance(payload, dict):  # a D frame: logstash-forwarder calls the line "line"
            value: Any = dict(payload)
            if "message" not in value and "line" in value:
                value["message"] = value.pop("line")
        else:
            try:
                value = orjson.loads(payload)
            except orjson.JSONDecodeError as error:
                _dead(prepared, payload, f"invalid JSON in a lumberjack data frame: {error}")
                continue
            if not isinstance(value, dict):
                kind = type(value).__name__
                _dead(prepared, payload, f"a Beats event is a JSON object, not {kind}")
                continue
        source, record = route(value, default_hint, hints)
        prepared.groups.setdefault(source, []).append(record)
        prepared.members.append(source)
    return prepared


def _dead(prepared: WindowRecords, raw: bytes, reason: str) -> None:
    prepared.dead_letters.append((raw, reason))
    prepared.members.append(DEAD)


def route(
    event: dict[str, Any], default_hint: str | None, cache: dict[str, str]
) -> tuple[str, Record]:
    """(parser name or "auto", record) for one Beats event."""
    source = _source(event, default_hint, cache)
    embedded = _json_message(event)
    if source == AUTO:
        if embedded is not None:
            found = recognise(embedded)
            if found is not None and found.name != CONTAINER:
                return found.name, embedded
        return AUTO, container_shape(event) or event
    if source == CONTAINER:
        return source, container_shape(event) or event
    if embedded is not None and _matches(source, embedded):
        return source, embedded
    return source, event


def _matches(source: str, record: Record) -> bool:
    try:
        return parsers()[source].matches(record)
    except Exception:  # a broken shape test only means "not this shape"
        return False


def _source(event: dict[str, Any], default_hint: str | None, cache: dict[str, str]) -> str:
    fields = event.get("fields")
    hints = (
        _text(fields.get("keelwatch_source")) if isinstance(fields, dict) else None,
        _text(event.get("keelwatch_source")),
        default_hint,
        _dataset(event),
        _beat(event),
    )
    for hint in hints:
        if not hint:
            continue
        if hint not in cache:
            cache[hint] = _parser_for(hint)
        if cache[hint] != AUTO:
            return cache[hint]
    return AUTO


def _parser_for(hint: str) -> str:
    for parser in parsers().values():
        if parser.dataset == hint:
            return parser.name
    return source_for(hint)


def _dataset(event: dict[str, Any]) -> str | None:
    meta = event.get("event")
    return _text(meta.get("dataset")) if isinstance(meta, dict) else None


def _beat(event: dict[str, Any]) -> str | None:
    meta = event.get("@metadata")
    return _text(meta.get("beat")) if isinstance(meta, dict) else None


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _json_message(event: dict[str, Any]) -> dict[str, Any] | None:
    """The message as an object when the line is one JSON object (decoding, not parsing)."""
    message = event.get("message")
    if not isinstance(message, str):
        return None
    line = message.strip()
    if len(line) < 2 or line[0] != "{" or line[-1] != "}":
        return None
    try:
        value = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None
    return value if isinstance(value, dict) and value else None


def container_shape(event: dict[str, Any]) -> dict[str, Any] | None:
    """A Filebeat log line with ECS Kubernetes metadata, renamed for the container parser.

    ``kubernetes.{pod.name, pod.uid, namespace, node.name, container.name}`` and
    ``container.{id, image.name}`` become ``kubernetes.{pod_name, pod_id, namespace_name,
    host, container_name, docker_id, container_image}``; other keys are kept untouched.
    None when the event is not a log line with a pod name and namespace.
    """
    kubernetes = event.get("kubernetes")
    if not isinstance(kubernetes, dict) or not isinstance(event.get("message"), str):
        return None
    if not isinstance(kubernetes.get("pod"), dict) or not _text(kubernetes.get("namespace")):
        return None
    mapped = dict(kubernetes)
    pod_name = _take(mapped, "pod", "name")
    if pod_name is None:
        return None
    mapped["pod_name"] = pod_name
    mapped["namespace_name"] = mapped.pop("namespace")
    renames = (
        ("pod_id", ("pod", "uid")),
        ("host", ("node", "name")),
        ("container_name", ("container", "name")),
        ("container_image", ("container", "image")),  # Beats before ECS container.image
    )
    for name, path in renames:
        value = _take(mapped, *path)
        if value is not None:
            mapped[name] = value
    container = event.get("container")
    if isinstance(container, dict):
        if (container_id := _text(container.get("id"))) is not None:
            mapped["docker_id"] = container_id
        image = container.get("image")
        if isinstance(image, dict) and (image_name := _text(image.get("name"))) is not None:
            mapped["container_image"] = image_name
    return {**event, "kubernetes": mapped}


def _take(mapping: dict[str, Any], outer: str, inner: str) -> str | None:
    """Remove and return the string ``mapping[outer][inner]``, copying ``outer`` first."""
    nested = mapping.get(outer)
    if not isinstance(nested, dict) or not _text(nested.get(inner)):
        return None
    rest = {key: value for key, value in nested.items() if key != inner}
    value: str = nested[inner]
    if rest:
        mapping[outer] = rest
    else:
        del mapping[outer]
    return value
