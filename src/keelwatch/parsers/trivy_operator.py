"""trivy-operator reports and plain Trivy JSON reports: one posture finding per item.

trivy-operator custom resources (``aquasecurity.github.io/v1alpha1``): VulnerabilityReport,
ExposedSecretReport, ConfigAuditReport, RbacAssessmentReport, InfraAssessmentReport, their
``Cluster*`` variants and ClusterComplianceReport, alone or in a list (``kind: List`` from
``kubectl get -o json``, or ``…ReportList``). A compliance report's ``status`` on its own is
accepted too. The object checked comes from the report's ``trivy-operator.resource.*`` labels.

Plain Trivy reports (``trivy image|fs --format json``: ``SchemaVersion``, ``ArtifactName``,
``Results[]``) give a finding per vulnerability, misconfiguration and secret; the artifact is
the object checked. Native fields sit under ``trivy_operator.`` and ``trivy.`` respectively.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from keelwatch.errors import ParseError, RecordError
from keelwatch.model.fields import Fields, content_id, dig, flatten, parse_timestamp
from keelwatch.model.severity import severity_from_name, severity_name
from keelwatch.parsers.base import ParseContext, Record

NAME = "trivy-operator"
DATASET = "kspm.trivy_operator"
DESCRIPTION = "trivy-operator reports (CRs) and Trivy JSON reports"
PREFIX = "trivy_operator"
PLAIN_PREFIX = "trivy"

_GROUP = "aquasecurity.github.io/"
_LABEL = "trivy-operator.resource."
_CHECK_STATUS = {"PASS": "pass", "FAIL": "fail", "EXCEPTION": "skip"}
_NO_FINDINGS = frozenset({"SbomReport", "ClusterSbomReport"})

Handler = Callable[[Any, Fields, ParseContext], None]


def matches(record: Record) -> bool:
    if not isinstance(record, dict):
        return False
    api_version = record.get("apiVersion")
    if isinstance(api_version, str) and api_version.startswith(_GROUP):
        return True
    items = record.get("items")
    if record.get("kind") == "List" and isinstance(items, list) and items:
        first = items[0]
        return isinstance(first, dict) and str(first.get("apiVersion", "")).startswith(_GROUP)
    if isinstance(record.get("Results"), list):
        return "SchemaVersion" in record or "ArtifactName" in record
    return isinstance(record.get("summary"), dict) and (
        isinstance(record.get("detailReport"), dict)
        or isinstance(record.get("summaryReport"), dict)
    )


def parse(record: Record, ctx: ParseContext) -> None:
    before = _produced(ctx)
    _parse(record, ctx)
    if _produced(ctx) == before:  # nothing may vanish without a reason
        raise ParseError("Trivy report without any vulnerability, check, secret or control")


def _produced(ctx: ParseContext) -> int:
    return len(ctx.batch.findings) + len(ctx.batch.dead_letters)


def _parse(record: Record, ctx: ParseContext) -> None:
    if not isinstance(record, dict):
        raise ParseError(f"a Trivy report is a JSON object, not {type(record).__name__}")
    kind = record.get("kind")
    items = record.get("items")
    if isinstance(kind, str) and kind.endswith("List") and isinstance(items, list):
        for item in items:
            try:
                _parse_resource(item, ctx)
            except RecordError as error:
                ctx.reject(item, error.reason)
        return
    api_version = record.get("apiVersion")
    if isinstance(api_version, str) and api_version.startswith(_GROUP):
        _parse_resource(record, ctx)
    elif isinstance(record.get("Results"), list):
        _parse_plain(record, ctx)
    elif "detailReport" in record or "summaryReport" in record:
        _compliance(record, _base(), ctx)
    else:
        raise ParseError("not a trivy-operator resource or a Trivy JSON report")


def _base() -> Fields:
    return {
        "event.kind": "state",
        "event.dataset": DATASET,
        "event.category": ["configuration"],
        "event.type": ["info"],
    }


# --- trivy-operator custom resources -------------------------------------------------------


def _parse_resource(obj: Any, ctx: ParseContext) -> None:
    if not isinstance(obj, dict):
        raise ParseError(f"a trivy-operator report is an object, not {type(obj).__name__}")
    kind = obj.get("kind")
    if not isinstance(kind, str) or not str(obj.get("apiVersion", "")).startswith(_GROUP):
        raise ParseError("not a trivy-operator resource (apiVersion aquasecurity.github.io/…)")
    if kind in _NO_FINDINGS:
        raise ParseError(f"trivy-operator {kind} lists components, not findings")
    handler = _HANDLERS.get(kind.removeprefix("Cluster"))
    if handler is None:
        raise ParseError(f"unknown trivy-operator report kind {kind!r}")
    metadata = obj.get("metadata")
    metadata = metadata if isinstance(metadata, dict) else {}
    base = _base()
    base[f"{PREFIX}.kind"] = kind
    flatten(
        {k: v for k, v in metadata.items() if k != "managedFields"},
        f"{PREFIX}.metadata",
        base,
        ctx.limits,
    )
    _set_owner(base, metadata)
    body_key = "status" if handler is _compliance else "report"
    body = obj.get(body_key)
    if not isinstance(body, dict):
        if handler is _compliance:
            raise ParseError(f"{kind} has no status yet: no control was evaluated")
        raise ParseError(f"trivy-operator {kind} without a {body_key} object")
    if handler is _compliance:
        base["rule.ruleset"] = _ruleset(dig(obj, "spec", "compliance"))
    else:
        _set_report(base, body, ctx)
    _set_time(base, body.get("updateTimestamp") or metadata.get("creationTimestamp"))
    handler(body, base, ctx)


def _set_owner(out: Fields, metadata: dict[str, Any]) -> None:
    """The object checked: trivy-operator's labels, else the report's controlling owner."""
    labels = metadata.get("labels")
    labels = labels if isinstance(labels, dict) else {}
    owners = metadata.get("ownerReferences")
    owner = owners[0] if isinstance(owners, list) and owners and isinstance(owners[0], dict) else {}
    fallbacks = {"kind": owner.get("kind"), "name": owner.get("name")}
    fallbacks["namespace"] = metadata.get("namespace")
    for part in ("kind", "name", "namespace"):
        value = labels.get(_LABEL + part)
        _set_text(out, f"resource.{part}", value if isinstance(value, str) else fallbacks[part])
    _set_text(out, "resource.uid", owner.get("uid"))
    _set_text(out, "container.name", labels.get("trivy-operator.container.name"))
    if "resource.namespace" in out:
        out["orchestrator.namespace"] = out["resource.namespace"]


def _set_report(out: Fields, report: dict[str, Any], ctx: ParseContext) -> None:
    """Report-level facts (scanner, artifact, summary) without its list of items."""
    lists = ("vulnerabilities", "checks", "secrets")
    flatten(
        {k: v for k, v in report.items() if k not in lists}, f"{PREFIX}.report", out, ctx.limits
    )
    # Workload images always name their registry; node components (kubelet…) do not.
    repository = dig(report, "artifact", "repository")
    server = dig(report, "registry", "server")
    if isinstance(repository, str) and repository and isinstance(server, str) and server:
        image = f"{server}/{repository}"
        tag, digest = dig(report, "artifact", "tag"), dig(report, "artifact", "digest")
        if isinstance(tag, str) and tag:
            image = f"{image}:{tag}"
        elif isinstance(digest, str) and digest:
            image = f"{image}@{digest}"
        out["container.image.name"] = image


def _vulnerabilities(report: dict[str, Any], base: Fields, ctx: ParseContext) -> None:
    base["event.category"] = ["vulnerability"]
    for item in _items(report, "vulnerabilities", ctx):
        vid = item.get("vulnerabilityID")
        if not isinstance(vid, str) or not vid:
            ctx.reject(item, "trivy-operator vulnerability without a vulnerabilityID")
            continue
        out = _item_fields(item, base, f"{PREFIX}.vulnerability", ctx)
        if out is None:
            continue
        _set_vulnerability(out, vid, item.get("title"), item.get("primaryLink"), item.get("score"))
        _set_text(out, "rule.description", item.get("description"))
        _set_text(out, "package.name", item.get("resource"))
        _set_text(out, "package.version", item.get("installedVersion"))
        _set_text(out, "package.fixed_version", item.get("fixedVersion"))
        _set_text(out, "package.type", item.get("packageType"))
        _set_severity(out, item.get("severity"))
        where = (item.get("resource"), item.get("pkgPath") or item.get("target"))
        _emit(out, item, ctx, vid, *where)


def _checks(report: dict[str, Any], base: Fields, ctx: ParseContext) -> None:
    for item in _items(report, "checks", ctx):
        check_id = item.get("checkID")
        if not isinstance(check_id, str) or not check_id:
            ctx.reject(item, "trivy-operator check without a checkID")
            continue
        out = _item_fields(item, base, f"{PREFIX}.check", ctx)
        if out is None:
            continue
        _set_rule(out, check_id, item.get("title"), item.get("description"), item.get("category"))
        _set_text(out, "rule.remediation", item.get("remediation"))
        _set_messages(out, item.get("messages"))
        success = item.get("success")
        if isinstance(success, bool):
            out["finding.status"] = "pass" if success else "fail"
        else:
            ctx.warn(f"check {check_id}: success is not a boolean; kept as info")
            out["finding.status"] = "info"
        _set_severity(out, item.get("severity"))
        _emit(out, item, ctx, check_id)


def _secrets(report: dict[str, Any], base: Fields, ctx: ParseContext) -> None:
    for item in _items(report, "secrets", ctx):
        rule_id = item.get("ruleID")
        if not isinstance(rule_id, str) or not rule_id:
            ctx.reject(item, "trivy-operator secret without a ruleID")
            continue
        out = _item_fields(item, base, f"{PREFIX}.secret", ctx)
        if out is None:
            continue
        _set_secret(out, rule_id, item.get("title"), item.get("category"), item.get("target"))
        _set_severity(out, item.get("severity"))
        _emit(out, item, ctx, rule_id, item.get("target"))


def _compliance(status: dict[str, Any], base: Fields, ctx: ParseContext) -> None:
    """One finding per control of a compliance report (detailed or summary form)."""
    detail, summary = status.get("detailReport"), status.get("summaryReport")
    report = detail if isinstance(detail, dict) else summary
    if not isinstance(report, dict):
        raise ParseError("compliance status without a detailReport or summaryReport")
    if report.get("title") or report.get("id") or "rule.ruleset" not in base:
        base["rule.ruleset"] = _ruleset(report)
    if "@timestamp" not in base:
        _set_time(base, status.get("updateTimestamp"))
    key = "results" if report is detail else "controlCheck"
    for control in _items(report, key, ctx):
        control_id = control.get("id")
        if not isinstance(control_id, str) or not control_id:
            ctx.reject(control, "compliance control without an id")
            continue
        out = _item_fields(control, base, f"{PREFIX}.control", ctx)
        if out is None:
            continue
        _set_rule(out, control_id, control.get("name"), control.get("description"), None)
        if report is detail:
            checks = control.get("checks")
            checks = checks if isinstance(checks, list) else []
            failed = any(isinstance(c, dict) and c.get("success") is False for c in checks)
        else:
            total = control.get("totalFail")
            failed = isinstance(total, int) and total > 0
        out["finding.status"] = "fail" if failed else "pass"
        _set_severity(out, control.get("severity"))
        _emit(out, control, ctx, base.get("rule.ruleset"), control_id)


_HANDLERS: dict[str, Handler] = {
    "VulnerabilityReport": _vulnerabilities,
    "ExposedSecretReport": _secrets,
    "ConfigAuditReport": _checks,
    "RbacAssessmentReport": _checks,
    "InfraAssessmentReport": _checks,
    "ComplianceReport": _compliance,
}


# --- plain Trivy JSON reports --------------------------------------------------------------


def _parse_plain(report: dict[str, Any], ctx: ParseContext) -> None:
    base = _base()
    top = {k: v for k, v in report.items() if k not in ("Results", "Metadata")}
    flatten(top, PLAIN_PREFIX, base, ctx.limits)
    metadata = report.get("Metadata")
    if isinstance(metadata, dict):  # the image config (history, env) is bulky and not a fact
        small = {k: v for k, v in metadata.items() if k != "ImageConfig"}
        flatten(small, f"{PLAIN_PREFIX}.Metadata", base, ctx.limits)
    name, artifact_type = report.get("ArtifactName"), report.get("ArtifactType")
    tags = dig(report, "Metadata", "RepoTags")
    if not (isinstance(name, str) and name) and isinstance(tags, list) and tags:
        name = tags[0]
        artifact_type = artifact_type or "container_image"
    if artifact_type == "container_image":
        _set_text(base, "container.image.name", name)
        base["resource.kind"] = "Image"
    else:
        _set_text(base, "resource.kind", artifact_type)
    _set_text(base, "resource.name", name)
    _set_time(base, report.get("CreatedAt"))
    for result in report["Results"]:
        if not isinstance(result, dict):
            ctx.reject(result, "a Trivy result is not an object")
            continue
        shared = dict(base)
        for key in ("Target", "Class", "Type"):
            _set_text(shared, f"{PLAIN_PREFIX}.result.{key}", result.get(key))
        target = result.get("Target")
        for item in _items(result, "Vulnerabilities", ctx):
            _plain_vulnerability(item, shared, target, ctx)
        for item in _items(result, "Misconfigurations", ctx):
            _plain_misconfiguration(item, shared, target, ctx)
        for item in _items(result, "Secrets", ctx):
            _plain_secret(item, shared, target, ctx)


def _plain_vulnerability(
    item: dict[str, Any], base: Fields, target: Any, ctx: ParseContext
) -> None:
    vid = item.get("VulnerabilityID")
    if not isinstance(vid, str) or not vid:
        ctx.reject(item, "Trivy vulnerability without a VulnerabilityID")
        return
    out = _item_fields(item, base, f"{PLAIN_PREFIX}.vulnerability", ctx)
    if out is None:
        return
    out["event.category"] = ["vulnerability"]
    source = item.get("SeveritySource")
    cvss = item.get("CVSS")
    score = None
    if isinstance(cvss, dict):  # the severity source's own score first, then NVD's
        for vendor in (source, "nvd", *cvss):
            score = dig(cvss, vendor, "V3Score") if isinstance(vendor, str) else None
            if score is not None:
                break
    _set_vulnerability(out, vid, item.get("Title"), item.get("PrimaryURL"), score)
    _set_text(out, "rule.description", item.get("Description"))
    _set_text(out, "package.name", item.get("PkgName"))
    _set_text(out, "package.version", item.get("InstalledVersion"))
    _set_text(out, "package.fixed_version", item.get("FixedVersion"))
    severity = item.get("Severity")
    if severity is None and isinstance(source, str):
        # Trivy's vendor scale (0 unknown … 4 critical) is Keelwatch's, except 0.
        vendor_level = dig(item, "VendorSeverity", source)
        if isinstance(vendor_level, int) and 1 <= vendor_level <= 4:
            severity = severity_name(vendor_level)
    _set_severity(out, severity)
    _emit(out, item, ctx, vid, target, item.get("PkgName"), item.get("PkgPath"))


def _plain_misconfiguration(
    item: dict[str, Any], base: Fields, target: Any, ctx: ParseContext
) -> None:
    check_id = item.get("ID") or item.get("AVDID")
    if not isinstance(check_id, str) or not check_id:
        ctx.reject(item, "Trivy misconfiguration without an ID")
        return
    out = _item_fields(item, base, f"{PLAIN_PREFIX}.misconfiguration", ctx)
    if out is None:
        return
    _set_rule(out, check_id, item.get("Title"), item.get("Description"), item.get("Type"))
    _set_text(out, "rule.remediation", item.get("Resolution"))
    _set_text(out, "message", item.get("Message"))
    status = item.get("Status")
    out["finding.status"] = _CHECK_STATUS.get(status, "fail") if isinstance(status, str) else "fail"
    _set_severity(out, item.get("Severity"))
    _emit(out, item, ctx, check_id, target)


def _plain_secret(item: dict[str, Any], base: Fields, target: Any, ctx: ParseContext) -> None:
    rule_id = item.get("RuleID")
    if not isinstance(rule_id, str) or not rule_id:
        ctx.reject(item, "Trivy secret without a RuleID")
        return
    out = _item_fields(item, base, f"{PLAIN_PREFIX}.secret", ctx)
    if out is None:
        return
    _set_secret(out, rule_id, item.get("Title"), item.get("Category"), target)
    _set_severity(out, item.get("Severity"))
    _emit(out, item, ctx, rule_id, target, item.get("StartLine"))


# --- shared helpers ------------------------------------------------------------------------


def _items(container: dict[str, Any], key: str, ctx: ParseContext) -> list[dict[str, Any]]:
    """The objects of a list field; anything else in it is dead-lettered."""
    items = container.get(key)
    if items is None:
        return []
    if not isinstance(items, list):
        ctx.reject(items, f"Trivy {key} is not a list")
        return []
    good = []
    for item in items:
        if isinstance(item, dict):
            good.append(item)
        else:
            ctx.reject(item, f"an entry of Trivy {key} is not an object")
    return good


def _item_fields(
    item: dict[str, Any], base: Fields, prefix: str, ctx: ParseContext
) -> Fields | None:
    out = dict(base)
    try:
        flatten(item, prefix, out, ctx.limits)
    except RecordError as error:
        ctx.reject(item, error.reason)
        return None
    return out


def _emit(out: Fields, item: dict[str, Any], ctx: ParseContext, *key: Any) -> None:
    """Finding ids are stable across scans: the report kind, the object and the item's key."""
    where = [out.get(f"resource.{part}") for part in ("kind", "namespace", "name")]
    kind = out.get(f"{PREFIX}.kind", "").removeprefix("Cluster")
    out["event.id"] = content_id([DATASET, kind, *where, out.get("container.name"), *key])
    ctx.emit_finding(out, item)


