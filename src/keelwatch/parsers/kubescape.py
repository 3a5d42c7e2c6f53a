"""Kubescape scan results: one posture finding per (control, resource).

Accepted shapes:

* ``kubescape scan --format json`` (format v2): ``results`` (per resource, its controls and their
  rules), ``resources`` (the scanned objects) and ``summaryDetails`` (per control: name, status,
  scoreFactor, counters). One finding per control of each result.
* a document with ``summaryDetails`` and no ``results``, or a bare summaryDetails object: one
  finding per control, with no resource (the summary names none).
* format v1 framework reports (``controlReports`` → ``ruleReports`` → ``ruleResponses``) and the
  regolibrary rule-response lists (``alertMessage``, ``failedPaths``, ``alertObject`` …; ``decode``
  splits the list into single responses): each response is a failed finding per object it names.

Severity follows Kubescape's own bands over the control's scoreFactor (docs/sources/kubescape.md).
"""

from __future__ import annotations

from typing import Any

from keelwatch.errors import ParseError, RecordError
from keelwatch.model.fields import Fields, content_id, flatten, parse_timestamp
from keelwatch.model.severity import CRITICAL, HIGH, LOW, MEDIUM, severity_name
from keelwatch.parsers.base import ParseContext, Record

NAME = "kubescape"
DATASET = "kspm.kubescape"
DESCRIPTION = "Kubescape scan results (--format json) and regolibrary rule responses"
PREFIX = "kubescape"

_STATUS = {
    "passed": "pass",
    "failed": "fail",
    "skipped": "skip",
    "excluded": "skip",  # failed, but covered by an exception
    "irrelevant": "pass",  # nothing to check
    "warning": "warn",
}
# Summary entries carry every resource id they cover; copying them into each finding is noise.
_SUMMARY_SKIP = frozenset({"resourceIDs"})


def matches(record: Record) -> bool:
    if not isinstance(record, dict):
        return False
    if isinstance(record.get("results"), list) and (
        "summaryDetails" in record or "resources" in record
    ):
        return True
    if isinstance(record.get("summaryDetails"), dict) or isinstance(
        record.get("controlReports"), list
    ):
        return True
    if isinstance(record.get("controls"), dict) and (
        "controlsSeverityCounters" in record or "frameworks" in record
    ):
        return True  # a bare summaryDetails
    return "alertMessage" in record and "alertObject" in record and "packagename" in record


def parse(record: Record, ctx: ParseContext) -> None:
    before = _produced(ctx)
    _parse(record, ctx)
    if _produced(ctx) == before:  # nothing may vanish without a reason
        raise ParseError("Kubescape report without any control results")


def _produced(ctx: ParseContext) -> int:
    return len(ctx.batch.findings) + len(ctx.batch.dead_letters)


def _parse(record: Record, ctx: ParseContext) -> None:
    if not isinstance(record, dict):
        raise ParseError(f"a Kubescape report is a JSON object, not {type(record).__name__}")
    if "alertMessage" in record and "alertObject" in record:
        _emit_response(record, {}, ctx)
        return
    if isinstance(record.get("controlReports"), list):
        _parse_framework_report(record, ctx)
        return
    summary = record.get("summaryDetails")
    if not isinstance(summary, dict) and isinstance(record.get("controls"), dict):
        summary = record  # the summaryDetails object on its own
    summaries = summary.get("controls") if isinstance(summary, dict) else None
    summaries = summaries if isinstance(summaries, dict) else {}
    base = _report_fields(record)
    results = record.get("results")
    if isinstance(results, list) and results:
        objects = _objects_by_id(record.get("resources"))
        for result in results:
            try:
                _parse_result(result, base, objects, summaries, ctx)
            except RecordError as error:
                ctx.reject(result, error.reason)
        return
    if not summaries and not isinstance(summary, dict):
        raise ParseError("not a Kubescape report: no results, summaryDetails or rule responses")
    for control_id, entry in summaries.items():
        try:
            _emit_summary_control(control_id, entry, base, ctx)
        except RecordError as error:
            ctx.reject(entry, error.reason)


