"""normalize: records → events, findings and dead letters, one parser per record."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from keelwatch.errors import RecordError
from keelwatch.model.fields import DEFAULT_LIMITS, RecordLimits
from keelwatch.parsers.base import Batch, ParseContext, Parser, Record
from keelwatch.parsers.registry import AUTO, get_parser, recognise


def normalize(
    records: Iterable[Record],
    source: str,
    received_at: datetime,
    limits: RecordLimits = DEFAULT_LIMITS,
    batch: Batch | None = None,
    outcomes: list[str | None] | None = None,
) -> Batch:
    """Parse ``records`` with the parser named ``source`` (or recognise each, for "auto").

    A record that fails is dead-lettered with its reason; the others are never affected.
    With ``outcomes``, one entry per record is appended: None when the record stored anything,
    else the reason it was dead-lettered (protocols that answer per item need it).
    """
    batch = batch if batch is not None else Batch()
    fixed = None if source == AUTO else get_parser(source)
    ctx = ParseContext(source, received_at, batch, limits)
    for record in records:
        stored_before = len(batch.events) + len(batch.findings)
        rejected_before = len(batch.dead_letters)
        parser = fixed or recognise(record)
        if parser is None:
            ctx.reject(record, "no parser recognises this record; name the source explicitly")
        else:
            parse_one(parser, record, ctx)
        if outcomes is not None:
            stored = len(batch.events) + len(batch.findings) > stored_before
            rejected = len(batch.dead_letters) > rejected_before
            outcomes.append(
                batch.dead_letters[rejected_before].reason if rejected and not stored else None
            )
    return batch


def parse_one(parser: Parser, record: Record, ctx: ParseContext) -> None:
    batch = ctx.batch
    marks = (len(batch.events), len(batch.findings), len(batch.dead_letters))
    ctx.source = parser.name
    try:
        parser.parse(record, ctx)
    except RecordError as error:
        _rollback(batch, marks)
        ctx.reject(record, error.reason)
    except Exception as error:  # contain parser bugs: the batch goes on
        _rollback(batch, marks)
        ctx.reject(record, f"parser {parser.name} failed: {type(error).__name__}: {error}")


def _rollback(batch: Batch, marks: tuple[int, int, int]) -> None:
    del batch.events[marks[0] :]
    del batch.findings[marks[1] :]
    del batch.dead_letters[marks[2] :]
