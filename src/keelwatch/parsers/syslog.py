"""Syslog messages (RFC 5424 and RFC 3164) from the syslog listeners, files and HTTP.

Records are either one message as a text line, or the syslog listener's record
``{"syslog": <message>, "log.source.address": "ip:port", "network.transport": "udp"|"tcp",
"tls.client.subject": <certificate subject>}`` (only ``syslog`` is required), which adds who sent
it. The header is read by ``syslog_format``; the fields are ECS's ``log.syslog.*``.

A message whose MSG is a JSON object of a shape another parser knows (a Kubernetes audit event
or a Falco alert that rsyslog relays) is handed to that parser; its events get the syslog
fields added. JSON of no known shape, and everything else, becomes a ``syslog`` event.

Field rules are in docs/sources/syslog.md.
"""

from __future__ import annotations

from typing import Any

from keelwatch.errors import ParseError
from keelwatch.model.fields import Fields, content_id, flatten
from keelwatch.model.severity import severity_from_name
from keelwatch.parsers.base import ParseContext, Parser, Record
from keelwatch.parsers.handoff import json_object, parse_as
from keelwatch.parsers.registry import recognise
from keelwatch.parsers.syslog_format import SyslogMessage, has_priority, parse_message
from keelwatch.parsers.values import json_type

NAME = "syslog"
DATASET = "syslog"
DESCRIPTION = "Syslog messages: RFC 5424 (structured data kept) and RFC 3164/BSD variants"

MESSAGE_KEY = "syslog"
# What the listener may add beside the message, with the type each must have.
_RECEIPT_KEYS = ("log.source.address", "network.transport", "tls.client.subject")
_RECORD_KEYS = frozenset((MESSAGE_KEY, *_RECEIPT_KEYS))
# Parsers never handed a JSON MSG: generic shapes, where the syslog event says more.
_NOT_DELEGATED = frozenset((NAME, "container", "otel-log", "loki"))
# rsyslog's mmjsonparse convention: "@cee:" before the JSON object.
_CEE = "@cee:"
_FACILITIES = (
    "kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp", "cron",
    "authpriv", "ftp", "ntp", "security", "console", "solaris-cron",
    "local0", "local1", "local2", "local3", "local4", "local5", "local6", "local7",
)  # fmt: skip
_SEVERITIES = (
    "Emergency", "Alert", "Critical", "Error", "Warning", "Notice", "Informational", "Debug",
)  # fmt: skip


def matches(record: Record) -> bool:
    if isinstance(record, str):
        return has_priority(record)  # a line without <PRI> is too vague to claim
    if isinstance(record, dict):
        return isinstance(record.get(MESSAGE_KEY), str) and _RECORD_KEYS.issuperset(record)
    return False


def parse(record: Record, ctx: ParseContext) -> None:
    receipt: Fields = {}
    if isinstance(record, str):
        text = record
    elif isinstance(record, dict) and isinstance(record.get(MESSAGE_KEY), str):
        text = record[MESSAGE_KEY]
        for key in _RECEIPT_KEYS:
            value = record.get(key)
            if isinstance(value, str) and value:
                receipt[key] = value
    else:
        raise ParseError(
            f"a syslog record is a text line or an object with a {MESSAGE_KEY!r} string, "
            f"not {json_type(record)}"
        )
    if not text.strip():
        raise ParseError("empty syslog message")
    message = parse_message(text, ctx.received_at)
    if message.bad_timestamp is not None:
        ctx.warn(f"timestamp {message.bad_timestamp[:64]!r} is unreadable; time of receipt used")
    syslog = _syslog_fields(message, ctx)
    syslog.update(receipt)
    # A hash of the whole record: the same line from two senders is two events.
    event_id = content_id(record)

    # The MSG may be one JSON object, optionally after rsyslog's "@cee:".
    payload = json_object(message.message.removeprefix(_CEE).strip())
    if payload is not None and (delegate := recognise(payload, _NOT_DELEGATED)) is not None:
        _hand_off(delegate, payload, syslog, text, ctx)
        return

    out: Fields = {"event.kind": "event", "event.dataset": DATASET, "event.id": event_id}
    out.update(syslog)
    level = severity_from_name(syslog.get("log.syslog.severity.name"))
    if level is not None:
        out["event.severity"] = level
    if message.message:
        out["message"] = message.message
    if message.timestamp is not None:
        out["@timestamp"] = message.timestamp
    if message.appname:
        out["process.name"] = message.appname
    ctx.emit(out, text)


def _syslog_fields(message: SyslogMessage, ctx: ParseContext) -> Fields:
    out: Fields = {}
    if message.priority is not None:
        facility, severity = divmod(message.priority, 8)
        out["log.syslog.priority"] = message.priority
        out["log.syslog.facility.code"] = facility
        out["log.syslog.facility.name"] = _FACILITIES[facility]
        out["log.syslog.severity.code"] = severity
        out["log.syslog.severity.name"] = _SEVERITIES[severity]
    if message.version is not None:
        out["log.syslog.version"] = str(message.version)
    if message.hostname:
        out["log.syslog.hostname"] = message.hostname
        out["host.name"] = message.hostname
    if message.appname:
        out["log.syslog.appname"] = message.appname
    if message.procid:
        out["log.syslog.procid"] = message.procid
        if message.procid.isascii() and message.procid.isdigit() and len(message.procid) < 10:
            out["process.pid"] = int(message.procid)
    if message.msgid:
        out["log.syslog.msgid"] = message.msgid
    if message.structured_data:
        flatten(message.structured_data, "log.syslog.structured_data", out, ctx.limits)
    out["log.syslog.format"] = message.format
    return out


def _hand_off(
    parser: Parser,
    payload: dict[str, Any],
    syslog: Fields,
    text: str,
    ctx: ParseContext,
) -> None:
    """Let ``parser`` read the payload; its output keeps the syslog facts and the whole line."""
    batch = ctx.batch
    first_event, first_finding = len(batch.events), len(batch.findings)
    parse_as(parser, payload, ctx)
    for fields in (*batch.events[first_event:], *batch.findings[first_finding:]):
        for key, value in syslog.items():
            fields.setdefault(key, value)  # the payload's own host, severity… win
        fields["event.original"] = text