def _set_rule(out: Fields, rule_id: str, name: Any, description: Any, category: Any) -> None:
    out["rule.id"] = rule_id
    _set_text(out, "rule.name", name)
    _set_text(out, "rule.description", description)
    _set_text(out, "rule.category", category)


def _set_vulnerability(out: Fields, vid: str, title: Any, link: Any, score: Any) -> None:
    out["rule.id"] = vid
    out["vulnerability.id"] = vid
    out["finding.status"] = "fail"
    _set_text(out, "rule.name", title)
    _set_text(out, "vulnerability.reference", link)
    if isinstance(score, int | float) and not isinstance(score, bool):
        out["vulnerability.score.base"] = score


def _set_secret(out: Fields, rule_id: str, title: Any, category: Any, target: Any) -> None:
    out["rule.id"] = rule_id
    out["finding.status"] = "fail"
    _set_text(out, "rule.name", title)
    _set_text(out, "rule.category", category)
    _set_text(out, "file.path", target)


def _set_messages(out: Fields, messages: Any) -> None:
    if isinstance(messages, list):
        texts = [m for m in messages if isinstance(m, str) and m]
        if texts:
            out["message"] = "\n".join(texts)


def _set_severity(out: Fields, word: Any) -> None:
    level = severity_from_name(word)
    if level is None or (isinstance(word, str) and word.strip().lower() == "unknown"):
        out["finding.severity"] = "unknown"
        return
    out["finding.severity"] = severity_name(level)
    out["event.severity"] = level


def _set_time(out: Fields, value: Any) -> None:
    moment = parse_timestamp(value)
    if moment is not None:
        out["@timestamp"] = moment


def _ruleset(compliance: Any) -> str:
    if not isinstance(compliance, dict):
        return "trivy-operator compliance"
    title = compliance.get("title") or compliance.get("id") or "trivy-operator compliance"
    version = compliance.get("version")
    return f"{title} {version}" if isinstance(version, str) and version else str(title)


def _set_text(out: Fields, name: str, value: Any) -> None:
    if isinstance(value, str) and value:
        out[name] = value
