"""tracee: Aqua Tracee events and signature detections (JSON output).

Two shapes exist. The long-standing ``trace.Event`` JSON (``eventName``, ``processName``,
``args`` as ``[{name, type, value}]``, detections with ``metadata.Properties``) and the newer
``v1beta1.Event`` (``name``, ``workload.{process,container,pod}``, ``data`` as typed values,
detections with ``threat``). Both map onto the same fields; signature detections are
``event.kind: alert`` so they become Keelwatch alerts directly. Native fields stay under
``tracee.*``, arguments as ``tracee.args.<name>``.
"""

from __future__ import annotations

from typing import Any

from keelwatch.errors import ParseError
from keelwatch.model.fields import Fields, dig, flatten, set_if
from keelwatch.model.severity import CRITICAL, HIGH, LOW, MEDIUM
from keelwatch.parsers.base import ParseContext, Record
from keelwatch.parsers.values import int_or_none, json_type, str_or_none

NAME = "tracee"
DATASET = "tracee.events"
DESCRIPTION = "Aqua Tracee events and signature detections (trace.Event and v1beta1 JSON)"

# Tracee rates signatures 0 (lowest) to 3 (highest).
_SEVERITY = {0: LOW, 1: LOW, 2: MEDIUM, 3: HIGH}
# v1beta1 EventValue carries its value under one typed key.
_VALUE_KEYS = ("str", "int32", "int64", "u_int32", "u_int64", "bool", "bytes", "str_array")


def matches(record: Record) -> bool:
    if not isinstance(record, dict):
        return False
    legacy = "eventName" in record and ("processName" in record or "args" in record)
    modern = isinstance(record.get("name"), str) and isinstance(record.get("workload"), dict)
    return legacy or modern


def parse(record: Record, ctx: ParseContext) -> None:
    if not isinstance(record, dict):
        raise ParseError(f"a Tracee event is a JSON object, not {json_type(record)}")
    out: Fields = {"event.dataset": DATASET}
    if "eventName" in record:
        _legacy(record, out, ctx)
    elif isinstance(record.get("workload"), dict):
        _v1beta1(record, out, ctx)
    else:
        raise ParseError("neither eventName (trace.Event) nor name+workload (v1beta1)")
    out.setdefault("event.kind", "event")
    ctx.emit(out, record)


def _legacy(record: dict[str, Any], out: Fields, ctx: ParseContext) -> None:
    name = str_or_none(record.get("eventName"))
    if name is None:
        raise ParseError("eventName must be a non-empty string")
    out["event.action"] = name
    native = {k: v for k, v in record.items() if k != "args"}
    flatten(native, "tracee", out, ctx.limits)
    flatten(_legacy_args(record.get("args")), "tracee.args", out, ctx.limits)
    ctx.set_timestamp(out, record.get("timestamp"), "Tracee timestamp")  # nanoseconds
    set_if(out, "process.name", str_or_none(record.get("processName")))
    set_if(out, "process.pid", int_or_none(record.get("processId")))
    set_if(out, "process.parent.pid", int_or_none(record.get("parentProcessId")))
    set_if(out, "process.executable", str_or_none(dig(record, "executable", "path")))
    uid = int_or_none(record.get("userId"))
    if uid is not None:
        out["user.id"] = str(uid)
    set_if(out, "host.name", str_or_none(record.get("hostName")))
    set_if(out, "container.id", str_or_none(record.get("containerId")))
    set_if(out, "container.name", str_or_none(dig(record, "container", "name")))
    set_if(out, "container.image.name", str_or_none(dig(record, "container", "image")))
    set_if(out, "kubernetes.pod.name", str_or_none(dig(record, "kubernetes", "podName")))
    set_if(out, "kubernetes.namespace", str_or_none(dig(record, "kubernetes", "podNamespace")))
    set_if(out, "kubernetes.pod.uid", str_or_none(dig(record, "kubernetes", "podUID")))
    properties = dig(record, "metadata", "Properties")
    if isinstance(properties, dict) and properties.get("signatureID"):
        _detection(
            out,
            rule_id=str_or_none(properties.get("signatureID")),
            title=str_or_none(properties.get("signatureName")) or name,
            description=str_or_none(dig(record, "metadata", "Description")),
            severity=properties.get("Severity"),
            technique=str_or_none(properties.get("external_id")),
            ctx=ctx,
        )