def _report_fields(record: dict[str, Any]) -> Fields:
    """Fields shared by every finding of one report."""
    base: Fields = {
        "event.kind": "state",
        "event.dataset": DATASET,
        "event.category": ["configuration"],
        "event.type": ["info"],
        "rule.ruleset": "Kubescape",
    }
    cluster = record.get("clusterName")
    if isinstance(cluster, str) and cluster:
        base["orchestrator.cluster.name"] = cluster
        base[f"{PREFIX}.clusterName"] = cluster
    for key in ("reportGUID", "customerGUID"):
        value = record.get(key)
        if isinstance(value, str) and value:
            base[f"{PREFIX}.{key}"] = value
    moment = parse_timestamp(record.get("generationTime"))
    if moment is not None and moment.year > 1:  # Go's zero time means "unset"
        base["@timestamp"] = moment
    frameworks = _framework_names(record)
    if frameworks:
        base[f"{PREFIX}.frameworks"] = frameworks
    return base


def _framework_names(record: dict[str, Any]) -> list[str]:
    summary = record.get("summaryDetails", record)
    frameworks = summary.get("frameworks") if isinstance(summary, dict) else None
    if not isinstance(frameworks, list):
        return []
    return [f["name"] for f in frameworks if isinstance(f, dict) and isinstance(f.get("name"), str)]


def _objects_by_id(resources: Any) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for entry in resources if isinstance(resources, list) else ():
        if isinstance(entry, dict) and isinstance(entry.get("resourceID"), str):
            found[entry["resourceID"]] = entry
    return found


def _parse_result(
    result: Any,
    base: Fields,
    objects: dict[str, dict[str, Any]],
    summaries: dict[str, Any],
    ctx: ParseContext,
) -> None:
    if not isinstance(result, dict):
        raise ParseError(f"a Kubescape result is an object, not {type(result).__name__}")
    resource_id = result.get("resourceID")
    controls = result.get("controls")
    if not isinstance(resource_id, str) or not isinstance(controls, list):
        raise ParseError("Kubescape result without a resourceID and a controls list")
    shared = dict(base)
    shared[f"{PREFIX}.resourceID"] = resource_id
    entry = objects.get(resource_id, {})
    _set_resource(shared, entry.get("object"), resource_id)
    source = entry.get("source")
    if isinstance(source, dict):
        flatten(source, f"{PREFIX}.source", shared, ctx.limits)
    for control in controls:
        if not isinstance(control, dict) or not isinstance(control.get("controlID"), str):
            ctx.reject(control, "Kubescape control result without a controlID")
            continue
        control_id = control["controlID"]
        summary = summaries.get(control_id)
        summary = summary if isinstance(summary, dict) else {}
        out = dict(shared)
        try:
            flatten(control, f"{PREFIX}.control", out, ctx.limits)
            _add_summary(out, summary, ctx)
        except RecordError as error:  # this control only; its siblings are fine
            ctx.reject(control, error.reason)
            continue
        status = control.get("status")
        if isinstance(status, dict):  # v2 wraps it: {"status": "failed", "subStatus": …}
            status = status.get("status")
        _set_rule(out, control_id, control.get("name") or summary.get("name"))
        _set_status(out, status)
        _set_severity(out, summary.get("scoreFactor"))
        out["event.id"] = _finding_id(out, control_id, resource_id)
        ctx.emit_finding(out, control)


def _emit_summary_control(control_id: str, entry: Any, base: Fields, ctx: ParseContext) -> None:
    if not isinstance(entry, dict):
        raise ParseError(f"Kubescape summary of {control_id} is not an object")
    out = dict(base)
    _add_summary(out, entry, ctx)
    own_id = entry.get("controlID")
    if isinstance(own_id, str) and own_id:
        control_id = own_id
    _set_rule(out, control_id, entry.get("name"))
    _set_status(out, entry.get("status"))
    _set_severity(out, entry.get("scoreFactor"))
    out["event.id"] = _finding_id(out, control_id)
    ctx.emit_finding(out, entry)


def _add_summary(out: Fields, summary: dict[str, Any], ctx: ParseContext) -> None:
    small = {key: value for key, value in summary.items() if key not in _SUMMARY_SKIP}
    flatten(small, f"{PREFIX}.summary", out, ctx.limits)


def _parse_framework_report(report: dict[str, Any], ctx: ParseContext) -> None:
    """Format v1: a framework's controls, each with rule reports holding rule responses."""
    base = _report_fields(report)
    name = report.get("name")
    if isinstance(name, str) and name:
        base["rule.ruleset"] = f"Kubescape {name}"
    for control in report["controlReports"]:
        if not isinstance(control, dict):
            ctx.reject(control, "a Kubescape control report is not an object")
            continue
        control_fields = dict(base)
        control_id = control.get("controlID", control.get("id"))
        _set_rule(control_fields, control_id, control.get("name"))
        _set_text(control_fields, "rule.description", control.get("description"))
        _set_text(control_fields, "rule.remediation", control.get("remediation"))
        _set_severity(control_fields, control.get("baseScore"))
        for rule in _dicts(control.get("ruleReports")):
            for response in _dicts(rule.get("ruleResponses")):
                try:
                    _emit_response(response, control_fields, ctx)
                except RecordError as error:
                    ctx.reject(response, error.reason)


