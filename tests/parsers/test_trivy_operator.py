"""trivy-operator: CR kinds, lists, plain Trivy reports, dead letters and the corpus (YAML too)."""

from __future__ import annotations

import contextlib
import copy
from collections import Counter
from functools import partial
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from keelwatch.errors import RecordError
from keelwatch.parsers import trivy_operator
from keelwatch.parsers.base import Batch, ParseContext, Parser
from keelwatch.parsers.registry import recognise
from keelwatch.pipeline.decode import decode_body

from .helpers import RECEIVED_AT, json_values, parse_records, reasons

PARSER = Parser(
    trivy_operator.NAME,
    trivy_operator.DATASET,
    trivy_operator.DESCRIPTION,
    trivy_operator.matches,
    trivy_operator.parse,
)
run = partial(parse_records, PARSER)
GOLDEN = Path(__file__).parent / "golden" / "trivy-operator"
KSPM = "kspm/trivy-operator"
CHECK_KINDS = ("ConfigAuditReport", "RbacAssessmentReport", "InfraAssessmentReport")


def golden(name: str) -> Any:
    return orjson.loads((GOLDEN / f"{name}.input.json").read_bytes())


def config_audit(*checks: Any, kind: str = "ConfigAuditReport") -> dict[str, Any]:
    return {
        "apiVersion": "aquasecurity.github.io/v1alpha1",
        "kind": kind,
        "metadata": {
            "name": "deployment-web",
            "namespace": "shop",
            "labels": {
                "trivy-operator.resource.kind": "Deployment",
                "trivy-operator.resource.name": "web",
                "trivy-operator.resource.namespace": "shop",
            },
        },
        "report": {"summary": {"highCount": 1}, "checks": list(checks)},
    }


def check(check_id: str = "KSV017", success: Any = False, severity: Any = "HIGH") -> dict[str, Any]:
    return {
        "checkID": check_id,
        "title": "Privileged container",
        "severity": severity,
        "success": success,
    }


# --- shapes ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "record",
    [
        config_audit(check()),
        {"apiVersion": "v1", "kind": "List", "items": [config_audit(check())]},
        {
            "apiVersion": "aquasecurity.github.io/v1alpha1",
            "kind": "VulnerabilityReportList",
            "items": [],
        },
        {"SchemaVersion": 2, "ArtifactName": "nginx:1.27", "Results": []},
        {"ArtifactName": ".", "ArtifactType": "filesystem", "Results": []},
        {"summary": {"failCount": 0}, "summaryReport": {"controlCheck": []}},
    ],
    ids=[
        "cr",
        "kubectl-list",
        "typed-list",
        "trivy-image",
        "trivy-old-schema",
        "compliance-status",
    ],
)
def test_matches_trivy_shapes(record: Any) -> None:
    assert trivy_operator.matches(record)
    parser = recognise(record)
    assert parser is not None and parser.name == "trivy-operator"


@pytest.mark.parametrize(
    "record",
    [
        {"apiVersion": "v1", "kind": "List", "items": [{"apiVersion": "v1", "kind": "Pod"}]},
        {"apiVersion": "v1", "kind": "List", "items": []},
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {}},
        {"Results": []},
        {"summary": {"failCount": 1}},
        {"Controls": [], "Totals": {}},
        {"summaryDetails": {"controls": {}}},
        {"kind": "Event", "apiVersion": "audit.k8s.io/v1"},
        "aquasecurity.github.io/v1alpha1",
        [config_audit(check())],
        None,
    ],
)
def test_does_not_match_neighbours(record: Any) -> None:
    assert not trivy_operator.matches(record)


# --- rules -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("success", "status"), [(False, "fail"), (True, "pass"), ("false", "info"), (None, "info")]
)
def test_check_status(success: Any, status: str) -> None:
    batch = run(config_audit(check(success=success)))
    assert batch.findings[0]["finding.status"] == status
    assert bool(batch.warnings) == (not isinstance(success, bool))


@pytest.mark.parametrize(
    ("word", "severity", "level"),
    [("CRITICAL", "critical", 4), ("high", "high", 3), ("MEDIUM", "medium", 2), ("LOW", "low", 1),
     ("UNKNOWN", "unknown", None), ("", "unknown", None), (3, "unknown", None)],
)  # fmt: skip
def test_severity(word: Any, severity: str, level: int | None) -> None:
    (out,) = run(config_audit(check(severity=word))).findings
    assert out["finding.severity"] == severity
    assert out.get("event.severity") == level


