"""Benign look-alikes: legitimate activity that resembles an attack, labelled benign.

An alert on one of these is a false positive; the evaluation counts them to measure precision.
"""

from __future__ import annotations

from keelwatch.simulate import manifests
from keelwatch.simulate.audit_traffic import CONTROLLER_AGENT
from keelwatch.simulate.cluster import KUBECTL_AGENT, Identity, Workload, service_account
from keelwatch.simulate.records import falco_process_fields, rbac_reason
from keelwatch.simulate.scenarios import Stage, scenario
from keelwatch.simulate.scenarios.runtime import SHELL_TAGS

CI_IP = "10.30.4.17"


@scenario(
    "ci-deployer-rollout",
    "CI service account creates a deployment and its service",
    ("T1610",),
    ("audit",),
    benign=True,
)
def ci_rollout(stage: Stage) -> None:
    """The pipeline's deployer creates a new Deployment from the internal registry."""
    identity = stage.cluster.ci_deployer
    app = stage.app("http")
    name = f"{app.name}-canary"
    spec = manifests.pod_spec(
        [manifests.container(name, app.image, port=app.port)], service_account=app.service_account
    )
    body = manifests.workload("Deployment", name, app.namespace, spec, replicas=1)
    reason = rbac_reason("ci-deployer", "edit", 'ServiceAccount "deployer/ci"', cluster=False)
    stage.audit(
        0,
        verb="create",
        user=identity,
        source_ip=CI_IP,
        user_agent=KUBECTL_AGENT,
        resource="deployments",
        namespace=app.namespace,
        group="apps",
        code=201,
        request_object=body,
        reason=reason,
    )
    service = {
        "kind": "Service",
        "apiVersion": "v1",
        "metadata": {"name": name, "namespace": app.namespace},
        "spec": {"selector": {"app": name}, "ports": [{"port": 80, "targetPort": app.port}]},
    }
    stage.audit(
        2,
        verb="create",
        user=identity,
        source_ip=CI_IP,
        user_agent=KUBECTL_AGENT,
        resource="services",
        namespace=app.namespace,
        code=201,
        request_object=service,
        reason=reason,
    )


@scenario(
    "backup-reads-secrets",
    "Backup and certificate controllers read secrets everywhere",
    ("T1552.007",),
    ("audit",),
    benign=True,
)
def backup_secrets(stage: Stage) -> None:
    """Velero's scheduled backup lists secrets in every namespace; cert-manager renews one."""
    velero = service_account("velero", "velero", stage.ids)
    pod = stage.cluster.workload("velero", "velero").pods[0]
    reason = rbac_reason("velero", "cluster-admin", 'ServiceAccount "velero/velero"')
    for step, namespace in enumerate([*stage.cluster.namespaces, "kube-system", "monitoring"]):
        stage.audit(
            step * 0.8,
            verb="list",
            user=velero,
            source_ip=pod.ip,
            user_agent="velero/v1.13.2 (linux/amd64) 2d8c1ac",
            resource="secrets",
            namespace=namespace,
            query="limit=500",
            reason=reason,
        )
    manager = service_account("cert-manager", "cert-manager", stage.ids)
    app = stage.app()
    stage.audit(
        30,
        verb="update",
        user=manager,
        source_ip=stage.cluster.workload("cert-manager", "cert-manager").pods[0].ip,
        user_agent="cert-manager-certificates-issuing/v1.14.5 (linux/amd64) cert-manager/7ba0ccd",
        resource="secrets",
        namespace=app.namespace,
        name=f"{app.name}-tls",
        reason=rbac_reason(
            "cert-manager-controller-certificates",
            "cert-manager-controller-certificates",
            'ServiceAccount "cert-manager/cert-manager"',
        ),
    )


