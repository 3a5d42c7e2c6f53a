"""Background runtime traffic: Hubble flows, container logs, Tetragon processes, Falco noise."""

from __future__ import annotations

from datetime import datetime, timedelta

from keelwatch.simulate.cluster import Pod
from keelwatch.simulate.records import (
    API_SERVER_CONTACT,
    CONTAINER,
    FALCO,
    TETRAGON,
    SimRecord,
    container_record,
    falco_alert,
    falco_process_fields,
)
from keelwatch.simulate.runtime_records import (
    HOST,
    WORLD,
    tetragon_connect,
    tetragon_exec,
    tetragon_exit,
)
from keelwatch.simulate.traffic import Traffic

# Where an application without known external services sends its telemetry.
DEFAULT_EXTERNAL = ("", "198.51.100.90", 443)


class RuntimeTraffic(Traffic):
    def _external_call(self) -> tuple[Pod, tuple[str, str, int]]:
        """A pod of an application that calls out, and one of its external services."""
        callers = [w for w in self.apps if w.externals] or self.apps
        caller = self.rng.choice(callers)
        pod = self._pick(caller.pods)
        return pod, self.rng.choice(caller.externals) if caller.externals else DEFAULT_EXTERNAL

    # -- Hubble ----------------------------------------------------------------------------

    def service_flow(self, when: datetime) -> SimRecord:
        callers = [w for w in self.apps if w.talks_to] or self.apps
        caller = self.rng.choice(callers)
        source = self._pick(caller.pods)
        target = self._pick(self.rng.choice(caller.talks_to).pods) if caller.talks_to else source
        port = self.ids.ephemeral_port()
        if self.rng.random() < 0.5:  # seen leaving the caller's node
            return self._flow(when, source=source, destination=target, source_port=port)
        return self._flow(
            when,
            source=source,
            destination=target,
            source_port=port,
            direction="INGRESS",
            reply=self.rng.random() < 0.3,
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
        return self._flow(
            when,
            source=source,
            destination=dns,
            destination_port=53,
            protocol="UDP",
            dns_query=query,
        )

    def external_flow(self, when: datetime) -> SimRecord:
        source, (name, ip, port) = self._external_call()
        return self._flow(
            when,
            source=source,
            destination=WORLD,
            destination_ip=ip,
            destination_port=port,
            destination_names=[name] if name else None,
        )

    def probe_flow(self, when: datetime) -> SimRecord:
        target = self._pick(self.app_pods)
        return self._flow(
            when, source=HOST, destination=target, source_ip=target.node.ip, direction="INGRESS"
        )

    def policy_drop(self, when: datetime) -> SimRecord:
        source, target = self._pick(self.app_pods), self._pick(self.app_pods)
        return self._flow(
            when, source=source, destination=target, direction="INGRESS", verdict="DROPPED"
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
        return self._exec(
            when,
            pod,
            binary=binary,
            arguments=arguments,
            parent_binary="/usr/bin/runc",
            parent_arguments="--root /run/containerd/runc/k8s.io exec",
            uid=999,
        )

    def job_exec(self, when: datetime) -> SimRecord:
        pods = [p for p in self.app_pods if p.role == "worker"] or self.app_pods
        pod = self._pick(pods)
        job = self.rng.choice(("reindex", "send-digest", "expire-sessions", "export-report"))
        return self._exec(
            when,
            pod,
            binary="/usr/local/bin/python3.12",
            arguments=f"/app/jobs/{job}.py",
            parent_binary="/usr/local/bin/python3.12",
            parent_arguments="/app/worker.py",
            uid=1000,
            cwd="/app",
        )

    def exec_exit(self, when: datetime) -> SimRecord:
        started = self.probe_exec(when - timedelta(milliseconds=self.rng.randrange(5, 900)))
        return SimRecord(when, TETRAGON, tetragon_exit(self.ids, started.record, when))

    def monitored_connect(self, when: datetime) -> SimRecord:
        pod, (_, ip, port) = self._external_call()
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
            source=(pod.ip, self.ids.ephemeral_port()),
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
            connection={
                "fd.name": f"{pod.ip}:{self.ids.ephemeral_port()}->{self.cluster.api_server_ip}:443"
            },
        )
        record = falco_alert(self.ids, when, API_SERVER_CONTACT, fields, pod.node.name)
        return SimRecord(when, FALCO, record)
