"""Golden-file tests: real inputs → the exact normalized output, with zero warnings.

Each ``golden/<parser>/<case>.expected.json`` has a companion input: ``<case>.input.<ext>``
beside it (a fixture we wrote), or ``<case>.corpus`` holding a path inside ../shared/corpus.
Regenerate after a deliberate change with ``KEELWATCH_UPDATE_GOLDEN=1 pytest tests/parsers`` and
review the diff: the expected files are the specification.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from keelwatch.model.fields import dumps
from keelwatch.pipeline.decode import decode_body
from keelwatch.pipeline.normalize import normalize

from ..conftest import CORPUS

GOLDEN = Path(__file__).parent / "golden"
RECEIVED_AT = datetime(2026, 1, 1, tzinfo=UTC)
VOLATILE = ("event.original", "event.ingested")


def _cases() -> list[Any]:
    cases = []
    for expected in sorted(GOLDEN.glob("*/*.expected.json")):
        case = expected.name.removesuffix(".expected.json")
        cases.append(pytest.param(expected, id=f"{expected.parent.name}/{case}"))
    return cases


def _input_bytes(expected: Path) -> bytes:
    case = expected.name.removesuffix(".expected.json")
    pointer = expected.with_name(f"{case}.corpus")
    if pointer.exists():
        path = CORPUS / pointer.read_text().strip()
        if not path.exists():
            pytest.skip(f"corpus file {path} is absent")
        return path.read_bytes()
    inputs = list(expected.parent.glob(f"{case}.input.*"))
    assert len(inputs) == 1, f"{expected}: expected one {case}.input.* file"
    return inputs[0].read_bytes()


def run_parser(source: str, body: bytes) -> dict[str, Any]:
    decoded = decode_body(body)
    batch = normalize(decoded.records, source, RECEIVED_AT)
    strip = lambda fields: {k: v for k, v in fields.items() if k not in VOLATILE}  # noqa: E731
    result = {
        "events": [strip(e) for e in batch.events],
        "findings": [strip(f) for f in batch.findings],
        "dead_letters": [d.reason for d in batch.dead_letters]
        + [reason for _, reason in decoded.bad_lines],
        "warnings": batch.warnings,
    }
    return orjson.loads(dumps(result))  # type: ignore[no-any-return]


@pytest.mark.parametrize("expected", _cases())
def test_golden(expected: Path) -> None:
    source = expected.parent.name
    actual = run_parser(source, _input_bytes(expected))
    if os.environ.get("KEELWATCH_UPDATE_GOLDEN"):
        expected.write_bytes(dumps(actual, pretty=True) + b"\n")
    want = orjson.loads(expected.read_bytes())
    assert actual["warnings"] == [], "parsers must produce no warnings on golden inputs"
    assert actual == want
