"""Events generated from a rule's own detection: ones that should match, and near misses.

Works on pySigma's parsed condition of the processed rule (Keelwatch field names), not on
Keelwatch's compiled tree, so the generator does not share the compiler's reading of the rule.
A positive event is a template of the rule's dataset with fields set so the condition holds
(one per OR branch at the top); near misses change one detection item's value: its case, a
character more or less at either end, another type, a list around it, or no value at all.
"""

from __future__ import annotations

import copy
import ipaddress
import re
import re._constants as sre_constants  # the stdlib regex parser, to build sample strings
import re._parser as sre_parse
from collections.abc import Iterator, Mapping
from typing import Any

from sigma.conditions import (
    ConditionAND,
    ConditionFieldEqualsValueExpression,
    ConditionNOT,
    ConditionOR,
    ConditionValueExpression,
)
from sigma.rule import SigmaRule
from sigma.types import (
    CompareOperators,
    SigmaBool,
    SigmaCIDRExpression,
    SigmaCompareExpression,
    SigmaExists,
    SigmaExpansion,
    SigmaFieldReference,
    SigmaNull,
    SigmaNumber,
    SigmaRegularExpression,
    SigmaString,
    SpecialChars,
)

ABSENT = object()
MAX_BRANCHES = 4
MAX_LEAVES = 40


def events_for(rule: SigmaRule, templates: Mapping[str, dict[str, Any]]) -> list[dict[str, Any]]:
    conditions = [c.parsed for c in rule.detection.parsed_condition if c.parsed is not None]
    events: list[dict[str, Any]] = []
    for cond in conditions:
        for branch in range(MAX_BRANCHES):
            assignment: dict[str, Any] = {}
            _solve(cond, True, assignment, branch)
            positive = _apply(templates, assignment)
            if positive in events:
                continue
            events.append(positive)
            for number, (field, value) in enumerate(_leaves(cond)):
                if number >= MAX_LEAVES:
                    break
                if field in assignment and assignment[field] is not ABSENT:
                    base = assignment[field]
                else:
                    base = _sample(value)
                    if base is ABSENT:
                        continue
                for variant in _variants(base):
                    changed = dict(assignment)
                    changed[field] = variant
                    events.append(_apply(templates, changed))
    return events


# --- solving ----------------------------------------------------------------------------------


