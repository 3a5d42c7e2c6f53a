"""decode: request bodies → records (decoded JSON values or text lines).

A body may be one JSON value (an object, or an array whose items are records), NDJSON, or plain
text lines (CRI container logs). Lines that look like JSON but do not decode are dead-lettered;
other lines are passed on as text for the parsers that read text.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field

import orjson

from keelwatch.errors import PayloadTooLarge, RequestError
from keelwatch.parsers.base import Record

_JSON_STARTS = (ord("{"), ord("["))


@dataclass(slots=True)
class Decoded:
    records: list[Record] = field(default_factory=list)
    bad_lines: list[tuple[bytes, str]] = field(default_factory=list)  # (raw, reason)


def decompress(body: bytes, encoding: str, max_bytes: int) -> bytes:
    """Undo a Content-Encoding, never producing more than ``max_bytes``."""
    encoding = encoding.strip().lower()
    if encoding in ("", "identity"):
        return body
    if encoding not in ("gzip", "x-gzip", "deflate"):
        raise RequestError(f"unsupported Content-Encoding {encoding!r}; send gzip, deflate or none")
    wbits = 16 + zlib.MAX_WBITS if encoding != "deflate" else zlib.MAX_WBITS
    return inflate(body, wbits, max_bytes)


def inflate(data: bytes, wbits: int, max_bytes: int) -> bytes:
    """zlib/gzip inflate with an output bound (a zip bomb stops at ``max_bytes``)."""
    inflater = zlib.decompressobj(wbits)
    try:
        out = inflater.decompress(data, max_bytes + 1)
    except zlib.error as error:
        raise RequestError(f"body does not decompress: {error}") from None
    if len(out) > max_bytes or inflater.unconsumed_tail:
        raise PayloadTooLarge(f"body is larger than {max_bytes} bytes once decompressed")
    return out


def gunzip_limited(data: bytes, max_bytes: int) -> bytes:
    """gzip-decode a payload embedded in a record (EKS CloudWatch subscriptions)."""
    if data[:2] != b"\x1f\x8b":
        raise ValueError("not gzip data")
    return inflate(data, 16 + zlib.MAX_WBITS, max_bytes)


def decode_body(body: bytes) -> Decoded:
    """Split a body into records; never raises for bad content, only reports it."""
    decoded = Decoded()
    stripped = body.strip()
    if stripped.startswith(b"\xef\xbb\xbf"):
        stripped = stripped[3:].lstrip()
    if not stripped:
        return decoded
    if stripped[0] in _JSON_STARTS:
        try:
            value = orjson.loads(stripped)
        except orjson.JSONDecodeError:
            pass  # maybe NDJSON: fall through to line by line
        else:
            _add_value(value, decoded)
            return decoded
    for line in stripped.split(b"\n"):
        line = line.rstrip(b"\r")  # keep other trailing spaces: CRI partial lines need them
        content = line.strip()
        if not content:
            continue
        if content[0] in _JSON_STARTS:
            try:
                _add_value(orjson.loads(content), decoded)
            except orjson.JSONDecodeError as error:
                decoded.bad_lines.append((content, f"invalid JSON: {error}"))
        else:
            decoded.records.append(line.decode("utf-8", "replace"))
    return decoded


def _is_fluent_event(value: list[object]) -> bool:
    """Fluent Bit's ``[time, record]`` (or ``[[time, metadata], record]``) event shape."""
    if len(value) != 2 or not isinstance(value[1], dict):
        return False
    head = value[0]
    if isinstance(head, list):
        head = head[0] if len(head) == 2 and isinstance(head[1], dict) else None
    return isinstance(head, int | float) and not isinstance(head, bool)


def _add_value(value: object, decoded: Decoded) -> None:
    if isinstance(value, list) and not _is_fluent_event(value):
        decoded.records.extend(value)
    else:
        decoded.records.append(value)
