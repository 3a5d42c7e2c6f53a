"""kube-bench: shapes, severity and id rules, dead letters, totals and the corpus."""

from __future__ import annotations

import contextlib
import copy
from collections import Counter
from functools import partial
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from keelwatch.errors import RecordError
from keelwatch.parsers import kube_bench
from keelwatch.parsers.base import Batch, ParseContext, Parser
from keelwatch.parsers.registry import recognise
from keelwatch.pipeline.decode import decode_body

from .helpers import RECEIVED_AT, json_values, parse_records, reasons

PARSER = Parser(
    kube_bench.NAME,
    kube_bench.DATASET,
    kube_bench.DESCRIPTION,
    kube_bench.matches,
    kube_bench.parse,
)
run = partial(parse_records, PARSER)
GOLDEN = Path(__file__).parent / "golden" / "kube-bench"


def result(
    number: str = "1.1.1", status: str = "PASS", scored: Any = True, **extra: Any
) -> dict[str, Any]:
    return {
        "test_number": number,
        "test_desc": f"check {number}",
        "audit": "stat -c %a /etc/kubernetes/manifests/kube-apiserver.yaml",
        "remediation": "chmod 600 the file\n",
        "status": status,
        "scored": scored,
        **extra,
    }


def control(*results: Any, version: str = "cis-1.9", node_type: str = "master") -> dict[str, Any]:
    return {
        "id": "1",
        "version": version,
        "text": "Control Plane Security Configuration",
        "node_type": node_type,
        "tests": [
            {"section": "1.1", "desc": "Files", "pass": 1, "fail": 0, "results": list(results)}
        ],
    }


def report(*controls: Any, **extra: Any) -> dict[str, Any]:
    return {"Controls": list(controls), "Totals": {"total_pass": 0}, **extra}


# --- shapes ----------------------------------------------------------------------------------


@pytest.mark.parametrize("record", [report(control(result())), control(result()), {"Controls": []}])
def test_matches_kube_bench_shapes(record: Any) -> None:
    assert kube_bench.matches(record)
    parser = recognise(record)
    assert parser is not None and parser.name == "kube-bench"


@pytest.mark.parametrize(
    "record",
    [
        {"Totals": {"total_pass": 1}},
        {"tests": [], "id": "1"},  # no node_type
        {"summaryDetails": {"controls": {}}},
        {"controls": {"C-0001": {}}, "frameworks": []},
        {"apiVersion": "aquasecurity.github.io/v1alpha1", "kind": "ConfigAuditReport"},
        {"SchemaVersion": 2, "Results": []},
        {"eventVersion": "1.09", "eventSource": "ec2.amazonaws.com", "eventName": "x"},
        "[INFO] 1 Control Plane Security Configuration",
        [control(result())],
        None,
    ],
)
def test_does_not_match_neighbours(record: Any) -> None:
    assert not kube_bench.matches(record)


# --- rules -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "scored", "finding", "severity", "level"),
    [
        ("FAIL", True, "fail", "high", 3),
        ("FAIL", False, "fail", "medium", 2),
        ("FAIL", "true", "fail", "medium", 2),  # only a real boolean counts as scored
        ("WARN", True, "warn", "low", 1),
        ("PASS", True, "pass", "info", 0),
        ("INFO", False, "info", "info", 0),
        ("pass", True, "pass", "info", 0),
    ],
)
def test_status_and_severity(
    status: str, scored: Any, finding: str, severity: str, level: int
) -> None:
    (out,) = run(report(control(result(status=status, scored=scored)))).findings
    assert (out["finding.status"], out["finding.severity"], out["event.severity"]) == (
        finding,
        severity,
        level,
    )
    assert out["event.kind"] == "state" and out["resource.kind"] == "Node"


def test_unknown_status_is_kept_as_info_with_a_warning() -> None:
    batch = run(report(control(result(status="SKIPPED"))))
    assert batch.findings[0]["finding.status"] == "info"
    assert batch.warnings and "unknown status" in batch.warnings[0]


@pytest.mark.parametrize(
    ("version", "ruleset"),
    [
        ("cis-1.9", "CIS Kubernetes Benchmark cis-1.9"),
        ("gke-1.6.0", "CIS GKE Benchmark gke-1.6.0"),
        ("eks-1.5.0", "CIS EKS Benchmark eks-1.5.0"),
        ("k3s-cis-1.8", "CIS K3s Benchmark k3s-cis-1.8"),
        ("eks-stig-kubernetes-v1r6", "DISA STIG eks-stig-kubernetes-v1r6"),
        ("1.5", "CIS Kubernetes Benchmark 1.5"),
        ("", "CIS Kubernetes Benchmark"),
        ("custom-2", "kube-bench custom-2"),
    ],
)
def test_ruleset(version: str, ruleset: str) -> None:
    (out,) = run(report(control(result(), version=version))).findings
    assert out["rule.ruleset"] == ruleset


def test_ids_are_stable_across_scans_and_shared_by_nodes_without_a_host() -> None:
    first = run(report(control(result("4.2.1", "FAIL"), node_type="node"))).findings[0]
    rescan = run(
        report(control(result("4.2.1", "PASS", actual_value="x"), node_type="node"))
    ).findings[0]
    other_type = run(report(control(result("4.2.1", "FAIL"), node_type="master"))).findings[0]
    with_host = run(
        report(control(result("4.2.1", "FAIL"), node_type="node"), **{"host.name": "n1"})
    )
    other_host = run(
        report(control(result("4.2.1", "FAIL"), node_type="node"), **{"host.name": "n2"})
    )
    assert first["event.id"] == rescan["event.id"]
    assert first["event.id"] != other_type["event.id"]
    host_finding = with_host.findings[0]
    assert host_finding["host.name"] == host_finding["resource.name"] == "n1"
    assert (
        len({first["event.id"], host_finding["event.id"], other_host.findings[0]["event.id"]}) == 3
    )


