"""The simulated cluster: nodes, namespaces, workloads and their pods, people and robots.

Everything is drawn from one seeded ``random.Random``; nothing reads the clock or the
environment, so the same options always build the same cluster.
"""

from __future__ import annotations

import base64
import random
import uuid
from dataclasses import dataclass, field
from typing import Any

CLUSTER_NAME = "sim-prod"
# Kubernetes' own alphabet for generated name suffixes (no vowels, no look-alike digits).
SUFFIX_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
KUBECTL_AGENT = "kubectl/v1.29.2 (linux/amd64) kubernetes/4b8e819"
KUBELET_AGENT = "kubelet/v1.29.4 (linux/amd64) kubernetes/55019c8"
INTERNAL_REGISTRY = "registry.example.com"
NAMESPACE_POOL = (
    "shop",
    "payments",
    "search",
    "accounts",
    "inventory",
    "web",
    "analytics",
    "notifications",
    "shipping",
    "reviews",
    "media",
    "billing",
)
# (name, role, port, image or "" for the internal registry)
WORKLOAD_POOL = (
    ("frontend", "http", 8080, ""),
    ("checkout", "http", 8080, ""),
    ("cart", "http", 8080, ""),
    ("catalog", "http", 8080, ""),
    ("orders", "http", 8080, ""),
    ("payments-api", "http", 8443, ""),
    ("postgres", "db", 5432, "docker.io/library/postgres:16.3"),
    ("redis", "cache", 6379, "docker.io/library/redis:7.2.5"),
    ("worker", "worker", 9000, ""),
    ("search-api", "http", 8080, ""),
    ("recommendations", "http", 8080, ""),
    ("mailer", "worker", 9000, ""),
)
PEOPLE = ("alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy")
# Known external services the applications call (documentation address ranges, RFC 5737).
EXTERNALS = (
    ("api.payment-gateway.example", "198.51.100.20", 443),
    ("smtp.mail.example", "198.51.100.41", 587),
    ("objects.storage.example", "198.51.100.77", 443),
    ("telemetry.vendor.example", "198.51.100.90", 443),
)


class Ids:
    """Deterministic identifiers drawn from one random stream."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def uuid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def hex(self, digits: int) -> str:
        return f"{self.rng.getrandbits(4 * digits):0{digits}x}"

    def suffix(self, length: int) -> str:
        return "".join(self.rng.choice(SUFFIX_ALPHABET) for _ in range(length))

    def ephemeral_port(self) -> int:
        return self.rng.randrange(32768, 60999)

    def exec_id(self, node: str, pid: int) -> str:
        """Tetragon's process id: base64 of ``node:ktime:pid``."""
        ktime = self.rng.randrange(10**13, 10**14)
        return base64.b64encode(f"{node}:{ktime}:{pid}".encode()).decode()


@dataclass(frozen=True, slots=True)
class Node:
    name: str
    ip: str
    pod_prefix: str  # the node's pod CIDR as "10.244.N."
    control_plane: bool = False


@dataclass(frozen=True, slots=True)
class Identity:
    """An authenticated API caller as the audit log records it."""

    username: str
    groups: tuple[str, ...]
    uid: str = ""
    extra: tuple[tuple[str, tuple[str, ...]], ...] = ()

    def as_audit(self) -> dict[str, Any]:
        user: dict[str, Any] = {"username": self.username}
        if self.uid:
            user["uid"] = self.uid
        user["groups"] = list(self.groups)
        if self.extra:
            user["extra"] = {key: list(values) for key, values in self.extra}
        return user


@dataclass(frozen=True, slots=True)
class Human:
    identity: Identity
    source_ip: str
    admin: bool


@dataclass(slots=True)
class Pod:
    name: str
    namespace: str
    uid: str
    ip: str
    node: Node
    container_id: str  # 64 hex digits
    container: str
    image: str
    labels: dict[str, str]
    service_account: str
    workload: str
    workload_kind: str
    port: int
    role: str

    def sa_identity(self, ids: Ids) -> Identity:
        """The pod's bound service-account token, as the API server authenticates it."""
        return service_account(
            self.namespace,
            self.service_account,
            ids,
            pod=(self.name, self.uid, self.node.name),
        )