def _v1beta1(record: dict[str, Any], out: Fields, ctx: ParseContext) -> None:
    name = str_or_none(record.get("name"))
    if name is None:
        raise ParseError("name must be a non-empty string")
    out["event.action"] = name
    native = {k: v for k, v in record.items() if k != "data"}
    flatten(native, "tracee", out, ctx.limits)
    flatten(_typed_values(record.get("data")), "tracee.args", out, ctx.limits)
    stamp = record.get("timestamp")
    if isinstance(stamp, dict):  # protobuf Timestamp as JSON: {"seconds": "…", "nanos": n}
        stamp = _protobuf_time(stamp)
    ctx.set_timestamp(out, stamp, "Tracee timestamp")
    process = dig(record, "workload", "process") or {}
    set_if(out, "process.name", str_or_none(dig(process, "thread", "name")))
    set_if(out, "process.pid", int_or_none(dig(process, "pid", "value")))
    set_if(out, "process.executable", str_or_none(dig(process, "executable", "path")))
    uid = int_or_none(dig(process, "real_user", "id", "value"))
    if uid is not None:
        out["user.id"] = str(uid)
    container = dig(record, "workload", "container") or {}
    set_if(out, "container.id", str_or_none(dig(container, "id")))
    set_if(out, "container.name", str_or_none(dig(container, "name")))
    set_if(out, "container.image.name", str_or_none(dig(container, "image", "name")))
    pod = dig(record, "workload", "pod") or {}
    set_if(out, "kubernetes.pod.name", str_or_none(dig(pod, "name")))
    set_if(out, "kubernetes.namespace", str_or_none(dig(pod, "namespace")))
    set_if(out, "kubernetes.pod.uid", str_or_none(dig(pod, "uid")))
    threat = record.get("threat")
    if isinstance(threat, dict):
        _detection(
            out,
            rule_id=str_or_none(dig(threat, "properties", "signatureID"))
            or str_or_none(dig(threat, "properties", "id")),
            title=str_or_none(threat.get("name")) or name,
            description=str_or_none(threat.get("description")),
            severity=threat.get("severity"),
            technique=str_or_none(dig(threat, "mitre", "technique", "id")),
            ctx=ctx,
        )


def _detection(
    out: Fields,
    *,
    rule_id: str | None,
    title: str,
    description: str | None,
    severity: Any,
    technique: str | None,
    ctx: ParseContext,
) -> None:
    out["event.kind"] = "alert"
    out["rule.name"] = title
    set_if(out, "rule.id", rule_id)
    set_if(out, "message", description)
    level = _severity(severity)
    if level is None:
        ctx.warn(f"Tracee severity {severity!r:.40} is not 0-3; event.severity left unset")
    else:
        out["event.severity"] = level
    if technique and technique.startswith("T"):
        out["threat.framework"] = "MITRE ATT&CK"
        out["threat.technique.id"] = [technique]


def _severity(value: Any) -> int | None:
    if isinstance(value, str):  # v1beta1 enums such as "HIGH"
        return {"LOW": LOW, "MEDIUM": MEDIUM, "HIGH": HIGH, "CRITICAL": CRITICAL, "INFO": LOW}.get(
            value.upper()
        )
    number = int_or_none(value)
    if number is None:
        return None
    return _SEVERITY.get(number, CRITICAL if number > 3 else None)


def _protobuf_time(stamp: dict[str, Any]) -> int | None:
    """Nanoseconds since the epoch; protobuf's JSON writes int64 seconds as a string."""
    seconds, nanos = stamp.get("seconds"), stamp.get("nanos", 0)
    if isinstance(seconds, str) and seconds.isascii() and seconds.isdigit():
        seconds = int(seconds)
    if type(seconds) is not int or type(nanos) is not int:
        return None
    return seconds * 10**9 + nanos


def _legacy_args(args: Any) -> dict[str, Any]:
    if not isinstance(args, list):
        return {}
    return {
        item["name"]: item.get("value")
        for item in args
        if isinstance(item, dict) and isinstance(item.get("name"), str) and item["name"]
    }


def _typed_values(data: Any) -> dict[str, Any]:
    found: dict[str, Any] = {}
    if not isinstance(data, list):
        return found
    for item in data:
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            continue
        for key in _VALUE_KEYS:
            if key in item:
                value = item[key]
                if key == "str_array" and isinstance(value, dict):
                    value = value.get("value")
                found[item["name"]] = value
                break
    return found
