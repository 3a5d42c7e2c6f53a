"""k8s-audit: Kubernetes API-server audit events, in every envelope a cluster delivers them in.

Accepted shapes (docs/sources/k8s-audit.md has the field mapping and the id rules):

* an ``audit.k8s.io`` Event (v1 or v1beta1) and the webhook's ``EventList``;
* EKS control-plane logs from a CloudWatch Logs subscription: the decoded payload, or the same
  payload gzipped and base64-encoded (a bare string, Lambda's ``awslogs``, Firehose ``records``);
* GKE Cloud Audit Log entries (``protoPayload.serviceName == "k8s.io"``), converted to the audit
  Event's own field names; the LogEntry itself is kept under ``gcp.audit``;
* AKS diagnostic records (``kube-audit``, ``kube-audit-admin``) and Event Hubs batches of them.

A bad item inside a batch is dead-lettered on its own; the rest of the batch is kept.
"""

from __future__ import annotations

import binascii
import zlib
from datetime import datetime
from typing import Any

import orjson

from keelwatch.errors import ParseError, PayloadTooLarge, RecordError, RecordTooLarge, RequestError
from keelwatch.model.fields import Fields, flatten, parse_timestamp
from keelwatch.parsers.base import ParseContext, Record
from keelwatch.parsers.gke_audit_entry import gke_entry_event, is_gke_payload
from keelwatch.parsers.values import text_at
from keelwatch.pipeline.decode import gunzip_limited

NAME = "k8s-audit"
DATASET = "kubernetes.audit"
DESCRIPTION = "Kubernetes API audit events: webhook/log files, EKS (CloudWatch), GKE and AKS"

# A CloudWatch subscription batch is at most a few MB compressed; JSON inflates ~10x.
MAX_ENCODED_CHARS = 8 * 1024 * 1024
MAX_INFLATED_BYTES = 32 * 1024 * 1024

_NS = "kubernetes.audit"
_AUDIT_API = "audit.k8s.io/"
# Fields only an audit Event has (a core/v1 Event has none of them).
_AUDIT_KEYS = frozenset(
    {"auditID", "verb", "stage", "requestURI", "objectRef", "user", "sourceIPs",
     "requestReceivedTimestamp", "stageTimestamp"}
)  # fmt: skip
# The same request is audited at several stages; only the last one keeps the bare auditID.
_INTERIM_STAGES = frozenset({"RequestReceived", "ResponseStarted"})
_AKS_CATEGORIES = frozenset({"kube-audit", "kube-audit-admin"})
_EKS_AUDIT_STREAM = "kube-apiserver-audit"
_VERB_TYPES = {
    "create": "creation", "update": "change", "patch": "change", "delete": "deletion",
    "deletecollection": "deletion", "get": "access", "list": "access", "watch": "access",
}  # fmt: skip
_DECISION_TYPES = {"allow": "allowed", "forbid": "denied"}
_REF_FIELDS = (
    ("namespace", "orchestrator.namespace"), ("resource", "orchestrator.resource.type"),
    ("name", "orchestrator.resource.name"), ("subresource", "orchestrator.resource.subresource"),
)  # fmt: skip
_USER_KEYS = ("user.name", "user.id", "user.group.name")
_EFFECTIVE_KEYS = ("user.effective.name", "user.effective.id", "user.effective.group.name")
_PEEK_CHARS = 1368  # base64 characters (a multiple of 4) enough to see a payload's header
_PEEK_MARKERS = (b'"CONTROL_MESSAGE"', b'"audit.k8s.io/')
_GZIP_B64 = "H4sI"  # base64 of the gzip magic and deflate method
_B64_STARTS = (_GZIP_B64, "ey", "ew")  # gzip, or JSON starting with '{"' or '{' + whitespace


