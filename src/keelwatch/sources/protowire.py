"""Just enough of the protobuf wire format to bound a request before decoding it.

Decoding a message materialises every nested message at once: 16 MB of empty OTLP log records
is eight million of them and over a gigabyte of memory. ``count_nested`` walks the wire format
without building anything and stops as soon as a request holds more items than allowed.
"""

from __future__ import annotations

from collections.abc import Iterator

from keelwatch.errors import PayloadTooLarge, RequestError

_VARINT, _I64, _LEN, _I32 = 0, 1, 2, 5
_MAX_VARINT_BYTES = 10


def read_varint(data: memoryview | bytes, offset: int) -> tuple[int, int]:
    """(value, offset after it) of the base-128 varint at ``offset``."""
    value = 0
    for index in range(_MAX_VARINT_BYTES):
        if offset + index >= len(data):
            raise RequestError("truncated protobuf varint")
        byte = data[offset + index]
        value |= (byte & 0x7F) << (7 * index)
        if not byte & 0x80:
            return value, offset + index + 1
    raise RequestError("protobuf varint longer than 10 bytes")


def length_fields(data: memoryview, number: int) -> Iterator[memoryview]:
    """The payloads of the length-delimited fields ``number`` of one message, in order."""
    offset = 0
    end = len(data)
    while offset < end:
        key, offset = read_varint(data, offset)
        wire_type = key & 7
        if wire_type == _VARINT:
            _, offset = read_varint(data, offset)
        elif wire_type == _I64:
            offset += 8
        elif wire_type == _I32:
            offset += 4
        elif wire_type == _LEN:
            size, offset = read_varint(data, offset)
            if size > end - offset:
                raise RequestError("truncated protobuf field")
            if key >> 3 == number:
                yield data[offset : offset + size]
            offset += size
        else:
            raise RequestError(f"unsupported protobuf wire type {wire_type}")
        if offset > end:
            raise RequestError("truncated protobuf field")


def count_nested(data: bytes, path: tuple[int, ...], limit: int) -> int:
    """How many messages sit at ``path`` (field numbers, outermost first); at most ``limit``.

    Raises ``PayloadTooLarge`` past ``limit`` and ``RequestError`` for a malformed message.
    """
    count = 0

    def walk(message: memoryview, depth: int) -> None:
        nonlocal count
        for inner in length_fields(message, path[depth]):
            if depth + 1 < len(path):
                walk(inner, depth + 1)
                continue
            count += 1
            if count > limit:
                raise PayloadTooLarge(
                    f"more than {limit} records in one request; send smaller batches"
                )

    walk(memoryview(data), 0)
    return count
