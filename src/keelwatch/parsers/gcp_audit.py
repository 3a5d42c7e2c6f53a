"""Google Cloud Logging entries: Cloud Audit Logs, and other LogEntries so they are not lost.

* A LogEntry whose ``protoPayload`` is a ``google.cloud.audit.AuditLog`` (or has no ``@type``, as
  some exporters drop it) becomes a ``gcp.audit`` event with the entry under ``gcp.audit.``.
  The BigQuery log-sink row shape (``protopayload_auditlog``) is read the same way.
* GKE audit entries (``protoPayload.serviceName == "k8s.io"``) are Kubernetes audit events: they
  are handed to the k8s-audit parser.
* Any other LogEntry (``jsonPayload``/``textPayload``: VPC flow logs, load-balancer requests,
  container logs routed through Cloud Logging) becomes a ``gcp.logging`` event under
  ``gcp.logging.``, with the HTTP and flow facts mapped where present.

Field rules are in docs/sources/gcp-audit.md.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from typing import Any

from keelwatch.errors import ParseError
from keelwatch.model.fields import Fields, dig, flatten, parse_timestamp
from keelwatch.model.severity import CRITICAL, HIGH, INFO, LOW, MEDIUM, severity_from_name
from keelwatch.parsers import k8s_audit
from keelwatch.parsers.base import ParseContext, Record

NAME = "gcp-audit"
DATASET = "gcp.audit"
LOGGING_DATASET = "gcp.logging"
DESCRIPTION = "Google Cloud Audit Logs and other Cloud Logging entries"

AUDIT_TYPE = "type.googleapis.com/google.cloud.audit.AuditLog"
_GKE_SERVICE = "k8s.io"
_PAYLOADS = ("protoPayload", "jsonPayload", "textPayload", "protopayload_auditlog")
# LogEntry names as lower-cased by some warehouse exports.
_CANONICAL = {
    "insertid": "insertId",
    "logname": "logName",
    "protopayload": "protoPayload",
    "jsonpayload": "jsonPayload",
    "textpayload": "textPayload",
    "receivetimestamp": "receiveTimestamp",
    "httprequest": "httpRequest",
}
# LogSeverity as numbers (the enum values), for exports that write them so.
_AUDIT_FIELDS = frozenset(
    {"methodName", "serviceName", "authenticationInfo", "authorizationInfo", "requestMetadata"}
)
_NUMERIC_SEVERITY = {0: None, 100: INFO, 200: INFO, 300: LOW, 400: MEDIUM, 500: HIGH}
_REGION = re.compile(r"[a-z]+-[a-z]+\d+")
_ZONE = re.compile(r"([a-z]+-[a-z]+\d+)-[a-z]")
_K8S_LABELS = (
    ("cluster_name", "orchestrator.cluster.name"),
    ("namespace_name", "kubernetes.namespace"),
    ("pod_name", "kubernetes.pod.name"),
    ("node_name", "kubernetes.node.name"),
    ("container_name", "container.name"),
)
_IANA_TRANSPORT = {1: "icmp", 6: "tcp", 17: "udp", 58: "ipv6-icmp", 132: "sctp"}


def matches(record: Record) -> bool:
    if not isinstance(record, dict):
        return False
    proto = record.get("protoPayload", record.get("protopayload"))
    if isinstance(proto, dict):
        # Only Cloud Logging uses protoPayload; GKE audit entries belong to k8s-audit.
        return proto.get("serviceName") != _GKE_SERVICE
    if isinstance(record.get("protopayload_auditlog"), dict):
        return True
    return ("jsonPayload" in record or "textPayload" in record) and isinstance(
        record.get("logName"), str
    )


def parse(record: Record, ctx: ParseContext) -> None:
    if not isinstance(record, dict):
        raise ParseError(f"a Cloud Logging entry is a JSON object, not {type(record).__name__}")
    entry = record
    if not any(key in record for key in _PAYLOADS):
        if any(key in record for key in _CANONICAL):
            entry = {_CANONICAL.get(key, key): value for key, value in record.items()}
        if not any(key in entry for key in _PAYLOADS):
            raise ParseError(
                "not a Cloud Logging entry: no protoPayload, jsonPayload or textPayload"
            )

    proto = entry.get("protoPayload")
    if isinstance(proto, dict) and proto.get("serviceName") == _GKE_SERVICE:
        k8s_audit.parse(entry, ctx)  # GKE audit: the Kubernetes audit schema applies
        return
    audit = _audit_payload(entry)
    out: Fields = {}
    if audit is not None:
        flatten(entry, DATASET, out, ctx.limits)
        out["event.dataset"] = DATASET
        _map_audit(out, audit)
    else:
        flatten(entry, LOGGING_DATASET, out, ctx.limits)
        out["event.dataset"] = LOGGING_DATASET
        _map_logging(out, entry)
    out["event.kind"] = "event"
    out["cloud.provider"] = "gcp"
    _set_str(out, "event.id", entry.get("insertId"))
    _set_timestamp(out, entry, ctx)
    _set_severity(out, entry.get("severity"))
    _set_cloud(out, entry, audit)
    ctx.emit(out, record)


def _audit_payload(entry: dict[str, Any]) -> dict[str, Any] | None:
    proto = entry.get("protoPayload")
    if isinstance(proto, dict):
        kind = proto.get("@type")
        # Some exporters drop or rename @type; an AuditLog is then known by its own fields.
        if kind == AUDIT_TYPE or (kind is None and not _AUDIT_FIELDS.isdisjoint(proto)):
            return proto
        return None
    sink_row = entry.get("protopayload_auditlog")  # BigQuery log sink
    return sink_row if isinstance(sink_row, dict) else None


def _set_str(out: Fields, name: str, value: Any) -> None:
    if isinstance(value, str) and value:
        out[name] = value


def _set_ip(out: Fields, prefix: str, value: Any) -> None:
    """``prefix.address`` always; ``prefix.ip`` (and port) when the value is an address."""
    if not isinstance(value, str) or not value:
        return
    out[f"{prefix}.address"] = value
    host, port = value, None
    if value.startswith("["):  # [v6]:port
        host, _, rest = value[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else None
    elif value.count(":") == 1:  # v4:port
        host, port = value.split(":")
    ip = _as_ip(host)
    if ip is not None:  # not "private", "gce-internal-ip", …
        out[f"{prefix}.ip"] = ip
        if port and port.isdigit():
            out[f"{prefix}.port"] = int(port)


@functools.lru_cache(maxsize=4096)  # the same callers recur across a batch
def _as_ip(text: str) -> str | None:
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return None


def _set_timestamp(out: Fields, entry: dict[str, Any], ctx: ParseContext) -> None:
    raw = entry.get("timestamp")
    if raw is None:
        raw = entry.get("receiveTimestamp")
    if raw is None:
        return
    moment = parse_timestamp(raw)
    if moment is None:
        ctx.warn(f"timestamp {str(raw)[:64]!r} is not a timestamp; the time of receipt is used")
        return
    out["@timestamp"] = moment


def _set_severity(out: Fields, severity: Any) -> None:
    if isinstance(severity, str):
        level = severity_from_name(severity)  # DEFAULT is no severity
    elif isinstance(severity, int) and not isinstance(severity, bool):
        level = _NUMERIC_SEVERITY.get(severity, CRITICAL if severity > 500 else None)
    else:
        level = None
    if level is not None:
        out["event.severity"] = level


def _set_cloud(out: Fields, entry: dict[str, Any], audit: dict[str, Any] | None) -> None:
    labels = dig(entry, "resource", "labels")
    labels = labels if isinstance(labels, dict) else {}
    project = labels.get("project_id")
    log_name = entry.get("logName")
    if isinstance(log_name, str):
        scope, _, rest = log_name.partition("/")
        owner = rest.partition("/")[0]
        if scope == "projects" and not (isinstance(project, str) and project):
            project = owner
        elif scope == "organizations" and owner:
            out["cloud.account.id"] = owner
    _set_str(out, "cloud.project.id", project)
    if str(dig(entry, "resource", "type")).startswith("k8s_"):  # GKE logs routed to Cloud Logging
        for label, name in _K8S_LABELS:
            _set_str(out, name, labels.get(label))

    places = [labels.get("region"), labels.get("zone"), labels.get("location")]
    if audit is not None:
        locations = dig(audit, "resourceLocation", "currentLocations")
        if isinstance(locations, list) and locations:
            places.append(locations[0])
    for place in places:
        if not isinstance(place, str):
            continue
        zone = _ZONE.fullmatch(place)
        if zone:
            out.setdefault("cloud.availability_zone", place)
            out.setdefault("cloud.region", zone.group(1))
        elif _REGION.fullmatch(place):
            out.setdefault("cloud.region", place)


def _map_audit(out: Fields, audit: dict[str, Any]) -> None:
    method = audit.get("methodName")
    service = audit.get("serviceName")
    _set_str(out, "event.action", method)
    _set_str(out, "event.provider", service)
    _set_str(out, "user.name", dig(audit, "authenticationInfo", "principalEmail"))
    metadata = audit.get("requestMetadata")
    if isinstance(metadata, dict):
        _set_ip(out, "source", metadata.get("callerIp"))
        _set_str(out, "user_agent.original", metadata.get("callerSuppliedUserAgent"))
    _set_audit_outcome(out, audit, method)
    if service == "login.googleapis.com":
        out["event.category"] = ["authentication"]
        out["event.type"] = ["start"]
    elif service in ("iam.googleapis.com", "iamcredentials.googleapis.com") or (
        isinstance(method, str) and method.lower().endswith("setiampolicy")
    ):
        out["event.category"] = ["iam"]
        out["event.type"] = ["change"]


def _set_audit_outcome(out: Fields, audit: dict[str, Any], method: Any) -> None:
    """status.code decides; then denied authorizations; then the sign-in method's own verdict."""
    status = audit.get("status")
    code = status.get("code") if isinstance(status, dict) else None
    if isinstance(code, int) and not isinstance(code, bool) and code != 0:
        out["event.outcome"] = "failure"
        out["error.code"] = str(code)
        _set_str(out, "error.message", status.get("message") if isinstance(status, dict) else None)
        return
    checks = audit.get("authorizationInfo")
    # BigQuery sink rows write booleans as strings.
    grants = [
        str(item.get("granted")).lower()
        for item in (checks if isinstance(checks, list) else ())
        if isinstance(item, dict)
    ]
    login = method if isinstance(method, str) else ""
    if "false" in grants or login.endswith("loginFailure"):
        out["event.outcome"] = "failure"
    elif isinstance(status, dict) or (grants and all(grant == "true" for grant in grants)):
        out["event.outcome"] = "success"  # an empty status is code 0 (OK)
    elif login.endswith("loginSuccess"):
        out["event.outcome"] = "success"
    else:
        out["event.outcome"] = "unknown"


