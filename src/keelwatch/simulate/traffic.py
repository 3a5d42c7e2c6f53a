"""What every background generator shares: the cluster, one random stream, small helpers."""

from __future__ import annotations

import random
from datetime import datetime
from typing import Any

from keelwatch.simulate.cluster import Cluster, Identity, Ids, Pod, service_account
from keelwatch.simulate.records import AUDIT, SimRecord, audit_event

NODE_GROUPS = ("system:nodes", "system:authenticated")


class Traffic:
    """Benign records for one cluster, drawn from the seed's ``background`` stream."""

    def __init__(self, cluster: Cluster, seed: int) -> None:
        self.cluster = cluster
        self.rng = random.Random(f"{seed}:background")  # noqa: S311 - reproducible, not secret
        self.ids = Ids(self.rng)
        system = Ids(random.Random(f"{seed}:identities"))  # noqa: S311 - reproducible
        self.controllers = {
            name: service_account("kube-system", name, system)
            for name in (
                "endpointslice-controller",
                "replicaset-controller",
                "horizontal-pod-autoscaler",
            )
        }
        self.cert_manager = service_account("cert-manager", "cert-manager", system)
        self.metrics = service_account("kube-system", "metrics-server", system)
        self.apps = cluster.apps() or cluster.workloads
        self.app_pods = [pod for workload in self.apps for pod in workload.pods]

    def _pick(self, pods: list[Pod]) -> Pod:
        return pods[self.rng.randrange(len(pods))]

    def _pick_node(self) -> str:
        return self.rng.choice(self.cluster.nodes).name

    def _node_ip(self, name: str) -> str:
        return next(node.ip for node in self.cluster.nodes if node.name == name)

    def _node_identity(self, node: str) -> Identity:
        return Identity(f"system:node:{node}", NODE_GROUPS)

    def _audit(self, when: datetime, **fields: Any) -> SimRecord:
        return SimRecord(when, AUDIT, audit_event(self.ids, when, **fields))
