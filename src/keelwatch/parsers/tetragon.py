"""Tetragon JSON export: one event per object, keyed by its type.

An export line looks like ``{"process_kprobe": {...}, "node_name": "...", "time": "..."}``: exactly
one key names the event type (``process_exec``, ``process_exit``, ``process_kprobe``,
``process_tracepoint``, ``process_uprobe``, ``process_lsm``, ``process_loader``, and the older
``process_connect`` / ``process_listen`` / ``process_close`` of early releases).

Native fields: the inner object flattened under ``tetragon.`` (``tetragon.process.binary``,
``tetragon.function_name``, ``tetragon.args``), the other top-level keys beside it
(``tetragon.node_name``) and ``tetragon.type`` = the event-type key. ``exec_id`` names a process,
not an event, so ``event.id`` is a content hash.
"""

from __future__ import annotations

from typing import Any

from keelwatch.errors import ParseError
from keelwatch.model.fields import Fields, flatten
from keelwatch.parsers.base import ParseContext, Record
from keelwatch.parsers.values import int_or_none, json_type, port_or_none, str_or_none

NAME = "tetragon"
DATASET = "tetragon.events"
DESCRIPTION = "Tetragon JSON export events (process exec/exit, kprobes, tracepoints, LSM, network)"

_EVENT_TYPES = frozenset(
    (
        "process_exec",
        "process_exit",
        "process_kprobe",
        "process_tracepoint",
        "process_uprobe",
        "process_lsm",
        "process_loader",
        "process_throttle",
        "process_connect",
        "process_listen",
        "process_close",
        "process_accept",
        "rate_limit_info",
    )
)
# (category, types) for the types whose meaning does not depend on their arguments.
_FIXED_KINDS: dict[str, tuple[list[str], list[str]]] = {
    "process_exec": (["process"], ["start"]),
    "process_exit": (["process"], ["end"]),
    "process_connect": (["network"], ["connection", "start"]),
    "process_accept": (["network"], ["connection", "start"]),
    "process_close": (["network"], ["connection", "end"]),
    "process_listen": (["network"], ["start"]),
    "process_loader": (["library"], ["start"]),
}
_OLD_NETWORK = frozenset(("process_connect", "process_accept", "process_close"))
_TRANSPORTS = {
    "IPPROTO_TCP": "tcp",
    "IPPROTO_UDP": "udp",
    "IPPROTO_SCTP": "sctp",
    "IPPROTO_ICMP": "icmp",
    "IPPROTO_ICMPV6": "ipv6-icmp",
    "TCP": "tcp",
    "UDP": "udp",
}
# skb arguments carry the IP protocol number instead of its name.
_PROTOCOL_NUMBERS = {6: "tcp", 17: "udp", 132: "sctp", 1: "icmp", 58: "ipv6-icmp"}
_FAMILIES = {"AF_INET": "ipv4", "AF_INET6": "ipv6"}
_SOCKET_ARGS = ("sock_arg", "skb_arg")
_PATH_ARGS = ("file_arg", "path_arg", "linux_binprm_arg")
# Substrings of a hook's function name that say what it does to a file; first match wins.
_FILE_VERBS = (
    ("unlink", "deletion"),
    ("rmdir", "deletion"),
    ("mkdir", "creation"),
    ("mknod", "creation"),
    ("create", "creation"),
    ("write", "change"),
    ("rename", "change"),
    ("truncate", "change"),
    ("chmod", "change"),
    ("chown", "change"),
    ("setattr", "change"),
    ("setxattr", "change"),
)
# Container ids come as "containerd://<id>", "docker://<id>", "cri-o://<id>".
_RUNTIME_SCHEME = "://"


def matches(record: Record) -> bool:
    return (
        isinstance(record, dict)
        and ("node_name" in record or "time" in record)
        and _event_type(record) is not None
    )