@dataclass(slots=True)
class Workload:
    name: str
    namespace: str
    kind: str
    role: str
    image: str
    port: int
    service_account: str
    pods: list[Pod] = field(default_factory=list)
    talks_to: list[Workload] = field(default_factory=list)
    externals: list[tuple[str, str, int]] = field(default_factory=list)


@dataclass(slots=True)
class Cluster:
    name: str
    nodes: list[Node]
    namespaces: list[str]  # the application namespaces
    workloads: list[Workload]  # applications and platform components
    humans: list[Human]
    ci_deployer: Identity
    api_server_ip: str = "10.96.0.1"

    @property
    def workers(self) -> list[Node]:
        return [node for node in self.nodes if not node.control_plane] or self.nodes

    @property
    def pods(self) -> list[Pod]:
        return [pod for workload in self.workloads for pod in workload.pods]

    def apps(self) -> list[Workload]:
        return [w for w in self.workloads if w.namespace in self.namespaces]

    def workload(self, namespace: str, name: str) -> Workload:
        for candidate in self.workloads:
            if candidate.namespace == namespace and candidate.name == name:
                return candidate
        raise KeyError(f"{namespace}/{name}")

    def admins(self) -> list[Human]:
        return [human for human in self.humans if human.admin] or self.humans

    def developers(self) -> list[Human]:
        return [human for human in self.humans if not human.admin] or self.humans


def service_account(
    namespace: str, name: str, ids: Ids, pod: tuple[str, str, str] | None = None
) -> Identity:
    groups = (
        "system:serviceaccounts",
        f"system:serviceaccounts:{namespace}",
        "system:authenticated",
    )
    extra: tuple[tuple[str, tuple[str, ...]], ...] = ()
    if pod is not None:
        pod_name, pod_uid, node = pod
        extra = (
            ("authentication.kubernetes.io/credential-id", (f"JTI={ids.uuid()}",)),
            ("authentication.kubernetes.io/node-name", (node,)),
            ("authentication.kubernetes.io/pod-name", (pod_name,)),
            ("authentication.kubernetes.io/pod-uid", (pod_uid,)),
        )
    return Identity(
        f"system:serviceaccount:{namespace}:{name}", groups, uid=ids.uuid(), extra=extra
    )


def new_pod(
    ids: Ids,
    workload: Workload,
    node: Node,
    *,
    name: str | None = None,
    template_hash: str | None = None,
) -> Pod:
    """A pod of ``workload`` on ``node`` with names shaped as its controller would make them."""
    labels = {"app": workload.name, "app.kubernetes.io/part-of": workload.namespace}
    if name is None:
        if workload.kind == "Deployment":
            template_hash = template_hash or ids.suffix(10)
            labels["pod-template-hash"] = template_hash
            name = f"{workload.name}-{template_hash}-{ids.suffix(5)}"
        elif workload.kind == "StatefulSet":
            name = f"{workload.name}-{len(workload.pods)}"
        else:
            name = f"{workload.name}-{ids.suffix(5)}"
    return Pod(
        name=name,
        namespace=workload.namespace,
        uid=ids.uuid(),
        ip=f"{node.pod_prefix}{ids.rng.randrange(2, 250)}",
        node=node,
        container_id=ids.hex(64),
        container=workload.name,
        image=workload.image,
        labels=labels,
        service_account=workload.service_account,
        workload=workload.name,
        workload_kind=workload.kind,
        port=workload.port,
        role=workload.role,
    )


