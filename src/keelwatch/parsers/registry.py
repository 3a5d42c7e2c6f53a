"""The parser registry: every log type Keelwatch understands, by name.

The order of ``_MODULES`` is the order the "auto" route tries ``matches``: more specific shapes
first (a GKE audit entry is also a GCP Cloud Audit Log entry; CloudTrail before generic logs).
"""

from __future__ import annotations

import importlib
from functools import cache

from keelwatch.errors import ConfigError
from keelwatch.parsers.base import Parser, ParserModule, Record

_MODULES = (
    "k8s_audit",
    "cloudtrail",
    "gcp_audit",
    "syslog",  # before falco: a <PRI> line carrying an alert keeps its header
    "falco",
    "tetragon",
    "tracee",
    "hubble",
    "kube_bench",
    "kubescape",
    "trivy_operator",
    "k8s_event",
    "otel_log",
    "loki",
    "splunk_hec",
    "container",
)

AUTO = "auto"


@cache
def parsers() -> dict[str, Parser]:
    """All parsers by name, loaded on first use (nothing happens at import time)."""
    found: dict[str, Parser] = {}
    for module_name in _MODULES:
        module: ParserModule = importlib.import_module(f"keelwatch.parsers.{module_name}")
        parser = Parser(
            module.NAME, module.DATASET, module.DESCRIPTION, module.matches, module.parse
        )
        if parser.name in found:
            raise ConfigError(f"two parsers are named {parser.name!r}")
        found[parser.name] = parser
    return found


def get_parser(name: str) -> Parser:
    """The parser called ``name``; an unknown name fails with the list of known ones."""
    try:
        return parsers()[name]
    except KeyError:
        known = ", ".join([AUTO, *parsers()])
        raise ConfigError(f"unknown source {name!r}; known sources: {known}") from None


def recognise(record: Record, skip: frozenset[str] = frozenset()) -> Parser | None:
    """The first parser (not named in ``skip``) whose shape test accepts ``record``, or None."""
    for parser in parsers().values():
        if parser.name in skip:
            continue
        try:
            if parser.matches(record):
                return parser
        except Exception:  # noqa: S112 - a broken shape test must not stop recognition
            continue
    return None