def parse(record: Record, ctx: ParseContext) -> None:
    if not isinstance(record, dict):
        raise ParseError(f"a Tetragon event is a JSON object, not {json_type(record)}")
    kind = _event_type(record)
    if kind is None:
        raise ParseError("no Tetragon event-type key (process_exec, process_kprobe, …)")
    inner: dict[str, Any] = record[kind]

    out: Fields = {
        "event.kind": "event",
        "event.dataset": DATASET,
        "event.action": kind,
    }
    # One flatten: the top-level keys beside the type (node_name, cluster_name…), then the inner
    # object. The top-level time is @timestamp and is not repeated.
    native = {key: value for key, value in record.items() if key != kind and key != "time"}
    native.update(inner)
    flatten(native, "tetragon", out, ctx.limits)
    out["tetragon.type"] = kind

    ctx.set_timestamp(out, record.get("time", inner.get("time")), "Tetragon event time")
    node = str_or_none(record.get("node_name"))
    if node:
        out["host.name"] = node
    cluster = str_or_none(record.get("cluster_name"))
    if cluster:
        out["orchestrator.cluster.name"] = cluster
    message = str_or_none(inner.get("message"))
    if message:
        out["message"] = message

    process = inner.get("process")
    if isinstance(process, dict):
        _map_process(process, "process", out)
        _map_identity(process, out)
    parent = inner.get("parent")
    if isinstance(parent, dict):
        _map_process(parent, "process.parent", out)
    elif isinstance(process, dict):
        _put(out, "process.parent.entity_id", str_or_none(process.get("parent_exec_id")))
    if kind == "process_exit":
        _put(out, "process.exit_code", int_or_none(inner.get("status")))

    categories, types = _classify(kind, inner, out)
    out["event.category"] = categories
    out["event.type"] = types
    ctx.emit(out, record)


def _event_type(record: dict[str, Any]) -> str | None:
    for key, value in record.items():
        if isinstance(value, dict) and (key in _EVENT_TYPES or key.startswith("process_")):
            return key
    return None


def _map_process(process: dict[str, Any], prefix: str, out: Fields) -> None:
    binary = str_or_none(process.get("binary"))
    arguments = str_or_none(process.get("arguments"))
    if binary:
        out[f"{prefix}.executable"] = binary
        out[f"{prefix}.name"] = binary.rpartition("/")[2]
        out[f"{prefix}.command_line"] = f"{binary} {arguments}" if arguments else binary
        out[f"{prefix}.args"] = [binary, *split_arguments(arguments)] if arguments else [binary]
    _put(out, f"{prefix}.pid", int_or_none(process.get("pid")))
    _put(out, f"{prefix}.working_directory", str_or_none(process.get("cwd")))
    _put(out, f"{prefix}.entity_id", str_or_none(process.get("exec_id")))


def _map_identity(process: dict[str, Any], out: Fields) -> None:
    """User, pod and container of the process that caused the event."""
    uid = int_or_none(process.get("uid"))
    if uid is not None:
        out["user.id"] = str(uid)
    user = process.get("user")
    if isinstance(user, dict):
        _put(out, "user.name", str_or_none(user.get("name")))
    pod = process.get("pod")
    container: Any = None
    if isinstance(pod, dict):
        _put(out, "kubernetes.namespace", str_or_none(pod.get("namespace")))
        _put(out, "kubernetes.pod.name", str_or_none(pod.get("name")))
        _copy_strings(pod.get("pod_labels"), "kubernetes.labels", out)
        _copy_strings(pod.get("pod_annotations"), "kubernetes.annotations", out)
        container = pod.get("container")
    if isinstance(container, dict):
        container_id = str_or_none(container.get("id"))
        if container_id:
            out["container.id"] = container_id.rpartition(_RUNTIME_SCHEME)[2]
        _put(out, "container.name", str_or_none(container.get("name")))
        image = container.get("image")
        if isinstance(image, dict):
            _put(out, "container.image.name", str_or_none(image.get("name")))
    else:
        # Outside a known pod Tetragon still reports the (shortened) container id.
        _put(out, "container.id", str_or_none(process.get("docker")))


def _classify(kind: str, inner: dict[str, Any], out: Fields) -> tuple[list[str], list[str]]:
    """ECS category/type; also maps the network and file facts the event carries."""
    fixed = _FIXED_KINDS.get(kind)
    if kind in _OLD_NETWORK:
        _map_endpoints(
            inner.get("source_ip"),
            inner.get("source_port"),
            inner.get("destination_ip"),
            inner.get("destination_port"),
            out,
        )
        _map_transport(inner.get("protocol"), out)
    elif kind == "process_listen":
        _map_endpoints(None, None, inner.get("ip"), inner.get("port"), out)
        _map_transport(inner.get("protocol"), out)
    elif kind == "process_loader":
        _put(out, "file.path", str_or_none(inner.get("path")))
    if fixed is not None:
        return list(fixed[0]), list(fixed[1])
    if kind == "rate_limit_info":
        return ["host"], ["info"]

    function = str_or_none(inner.get("function_name")) or ""
    socket, path = _scan_args(inner.get("args"))
    if socket is None:
        # Return probes such as inet_csk_accept report the socket as their return value.
        returned = inner.get("return")
        if isinstance(returned, dict) and isinstance(returned.get("sock_arg"), dict):
            socket = returned["sock_arg"]
    if socket is not None:
        _map_socket(socket, function, out)
        if "connect" in function or "accept" in function:
            return ["network"], ["connection", "start"]
        if "close" in function:
            return ["network"], ["connection", "end"]
        return ["network"], ["info"]
    if path is not None:
        # Old releases drop the leading slash of d_path results; the kernel path is absolute.
        out["file.path"] = path if path[0] == "/" else f"/{path}"
        return ["file"], [_file_verb(function)]
    return ["process"], ["info"]


