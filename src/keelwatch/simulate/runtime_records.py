"""Runtime and network records: Tetragon JSON export lines and Hubble flows."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from keelwatch.simulate.cluster import CLUSTER_NAME, Ids, Node, Pod
from keelwatch.simulate.records import nano

ROOT_UID = 0
NO_AUID = 4294967295  # Tetragon's "unset" login uid

# -- Tetragon ----------------------------------------------------------------------------------


def tetragon_process(
    ids: Ids,
    pod: Pod,
    when: datetime,
    *,
    binary: str,
    arguments: str,
    pid: int,
    uid: int,
    cwd: str = "/",
    parent_exec_id: str = "",
) -> dict[str, Any]:
    process: dict[str, Any] = {
        "exec_id": ids.exec_id(pod.node.name, pid),
        "pid": pid,
        "uid": uid,
        "cwd": cwd,
        "binary": binary,
    }
    if arguments:
        process["arguments"] = arguments
    process.update(
        {
            "flags": "execve clone",
            "start_time": nano(when, ids),
            "auid": NO_AUID,
            "pod": tetragon_pod(pod),
            "docker": pod.container_id[:31],
            "parent_exec_id": parent_exec_id or ids.exec_id(pod.node.name, pid - 1),
            "tid": pid,
        }
    )
    return process


def tetragon_pod(pod: Pod) -> dict[str, Any]:
    return {
        "namespace": pod.namespace,
        "name": pod.name,
        "container": {
            "id": f"containerd://{pod.container_id}",
            "name": pod.container,
            "image": {
                "id": f"{pod.image.rpartition(':')[0]}@sha256:{pod.container_id}",
                "name": pod.image,
            },
            "start_time": "2025-06-01T22:14:03Z",
            "pid": 1,
        },
        "pod_labels": dict(pod.labels),
        "workload": pod.workload,
        "workload_kind": pod.workload_kind,
    }


def tetragon_event(
    ids: Ids, when: datetime, node_name: str, kind: str, body: dict[str, Any]
) -> dict[str, Any]:
    return {
        kind: body,
        "node_name": node_name,
        "cluster_name": CLUSTER_NAME,
        "time": nano(when, ids),
    }


def tetragon_exec(
    ids: Ids,
    pod: Pod,
    when: datetime,
    *,
    binary: str,
    arguments: str,
    parent_binary: str,
    parent_arguments: str = "",
    uid: int = ROOT_UID,
    cwd: str = "/",
) -> dict[str, Any]:
    pid = ids.rng.randrange(1000, 60000)
    parent = tetragon_process(
        ids,
        pod,
        when - timedelta(milliseconds=7),
        binary=parent_binary,
        arguments=parent_arguments,
        pid=pid - 1,
        uid=uid,
        cwd=cwd,
    )
    process = tetragon_process(
        ids,
        pod,
        when,
        binary=binary,
        arguments=arguments,
        pid=pid,
        uid=uid,
        cwd=cwd,
        parent_exec_id=parent["exec_id"],
    )
    return tetragon_event(
        ids, when, pod.node.name, "process_exec", {"process": process, "parent": parent}
    )


def tetragon_exit(
    ids: Ids, exec_record: dict[str, Any], when: datetime, status: int = 0
) -> dict[str, Any]:
    body = dict(exec_record["process_exec"])
    body["status"] = status
    body["time"] = nano(when, ids)
    return tetragon_event(ids, when, exec_record["node_name"], "process_exit", body)


def tetragon_connect(
    ids: Ids,
    exec_record: dict[str, Any],
    when: datetime,
    *,
    source: tuple[str, int],
    destination: tuple[str, int],
    policy: str = "monitor-network-activity",
) -> dict[str, Any]:
    inner = exec_record["process_exec"]
    socket = {
        "family": "AF_INET",
        "type": "SOCK_STREAM",
        "protocol": "IPPROTO_TCP",
        "mark": 0,
        "priority": 0,
        "saddr": source[0],
        "daddr": destination[0],
        "sport": source[1],
        "dport": destination[1],
        "cookie": str(ids.rng.getrandbits(63)),
        "state": "TCP_SYN_SENT",
    }
    body = {
        "process": inner["process"],
        "parent": inner["parent"],
        "function_name": "tcp_connect",
        "args": [{"sock_arg": socket}],
        "action": "KPROBE_ACTION_POST",
        "policy_name": policy,
        "return_action": "KPROBE_ACTION_POST",
    }
    return tetragon_event(ids, when, exec_record["node_name"], "process_kprobe", body)


# -- Hubble ------------------------------------------------------------------------------------

WORLD = {"identity": 2, "labels": ["reserved:world"]}
HOST = {"identity": 1, "labels": ["reserved:host"]}


def hubble_endpoint(pod: Pod, identity: int) -> dict[str, Any]:
    labels = [f"k8s:{key}={value}" for key, value in sorted(pod.labels.items())]
    labels += [
        f"k8s:io.cilium.k8s.namespace.labels.kubernetes.io/metadata.name={pod.namespace}",
        f"k8s:io.cilium.k8s.policy.cluster={CLUSTER_NAME}",
        f"k8s:io.cilium.k8s.policy.serviceaccount={pod.service_account}",
        f"k8s:io.kubernetes.pod.namespace={pod.namespace}",
    ]
    return {
        "ID": identity % 4000,
        "identity": identity,
        "cluster_name": CLUSTER_NAME,
        "namespace": pod.namespace,
        "labels": labels,
        "pod_name": pod.name,
        "workloads": [{"name": pod.workload, "kind": pod.workload_kind}],
    }


def identity_of(pod: Pod) -> int:
    """A stable Cilium security identity per (namespace, workload)."""
    return 10_000 + sum(map(ord, f"{pod.namespace}/{pod.workload}")) * 7 % 50_000


def _endpoint_ip(endpoint: Pod | dict[str, Any], ip: str | None) -> str:
    if ip is not None:
        return ip
    if isinstance(endpoint, Pod):
        return endpoint.ip
    raise ValueError(f"an endpoint that is not a pod needs its address: {endpoint}")


def hubble_flow(
    ids: Ids,
    when: datetime,
    *,
    source: Pod | dict[str, Any],
    destination: Pod | dict[str, Any],
    source_ip: str | None = None,
    destination_ip: str | None = None,
    source_port: int | None = None,
    destination_port: int | None = None,
    node: Node | None = None,
    protocol: str = "TCP",
    direction: str = "EGRESS",
    verdict: str = "FORWARDED",
    reply: bool = False,
    destination_names: list[str] | None = None,
    dns_query: str | None = None,
) -> dict[str, Any]:
    """A flow between two endpoints (a pod, or WORLD/HOST with an explicit address).

    Addresses and the destination port default to the pods' own, the source port to an
    ephemeral one, and the node to where Hubble observes the flow: the source's node for
    egress, the destination's for ingress.
    """
    if source_port is None:
        source_port = ids.ephemeral_port()
    source_ip = _endpoint_ip(source, source_ip)
    destination_ip = _endpoint_ip(destination, destination_ip)
    if destination_port is None:
        if not isinstance(destination, Pod):
            raise ValueError("a destination that is not a pod needs its port")
        destination_port = destination.port
    if node is None:
        observer = source if direction == "EGRESS" else destination
        if not isinstance(observer, Pod):
            raise ValueError(f"no node observes a {direction} flow from {observer}")
        node = observer.node
    stamp = nano(when, ids)
    flow: dict[str, Any] = {"time": stamp, "uuid": ids.uuid(), "verdict": verdict}
    if verdict == "DROPPED":
        flow["drop_reason"] = 133
    flow["IP"] = {"source": source_ip, "destination": destination_ip, "ipVersion": "IPv4"}
    if protocol == "TCP":
        flags = {"ACK": True} if reply else {"SYN": True}
        layer: dict[str, Any] = {
            "source_port": source_port,
            "destination_port": destination_port,
            "flags": flags,
        }
    else:
        layer = {"source_port": source_port, "destination_port": destination_port}
    flow["l4"] = {protocol: layer}
    flow["source"] = (
        hubble_endpoint(source, identity_of(source)) if isinstance(source, Pod) else source
    )
    flow["destination"] = (
        hubble_endpoint(destination, identity_of(destination))
        if isinstance(destination, Pod)
        else destination
    )
    flow["Type"] = "L7" if dns_query else "L3_L4"
    flow["node_name"] = f"{CLUSTER_NAME}/{node.name}"
    if destination_names:
        flow["destination_names"] = destination_names
    if dns_query:
        flow["l7"] = {"type": "REQUEST", "dns": {"query": dns_query, "qtypes": ["A"]}}
        flow["event_type"] = {"type": 129}
        flow["Summary"] = f"DNS Query {dns_query} A"
    else:
        flow["event_type"] = {"type": 1, "sub_type": 133} if verdict == "DROPPED" else {"type": 4}
        flow["Summary"] = "TCP Flags: ACK" if reply else "TCP Flags: SYN"
    flow["traffic_direction"] = direction
    if verdict == "DROPPED":
        flow["drop_reason_desc"] = "POLICY_DENIED"
    else:
        flow["trace_observation_point"] = "TO_STACK" if direction == "EGRESS" else "TO_ENDPOINT"
    flow["is_reply"] = reply
    return {"flow": flow, "node_name": f"{CLUSTER_NAME}/{node.name}", "time": stamp}
