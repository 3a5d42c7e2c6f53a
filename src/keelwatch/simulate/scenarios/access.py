"""Attacks on access paths: tunnels, the kubelet, certificates, impersonation, evasion."""

from __future__ import annotations

import base64

from keelwatch.simulate import manifests
from keelwatch.simulate.api_calls import (
    ADMIN_REASON,
    DEVELOPER_REASON,
    caller,
    created,
    kubectl,
    kubectl_list,
    pod_ref,
)
from keelwatch.simulate.cluster import Identity, service_account
from keelwatch.simulate.records import rbac_reason
from keelwatch.simulate.scenarios import Stage, scenario
from keelwatch.simulate.scenarios.api import ATTACKER_AGENT


def _csr_pem(common_name: str, organisation: str) -> str:
    """A placeholder PKCS#10 body naming the subject (base64 PEM, as kubectl sends it)."""
    body = f"CN={common_name},O={organisation}".encode()
    pem = (
        b"-----BEGIN CERTIFICATE REQUEST-----\n"
        + base64.b64encode(body)
        + b"\n-----END CERTIFICATE REQUEST-----\n"
    )
    return base64.b64encode(pem).decode()


@scenario("port-forward", "Port-forward to a database pod", ("T1572",), ("audit",))
def port_forward(stage: Stage) -> None:
    """A developer tunnels to the database pod from a laptop."""
    human = stage.developer()
    pod = stage.pod("db", "cache")
    stage.audit(
        0,
        verb="create",
        **pod_ref(pod, "portforward"),
        code=101,
        **kubectl(human, DEVELOPER_REASON),
    )


@scenario("nodes-proxy", "Kubelet API reached through nodes/proxy", ("T1609", "T1613"), ("audit",))
def nodes_proxy(stage: Stage) -> None:
    """A monitoring token is used to list the kubelet's pods and run a command via nodes/proxy."""
    identity = service_account("monitoring", "prometheus", stage.ids)
    node = stage.node()
    pod = stage.pod()
    ip = stage.public_ip()
    reason = rbac_reason("prometheus", "prometheus", 'ServiceAccount "prometheus/monitoring"')
    proxy = dict(
        caller(identity, ip, "curl/8.5.0", reason),
        resource="nodes",
        name=node.name,
        subresource="proxy",
    )
    stage.audit(0, verb="get", uri=f"/api/v1/nodes/{node.name}/proxy/pods", **proxy)
    run = f"run/{pod.namespace}/{pod.name}/{pod.container}?cmd=id"
    stage.audit(9, verb="create", uri=f"/api/v1/nodes/{node.name}/proxy/{run}", **proxy)


@scenario(
    "csr-system-masters",
    "Client certificate for system:masters requested and approved",
    ("T1649", "T1098"),
    ("audit",),
)
def csr_masters(stage: Stage) -> None:
    """A CSR with O=system:masters is created and approved, then the new identity is used."""
    human = stage.admin()
    name = f"csr-{stage.ids.suffix(5)}"
    pem = _csr_pem("break-glass", "system:masters")
    admin = kubectl(human, ADMIN_REASON)
    stage.audit(0, **created("certificatesigningrequests", manifests.csr(name, pem)), **admin)
    approved = manifests.csr_approval(name, pem, [*human.identity.groups])
    stage.audit(
        20,
        verb="update",
        resource="certificatesigningrequests",
        name=name,
        subresource="approval",
        group="certificates.k8s.io",
        request_object=approved,
        response_object=approved,
        **admin,
    )
    masters = Identity("break-glass", ("system:masters", "system:authenticated"))
    attacker = caller(masters, stage.public_ip(), ATTACKER_AGENT)
    for step, resource in enumerate(("secrets", "nodes")):
        stage.audit(200 + step * 3, **kubectl_list(resource), **attacker)


@scenario(
    "impersonation", "A developer impersonates a cluster administrator", ("T1078",), ("audit",)
)
def impersonation(stage: Stage) -> None:
    """kubectl --as=admin --as-group=system:masters by someone who was granted impersonate."""
    human = stage.developer()
    target = Identity("admin", ("system:masters", "system:authenticated"))
    reason = rbac_reason("impersonators", "impersonator", f'User "{human.identity.username}"')
    for step, (verb, resource, namespace) in enumerate(
        (("list", "secrets", "kube-system"), ("get", "nodes", None))
    ):
        stage.audit(
            step * 6,
            verb=verb,
            **kubectl(human, reason),
            impersonated=target,
            resource=resource,
            namespace=namespace,
            query="limit=500" if verb == "list" else "",
        )


@scenario(
    "defense-evasion-deletions",
    "NetworkPolicy and events deleted to cover tracks",
    ("T1562.001", "T1070"),
    ("audit",),
)
def deletions(stage: Stage) -> None:
    """A network policy isolating the database is deleted, then the namespace's events."""
    human = stage.developer()
    namespace = stage.app("db", "cache").namespace
    common = kubectl(human, DEVELOPER_REASON)
    stage.audit(
        0,
        verb="delete",
        resource="networkpolicies",
        namespace=namespace,
        name="deny-db-ingress",
        group="networking.k8s.io",
        request_object={"kind": "DeleteOptions", "apiVersion": "v1"},
        **common,
    )
    stage.audit(45, verb="deletecollection", resource="events", namespace=namespace, **common)


@scenario(
    "kube-system-workload",
    "Workload created in kube-system by a human",
    ("T1610", "T1036.005"),
    ("audit",),
)
def kube_system_workload(stage: Stage) -> None:
    """A Deployment named like a system component appears in kube-system, created by a person."""
    human = stage.admin()
    spec = manifests.pod_spec(
        [
            manifests.container(
                "kube-proxy-helper",
                "registry.k8s.io/kube-proxy:v1.29.4",
                command=["/bin/sh", "-c", "sleep infinity"],
            )
        ],
        service_account="kube-proxy",
    )
    body = manifests.workload("Deployment", "kube-proxy-helper", "kube-system", spec, replicas=1)
    stage.audit(0, **created("deployments", body), **kubectl(human, ADMIN_REASON))
