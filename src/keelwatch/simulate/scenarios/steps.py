"""Steps several scenarios share, each leaving the records every sensor would make of it."""

from __future__ import annotations

from keelwatch.simulate.cluster import Pod
from keelwatch.simulate.records import TERMINAL_SHELL, falco_process_fields
from keelwatch.simulate.runtime_records import WORLD
from keelwatch.simulate.scenarios import Stage

TTY_DEVICE = 34816  # /dev/pts/0 as Falco prints proc.tty


def terminal_shell(stage: Stage, seconds: float, pod: Pod, shell: str) -> None:
    """``shell`` (a path) started by runc with a TTY: Falco's alert and Tetragon's exec."""
    fields = falco_process_fields(
        pod,
        command=shell.rpartition("/")[2],
        exe=shell,
        parent="runc",
        pid=stage.rng.randrange(100, 9000),
    )
    fields["proc.tty"] = TTY_DEVICE
    stage.falco(seconds, TERMINAL_SHELL, pod, fields)
    stage.exec(seconds, pod, binary=shell, arguments="", parent_binary="/usr/bin/runc")


def egress(
    stage: Stage, seconds: float, pod: Pod, ip: str, port: int, names: list[str] | None = None
) -> None:
    """A connection from ``pod`` to an address outside the cluster, as Hubble sees it."""
    stage.flow(
        seconds,
        source=pod,
        destination=WORLD,
        destination_ip=ip,
        destination_port=port,
        destination_names=names,
    )
