"""One simulation run: background plus injected scenarios, in time order, with ground truth.

Every labelled record carries the ``event.id`` Keelwatch gives it, found by normalizing the
record with its own parser (audit: the auditID; Falco and Hubble: their uuid; Tetragon: a hash
of the record), and the alert entity (``Entity.of``) of the normalized event.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from keelwatch.errors import ConfigError
from keelwatch.model.alert import Entity
from keelwatch.model.fields import isoformat
from keelwatch.pipeline.normalize import normalize
from keelwatch.simulate.background import Background
from keelwatch.simulate.cluster import build_cluster
from keelwatch.simulate.records import SOURCES, SimRecord
from keelwatch.simulate.scenarios import Scenario, select

DEFAULT_START = datetime(2025, 6, 2, 9, 0, tzinfo=UTC)
LABELS_FORMAT = 1
# Scenarios start within this share of the run, so that they end before it does.
EARLIEST, LATEST = 0.05, 0.8


@dataclass(frozen=True, slots=True)
class Options:
    seed: int = 1
    nodes: int = 3
    namespaces: int = 4
    workloads: int = 12
    users: int = 6
    duration_seconds: float = 600.0
    rate: float = 50.0  # events per second of simulated time, all sources together
    start: datetime = DEFAULT_START
    scenarios: str = "all"
    scenario_at: tuple[tuple[str, float], ...] = ()  # (name, offset seconds)


@dataclass(slots=True)
class Simulation:
    options: Options
    records: list[SimRecord]
    labels: dict[str, Any] = field(default_factory=dict)

    def by_source(self) -> dict[str, list[SimRecord]]:
        grouped: dict[str, list[SimRecord]] = {source: [] for source in SOURCES}
        for record in self.records:
            grouped[record.source].append(record)
        return grouped


def simulate(options: Options) -> Simulation:
    if options.duration_seconds <= 0 or options.rate <= 0:
        raise ConfigError("duration and rate must be positive")
    cluster = build_cluster(
        options.seed,
        nodes=options.nodes,
        namespaces=options.namespaces,
        workloads=options.workloads,
        users=options.users,
    )
    chosen = select(options.scenarios)
    starts = schedule(chosen, options)
    injected: list[tuple[Scenario, list[SimRecord]]] = [
        (
            item,
            item.run(cluster, options.seed, options.start + timedelta(seconds=starts[item.name])),
        )
        for item in chosen
    ]
    wanted = round(options.rate * options.duration_seconds)
    background_count = max(0, wanted - sum(len(records) for _, records in injected))
    records = Background(cluster, options.seed).records(
        options.start, options.duration_seconds, background_count
    )
    for _, scenario_records in injected:
        records.extend(scenario_records)
    records.sort(key=lambda record: record.time)  # stable: ties keep generation order
    simulation = Simulation(options, records)
    simulation.labels = labels(options, cluster.name, cluster.namespaces, injected, records)
    return simulation


def schedule(chosen: list[Scenario], options: Options) -> dict[str, float]:
    """Start offsets (seconds): drawn from the seed, unless ``scenario_at`` names one."""
    rng = random.Random(f"{options.seed}:schedule")  # noqa: S311 - reproducible
    fixed = dict(options.scenario_at)
    known = {item.name for item in chosen}
    for name in fixed:
        if name not in known:
            raise ConfigError(
                f"--scenario-at names {name!r}, which is not among the chosen scenarios"
            )
    starts: dict[str, float] = {}
    for item in chosen:
        drawn = rng.uniform(EARLIEST, LATEST) * options.duration_seconds
        starts[item.name] = round(fixed.get(item.name, drawn), 3)
    return starts


def labels(
    options: Options,
    cluster_name: str,
    namespaces: list[str],
    injected: list[tuple[Scenario, list[SimRecord]]],
    records: list[SimRecord],
) -> dict[str, Any]:
    counts = {source: 0 for source in SOURCES}
    for record in records:
        counts[record.source] += 1
    end = options.start + timedelta(seconds=options.duration_seconds)
    return {
        "generator": "keelwatch simulate",
        "format": LABELS_FORMAT,
        "seed": options.seed,
        "start": isoformat(options.start),
        "end": isoformat(max([end, *(r.time for r in records)])),
        "duration_seconds": options.duration_seconds,
        "rate": options.rate,
        "cluster": {
            "name": cluster_name,
            "nodes": options.nodes,
            "namespaces": namespaces,
            "workloads": options.workloads,
            "users": options.users,
        },
        "counts": {**counts, "total": len(records)},
        "scenarios": [
            scenario_label(item, scenario_records) for item, scenario_records in injected
        ],
    }


def scenario_label(item: Scenario, records: list[SimRecord]) -> dict[str, Any]:
    return {
        "name": item.name,
        "title": item.title,
        "kind": "benign" if item.benign else "attack",
        "techniques": list(item.techniques),
        "layers": list(item.layers),
        "description": item.description,
        "start": isoformat(records[0].time) if records else None,
        "end": isoformat(records[-1].time) if records else None,
        "records": [record_label(record) for record in records],
    }


def record_label(record: SimRecord) -> dict[str, Any]:
    """The record's source, time, event id and alert entity, from its own parser's output."""
    batch = normalize([record.record], record.source, record.time)
    if batch.dead_letters or batch.warnings or len(batch.events) != 1:
        reasons = [letter.reason for letter in batch.dead_letters] + batch.warnings
        raise ConfigError(f"generated {record.source} record does not normalize cleanly: {reasons}")
    event = batch.events[0]
    entity = Entity.of(event)
    return {
        "source": record.source,
        "time": isoformat(record.time),
        "event_id": event["event.id"],
        "entity": {
            key: value
            for key, value in (
                ("cluster", entity.cluster),
                ("namespace", entity.namespace),
                ("pod", entity.pod),
                ("user", entity.user),
                ("node", entity.node),
            )
            if value
        },
    }
