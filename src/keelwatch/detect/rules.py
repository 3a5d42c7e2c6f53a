"""What a loaded rule is: its metadata, compiled predicate, and what failed to load and why."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sigma.correlations import SigmaCorrelationRule
from sigma.rule import SigmaRule, SigmaRuleBase

from keelwatch.detect.compile import Node, Predicate
from keelwatch.errors import KeelwatchError
from keelwatch.model.severity import INFO, MEDIUM, severity_from_name

_TECHNIQUE = re.compile(r"t\d{4}(?:\.\d{3})?")
# Sigma's level when a rule has none: the middle of the scale, so it is neither lost nor loud.
DEFAULT_SEVERITY = MEDIUM


@dataclass(frozen=True, slots=True)
class RuleLoadError:
    """A rule (or file) that could not be loaded, with where and why; the others still load."""

    path: str
    line: int | None
    reason: str
    rule: str | None = None  # the rule's id or title, when known
    unsupported: bool = False  # a valid rule for a log source Keelwatch does not read

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line else self.path
        what = f" rule {self.rule!r}" if self.rule else ""
        return f"{where}:{what} {self.reason}"


class RuleError(KeelwatchError):
    """Raised by a strict load: the first rule that cannot load."""

    def __init__(self, error: RuleLoadError) -> None:
        super().__init__(str(error))
        self.error = error


@dataclass(frozen=True, eq=False, slots=True)
class RuleInfo:
    """Metadata shared by detection and correlation rules."""

    id: str
    title: str
    level: str | None
    severity: int
    techniques: tuple[str, ...]
    tactics: tuple[str, ...]
    tags: tuple[str, ...]
    description: str
    falsepositives: tuple[str, ...]
    references: tuple[str, ...]
    status: str | None
    name: str | None
    path: str | None
    line: int | None
    # False for a rule only referenced by a correlation (Sigma's generate: false): its matches
    # feed the correlation but raise no alert of their own.
    output: bool


@dataclass(frozen=True, eq=False, slots=True)
class Rule(RuleInfo):
    """A compiled Sigma detection rule."""

    logsource: str = ""
    fields: frozenset[str] = frozenset()
    tree: Node | None = field(default=None, repr=False)
    predicate: Predicate | None = field(default=None, repr=False)
    sigma: SigmaRule | None = field(default=None, repr=False)

    def matches(self, event: Mapping[str, Any]) -> bool:
        """Evaluate this rule alone (the engine indexes and batches instead)."""
        assert self.predicate is not None
        return self.predicate(event)


@dataclass(frozen=True, eq=False, slots=True)
class Correlation(RuleInfo):
    """A Sigma correlation rule with its referenced rules resolved (the correlation seam).

    ``rules`` are the compiled rules (or correlations) it counts. ``group_by`` and the
    condition's ``field`` are names as written; ``fields[rule id][name]`` is the Keelwatch field
    to read that name from in the events of that rule (aliases and Sigma names resolved).
    """

    type: str = "event_count"
    rules: tuple[Rule | Correlation, ...] = ()
    group_by: tuple[str, ...] = ()
    timespan_seconds: int = 0
    condition: Mapping[str, Any] = field(default_factory=dict)  # {"gte": 10, "field": ...}
    # alias → rule id → the name in that rule; rule id → group-by name → Keelwatch field
    aliases: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    fields: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    generate: bool = False
    sigma: SigmaCorrelationRule | None = field(default=None, repr=False)

    def field_for(self, rule_id: str, name: str) -> str:
        """The event field holding group-by (or condition) field ``name`` for rule ``rule_id``."""
        return self.fields.get(rule_id, {}).get(name, name)


def info_kwargs(rule: SigmaRuleBase, path: str | None, line: int | None) -> dict[str, Any]:
    """The RuleInfo fields of a pySigma rule."""
    level = rule.level.name.lower() if rule.level is not None else None
    if level is None:
        severity = DEFAULT_SEVERITY
    else:
        found = severity_from_name(level)
        severity = INFO if found is None else found
    techniques: list[str] = []
    tactics: list[str] = []
    tags: list[str] = []
    for tag in rule.tags or ():
        tags.append(str(tag))
        if tag.namespace.lower() != "attack":
            continue
        name = tag.name.lower()
        if _TECHNIQUE.fullmatch(name):
            techniques.append(name.upper())
        elif not name.startswith(("g", "s")) or not name[1:].isdigit():  # groups, software
            tactics.append(name)
    return {
        "id": rule_id(rule),
        "title": rule.title,
        "level": level,
        "severity": severity,
        "techniques": tuple(dict.fromkeys(techniques)),
        "tactics": tuple(dict.fromkeys(tactics)),
        "tags": tuple(tags),
        "description": (rule.description or "").strip(),
        "falsepositives": tuple(str(item) for item in rule.falsepositives or ()),
        "references": tuple(str(item) for item in rule.references or ()),
        "status": rule.status.name.lower() if rule.status is not None else None,
        "name": rule.name,
        "path": path,
        "line": line,
        "output": bool(getattr(rule, "_output", True)),
    }


def rule_id(rule: SigmaRuleBase) -> str:
    """The rule's id, else its name, else its title (rules without ids still get one)."""
    if rule.id is not None:
        return str(rule.id)
    return rule.name or rule.title