def _emit_response(response: dict[str, Any], base: Fields, ctx: ParseContext) -> None:
    """A rule response is a failure; one finding per object it names."""
    shared = dict(base) if base else _report_fields({})
    flatten(response, f"{PREFIX}.ruleResponse", shared, ctx.limits)
    rule_name = response.get("rulename", response.get("ruleName"))
    if "rule.id" not in shared and isinstance(rule_name, str) and rule_name:
        shared["rule.id"] = rule_name
        shared["rule.name"] = rule_name
    _set_text(shared, "message", response.get("alertMessage"))
    shared["finding.status"] = "fail"
    if "event.severity" not in shared:
        _set_severity(shared, response.get("alertScore"))
    alert = response.get("alertObject")
    targets: list[Any] = []
    if isinstance(alert, dict):
        targets = list(_dicts(alert.get("k8sApiObjects")))
        external = alert.get("externalObjects")
        if not targets and isinstance(external, dict):
            targets = [external]  # an RBAC subject (User, Group, ServiceAccount)
    # Without a rule id (regolibrary responses), the alert text stands for the rule.
    rule_key = shared.get("rule.id") or response.get("alertMessage")
    for target in targets or [None]:
        out = dict(shared)
        _set_resource(out, target, None)
        out["event.id"] = _finding_id(out, rule_key)
        ctx.emit_finding(out, response)


def _finding_id(out: Fields, rule_key: Any, resource_id: str | None = None) -> str:
    """Stable across scans: the same check on the same object in the same cluster."""
    where: list[Any] = [resource_id]
    if resource_id is None:
        where = [out.get(name) for name in ("resource.kind", "resource.namespace", "resource.name")]
    return content_id([DATASET, out.get("orchestrator.cluster.name"), rule_key, *where])


def _set_resource(out: Fields, obj: Any, resource_id: str | None) -> None:
    """resource.* from the object itself, else from the id ``group/version/namespace/kind/name``."""
    kind = namespace = name = uid = None
    if isinstance(obj, dict):
        kind = obj.get("kind")
        metadata = obj.get("metadata")
        if isinstance(metadata, dict):
            namespace, name, uid = (
                metadata.get("namespace"),
                metadata.get("name"),
                metadata.get("uid"),
            )
        else:  # external subjects carry these at the top
            namespace, name = obj.get("namespace"), obj.get("name")
    if resource_id and not (isinstance(kind, str) and isinstance(name, str)):
        parts = resource_id.split("/")
        if len(parts) >= 5:  # file scans prefix "path=…/api=" before the group
            namespace, kind, name = parts[-3], parts[-2], parts[-1]
    _set_text(out, "resource.kind", kind)
    _set_text(out, "resource.namespace", namespace)
    _set_text(out, "resource.name", name)
    _set_text(out, "resource.uid", uid)
    if "resource.namespace" in out:
        out["orchestrator.namespace"] = out["resource.namespace"]


def _set_rule(out: Fields, control_id: Any, name: Any) -> None:
    _set_text(out, "rule.id", control_id)
    _set_text(out, "rule.name", name)


def _set_status(out: Fields, status: Any) -> None:
    word = status.lower() if isinstance(status, str) else ""
    out["finding.status"] = _STATUS.get(word, "info")


def _set_severity(out: Fields, score: Any) -> None:
    """Kubescape's bands: 9-10 critical, 7-8 high, 4-6 medium, 1-3 low, below 1 unknown."""
    if isinstance(score, bool) or not isinstance(score, int | float):
        out["finding.severity"] = "unknown"
        return
    if score >= 9:
        level = CRITICAL
    elif score >= 7:
        level = HIGH
    elif score >= 4:
        level = MEDIUM
    elif score >= 1:
        level = LOW
    else:
        out["finding.severity"] = "unknown"
        return
    out["finding.severity"] = severity_name(level)
    out["event.severity"] = level


def _set_text(out: Fields, name: str, value: Any) -> None:
    if isinstance(value, str) and value:
        out[name] = value


def _dicts(items: Any) -> list[dict[str, Any]]:
    return [item for item in items if isinstance(item, dict)] if isinstance(items, list) else []
