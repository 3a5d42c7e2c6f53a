"""GKE's Kubernetes audit entries (Cloud Audit Logs, serviceName k8s.io) as audit Events.

GKE exports each API request as a LogEntry whose protoPayload names the method
(``io.k8s.core.v1.pods.create``), the resource path, the caller and a google.rpc status. This
module rebuilds the audit Event those fields describe, so k8s-audit maps it like any other;
the entry itself is kept under ``gcp.audit.*`` by the caller.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from keelwatch.model.fields import Fields, parse_timestamp
from keelwatch.parsers.values import text_at

# google.rpc.Code → HTTP status, as Google's own API gateways translate them.
GRPC_TO_HTTP = {
    0: 200, 1: 499, 2: 500, 3: 400, 4: 504, 5: 404, 6: 409, 7: 403, 8: 429,
    9: 400, 10: 409, 11: 400, 12: 501, 13: 500, 14: 503, 15: 500, 16: 401,
}  # fmt: skip
_GKE_LABELS = (("cluster_name", "orchestrator.cluster.name"), ("project_id", "cloud.project.id"))
# The verbs a method name may end in (the audit Event's verbs and the RBAC-only ones).
VERBS = frozenset(
    {"create", "update", "patch", "delete", "deletecollection", "get", "list", "watch",
     "proxy", "bind", "escalate", "impersonate", "approve", "sign"}
)  # fmt: skip


def is_gke_payload(payload: dict[str, Any]) -> bool:
    service = payload.get("serviceName")
    if service is None:  # trimmed entries keep only the method
        return _starts_with(payload.get("methodName"), "io.k8s.")
    return isinstance(service, str) and service == "k8s.io"


def gke_entry_event(entry: dict[str, Any]) -> tuple[dict[str, Any], Fields, datetime | None] | None:
    """(audit Event, extra fields, time) for a GKE entry; None when it is not one."""
    payload = entry.get("protoPayload")
    if not isinstance(payload, dict) or not is_gke_payload(payload):
        return None
    event: dict[str, Any] = {}
    method = payload.get("methodName")
    segments = method.split(".") if isinstance(method, str) else []
    if segments and segments[-1] in VERBS:
        event["verb"] = segments[-1]
    name = payload.get("resourceName")
    if not isinstance(name, str) or not name:
        info = payload.get("authorizationInfo")
        name = text_at(info[0], "resource") if isinstance(info, list) and info else None
    if name:
        ref = _object_ref(name)
        if ref is None:  # a non-resource path such as /readyz
            event["requestURI"] = "/" + name.lstrip("/")
    else:
        ref = _object_ref_from_method(segments)
    if ref:
        event["objectRef"] = ref
    principal = text_at(payload.get("authenticationInfo"), "principalEmail")
    if principal:
        event["user"] = {"username": principal}
    meta = payload.get("requestMetadata")
    caller = text_at(meta, "callerIp") or text_at(meta, "callerIP")
    if caller:
        event["sourceIPs"] = [caller]
    agent = text_at(meta, "callerSuppliedUserAgent")
    if agent:
        event["userAgent"] = agent
    status = payload.get("status")
    if isinstance(status, dict):  # an empty status is OK (proto3 omits code 0)
        code = status.get("code", 0)
        if isinstance(code, int) and not isinstance(code, bool):
            event["responseStatus"] = {"code": GRPC_TO_HTTP.get(code, 500)}
            if isinstance(status.get("message"), str) and status["message"]:
                event["responseStatus"]["message"] = status["message"]
    for native, gcp in (("requestObject", "request"), ("responseObject", "response")):
        if isinstance(payload.get(gcp), dict):
            event[native] = payload[gcp]
    if isinstance(entry.get("labels"), dict):
        event["annotations"] = entry["labels"]
    extra: Fields = {"cloud.provider": "gcp"}
    insert_id = entry.get("insertId")
    if isinstance(insert_id, str) and insert_id:
        extra["event.id"] = insert_id
    _gcp_resource(entry.get("resource"), extra)
    when = parse_timestamp(entry.get("timestamp")) or parse_timestamp(entry.get("receiveTimestamp"))
    return event, extra, when


def _object_ref(name: str) -> dict[str, str] | None:
    """``group/version/[namespaces/NS/]resource[/name[/subresource]]``; None for other paths."""
    parts = name.strip("/").split("/")
    if len(parts) < 3 or not _is_version(parts[1]) or not all(parts):
        return None
    ref = {"apiVersion": parts[1]}
    if parts[0] != "core":
        ref["apiGroup"] = parts[0]
    rest = parts[2:]
    # As the API server reads paths: namespaces/NS/status|finalize is the namespace itself.
    if rest[0] == "namespaces" and len(rest) > 1:
        ref["namespace"] = rest[1]
        if len(rest) > 2 and rest[2] not in ("status", "finalize"):
            rest = rest[2:]
    ref["resource"] = rest[0]
    if len(rest) > 1:
        ref["name"] = rest[1]
    if len(rest) > 2:
        ref["subresource"] = rest[2]
    return ref


def _object_ref_from_method(segments: list[str]) -> dict[str, str] | None:
    """``io.k8s.<group>.<version>.<resource>[.<subresource>].<verb>``: version and resource."""
    verb_at = len(segments) - 1
    for index in range(verb_at - 2, 1, -1):  # the version is followed by at least a resource
        if _is_version(segments[index]):
            ref = {"apiVersion": segments[index], "resource": segments[index + 1]}
            if index + 2 < verb_at:
                ref["subresource"] = segments[index + 2]
            return ref
    return None


def _gcp_resource(resource: Any, out: Fields) -> None:
    labels = resource.get("labels") if isinstance(resource, dict) else None
    if not isinstance(labels, dict):
        return
    for label, field in _GKE_LABELS:
        if isinstance(labels.get(label), str) and labels[label]:
            out[field] = labels[label]
    location = labels.get("location")
    if isinstance(location, str) and location:
        region, _, suffix = location.rpartition("-")
        if region and len(suffix) == 1 and suffix.isalpha():  # us-central1-a is a zone
            out["cloud.availability_zone"] = location
            out["cloud.region"] = region
        else:
            out["cloud.region"] = location


def _is_version(segment: str) -> bool:
    return len(segment) > 1 and segment[0] == "v" and segment[1].isdigit()


def _starts_with(value: Any, prefix: str) -> bool:
    return isinstance(value, str) and value.startswith(prefix)