def _map_logging(out: Fields, entry: dict[str, Any]) -> None:
    text = entry.get("textPayload")
    if not (isinstance(text, str) and text):
        text = dig(entry, "jsonPayload", "message")
    _set_str(out, "message", text)
    http = entry.get("httpRequest")
    if isinstance(http, dict):
        _set_str(out, "http.request.method", http.get("requestMethod"))
        _set_str(out, "url.original", http.get("requestUrl"))
        status = http.get("status")
        if isinstance(status, int) and not isinstance(status, bool):
            out["http.response.status_code"] = status
        _set_str(out, "user_agent.original", http.get("userAgent"))
        _set_ip(out, "source", http.get("remoteIp"))
        out["event.category"] = ["web"]
    connection = dig(entry, "jsonPayload", "connection")
    if isinstance(connection, dict):  # VPC flow logs
        _set_ip(out, "source", connection.get("src_ip"))
        _set_ip(out, "destination", connection.get("dest_ip"))
        for side, key in (("source", "src_port"), ("destination", "dest_port")):
            port = connection.get(key)
            if isinstance(port, int) and not isinstance(port, bool):
                out[f"{side}.port"] = port
        protocol = connection.get("protocol")
        if isinstance(protocol, int) and protocol in _IANA_TRANSPORT:
            out["network.transport"] = _IANA_TRANSPORT[protocol]
        out["event.category"] = ["network"]
        out["event.type"] = ["connection"]