@scenario(
    "log-collector-hostpath",
    "Log collector DaemonSet mounting /var/log from the host",
    ("T1611",),
    ("audit",),
    benign=True,
)
def log_collector(stage: Stage) -> None:
    """A Helm upgrade by the deployer updates Fluent Bit, which reads host paths read-only."""
    volumes = [
        ("varlog", "/var/log", "/var/log"),
        ("containers", "/var/lib/containerd", "/var/lib/containerd"),
    ]
    container = manifests.container(
        "fluent-bit",
        "cr.fluentbit.io/fluent/fluent-bit:3.0.5",
        mounts=volumes,
        read_only_mounts=True,
        port=2020,
    )
    spec = manifests.pod_spec([container], service_account="fluent-bit", volumes=volumes)
    body = manifests.workload("DaemonSet", "fluent-bit", "monitoring", spec)
    stage.audit(
        0,
        verb="update",
        user=stage.cluster.ci_deployer,
        source_ip=CI_IP,
        user_agent="Helm/3.15.1",
        resource="daemonsets",
        namespace="monitoring",
        name="fluent-bit",
        group="apps",
        request_object=body,
        reason=rbac_reason("ci-platform", "cluster-admin", 'ServiceAccount "deployer/ci"'),
    )


@scenario(
    "admin-incident-exec",
    "On-call admin execs into a pod during an incident",
    ("T1609", "T1059.004"),
    ("audit", "runtime"),
    benign=True,
)
def incident_exec(stage: Stage) -> None:
    """An admin opens a shell in a misbehaving pod and checks a dependency; change ticket filed."""
    human = stage.admin()
    pod = stage.pod("http", "worker")
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
        query=f"command=sh&container={pod.container}&stdin=true&stdout=true&tty=true",
        reason=rbac_reason("platform-admins", "cluster-admin", 'Group "platform-admins"'),
    )
    fields = falco_process_fields(
        pod, command="sh", exe="/bin/sh", parent="runc", pid=stage.rng.randrange(100, 9000)
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
    stage.exec(1, pod, binary="/bin/sh", arguments="", parent_binary="/usr/bin/runc")
    workload = stage.cluster.workload(pod.namespace, pod.workload)
    peer = workload.talks_to[0].name if workload.talks_to else workload.name
    stage.exec(
        14,
        pod,
        binary="/usr/bin/nslookup",
        arguments=f"{peer}.{pod.namespace}.svc.cluster.local",
        parent_binary="/bin/sh",
    )


@scenario(
    "hpa-scale-out",
    "Autoscaler scales a deployment; controllers create and bind pods",
    ("T1610",),
    ("audit",),
    benign=True,
)
def scale_out(stage: Stage) -> None:
    """Load rises: the HPA raises replicas, the ReplicaSet controller creates pods, the
    scheduler binds them."""
    app = stage.app("http")
    hpa = service_account("kube-system", "horizontal-pod-autoscaler", stage.ids)
    controller = service_account("kube-system", "replicaset-controller", stage.ids)
    agent = CONTROLLER_AGENT
    stage.audit(
        0,
        verb="update",
        user=hpa,
        source_ip="10.0.0.10",
        user_agent=agent.format("horizontal-pod-autoscaler"),
        resource="deployments",
        namespace=app.namespace,
        name=app.name,
        subresource="scale",
        group="apps",
        request_object={"kind": "Scale", "apiVersion": "autoscaling/v1", "spec": {"replicas": 6}},
    )
    scheduler = Identity("system:kube-scheduler", ("system:authenticated",))
    for number in range(2):
        pod = stage.new_pod(
            Workload(
                app.name,
                app.namespace,
                "Deployment",
                app.role,
                app.image,
                app.port,
                app.service_account,
            )
        )
        spec = manifests.pod_spec(
            [manifests.container(app.name, app.image, port=app.port)],
            service_account=app.service_account,
        )
        body = manifests.pod(pod.name, app.namespace, spec, dict(pod.labels))
        stage.audit(
            1 + number,
            verb="create",
            user=controller,
            source_ip="10.0.0.10",
            user_agent=agent.format("replicaset-controller"),
            resource="pods",
            namespace=app.namespace,
            code=201,
            request_object=body,
        )
        stage.audit(
            1.5 + number,
            verb="create",
            user=scheduler,
            source_ip="10.0.0.10",
            user_agent="kube-scheduler/v1.29.4 (linux/amd64) kubernetes/55019c8/scheduler",
            resource="pods",
            namespace=app.namespace,
            name=pod.name,
            subresource="binding",
            code=201,
            request_object={
                "kind": "Binding",
                "apiVersion": "v1",
                "target": {"kind": "Node", "name": pod.node.name},
            },
        )
