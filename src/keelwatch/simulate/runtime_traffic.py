"""Background runtime traffic: Hubble flows, container logs, Tetragon processes, Falco noise."""

from __future__ import annotations

from datetime import datetime, timedelta

from keelwatch.simulate.records import (
    CONTAINER,
    FALCO,
    HUBBLE,
    TETRAGON,
    SimRecord,
    container_record,
    falco_alert,
    falco_process_fields,
)
from keelwatch.simulate.runtime_records import (
    HOST,
    WORLD,
    hubble_flow,
    tetragon_connect,
    tetragon_exec,
    tetragon_exit,
)
from keelwatch.simulate.traffic import Traffic


class RuntimeTraffic(Traffic):
    # -- Hubble ----------------------------------------------------------------------------

    def service_flow(self, when: datetime) -> SimRecord:
        callers = [w for w in self.apps if w.talks_to] or self.apps
        caller = self.rng.choice(callers)
        source = self._pick(caller.pods)
        target = self._pick(self.rng.choice(caller.talks_to).pods) if caller.talks_to else source
        port = self.rng.randrange(32768, 60999)
        if self.rng.random() < 0.5:  # seen leaving the caller's node
            return SimRecord(
                when,
                HUBBLE,
                hubble_flow(
                    self.ids,
                    when,
                    node=source.node,
                    source=source,
                    destination=target,
                    source_ip=source.ip,
                    destination_ip=target.ip,
                    source_port=port,
                    destination_port=target.port,
                ),
            )
        return SimRecord(
            when,
            HUBBLE,
            hubble_flow(
                self.ids,
                when,
                node=target.node,
                source=source,
                destination=target,
                source_ip=source.ip,
                destination_ip=target.ip,
                source_port=port,
                destination_port=target.port,
                direction="INGRESS",
                reply=self.rng.random() < 0.3,
            ),
        )

    def dns_flow(self, when: datetime) -> SimRecord:
        source = self._pick(self.app_pods)
        dns = self._pick(self.cluster.workload("kube-system", "coredns").pods)
        workload = self.cluster.workload(source.namespace, source.workload)
        names = [f"{w.name}.{w.namespace}.svc.cluster.local." for w in workload.talks_to]
        names += [f"{name}." for name, _, _ in workload.externals]
        query = self.rng.choice(
            names or [f"{workload.name}.{workload.namespace}.svc.cluster.local."]
        )
        return SimRecord(
            when,
            HUBBLE,
            hubble_flow(
                self.ids,
                when,
                node=source.node,
                source=source,
                destination=dns,
                source_ip=source.ip,
                destination_ip=dns.ip,
                source_port=self.rng.randrange(32768, 60999),
                destination_port=53,
                protocol="UDP",
                dns_query=query,
            ),
        )

    def external_flow(self, when: datetime) -> SimRecord:
        callers = [w for w in self.apps if w.externals] or self.apps
        caller = self.rng.choice(callers)
        source = self._pick(caller.pods)
        name, ip, port = (
            self.rng.choice(caller.externals) if caller.externals else ("", "198.51.100.90", 443)
        )
        return SimRecord(
            when,
            HUBBLE,
            hubble_flow(
                self.ids,
                when,
                node=source.node,
                source=source,
                destination=WORLD,
                source_ip=source.ip,
                destination_ip=ip,
                source_port=self.rng.randrange(32768, 60999),
                destination_port=port,
                destination_names=[name] if name else None,
            ),
        )

    def probe_flow(self, when: datetime) -> SimRecord:
        target = self._pick(self.app_pods)
        return SimRecord(
            when,
            HUBBLE,
            hubble_flow(
                self.ids,
                when,
                node=target.node,
                source=HOST,
                destination=target,
                source_ip=target.node.ip,
                destination_ip=target.ip,
                source_port=self.rng.randrange(32768, 60999),
                destination_port=target.port,
                direction="INGRESS",
            ),
        )

    def policy_drop(self, when: datetime) -> SimRecord:
        source, target = self._pick(self.app_pods), self._pick(self.app_pods)
        return SimRecord(
            when,
            HUBBLE,
            hubble_flow(
                self.ids,
                when,
                node=target.node,
                source=source,
                destination=target,
                source_ip=source.ip,
                destination_ip=target.ip,
                source_port=self.rng.randrange(32768, 60999),
                destination_port=target.port,
                direction="INGRESS",
                verdict="DROPPED",
            ),
        )

    # -- container logs --------------------------------------------------------------------

    def app_log(self, when: datetime) -> SimRecord:
        pod = self._pick(self.app_pods)
        millis = self.rng.randrange(1, 400)
        if pod.role == "db":
            backend = self.rng.randrange(80, 999)
            line = (
                f"{when:%Y-%m-%d %H:%M:%S}.{when.microsecond // 1000:03d} UTC [{backend}] LOG:  "
                f"duration: {millis}.{self.rng.randrange(1000):03d} ms  statement: SELECT 1"
            )
        elif pod.role == "cache":
            changes = self.rng.randrange(1, 100)
            line = (
                f"1:M {when:%d %b %Y %H:%M:%S}.{when.microsecond // 1000:03d} * {changes} "
                "changes in 300 seconds. Saving..."
            )
        elif pod.role == "worker":
            job = self.ids.suffix(8)
            line = f'{{"level":"info","msg":"job done","job":"{job}","duration_ms":{millis}}}'
        else:
            method, path = self.rng.choice(
                (
                    ("GET", "/healthz"),
                    ("GET", "/api/v1/items"),
                    ("POST", "/api/v1/orders"),
                    ("GET", "/"),
                )
            )
            status = self.rng.choices((200, 201, 404, 500), weights=(90, 5, 4, 1))[0]
            client = f"10.244.{self.rng.randrange(0, 8)}.{self.rng.randrange(2, 250)}"
            size = self.rng.randrange(20, 9000)
            line = f'{client} - - "{method} {path} HTTP/1.1" {status} {size} {millis}ms'
        stream = "stderr" if "500" in line[-12:] else "stdout"
        return SimRecord(
            when, CONTAINER, container_record(self.ids, when, pod, line + "\n", stream)
        )

    def platform_log(self, when: datetime) -> SimRecord:
        workload = self.rng.choice(
            [w for w in self.cluster.workloads if w.name in ("coredns", "cilium")]
        )
        pod = self._pick(workload.pods)
        if workload.name == "coredns":
            client = f"{self.rng.choice(self.app_pods).ip}:{self.rng.randrange(32768, 60999)}"
            workload = self.rng.choice(self.apps)
            name = f"{workload.name}.{workload.namespace}.svc.cluster.local."
            line = (
                f'[INFO] {client} - {self.rng.randrange(65535)} "A IN {name} udp 50 false 512" '
                f"NOERROR qr,aa,rd 106 0.000{self.rng.randrange(100, 999)}s"
            )
        else:
            revision = self.rng.randrange(10, 400)
            line = (
                'level=info msg="Policy imported via API, recalculating..." '
                f"policyRevision={revision} subsys=daemon"
            )
        return SimRecord(when, CONTAINER, container_record(self.ids, when, pod, line + "\n"))

    # -- Tetragon --------------------------------------------------------------------------

    def probe_exec(self, when: datetime) -> SimRecord:
        pods = [p for p in self.app_pods if p.role in ("db", "cache")] or self.app_pods
        pod = self._pick(pods)
        binary, arguments = (
            ("/usr/bin/pg_isready", "-U postgres -h 127.0.0.1 -p 5432")
            if pod.role == "db"
            else ("/usr/local/bin/redis-cli", "ping")
        )
        return SimRecord(
            when,
            TETRAGON,
            tetragon_exec(
                self.ids,
                pod,
                when,
                binary=binary,
                arguments=arguments,
                parent_binary="/usr/bin/runc",
                parent_arguments="--root /run/containerd/runc/k8s.io exec",
                uid=999,
            ),
        )

    def job_exec(self, when: datetime) -> SimRecord:
        pods = [p for p in self.app_pods if p.role == "worker"] or self.app_pods
        pod = self._pick(pods)
        job = self.rng.choice(("reindex", "send-digest", "expire-sessions", "export-report"))
        return SimRecord(
            when,
            TETRAGON,
            tetragon_exec(
                self.ids,
                pod,
                when,
                binary="/usr/local/bin/python3.12",
                arguments=f"/app/jobs/{job}.py",
                parent_binary="/usr/local/bin/python3.12",
                parent_arguments="/app/worker.py",
                uid=1000,
                cwd="/app",
            ),
        )

    def exec_exit(self, when: datetime) -> SimRecord:
        started = self.probe_exec(when - timedelta(milliseconds=self.rng.randrange(5, 900)))
        return SimRecord(when, TETRAGON, tetragon_exit(self.ids, started.record, when))

    def monitored_connect(self, when: datetime) -> SimRecord:
        callers = [w for w in self.apps if w.externals] or self.apps
        caller = self.rng.choice(callers)
        pod = self._pick(caller.pods)
        _, ip, port = (
            self.rng.choice(caller.externals) if caller.externals else ("", "198.51.100.90", 443)
        )
        started = tetragon_exec(
            self.ids,
            pod,
            when,
            binary="/app/server",
            arguments="--config /etc/app/config.yaml",
            parent_binary="/usr/bin/containerd-shim-runc-v2",
            uid=1000,
            cwd="/app",
        )
        record = tetragon_connect(
            self.ids,
            started,
            when,
            source=(pod.ip, self.rng.randrange(32768, 60999)),
            destination=(ip, port),
        )
        return SimRecord(when, TETRAGON, record)

    # -- Falco -----------------------------------------------------------------------------

    def falco_api_contact(self, when: datetime) -> SimRecord:
        """Falco's stock rule fires on operators that talk to the API server: known noise."""
        pod = self._pick(self.cluster.workload("velero", "velero").pods)
        fields = falco_process_fields(
            pod,
            command="velero server --features=",
            exe="/velero",
            parent="containerd-shim",
            pid=self.rng.randrange(100, 9000),
            user="nonroot",
            uid=65532,
        )
        port = self.rng.randrange(32768, 60999)
        fields.update(
            {
                "evt.type": "connect",
                "fd.name": f"{pod.ip}:{port}->{self.cluster.api_server_ip}:443",
            }
        )
        record = falco_alert(
            self.ids,
            when,
            rule="Contact K8S API Server From Container",
            priority="Notice",
            text="Unexpected connection to K8s API Server from container",
            fields=fields,
            tags=["T1565", "container", "k8s", "maturity_stable", "mitre_discovery", "network"],
            hostname=pod.node.name,
        )
        return SimRecord(when, FALCO, record)
