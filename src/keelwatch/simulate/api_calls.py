"""The two halves of an API request's audit fields: who calls, and a few common requests.

A caller is the ``user``, ``source_ip``, ``user_agent`` and authorization ``reason`` of
``records.audit_event``; a request is the verb, the object and the response code. Background
traffic and scenarios combine the two: ``audit(when, **kubectl(human), **exec_into(pod, "sh"))``.
"""

from __future__ import annotations

from typing import Any

from keelwatch.simulate.cluster import (
    KUBECTL_AGENT,
    KUBELET_AGENT,
    Human,
    Identity,
    Node,
    Pod,
    Workload,
)
from keelwatch.simulate.records import rbac_reason

Fields = dict[str, Any]

CONTROL_PLANE_IP = "10.0.0.10"
CI_IP = "10.30.4.17"
NODE_GROUPS = ("system:nodes", "system:authenticated")
CERT_MANAGER_AGENT = "cert-manager-certificates-issuing/v1.14.5 (linux/amd64) cert-manager/7ba0ccd"
CONTROLLER_AGENT = (
    "kube-controller-manager/v1.29.4 (linux/amd64) kubernetes/55019c8/"
    "system:serviceaccount:kube-system:{}"
)
ADMIN_REASON = rbac_reason("platform-admins", "cluster-admin", 'Group "platform-admins"')
DEVELOPER_REASON = rbac_reason("developers-edit", "edit", 'Group "developers"', cluster=False)
CI_REASON = rbac_reason("ci-deployer", "edit", 'ServiceAccount "deployer/ci"', cluster=False)
CERT_MANAGER_REASON = rbac_reason(
    "cert-manager-controller-certificates",
    "cert-manager-controller-certificates",
    'ServiceAccount "cert-manager/cert-manager"',
)

# -- callers -----------------------------------------------------------------------------------


def caller(user: Identity, source_ip: str, user_agent: str, reason: str = "") -> Fields:
    return {"user": user, "source_ip": source_ip, "user_agent": user_agent, "reason": reason}


def kubectl(human: Human, reason: str = "") -> Fields:
    """A person with kubectl from their workstation."""
    return caller(human.identity, human.source_ip, KUBECTL_AGENT, reason)


def kubelet(node: Node) -> Fields:
    """A node's kubelet with its node credential (authorized by the Node authorizer)."""
    return caller(Identity(f"system:node:{node.name}", NODE_GROUPS), node.ip, KUBELET_AGENT)


def controller(identity: Identity, *, rbac: bool = False) -> Fields:
    """A kube-controller-manager loop with its own service account in kube-system.

    ``rbac``: name the stock ``system:controller:<name>`` binding as the authorization reason.
    """
    name = identity.username.rpartition(":")[2]
    reason = ""
    if rbac:
        role = f"system:controller:{name}"
        reason = rbac_reason(role, role, f'ServiceAccount "{name}/kube-system"')
    return caller(identity, CONTROL_PLANE_IP, CONTROLLER_AGENT.format(name), reason)


def ci_deployer(identity: Identity) -> Fields:
    """The CI pipeline's deployer applying manifests with kubectl."""
    return caller(identity, CI_IP, KUBECTL_AGENT, CI_REASON)


def cert_manager(identity: Identity, source_ip: str) -> Fields:
    """cert-manager renewing the certificates it keeps in secrets."""
    return caller(identity, source_ip, CERT_MANAGER_AGENT, CERT_MANAGER_REASON)


# -- requests ----------------------------------------------------------------------------------


def pod_ref(pod: Pod, subresource: str | None = None) -> Fields:
    return {
        "resource": "pods",
        "namespace": pod.namespace,
        "name": pod.name,
        "subresource": subresource,
    }


def deployment_ref(workload: Workload, subresource: str | None = None) -> Fields:
    return {
        "resource": "deployments",
        "group": "apps",
        "namespace": workload.namespace,
        "name": workload.name,
        "subresource": subresource,
    }


def kubectl_list(resource: str, namespace: str | None = None) -> Fields:
    """``kubectl get <resource>``: a list in chunks of 500."""
    return {"verb": "list", "resource": resource, "namespace": namespace, "query": "limit=500"}


def created(resource: str, body: dict[str, Any]) -> Fields:
    """A create the API server accepted, its path taken from the object's apiVersion and
    metadata; the response echoes the object (the Policy decides whether it is kept)."""
    group, _, version = body["apiVersion"].rpartition("/")
    return {
        "verb": "create",
        "resource": resource,
        "namespace": body["metadata"].get("namespace"),
        "group": group,
        "version": version,
        "code": 201,
        "request_object": body,
        "response_object": body,
    }


def exec_into(pod: Pod, command: str, container: str | None = None) -> Fields:
    """``kubectl exec -it`` into ``pod``: the upgraded (101) exec request with a TTY."""
    return {
        "verb": "create",
        **pod_ref(pod, "exec"),
        "code": 101,
        "query": (
            f"command={command}&container={container or pod.container}"
            "&stdin=true&stdout=true&tty=true"
        ),
    }
