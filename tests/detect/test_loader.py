"""Loading: metadata, per-rule errors with file:line, strict mode, filters, correlation rules."""

from __future__ import annotations

from pathlib import Path

import pytest

from keelwatch.detect import RuleError, load_rules, load_texts
from keelwatch.model.severity import CRITICAL, INFO, MEDIUM

from .helpers import rule_yaml

GOOD = rule_yaml("sel:\n  a: '1'\ncondition: sel", "product: keelwatch\nservice: test")


def test_metadata_of_a_rule(tmp_path: Path) -> None:
    (tmp_path / "r.yml").write_text(
        "title: Exec\nid: 11111111-1111-4111-8111-111111111111\nstatus: stable\n"
        "description: |\n  Exec into a pod.\nauthor: me\n"
        "tags:\n  - attack.execution\n  - attack.t1609\n  - attack.t1552.007\n  - attack.g0001\n"
        "logsource:\n  product: kubernetes\n  service: audit\n"
        "detection:\n  sel:\n    verb: create\n  condition: sel\n"
        "falsepositives:\n  - Admins\nlevel: critical\n"
    )
    ruleset, errors = load_rules([tmp_path])
    assert errors == []
    rule = ruleset.get("11111111-1111-4111-8111-111111111111")
    assert rule is not None
    assert rule.title == "Exec" and rule.level == "critical" and rule.severity == CRITICAL
    assert rule.techniques == ("T1609", "T1552.007")
    assert rule.tactics == ("execution",)
    assert rule.description == "Exec into a pod."
    assert rule.falsepositives == ("Admins",)
    assert rule.status == "stable" and rule.logsource == "kubernetes/audit"
    assert rule.path == str(tmp_path / "r.yml") and rule.line == 1
    assert rule.output is True
    assert {"event.dataset", "kubernetes.audit.verb"} <= rule.fields


def test_levels_map_onto_the_severity_scale() -> None:
    texts = [
        (
            "a.yml",
            rule_yaml("s:\n  a: '1'\ncondition: s").replace("level: high", "level: informational"),
        ),
        ("b.yml", rule_yaml("s:\n  a: '1'\ncondition: s").replace("level: high\n", "")),
    ]
    ruleset, errors = load_texts(texts)
    assert not errors
    assert sorted(rule.severity for rule in ruleset) == [INFO, MEDIUM]


def test_each_broken_rule_is_reported_with_file_line_and_reason(tmp_path: Path) -> None:
    (tmp_path / "good.yml").write_text(GOOD)
    (tmp_path / "yaml.yml").write_text("title: x\ndetection:\n  sel: [unclosed\n")
    (tmp_path / "modifier.yml").write_text(rule_yaml("sel:\n  a|nosuchmodifier: x\ncondition: sel"))
    (tmp_path / "regex.yml").write_text(rule_yaml("sel:\n  a|re: '(?<=x)y'\ncondition: sel"))
    (tmp_path / "field.yml").write_text(
        rule_yaml("sel:\n  Image: /bin/sh\n  LogonId: 0\ncondition: sel",
                  "product: linux\ncategory: process_creation")
    )  # fmt: skip
    (tmp_path / "windows.yml").write_text(
        rule_yaml(
            "sel:\n  Image: x\ncondition: sel", "product: windows\ncategory: process_creation"
        )
    )
    (tmp_path / "condition.yml").write_text(rule_yaml("sel:\n  a: x\ncondition: sel and nothere"))
    ruleset, errors = load_rules([tmp_path])
    assert len(ruleset) == 1
    by_file = {Path(error.path).name: error for error in errors}
    assert set(by_file) == {
        "yaml.yml", "modifier.yml", "regex.yml", "field.yml", "windows.yml", "condition.yml",
    }  # fmt: skip
    assert by_file["yaml.yml"].line == 3 and "invalid YAML" in by_file["yaml.yml"].reason
    assert "nosuchmodifier" in by_file["modifier.yml"].reason
    assert by_file["modifier.yml"].line == _line_of(tmp_path / "modifier.yml", "nosuchmodifier")
    # pySigma's own check runs on re2 too: look-behind is refused with the pattern quoted
    assert "(?<=x)y" in by_file["regex.yml"].reason and "invalid" in by_file["regex.yml"].reason
    assert by_file["regex.yml"].line == _line_of(tmp_path / "regex.yml", "(?<=x)y")
    assert "LogonId" in by_file["field.yml"].reason
    assert by_file["field.yml"].line == _line_of(tmp_path / "field.yml", "LogonId")
    assert by_file["windows.yml"].unsupported and "not supported" in by_file["windows.yml"].reason
    assert "nothere" in by_file["condition.yml"].reason
    assert all(not e.unsupported for name, e in by_file.items() if name != "windows.yml")
    assert str(by_file["regex.yml"]).startswith(f"{tmp_path / 'regex.yml'}:")