def _solve(cond: Any, want: bool, out: dict[str, Any], branch: int) -> None:
    if isinstance(cond, ConditionNOT):
        _solve(cond.args[0], not want, out, branch)
    elif isinstance(cond, ConditionAND):
        if want:
            for arg in cond.args:
                _solve(arg, True, out, branch)
        else:
            _solve(cond.args[-1], False, out, branch)
    elif isinstance(cond, ConditionOR):
        if want:
            _solve(cond.args[branch % len(cond.args)], True, out, branch // len(cond.args))
        else:
            for arg in cond.args:
                _solve(arg, False, out, branch)
    elif isinstance(cond, ConditionFieldEqualsValueExpression):
        value = cond.value
        existing = out.get(cond.field, ABSENT)
        if isinstance(value, SigmaFieldReference):
            if cond.field not in out:
                shared = "Shared-Value-1"
                out[cond.field] = shared if want else "other"
                out.setdefault(value.field, shared)
            return
        if isinstance(value, SigmaNull):
            out.setdefault(cond.field, ABSENT if want else "present")
        elif isinstance(value, SigmaExists):
            out.setdefault(cond.field, "present" if want == value.exists else ABSENT)
        elif not want:
            out.setdefault(cond.field, ABSENT)
        elif existing is ABSENT:
            out[cond.field] = _sample(value)
        elif isinstance(existing, str) and isinstance(value, SigmaString):
            out[cond.field] = _combine(existing, value)
    elif isinstance(cond, ConditionValueExpression) and want and "message" not in out:
        sample = _sample(cond.value)
        out["message"] = f"before {sample} after" if sample is not ABSENT else "x"


def _combine(existing: str, value: SigmaString) -> str:
    """Satisfy one more string test on a field that already holds ``existing``."""
    sample = _sample(value)
    anchored_start = value.s[:1] != [SpecialChars.WILDCARD_MULTI]
    anchored_end = value.s[-1:] != [SpecialChars.WILDCARD_MULTI]
    if anchored_start and anchored_end:
        return str(sample)
    if anchored_start:
        return f"{sample} {existing}"
    return f"{existing} {sample}"


def _leaves(cond: Any) -> Iterator[tuple[str, Any]]:
    if isinstance(cond, ConditionAND | ConditionOR | ConditionNOT):
        for arg in cond.args:
            yield from _leaves(arg)
    elif isinstance(cond, ConditionFieldEqualsValueExpression):
        yield cond.field, cond.value
    elif isinstance(cond, ConditionValueExpression):
        yield "message", cond.value


# --- values -----------------------------------------------------------------------------------


def _sample(value: Any) -> Any:
    if isinstance(value, SigmaExpansion):
        return _sample(value.values[0]) if value.values else ABSENT
    if isinstance(value, SigmaString):
        parts = []
        for part in value.s:
            if part is SpecialChars.WILDCARD_MULTI:
                parts.append("Ab1")
            elif part is SpecialChars.WILDCARD_SINGLE:
                parts.append("q")
            elif isinstance(part, str):
                parts.append(part)
        return "".join(parts)
    if isinstance(value, SigmaBool):
        return value.boolean
    if isinstance(value, SigmaNumber):
        return value.number
    if isinstance(value, SigmaCompareExpression):
        limit = value.number.number
        return {
            CompareOperators.GT: limit + 1,
            CompareOperators.GTE: limit,
            CompareOperators.LT: limit - 1,
            CompareOperators.LTE: limit,
        }.get(value.op, limit + 1)
    if isinstance(value, SigmaCIDRExpression):
        network = value.network
        return str(network.network_address + (1 if network.num_addresses > 1 else 0))
    if isinstance(value, SigmaRegularExpression):
        return regex_sample(str(value.regexp))
    return ABSENT


def _variants(base: Any) -> list[Any]:
    out: list[Any] = [ABSENT, [base], ["other", base]]
    if isinstance(base, bool):
        out += [not base, str(base).lower(), int(base)]
    elif isinstance(base, int | float):
        out += [base + 1, base - 1, str(base), float(base)]
    elif isinstance(base, str):
        out += [base.upper(), base.swapcase(), "x" + base, base + "x", base[1:], base[:-1], ""]
        if base.isdigit():
            out.append(int(base))
        try:
            address = ipaddress.ip_address(base)
            out += [str(address + 1), str(address - 1)]
        except ValueError:
            pass
    return out


def _apply(templates: Mapping[str, dict[str, Any]], assignment: dict[str, Any]) -> dict[str, Any]:
    dataset = assignment.get("event.dataset")
    key = dataset.lower() if isinstance(dataset, str) else ""
    event = copy.deepcopy(templates.get(key) or {})
    for field, value in assignment.items():
        _set(event, field, value)
    return event


def _set(event: dict[str, Any], field: str, value: Any) -> None:
    """Set a (Keelwatch syntax) field: ``a[].b`` builds a list of objects, ``a{}`` a leaf."""
    if field.endswith("{}"):
        prefix = field[:-2]
        for key in [k for k in event if k == prefix or k.startswith(prefix + ".")]:
            del event[key]
        if value is not ABSENT:
            event[prefix + ".generated"] = value
        return
    if "[]" in field:
        head, _, rest = field.partition("[]")
        if value is ABSENT:
            event.pop(head, None)
            return
        node: Any = value
        for step in reversed([s for s in rest.split(".") if s]):
            node = {step: node}
        event[head] = [node]
        return
    if value is ABSENT:
        event.pop(field, None)
    else:
        event[field] = value


def regex_sample(pattern: str) -> str:
    """A string the pattern should match (first alternatives, minimal repeats)."""
    try:
        parsed = sre_parse.parse(pattern)
    except (re.error, RecursionError):
        return pattern
    return _render(parsed)


def _render(items: Any) -> str:
    out: list[str] = []
    for op, arg in items:
        if op is sre_constants.LITERAL:
            out.append(chr(arg))
        elif op is sre_constants.ANY:
            out.append("a")
        elif op is sre_constants.IN:
            out.append(_first_in(arg))
        elif op in (sre_constants.MAX_REPEAT, sre_constants.MIN_REPEAT):
            low, _high, sub = arg
            out.append(_render(sub) * low)
        elif op is sre_constants.SUBPATTERN:
            out.append(_render(arg[-1]))
        elif op is sre_constants.BRANCH:
            out.append(_render(arg[1][0]))
        elif op is sre_constants.NOT_LITERAL:
            out.append("a" if arg != ord("a") else "b")
    return "".join(out)


def _first_in(items: Any) -> str:
    negate = False
    for op, arg in items:
        if op is sre_constants.NEGATE:
            negate = True
        elif negate:
            return "Z" if not (op is sre_constants.LITERAL and arg == ord("Z")) else "Y"
        elif op is sre_constants.LITERAL:
            return chr(arg)
        elif op is sre_constants.RANGE:
            return chr(arg[0])
        elif op is sre_constants.CATEGORY:
            return {
                sre_constants.CATEGORY_DIGIT: "1",
                sre_constants.CATEGORY_SPACE: " ",
                sre_constants.CATEGORY_WORD: "w",
            }.get(arg, "a")
    return "a"
