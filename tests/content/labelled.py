"""Labelled evaluation of the Kubernetes rule pack on third-party test data (../shared/corpus).

Sets (each record goes through the k8s-audit parser, then the whole pack):

* Falco's k8s_audit trace files with LABELS.json: per file, the Falco rules that must (or must
  not) alert. Only the tests that run Falco's stock rule files count; tests that add test-only
  allow/trust lists judge a configuration, not a detection.
* Panther's Kubernetes rule tests (extracted-tests/kubernetes_audit.ndjson): each raw log with
  the rule it tests and its ExpectedResult.
* Benign, unlabelled audit samples (Elastic integration pipeline tests, Sysdig's AKS samples):
  every alert there is counted as an alert on a negative.

Each upstream rule maps to one scenario family of the pack; a positive counts as recalled when
any alerting rule of its family fires on it, and a negative counts as an alert when one does.
Single-event tests of burst detections can never fire a correlation; for those the family's
base rule (``BURST_BASES``) is what is counted, and the report says so.

``python -m tests.content.labelled`` prints the table docs/detection.md carries.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from keelwatch.detect import RuleSet
from keelwatch.detect.rule_tests import RECEIVED_AT
from keelwatch.pipeline.normalize import normalize
from tests.content.rule_cases import KUBERNETES_RULES, pack

CORPUS = Path(__file__).resolve().parents[3] / "shared" / "corpus"
FALCO_TRACES = CORPUS / "k8s-audit" / "falco-trace-files"
PANTHER_TESTS = CORPUS / "panther-analysis" / "extracted-tests" / "kubernetes_audit.ndjson"
BENIGN_SETS = (
    CORPUS / "k8s-audit" / "elastic-integrations" / "test-audit.log",
    CORPUS / "k8s-audit" / "elastic-integrations" / "test-kube-audit.log",
    CORPUS / "k8s-audit" / "aks-sysdiglabs" / "event.json",
    CORPUS / "k8s-audit" / "aks-sysdiglabs" / "sample_EventHubs_event.json",
    CORPUS / "k8s-audit" / "aks-sysdiglabs" / "sample_KubeAuditLog_event.json",
)
STOCK_FALCO_FILES = {"falco_rules.yaml", "k8s_audit_rules.yaml", "disallow_kactivity.yaml"}

# Family → the pack's rule files (stems) whose alerts count for it.
FAMILIES: dict[str, tuple[str, ...]] = {
    "exec / attach": ("pod_exec_attach",),
    "privileged pod": ("pod_privileged", "pod_escape_precursor"),
    "host PID / IPC": ("pod_host_pid_ipc", "pod_escape_precursor"),
    "host network": ("pod_host_network",),
    "hostPath mount": ("pod_sensitive_hostpath", "pod_escape_precursor"),
    "dangerous capabilities": ("pod_dangerous_capabilities",),
    "secrets access": (
        "secret_read_unusual_identity", "secret_list_all_namespaces", "configmap_credentials_read",
    ),
    "configmap credentials": ("configmap_private_credentials",),
    "service-account tokens": (
        "serviceaccount_token_request", "serviceaccount_token_external_use",
    ),
    "anonymous access": ("anonymous_access_allowed",),
    "forbidden burst": ("discovery_forbidden_burst",),
    "RBAC escalation": (
        "rbac_binding_cluster_admin", "rbac_role_wildcard", "rbac_role_pod_exec",
        "rbac_role_escalation_permissions", "rbac_system_role_modified",
    ),
    "client certificates": ("csr_approval", "csr_client_certificate_requested"),
    "admission webhooks": ("admission_webhook_modified", "admission_webhook_external_url"),
    "cronjob / daemonset": ("cronjob_created_by_user", "daemonset_created_by_user"),
    "system namespaces": ("workload_in_system_namespace",),
}  # fmt: skip
# Families whose alert is a correlation: a single labelled event can only match the base rule.
BURST_BASES = {"forbidden burst": "keelwatch_k8s_forbidden_request"}
NOT_COVERED = "not covered"

FALCO_FAMILY = {
    "Attach/Exec Pod": "exec / attach",
    "Create Privileged Pod": "privileged pod",
    "Create HostNetwork Pod": "host network",
    "Create Sensitive Mount Pod": "hostPath mount",
    "Anonymous Request Allowed": "anonymous access",
    "Attach to cluster-admin Role": "RBAC escalation",
    "ClusterRole With Wildcard Created": "RBAC escalation",
    "ClusterRole With Pod Exec Created": "RBAC escalation",
    "System ClusterRole Modified/Deleted": "RBAC escalation",
    "Create/Modify Configmap With Private Credentials": "configmap credentials",
    "Pod Created in Kube Namespace": "system namespaces",
    "Service Account Created in Kube Namespace": "system namespaces",
}
# Falco's negative tests, by the family whose near miss they are.
FALCO_NEGATIVE_FAMILY = {
    "create_nohostnetwork_pod": "host network",
    "create_unprivileged_pod": "privileged pod",
    "create_unsensitive_mount_pod": "hostPath mount",
    "create_configmap_no_private_creds": "configmap credentials",
    "create_kube_system_secret": "secrets access",
    "create_service_account_token_secret": "service-account tokens",
}
PANTHER_FAMILY = {
    "Amazon.EKS.AnonymousAPIAccess": "anonymous access",
    "Kubernetes.API.AnonymousAccess": "anonymous access",
    "Amazon.EKS.Audit.Multiple403": "forbidden burst",
    "Kubernetes.API.Multiple403.PublicIP": "forbidden burst",
    "Amazon.EKS.Audit.SystemNamespaceFromPublicIP": "service-account tokens",
    "Kubernetes.System.Principal.PublicIP": "service-account tokens",
    "Kubernetes.ServiceAccount.TokenCreated": "service-account tokens",
    "GCP.GKE.Kubernetes.Cron.Job.Created.Or.Modified": "cronjob / daemonset",
    "GCP.K8s.New.Daemonset.Deployed": "cronjob / daemonset",
    "Kubernetes.CronJob.CreatedOrModified": "cronjob / daemonset",
    "Kubernetes.DaemonSet.Created": "cronjob / daemonset",
    "GCP.K8S.Pod.Create.Or.Modify.Host.Path.Volume.Mount": "hostPath mount",
    "Kubernetes.Pod.HostPath.Volume": "hostPath mount",
    "GCP.K8S.Privileged.Pod.Created": "privileged pod",
    "Kubernetes.Pod.Privileged.Created": "privileged pod",
    "GCP.K8s.ExecIntoPod": "exec / attach",
    "Kubernetes.Pod.Exec": "exec / attach",
    "Kubernetes.Kubectl.CP.Operation": "exec / attach",
    "Kubernetes.Pod.StealServiceAccountToken": "exec / attach",
    "GCP.K8s.Pod.Attached.To.Node.Host.Network": "host network",
    "Kubernetes.Pod.Host.Network": "host network",
    "GCP.K8s.Pod.Using.Host.PID.Namespace": "host PID / IPC",
    "Kubernetes.Pod.Host.PID": "host PID / IPC",
    "Kubernetes.Pod.Host.IPC": "host PID / IPC",
    "Kubernetes.Pod.Dangerous.Capabilities": "dangerous capabilities",
    "Kubernetes.AdmissionController.Created": "admission webhooks",
    "Kubernetes.BulkSecretAccess": "secrets access",
    "Kubernetes.Secret.AccessDenied": "secrets access",
    "Kubernetes.Secrets.DumpAllNamespaces": "secrets access",
    "Kubernetes.ClientCertificate.Created": "client certificates",
    "Kubernetes.ClusterRoleBinding.Privileged": "RBAC escalation",
    "Kubernetes.Role.NodeProxyPermissions": "RBAC escalation",
    "Kubernetes.Role.PodExec": "RBAC escalation",
    "Kubernetes.Role.Wildcard": "RBAC escalation",
    "Kubernetes.SystemRole.Modified": "RBAC escalation",
    "Kubernetes.Pod.SystemNamespace": "system namespaces",
}


@dataclass
class Tally:
    positives: int = 0
    recalled: int = 0
    negatives: int = 0
    alerted: int = 0
    missed: list[str] = field(default_factory=list)
    false_alerts: list[str] = field(default_factory=list)

    def row(self) -> tuple[int, int, int, int]:
        return (self.recalled, self.positives, self.alerted, self.negatives)


@dataclass
class Report:
    name: str
    families: dict[str, Tally] = field(default_factory=lambda: defaultdict(Tally))
    uncovered: Counter[str] = field(default_factory=Counter)  # upstream rule → labelled events
    unparsed: list[str] = field(default_factory=list)
    pack_alerts_on_negatives: Counter[str] = field(default_factory=Counter)  # rule title → n


class Judge:
    """The pack, with family → alerting rule ids resolved once."""

    def __init__(self, root: Path = KUBERNETES_RULES) -> None:
        self.ruleset: RuleSet = pack(root)[0]
        by_stem: dict[str, set[str]] = defaultdict(set)
        for rule in self.ruleset.rules:
            if rule.output and rule.path:
                by_stem[Path(rule.path).stem].add(rule.id)
        for correlation in self.ruleset.correlations:
            if correlation.path:
                by_stem[Path(correlation.path).stem].add(correlation.id)
        self.family_ids = {
            family: set().union(*(by_stem[stem] for stem in stems))
            for family, stems in FAMILIES.items()
        }
        names = {rule.name: rule.id for rule in self.ruleset.rules if rule.name}
        for family, base in BURST_BASES.items():
            self.family_ids[family].add(names[base])
        self.titles = {rule.id: rule.title for rule in self.ruleset.rules}
        self.alerting = {rule.id for rule in self.ruleset.rules if rule.output}

    def alerts(self, records: Iterable[Any]) -> tuple[set[str], bool]:
        """Ids of alerting rules (and burst bases) that fire; False when nothing parsed."""
        batch = normalize(list(records), "k8s-audit", RECEIVED_AT)
        if not batch.events:
            return set(), False
        bases = set().union(*(self.family_ids[f] for f in BURST_BASES))
        fired = {
            m.rule.id
            for m in self.ruleset.match(batch.events)
            if m.rule.output or m.rule.id in bases
        }
        return fired, True

    def score(
        self, report: Report, family: str, expected: bool, records: list[Any], label: str
    ) -> None:
        fired, parsed = self.alerts(records)
        if not parsed:
            report.unparsed.append(label)
        tally = report.families[family]
        hit = bool(fired & self.family_ids[family])
        if expected:
            tally.positives += 1
            tally.recalled += hit
            if not hit:
                tally.missed.append(label)
        else:
            tally.negatives += 1
            tally.alerted += hit
            if hit:
                tally.false_alerts.append(label)
            for rule_id in fired:
                if rule_id in self.alerting:
                    report.pack_alerts_on_negatives[self.titles[rule_id]] += 1


def falco_report(judge: Judge) -> Report:
    labels = json.loads((FALCO_TRACES / "LABELS.json").read_text())["trace_files"]
    report = Report("Falco k8s_audit trace files")
    for file_name, tests in sorted(labels.items()):
        records = _json_lines(FALCO_TRACES / file_name)
        for test in tests:
            if not set(test["rules_files"]) <= STOCK_FALCO_FILES:
                continue
            label = f"{file_name} ({test['test']})"
            if test["detect"]:
                for counts in test["detect_counts"]:
                    for falco_rule, count in counts.items():
                        family = FALCO_FAMILY.get(falco_rule)
                        if family is None:
                            report.uncovered[falco_rule] += 1
                            continue
                        # One labelled unit per expected alert (the configmap file holds six).
                        units = _split(records, count)
                        for index, unit in enumerate(units):
                            judge.score(report, family, True, unit, f"{label} #{index + 1}")
            else:
                family = FALCO_NEGATIVE_FAMILY.get(test["test"])
                if family is None:
                    report.uncovered[test["test"]] += 1
                    continue
                judge.score(report, family, False, records, label)
    return report


def _json_lines(path: Path) -> list[Any]:
    """The records of a JSON-lines file; a line that is not JSON stays as text for the parser."""
    records: list[Any] = []
    for line in path.read_text(encoding="utf-8-sig").splitlines():
        if line.strip():
            try:
                records.append(json.loads(line))
            except ValueError:
                records.append(line)
    return records


def _split(records: list[Any], count: int) -> list[list[Any]]:
    if count == len(records):
        return [[record] for record in records]
    return [records]


def panther_report(judge: Judge) -> Report:
    report = Report("Panther Kubernetes rule tests")
    for line in PANTHER_TESTS.read_text().splitlines():
        test = json.loads(line)
        family = PANTHER_FAMILY.get(test["rule_id"])
        if family is None:
            report.uncovered[test["rule_id"]] += 1
            continue
        label = f"{test['rule_id']} / {test['test_name']}"
        judge.score(report, family, bool(test["expected_result"]), [test["log"]], label)
    return report


def benign_alerts(judge: Judge) -> tuple[int, Counter[str]]:
    """Events in the benign sets, and alerts per rule title on them."""
    events = 0
    alerts: Counter[str] = Counter()
    for path in BENIGN_SETS:
        records = (
            _json_lines(path)
            if path.suffix == ".log"
            else [json.loads(path.read_text(encoding="utf-8-sig"))]
        )
        batch = normalize(records, "k8s-audit", RECEIVED_AT)
        events += len(batch.events)
        for match in judge.ruleset.match(batch.events):
            if match.rule.output:
                alerts[match.rule.title] += 1
    return events, alerts


def corpus_present() -> bool:
    return FALCO_TRACES.is_dir() and PANTHER_TESTS.is_file()


def table(report: Report) -> str:
    lines = [
        "| family | recall (positives) | family alerts on negatives |",
        "| --- | --- | --- |",
    ]
    for family in FAMILIES:
        tally = report.families.get(family)
        if tally is None:
            continue
        recall = f"{tally.recalled}/{tally.positives}" if tally.positives else "-"
        alerted = f"{tally.alerted}/{tally.negatives}" if tally.negatives else "-"
        lines.append(f"| {family} | {recall} | {alerted} |")
    total = [sum(t.row()[i] for t in report.families.values()) for i in range(4)]
    lines.append(f"| **all covered** | **{total[0]}/{total[1]}** | **{total[2]}/{total[3]}** |")
    return "\n".join(lines)


def main() -> None:
    judge = Judge()
    for report in (falco_report(judge), panther_report(judge)):
        print(f"## {report.name}\n\n{table(report)}\n")
        print("uncovered:", dict(report.uncovered))
        print("unparsed:", report.unparsed)
        for family, tally in report.families.items():
            for label in tally.missed:
                print(f"  MISS  [{family}] {label}")
            for label in tally.false_alerts:
                print(f"  ALERT [{family}] {label}")
        print("pack alerts on negatives:", dict(report.pack_alerts_on_negatives), "\n")
    events, alerts = benign_alerts(judge)
    print(f"benign: {events} events, alerts {dict(alerts)}")


if __name__ == "__main__":
    main()
