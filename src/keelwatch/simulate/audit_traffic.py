"""Background API traffic: kubelets, controllers, operators, the CI deployer and people.

Levels follow the implied audit Policy (docs/simulator.md): ``None`` for the noisy reads of
system components (never written), ``Metadata`` for secrets, leases, tokens and reads,
``Request`` for workload writes, ``RequestResponse`` for RBAC, exec and port-forward.
"""

from __future__ import annotations

from datetime import datetime

from keelwatch.simulate.cluster import KUBECTL_AGENT, KUBELET_AGENT, Identity
from keelwatch.simulate.records import SimRecord, rbac_reason
from keelwatch.simulate.traffic import Traffic

CERT_MANAGER_AGENT = "cert-manager-certificates-issuing/v1.14.5 (linux/amd64) cert-manager/7ba0ccd"
CONTROLLER_AGENT = (
    "kube-controller-manager/v1.29.4 (linux/amd64) kubernetes/55019c8/"
    "system:serviceaccount:kube-system:{}"
)


class AuditTraffic(Traffic):
    def kubelet_lease(self, when: datetime) -> SimRecord:
        node = self._pick_node()
        return self._audit(
            when,
            verb="update",
            user=self._node_identity(node),
            source_ip=self._node_ip(node),
            user_agent=KUBELET_AGENT,
            resource="leases",
            namespace="kube-node-lease",
            name=node,
            group="coordination.k8s.io",
            query="timeout=10s",
            reason="",
        )

    def node_status(self, when: datetime) -> SimRecord:
        node = self._pick_node()
        return self._audit(
            when,
            verb="patch",
            user=self._node_identity(node),
            source_ip=self._node_ip(node),
            user_agent=KUBELET_AGENT,
            resource="nodes",
            name=node,
            subresource="status",
        )

    def leader_lease(self, when: datetime) -> SimRecord:
        component = self.rng.choice(("kube-controller-manager", "kube-scheduler"))
        user = Identity(f"system:{component}", ("system:authenticated",))
        return self._audit(
            when,
            verb="update",
            user=user,
            source_ip="10.0.0.10",
            user_agent=f"{component}/v1.29.4 (linux/amd64) kubernetes/55019c8/leader-election",
            resource="leases",
            namespace="kube-system",
            name=component,
            group="coordination.k8s.io",
            query="timeout=5s",
            reason=rbac_reason(
                f"system:{component}", f"system:{component}", f'User "system:{component}"'
            ),
        )

    def endpoint_slice(self, when: datetime) -> SimRecord:
        workload = self.rng.choice(self.apps)
        return self._audit(
            when,
            verb="update",
            user=self.controllers["endpointslice-controller"],
            source_ip="10.0.0.10",
            user_agent=CONTROLLER_AGENT.format("endpointslice-controller"),
            resource="endpointslices",
            namespace=workload.namespace,
            name=f"{workload.name}-{self.ids.suffix(5)}",
            group="discovery.k8s.io",
            reason=rbac_reason(
                "system:controller:endpointslice-controller",
                "system:controller:endpointslice-controller",
                'ServiceAccount "endpointslice-controller/kube-system"',
            ),
        )

    def human_read(self, when: datetime) -> SimRecord:
        human = self.rng.choice(self.cluster.humans)
        workload = self.rng.choice(self.apps)
        choice = self.rng.randrange(6)
        common = {
            "user": human.identity,
            "source_ip": human.source_ip,
            "user_agent": KUBECTL_AGENT,
            "reason": rbac_reason(
                "developers-view" if not human.admin else "platform-admins",
                "view" if not human.admin else "cluster-admin",
                f'Group "{human.identity.groups[0]}"',
            ),
        }
        if choice == 0:
            return self._audit(
                when,
                verb="list",
                resource="pods",
                namespace=workload.namespace,
                query="limit=500",
                **common,
            )
        if choice == 1:
            pod = self._pick(workload.pods)
            return self._audit(
                when, verb="get", resource="pods", namespace=pod.namespace, name=pod.name, **common
            )
        if choice == 2:
            pod = self._pick(workload.pods)
            return self._audit(
                when,
                verb="get",
                resource="pods",
                namespace=pod.namespace,
                name=pod.name,
                subresource="log",
                query=f"container={pod.container}&tailLines=200",
                **common,
            )
        if choice == 3:
            return self._audit(
                when,
                verb="get",
                resource="deployments",
                namespace=workload.namespace,
                name=workload.name,
                group="apps",
                **common,
            )
        if choice == 4:
            return self._audit(
                when,
                verb="list",
                resource="events",
                namespace=workload.namespace,
                query="limit=500",
                **common,
            )
        return self._audit(when, verb="list", resource="namespaces", query="limit=500", **common)

    def human_write(self, when: datetime) -> SimRecord:
        human = self.rng.choice(self.cluster.admins())
        workload = self.rng.choice(self.apps)
        pod = self._pick(workload.pods)
        reason = rbac_reason("platform-admins", "cluster-admin", 'Group "platform-admins"')
        return self._audit(
            when,
            verb="delete",
            user=human.identity,
            source_ip=human.source_ip,
            user_agent=KUBECTL_AGENT,
            resource="pods",
            namespace=pod.namespace,
            name=pod.name,
            reason=reason,
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
            user=self.cluster.ci_deployer,
            source_ip="10.30.4.17",
            user_agent="kubectl/v1.29.2 (linux/amd64) kubernetes/4b8e819",
            resource="deployments",
            namespace=workload.namespace,
            name=workload.name,
            group="apps",
            request_object=patch,
            query="fieldManager=kubectl-client-side-apply",
            reason=rbac_reason(
                "ci-deployer", "edit", 'ServiceAccount "deployer/ci"', cluster=False
            ),
        )

    def operator_secret(self, when: datetime) -> SimRecord:
        workload = self.rng.choice(self.apps)
        verb = self.rng.choice(("get", "get", "update"))
        return self._audit(
            when,
            verb=verb,
            user=self.cert_manager,
            source_ip=self._pick(self.cluster.workload("cert-manager", "cert-manager").pods).ip,
            user_agent=CERT_MANAGER_AGENT,
            resource="secrets",
            namespace=workload.namespace,
            name=f"{workload.name}-tls",
            reason=rbac_reason(
                "cert-manager-controller-certificates",
                "cert-manager-controller-certificates",
                'ServiceAccount "cert-manager/cert-manager"',
            ),
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
            user=self._node_identity(pod.node.name),
            source_ip=pod.node.ip,
            user_agent=KUBELET_AGENT,
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
            user=self.controllers["horizontal-pod-autoscaler"],
            source_ip="10.0.0.10",
            user_agent=CONTROLLER_AGENT.format("horizontal-pod-autoscaler"),
            resource="deployments",
            namespace=workload.namespace,
            name=workload.name,
            subresource="scale",
            group="apps",
            request_object={
                "kind": "Scale",
                "apiVersion": "autoscaling/v1",
                "spec": {"replicas": self.rng.randrange(2, 6)},
            },
        )

    def stray_forbidden(self, when: datetime) -> SimRecord:
        human = self.rng.choice(self.cluster.developers())
        namespace = self.rng.choice(self.cluster.namespaces)
        return self._audit(
            when,
            verb="list",
            user=human.identity,
            source_ip=human.source_ip,
            user_agent=KUBECTL_AGENT,
            resource="secrets",
            namespace=namespace,
            code=403,
            query="limit=500",
        )
