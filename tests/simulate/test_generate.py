"""The generator: determinism, clean normalization in every source's format, complete labels."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import orjson
import pytest

from keelwatch.parsers.registry import recognise
from keelwatch.pipeline.normalize import normalize
from keelwatch.simulate.background import Background
from keelwatch.simulate.cluster import build_cluster
from keelwatch.simulate.generate import Options, Simulation, simulate
from keelwatch.simulate.records import SOURCES
from keelwatch.simulate.scenarios import LAYERS, catalogue
from keelwatch.simulate.writers import FILE_NAMES, line, write_files

SMALL = Options(seed=7, duration_seconds=180, rate=25, nodes=3, namespaces=3, workloads=8, users=5)
TECHNIQUE = re.compile(r"T\d{4}(\.\d{3})?")
DATASETS = {
    "k8s-audit": "kubernetes.audit",
    "falco": "falco.alerts",
    "tetragon": "tetragon.events",
    "hubble": "hubble.flows",
    "container": "kubernetes.container_logs",
}


@pytest.fixture(scope="module")
def run() -> Simulation:
    return simulate(SMALL)


def test_same_seed_gives_byte_identical_files_and_another_seed_does_not(tmp_path: Path) -> None:
    first = write_files(simulate(SMALL), tmp_path / "a")
    second = write_files(simulate(SMALL), tmp_path / "b")
    other = write_files(simulate(replace(SMALL, seed=8)), tmp_path / "c")
    assert set(first) == {*SOURCES, "labels"}
    for name, path in first.items():
        assert path.read_bytes() == second[name].read_bytes(), name
    assert first["k8s-audit"].read_bytes() != other["k8s-audit"].read_bytes()
    assert {path.name for path in first.values()} == {*FILE_NAMES.values(), "labels.json"}


def test_every_record_normalizes_cleanly_with_its_parser_and_is_recognised(run: Simulation) -> None:
    for source, records in run.by_source().items():
        assert records, f"no {source} records"
        batch = normalize([r.record for r in records], source, records[0].time)
        assert batch.dead_letters == [] and batch.warnings == [], source
        assert len(batch.events) == len(records)
        assert {event["event.dataset"] for event in batch.events} == {DATASETS[source]}
        # The shapes are the tools' own: "auto" picks the same parser for every record.
        chosen = Counter(getattr(recognise(r.record), "name", None) for r in records)
        assert chosen == Counter({source: len(records)}), source


def test_the_rate_and_duration_set_the_total_and_records_are_in_time_order(run: Simulation) -> None:
    assert len(run.records) == round(SMALL.rate * SMALL.duration_seconds)
    times = [record.time for record in run.records]
    assert times == sorted(times)
    assert times[0] >= SMALL.start
    assert run.labels["counts"]["total"] == len(run.records)


def test_labels_cover_every_injected_record_with_its_event_id(run: Simulation) -> None:
    labelled = [r for s in run.labels["scenarios"] for r in s["records"]]
    # What is not background is exactly what the labels list: rebuild the background alone.
    cluster = build_cluster(
        SMALL.seed,
        nodes=SMALL.nodes,
        namespaces=SMALL.namespaces,
        workloads=SMALL.workloads,
        users=SMALL.users,
    )
    background = Background(cluster, SMALL.seed).records(
        SMALL.start, SMALL.duration_seconds, len(run.records) - len(labelled)
    )
    injected = Counter(line(r) for r in run.records) - Counter(line(r) for r in background)
    assert sum(injected.values()) == len(labelled)
    ids = {}
    for record in run.records:
        if line(record) in injected:
            event = normalize([record.record], record.source, record.time).events[0]
            ids[event["event.id"]] = record.source
    assert {r["event_id"]: r["source"] for r in labelled} == ids
    for scenario in run.labels["scenarios"]:
        assert scenario["start"] == scenario["records"][0]["time"]
        assert all(r["entity"] for r in scenario["records"]), scenario["name"]


def test_catalogue_has_at_least_15_attacks_with_techniques_and_benign_lookalikes(
    run: Simulation,
) -> None:
    scenarios = catalogue().values()
    attacks = [s for s in scenarios if not s.benign]
    assert len(attacks) >= 15
    assert len([s for s in scenarios if s.benign]) >= 4
    for item in scenarios:
        assert item.techniques and all(TECHNIQUE.fullmatch(t) for t in item.techniques), item.name
        assert item.description, item.name
    for label in run.labels["scenarios"]:  # the declared layers are the ones actually produced
        produced = {LAYERS[r["source"]] for r in label["records"]}
        assert produced == set(label["layers"]), label["name"]


def test_scenario_selection_and_fixed_start_offsets() -> None:
    quiet = simulate(replace(SMALL, scenarios="none"))
    assert quiet.labels["scenarios"] == []
    assert len(quiet.records) == round(SMALL.rate * SMALL.duration_seconds)
    chosen = simulate(
        replace(
            SMALL,
            scenarios="port-forward,exec-shell-egress",
            scenario_at=(("exec-shell-egress", 42.0),),
        )
    )
    names = [s["name"] for s in chosen.labels["scenarios"]]
    assert names == ["port-forward", "exec-shell-egress"]
    exec_start = chosen.labels["scenarios"][1]["start"]
    assert exec_start.startswith(
        (SMALL.start + timedelta(seconds=42)).strftime("%Y-%m-%dT%H:%M:%S")
    )


def test_audit_levels_follow_the_policy(run: Simulation) -> None:
    for record in run.by_source()["k8s-audit"]:
        event = record.record
        resource = event.get("objectRef", {}).get("resource")
        subresource = event.get("objectRef", {}).get("subresource")
        if resource == "secrets":
            assert event["level"] == "Metadata" and "requestObject" not in event
        if resource in ("clusterrolebindings", "rolebindings") or subresource in (
            "exec",
            "portforward",
        ):
            assert event["level"] == "RequestResponse"
        if event["level"] == "Metadata":
            assert "requestObject" not in event and "responseObject" not in event


def test_labels_file_is_json_with_the_run_parameters(tmp_path: Path, run: Simulation) -> None:
    labels = orjson.loads(write_files(run, tmp_path)["labels"].read_bytes())
    assert labels["seed"] == SMALL.seed and labels["format"] == 1
    assert {s["kind"] for s in labels["scenarios"]} == {"attack", "benign"}
