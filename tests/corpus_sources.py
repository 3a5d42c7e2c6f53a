"""Which files of ../shared/corpus each source reads, and how to turn them into request bodies."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import orjson

from keelwatch.files import read_chunks

# source → glob patterns inside the corpus
CORPUS_SOURCES: dict[str, tuple[str, ...]] = {
    "k8s-audit": (
        "k8s-audit/falco-trace-files/*.json",
        "k8s-audit/elastic-integrations/*.log",
        "k8s-audit/aks-sysdiglabs/*.json",
        "panther-analysis/extracted-tests/kubernetes_audit.ndjson",
    ),
    "falco": ("falco/alerts-elastic-integrations/*", "falco/alerts-wazuh/*"),
    "tetragon": ("tetragon/**/*.json", "tetragon/elastic-integrations/*.log"),
    "hubble": ("network-flows/hubble-otel/*.json",),
    "container": (
        "container-logs/fluent-bit/log/**/*.log",
        "container-logs/fluent-bit/out/**/*.out",
    ),
    "k8s-event": ("container-logs/fluent-bit-k8s-events/*.json",),
    "cloudtrail": (
        "cloud/aws-cloudtrail-stratus-red-team/*.json",
        "cloud/aws-cloudtrail-otrf/*.json",
        "panther-analysis/extracted-tests/aws_cloudtrail.ndjson",
    ),
    "gcp-audit": (
        "cloud/gcp-audit-security-analytics/*.json",
        "panther-analysis/extracted-tests/gcp_auditlog.ndjson",
    ),
    "kube-bench": ("kspm/kube-bench/*.json",),
    "kubescape": (
        "kspm/kubescape/*.json",
        "kspm/kubescape-regolibrary-tests/*/test/*/expected.json",
    ),
    "trivy-operator": ("kspm/trivy-operator/*.json", "kspm/trivy-operator/*.yaml"),
}

PANTHER = "panther-analysis/extracted-tests/"


def corpus_files(corpus: Path) -> Iterator[tuple[str, Path]]:
    for source, patterns in CORPUS_SOURCES.items():
        for pattern in patterns:
            for path in sorted(corpus.glob(pattern)):
                if path.is_file():
                    yield source, path


def bodies(path: Path) -> Iterator[bytes]:
    """Request bodies for a corpus file; Panther test files carry the raw record in `log`."""
    if PANTHER in path.as_posix():
        lines = [orjson.loads(line) for line in path.read_bytes().splitlines() if line.strip()]
        yield b"\n".join(orjson.dumps(item["log"]) for item in lines) + b"\n"
        return
    yield from read_chunks(path)
