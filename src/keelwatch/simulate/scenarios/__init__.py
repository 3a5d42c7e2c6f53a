"""The scenario catalogue: attacks and benign look-alikes, each a small function over a Stage.

A scenario module defines functions decorated with ``@scenario(...)``; the registry loads the
modules on first use and refuses duplicate names. A scenario builds its records through the
``Stage`` it gets: times are offsets in seconds from the scenario's start.
"""

from __future__ import annotations

import importlib
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cache
from typing import Any

from keelwatch.errors import ConfigError
from keelwatch.simulate.cluster import Cluster, Human, Ids, Node, Pod, Workload, new_pod
from keelwatch.simulate.records import (
    AUDIT,
    FALCO,
    HUBBLE,
    TETRAGON,
    FalcoRule,
    SimRecord,
    audit_event,
    falco_alert,
)
from keelwatch.simulate.runtime_records import hubble_flow, tetragon_connect, tetragon_exec

_MODULES = ("api", "access", "runtime", "benign")
LAYERS = {AUDIT: "audit", FALCO: "runtime", TETRAGON: "runtime", HUBBLE: "network"}


class Stage:
    """What a scenario builds with: the cluster, its own random stream, a clock, the records."""

    def __init__(self, cluster: Cluster, seed: int, name: str, at: datetime) -> None:
        self.cluster = cluster
        self.rng = random.Random(f"{seed}:scenario:{name}")  # noqa: S311 - reproducible
        self.ids = Ids(self.rng)
        self.at = at
        self.records: list[SimRecord] = []

    def t(self, seconds: float) -> datetime:
        return self.at + timedelta(seconds=seconds)

    # choices ------------------------------------------------------------------------------

    def app(self, *roles: str) -> Workload:
        apps = [
            w for w in self.cluster.apps() if not roles or w.role in roles
        ] or self.cluster.apps()
        return apps[self.rng.randrange(len(apps))]

    def pod(self, *roles: str) -> Pod:
        pods = self.app(*roles).pods
        return pods[self.rng.randrange(len(pods))]

    def developer(self) -> Human:
        people = self.cluster.developers()
        return people[self.rng.randrange(len(people))]

    def admin(self) -> Human:
        people = self.cluster.admins()
        return people[self.rng.randrange(len(people))]

    def node(self) -> Node:
        return self.cluster.workers[self.rng.randrange(len(self.cluster.workers))]

    def public_ip(self) -> str:
        """An address outside every private range (TEST-NET-3, RFC 5737)."""
        return f"203.0.113.{self.rng.randrange(2, 254)}"

    def new_pod(self, workload: Workload, node: Node | None = None, name: str | None = None) -> Pod:
        return new_pod(self.ids, workload, node or self.node(), name=name)

    def port(self) -> int:
        return self.ids.ephemeral_port()

    # records ------------------------------------------------------------------------------

    def audit(self, seconds: float, **fields: Any) -> dict[str, Any]:
        when = self.t(seconds)
        record = audit_event(self.ids, when, **fields)
        self.records.append(SimRecord(when, AUDIT, record))
        return record

    def falco(
        self, seconds: float, rule: FalcoRule, pod: Pod, fields: dict[str, Any]
    ) -> dict[str, Any]:
        when = self.t(seconds)
        record = falco_alert(self.ids, when, rule, fields, pod.node.name)
        self.records.append(SimRecord(when, FALCO, record))
        return record

    def exec(self, seconds: float, pod: Pod, **fields: Any) -> dict[str, Any]:
        when = self.t(seconds)
        record = tetragon_exec(self.ids, pod, when, **fields)
        self.records.append(SimRecord(when, TETRAGON, record))
        return record

    def connect(self, seconds: float, started: dict[str, Any], **fields: Any) -> dict[str, Any]:
        when = self.t(seconds)
        record = tetragon_connect(self.ids, started, when, **fields)
        self.records.append(SimRecord(when, TETRAGON, record))
        return record

    def flow(self, seconds: float, **fields: Any) -> dict[str, Any]:
        when = self.t(seconds)
        record = hubble_flow(self.ids, when, **fields)
        self.records.append(SimRecord(when, HUBBLE, record))
        return record


Build = Callable[[Stage], None]


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    title: str
    techniques: tuple[str, ...]
    layers: tuple[str, ...]  # audit, runtime, network
    benign: bool
    description: str
    build: Build = field(compare=False)

    def run(self, cluster: Cluster, seed: int, at: datetime) -> list[SimRecord]:
        stage = Stage(cluster, seed, self.name, at)
        self.build(stage)
        return sorted(stage.records, key=lambda record: record.time)


_DECLARED: list[Scenario] = []


def scenario(
    name: str,
    title: str,
    techniques: tuple[str, ...],
    layers: tuple[str, ...],
    *,
    benign: bool = False,
) -> Callable[[Build], Build]:
    def register(build: Build) -> Build:
        _DECLARED.append(
            Scenario(name, title, techniques, layers, benign, (build.__doc__ or "").strip(), build)
        )
        return build

    return register


@cache
def catalogue() -> dict[str, Scenario]:
    """Every scenario by name, in declaration order (attack modules first)."""
    for module in _MODULES:
        importlib.import_module(f"keelwatch.simulate.scenarios.{module}")
    found: dict[str, Scenario] = {}
    for item in _DECLARED:
        if item.name in found:
            raise ConfigError(f"two scenarios are named {item.name!r}")
        found[item.name] = item
    return found


def select(spec: str) -> list[Scenario]:
    """``all``, ``none``, ``attacks``, ``benign`` or a comma-separated list of names."""
    known = catalogue()
    chosen: list[Scenario] = []
    for word in (part.strip() for part in spec.split(",")):
        if not word or word == "none":
            continue
        if word == "all":
            group = list(known.values())
        elif word == "attacks":
            group = [s for s in known.values() if not s.benign]
        elif word == "benign":
            group = [s for s in known.values() if s.benign]
        elif word in known:
            group = [known[word]]
        else:
            raise ConfigError(
                f"unknown scenario {word!r}; known: all, none, attacks, benign, {', '.join(known)}"
            )
        chosen.extend(s for s in group if s not in chosen)
    return chosen
