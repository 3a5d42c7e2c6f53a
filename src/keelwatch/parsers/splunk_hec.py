"""Splunk HTTP Event Collector envelopes, as the HEC adapter hands them on.

The adapter (``sources/splunk_hec.py``) turns each HEC event (or ``/raw`` line) into::

    {"event": "GET /healthz 200" | {...}, "time": 1767225600.25, "host": "node-1",
     "source": "/var/log/app.log", "sourcetype": "app", "index": "main",
     "fields": {"team": "shop"}, "channel": "<GUID>", "hint": {"parser": "falco", "strict": false}}

Only ``event`` is always there; ``time`` is epoch seconds. An event that is a record Keelwatch
knows (an object, or a string holding one, or a line the hinted parser takes) goes to that
record's parser (see ``handoff``); a Fluent Bit or Vector Kubernetes log record goes to the
container parser, since the envelope adds little to it. Every other event becomes one log event:
the line is ``message``, an object event is also expanded under ``splunk.event.``, and the
envelope's metadata is kept under ``splunk.`` (``host`` also as ``host.name``).
"""

from __future__ import annotations

from typing import Any

from keelwatch.errors import ParseError
from keelwatch.model.fields import Fields, flatten, parse_timestamp
from keelwatch.parsers.base import ParseContext, Record, raw_bytes
from keelwatch.parsers.handoff import expand, hand_off, json_object, original_of
from keelwatch.parsers.registry import parsers
from keelwatch.parsers.values import json_type

NAME = "splunk-hec"
DATASET = "splunk.hec"
DESCRIPTION = "Splunk HTTP Event Collector events (Splunk logging libraries, Fluent Bit, Vector)"

NATIVE = "splunk"
_METADATA = frozenset(("time", "host", "source", "sourcetype", "index", "fields"))
_ENVELOPE = _METADATA | {"event", "channel", "hint"}
# Collectors' Kubernetes log records say more than the HEC envelope around them.
_KUBERNETES_LOGS = "container"


def matches(record: Record) -> bool:
    """An HEC envelope: ``event`` plus at least one envelope key, and nothing else."""
    if not isinstance(record, dict) or not isinstance(record.get("event"), str | dict):
        return False
    keys = record.keys()
    return not keys - _ENVELOPE and not _METADATA.isdisjoint(keys)


def parse(record: Record, ctx: ParseContext) -> None:
    if not isinstance(record, dict):
        raise ParseError(f"an HEC event is a JSON object, not {json_type(record)}")
    event = record.get("event")
    if event is None or event == "":
        raise ParseError("the event field is missing or blank")
    structured = event if isinstance(event, dict) else None
    if isinstance(event, str):
        structured = json_object(event)
    if hand_off(structured if structured is not None else event, _hint(record, structured), ctx):
        return

    line = event if isinstance(event, str) else raw_bytes(event).decode("utf-8", "replace")
    original = original_of(record)
    out: Fields = {"event.kind": "event", "event.dataset": DATASET, "message": line}
    envelope = {key: value for key, value in original.items() if key != "event"}
    flatten(envelope, NATIVE, out, ctx.limits)
    if structured is not None:
        expand(structured, f"{NATIVE}.event", out, ctx)
    host = record.get("host")
    if isinstance(host, str) and host:
        out["host.name"] = host
    if "time" in record:
        moment = parse_timestamp(record["time"])
        if moment is None:
            ctx.warn(f"time {record['time']!r:.80} is not epoch seconds; using the time of receipt")
        else:
            out["@timestamp"] = moment
    ctx.emit(out, original)


def _hint(record: dict[str, Any], structured: dict[str, Any] | None) -> Any:
    """The adapter's hint; for a collector's Kubernetes log record, the container parser."""
    hint = record.get("hint")
    known = parsers()
    if structured is None or not known[_KUBERNETES_LOGS].matches(structured):
        return hint
    name = hint.get("parser") if isinstance(hint, dict) else None
    named = known.get(name) if isinstance(name, str) else None
    if named is not None and named.matches(structured):
        return hint
    return {"parser": _KUBERNETES_LOGS, "strict": False}
