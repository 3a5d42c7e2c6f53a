"""Hand-written Kubernetes audit events for tests (the shape an API server sends)."""

from __future__ import annotations

import uuid
from typing import Any


def audit_event(
    verb: str = "create",
    resource: str = "pods",
    *,
    namespace: str = "default",
    name: str = "web-1",
    user: str = "alice@example.com",
    code: int = 201,
    when: str = "2026-03-01T10:00:00.000000Z",
    audit_id: str | None = None,
) -> dict[str, Any]:
    return {
        "kind": "Event",
        "apiVersion": "audit.k8s.io/v1",
        "level": "Metadata",
        "auditID": audit_id or str(uuid.uuid4()),
        "stage": "ResponseComplete",
        "requestURI": f"/api/v1/namespaces/{namespace}/{resource}",
        "verb": verb,
        "user": {"username": user, "groups": ["developers", "system:authenticated"]},
        "sourceIPs": ["10.0.0.7"],
        "userAgent": "kubectl/v1.31.0 (linux/amd64) kubernetes/abc",
        "objectRef": {
            "resource": resource,
            "namespace": namespace,
            "name": name,
            "apiVersion": "v1",
        },
        "responseStatus": {"metadata": {}, "code": code},
        "requestReceivedTimestamp": when,
        "stageTimestamp": when,
        "annotations": {"authorization.k8s.io/decision": "allow"},
    }


def event_list(*events: dict[str, Any]) -> dict[str, Any]:
    return {"kind": "EventList", "apiVersion": "audit.k8s.io/v1", "items": list(events)}
