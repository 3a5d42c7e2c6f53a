"""kubescape: shapes, severity bands, resources, ids, dead letters and the corpus."""

from __future__ import annotations

import contextlib
from collections import Counter
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from keelwatch.errors import RecordError
from keelwatch.parsers import kubescape
from keelwatch.parsers.base import Batch, ParseContext, Parser
from keelwatch.parsers.registry import recognise
from keelwatch.pipeline.decode import decode_body

from .helpers import RECEIVED_AT, json_values, parse_records, reasons

PARSER = Parser(
    kubescape.NAME, kubescape.DATASET, kubescape.DESCRIPTION, kubescape.matches, kubescape.parse
)
run = partial(parse_records, PARSER)
GOLDEN = Path(__file__).parent / "golden" / "kubescape"
REGOLIBRARY = "kspm/kubescape-regolibrary-tests"


def scan() -> dict[str, Any]:
    return orjson.loads((GOLDEN / "cluster_scan.input.json").read_bytes())  # type: ignore[no-any-return]


def summary_control(control_id: str, status: str, score_factor: Any) -> dict[str, Any]:
    return {
        "controlID": control_id,
        "name": f"control {control_id}",
        "status": status,
        "scoreFactor": score_factor,
    }


def response(**extra: Any) -> dict[str, Any]:
    return {
        "alertMessage": "pod: web-1 is privileged",
        "failedPaths": ["spec.containers[0].securityContext.privileged"],
        "packagename": "armo_builtins",
        "alertScore": 7,
        "alertObject": {
            "k8sApiObjects": [
                {
                    "apiVersion": "v1",
                    "kind": "Pod",
                    "metadata": {"name": "web-1", "namespace": "shop"},
                }
            ]
        },
        **extra,
    }


# --- shapes ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "record",
    [
        scan(),
        {"summaryDetails": {"controls": {}}},
        {"controls": {"C-0001": {}}, "frameworks": [], "status": "failed"},
        {"name": "NSA", "controlReports": []},
        response(),
    ],
    ids=["scan", "summary", "bare-summary", "v1-framework", "rule-response"],
)
def test_matches_kubescape_shapes(record: Any) -> None:
    assert kubescape.matches(record)
    parser = recognise(record)
    assert parser is not None and parser.name == "kubescape"


@pytest.mark.parametrize(
    "record",
    [
        {"results": [], "count": 0},
        {"controls": {"x": 1}},
        {"Controls": [], "Totals": {}},
        {"apiVersion": "aquasecurity.github.io/v1alpha1", "kind": "ClusterComplianceReport"},
        {"SchemaVersion": 2, "Results": []},
        {"alertMessage": "x"},
        {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {}},
        "C-0057 failed",
        [response()],
        None,
    ],
)
def test_does_not_match_neighbours(record: Any) -> None:
    assert not kubescape.matches(record)


# --- rules -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("score", "severity", "level"),
    [(10, "critical", 4), (9, "critical", 4), (8.5, "high", 3), (7, "high", 3), (6, "medium", 2),
     (4, "medium", 2), (3, "low", 1), (1, "low", 1), (0.5, "unknown", None),
     (None, "unknown", None), ("9", "unknown", None), (True, "unknown", None)],
)  # fmt: skip
def test_severity_bands(score: Any, severity: str, level: int | None) -> None:
    document = {
        "summaryDetails": {"controls": {"C-0001": summary_control("C-0001", "failed", score)}}
    }
    (out,) = run(document).findings
    assert out["finding.severity"] == severity
    assert out.get("event.severity") == level


@pytest.mark.parametrize(
    ("status", "finding"),
    [("failed", "fail"), ("passed", "pass"), ("skipped", "skip"), ("excluded", "skip"),
     ("irrelevant", "pass"), ("warning", "warn"), ("odd", "info"), (None, "info")],
)  # fmt: skip
def test_status(status: Any, finding: str) -> None:
    document = {"summaryDetails": {"controls": {"C-0001": summary_control("C-0001", status, 5)}}}
    assert run(document).findings[0]["finding.status"] == finding


