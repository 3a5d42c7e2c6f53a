"""Benign look-alikes: legitimate activity that resembles an attack, labelled benign.

An alert on one of these is a false positive; the evaluation counts them to measure precision.
"""

from __future__ import annotations

from keelwatch.simulate import manifests
from keelwatch.simulate.api_calls import (
    ADMIN_REASON,
    CI_IP,
    CONTROL_PLANE_IP,
    caller,
    cert_manager,
    ci_deployer,
    controller,
    created,
    deployment_ref,
    exec_into,
    kubectl,
    kubectl_list,
    pod_ref,
)
from keelwatch.simulate.cluster import Identity, Workload, service_account
from keelwatch.simulate.records import rbac_reason
from keelwatch.simulate.scenarios import Stage, scenario
from keelwatch.simulate.scenarios.steps import terminal_shell


@scenario(
    "ci-deployer-rollout",
    "CI service account creates a deployment and its service",
    ("T1610",),
    ("audit",),
    benign=True,
)
def ci_rollout(stage: Stage) -> None:
    """The pipeline's deployer creates a new Deployment from the internal registry."""
    app = stage.app("http")
    name = f"{app.name}-canary"
    spec = manifests.pod_spec(
        [manifests.container(name, app.image, port=app.port)], service_account=app.service_account
    )
    body = manifests.workload("Deployment", name, app.namespace, spec, replicas=1)
    deployer = ci_deployer(stage.cluster.ci_deployer)
    stage.audit(0, **created("deployments", body), **deployer)
    service = {
        "kind": "Service",
        "apiVersion": "v1",
        "metadata": {"name": name, "namespace": app.namespace},
        "spec": {"selector": {"app": name}, "ports": [{"port": 80, "targetPort": app.port}]},
    }
    stage.audit(2, **created("services", service), **deployer)


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
    backup = caller(
        velero,
        pod.ip,
        "velero/v1.13.2 (linux/amd64) 2d8c1ac",
        rbac_reason("velero", "cluster-admin", 'ServiceAccount "velero/velero"'),
    )
    for step, namespace in enumerate([*stage.cluster.namespaces, "kube-system", "monitoring"]):
        stage.audit(step * 0.8, **kubectl_list("secrets", namespace), **backup)
    manager = service_account("cert-manager", "cert-manager", stage.ids)
    app = stage.app()
    stage.audit(
        30,
        verb="update",
        **cert_manager(manager, stage.cluster.workload("cert-manager", "cert-manager").pods[0].ip),
        resource="secrets",
        namespace=app.namespace,
        name=f"{app.name}-tls",
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
    stage.audit(0, **exec_into(pod, "sh"), **kubectl(human, ADMIN_REASON))
    terminal_shell(stage, 1, pod, "/bin/sh")
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
    hpa = controller(service_account("kube-system", "horizontal-pod-autoscaler", stage.ids))
    replica_sets = controller(service_account("kube-system", "replicaset-controller", stage.ids))
    stage.audit(
        0,
        verb="update",
        **hpa,
        **deployment_ref(app, "scale"),
        request_object=manifests.scale(6),
    )
    scheduler = caller(
        Identity("system:kube-scheduler", ("system:authenticated",)),
        CONTROL_PLANE_IP,
        "kube-scheduler/v1.29.4 (linux/amd64) kubernetes/55019c8/scheduler",
    )
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
        stage.audit(1 + number, **created("pods", body), **replica_sets)
        stage.audit(
            1.5 + number,
            verb="create",
            **scheduler,
            **pod_ref(pod, "binding"),
            code=201,
            request_object={
                "kind": "Binding",
                "apiVersion": "v1",
                "target": {"kind": "Node", "name": pod.node.name},
            },
        )
