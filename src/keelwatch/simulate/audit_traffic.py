"""Background API traffic: kubelets, controllers, operators, the CI deployer and people.

Levels follow the implied audit Policy (docs/simulator.md): ``None`` for the noisy reads of
system components (never written), ``Metadata`` for secrets, leases, tokens and reads,
``Request`` for workload writes, ``RequestResponse`` for RBAC, exec and port-forward.
"""

from __future__ import annotations

from datetime import datetime

from keelwatch.simulate import manifests
from keelwatch.simulate.api_calls import (
    ADMIN_REASON,
    CONTROL_PLANE_IP,
    caller,
    cert_manager,
    ci_deployer,
    controller,
    deployment_ref,
    kubectl,
    kubectl_list,
    kubelet,
    pod_ref,
)
from keelwatch.simulate.cluster import Identity
from keelwatch.simulate.records import SimRecord, rbac_reason
from keelwatch.simulate.traffic import Traffic


class AuditTraffic(Traffic):
    def kubelet_lease(self, when: datetime) -> SimRecord:
        node = self._pick_node()
        return self._audit(
            when,
            verb="update",
            **kubelet(node),
            resource="leases",
            namespace="kube-node-lease",
            name=node.name,
            group="coordination.k8s.io",
            query="timeout=10s",
        )

    def node_status(self, when: datetime) -> SimRecord:
        node = self._pick_node()
        return self._audit(
            when,
            verb="patch",
            **kubelet(node),
            resource="nodes",
            name=node.name,
            subresource="status",
        )

    def leader_lease(self, when: datetime) -> SimRecord:
        component = self.rng.choice(("kube-controller-manager", "kube-scheduler"))
        user = Identity(f"system:{component}", ("system:authenticated",))
        return self._audit(
            when,
            verb="update",
            **caller(
                user,
                CONTROL_PLANE_IP,
                f"{component}/v1.29.4 (linux/amd64) kubernetes/55019c8/leader-election",
                rbac_reason(user.username, user.username, f'User "{user.username}"'),
            ),
            resource="leases",
            namespace="kube-system",
            name=component,
            group="coordination.k8s.io",
            query="timeout=5s",
        )

    def endpoint_slice(self, when: datetime) -> SimRecord:
        workload = self.rng.choice(self.apps)
        return self._audit(
            when,
            verb="update",
            **controller(self.controllers["endpointslice-controller"], rbac=True),
            resource="endpointslices",
            namespace=workload.namespace,
            name=f"{workload.name}-{self.ids.suffix(5)}",
            group="discovery.k8s.io",
        )

    def human_read(self, when: datetime) -> SimRecord:
        human = self.rng.choice(self.cluster.humans)
        workload = self.rng.choice(self.apps)
        choice = self.rng.randrange(6)
        common = kubectl(
            human,
            rbac_reason(
                "developers-view" if not human.admin else "platform-admins",
                "view" if not human.admin else "cluster-admin",
                f'Group "{human.identity.groups[0]}"',
            ),
        )
        if choice == 0:
            return self._audit(when, **kubectl_list("pods", workload.namespace), **common)
        if choice == 1:
            return self._audit(when, verb="get", **pod_ref(self._pick(workload.pods)), **common)
        if choice == 2:
            pod = self._pick(workload.pods)
            query = f"container={pod.container}&tailLines=200"
            return self._audit(when, verb="get", **pod_ref(pod, "log"), query=query, **common)
        if choice == 3:
            return self._audit(when, verb="get", **deployment_ref(workload), **common)
        if choice == 4:
            return self._audit(when, **kubectl_list("events", workload.namespace), **common)
        return self._audit(when, **kubectl_list("namespaces"), **common)

    def human_write(self, when: datetime) -> SimRecord:
        human = self.rng.choice(self.cluster.admins())
        workload = self.rng.choice(self.apps)
        pod = self._pick(workload.pods)
        return self._audit(
            when,
            verb="delete",
            **kubectl(human, ADMIN_REASON),
            **pod_ref(pod),
            request_object={
                "kind": "DeleteOptions",
                "apiVersion": "v1",
                "propagationPolicy": "Background",
            },
        )

    def ci_deploy(self, when: datetime) -> SimRecord:
        workload = self.rng.choice(self.apps)
        image = (
            workload.image.rpartition(":")[0]
            + f":{self.rng.randrange(1, 4)}.{self.rng.randrange(20)}.{self.rng.randrange(10)}"
        )
        patch = {
            "spec": {
                "template": {"spec": {"containers": [{"name": workload.name, "image": image}]}}
            }
        }
        return self._audit(
            when,
            verb="patch",
            **ci_deployer(self.cluster.ci_deployer),
            **deployment_ref(workload),
            request_object=patch,
            query="fieldManager=kubectl-client-side-apply",
        )

    def operator_secret(self, when: datetime) -> SimRecord:
        workload = self.rng.choice(self.apps)
        verb = self.rng.choice(("get", "get", "update"))
        return self._audit(
            when,
            verb=verb,
            **cert_manager(
                self.cert_manager,
                self._pick(self.cluster.workload("cert-manager", "cert-manager").pods).ip,
            ),
            resource="secrets",
            namespace=workload.namespace,
            name=f"{workload.name}-tls",
        )

    def token_review(self, when: datetime) -> SimRecord:
        return self._audit(
            when,
            verb="create",
            user=self.metrics,
            source_ip=self._pick(self.cluster.workload("kube-system", "metrics-server").pods).ip,
            user_agent="metrics-server/v0.7.1 (linux/amd64) kubernetes/$Format",
            resource="tokenreviews",
            group="authentication.k8s.io",
            reason=rbac_reason(
                "metrics-server:system:auth-delegator",
                "system:auth-delegator",
                'ServiceAccount "metrics-server/kube-system"',
            ),
        )

    def kubelet_token(self, when: datetime) -> SimRecord:
        pod = self._pick(self.app_pods)
        return self._audit(
            when,
            verb="create",
            **kubelet(pod.node),
            resource="serviceaccounts",
            namespace=pod.namespace,
            name=pod.service_account,
            subresource="token",
        )

    def hpa_scale(self, when: datetime) -> SimRecord:
        workload = self.rng.choice(self.apps)
        return self._audit(
            when,
            verb="update",
            **controller(self.controllers["horizontal-pod-autoscaler"]),
            **deployment_ref(workload, "scale"),
            request_object=manifests.scale(self.rng.randrange(2, 6)),
        )

    def stray_forbidden(self, when: datetime) -> SimRecord:
        human = self.rng.choice(self.cluster.developers())
        namespace = self.rng.choice(self.cluster.namespaces)
        return self._audit(when, **kubectl_list("secrets", namespace), **kubectl(human), code=403)