def test_resource_comes_from_labels_then_owner() -> None:
    (labelled,) = run(config_audit(check())).findings
    assert (
        labelled["resource.kind"],
        labelled["resource.namespace"],
        labelled["resource.name"],
    ) == (
        "Deployment",
        "shop",
        "web",
    )
    unlabelled = config_audit(check(), kind="RbacAssessmentReport")
    unlabelled["metadata"]["labels"] = {}
    unlabelled["metadata"]["ownerReferences"] = [{"kind": "Role", "name": "reader", "uid": "u-1"}]
    (owned,) = run(unlabelled).findings
    assert (owned["resource.kind"], owned["resource.namespace"], owned["resource.name"]) == (
        "Role",
        "shop",
        "reader",
    )
    assert owned["resource.uid"] == "u-1"


def test_ids_are_stable_across_scans_and_distinct_per_object() -> None:
    first = run(config_audit(check())).findings[0]["event.id"]
    rescan = config_audit(check(success=True))
    rescan["report"]["updateTimestamp"] = "2030-01-01T00:00:00Z"
    rescan["metadata"]["labels"]["resource-spec-hash"] = "changed"
    assert run(rescan).findings[0]["event.id"] == first
    other = config_audit(check())
    other["metadata"]["labels"]["trivy-operator.resource.name"] = "api"
    assert run(other).findings[0]["event.id"] != first


def test_plain_report_severity_and_score_fallbacks() -> None:
    vulnerability = {
        "VulnerabilityID": "CVE-2024-0001",
        "PkgName": "zlib",
        "InstalledVersion": "1.2.13",
        "SeveritySource": "ghsa",
        "VendorSeverity": {"ghsa": 3, "nvd": 2},
        "CVSS": {"nvd": {"V3Score": 6.1}, "ghsa": {"V3Score": 7.4}},
    }
    report = {
        "SchemaVersion": 2,
        "ArtifactName": "app:1",
        "ArtifactType": "container_image",
        "Results": [{"Target": "app:1 (debian 12)", "Vulnerabilities": [vulnerability]}],
    }
    (out,) = run(report).findings
    assert (out["finding.severity"], out["vulnerability.score.base"]) == ("high", 7.4)
    assert out["container.image.name"] == "app:1" and out["resource.kind"] == "Image"
    nvd_only = copy.deepcopy(report)
    nvd_only["Results"][0]["Vulnerabilities"][0]["CVSS"] = {"nvd": {"V3Score": 6.1}}
    assert run(nvd_only).findings[0]["vulnerability.score.base"] == 6.1


def test_filesystem_artifacts_are_not_images() -> None:
    finding = {"VulnerabilityID": "GHSA-x", "Severity": "LOW"}
    report = {
        "SchemaVersion": 2,
        "ArtifactName": "/srv/app",
        "ArtifactType": "filesystem",
        "Results": [{"Target": "go.sum", "Vulnerabilities": [finding]}],
    }
    (out,) = run(report).findings
    assert (out["resource.kind"], out["resource.name"]) == ("filesystem", "/srv/app")
    assert "container.image.name" not in out


def test_the_image_config_is_not_copied_into_findings() -> None:
    for out in run(golden("trivy_image_report")).findings:
        assert not any("ImageConfig" in key for key in out)


# --- dead letters ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "record",
    [
        "VulnerabilityReport",
        1.5,
        None,
        {"apiVersion": "aquasecurity.github.io/v1alpha1", "kind": "SbomReport", "report": {}},
        {"apiVersion": "aquasecurity.github.io/v1alpha1", "kind": "FutureReport", "report": {}},
        {"apiVersion": "aquasecurity.github.io/v1alpha1", "kind": "ConfigAuditReport"},
        {
            "apiVersion": "aquasecurity.github.io/v1alpha1",
            "kind": "ClusterComplianceReport",
            "spec": {},
        },
        {"apiVersion": "aquasecurity.github.io/v1alpha1", "kind": 5},
        {"apiVersion": "v1", "kind": "List", "items": []},
        config_audit(),
        {"SchemaVersion": 2, "Results": []},
    ],
)
def test_unusable_records_are_dead_lettered_with_a_reason(record: Any) -> None:
    batch = run(record)
    assert not batch.findings
    assert len(batch.dead_letters) == 1 and reasons(batch)[0]


def test_bad_items_leave_good_neighbours() -> None:
    deep: dict[str, Any] = {}
    node = deep
    for _ in range(60):
        node["x"] = {}
        node = node["x"]
    report = config_audit(
        check("KSV001"),
        "text",
        {"title": "no id"},
        {**check("KSV002"), "messages": deep},
        check("KSV003"),
    )
    listed = {
        "apiVersion": "v1",
        "kind": "List",
        "items": [report, 7, config_audit(check("KSV004"))],
    }
    batch = run(listed)
    assert [f["rule.id"] for f in batch.findings] == ["KSV001", "KSV003", "KSV004"]
    assert len(batch.dead_letters) == 4
    assert any("nesting deeper" in reason for reason in reasons(batch))


