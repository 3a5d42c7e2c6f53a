"""Cilium Hubble flows: ``hubble observe -o json`` lines, the Hubble exporter, bare flow objects.

``hubble observe -o json`` and the exporter print ``{"flow": {...}, "node_name": …, "time": …}``;
a bare flow is the inner object alone. Native fields keep Hubble's names under ``hubble.flow.``
(``hubble.flow.IP.source``, ``hubble.flow.l4.TCP.destination_port``) plus ``hubble.node_name``.

Kubernetes fields describe the *local* endpoint, the one whose policy saw the flow: the source
of an egress flow and the destination of an ingress flow, swapped for reply packets (a reply
travels back towards the endpoint that opened the connection). Without a direction, the source is
taken if it is a pod, else the destination.
"""

from __future__ import annotations

from typing import Any

from keelwatch.errors import ParseError
from keelwatch.model.fields import Fields, flatten
from keelwatch.parsers.base import ParseContext, Record
from keelwatch.parsers.values import json_type, port_or_none, str_or_none

NAME = "hubble"
DATASET = "hubble.flows"
DESCRIPTION = "Cilium Hubble flows (hubble observe -o json, Hubble exporter, bare flow objects)"

_SUCCESS = frozenset(("FORWARDED", "REDIRECTED", "TRANSLATED"))
_FAILURE = frozenset(("DROPPED", "DENIED", "ERROR"))
_DIRECTIONS = {"INGRESS": "ingress", "EGRESS": "egress", "TRAFFIC_DIRECTION_UNKNOWN": "unknown"}
_IP_VERSIONS = {"IPv4": "ipv4", "IPv6": "ipv6"}
# l4 key → (network.transport, carries ports)
_L4 = (
    ("TCP", "tcp", True),
    ("UDP", "udp", True),
    ("SCTP", "sctp", True),
    ("ICMPv4", "icmp", False),
    ("ICMPv6", "ipv6-icmp", False),
)
_DNS_RCODES = ("NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED")
# Labels Cilium derives for its own use rather than copying from the pod.
_DERIVED_LABEL_PREFIXES = ("io.cilium.k8s.", "io.kubernetes.pod.namespace")
_NOT_FLOWS = ("lost_events", "node_status")


def matches(record: Record) -> bool:
    if not isinstance(record, dict):
        return False
    flow = record.get("flow")
    if isinstance(flow, dict):
        return _looks_like_flow(flow)
    return _looks_like_flow(record)


def parse(record: Record, ctx: ParseContext) -> None:
    if not isinstance(record, dict):
        raise ParseError(f"a Hubble flow is a JSON object, not {json_type(record)}")
    out: Fields = {"event.kind": "event", "event.dataset": DATASET, "event.category": ["network"]}
    flow: Any = record.get("flow")
    if flow is not None:
        if not isinstance(flow, dict):
            raise ParseError(f"flow is {json_type(flow)}, not an object")
        flatten(record, "hubble", out, ctx.limits)
    elif _looks_like_flow(record):
        flow = record
        flatten(flow, "hubble.flow", out, ctx.limits)
    else:
        other = next((key for key in _NOT_FLOWS if key in record), None)
        if other:
            raise ParseError(f"Hubble {other} message, not a flow")
        raise ParseError("not a Hubble flow (no flow object, no verdict)")

    node = str_or_none(record.get("node_name")) or str_or_none(flow.get("node_name"))
    if node:
        out.setdefault("hubble.node_name", node)
        # Hubble Relay names nodes "<cluster>/<node>".
        cluster, _, host = node.rpartition("/")
        out["host.name"] = host
        if cluster:
            out["orchestrator.cluster.name"] = cluster
    ctx.set_timestamp(out, flow.get("time", record.get("time")), "Hubble flow time")
    uuid = str_or_none(flow.get("uuid"))
    if uuid:
        out["event.id"] = uuid
    summary = str_or_none(flow.get("Summary"))
    if summary:
        out["message"] = summary

    _map_addresses(flow, out)
    outcome = _map_verdict(flow, out)
    _map_local_endpoint(flow, out)
    l7 = flow.get("l7")
    kind = "protocol" if isinstance(l7, dict) and _map_l7(l7, out) else "connection"
    if outcome == "success":
        out["event.type"] = [kind, "allowed"]
    elif outcome == "failure" and flow.get("verdict") != "ERROR":
        out["event.type"] = [kind, "denied"]
    else:
        out["event.type"] = [kind]
    ctx.emit(out, record)


def _looks_like_flow(flow: dict[str, Any]) -> bool:
    return "verdict" in flow and ("IP" in flow or "l4" in flow or "Type" in flow)


