"""Small builders for rule tests: a rule from a detection block, evaluated two ways."""

from __future__ import annotations

import textwrap
import uuid
from typing import Any

from keelwatch.detect import Rule, RuleSet, load_texts

LOGSOURCE = "product: keelwatch"


def rule_yaml(detection: str, logsource: str = LOGSOURCE, **extra: str) -> str:
    """A complete Sigma rule around an indented-free ``detection`` block."""
    body = textwrap.indent(textwrap.dedent(detection).strip(), "    ")
    head = "\n".join(f"{key}: {value}" for key, value in extra.items())
    return (
        f"title: Test rule\nid: {uuid.uuid4()}\nstatus: test\n{head}\n"
        f"logsource:\n{textwrap.indent(logsource, '    ')}\n"
        f"detection:\n{body}\nlevel: high\n"
    )


def load_one(detection: str, logsource: str = LOGSOURCE, **extra: str) -> RuleSet:
    ruleset, errors = load_texts([("test.yml", rule_yaml(detection, logsource, **extra))])
    assert not errors, [str(e) for e in errors]
    assert len(ruleset) == 1
    return ruleset


def matches(ruleset: RuleSet, event: dict[str, Any]) -> bool:
    """Whether the rule matches, checked both through the index and by its own predicate."""
    rule: Rule = ruleset.rules[0]
    indexed = bool(ruleset.match([event]))
    direct = rule.matches(event)
    assert indexed == direct, (indexed, direct, event)
    return indexed
