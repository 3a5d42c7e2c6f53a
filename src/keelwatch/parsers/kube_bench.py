"""kube-bench ``--json`` results: one posture finding per check result.

Accepted shapes: ``{"Controls": [control, ...], "Totals": {...}}`` (current releases) and the
older top-level array of controls, whose items ``decode`` hands over one by one. A control holds
sections (``tests``), a section holds ``results``. ``Totals`` and the per-section counters are
summaries, not findings.

kube-bench does not say which host it ran on. If a shipper adds a flat ``host.name`` to the
document, it becomes ``host.name``/``resource.name`` and part of the finding id; otherwise the
same check on two nodes of one type shares an id (see docs/sources/kube-bench.md).
"""

from __future__ import annotations

from typing import Any

from keelwatch.errors import ParseError, RecordError
from keelwatch.model.fields import Fields, content_id, flatten
from keelwatch.model.severity import HIGH, INFO, LOW, MEDIUM, severity_name
from keelwatch.parsers.base import ParseContext, Record

NAME = "kube-bench"
DATASET = "kspm.kube_bench"
DESCRIPTION = "kube-bench CIS benchmark results (--json)"
PREFIX = "kube_bench"

_STATUS = {"PASS": "pass", "FAIL": "fail", "WARN": "warn", "INFO": "info"}
# kube-bench has no severity of its own: it follows from the outcome and from whether the CIS
# benchmark scores the check (an unscored/manual failure weighs less).
_SEVERITY = {"pass": INFO, "info": INFO, "warn": LOW}
# Benchmark version prefixes (kube-bench's cfg/ directory names) → the benchmark's name.
_BENCHMARKS = (
    ("k3s-cis-", "CIS K3s Benchmark"),
    ("rke2-cis-", "CIS RKE2 Benchmark"),
    ("rke-cis-", "CIS RKE Benchmark"),
    ("cis-", "CIS Kubernetes Benchmark"),
    ("gke-", "CIS GKE Benchmark"),
    ("eks-", "CIS EKS Benchmark"),
    ("aks-", "CIS AKS Benchmark"),
    ("ack-", "CIS ACK Benchmark"),
    ("rh-", "CIS Red Hat OpenShift Benchmark"),
    ("tkgi-", "VMware TKGI Benchmark"),
)


def matches(record: Record) -> bool:
    if not isinstance(record, dict):
        return False
    if isinstance(record.get("Controls"), list):
        return True
    return isinstance(record.get("tests"), list) and "node_type" in record


def parse(record: Record, ctx: ParseContext) -> None:
    before = _produced(ctx)
    _parse(record, ctx)
    if _produced(ctx) == before:  # nothing may vanish without a reason
        raise ParseError("kube-bench report without any check results")


def _produced(ctx: ParseContext) -> int:
    return len(ctx.batch.findings) + len(ctx.batch.dead_letters)


def _parse(record: Record, ctx: ParseContext) -> None:
    if not isinstance(record, dict):
        raise ParseError(f"a kube-bench report is a JSON object, not {type(record).__name__}")
    host = record.get("host.name")
    host = host if isinstance(host, str) and host else None
    controls = record.get("Controls")
    if isinstance(controls, list):
        for control in controls:
            try:
                _parse_control(control, host, ctx)
            except RecordError as error:
                ctx.reject(control, error.reason)
        return
    if "Controls" in record:
        raise ParseError("kube-bench Controls is not a list")
    if "tests" not in record:
        raise ParseError("not a kube-bench report: no Controls and no tests")
    _parse_control(record, host, ctx)


def _parse_control(control: Any, host: str | None, ctx: ParseContext) -> None:
    if not isinstance(control, dict):
        raise ParseError(f"a kube-bench control is an object, not {type(control).__name__}")
    sections = control.get("tests")
    if not isinstance(sections, list):
        raise ParseError("kube-bench control without a tests list")
    version = _text(control.get("version"))
    node_type = _text(control.get("node_type"))
    base: Fields = {
        "event.kind": "state",
        "event.dataset": DATASET,
        "event.category": ["configuration"],
        "event.type": ["info"],
        "resource.kind": "Node",
        "rule.ruleset": _ruleset(version),
    }
    if host:
        base["host.name"] = host
        base["resource.name"] = host
    flatten(_without(control, "tests"), f"{PREFIX}.control", base, ctx.limits)
    identity = [DATASET, version, node_type]
    for section in sections:
        if not isinstance(section, dict):
            ctx.reject(section, "a kube-bench section is not an object")
            continue
        results = section.get("results")
        if results is None:
            continue  # a section whose checks were all skipped
        if not isinstance(results, list):
            ctx.reject(section, "kube-bench section results is not a list")
            continue
        section_fields = dict(base)
        try:
            flatten(_without(section, "results"), f"{PREFIX}.section", section_fields, ctx.limits)
        except RecordError as error:
            ctx.reject(section, error.reason)
            continue
        for result in results:
            try:
                _emit_result(result, section_fields, identity, host, ctx)
            except RecordError as error:
                ctx.reject(result, error.reason)


def _emit_result(
    result: Any, base: Fields, identity: list[str], host: str | None, ctx: ParseContext
) -> None:
    if not isinstance(result, dict):
        raise ParseError(f"a kube-bench result is an object, not {type(result).__name__}")
    number = result.get("test_number")
    if not isinstance(number, str) or not number:
        raise ParseError("kube-bench result without a test_number")
    out = dict(base)
    flatten(result, f"{PREFIX}.result", out, ctx.limits)
    raw_status = result.get("status")
    status = _STATUS.get(raw_status.upper()) if isinstance(raw_status, str) else None
    if status is None:
        ctx.warn(f"result {number}: unknown status {str(raw_status)[:32]!r}, kept as info")
        status = "info"
    if status == "fail":
        level = HIGH if result.get("scored") is True else MEDIUM
    else:
        level = _SEVERITY[status]
    out["rule.id"] = number
    _set_text(out, "rule.name", result.get("test_desc"))
    _set_text(out, "rule.remediation", result.get("remediation"))
    out["finding.status"] = status
    out["finding.severity"] = severity_name(level)
    out["event.severity"] = level
    out["event.id"] = content_id([*identity, number, *([host] if host else [])])
    ctx.emit_finding(out, result)


def _ruleset(version: str) -> str:
    if not version:
        return "CIS Kubernetes Benchmark"
    if "stig" in version:
        return f"DISA STIG {version}"
    for prefix, benchmark in _BENCHMARKS:
        if version.startswith(prefix):
            return f"{benchmark} {version}"
    if version[:1].isdigit():  # early releases wrote the bare CIS version
        return f"CIS Kubernetes Benchmark {version}"
    return f"kube-bench {version}"


def _without(mapping: dict[str, Any], key: str) -> dict[str, Any]:
    return {name: value for name, value in mapping.items() if name != key}


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _set_text(out: Fields, name: str, value: Any) -> None:
    if isinstance(value, str) and value.strip():
        out[name] = value.strip()