def test_native_fields_keep_kube_bench_names_per_level() -> None:
    (out,) = run(report(control(result(actual_value="permissions=644")))).findings
    assert out["kube_bench.control.node_type"] == "master"
    assert out["kube_bench.section.section"] == "1.1"
    assert out["kube_bench.result.actual_value"] == "permissions=644"
    assert "kube_bench.control.tests" not in out and "kube_bench.section.results" not in out
    assert out["rule.remediation"] == "chmod 600 the file"


def test_findings_match_the_reports_own_totals() -> None:
    document = orjson.loads((GOLDEN / "controls_and_totals.input.json").read_bytes())
    batch = run(document)
    counted = Counter(f["finding.status"] for f in batch.findings)
    totals = document["Totals"]
    assert {s: counted[s] for s in ("pass", "fail", "warn", "info")} == {
        s: totals[f"total_{s}"] for s in ("pass", "fail", "warn", "info")
    }


# --- dead letters ----------------------------------------------------------------------------


def test_bad_parts_are_dead_lettered_and_good_results_kept() -> None:
    deep: dict[str, Any] = {}
    node = deep
    for _ in range(60):
        node["x"] = {}
        node = node["x"]
    bad_control = control(
        result("1.1.1"),
        "not a result",
        {"status": "PASS"},
        result("1.1.2", actual_value=deep),
        result(17),  # type: ignore[arg-type]
        result("1.1.3"),
    )
    bad_control["tests"].append({"section": "1.2", "results": "none"})
    bad_control["tests"].append(["not", "a", "section"])
    batch = run(report(bad_control, "not a control", {"id": "2", "tests": None}))
    assert [f["rule.id"] for f in batch.findings] == ["1.1.1", "1.1.3"]
    assert len(batch.dead_letters) == 8
    assert all(reasons(batch))


@pytest.mark.parametrize(
    "record",
    [
        "== Summary total ==",
        7,
        None,
        {"Controls": "x"},
        {"Controls": []},
        {"node_type": "node", "id": "4"},
        control(),  # no results at all
    ],
)
def test_unusable_records_are_dead_lettered_with_a_reason(record: Any) -> None:
    batch = run(record)
    assert not batch.findings
    assert len(batch.dead_letters) == 1 and reasons(batch)[0]


_json = json_values()


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    result_key=st.sampled_from(sorted(result())),
    control_key=st.sampled_from(sorted(control())),
    value=_json,
)
def test_any_field_of_any_type_never_crashes(result_key: str, control_key: str, value: Any) -> None:
    """The parser itself raises only RecordError, whatever type a field holds."""
    broken_control = control(result())
    broken_control[control_key] = value
    broken_section = control(result())
    broken_section["tests"][0]["desc"] = value
    for record in (
        report(control(result(**{result_key: value}))),
        report(broken_control),
        broken_section,
        report(Totals=value),
        {"Controls": [copy.deepcopy(broken_control), value]},
    ):
        ctx = ParseContext(kube_bench.NAME, RECEIVED_AT, Batch())
        with contextlib.suppress(RecordError):
            kube_bench.parse(record, ctx)


# --- corpus ----------------------------------------------------------------------------------


def _results_in(records: list[Any]) -> Counter[str]:
    """Statuses of the results in a kube-bench file, counted without the parser."""
    counted: Counter[str] = Counter()
    for record in records:
        controls = record.get("Controls", [record])
        for ctrl in controls:
            for section in ctrl["tests"]:
                for item in section["results"] or []:
                    counted[item["status"].lower()] += 1
    return counted


@pytest.mark.corpus
@pytest.mark.parametrize(
    "name",
    [
        "result.json",
        "result_no_totals.json",
        "controlsCollection.json",
        "passedControlsCollection.json",
    ],
)
def test_corpus_every_result_is_a_finding(corpus: Path, name: str) -> None:
    records = decode_body((corpus / "kspm/kube-bench" / name).read_bytes()).records
    batch = run(*records)
    assert not batch.dead_letters and not batch.warnings
    assert Counter(f["finding.status"] for f in batch.findings) == _results_in(records)
    assert len({f["event.id"] for f in batch.findings}) == len(batch.findings)


@pytest.mark.corpus
def test_corpus_totals_describe_the_untrimmed_run(corpus: Path) -> None:
    """result.json's Totals (49/12/14) count the full upstream run; the fixture keeps 3 results.

    The per-control totals agree with the document's Totals, so the parser's findings are the
    results the file holds, not the totals it claims.
    """
    document = orjson.loads((corpus / "kspm/kube-bench/result.json").read_bytes())
    per_control: Counter[str] = Counter()
    for ctrl in document["Controls"]:
        for status in ("pass", "fail", "warn", "info"):
            per_control[status] += ctrl[f"total_{status}"]
    assert {s: document["Totals"][f"total_{s}"] for s in per_control} == dict(per_control)
    assert len(run(document).findings) == sum(_results_in([document]).values()) == 3


@pytest.mark.corpus
def test_corpus_text_runs_are_not_json_reports(corpus: Path) -> None:
    lines = decode_body((corpus / "kspm/kube-bench/Expected_output.data").read_bytes()).records
    assert lines and not any(kube_bench.matches(line) for line in lines)
    batch = run(*lines[:5])
    assert len(batch.dead_letters) == 5 and not batch.findings
