"""k8s-event: Kubernetes Event objects (what ``kubectl get events`` shows).

Accepted shapes (docs/sources/k8s-event.md has the mapping): a core/v1 or events.k8s.io/v1
Event, an ``EventList`` or ``List`` of them, a watch notification
``{"type": "ADDED|MODIFIED|DELETED", "object": {...}}``, and the bare object Fluent Bit's
``kubernetes_events`` input forwards (no kind or apiVersion). Audit Events (``audit.k8s.io``)
belong to k8s-audit.
"""

from __future__ import annotations

from typing import Any

from keelwatch.errors import ParseError, RecordError
from keelwatch.model.fields import Fields, flatten, parse_timestamp
from keelwatch.model.severity import INFO, MEDIUM
from keelwatch.parsers.base import ParseContext, Record

NAME = "k8s-event"
DATASET = "kubernetes.event"
DESCRIPTION = "Kubernetes Events (core/v1, events.k8s.io/v1): objects, lists and watch streams"

_NS = "kubernetes.event"
_API_VERSIONS = frozenset({"v1", "events.k8s.io/v1", "events.k8s.io/v1beta1"})
_LIST_KINDS = frozenset({"EventList", "List"})
_WATCH_TYPES = frozenset({"ADDED", "MODIFIED", "DELETED"})
_OBJECT_REFS = ("involvedObject", "regarding")  # core/v1, events.k8s.io/v1
_EVENT_KEYS = frozenset({*_OBJECT_REFS, "reason", "message", "note"})
_SEVERITY = {"Warning": MEDIUM, "Normal": INFO}
# Server-side-apply bookkeeping: large, and says nothing about the event.
_MANAGED_FIELDS = f"{_NS}.metadata.managedFields"
# Newest first; events.k8s.io/v1 renamed the legacy fields and added series.
_TIME_PATHS: tuple[tuple[str, ...], ...] = (
    ("lastTimestamp",),
    ("deprecatedLastTimestamp",),
    ("series", "lastObservedTime"),
    ("eventTime",),
    ("firstTimestamp",),
    ("deprecatedFirstTimestamp",),
    ("metadata", "creationTimestamp"),
)
_CONTAINER_PATHS = ("spec.containers{", "spec.initContainers{", "spec.ephemeralContainers{")


def matches(record: Record) -> bool:
    if not isinstance(record, dict):
        return False
    kind = record.get("kind")
    if kind == "EventList":
        return _is_event_api(record.get("apiVersion"))
    if kind == "List":
        items = record.get("items")
        first = items[0] if isinstance(items, list) and items else None
        return isinstance(first, dict) and first.get("kind") == "Event" and _looks_event(first)
    if "object" in record:
        watch, obj = record.get("type"), record["object"]
        return (
            isinstance(watch, str)
            and (watch in _WATCH_TYPES or watch == "BOOKMARK")
            and isinstance(obj, dict)
            and obj.get("kind") == "Event"
            and _looks_event(obj)
        )
    return _looks_event(record)


def parse(record: Record, ctx: ParseContext) -> None:
    if not isinstance(record, dict):
        raise ParseError(f"a Kubernetes Event record must be a JSON object, not {_type(record)}")
    kind = record.get("kind")
    if isinstance(kind, str) and kind in _LIST_KINDS:
        items = record.get("items")
        if not isinstance(items, list):
            raise ParseError(f"{kind} has no items list")
        for item in items:
            try:
                _emit(item, ctx, item, None)
            except RecordError as error:
                ctx.reject(item, error.reason)
    elif "object" in record and "involvedObject" not in record:
        _watch(record, ctx)
    else:
        _emit(record, ctx, record, None)


def _watch(record: dict[str, Any], ctx: ParseContext) -> None:
    watch, obj = record.get("type"), record["object"]
    if watch == "BOOKMARK":  # a resume point, not an event
        return
    if watch == "ERROR":
        message = obj.get("message") if isinstance(obj, dict) else None
        detail = message if isinstance(message, str) else repr(obj)
        raise ParseError(f"watch ERROR: {detail[:200]}")
    if not (isinstance(watch, str) and watch in _WATCH_TYPES):
        raise ParseError(f"watch type {watch!r:.60} is not ADDED, MODIFIED or DELETED")
    _emit(obj, ctx, record, watch)


def _looks_event(obj: dict[str, Any]) -> bool:
    api = obj.get("apiVersion")
    if api is not None:
        return obj.get("kind") == "Event" and _is_event_api(api)
    # Without apiVersion: only the object reference tells a core Event from anything else
    # (Fluent Bit's kubernetes_events input also drops kind).
    kind = obj.get("kind", "Event")
    return kind == "Event" and any(isinstance(obj.get(ref), dict) for ref in _OBJECT_REFS)


def _is_event_api(api: Any) -> bool:
    return isinstance(api, str) and api in _API_VERSIONS