def _line_of(path: Path, token: str) -> int:
    return next(n for n, line in enumerate(path.read_text().splitlines(), 1) if token in line)


def test_a_rule_in_a_multi_document_file_is_located_in_its_document() -> None:
    bad = rule_yaml("sel:\n  a|re: '(?=x)'\ncondition: sel")
    text = f"{GOOD}---\n{bad}"
    ruleset, errors = load_texts([("many.yml", text)])
    assert len(ruleset) == 1 and len(errors) == 1
    assert errors[0].line == _line_of_text(text, "(?=x)")


def _line_of_text(text: str, token: str) -> int:
    return next(n for n, line in enumerate(text.splitlines(), 1) if token in line)


def test_strict_mode_raises_on_the_first_error() -> None:
    with pytest.raises(RuleError) as raised:
        load_texts([("a.yml", GOOD), ("b.yml", "title: [")], strict=True)
    assert raised.value.error.path == "b.yml"
    # a rule for another log source is not an error, even strictly
    windows = rule_yaml("s:\n  a: x\ncondition: s", "product: windows\ncategory: registry_event")
    ruleset, errors = load_texts([("w.yml", windows)], strict=True)
    assert len(ruleset) == 0 and errors[0].unsupported


def test_duplicate_ids_keep_the_first() -> None:
    ruleset, errors = load_texts([("a.yml", GOOD), ("b.yml", GOOD)])
    assert len(ruleset) == 1
    assert ruleset.rules[0].path == "a.yml"
    assert (
        len(errors) == 1 and "duplicate rule id" in errors[0].reason and errors[0].path == "b.yml"
    )


def test_sigma_filters_apply_to_the_rules_they_name() -> None:
    rule = rule_yaml("sel:\n  user: '*'\ncondition: sel", "product: keelwatch\nservice: test")
    rule_id = rule.split("id: ", 1)[1].split("\n", 1)[0]
    sigma_filter = (
        "title: Allow the CI account\nid: 22222222-2222-4222-8222-222222222222\n"
        "logsource:\n  product: keelwatch\n  service: test\n"
        f"filter:\n  rules:\n    - {rule_id}\n  selection:\n    user: ci-bot\n"
        "  condition: not selection\n"
    )
    ruleset, errors = load_texts([("rule.yml", rule), ("filter.yml", sigma_filter)])
    assert not errors
    alice = {"event.dataset": "test", "user": "alice"}
    bot = {"event.dataset": "test", "user": "CI-bot"}
    assert [m.index for m in ruleset.match([alice, bot])] == [0]


CORRELATION = """
title: Many exec
id: 33333333-3333-4333-8333-333333333333
correlation:
    type: event_count
    rules:
        - exec_rule
    group-by:
        - User
        - kubernetes.pod.name
    timespan: 5m
    condition:
        gte: 10
level: high
---
title: Exec
name: exec_rule
id: 44444444-4444-4444-8444-444444444444
logsource:
    product: linux
    category: process_creation
detection:
    sel:
        Image|endswith: /sh
    condition: sel
level: low
"""


def test_correlation_rules_are_loaded_with_their_rules_resolved() -> None:
    ruleset, errors = load_texts([("c.yml", CORRELATION)])
    assert not errors
    (correlation,) = ruleset.correlations
    base = ruleset.get("44444444-4444-4444-8444-444444444444")
    assert base is not None and correlation.rules == (base,)
    assert base.output is False  # generate: false — it only feeds the correlation
    assert correlation.type == "event_count" and correlation.timespan_seconds == 300
    assert correlation.condition == {"gte": 10}
    assert correlation.group_by == ("User", "kubernetes.pod.name")
    assert correlation.field_for(base.id, "User") == "user.name"
    assert correlation.field_for(base.id, "kubernetes.pod.name") == "kubernetes.pod.name"


def test_a_correlation_whose_rule_is_missing_is_reported() -> None:
    text = CORRELATION.split("---")[0]
    ruleset, errors = load_texts([("c.yml", text)])
    assert not ruleset.correlations
    assert len(errors) == 1 and errors[0].path == "c.yml" and "exec_rule" in errors[0].reason


def test_unreadable_and_oversized_files_are_reported(tmp_path: Path) -> None:
    (tmp_path / "bin.yml").write_bytes(b"\xff\xfe\x00garbage")
    ruleset, errors = load_rules([tmp_path, tmp_path / "missing.yml"])
    assert len(ruleset) == 0
    assert {Path(e.path).name for e in errors} == {"bin.yml", "missing.yml"}
