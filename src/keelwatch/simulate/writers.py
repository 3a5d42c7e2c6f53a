"""Files in each source's wire format, one per source, plus ``labels.json`` beside them."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import orjson

from keelwatch.simulate.generate import Simulation
from keelwatch.simulate.records import AUDIT, CONTAINER, FALCO, HUBBLE, TETRAGON, SimRecord

# Falco json_output, Tetragon export, `hubble observe -o json`, the audit log backend and
# Fluent Bit's json_lines output are all one JSON object per line.
FILE_NAMES = {
    AUDIT: "k8s-audit.ndjson",
    FALCO: "falco.ndjson",
    TETRAGON: "tetragon.ndjson",
    HUBBLE: "hubble.ndjson",
    CONTAINER: "container.ndjson",
}
LABELS_FILE = "labels.json"


def line(record: SimRecord) -> bytes:
    """One record as its tool prints it (keys in the tool's order, no spaces)."""
    if isinstance(record.record, str):
        return record.record.encode()
    return orjson.dumps(record.record)


def ndjson(records: Iterable[SimRecord]) -> bytes:
    return b"".join(line(record) + b"\n" for record in records)


def labels_bytes(simulation: Simulation) -> bytes:
    return orjson.dumps(simulation.labels, option=orjson.OPT_INDENT_2) + b"\n"


def write_files(simulation: Simulation, directory: Path) -> dict[str, Path]:
    """Write every source's file and the labels; returns the paths by source (and "labels")."""
    directory.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    for source, records in simulation.by_source().items():
        path = directory / FILE_NAMES[source]
        path.write_bytes(ndjson(records))
        written[source] = path
    labels = directory / LABELS_FILE
    labels.write_bytes(labels_bytes(simulation))
    written["labels"] = labels
    return written
