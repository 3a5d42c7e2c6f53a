"""`keelwatch alerts`: list what the rules raised."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click
from rich.table import Table as RichTable

from keelwatch.cli_common import console, data_option, reading, server_options
from keelwatch.model.fields import dumps


@click.command("alerts")
@click.option("--since", help="A duration back from now (15m, 2h, 7d) or a timestamp.")
@click.option("--until", help="End: a duration back from now or a timestamp.")
@click.option("--rule", help="Only this rule (its id or title).")
@click.option("--severity", help="Only this severity or higher (info … critical).")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(0, 10_000))
@click.option("--json", "as_json", is_flag=True, help="Print NDJSON alerts.")
@data_option
@server_options
def alerts_command(
    since: str | None,
    until: str | None,
    rule: str | None,
    severity: str | None,
    limit: int,
    as_json: bool,
    data: Path,
    server: str | None,
    token: str | None,
) -> None:
    """Show alerts, newest first, with the entity and the number of matching events."""
    from keelwatch.readers import AlertQuery

    with reading(data, server, token) as reader:
        result = reader.alerts(AlertQuery(since, until, rule, severity, limit))
    print_alerts(result["alerts"], as_json, f"{len(result['alerts'])} of {result['total']} alerts")


def print_alerts(alerts: list[dict[str, Any]], as_json: bool, summary: str) -> None:
    """NDJSON, or a table with a summary line under it."""
    if as_json:
        for alert in alerts:
            sys.stdout.buffer.write(dumps(alert) + b"\n")
        return
    console.print(alert_table(alerts))
    console.print(summary)


def alert_table(alerts: list[dict[str, Any]]) -> RichTable:
    grid = RichTable()
    for column in ("last seen", "severity", "rule", "entity", "count", "ATT&CK"):
        grid.add_column(column, overflow="fold")
    for alert in alerts:
        entity = alert.get("entity") or {}
        where = "/".join(str(entity[k]) for k in ("cluster", "namespace", "pod") if entity.get(k))
        who = entity.get("user") or entity.get("node") or ""
        grid.add_row(
            str(alert.get("last_seen", ""))[:19],
            str(alert.get("severity", "")),
            str(alert.get("rule_title", "")),
            " ".join(part for part in (where, who) if part),
            str(alert.get("count", "")),
            ",".join(alert.get("techniques") or []),
        )
    return grid