@pytest.mark.parametrize(
    ("resource_id", "kind", "namespace", "name"),
    [
        ("apps/v1/shop/Deployment/web", "Deployment", "shop", "web"),
        ("/v1/shop/ConfigMap/settings", "ConfigMap", "shop", "settings"),
        ("rbac.authorization.k8s.io/v1//ClusterRole/admin", "ClusterRole", None, "admin"),
        ("path=1234/api=apps/v1//Deployment/nginx", "Deployment", None, "nginx"),
        ("odd-id", None, None, None),
    ],
)
def test_resource_from_the_result_id(
    resource_id: str, kind: str | None, namespace: str | None, name: str | None
) -> None:
    document = {
        "results": [
            {
                "resourceID": resource_id,
                "controls": [{"controlID": "C-0001", "status": {"status": "failed"}}],
            }
        ],
        "resources": [],
    }
    (out,) = run(document).findings
    assert (out.get("resource.kind"), out.get("resource.namespace"), out.get("resource.name")) == (
        kind,
        namespace,
        name,
    )


def test_scan_findings_take_resources_summary_and_cluster() -> None:
    batch = run(scan())
    by_rule = {f["rule.id"]: f for f in batch.findings}
    first = by_rule["C-0017"]
    assert first["resource.uid"] == "0a7c4e2b-51d8-4a6f-9c03-7e1b2d4f6a88"
    assert first["orchestrator.cluster.name"] == "payments-eu-1"
    assert first["kubescape.summary.scoreFactor"] == 3
    assert "kubescape.summary.resourceIDs" not in first
    assert first["@timestamp"] == datetime(2025, 4, 2, 7, 30, 12, 402918, tzinfo=UTC)
    assert reasons(batch) == ["Kubescape control result without a controlID"]


def test_ids_are_stable_across_scans_and_distinct_per_cluster() -> None:
    first = {f["rule.id"]: f["event.id"] for f in run(scan()).findings}
    later = scan()
    later["generationTime"] = "2025-05-01T00:00:00Z"
    later["reportGUID"] = "another-report"
    assert {f["rule.id"]: f["event.id"] for f in run(later).findings} == first
    other = scan()
    other["clusterName"] = "payments-us-1"
    assert not set(first.values()) & {f["event.id"] for f in run(other).findings}


def test_rule_responses_are_failures_per_named_object() -> None:
    two = response(alertObject={"k8sApiObjects": [
        {"kind": "Role", "metadata": {"name": "a", "namespace": "x"}},
        {"kind": "RoleBinding", "metadata": {"name": "b", "namespace": "x"}},
    ]})  # fmt: skip
    subject = response(alertObject={"externalObjects": {"kind": "User", "name": "jane"}})
    batch = run(response(), two, subject, response(alertObject={}))
    assert [f.get("resource.kind") for f in batch.findings] == [
        "Pod",
        "Role",
        "RoleBinding",
        "User",
        None,
    ]
    assert {f["finding.status"] for f in batch.findings} == {"fail"}
    assert batch.findings[0]["finding.severity"] == "high"  # alertScore 7
    assert len({f["event.id"] for f in batch.findings}) == 5


def test_v1_framework_report_names_the_control() -> None:
    (out,) = run(orjson.loads((GOLDEN / "framework_report_v1.input.json").read_bytes())[0]).findings
    assert (out["rule.id"], out["rule.ruleset"], out["finding.severity"]) == (
        "C-0057",
        "Kubescape NSA",
        "high",
    )


# --- dead letters ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "record",
    [
        "C-0057 failed",
        3,
        None,
        {"results": [], "resources": []},
        {"summaryDetails": {"controls": {}}},
        {"results": "x", "summaryDetails": "y"},
        {"name": "NSA", "controlReports": [{"controlID": "C-1", "ruleReports": []}]},
    ],
)
def test_unusable_records_are_dead_lettered_with_a_reason(record: Any) -> None:
    batch = run(record)
    assert not batch.findings
    assert len(batch.dead_letters) == 1 and reasons(batch)[0]


