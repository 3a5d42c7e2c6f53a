"""Reading files for bulk import: JSON, NDJSON, text lines, YAML, gzip — in bounded chunks."""

from __future__ import annotations

import gzip
from collections.abc import Iterable, Iterator
from itertools import chain
from pathlib import Path
from typing import IO

import orjson
import yaml

CHUNK_BYTES = 4 * 1024 * 1024
MAX_WHOLE_JSON_BYTES = 256 * 1024 * 1024


def _open(path: Path) -> IO[bytes]:
    if path.suffix == ".gz":
        return gzip.open(path, "rb")  # type: ignore[return-value]
    return path.open("rb")


def read_chunks(path: Path, chunk_bytes: int = CHUNK_BYTES) -> Iterator[bytes]:
    """Bodies of at most about ``chunk_bytes`` that each decode on their own.

    A file holding one JSON document is read whole (an array is re-cut into NDJSON chunks of
    its items); YAML documents (trivy-operator reports) become NDJSON; everything else is cut
    at line ends.
    """
    name = path.name.removesuffix(".gz")
    if name.endswith((".yaml", ".yml")):
        with _open(path) as handle:
            documents = [d for d in yaml.safe_load_all(handle) if d is not None]
        yield from _ndjson_chunks(documents, chunk_bytes)
        return
    with _open(path) as handle:
        head = handle.read(chunk_bytes)
        first = head.lstrip()[:1]
        if first in (b"{", b"[") and (
            path.suffix == ".gz" or path.stat().st_size <= MAX_WHOLE_JSON_BYTES
        ):
            rest = handle.read(MAX_WHOLE_JSON_BYTES)
            whole = head + rest
            try:
                value = orjson.loads(whole)
            except orjson.JSONDecodeError:
                pass  # NDJSON: cut at lines below
            else:
                if isinstance(value, list) and len(whole) > chunk_bytes:
                    yield from _ndjson_chunks(value, chunk_bytes)
                else:
                    yield whole
                return
            yield from _cut_lines([whole], chunk_bytes)
            return
        blocks = chain([head], iter(lambda: handle.read(chunk_bytes), b""))
        yield from _cut_lines(blocks, chunk_bytes)


def _cut_lines(blocks: Iterable[bytes], chunk_bytes: int) -> Iterator[bytes]:
    """Re-cut a stream of blocks into chunks that end at a line end."""
    pending = b""
    for block in blocks:
        pending += block
        while len(pending) >= chunk_bytes:
            cut = pending.rfind(b"\n", 0, chunk_bytes + 1)
            if cut == -1:
                cut = pending.find(b"\n")  # one line longer than a chunk: send it alone
                if cut == -1:
                    break
            yield pending[: cut + 1]
            pending = pending[cut + 1 :]
    if pending.strip():
        yield pending


def _ndjson_chunks(items: list[object], chunk_bytes: int) -> Iterator[bytes]:
    lines: list[bytes] = []
    size = 0
    for item in items:
        line = orjson.dumps(item)
        lines.append(line)
        size += len(line) + 1
        if size >= chunk_bytes:
            yield b"\n".join(lines) + b"\n"
            lines, size = [], 0
    if lines:
        yield b"\n".join(lines) + b"\n"
