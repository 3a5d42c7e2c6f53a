"""What every parser module provides, and the context it reports through.

A parser module defines::

    NAME: str          # the ingest route and CLI name, e.g. "k8s-audit"
    DATASET: str       # the event.dataset it produces, e.g. "kubernetes.audit"
    DESCRIPTION: str   # one line for `keelwatch sources`
    def matches(record: Record) -> bool           # cheap shape test used by the "auto" route
    def parse(record: Record, ctx: ParseContext) -> None

``parse`` reports everything through ``ctx``: ``emit`` an event, ``emit_finding`` a posture
finding, ``reject`` a part of the record it cannot handle, ``warn`` about lost information.
It never touches storage or the network. Raising a ``RecordError`` (or any exception) rejects the
whole record: events it emitted for that record are withdrawn and the record is dead-lettered.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

import orjson

from keelwatch.model.alert import Alert
from keelwatch.model.fields import DEFAULT_LIMITS, Fields, RecordLimits, content_id, parse_timestamp

Record = Any  # a decoded JSON value (dict, list, scalar) or one line of text (str)


@dataclass(slots=True)
class DeadLetter:
    """A record (or part of one) that could not be taken, kept with why."""

    source: str
    reason: str
    raw: bytes
    received_at: datetime


@dataclass(slots=True)
class Batch:
    """The output of normalizing a group of records."""

    events: list[Fields] = field(default_factory=list)
    findings: list[Fields] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    alerts: list[Alert] = field(default_factory=list)  # raised or updated by detection

    def extend(self, other: Batch) -> None:
        self.events.extend(other.events)
        self.findings.extend(other.findings)
        self.dead_letters.extend(other.dead_letters)
        self.warnings.extend(other.warnings)
        self.alerts.extend(other.alerts)


def raw_bytes(record: Record) -> bytes:
    if isinstance(record, bytes):
        return record
    if isinstance(record, str):
        return record.encode()
    try:
        return orjson.dumps(record)
    except TypeError:  # e.g. an integer wider than 64 bits from YAML: keep it, never crash
        return json.dumps(record, default=str).encode()


class ParseContext:
    """The parser's only window on the world (plaso's mediator, in small)."""

    def __init__(
        self,
        source: str,
        received_at: datetime,
        batch: Batch,
        limits: RecordLimits = DEFAULT_LIMITS,
    ) -> None:
        self.source = source
        self.received_at = received_at
        self.limits = limits
        self.batch = batch

    def emit(self, fields: Fields, original: Record) -> None:
        """Add one event. Fills ``event.id`` (content hash), ``@timestamp`` and the bookkeeping."""
        self.batch.events.append(self._finish(fields, original))

    def emit_finding(self, fields: Fields, original: Record) -> None:
        """Add one posture finding (stored apart from events); its ``event.kind`` is ``state``."""
        fields.setdefault("event.kind", "state")
        self.batch.findings.append(self._finish(fields, original))

    def reject(self, record: Record, reason: str) -> None:
        """Dead-letter a record or a part of one, and go on."""
        self.batch.dead_letters.append(
            DeadLetter(self.source, reason, raw_bytes(record), self.received_at)
        )

    def set_timestamp(self, out: Fields, value: Any, what: str) -> None:
        """Set ``@timestamp`` from the source's own time; warn (and keep the time of receipt)
        when ``value`` is there but is not a timestamp."""
        if value is None:
            return
        moment = parse_timestamp(value)
        if moment is None:
            self.warn(f"{what} {value!r:.80} is not a timestamp; using the time of receipt")
        else:
            out["@timestamp"] = moment

    def warn(self, message: str) -> None:
        self.batch.warnings.append(f"{self.source}: {message}")

    def _finish(self, fields: Fields, original: Record) -> Fields:
        if "event.id" not in fields:
            fields["event.id"] = content_id(original)
        fields.setdefault("@timestamp", self.received_at)
        fields["event.ingested"] = self.received_at
        fields["event.original"] = raw_bytes(original).decode("utf-8", "replace")
        return fields


class ParserModule(Protocol):
    NAME: str
    DATASET: str
    DESCRIPTION: str

    def matches(self, record: Record) -> bool: ...

    def parse(self, record: Record, ctx: ParseContext) -> None: ...


@dataclass(frozen=True, slots=True)
class Parser:
    """A registered parser: the module's metadata and functions."""

    name: str
    dataset: str
    description: str
    matches: Callable[[Record], bool]
    parse: Callable[[Record, ParseContext], None]