_json = json_values()


def _set_path(document: Any, path: tuple[Any, ...], value: Any) -> Any:
    document = copy.deepcopy(document)
    node = document
    for step in path[:-1]:
        node = node[step]
    node[path[-1]] = value
    return document


_ITEM = ("items", 0)
_PATHS = {
    "vulnerability_report_list": [
        (*_ITEM, "metadata"),
        (*_ITEM, "report", "vulnerabilities", 0, "score"),
        (*_ITEM, "report", "artifact"),
        (*_ITEM, "report", "registry", "server"),
        (*_ITEM, "metadata", "labels"),
        (*_ITEM, "report", "updateTimestamp"),
    ],
    "config_audit_report": [
        ("report", "checks", 0, "messages"),
        ("metadata", "ownerReferences"),
        ("report", "checks"),
        ("kind",),
    ],
    "compliance_report": [
        ("status", "detailReport", "results", 1, "checks"),
        ("status", "detailReport"),
        ("spec", "compliance"),
        ("status", "summaryReport"),
    ],
    "trivy_image_report": [
        ("Results", 0, "Vulnerabilities", 0, "CVSS"),
        ("Metadata",),
        ("ArtifactType",),
        ("Results", 1, "Misconfigurations", 0, "Status"),
        ("Results", 2),
    ],
}


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    case=st.sampled_from([(name, path) for name, paths in _PATHS.items() for path in paths]),
    value=_json,
)
def test_any_field_of_any_type_never_crashes(case: tuple[str, tuple[Any, ...]], value: Any) -> None:
    """The parser itself raises only RecordError, whatever type a field holds."""
    name, path = case
    record = _set_path(golden(name), path, value)
    ctx = ParseContext(trivy_operator.NAME, RECEIVED_AT, Batch())
    with contextlib.suppress(RecordError):
        trivy_operator.parse(record, ctx)


# --- corpus ----------------------------------------------------------------------------------


def _corpus_documents(corpus: Path) -> list[tuple[str, Any]]:
    documents: list[tuple[str, Any]] = []
    for path in sorted((corpus / KSPM).iterdir()):
        if path.suffix == ".yaml":
            loaded = yaml.safe_load_all(path.read_text())
            documents += [(path.name, doc) for doc in loaded if doc is not None]
        elif path.suffix == ".json":
            documents += [(path.name, doc) for doc in decode_body(path.read_bytes()).records]
    return documents


@pytest.mark.corpus
def test_corpus_every_document_gives_findings_or_a_reason(corpus: Path) -> None:
    documents = _corpus_documents(corpus)
    assert len(documents) == 18
    produced: Counter[str] = Counter()
    for name, document in documents:
        assert trivy_operator.matches(document), name
        batch = run(document)
        assert not batch.warnings, name
        assert batch.findings or batch.dead_letters, name
        produced[name] += len(batch.findings)
        if not batch.findings:  # a compliance spec nobody evaluated yet
            assert reasons(batch) == [
                "ClusterComplianceReport has no status yet: no control was evaluated"
            ]
    assert sum(produced.values()) == 109


@pytest.mark.corpus
def test_corpus_check_reports_match_their_summaries(corpus: Path) -> None:
    compared = 0
    for name, document in _corpus_documents(corpus):
        if document.get("kind") not in CHECK_KINDS:
            continue
        summary = document["report"]["summary"]
        failed = Counter(
            f["finding.severity"] for f in run(document).findings if f["finding.status"] == "fail"
        )
        for severity in ("critical", "high", "medium", "low"):
            assert failed[severity] == summary.get(f"{severity}Count", 0), (name, severity)
        compared += 1
    assert compared == 10


@pytest.mark.corpus
def test_corpus_compliance_status_matches_its_counts(corpus: Path) -> None:
    for name, document in _corpus_documents(corpus):
        if "detailReport" not in document and "summaryReport" not in document:
            continue
        statuses = Counter(f["finding.status"] for f in run(document).findings)
        summary = document["summary"]
        assert (statuses["fail"], statuses["pass"]) == (
            summary["failCount"],
            summary["passCount"],
        ), name


@pytest.mark.corpus
def test_corpus_plain_reports_name_the_image(corpus: Path) -> None:
    for name in ("exposedsecret_report.json", "full_report.json", "vulnerability_report.json"):
        for out in run(*decode_body((corpus / KSPM / name).read_bytes()).records).findings:
            assert out["container.image.name"] == "alpine:3.10.2", name
