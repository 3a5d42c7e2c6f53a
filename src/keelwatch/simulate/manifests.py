"""Kubernetes objects as clients send them in request bodies (``requestObject`` of audit events)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

Volume = tuple[str, str, str]  # (name, host path, mount path)


def present(**fields: Any) -> dict[str, Any]:
    """The fields that have a value, in order: Kubernetes leaves out the empty ones."""
    return {key: value for key, value in fields.items() if value}


def container(
    name: str,
    image: str,
    *,
    command: list[str] | None = None,
    privileged: bool = False,
    capabilities: list[str] | None = None,
    mounts: Sequence[Volume] = (),
    read_only_mounts: bool = False,
    port: int | None = None,
    hardened: bool = True,
) -> dict[str, Any]:
    spec: dict[str, Any] = {"name": name, "image": image}
    if command:
        spec["command"] = command
    if port:
        spec["ports"] = [{"containerPort": port, "protocol": "TCP"}]
    spec["resources"] = {"limits": {"cpu": "500m", "memory": "512Mi"}}
    if mounts:
        spec["volumeMounts"] = [
            {"name": vol, "mountPath": path, **({"readOnly": True} if read_only_mounts else {})}
            for vol, _, path in mounts
        ]
    security: dict[str, Any] = {}
    if privileged:
        security["privileged"] = True
    if capabilities:
        security["capabilities"] = {"add": capabilities}
    if hardened and not privileged:
        security.update(
            {
                "allowPrivilegeEscalation": False,
                "runAsNonRoot": True,
                "capabilities": {
                    "drop": ["ALL"],
                    **({"add": capabilities} if capabilities else {}),
                },
            }
        )
    if security:
        spec["securityContext"] = security
    spec["imagePullPolicy"] = "IfNotPresent"
    spec["terminationMessagePath"] = "/dev/termination-log"
    return spec


def pod_spec(
    containers: list[dict[str, Any]],
    *,
    service_account: str = "default",
    host_pid: bool = False,
    host_network: bool = False,
    host_ipc: bool = False,
    volumes: Sequence[Volume] = (),
    node_name: str | None = None,
    restart: str = "Always",
) -> dict[str, Any]:
    spec: dict[str, Any] = {"containers": containers, "restartPolicy": restart}
    if volumes:
        spec["volumes"] = [
            {"name": name, "hostPath": {"path": host, "type": ""}} for name, host, _ in volumes
        ]
    spec["serviceAccountName"] = service_account
    spec.update(
        present(nodeName=node_name, hostPID=host_pid, hostNetwork=host_network, hostIPC=host_ipc)
    )
    spec["dnsPolicy"] = "ClusterFirst"
    spec["terminationGracePeriodSeconds"] = 30
    return spec


def metadata(
    name: str | None, namespace: str | None, labels: dict[str, str] | None = None
) -> dict[str, Any]:
    return present(name=name, namespace=namespace, labels=labels)


def pod(
    name: str | None,
    namespace: str,
    spec: dict[str, Any],
    labels: dict[str, str] | None = None,
    generate_name: str | None = None,
) -> dict[str, Any]:
    meta = metadata(name, namespace, labels)
    if generate_name:
        meta["generateName"] = generate_name
    return {"kind": "Pod", "apiVersion": "v1", "metadata": meta, "spec": spec}


def workload(
    kind: str, name: str, namespace: str, spec: dict[str, Any], replicas: int | None = None
) -> dict[str, Any]:
    labels = {"app": name}
    body: dict[str, Any] = {"selector": {"matchLabels": labels}}
    if replicas is not None:
        body["replicas"] = replicas
    body["template"] = {"metadata": {"labels": labels}, "spec": spec}
    return {
        "kind": kind,
        "apiVersion": "apps/v1",
        "metadata": metadata(name, namespace, labels),
        "spec": body,
    }


def scale(replicas: int) -> dict[str, Any]:
    """The Scale subresource an autoscaler writes."""
    return {"kind": "Scale", "apiVersion": "autoscaling/v1", "spec": {"replicas": replicas}}


def cronjob(name: str, namespace: str, schedule: str, spec: dict[str, Any]) -> dict[str, Any]:
    template = {"spec": {"template": {"spec": spec}, "backoffLimit": 0}}
    return {
        "kind": "CronJob",
        "apiVersion": "batch/v1",
        "metadata": metadata(name, namespace),
        "spec": {"schedule": schedule, "jobTemplate": template, "successfulJobsHistoryLimit": 1},
    }


def binding(
    kind: str, name: str, role: str, subjects: list[dict[str, str]], namespace: str | None = None
) -> dict[str, Any]:
    role_kind = (
        "ClusterRole"
        if kind == "ClusterRoleBinding" or role in ("cluster-admin", "edit", "view", "admin")
        else "Role"
    )
    return {
        "kind": kind,
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "metadata": metadata(name, namespace),
        "subjects": subjects,
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": role_kind, "name": role},
    }


def subject(kind: str, name: str, namespace: str | None = None) -> dict[str, str]:
    entry = {"kind": kind, "name": name}
    if kind in ("User", "Group"):
        entry["apiGroup"] = "rbac.authorization.k8s.io"
    if namespace:
        entry["namespace"] = namespace
    return entry


def role(
    kind: str, name: str, rules: list[dict[str, list[str]]], namespace: str | None = None
) -> dict[str, Any]:
    return {
        "kind": kind,
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "metadata": metadata(name, namespace),
        "rules": rules,
    }


def mutating_webhook(name: str, url: str) -> dict[str, Any]:
    hook = {
        "name": f"{name}.example.net",
        "clientConfig": {"url": url},
        "rules": [
            {
                "operations": ["CREATE", "UPDATE"],
                "apiGroups": [""],
                "apiVersions": ["v1"],
                "resources": ["pods", "secrets"],
                "scope": "*",
            }
        ],
        "failurePolicy": "Ignore",
        "sideEffects": "None",
        "admissionReviewVersions": ["v1"],
    }
    return {
        "kind": "MutatingWebhookConfiguration",
        "apiVersion": "admissionregistration.k8s.io/v1",
        "metadata": {"name": name},
        "webhooks": [hook],
    }


def csr(
    name: str, request_pem_b64: str, signer: str = "kubernetes.io/kube-apiserver-client"
) -> dict[str, Any]:
    return {
        "kind": "CertificateSigningRequest",
        "apiVersion": "certificates.k8s.io/v1",
        "metadata": {"name": name},
        "spec": {
            "request": request_pem_b64,
            "signerName": signer,
            "expirationSeconds": 31536000,
            "usages": ["client auth"],
        },
    }


def csr_approval(name: str, request_pem_b64: str, groups: list[str]) -> dict[str, Any]:
    body = csr(name, request_pem_b64)
    body["spec"]["groups"] = groups
    body["status"] = {
        "conditions": [
            {
                "type": "Approved",
                "status": "True",
                "reason": "KubectlApprove",
                "message": "This CSR was approved by kubectl certificate approve.",
            }
        ]
    }
    return body