def matches(record: Record) -> bool:
    """Cheap shape test: key checks, plus a 1 KB peek into compressed CloudWatch payloads."""
    if isinstance(record, str):  # a bare CloudWatch payload is always gzipped
        text = _unquote(record)
        return text.startswith(_GZIP_B64) and _peek_audit(text)
    if not isinstance(record, dict):
        return False
    kind = record.get("kind")
    if kind == "EventList":
        return _starts(record.get("apiVersion"), _AUDIT_API)
    if kind == "Event" or "auditID" in record or "apiVersion" in record:
        return _looks_audit(record)
    payload = record.get("protoPayload")
    if isinstance(payload, dict):
        return is_gke_payload(payload)
    if "messageType" in record:
        return _is_eks_payload(record)
    awslogs = record.get("awslogs")
    if isinstance(awslogs, dict):
        return _peek_audit(awslogs.get("data"))
    records = record.get("records")
    if isinstance(records, list):
        first = records[0] if records else None
        if not isinstance(first, dict):
            return False
        return _peek_audit(first.get("data")) if "data" in first else _is_aks(first)
    return _is_aks(record)


def parse(record: Record, ctx: ParseContext) -> None:
    if isinstance(record, str):
        text = _unquote(record)
        if not text.startswith(_GZIP_B64):
            raise ParseError("a text record must be a gzipped, base64 CloudWatch Logs payload")
        _cloudwatch(_decode_payload(text), ctx)
        return
    if not isinstance(record, dict):
        raise ParseError(f"an audit record must be a JSON object, not {_type(record)}")
    kind = record.get("kind")
    if kind == "EventList":
        _event_list(record, ctx)
    elif "kind" in record or "auditID" in record or "apiVersion" in record:
        _emit_event(record, ctx, record)
    elif "protoPayload" in record:
        _gke(record, ctx)
    elif "messageType" in record:
        _cloudwatch(record, ctx)
    elif "awslogs" in record:
        data = record["awslogs"].get("data") if isinstance(record["awslogs"], dict) else None
        _cloudwatch(_decode_payload(data), ctx)
    elif "records" in record:
        _batch(record["records"], ctx)
    elif "category" in record:
        _aks(record, ctx)
    else:
        raise ParseError(
            "not a Kubernetes audit record (expected an audit Event or EventList, an EKS"
            " CloudWatch payload, a GKE k8s.io LogEntry or an AKS kube-audit record)"
        )


# --- shape tests ------------------------------------------------------------------------------


def _looks_audit(obj: dict[str, Any]) -> bool:
    if obj.get("kind", "Event") != "Event":
        return False
    api = obj.get("apiVersion")
    if api is not None:
        return _starts(api, _AUDIT_API)
    if obj.get("kind") == "Event":  # trimmed events (Panther's EKS tests) omit apiVersion
        return not _AUDIT_KEYS.isdisjoint(obj)
    return "auditID" in obj and ("verb" in obj or "stage" in obj)


def _is_eks_payload(record: dict[str, Any]) -> bool:
    kind = record.get("messageType")
    if kind == "CONTROL_MESSAGE":  # a subscription health check: accepted, yields nothing
        return True
    group, stream = record.get("logGroup"), record.get("logStream")
    eks = isinstance(group, str) and group.startswith("/aws/eks/")
    return kind == "DATA_MESSAGE" and eks and _starts(stream, _EKS_AUDIT_STREAM)


def _is_aks(record: dict[str, Any]) -> bool:
    category = record.get("category")
    audit = isinstance(category, str) and category in _AKS_CATEGORIES
    return audit and isinstance(record.get("properties"), dict)


def _peek_audit(data: Any) -> bool:
    """Decode only the head of a base64 (gzip) payload and look for audit markers."""
    if not isinstance(data, str) or not data.startswith(_B64_STARTS):
        return False
    try:
        head = binascii.a2b_base64(data[:_PEEK_CHARS])
        if head[:2] == b"\x1f\x8b":
            head = zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(head, 2048)
    except (binascii.Error, ValueError, zlib.error):
        return False
    if any(marker in head for marker in _PEEK_MARKERS):
        return True
    return b'"/aws/eks/' in head and _EKS_AUDIT_STREAM.encode() in head


