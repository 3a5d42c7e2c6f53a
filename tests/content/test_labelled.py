"""Regression guard for the labelled evaluation in docs/detection.md ("Labelled evaluation").

The whole Kubernetes pack runs over Falco's labelled trace files, Panther's labelled rule tests
and benign audit samples (tests/content/labelled.py). Per scenario family the recall must stay at
or above, and the alerts on labelled negatives at or below, the numbers documented; the labelled
sets themselves must not change size unnoticed. Skipped where ../shared/corpus is absent.
"""

from __future__ import annotations

import pytest

from tests.content.labelled import (
    FAMILIES,
    Judge,
    Report,
    benign_alerts,
    corpus_present,
    falco_report,
    panther_report,
)

pytestmark = [
    pytest.mark.corpus,
    pytest.mark.skipif(
        not corpus_present(),
        reason="labelled corpus (../shared/corpus: Falco trace files, Panther tests) not found",
    ),
]

# family → (recalled, positives, alerts on negatives, negatives), as documented.
FALCO = {
    "exec / attach": (2, 2, 0, 0),
    "privileged pod": (3, 3, 0, 1),
    "host network": (1, 1, 0, 1),
    "hostPath mount": (2, 2, 0, 1),
    "secrets access": (0, 0, 0, 1),
    "configmap credentials": (6, 6, 0, 1),
    "service-account tokens": (0, 0, 0, 1),
    "anonymous access": (1, 1, 0, 0),
    "RBAC escalation": (6, 6, 0, 0),
    "system namespaces": (2, 4, 0, 0),
}
PANTHER = {
    "exec / attach": (17, 17, 6, 10),
    "privileged pod": (4, 7, 3, 7),
    "host PID / IPC": (7, 7, 1, 6),
    "host network": (4, 4, 0, 4),
    "hostPath mount": (3, 4, 1, 5),
    "dangerous capabilities": (3, 3, 0, 3),
    "secrets access": (13, 13, 5, 12),
    "service-account tokens": (8, 11, 4, 25),
    "anonymous access": (3, 7, 0, 9),
    "forbidden burst": (4, 4, 3, 5),
    "RBAC escalation": (19, 19, 9, 25),
    "client certificates": (4, 4, 0, 5),
    "admission webhooks": (3, 3, 0, 3),
    "cronjob / daemonset": (6, 9, 1, 9),
    "system namespaces": (4, 4, 1, 5),
}
BENIGN_EVENTS = 30
BENIGN_ALERTS = 2


@pytest.fixture(scope="module")
def judge() -> Judge:
    return Judge()


def _check(report: Report, documented: dict[str, tuple[int, int, int, int]]) -> None:
    assert set(report.families) == set(documented)
    assert set(documented) <= set(FAMILIES)
    for family, (recalled, positives, alerted, negatives) in documented.items():
        tally = report.families[family]
        assert (tally.positives, tally.negatives) == (positives, negatives), family
        assert tally.recalled >= recalled, (family, tally.missed)
        assert tally.alerted <= alerted, (family, tally.false_alerts)


def test_falco_trace_files(judge: Judge) -> None:
    report = falco_report(judge)
    _check(report, FALCO)
    assert report.unparsed == []


def test_panther_rule_tests(judge: Judge) -> None:
    report = panther_report(judge)
    _check(report, PANTHER)
    # Four GCP entries are Deployment Manager calls, not GKE audit entries.
    assert len(report.unparsed) == 4


def test_benign_samples(judge: Judge) -> None:
    events, alerts = benign_alerts(judge)
    assert events == BENIGN_EVENTS
    assert sum(alerts.values()) <= BENIGN_ALERTS, alerts