def _scan_args(args: Any) -> tuple[dict[str, Any] | None, str | None]:
    """The first socket argument and the first file path among a hook's arguments."""
    socket: dict[str, Any] | None = None
    path: str | None = None
    if not isinstance(args, list):
        return None, None
    for arg in args:
        if not isinstance(arg, dict):
            continue
        if socket is None:
            for name in _SOCKET_ARGS:
                value = arg.get(name)
                if isinstance(value, dict):
                    socket = value
                    break
            else:
                address = arg.get("sockaddr_arg")
                if isinstance(address, dict):
                    socket = {
                        "family": address.get("family"),
                        "daddr": address.get("addr"),
                        "dport": address.get("port"),
                    }
        if path is None:
            for name in _PATH_ARGS:
                value = arg.get(name)
                if isinstance(value, dict):
                    path = str_or_none(value.get("path"))
                    if path:
                        break
    return socket, path


def _map_socket(socket: dict[str, Any], function: str, out: Fields) -> None:
    local = (socket.get("saddr"), socket.get("sport"))
    remote = (socket.get("daddr"), socket.get("dport"))
    # On an accepted socket the local side is the server: the peer initiated the connection.
    if "accept" in function:
        local, remote = remote, local
    _map_endpoints(local[0], local[1], remote[0], remote[1], out)
    _map_transport(socket.get("protocol", socket.get("proto")), out)
    family = socket.get("family")
    if isinstance(family, str) and family in _FAMILIES:
        out["network.type"] = _FAMILIES[family]


def _map_endpoints(
    source_ip: Any, source_port: Any, destination_ip: Any, destination_port: Any, out: Fields
) -> None:
    _put(out, "source.ip", str_or_none(source_ip))
    _put(out, "source.port", port_or_none(source_port))
    _put(out, "destination.ip", str_or_none(destination_ip))
    _put(out, "destination.port", port_or_none(destination_port))


def _map_transport(protocol: Any, out: Fields) -> None:
    if isinstance(protocol, str):
        transport = _TRANSPORTS.get(protocol)
    elif type(protocol) is int:
        transport = _PROTOCOL_NUMBERS.get(protocol)
    else:
        return
    if transport:
        out["network.transport"] = transport


def _file_verb(function: str) -> str:
    for needle, verb in _FILE_VERBS:
        if needle in function:
            return verb
    return "access"


def split_arguments(text: str) -> list[str]:
    """Split Tetragon's ``arguments`` string back into arguments.

    Tetragon joins arguments with spaces and wraps an argument holding a space in double quotes,
    without escaping; this undoes that in one pass (ambiguous input splits at spaces).
    """
    args: list[str] = []
    i, n = 0, len(text)
    closers_left = True  # once a search for '" ' fails, later ones would fail too
    while i < n:
        if text[i] == " ":
            i += 1
            continue
        if text[i] == '"':
            end = text.find('" ', i + 1) if closers_left else -1
            if end < 0:
                closers_left = False
                end = n - 1 if n - 1 > i and text[-1] == '"' else -1
            if end > i:
                args.append(text[i + 1 : end])
                i = end + 1
                continue
        end = text.find(" ", i)
        if end < 0:
            end = n
        args.append(text[i:end])
        i = end
    return args


def _copy_strings(mapping: Any, prefix: str, out: Fields) -> None:
    if isinstance(mapping, dict):
        for key, value in mapping.items():
            if isinstance(value, str):
                out[f"{prefix}.{key}"] = value


def _put(out: Fields, name: str, value: Any) -> None:
    if value is not None:
        out[name] = value
