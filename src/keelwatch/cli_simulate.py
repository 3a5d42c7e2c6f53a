"""`keelwatch simulate`: a cluster's telemetry with labelled attacks; stream it, score it."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click
import orjson
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table as RichTable

from keelwatch.cli_common import console, data_option, errors, fail
from keelwatch.errors import ConfigError, KeelwatchError
from keelwatch.model.fields import dumps, parse_timestamp

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def seconds_of(text: str) -> float:
    """``90``, ``90s``, ``10m``, ``1.5h``: a duration in seconds."""
    value = text.strip().lower()
    unit = _UNITS.get(value[-1:], 0)
    number = value[:-1] if unit else value
    try:
        seconds = float(number) * (unit or 1)
    except ValueError:
        raise click.BadParameter(f"{text!r} is not a duration (e.g. 90s, 10m, 1h)") from None
    if seconds < 0:
        raise click.BadParameter(f"{text!r} is negative")
    return seconds


def _scenario_at(values: tuple[str, ...]) -> tuple[tuple[str, float], ...]:
    pairs = []
    for value in values:
        name, sep, offset = value.partition("=")
        if not sep or not name:
            raise click.BadParameter(f"{value!r}: use NAME=OFFSET, e.g. cryptominer-daemonset=2m")
        pairs.append((name.strip(), seconds_of(offset)))
    return tuple(pairs)


@click.command("simulate")
@click.option("--nodes", default=3, show_default=True, type=click.IntRange(1, 500))
@click.option("--namespaces", default=4, show_default=True, type=click.IntRange(1, 12))
@click.option("--workloads", default=12, show_default=True, type=click.IntRange(1, 500))
@click.option("--users", default=6, show_default=True, type=click.IntRange(1, 200))
@click.option("--duration", default="10m", show_default=True, help="Simulated time: 90s, 10m, 1h.")
@click.option(
    "--rate",
    default=50.0,
    show_default=True,
    type=click.FloatRange(min=0.01),
    help="Events per second of simulated time, all sources together.",
)
@click.option("--seed", default=1, show_default=True, type=int, help="Same seed, same output.")
@click.option("--start", help="First timestamp (RFC 3339); default a fixed time.")
@click.option(
    "--scenarios",
    default="all",
    show_default=True,
    help="Scenario names, or all, attacks, benign, none (comma-separated).",
)
@click.option(
    "--scenario-at",
    "scenario_at",
    multiple=True,
    metavar="NAME=OFFSET",
    help="Start a scenario at an offset into the run (repeatable).",
)
@click.option("--list-scenarios", is_flag=True, help="Print the scenario catalogue and exit.")
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    help="Write one file per source and labels.json here.",
)
@click.option("--server", metavar="URL", help="Stream to this Keelwatch server.")
@click.option("--token", envvar="KEELWATCH_TOKEN", help="API token (or set KEELWATCH_TOKEN).")
@click.option(
    "--protocol",
    default="native",
    show_default=True,
    type=click.Choice(["native", "elasticsearch", "otlp", "forward"]),
)
@click.option("--forward-port", type=click.IntRange(1, 65535), help="Fluent forward port.")
@click.option(
    "--forward-shared-key",
    envvar="KEELWATCH_FORWARD_SHARED_KEY",
    help="Fluent forward shared_key for the handshake.",
)
@click.option(
    "--send-rate",
    type=click.FloatRange(min=0),
    help="Events per second to stream at (default: --rate; 0: as fast as possible).",
)
@click.option(
    "--batch-size",
    type=click.IntRange(1, 10_000),
    help="Records per request (default: half a second of --send-rate, at most 500).",
)
@click.option("--evaluate", is_flag=True, help="Score the alerts against the labels.")
@click.option(
    "--no-stream",
    is_flag=True,
    help="With --server --evaluate: only evaluate (the run was streamed before).",
)
@click.option(
    "--labels",
    "labels_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Evaluate against this labels.json instead of generating.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the evaluation as JSON.")
@data_option
def simulate_command(**options: Any) -> None:
    """Generate realistic, labelled telemetry of a Kubernetes cluster under attack.

    Writes the sources' wire formats (--out), streams them to a server (--server, --protocol),
    and with --evaluate reports per scenario whether Keelwatch alerted (from --server, or the
    local --data directory after `keelwatch ingest`).
    """
    try:
        _run(**options)
    except KeelwatchError as error:
        fail(error)


def _run(**o: Any) -> None:
    from keelwatch.simulate.generate import DEFAULT_START, Options, simulate

    if o["list_scenarios"]:
        console.print(catalogue_table())
        return
    if not (o["out"] or o["server"] or o["evaluate"]):
        raise ConfigError("nothing to do: give --out DIR, --server URL or --evaluate")
    labels: dict[str, Any]
    if o["labels_path"] is not None:
        labels = orjson.loads(o["labels_path"].read_bytes())
    else:
        start = parse_timestamp(o["start"]) if o["start"] else DEFAULT_START
        if start is None:
            raise click.BadParameter(f"--start {o['start']!r} is not a timestamp")
        options = Options(
            seed=o["seed"],
            nodes=o["nodes"],
            namespaces=o["namespaces"],
            workloads=o["workloads"],
            users=o["users"],
            duration_seconds=seconds_of(o["duration"]),
            rate=o["rate"],
            start=start,
            scenarios=o["scenarios"],
            scenario_at=_scenario_at(o["scenario_at"]),
        )
        simulation = simulate(options)
        labels = simulation.labels
        _summary(labels)
        if o["out"]:
            from keelwatch.simulate.writers import write_files

            written = write_files(simulation, o["out"])
            errors.print(f"wrote {', '.join(path.name for path in written.values())} to {o['out']}")
        if o["server"] and not o["no_stream"]:
            _stream(simulation.records, o)
    if o["evaluate"]:
        _evaluate(labels, o)


def _summary(labels: dict[str, Any]) -> None:
    counts = labels["counts"]
    parts = ", ".join(f"{source} {n:,}" for source, n in counts.items() if source != "total")
    kinds = [s["kind"] for s in labels["scenarios"]]
    errors.print(
        f"generated {counts['total']:,} records ({parts}) from {labels['start']} to "
        f"{labels['end']}; {kinds.count('attack')} attacks, {kinds.count('benign')} look-alikes"
    )


def _stream(records: list[Any], o: dict[str, Any]) -> None:
    from keelwatch.simulate.stream import Target, stream

    rate = o["rate"] if o["send_rate"] is None else o["send_rate"]
    batch = o["batch_size"] or (max(1, min(500, int(rate / 2))) if rate > 0 else 500)
    target = Target(
        o["server"], o["protocol"], o["token"], o["forward_port"], o["forward_shared_key"]
    )
    with Progress(
        TextColumn(f"[bold]streaming ({o['protocol']})"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=errors,
    ) as progress:
        task = progress.add_task("stream", total=len(records))
        result = stream(
            records,
            target,
            rate=rate,
            batch_size=batch,
            progress=lambda count: progress.advance(task, count),
        )
    errors.print(
        f"sent {result.sent:,} records in {result.seconds:.1f} s: {result.rate:,.0f} events/s "
        f"achieved (target {'unpaced' if rate == 0 else f'{rate:,.0f}'}), "
        f"{result.accepted:,} accepted, {result.retries} overload retries"
    )
    for reason, count in result.rejected.items():
        errors.print(f"  [yellow]{count} rejected:[/] {reason}")


def _evaluate(labels: dict[str, Any], o: dict[str, Any]) -> None:
    from keelwatch.readers import open_reader
    from keelwatch.simulate.evaluate import run

    reader = open_reader(o["data"], o["server"], o["token"])
    try:
        evaluation = run(reader, labels)
    finally:
        reader.close()
    if o["as_json"]:
        sys.stdout.buffer.write(dumps(evaluation.as_json(), pretty=True) + b"\n")
        return
    grid = RichTable(title="Detection per scenario")
    for column in (
        "scenario",
        "kind",
        "ATT&CK",
        "layers",
        "records",
        "stored",
        "detected",
        "alerts",
    ):
        grid.add_column(column, overflow="fold")
    for item in evaluation.scenarios:
        mark = (
            "[green]yes[/]" if item.detected else ("[red]no[/]" if item.kind == "attack" else "no")
        )
        if item.kind == "benign" and item.detected:
            mark = "[yellow]alerted[/]"
        titles = sorted({str(a.get("rule_title")) for a in item.alerts})
        grid.add_row(
            item.name,
            item.kind,
            ",".join(item.techniques),
            ",".join(item.layers),
            str(item.records),
            "-" if item.stored is None else str(item.stored),
            mark,
            "; ".join(titles),
        )
    console.print(grid)
    s = evaluation.summary()
    recall = "-" if s["recall"] is None else f"{s['recall']:.0%}"
    precision = "-" if s["alert_precision"] is None else f"{s['alert_precision']:.0%}"
    console.print(
        f"attacks detected {s['attacks_detected']}/{s['attacks']} (recall {recall}); "
        f"look-alikes alerted {s['lookalikes_alerted']}/{s['lookalikes']}; alerts {s['alerts']}: "
        f"{s['alerts_on_attacks']} on attacks, {s['alerts_on_lookalikes']} on look-alikes, "
        f"{s['alerts_on_background']} on background only (precision {precision})"
    )
    if s["alerts_truncated"]:
        console.print("[yellow]more alerts than were read; counts are partial[/]")


def catalogue_table() -> RichTable:
    from keelwatch.simulate.scenarios import catalogue

    grid = RichTable(title="Scenario catalogue")
    for column in ("name", "kind", "ATT&CK", "layers", "what happens"):
        grid.add_column(column, overflow="fold")
    for item in catalogue().values():
        grid.add_row(
            item.name,
            "benign" if item.benign else "attack",
            ",".join(item.techniques),
            ",".join(item.layers),
            item.description,
        )
    return grid
