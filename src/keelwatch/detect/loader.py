"""Load Sigma rules, filters and correlation rules from files; report each failure on its own.

Every file is parsed by pySigma on its own (so a broken file costs only itself), then all
rules and filters are merged: filters apply to the rules they name, correlation rules are
resolved against every loaded rule. Each rule then goes through the Keelwatch pipeline and is
compiled once. A rule that fails at any step becomes a ``RuleLoadError`` with file:line and the
reason; the others load.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import yaml
from sigma.collection import SigmaCollection
from sigma.correlations import SigmaCorrelationCondition, SigmaCorrelationRule
from sigma.exceptions import SigmaError, SigmaRuleLocation
from sigma.filters import SigmaFilter
from sigma.rule import SigmaRule, SigmaRuleBase

from keelwatch.detect.compile import CompileError, fields, rule_tree
from keelwatch.detect.emit import emit
from keelwatch.detect.rules import (
    Correlation,
    Rule,
    RuleError,
    RuleLoadError,
    info_kwargs,
    rule_id,
)
from keelwatch.detect.sigma_pipeline import (
    correlation_field,
    log_source_for,
    pipeline_for,
    supported_names,
)

MAX_RULE_FILE_BYTES = 4 << 20
RULE_SUFFIXES = (".yml", ".yaml")


def rule_files(paths: Iterable[str | Path]) -> list[Path]:
    """Files named by ``paths``: files as given, directories searched for *.yml / *.yaml."""
    found: list[Path] = []
    for item in paths:
        path = Path(item)
        if path.is_dir():
            found.extend(
                sorted(p for p in path.rglob("*") if p.suffix in RULE_SUFFIXES and p.is_file())
            )
        else:
            found.append(path)
    return found


class _Loader:
    def __init__(self, strict: bool) -> None:
        self.strict = strict
        self.errors: list[RuleLoadError] = []
        self.texts: dict[str, str] = {}

    def fail(
        self,
        path: str,
        reason: str,
        line: int | None = None,
        rule: str | None = None,
        unsupported: bool = False,
    ) -> None:
        error = RuleLoadError(path, line, reason, rule, unsupported)
        if self.strict and not unsupported:
            raise RuleError(error)
        self.errors.append(error)

    def fail_rule(self, rule: SigmaRuleBase, reason: str, unsupported: bool = False) -> None:
        path = _path(rule)
        line = _line_of(self.texts.get(path, ""), rule, reason)
        self.fail(path, reason, line, _label(rule), unsupported)

    def parse(self, path: str, text: str) -> SigmaCollection | None:
        self.texts[str(Path(path))] = text  # pySigma keeps the location as a Path
        try:
            collection = SigmaCollection.from_yaml(
                text,
                collect_errors=True,
                source=SigmaRuleLocation(Path(path)),
                collect_filters=True,
                resolve_references=False,
            )
        except yaml.YAMLError as error:
            # Where the unclosed construct began, else where the parser stopped.
            mark = getattr(error, "context_mark", None) or getattr(error, "problem_mark", None)
            line = mark.line + 1 if mark is not None else None
            self.fail(path, f"invalid YAML: {_one_line(error)}", line)
            return None
        except (SigmaError, ValueError, TypeError, AttributeError) as error:
            self.fail(path, f"not a Sigma rule file: {_one_line(error)}")
            return None
        owned = {id(err) for item in collection.rules + collection.filters for err in item.errors}
        for err in collection.errors:
            if id(err) not in owned:
                self.fail(path, _one_line(err), _line_of(text, None, str(err)))
        for item in [*collection.rules, *collection.filters]:
            if item.errors:
                for err in item.errors:
                    self.fail_rule(item, _one_line(err))
        collection.rules = [rule for rule in collection.rules if not rule.errors]
        collection.filters = [item for item in collection.filters if not item.errors]
        return collection


if TYPE_CHECKING:
    from keelwatch.detect.engine import RuleSet


def load_rules(
    paths: Iterable[str | Path], *, strict: bool = False
) -> tuple[RuleSet, list[RuleLoadError]]:
    """Load every rule under ``paths``; return the rule set and what could not be loaded.

    With ``strict``, the first rule that cannot load raises ``RuleError`` (rules for log sources
    Keelwatch does not read are still only reported).
    """
    sources: list[tuple[str, str]] = []
    loader = _Loader(strict)
    for path in rule_files(paths):
        try:
            size = path.stat().st_size
            if size > MAX_RULE_FILE_BYTES:
                loader.fail(str(path), f"file is {size} bytes, over {MAX_RULE_FILE_BYTES}")
                continue
            sources.append((str(path), path.read_text(encoding="utf-8")))
        except (OSError, UnicodeDecodeError) as error:
            loader.fail(str(path), f"cannot read: {error}")
    return _load(sources, loader)


def load_texts(
    sources: Iterable[tuple[str, str]], *, strict: bool = False
) -> tuple[RuleSet, list[RuleLoadError]]:
    """Like ``load_rules`` for (name, YAML text) pairs already in memory."""
    return _load(list(sources), _Loader(strict))


def _load(
    sources: Sequence[tuple[str, str]], loader: _Loader
) -> tuple[RuleSet, list[RuleLoadError]]:
    from keelwatch.detect.engine import RuleSet  # the engine imports the model, not the loader

    items: list[SigmaRule | SigmaCorrelationRule | SigmaFilter] = []
    for path, text in sources:
        collection = loader.parse(path, text)
        if collection is not None:
            items.extend(collection.rules)
            items.extend(collection.filters)
    merged = SigmaCollection(items, resolve_references=False)  # applies the filters

    rules: dict[str, Rule] = {}
    for sigma in merged.rules:
        if isinstance(sigma, SigmaRule):
            rule = _compile_rule(sigma, loader)
            if rule is None:
                continue
            if rule.id in rules:
                loader.fail_rule(
                    sigma, f"duplicate rule id {rule.id} (first in {rules[rule.id].path})"
                )
                continue
            rules[rule.id] = rule
    pending = []
    for sigma in merged.rules:
        if isinstance(sigma, SigmaCorrelationRule):
            try:  # also marks the referenced rules as feeding a correlation only
                sigma.resolve_rule_references(merged)
            except (SigmaError, ValueError) as error:
                loader.fail_rule(sigma, _one_line(error))
                continue
            pending.append(sigma)
    # A correlation with generate: false silences its rules' own alerts (Sigma's semantics).
    rules = {rule_id: _with_output(rule) for rule_id, rule in rules.items()}
    correlations: dict[str, Correlation] = {}
    while pending:  # correlations may refer to correlations: resolve in dependency order
        waiting = []
        for sigma in pending:
            if not _references_ready(sigma, merged, rules, correlations, pending):
                waiting.append(sigma)
                continue
            correlation = _compile_correlation(sigma, merged, rules, correlations, loader)
            if correlation is not None:
                correlations[correlation.id] = correlation
        if len(waiting) == len(pending):  # a cycle, or references that never load
            for sigma in waiting:
                _compile_correlation(sigma, merged, rules, correlations, loader)
            break
        pending = waiting
    return RuleSet(list(rules.values()), list(correlations.values())), loader.errors


def _compile_rule(sigma: SigmaRule, loader: _Loader) -> Rule | None:
    source = log_source_for(sigma.logsource)
    pipeline = pipeline_for(sigma.logsource)
    if source is None or pipeline is None:
        ls = sigma.logsource
        described = "/".join(str(p) for p in (ls.product, ls.category, ls.service) if p)
        loader.fail_rule(
            sigma,
            f"log source {described or '(none)'} is not supported"
            f" (supported: {', '.join(supported_names())})",
            unsupported=True,
        )
        return None
    try:
        pipeline.apply(sigma)
        tree = rule_tree(sigma)
        predicate = emit(tree)
    except (SigmaError, CompileError) as error:
        loader.fail_rule(sigma, _one_line(error))
        return None
    path = _path(sigma)
    line = _line_of(loader.texts.get(path, ""), sigma, "")
    return Rule(
        **info_kwargs(sigma, path, line),
        logsource=source.name,
        fields=frozenset(fields(tree)),
        tree=tree,
        predicate=predicate,
        sigma=sigma,
    )


def _references_ready(
    sigma: SigmaCorrelationRule,
    merged: SigmaCollection,
    rules: dict[str, Rule],
    correlations: dict[str, Correlation],
    pending: list[SigmaCorrelationRule],
) -> bool:
    """False while a referenced correlation rule is still waiting to be compiled."""
    waiting = {rule_id(item) for item in pending if item is not sigma} - set(correlations)
    for reference in sigma.rules or ():
        try:
            target = rule_id(merged[reference.reference])
        except (SigmaError, KeyError, ValueError):
            return True  # reported by _compile_correlation
        if target in waiting:
            return False
    return True


def _compile_correlation(
    sigma: SigmaCorrelationRule,
    merged: SigmaCollection,
    rules: dict[str, Rule],
    correlations: dict[str, Correlation],
    loader: _Loader,
) -> Correlation | None:
    referenced: list[Rule | Correlation] = []
    for reference in sigma.rules or ():
        target = rule_id(reference.rule)
        found = rules.get(target) or correlations.get(target)
        if found is None:
            loader.fail_rule(sigma, f"referenced rule {reference.reference!r} did not load")
            return None
        referenced.append(found)
    condition = sigma.condition
    wanted: dict[str, object] = {}
    if isinstance(condition, SigmaCorrelationCondition):
        wanted[condition.op.name.lower()] = condition.count
        if condition.fieldref is not None:
            wanted["field"] = condition.fieldref
    else:
        wanted["expression"] = getattr(condition, "expression", str(condition))
    aliases = {
        alias.alias: {rule_id(ref.rule): field for ref, field in alias.mapping.items()}
        for alias in sigma.aliases.aliases.values()
    }
    names = list(sigma.group_by or ())
    if isinstance(wanted.get("field"), str):
        names.append(str(wanted["field"]))
    by_rule: dict[str, dict[str, str]] = {}
    for member in referenced:
        source = member.logsource if isinstance(member, Rule) else ""
        try:  # a nested correlation's events keep the names as written
            by_rule[member.id] = {
                name: correlation_field(source, aliases.get(name, {}).get(member.id, name))
                for name in names
            }
        except SigmaError as error:
            loader.fail_rule(sigma, f"group-by field for rule {member.id}: {_one_line(error)}")
            return None
    path = _path(sigma)
    return Correlation(
        **info_kwargs(sigma, path, _line_of(loader.texts.get(path, ""), sigma, "")),
        type=sigma.type.name.lower(),
        rules=tuple(referenced),
        group_by=tuple(sigma.group_by or ()),
        timespan_seconds=sigma.timespan.seconds,
        condition=wanted,
        aliases=aliases,
        fields=by_rule,
        generate=sigma.generate,
        sigma=sigma,
    )


def _with_output(rule: Rule) -> Rule:
    output = bool(getattr(rule.sigma, "_output", True))
    return rule if output == rule.output else replace(rule, output=output)


# --- where a problem is -----------------------------------------------------------------------


def _path(rule: SigmaRuleBase) -> str:
    source = rule.source
    return str(source.path) if source is not None and source.path is not None else "<rules>"


def _label(rule: SigmaRuleBase) -> str | None:
    return str(rule.id) if rule.id is not None else rule.title or None


_QUOTED = re.compile(r"'([^']{2,200})'|\"([^\"]{2,200})\"")


def _line_of(text: str, rule: SigmaRuleBase | None, reason: str) -> int | None:
    """The line of the rule's document, or of a token the error quotes inside it."""
    if not text:
        return None
    lines = text.splitlines()
    start = 0
    if rule is not None:
        start = _rule_start(lines, rule)
    for match in _QUOTED.finditer(reason):
        token = match.group(1) or match.group(2)
        for number in range(start, len(lines)):
            if token in lines[number]:
                return number + 1
            if number > start and lines[number].startswith("---"):
                break
    return start + 1


def _rule_start(lines: list[str], rule: SigmaRuleBase) -> int:
    """First line of the YAML document holding ``rule`` (found by id, else by title)."""
    for key, wanted in (("id:", str(rule.id) if rule.id else None), ("title:", rule.title)):
        if not wanted:
            continue
        doc_start = 0
        for number, line in enumerate(lines):
            if line.startswith("---"):
                doc_start = number + 1
            elif line.startswith(key) and line[len(key) :].strip().strip("'\"") == wanted:
                return doc_start
    return 0


def _one_line(error: BaseException) -> str:
    text = " ".join(str(error).split())
    return text if len(text) <= 500 else text[:497] + "..."