# --- envelopes --------------------------------------------------------------------------------


def _event_list(record: dict[str, Any], ctx: ParseContext) -> None:
    api = record.get("apiVersion")
    if api is not None and not _starts(api, _AUDIT_API):
        raise ParseError(f"EventList apiVersion {_show(api)} is not audit.k8s.io (use k8s-event)")
    items = record.get("items")
    if not isinstance(items, list):
        raise ParseError("EventList has no items list")
    for item in items:
        try:
            _emit_event(item, ctx, item)
        except RecordError as error:
            ctx.reject(item, error.reason)


def _batch(records: Any, ctx: ParseContext) -> None:
    """Firehose ``records[].data`` or Event Hubs ``records[]`` (AKS), each item on its own."""
    if not isinstance(records, list):
        raise ParseError("records is not a list")
    for item in records:
        try:
            if not isinstance(item, dict):
                raise ParseError(f"batch item is {_type(item)}, not an object")
            if "data" not in item:
                _aks(item, ctx)
                continue
            payload = _decode_payload(item["data"])
            # Firehose's own decompression with message extraction leaves the bare Event.
            if isinstance(payload, dict) and "messageType" not in payload:
                _emit_event(payload, ctx, payload)
            else:
                _cloudwatch(payload, ctx)
        except RecordError as error:
            ctx.reject(item, error.reason)


def _decode_payload(data: Any) -> Any:
    """base64 → (gunzip) → JSON, every step bounded and checked."""
    if not isinstance(data, str) or not data:
        raise ParseError("payload data is not a base64 string")
    if len(data) > MAX_ENCODED_CHARS:
        raise RecordTooLarge(f"base64 payload is longer than {MAX_ENCODED_CHARS} characters")
    try:
        raw = binascii.a2b_base64(data, strict_mode=True)
    except (binascii.Error, ValueError) as error:
        raise ParseError(f"payload is not valid base64: {error}") from None
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gunzip_limited(raw, MAX_INFLATED_BYTES)
        except PayloadTooLarge:
            raise RecordTooLarge(
                f"payload inflates to more than {MAX_INFLATED_BYTES} bytes"
            ) from None
        except (RequestError, ValueError) as error:
            raise ParseError(f"payload does not gunzip: {error}") from None
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as error:
        raise ParseError(f"decoded payload is not JSON (truncated?): {error}") from None


def _cloudwatch(payload: Any, ctx: ParseContext) -> None:
    if not isinstance(payload, dict):
        raise ParseError(f"CloudWatch Logs payload is {_type(payload)}, not an object")
    kind = payload.get("messageType")
    if kind == "CONTROL_MESSAGE":
        return
    if kind != "DATA_MESSAGE":
        raise ParseError(f"CloudWatch Logs messageType {_show(kind)} is not DATA_MESSAGE")
    extra: Fields = {"cloud.provider": "aws"}
    group, stream = payload.get("logGroup"), payload.get("logStream")
    if isinstance(group, str) and group.startswith("/aws/eks/"):
        if not _starts(stream, _EKS_AUDIT_STREAM):
            raise ParseError(f"EKS log stream {_show(stream)} is not the audit stream")
        parts = group.split("/")  # /aws/eks/<cluster>/cluster
        if len(parts) == 5 and parts[3]:
            extra["orchestrator.cluster.name"] = parts[3]
    owner = payload.get("owner")
    if isinstance(owner, str) and owner.isdigit():
        extra["cloud.account.id"] = owner
    events = payload.get("logEvents")
    if not isinstance(events, list):
        raise ParseError("CloudWatch Logs payload has no logEvents list")
    for item in events:
        try:
            message = item.get("message") if isinstance(item, dict) else None
            if not isinstance(message, str):
                raise ParseError("log event has no message string")
            try:
                event = orjson.loads(message)
            except orjson.JSONDecodeError as error:
                raise ParseError(f"log event message is not JSON: {error}") from None
            fallback = parse_timestamp(item.get("timestamp"))
            _emit_event(event, ctx, item, extra, fallback)
        except RecordError as error:
            ctx.reject(item, error.reason)


