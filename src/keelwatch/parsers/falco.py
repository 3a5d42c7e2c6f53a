"""Falco alerts: ``json_output`` lines, Falcosidekick webhook payloads, syslog-wrapped JSON.

Falco and Falcosidekick send the same object (``time``, ``rule``, ``priority``, ``output``,
``output_fields``, ``source``, ``tags``, ``hostname``, ``uuid``). When Falco logs through syslog
the alert arrives as a text line, ``<syslog header> falco: {...}``; the JSON part is taken from the
first ``{`` within a bounded prefix, so no regular expression ever scans the line. The same line
may come inside a collector's record (``{"log": ...}`` from Fluent Bit tailing syslog or Falco's
stdout, ``{"message": ...}`` from Vector); the alert is taken from there.

Native fields keep Falco's names under ``falco.``; every output field is ONE key with its dots
kept (``falco.output_fields.proc.cmdline``), so rules written with Falco field names map by prefix.
"""

from __future__ import annotations

from typing import Any

import orjson

from keelwatch.errors import ParseError
from keelwatch.model.fields import Fields, flatten
from keelwatch.model.severity import severity_from_name
from keelwatch.parsers.base import ParseContext, Record
from keelwatch.parsers.values import int_or_none, json_type, port_or_none, str_or_none

NAME = "falco"
DATASET = "falco.alerts"
DESCRIPTION = "Falco alerts: json_output, Falcosidekick webhook, syslog lines carrying the JSON"

# A syslog header plus a relay's own prefix fit well within this; the JSON must start before it.
_MAX_PREFIX = 512
# Where collectors put a line they did not parse (Fluent Bit/docker "log", Vector/CRI "message").
_LINE_KEYS = ("log", "message")
# Falco prints this where a field has no value (older versions; newer ones send null).
_NOT_AVAILABLE = "<NA>"
_EXEC_SYSCALLS = frozenset(("execve", "execveat"))
_FILE_FD_TYPES = frozenset(("file", "directory"))
_NET_FD_TYPES = frozenset(("ipv4", "ipv6"))
_TRANSPORTS = frozenset(("tcp", "udp", "icmp", "raw"))


def matches(record: Record) -> bool:
    if isinstance(record, dict):
        return _looks_like_alert(record) or _wrapped_alert(record) is not None
    if isinstance(record, str):
        return _alert_in_line(record) is not None
    return False


def parse(record: Record, ctx: ParseContext) -> None:
    if isinstance(record, dict):
        alert: dict[str, Any] = record
        if "rule" not in record and (line_key := _line_key(record)) is not None:
            wrapped = _alert_in_line(record[line_key])
            if wrapped is None:
                raise ParseError(f"the {line_key} line holds no Falco JSON alert")
            alert = wrapped
    elif isinstance(record, str):
        found = _alert_in_line(record)
        if found is None:
            raise ParseError("text line holds no Falco JSON alert")
        alert = found
    else:
        raise ParseError(f"a Falco alert is a JSON object, not {json_type(record)}")

    rule = alert.get("rule")
    if not isinstance(rule, str) or not rule:
        raise ParseError("Falco alert has no rule name (rule must be a non-empty string)")
    output_fields = alert.get("output_fields")
    if output_fields is None:
        output_fields = {}
    elif not isinstance(output_fields, dict):
        raise ParseError(f"output_fields is {json_type(output_fields)}, not an object")

    out: Fields = {
        "event.kind": "alert",
        "event.dataset": DATASET,
        "event.action": rule,
        "rule.name": rule,
    }
    # Native copy: nulls in output_fields carry nothing, so they are left out.
    native = dict(alert)
    native["output_fields"] = {k: v for k, v in output_fields.items() if v is not None}
    flatten(native, "falco", out, ctx.limits)

    _map_alert(alert, out, ctx)
    _map_output_fields(output_fields, out)
    out["event.category"] = _categories(alert.get("tags"), output_fields, out)
    out["event.type"] = ["info"]
    ctx.emit(out, record)


def _looks_like_alert(record: dict[str, Any]) -> bool:
    return (
        "rule" in record
        and "priority" in record
        and ("output" in record or "output_fields" in record)
    )


def _wrapped_alert(record: dict[str, Any]) -> dict[str, Any] | None:
    """The alert in a collector's record of a syslog or stdout line (``{"log": "... {...}"}``)."""
    key = _line_key(record)
    return None if key is None else _alert_in_line(record[key])


def _line_key(record: dict[str, Any]) -> str | None:
    for key in _LINE_KEYS:
        if isinstance(record.get(key), str):
            return key
    return None


def _alert_in_line(line: str) -> dict[str, Any] | None:
    """The Falco alert carried by a text line (syslog-wrapped), or None."""
    # Cheap substring tests first: most text lines never get as far as a JSON decode.
    if '"rule"' not in line or '"priority"' not in line:
        return None
    start = line.find("{", 0, _MAX_PREFIX)
    if start < 0:
        return None
    try:
        value = orjson.loads(line[start:])
    except orjson.JSONDecodeError:
        return None
    if isinstance(value, dict) and _looks_like_alert(value):
        return value
    return None


def _map_alert(alert: dict[str, Any], out: Fields, ctx: ParseContext) -> None:
    output = alert.get("output")
    if isinstance(output, str) and output:
        out["message"] = output
    priority = alert.get("priority")
    severity = severity_from_name(priority)
    if severity is not None:
        out["event.severity"] = severity
    elif priority is not None:
        ctx.warn(f"unknown Falco priority {priority!r:.80}; event.severity left unset")
    hostname = str_or_none(alert.get("hostname"))
    if hostname:
        out["host.name"] = hostname
    uuid = str_or_none(alert.get("uuid"))
    if uuid:
        out["event.id"] = uuid
    ctx.set_timestamp(out, alert.get("time"), "Falco alert time")
    tags = alert.get("tags")
    if isinstance(tags, list):
        _map_attack_tags(tags, out)


