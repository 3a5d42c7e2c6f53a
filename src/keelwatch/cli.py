"""The `keelwatch` command."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table as RichTable

from keelwatch import __version__
from keelwatch.auth import ROLES, TokenStore
from keelwatch.cli_alerts import alerts_command
from keelwatch.cli_common import console, data_option, errors, fail, reading, server_options
from keelwatch.cli_rules import hunt_command, rules_group
from keelwatch.cli_simulate import simulate_command
from keelwatch.errors import KeelwatchError
from keelwatch.model.fields import dumps
from keelwatch.parsers.registry import AUTO, get_parser, parsers
from keelwatch.store.base import Table


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="keelwatch")
def main() -> None:
    """Keelwatch: a SIEM for Kubernetes and cloud-native environments.

    Start with `keelwatch tokens create --role admin`, then `keelwatch serve`.
    """


PORT = click.IntRange(0, 65535)

# -- serve -----------------------------------------------------------------------------------


@main.command()
@data_option
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8080, show_default=True, type=click.IntRange(0, 65535))
@click.option("--retention-days", type=click.IntRange(min=1), help="Delete data older than this.")
@click.option("--max-body-mb", default=16, show_default=True, type=click.IntRange(min=1))
@click.option("--max-queue-events", default=500_000, show_default=True, type=click.IntRange(min=1))
@click.option(
    "--insecure-no-auth", is_flag=True, help="Serve without tokens (only on a trusted host)."
)
@click.option("--log-level", default="info", show_default=True)
@click.option(
    "--rules",
    multiple=True,
    type=click.Path(exists=True, path_type=Path),
    envvar="KEELWATCH_RULES",
    help="Sigma rule file or folder to run on every event (repeatable), e.g. content/rules.",
)
@click.option("--forward-port", type=PORT, help="Fluent forward over TCP (usually 24224).")
@click.option(
    "--forward-shared-key",
    envvar="KEELWATCH_FORWARD_SHARED_KEY",
    help="Fluent forward shared_key; clients must do the HELO/PING/PONG handshake with it.",
)
@click.option("--forward-tls", is_flag=True, help="Fluent forward over TLS (needs --tls-cert).")
@click.option("--syslog-udp-port", type=PORT, help="Syslog over UDP (RFC 5424 and 3164).")
@click.option("--syslog-tcp-port", type=PORT, help="Syslog over TCP (newline or octet counting).")
@click.option("--syslog-tls-port", type=PORT, help="Syslog over TLS (needs --tls-cert).")
@click.option("--lumberjack-port", type=PORT, help="Lumberjack v2 (Beats/Logstash output).")
@click.option("--lumberjack-tls", is_flag=True, help="Lumberjack over TLS (needs --tls-cert).")
@click.option("--tls-cert", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--tls-key", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--tls-client-ca",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Require TLS clients to present a certificate signed by this CA.",
)
def serve(
    data: Path,
    rules: tuple[Path, ...],
    host: str,
    port: int,
    retention_days: int | None,
    max_body_mb: int,
    max_queue_events: int,
    insecure_no_auth: bool,
    log_level: str,
    tls_cert: Path | None,
    tls_key: Path | None,
    tls_client_ca: Path | None,
    **listeners: Any,
) -> None:
    """Run the server: ingest routes and protocols, REST API, /healthz and /metrics.

    HTTP protocols (Elasticsearch _bulk, OTLP/HTTP, Splunk HEC, Loki) share --port; each
    TCP/UDP protocol listens only when its port option is given.
    """
    from keelwatch.server import run_server
    from keelwatch.sources.base import ListenerSettings, TLSFiles

    if (tls_cert is None) != (tls_key is None):
        fail(click.UsageError("--tls-cert and --tls-key go together"))
    tls = TLSFiles(tls_cert, tls_key, tls_client_ca) if tls_cert and tls_key else None
    try:
        run_server(
            data,
            host=host,
            port=port,
            retention_days=retention_days,
            max_body_bytes=max_body_mb * 1024 * 1024,
            max_queue_events=max_queue_events,
            auth_required=not insecure_no_auth,
            log_level=log_level,
            listeners=ListenerSettings(host=host, tls=tls, **listeners),
            rules=rules,
        )
    except KeelwatchError as error:
        fail(error)


# -- ingest ----------------------------------------------------------------------------------


@main.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option(
    "--source", "-s", required=True, help="Parser name (see `keelwatch sources`) or auto."
)
@click.option(
    "--rules",
    multiple=True,
    type=click.Path(exists=True, path_type=Path),
    envvar="KEELWATCH_RULES",
    help="Sigma rules to raise alerts with while importing into --data (repeatable).",
)
@data_option
@server_options
def ingest(
    files: tuple[Path, ...],
    source: str,
    rules: tuple[Path, ...],
    data: Path,
    server: str | None,
    token: str | None,
) -> None:
    """Import FILES (JSON, NDJSON, text lines, YAML, .gz) with the same rules as the server."""
    from keelwatch.importer import import_files

    try:
        if source != AUTO:
            get_parser(source)
        total = sum(path.stat().st_size for path in files)
        with Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            DownloadColumn(),
            TimeRemainingColumn(),
            console=errors,
            transient=False,
        ) as progress:
            task = progress.add_task("importing", total=total)
            summary = import_files(
                files, source, data, server, token, lambda n: progress.advance(task, n), rules
            )
    except KeelwatchError as error:
        fail(error)
    console.print(
        f"received {summary.received}, stored {summary.accepted}, "
        f"dead-lettered {summary.dead_lettered}"
    )
    for reason, count in summary.reasons.items():
        console.print(f"  {count} x {reason}")


# -- search and sql --------------------------------------------------------------------------


def _summary(event: dict[str, Any]) -> str:
    if event.get("message"):
        return str(event["message"])
    parts = [
        str(event[name])
        for name in (
            "user.name",
            "event.action",
            "orchestrator.resource.type",
            "orchestrator.namespace",
            "orchestrator.resource.name",
            "rule.name",
            "resource.name",
            "finding.status",
        )
        if event.get(name) is not None
    ]
    return " ".join(parts)


@main.command()
@click.argument("query", default="")
@click.option("--since", help="Start: a duration back from now (15m, 2h, 7d) or a timestamp.")
@click.option("--until", help="End: a duration back from now or a timestamp.")
@click.option("--limit", default=20, show_default=True, type=click.IntRange(0, 10_000))
@click.option("--count-by", metavar="FIELD", help="Count matches by the values of FIELD.")
@click.option("--findings", is_flag=True, help="Search posture findings instead of events.")
@click.option("--json", "as_json", is_flag=True, help="Print NDJSON events.")
@data_option
@server_options
def search(
    query: str,
    since: str | None,
    until: str | None,
    limit: int,
    count_by: str | None,
    findings: bool,
    as_json: bool,
    data: Path,
    server: str | None,
    token: str | None,
) -> None:
    """Search events with a Kibana-style QUERY.

    \b
    Examples:
      keelwatch search 'kubernetes.audit.verb:create AND kubernetes.audit.objectRef.resource:pods'
      keelwatch search 'user.name:system\\:anonymous OR kubernetes.audit.responseStatus.code >= 400'
      keelwatch search 'process.name:(sh OR bash) AND NOT kubernetes.namespace:kube-system'
      keelwatch search --since 1h --count-by kubernetes.audit.user.username
    """
    table: Table = "findings" if findings else "events"
    with reading(data, server, token) as reader:
        if count_by:
            buckets = reader.count_by(query, count_by, since, until, limit or 10, table)
            _print_buckets(count_by, buckets, as_json)
            return
        answer = reader.search(query, since, until, limit, table)
    rows = answer[table]
    if as_json:
        for row in rows:
            sys.stdout.buffer.write(dumps(row) + b"\n")
        return
    grid = RichTable(title=f"{answer['total']} matching {table} (showing {len(rows)})")
    for column in ("@timestamp", "event.dataset", "summary"):
        grid.add_column(column, overflow="fold")
    for row in rows:
        grid.add_row(
            str(row.get("@timestamp", "")), str(row.get("event.dataset", "")), _summary(row)
        )
    console.print(grid)


def _print_buckets(field: str, buckets: list[dict[str, Any]], as_json: bool) -> None:
    if as_json:
        for bucket in buckets:
            sys.stdout.buffer.write(dumps(bucket) + b"\n")
        return
    grid = RichTable(title=f"count by {field}")
    grid.add_column(field, overflow="fold")
    grid.add_column("count", justify="right")
    for bucket in buckets:
        grid.add_row(str(bucket["value"]), str(bucket["count"]))
    console.print(grid)


@main.command()
@click.argument("statement")
@click.option("--json", "as_json", is_flag=True, help="Print rows as NDJSON objects.")
@data_option
@server_options
def sql(statement: str, as_json: bool, data: Path, server: str | None, token: str | None) -> None:
    """Run one read-only SELECT over the tables events, findings, alerts, dead_letters."""
    with reading(data, server, token) as reader:
        answer = reader.sql(statement)
    columns = answer["columns"]
    if as_json:
        for row in answer["rows"]:
            sys.stdout.buffer.write(dumps(dict(zip(columns, row, strict=True))) + b"\n")
        return
    grid = RichTable()
    for column in columns:
        grid.add_column(column, overflow="fold")
    for row in answer["rows"]:
        grid.add_row(*(str(v) for v in row))
    console.print(grid)
    if answer["truncated"]:
        errors.print("(more rows than shown; add a LIMIT)")


@main.command("dead-letters")
@click.option("--since", help="A duration back from now (15m, 2h, 7d) or a timestamp.")
@click.option("--limit", default=20, show_default=True, type=click.IntRange(0, 10_000))
@data_option
@server_options
def dead_letters(
    since: str | None, limit: int, data: Path, server: str | None, token: str | None
) -> None:
    """Show records that could not be taken, with the reason and the raw bytes."""
    with reading(data, server, token) as reader:
        rows = reader.dead_letters(since, limit)
    for row in rows:
        sys.stdout.buffer.write(dumps(row) + b"\n")


@main.command()
def sources() -> None:
    """List the log types Keelwatch parses (the names for --source and /ingest/NAME)."""
    grid = RichTable()
    grid.add_column("source")
    grid.add_column("event.dataset")
    grid.add_column("what it reads", overflow="fold")
    for parser in parsers().values():
        grid.add_row(parser.name, parser.dataset, parser.description)
    grid.add_row(AUTO, "", "recognise each record by its shape")
    console.print(grid)


# -- tokens ----------------------------------------------------------------------------------


@main.group()
def tokens() -> None:
    """Manage API tokens (stored hashed in DATA/tokens.json)."""


@tokens.command("create")
@click.option("--role", type=click.Choice(ROLES), required=True, help="ingest, analyst or admin.")
@click.option("--name", default="", help="A label to recognise the token by.")
@data_option
def tokens_create(role: str, name: str, data: Path) -> None:
    """Create a token and print it (it is shown only once)."""
    record, secret = TokenStore(data).create(role, name)
    errors.print(f"created {record.role} token {record.id} ({record.name}); keep it secret:")
    click.echo(secret)


@tokens.command("list")
@data_option
def tokens_list(data: Path) -> None:
    """List tokens (ids, names and roles; never the secrets)."""
    grid = RichTable()
    for column in ("id", "name", "role", "created"):
        grid.add_column(column)
    for record in TokenStore(data).records():
        grid.add_row(record.id, record.name, record.role, record.created)
    console.print(grid)


@tokens.command("revoke")
@click.argument("token_id")
@data_option
def tokens_revoke(token_id: str, data: Path) -> None:
    """Revoke a token by id (a running server stops accepting it at once)."""
    if not TokenStore(data).revoke(token_id):
        fail(KeelwatchError(f"no token with id {token_id!r} (see `keelwatch tokens list`)"))
    console.print(f"revoked {token_id}")


@tokens.command("ensure-admin")
@data_option
def tokens_ensure_admin(data: Path) -> None:
    """Create a first admin token if there is none yet, and print it."""
    store = TokenStore(data)
    if any(record.role == "admin" for record in store.records()):
        errors.print(
            f"an admin token already exists in {data}; "
            f"make another with `keelwatch tokens create --role admin --data {data}`"
        )
        return
    _, secret = store.create("admin", "first admin")
    errors.print("[bold]Your admin token[/] (shown once; export it for the CLI):")
    click.echo(f"export KEELWATCH_TOKEN={secret}")


main.add_command(alerts_command)
main.add_command(rules_group)
main.add_command(hunt_command)
main.add_command(simulate_command)
