"""What every background generator shares: the cluster, one random stream, small helpers."""

from __future__ import annotations

import random
from datetime import datetime
from typing import Any

from keelwatch.simulate.cluster import Cluster, Ids, Node, Pod, service_account
from keelwatch.simulate.records import AUDIT, HUBBLE, TETRAGON, SimRecord, audit_event
from keelwatch.simulate.runtime_records import hubble_flow, tetragon_exec


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

    def _pick_node(self) -> Node:
        return self.rng.choice(self.cluster.nodes)

    def _audit(self, when: datetime, **fields: Any) -> SimRecord:
        return SimRecord(when, AUDIT, audit_event(self.ids, when, **fields))

    def _flow(self, when: datetime, **fields: Any) -> SimRecord:
        return SimRecord(when, HUBBLE, hubble_flow(self.ids, when, **fields))

    def _exec(self, when: datetime, pod: Pod, **fields: Any) -> SimRecord:
        return SimRecord(when, TETRAGON, tetragon_exec(self.ids, pod, when, **fields))