def _map_output_fields(fields: dict[str, Any], out: Fields) -> None:
    get = fields.get
    _put(out, "process.name", str_or_none(get("proc.name")))
    _put(out, "process.command_line", str_or_none(get("proc.cmdline")))
    _put(out, "process.executable", str_or_none(get("proc.exepath")))
    _put(out, "process.pid", int_or_none(get("proc.pid")))
    _put(out, "process.working_directory", str_or_none(get("proc.cwd")))
    _put(out, "process.parent.name", str_or_none(get("proc.pname")))
    _put(out, "process.parent.executable", str_or_none(get("proc.pexepath")))
    _put(out, "process.parent.command_line", str_or_none(get("proc.pcmdline")))
    _put(out, "process.parent.pid", int_or_none(get("proc.ppid")))
    _put(out, "user.name", str_or_none(get("user.name")) or str_or_none(get("ka.user.name")))
    uid = int_or_none(get("user.uid"))
    if uid is not None:
        out["user.id"] = str(uid)

    # container.id "host" is Falco's way of saying the process runs outside any container. The
    # short id is kept even when the rule also prints container.full_id, so that every alert from
    # one container carries the same id.
    container_id = str_or_none(get("container.id"))
    if container_id != "host":
        _put(out, "container.id", container_id)
        _put(out, "container.name", str_or_none(get("container.name")))
        _put(out, "container.image.name", _image(get))

    _put(out, "kubernetes.namespace", str_or_none(get("k8s.ns.name")))
    _put(out, "kubernetes.pod.name", str_or_none(get("k8s.pod.name")))
    _put(out, "kubernetes.pod.uid", str_or_none(get("k8s.pod.uid")))
    _map_labels(get("k8s.pod.labels"), out)

    # k8s_audit plugin alerts describe an API request rather than a process.
    _put(out, "orchestrator.namespace", str_or_none(get("ka.target.namespace")))
    _put(out, "orchestrator.resource.type", str_or_none(get("ka.target.resource")))
    _put(out, "orchestrator.resource.name", str_or_none(get("ka.target.name")))

    fd_name = str_or_none(get("fd.name"))
    fd_type = str_or_none(get("fd.type"))
    if fd_name and (fd_type in _FILE_FD_TYPES or (fd_type is None and fd_name[0] == "/")):
        out["file.path"] = fd_name
    else:
        _put(out, "file.path", str_or_none(get("fs.path.name")))

    _put(out, "source.ip", str_or_none(get("fd.cip")))
    _put(out, "source.port", port_or_none(get("fd.cport")))
    _put(out, "destination.ip", str_or_none(get("fd.sip")))
    _put(out, "destination.port", port_or_none(get("fd.sport")))
    transport = str_or_none(get("fd.l4proto"))
    if transport in _TRANSPORTS:
        out["network.transport"] = transport
    if fd_type in _NET_FD_TYPES:
        out["network.type"] = fd_type


def _image(get: Any) -> str | None:
    image = str_or_none(get("container.image"))
    if image:
        return image
    repository = str_or_none(get("container.image.repository"))
    tag = str_or_none(get("container.image.tag"))
    if repository and tag:
        return f"{repository}:{tag}"
    return repository


def _map_labels(labels: Any, out: Fields) -> None:
    """Falco renders pod labels as ``key:value`` strings; accept an object as well."""
    if isinstance(labels, dict):
        for key, value in labels.items():
            if isinstance(value, str):
                out[f"kubernetes.labels.{key}"] = value
    elif isinstance(labels, list):
        for item in labels:
            if isinstance(item, str):
                key, sep, value = item.partition(":")
                if sep and key:
                    out[f"kubernetes.labels.{key}"] = value


def _map_attack_tags(tags: list[Any], out: Fields) -> None:
    """Falco tags rules with ATT&CK ids (``T1059.004``, ``TA0003``): expose them as threat.*."""
    techniques: list[str] = []
    tactics: list[str] = []
    for tag in tags:
        if not isinstance(tag, str) or len(tag) < 5 or tag[0] != "T":
            continue
        if tag[1] == "A" and len(tag) == 6 and tag[2:].isdigit():
            tactics.append(tag)
        elif tag[1:5].isdigit() and (
            len(tag) == 5 or (len(tag) == 9 and tag[5] == "." and tag[6:].isdigit())
        ):
            techniques.append(tag)
    if techniques or tactics:
        out["threat.framework"] = "MITRE ATT&CK"
        if techniques:
            out["threat.technique.id"] = techniques
        if tactics:
            out["threat.tactic.id"] = tactics


def _categories(tags: Any, fields: dict[str, Any], out: Fields) -> list[str]:
    """ECS categories from the rule's tags and the kind of object the alert is about."""
    tag_set = {tag for tag in tags if isinstance(tag, str)} if isinstance(tags, list) else set()
    categories = ["intrusion_detection"]
    if (
        "process" in tag_set
        or "shell" in tag_set
        or str_or_none(fields.get("evt.type")) in _EXEC_SYSCALLS
    ):
        categories.append("process")
    if "filesystem" in tag_set or "file.path" in out:
        categories.append("file")
    if "network" in tag_set or "destination.ip" in out or "source.ip" in out:
        categories.append("network")
    return categories


def _put(out: Fields, name: str, value: Any) -> None:
    if value is not None:
        out[name] = value