def _problem(obj: Any) -> str | None:
    if not isinstance(obj, dict):
        return f"Event is {_type(obj)}, not an object"
    kind = obj.get("kind", "Event")
    if kind != "Event":
        return f"kind is {kind!r:.60}, not Event"
    api = obj.get("apiVersion")
    if api is not None and not _is_event_api(api):
        return f"apiVersion {api!r:.60} is not v1 or events.k8s.io (audit Events go to k8s-audit)"
    if _EVENT_KEYS.isdisjoint(obj):
        return "no Event fields (involvedObject, regarding, reason, message, note)"
    return None


def _emit(obj: Any, ctx: ParseContext, original: Record, watch: str | None) -> None:
    problem = _problem(obj)
    if problem:
        raise ParseError(problem)
    out: Fields = {
        "event.dataset": DATASET,
        "event.kind": "event",
        "orchestrator.type": "kubernetes",
    }
    flatten(obj, _NS, out, ctx.limits)
    out.pop(_MANAGED_FIELDS, None)
    if watch is not None:
        out[f"{_NS}.watch.type"] = watch
    get = obj.get
    message = get("message") if "message" in obj else get("note")
    if isinstance(message, str) and message:
        out["message"] = message
    reason = get("reason")
    if isinstance(reason, str) and reason:
        out["event.action"] = reason
    severity = get("type")
    if isinstance(severity, str) and severity in _SEVERITY:
        out["event.severity"] = _SEVERITY[severity]
    ref = get("involvedObject") if "involvedObject" in obj else get("regarding")
    if isinstance(ref, dict):
        _involved(ref, out)
    _node(obj, out)
    for path in _TIME_PATHS:
        moment = parse_timestamp(_dig(obj, path))
        if moment is not None:
            out["@timestamp"] = moment
            break
    uid = _dig(obj, ("metadata", "uid"))
    version = _dig(obj, ("metadata", "resourceVersion"))
    # The API server bumps resourceVersion on every update (count, lastTimestamp), so this
    # names one version of one Event; without both, ctx falls back to a content hash.
    if isinstance(uid, str) and uid and isinstance(version, str) and version:
        out["event.id"] = f"{uid}/{version}"
    ctx.emit(out, original)


def _involved(ref: dict[str, Any], out: Fields) -> None:
    kind, namespace, name = _text(ref, "kind"), _text(ref, "namespace"), _text(ref, "name")
    api = _text(ref, "apiVersion")
    if namespace:
        out["orchestrator.namespace"] = namespace
    if kind:
        out["orchestrator.resource.type"] = resource_type(kind)
    if name:
        out["orchestrator.resource.name"] = name
    if api:
        out["orchestrator.api_version"] = api
    if kind == "Pod" and (api is None or api == "v1"):
        if namespace:
            out["kubernetes.namespace"] = namespace
        if name:
            out["kubernetes.pod.name"] = name
        uid = _text(ref, "uid")
        if uid:
            out["kubernetes.pod.uid"] = uid
        container = _container(_text(ref, "fieldPath"))
        if container:
            out["container.name"] = container
    elif kind == "Node" and name:
        out["kubernetes.node.name"] = name


def _node(obj: dict[str, Any], out: Fields) -> None:
    """The node the event comes from: the reporting kubelet's host."""
    if "kubernetes.node.name" in out:
        return
    source = obj.get("source") if "source" in obj else obj.get("deprecatedSource")
    host = _text(source, "host") if isinstance(source, dict) else None
    if host is None:
        component = obj.get("reportingComponent") or obj.get("reportingController")
        if component == "kubelet":  # a kubelet reports with its node name as the instance
            host = _text(obj, "reportingInstance")
    if host:
        out["kubernetes.node.name"] = host


def resource_type(kind: str) -> str:
    """The API resource for a kind (``Pod`` → ``pods``), guessed as the API server does."""
    lower = kind.lower()
    if lower == "endpoints":
        return lower
    if lower.endswith("s"):
        return lower + "es"
    if lower.endswith("y") and len(lower) > 1 and lower[-2] not in "aeiou":
        return lower[:-1] + "ies"
    return lower + "s"


def _container(field_path: str | None) -> str | None:
    """``spec.containers{nginx}`` → ``nginx``."""
    if not field_path or not field_path.endswith("}"):
        return None
    for prefix in _CONTAINER_PATHS:
        if field_path.startswith(prefix):
            return field_path[len(prefix) : -1] or None
    return None


def _dig(node: Any, path: tuple[str, ...]) -> Any:
    for step in path:
        if not isinstance(node, dict):
            return None
        node = node.get(step)
    return node


def _text(node: dict[str, Any], key: str) -> str | None:
    value = node.get(key)
    return value if isinstance(value, str) and value else None


def _type(value: Any) -> str:
    return "null" if value is None else f"a {type(value).__name__}"