def _aks(record: dict[str, Any], ctx: ParseContext) -> None:
    category = record.get("category")
    if not (isinstance(category, str) and category in _AKS_CATEGORIES):
        raise ParseError(f"AKS diagnostic category {_show(category)} is not kube-audit")
    log = record.get("properties")
    log = log.get("log") if isinstance(log, dict) else None
    if isinstance(log, str):
        try:
            log = orjson.loads(log)
        except orjson.JSONDecodeError as error:
            raise ParseError(f"properties.log is not JSON: {error}") from None
    if not isinstance(log, dict):
        raise ParseError("AKS record has no audit Event in properties.log")
    extra: Fields = {"cloud.provider": "azure"}
    resource_id = record.get("resourceId")
    if isinstance(resource_id, str):
        # /SUBSCRIPTIONS/<id>/RESOURCEGROUPS/<rg>/PROVIDERS/…/MANAGEDCLUSTERS/<name>
        parts = resource_id.split("/")
        if len(parts) > 2 and parts[1].lower() == "subscriptions" and parts[2]:
            extra["cloud.account.id"] = parts[2].lower()  # a GUID; diagnostics upper-case it
        if len(parts) > 2 and parts[-2].lower() == "managedclusters" and parts[-1]:
            extra["orchestrator.cluster.name"] = parts[-1]
    _emit_event(log, ctx, record, extra, parse_timestamp(record.get("time")))


def _gke(record: dict[str, Any], ctx: ParseContext) -> None:
    """A GKE Cloud Audit Log entry: converted to the audit Event's names, the entry kept as is."""
    entry = _without_panther(record)
    converted = gke_entry_event(entry)
    if converted is None:
        raise ParseError("LogEntry is not a GKE Kubernetes audit entry (serviceName k8s.io)")
    event, extra, when = converted
    fields = _audit_fields(event, ctx, extra, when)
    flatten(entry, "gcp.audit", fields, ctx.limits)
    ctx.emit(fields, record)


# --- the audit Event itself -------------------------------------------------------------------


def _emit_event(
    event: Any,
    ctx: ParseContext,
    original: Record,
    extra: Fields | None = None,
    fallback: datetime | None = None,
) -> None:
    problem = _problem(event)
    if problem:
        raise ParseError(problem)
    ctx.emit(_audit_fields(_without_panther(event), ctx, extra, fallback), original)


def _problem(event: Any) -> str | None:
    if not isinstance(event, dict):
        return f"audit event is {_type(event)}, not an object"
    kind = event.get("kind", "Event")
    if kind != "Event":
        return f"kind is {_show(kind)}, not Event"
    api = event.get("apiVersion")
    if api is not None and not _starts(api, _AUDIT_API):
        return f"apiVersion {_show(api)} is not audit.k8s.io (a core Event belongs to k8s-event)"
    if api is None and "kind" not in event and "auditID" not in event:
        return "no kind, apiVersion or auditID: not an audit Event"
    if _AUDIT_KEYS.isdisjoint(event):
        return "no audit Event fields (auditID, verb, requestURI, user, objectRef, …)"
    return None