def test_bad_parts_leave_good_neighbours() -> None:
    document = scan()
    document["results"] += [
        "not a result",
        {"resourceID": 5, "controls": []},
        {"resourceID": "a/b/c/d/e", "controls": "x"},
    ]
    deep: dict[str, Any] = {}
    node = deep
    for _ in range(60):
        node["x"] = {}
        node = node["x"]
    document["results"].append(
        {
            "resourceID": "apps/v1/a/Deployment/deep",
            "controls": [{"controlID": "C-9", "rules": deep}],
        }
    )
    document["results"].append(
        {
            "resourceID": "apps/v1/a/Deployment/mixed",
            "controls": [{"controlID": "C-8", "rules": deep}, {"controlID": "C-7"}],
        }
    )
    batch = run(document)
    assert len(batch.findings) == 5  # four from the scan, C-7 beside its too-deep sibling
    assert len(batch.dead_letters) == 6
    assert any("nesting deeper" in reason for reason in reasons(batch))


_json = json_values()


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    top=st.sampled_from(
        ["results", "resources", "summaryDetails", "clusterName", "generationTime"]
    ),
    control_key=st.sampled_from(["controlID", "name", "status", "rules"]),
    response_key=st.sampled_from(sorted(response())),
    value=_json,
)
def test_any_field_of_any_type_never_crashes(
    top: str, control_key: str, response_key: str, value: Any
) -> None:
    """The parser itself raises only RecordError, whatever type a field holds."""
    broken_top = scan()
    broken_top[top] = value
    broken_control = scan()
    broken_control["results"][0]["controls"][0][control_key] = value
    broken_summary = scan()
    broken_summary["summaryDetails"]["controls"]["C-0017"] = value
    framework = {
        "name": value,
        "controlReports": [
            {
                "controlID": value,
                "baseScore": value,
                "ruleReports": [{"ruleResponses": [response(**{response_key: value})]}],
            }
        ],
    }
    for record in (
        broken_top,
        broken_control,
        broken_summary,
        response(**{response_key: value}),
        framework,
    ):
        ctx = ParseContext(kubescape.NAME, RECEIVED_AT, Batch())
        with contextlib.suppress(RecordError):
            kubescape.parse(record, ctx)


# --- corpus ----------------------------------------------------------------------------------


@pytest.mark.corpus
def test_corpus_summary_matches_its_own_severity_counters(corpus: Path) -> None:
    document = orjson.loads((corpus / "kspm/kubescape/mock_summaryDetails.json").read_bytes())
    batch = run(document)
    assert len(batch.findings) == len(document["controls"]) and not batch.dead_letters
    failed = Counter(f["finding.severity"] for f in batch.findings if f["finding.status"] == "fail")
    counters = document["controlsSeverityCounters"]
    assert {s: failed[s] for s in ("critical", "high", "medium", "low")} == {
        s: counters[f"{s}Severity"] for s in ("critical", "high", "medium", "low")
    }


@pytest.mark.corpus
def test_corpus_every_regolibrary_response_is_a_failed_finding(corpus: Path) -> None:
    files = sorted((corpus / REGOLIBRARY).glob("*/test/*/expected.json"))
    assert len(files) == 137
    empty = responses = 0
    for path in files:
        records = decode_body(path.read_bytes()).records
        empty += not records
        batch = run(*records)
        assert not batch.dead_letters, path
        objects = 0
        for record in records:
            alert = record.get("alertObject") or {}
            objects += max(1, len(alert.get("k8sApiObjects") or []))
        assert len(batch.findings) == objects, path
        assert {f["finding.status"] for f in batch.findings} <= {"fail"}
        responses += len(records)
    assert (empty, responses) == (21, 135)  # 21 compliant cases, 116 failing ones


@pytest.mark.corpus
def test_corpus_rule_inputs_and_metadata_are_not_kubescape_results(corpus: Path) -> None:
    seen = 0
    for path in sorted((corpus / REGOLIBRARY).rglob("*")):
        if path.name == "expected.json" or path.suffix not in (".json", ".yaml", ".yml"):
            continue
        text = path.read_bytes()
        documents = (
            decode_body(text).records if path.suffix == ".json" else list(yaml.safe_load_all(text))
        )
        for document in documents:
            seen += 1
            assert not kubescape.matches(document), path
    assert seen > 150