def _map_addresses(flow: dict[str, Any], out: Fields) -> None:
    ip = flow.get("IP")
    if isinstance(ip, dict):
        _put(out, "source.ip", str_or_none(ip.get("source")))
        _put(out, "destination.ip", str_or_none(ip.get("destination")))
        version = ip.get("ipVersion")
        if isinstance(version, str) and version in _IP_VERSIONS:
            out["network.type"] = _IP_VERSIONS[version]
    l4 = flow.get("l4")
    if isinstance(l4, dict):
        for key, transport, has_ports in _L4:
            layer = l4.get(key)
            if isinstance(layer, dict):
                out["network.transport"] = transport
                if has_ports:
                    _put(out, "source.port", port_or_none(layer.get("source_port")))
                    _put(out, "destination.port", port_or_none(layer.get("destination_port")))
                break
    _put(out, "source.domain", _first_text(flow.get("source_names")))
    _put(out, "destination.domain", _first_text(flow.get("destination_names")))
    direction = flow.get("traffic_direction")
    if isinstance(direction, str) and direction in _DIRECTIONS:
        out["network.direction"] = _DIRECTIONS[direction]


def _map_verdict(flow: dict[str, Any], out: Fields) -> str:
    verdict = str_or_none(flow.get("verdict"))
    if verdict is None:
        return "unknown"
    out["event.action"] = verdict.lower()
    outcome = "success" if verdict in _SUCCESS else "failure" if verdict in _FAILURE else "unknown"
    out["event.outcome"] = outcome
    _put(out, "event.reason", str_or_none(flow.get("drop_reason_desc")))
    return outcome


def _map_local_endpoint(flow: dict[str, Any], out: Fields) -> None:
    source = flow.get("source")
    destination = flow.get("destination")
    reply = flow.get("is_reply")
    if not isinstance(reply, bool):
        reply = flow.get("reply") is True
    direction = flow.get("traffic_direction")
    if direction == "EGRESS":
        local = destination if reply else source
    elif direction == "INGRESS":
        local = source if reply else destination
    elif isinstance(source, dict) and str_or_none(source.get("pod_name")):
        local = source
    else:
        local = destination
    if not isinstance(local, dict):
        return
    _put(out, "kubernetes.namespace", str_or_none(local.get("namespace")))
    _put(out, "kubernetes.pod.name", str_or_none(local.get("pod_name")))
    labels = local.get("labels")
    if isinstance(labels, list):
        for label in labels:
            # "k8s:app=reviews"; other prefixes (reserved:, cidr:) are Cilium identities.
            if isinstance(label, str) and label.startswith("k8s:"):
                key, _, value = label[4:].partition("=")
                if key and not key.startswith(_DERIVED_LABEL_PREFIXES):
                    out[f"kubernetes.labels.{key}"] = value


def _map_l7(l7: dict[str, Any], out: Fields) -> bool:
    """Map DNS / HTTP / Kafka facts; True when the record carried an application protocol."""
    latency = l7.get("latency_ns")
    if type(latency) is int and latency >= 0:
        out["event.duration"] = latency
    dns = l7.get("dns")
    if isinstance(dns, dict):
        out["network.protocol"] = "dns"
        _map_dns(dns, l7.get("type"), out)
        return True
    http = l7.get("http")
    if isinstance(http, dict):
        out["network.protocol"] = "http"
        _map_http(http, out)
        return True
    if isinstance(l7.get("kafka"), dict):
        out["network.protocol"] = "kafka"
        return True
    return False


def _map_dns(dns: dict[str, Any], message_type: Any, out: Fields) -> None:
    query = str_or_none(dns.get("query"))
    if query:
        # Hubble prints the fully qualified name; ECS expects it without the root dot.
        out["dns.question.name"] = query[:-1] if len(query) > 1 and query[-1] == "." else query
    _put(out, "dns.question.type", _first_text(dns.get("qtypes")))
    if message_type == "REQUEST":
        out["dns.type"] = "query"
    elif message_type == "RESPONSE":
        out["dns.type"] = "answer"
        rcode = dns.get("rcode", 0)
        if type(rcode) is int and 0 <= rcode < len(_DNS_RCODES):
            out["dns.response_code"] = _DNS_RCODES[rcode]
    ips = dns.get("ips")
    if isinstance(ips, list):
        resolved = [ip for ip in ips if isinstance(ip, str)]
        if resolved:
            out["dns.resolved_ip"] = resolved


def _map_http(http: dict[str, Any], out: Fields) -> None:
    _put(out, "http.request.method", str_or_none(http.get("method")))
    _put(out, "url.original", str_or_none(http.get("url")))
    code = http.get("code")
    if type(code) is int and 100 <= code <= 999:
        out["http.response.status_code"] = code
    protocol = str_or_none(http.get("protocol"))
    if protocol and protocol.startswith("HTTP/"):
        out["http.version"] = protocol[5:]
    headers = http.get("headers")
    if isinstance(headers, list):
        for header in headers:
            if isinstance(header, dict):
                key = header.get("key")
                if isinstance(key, str) and key.lower() == "user-agent":
                    _put(out, "user_agent.original", str_or_none(header.get("value")))
                    break


def _first_text(values: Any) -> str | None:
    if isinstance(values, list) and values:
        return str_or_none(values[0])
    return None


def _put(out: Fields, name: str, value: Any) -> None:
    if value is not None:
        out[name] = value
