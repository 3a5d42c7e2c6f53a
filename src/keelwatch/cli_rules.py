"""`keelwatch rules validate|test` (detection as code) and `keelwatch hunt` (retro-hunting)."""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

import click

from keelwatch.cli_alerts import print_alerts
from keelwatch.cli_common import console, data_option, errors, fail, reading, server_options
from keelwatch.errors import KeelwatchError

RULE_PATHS = click.argument(
    "paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path)
)


@click.group("rules")
def rules_group() -> None:
    """Check Sigma rules before they run: load them, and run their test events."""


@rules_group.command("validate")
@RULE_PATHS
@click.option("--strict", is_flag=True, help="Also fail on rules for unsupported log sources.")
def validate_command(paths: tuple[Path, ...], strict: bool) -> None:
    """Load every rule under PATHS; report each one that cannot load with file:line and why."""
    from keelwatch.detect import load_rules

    ruleset, problems = load_rules(paths)
    broken = [p for p in problems if strict or not p.unsupported]
    for problem in problems:
        style = "red" if problem in broken else "yellow"
        errors.print(f"[{style}]{'error' if problem in broken else 'skipped'}:[/] {problem}")
    by_source = Counter(rule.logsource or "any" for rule in ruleset)
    for source, count in sorted(by_source.items()):
        console.print(f"  {count:5d}  {source}")
    console.print(
        f"{len(ruleset)} rules loaded, {len(ruleset.correlations)} correlations, "
        f"{len(broken)} errors, {len(problems) - len(broken)} skipped"
    )
    sys.exit(1 if broken else 0)


@rules_group.command("test")
@RULE_PATHS
@click.option("--verbose", "-v", is_flag=True, help="List passing cases too.")
def test_command(paths: tuple[Path, ...], verbose: bool) -> None:
    """Run each rule's test events (<rule>.tests.json beside it) through parsers and engine."""
    from keelwatch.detect import load_rules
    from keelwatch.detect.rule_tests import find_cases, run_case

    ruleset, problems = load_rules(paths)
    for problem in problems:
        if not problem.unsupported:
            errors.print(f"[red]error:[/] {problem}")
    try:
        cases = find_cases(paths)
    except KeelwatchError as error:
        fail(error)
    failed = 0
    for case in cases:
        result = run_case(ruleset, case)
        if not result.passed:
            failed += 1
            console.print(f"[red]FAIL[/] {case.label}: {result.detail}")
        elif verbose:
            console.print(f"[green]ok[/]   {case.label}")
    rules_with_tests = len({case.rule for case in cases})
    console.print(
        f"{len(cases) - failed} of {len(cases)} cases passed, for {rules_with_tests} of "
        f"{len(ruleset) + len(ruleset.correlations)} rules"
    )
    sys.exit(1 if failed or not cases or any(not p.unsupported for p in problems) else 0)


@click.command("hunt")
@RULE_PATHS
@click.option("--since", default="30d", show_default=True, help="How far back (15m, 2h, 30d).")
@click.option("--until", help="End: a duration back from now or a timestamp.")
@click.option("--json", "as_json", is_flag=True, help="Print NDJSON alerts.")
@data_option
@server_options
def hunt_command(
    paths: tuple[Path, ...],
    since: str,
    until: str | None,
    as_json: bool,
    data: Path,
    server: str | None,
    token: str | None,
) -> None:
    """Run rules over stored events, with the same semantics as the live stream.

    The alerts found are printed, not stored: hunting is a question, not a change.
    """
    from keelwatch.detect.loader import rule_files

    texts = [(str(path), path.read_text(encoding="utf-8")) for path in rule_files(paths)]
    with (
        reading(data, server, token) as reader,
        console.status(f"hunting with {len(texts)} rule files…"),
    ):
        result = reader.hunt(texts, since, until)
    for problem in result["errors"]:
        errors.print(f"[yellow]rule not loaded:[/] {problem}")
    summary = f"{len(result['alerts'])} alerts from {result['rules']} rules"
    print_alerts(result["alerts"], as_json, summary)
