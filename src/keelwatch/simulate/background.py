"""Benign traffic of a running cluster: the mix of every background generator.

Each generator makes one record at a given time; ``Background.weights`` is the traffic mix
(relative shares of all records, every source together).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from keelwatch.simulate.audit_traffic import AuditTraffic
from keelwatch.simulate.cluster import Cluster
from keelwatch.simulate.records import SimRecord
from keelwatch.simulate.runtime_traffic import RuntimeTraffic

Generator = Callable[[datetime], SimRecord]


class Background(AuditTraffic, RuntimeTraffic):
    def __init__(self, cluster: Cluster, seed: int) -> None:
        super().__init__(cluster, seed)
        self.weights: list[tuple[Generator, float]] = [
            # Kubernetes audit, about 45 %
            (self.kubelet_lease, 9), (self.node_status, 3), (self.leader_lease, 3),
            (self.endpoint_slice, 4), (self.human_read, 6), (self.human_write, 0.4),
            (self.ci_deploy, 1.5), (self.operator_secret, 2), (self.token_review, 1),
            (self.kubelet_token, 1.5), (self.hpa_scale, 0.6), (self.stray_forbidden, 0.2),
            # Hubble, about 30 %
            (self.service_flow, 14), (self.dns_flow, 6), (self.external_flow, 3),
            (self.probe_flow, 1.5), (self.policy_drop, 0.4),
            # container logs, about 20 %; Tetragon, about 10 %; Falco's known noise, rare
            (self.app_log, 15), (self.platform_log, 3),
            (self.probe_exec, 3), (self.job_exec, 2), (self.exec_exit, 3),
            (self.monitored_connect, 0.4), (self.falco_api_contact, 0.1),
        ]  # fmt: skip

    def records(self, start: datetime, duration_seconds: float, count: int) -> list[SimRecord]:
        """``count`` records spread uniformly over the run, in time order."""
        offsets = sorted(self.rng.uniform(0, duration_seconds) for _ in range(count))
        generators = [generator for generator, _ in self.weights]
        weights = [weight for _, weight in self.weights]
        chosen = self.rng.choices(generators, weights=weights, k=count)
        return [
            generate(start + timedelta(seconds=offset))
            for offset, generate in zip(offsets, chosen, strict=True)
        ]