def _audit_fields(
    event: dict[str, Any], ctx: ParseContext, extra: Fields | None, fallback: datetime | None
) -> Fields:
    out: Fields = {
        "event.dataset": DATASET,
        "event.kind": "event",
        "event.category": ["api"],
        "orchestrator.type": "kubernetes",
    }
    flatten(event, _NS, out, ctx.limits)
    get = event.get
    verb = get("verb")
    if isinstance(verb, str) and verb:
        out["event.action"] = verb
        types = [_VERB_TYPES.get(verb, "info")]
        decision = text_at(get("annotations"), "authorization.k8s.io/decision")
        if decision in _DECISION_TYPES:
            types.append(_DECISION_TYPES[decision])
        out["event.type"] = types
    _user(get("user"), _USER_KEYS, out)
    _user(get("impersonatedUser"), _EFFECTIVE_KEYS, out)
    ips = get("sourceIPs")
    if isinstance(ips, list) and ips and isinstance(ips[0], str):
        out["source.ip"] = ips[0]
    for native, ecs in (("userAgent", "user_agent.original"), ("requestURI", "url.original")):
        value = get(native)
        if isinstance(value, str) and value:
            out[ecs] = value
    code = get("responseStatus")
    code = code.get("code") if isinstance(code, dict) else None
    if isinstance(code, int) and not isinstance(code, bool):
        out["http.response.status_code"] = code
        out["event.outcome"] = "success" if code < 400 else "failure"
    else:
        out["event.outcome"] = "unknown"
    _object(event, verb, out)
    moment = (
        parse_timestamp(get("requestReceivedTimestamp"))
        or parse_timestamp(get("stageTimestamp"))
        or parse_timestamp(get("timestamp"))  # v1beta1
        or fallback
    )
    if moment is not None:
        out["@timestamp"] = moment
    elif get("requestReceivedTimestamp") is not None or get("stageTimestamp") is not None:
        ctx.warn("audit event timestamps do not parse; @timestamp is the time of receipt")
    audit_id = get("auditID")
    if isinstance(audit_id, str) and audit_id:
        stage = get("stage")
        interim = isinstance(stage, str) and stage in _INTERIM_STAGES
        out["event.id"] = f"{audit_id}/{stage}" if interim else audit_id
    if extra:
        out.update(extra)
    return out


def _user(user: Any, keys: tuple[str, str, str], out: Fields) -> None:
    if not isinstance(user, dict):
        return
    name, uid, groups = user.get("username"), user.get("uid"), user.get("groups")
    if isinstance(name, str) and name:
        out[keys[0]] = name
    if isinstance(uid, str) and uid:
        out[keys[1]] = uid
    if isinstance(groups, list) and groups:
        names = [group for group in groups if isinstance(group, str)]
        if names:
            out[keys[2]] = names


def _object(event: dict[str, Any], verb: Any, out: Fields) -> None:
    ref = event.get("objectRef")
    if not isinstance(ref, dict):
        return
    for key, field in _REF_FIELDS:
        value = ref.get(key)
        if isinstance(value, str) and value:
            out[field] = value
    name = out.get("orchestrator.resource.name")
    if name is None and verb == "create" and "orchestrator.resource.subresource" not in out:
        # A create names its object in the body (or the server generates the name).
        name = text_at(event.get("responseObject"), "metadata", "name")
        name = name or text_at(event.get("requestObject"), "metadata", "name")
        if name:
            out["orchestrator.resource.name"] = name
    group, version = text_at(ref, "apiGroup"), text_at(ref, "apiVersion")
    if version:
        out["orchestrator.api_version"] = f"{group}/{version}" if group else version
    if out.get("orchestrator.resource.type") == "pods" and not group:
        if "orchestrator.namespace" in out:
            out["kubernetes.namespace"] = out["orchestrator.namespace"]
        if name:
            out["kubernetes.pod.name"] = name
        uid = text_at(ref, "uid")
        if uid:
            out["kubernetes.pod.uid"] = uid


# --- small helpers ----------------------------------------------------------------------------


def _starts(value: Any, prefix: str) -> bool:
    return isinstance(value, str) and value.startswith(prefix)


def _without_panther(record: dict[str, Any]) -> dict[str, Any]:
    """Drop Panther's ``p_*`` enrichment fields: they are not part of the source log."""
    if "p_log_type" not in record and "p_enrichment" not in record:
        return record
    return {key: value for key, value in record.items() if not key.startswith("p_")}


def _unquote(text: str) -> str:
    text = text.strip()
    return text[1:-1] if len(text) > 1 and text[0] == text[-1] == '"' else text


def _type(value: Any) -> str:
    return "null" if value is None else f"a {type(value).__name__}"


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