# (namespace, name, kind, role, image, port, service account)
PLATFORM = (
    (
        "kube-system",
        "coredns",
        "Deployment",
        "dns",
        "registry.k8s.io/coredns/coredns:v1.11.1",
        53,
        "coredns",
    ),
    (
        "kube-system",
        "cilium",
        "DaemonSet",
        "agent",
        "quay.io/cilium/cilium:v1.15.5",
        4240,
        "cilium",
    ),
    (
        "kube-system",
        "kube-proxy",
        "DaemonSet",
        "agent",
        "registry.k8s.io/kube-proxy:v1.29.4",
        10256,
        "kube-proxy",
    ),
    (
        "kube-system",
        "metrics-server",
        "Deployment",
        "http",
        "registry.k8s.io/metrics-server/metrics-server:v0.7.1",
        10250,
        "metrics-server",
    ),
    (
        "monitoring",
        "prometheus",
        "StatefulSet",
        "http",
        "quay.io/prometheus/prometheus:v2.52.0",
        9090,
        "prometheus",
    ),
    (
        "monitoring",
        "fluent-bit",
        "DaemonSet",
        "agent",
        "cr.fluentbit.io/fluent/fluent-bit:3.0.4",
        2020,
        "fluent-bit",
    ),
    (
        "cert-manager",
        "cert-manager",
        "Deployment",
        "http",
        "quay.io/jetstack/cert-manager-controller:v1.14.5",
        9402,
        "cert-manager",
    ),
    ("velero", "velero", "Deployment", "http", "docker.io/velero/velero:v1.13.2", 8085, "velero"),
)


def build_cluster(seed: int, *, nodes: int, namespaces: int, workloads: int, users: int) -> Cluster:
    rng = random.Random(f"{seed}:cluster")  # noqa: S311 - reproducible, not secret
    ids = Ids(rng)
    node_list = [Node("control-plane-1", "10.0.0.10", "10.244.0.", control_plane=True)]
    for number in range(1, nodes + 1):
        node_list.append(Node(f"worker-{number}", f"10.0.1.{10 + number}", f"10.244.{number}."))
    workers = node_list[1:] or node_list
    app_namespaces = list(NAMESPACE_POOL[: max(1, min(namespaces, len(NAMESPACE_POOL)))])

    all_workloads: list[Workload] = []
    for namespace, name, kind, role, image, port, account in PLATFORM:
        workload = Workload(name, namespace, kind, role, image, port, account)
        hosts = node_list if kind == "DaemonSet" else [rng.choice(workers)]
        if kind != "DaemonSet" and name == "coredns":
            hosts = [rng.choice(workers), rng.choice(workers)]
        template_hash = ids.suffix(10)
        workload.pods = [
            new_pod(ids, workload, host, template_hash=template_hash) for host in hosts
        ]
        all_workloads.append(workload)

    apps: list[Workload] = []
    for index in range(max(1, workloads)):
        namespace = app_namespaces[index % len(app_namespaces)]
        name, role, port, image = WORKLOAD_POOL[(index // len(app_namespaces)) % len(WORKLOAD_POOL)]
        if any(w.name == name and w.namespace == namespace for w in apps):
            name = f"{name}-{index}"
        version = f"{rng.randrange(1, 4)}.{rng.randrange(0, 20)}.{rng.randrange(0, 10)}"
        image = image or f"{INTERNAL_REGISTRY}/{namespace}/{name}:{version}"
        kind = "StatefulSet" if role == "db" else "Deployment"
        workload = Workload(name, namespace, kind, role, image, port, name)
        template_hash = ids.suffix(10)
        replicas = 1 if role == "db" else rng.randrange(1, 4)
        workload.pods = [
            new_pod(ids, workload, rng.choice(workers), template_hash=template_hash)
            for _ in range(replicas)
        ]
        apps.append(workload)
    for workload in apps:  # callers call the services of their own namespace
        peers = [w for w in apps if w.namespace == workload.namespace and w is not workload]
        if workload.role in ("http", "worker") and peers:
            workload.talks_to = rng.sample(peers, min(len(peers), rng.randrange(1, 3)))
        if workload.role in ("http", "worker"):
            workload.externals = rng.sample(list(EXTERNALS), rng.randrange(0, 2))
    all_workloads.extend(apps)

    humans = []
    for number in range(max(1, users)):
        person = PEOPLE[number % len(PEOPLE)] + ("" if number < len(PEOPLE) else str(number))
        admin = number < max(1, users // 4)
        groups = ("platform-admins" if admin else "developers", "system:authenticated")
        identity = Identity(f"{person}@example.com", groups)
        humans.append(Human(identity, f"10.8.0.{20 + number}", admin))
    ci = service_account("ci", "deployer", ids)
    return Cluster(CLUSTER_NAME, node_list, app_namespaces, all_workloads, humans, ci)
