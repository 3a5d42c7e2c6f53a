"""Realistic Kubernetes audit traffic for benchmarks, deterministic for a seed."""

from __future__ import annotations

import random
import uuid
from typing import Any

import orjson

_ACTORS = (
    ("system:kube-controller-manager", ["system:authenticated"], "kube-controller-manager/v1.31.2"),
    ("system:kube-scheduler", ["system:authenticated"], "kube-scheduler/v1.31.2"),
    ("system:node:worker-{n}", ["system:nodes", "system:authenticated"], "kubelet/v1.31.2"),
    ("system:serviceaccount:kube-system:endpointslice-controller", ["system:serviceaccounts"],
     "kube-controller-manager/v1.31.2"),
    ("alice@example.com", ["developers", "system:authenticated"], "kubectl/v1.31.0"),
    ("system:serviceaccount:ci:deployer", ["system:serviceaccounts"], "argocd/v2.12"),
)  # fmt: skip
_REQUESTS = (
    ("update", "leases", "coordination.k8s.io", "kube-node-lease"),
    ("get", "leases", "coordination.k8s.io", "kube-system"),
    ("watch", "pods", "", "default"),
    ("list", "endpointslices", "discovery.k8s.io", "default"),
    ("patch", "pods/status", "", "shop"),
    ("get", "configmaps", "", "shop"),
    ("create", "events", "", "shop"),
    ("update", "deployments", "apps", "shop"),
    ("get", "secrets", "", "payments"),
)


def audit_event(rng: random.Random, second: int, *, large: bool = False) -> dict[str, Any]:
    """One audit event (~1.1 KB); ``large`` adds what a v1.30+ API server also writes (~1.4 KB)."""
    user, groups, agent = rng.choice(_ACTORS)
    user = user.format(n=rng.randrange(1, 40))
    verb, resource, group, namespace = rng.choice(_REQUESTS)
    resource, _, sub = resource.partition("/")
    name = f"{resource[:-1]}-{rng.randrange(10_000):04d}"
    stamp = f"2026-11-01T{(second // 3600) % 24:02d}:{(second // 60) % 60:02d}:{second % 60:02d}"
    ref: dict[str, Any] = {"resource": resource, "namespace": namespace, "name": name}
    if group:
        ref["apiGroup"] = group
    ref["apiVersion"] = "v1"
    if sub:
        ref["subresource"] = sub
    code = 200 if rng.random() > 0.03 else 403
    event = {
        "kind": "Event",
        "apiVersion": "audit.k8s.io/v1",
        "level": "Metadata",
        "auditID": str(uuid.UUID(int=rng.getrandbits(128))),
        "stage": "ResponseComplete",
        "requestURI": f"/apis/{group or 'core'}/v1/namespaces/{namespace}/{resource}/{name}",
        "verb": verb,
        "user": {"username": user, "uid": str(uuid.UUID(int=rng.getrandbits(128))),
                 "groups": groups},
        "sourceIPs": [f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"],
        "userAgent": f"{agent} (linux/amd64) kubernetes/{rng.getrandbits(28):07x}",
        "objectRef": ref,
        "responseStatus": {"metadata": {}, "code": code},
        "requestReceivedTimestamp": f"{stamp}.{rng.randrange(10**6):06d}Z",
        "stageTimestamp": f"{stamp}.{rng.randrange(10**6):06d}Z",
        "annotations": {
            "authorization.k8s.io/decision": "allow" if code == 200 else "forbid",
            "authorization.k8s.io/reason": f'RBAC: allowed by ClusterRoleBinding "{verb}-x"',
            "pod-security.kubernetes.io/enforce-policy": "restricted:latest",
            "mutation.webhook.admission.k8s.io/round_0_index_0":
                '{"configuration":"policy-agent","webhook":"mutate.policy.example.com","mutated":false}',
        },
    }  # fmt: skip
    if large:  # drawn after the base event, so the default events stay as they were
        _enlarge(rng, event, verb)
    return event


def _latency(rng: random.Random, most_ms: float) -> str:
    return f"{rng.uniform(0.05, most_ms):.6f}ms"


def _enlarge(rng: random.Random, event: dict[str, Any], verb: str) -> None:
    """API-server latency annotations, credential extras and, for writes, a request body."""
    event["annotations"].update(
        {
            "apiserver.latency.k8s.io/etcd": _latency(rng, 8),
            "apiserver.latency.k8s.io/serialize-response-object": _latency(rng, 1),
            "apiserver.latency.k8s.io/total": _latency(rng, 20),
        }
    )
    user = event["user"]
    if user["username"].startswith("system:serviceaccount:"):
        node = f"worker-{rng.randrange(1, 40)}"
        token = uuid.UUID(int=rng.getrandbits(128))
        pod = f"{user['username'].rsplit(':', 1)[1]}-7d9c5b6f4-x2kqp"
        user["extra"] = {
            "authentication.kubernetes.io/credential-id": [f"JTI={token}"],
            "authentication.kubernetes.io/node-name": [node],
            "authentication.kubernetes.io/pod-name": [pod],
        }
    if verb in ("update", "patch", "create"):
        ref = event["objectRef"]
        event["level"] = "Request"
        event["requestObject"] = {
            "kind": ref["resource"].capitalize()[:-1] or "Object",
            "apiVersion": f"{ref.get('apiGroup', 'core')}/v1",
            "metadata": {"name": ref["name"], "namespace": ref["namespace"],
                         "resourceVersion": str(rng.randrange(10**8))},
            "spec": {"holderIdentity": f"worker-{rng.randrange(1, 40)}",
                     "leaseDurationSeconds": 40},
        }  # fmt: skip


def audit_lines(count: int, seed: int = 7, *, large: bool = False) -> list[bytes]:
    """``count`` audit events as JSON lines, about 1.1 KB each (1.4 KB when ``large``)."""
    rng = random.Random(seed)
    return [orjson.dumps(audit_event(rng, n // 50, large=large)) for n in range(count)]


def ndjson_bodies(lines: list[bytes], batch: int) -> list[bytes]:
    """Request bodies of ``batch`` events each, one JSON event a line."""
    return [b"\n".join(lines[i : i + batch]) for i in range(0, len(lines), batch)]


def event_list_bodies(lines: list[bytes], batch: int) -> list[bytes]:
    """Request bodies as the API server's audit webhook sends them: an ``EventList``."""
    head = b'{"kind":"EventList","apiVersion":"audit.k8s.io/v1","metadata":{},"items":['
    return [head + b",".join(lines[i : i + batch]) + b"]}" for i in range(0, len(lines), batch)]
