"""Lumberjack frames (the Beats → Logstash wire format), cut out of untrusted bytes with limits.

A frame is a version byte (``2``; ``1`` from the older logstash-forwarder), a type byte and
big-endian uint32 fields:

    W  window size   count                          events the client sends before it waits
    J  JSON data     seq, length, JSON bytes        one event
    D  data          seq, pairs, (klen key vlen value) * pairs   one event as string pairs
    C  compressed    length, zlib bytes             more frames (J, D or C again)
    A  ACK           seq                            server → client: all events up to seq taken

Declared lengths are checked before a byte of the payload is buffered, decompression stops at
its bound, and compressed frames may nest only ``MAX_COMPRESSED_DEPTH`` deep.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

from keelwatch.errors import KeelwatchError, PayloadTooLarge, RequestError
from keelwatch.pipeline.decode import inflate

VERSIONS = frozenset(b"12")
WINDOW = ord("W")
JSON = ord("J")
DATA = ord("D")
COMPRESSED = ord("C")
ACK = ord("A")
MAX_COMPRESSED_DEPTH = 3  # a C inside a C inside a C; clients send one level
_U32 = struct.Struct(">I")
_U32_PAIR = struct.Struct(">II")
_ACK = struct.Struct(">BBI")


class ProtocolViolation(KeelwatchError):
    """The peer broke the protocol or a limit; the connection is closed.

    ``reason`` is a short label for the rejection counter, the message says what happened.
    """

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Window:
    version: int
    size: int


@dataclass(frozen=True, slots=True)
class Event:
    """A J frame (``payload`` is the JSON bytes, undecoded) or a D frame (string pairs)."""

    seq: int
    payload: bytes | dict[str, str]


@dataclass(frozen=True, slots=True)
class Compressed:
    payload: bytes  # still compressed: expanded off the event loop by ``expand``


Frame = Window | Event | Compressed


@dataclass(frozen=True, slots=True)
class FrameLimits:
    max_frame_bytes: int
    max_pairs: int  # string pairs in one D frame


def ack_frame(version: int, seq: int) -> bytes:
    return _ACK.pack(version, ACK, seq)


class FrameReader:
    """Cuts whole frames out of bytes fed in pieces; keeps at most one partial frame."""

    def __init__(self, limits: FrameLimits) -> None:
        self.limits = limits
        self._buffer = bytearray()

    @property
    def partial_bytes(self) -> int:
        """Bytes of a frame not yet complete (non-zero at end of stream means truncation)."""
        return len(self._buffer)

    def feed(self, data: bytes) -> list[Frame]:
        self._buffer += data
        frames: list[Frame] = []
        offset = 0
        try:
            while (found := self._frame_at(offset)) is not None:
                frame, offset = found
                frames.append(frame)
        finally:
            del self._buffer[:offset]  # once per feed: many small frames stay linear
        return frames

    def _frame_at(self, start: int) -> tuple[Frame, int] | None:
        buf = self._buffer
        if len(buf) - start < 2:
            return None
        version, kind = buf[start], buf[start + 1]
        if version not in VERSIONS:
            raise ProtocolViolation(
                "unknown_version", f"unknown protocol version byte {version:#04x}"
            )
        if kind == WINDOW:
            if len(buf) - start < 6:
                return None
            return Window(version, _U32.unpack_from(buf, start + 2)[0]), start + 6
        if kind == JSON:
            if len(buf) - start < 10:
                return None
            seq, length = _U32_PAIR.unpack_from(buf, start + 2)
            self._check_size(length, "JSON data frame")
            end = start + 10 + length
            if len(buf) < end:
                return None
            return Event(seq, bytes(buf[start + 10 : end])), end
        if kind == COMPRESSED:
            if len(buf) - start < 6:
                return None
            length = _U32.unpack_from(buf, start + 2)[0]
            self._check_size(length, "compressed frame")
            end = start + 6 + length
            if len(buf) < end:
                return None
            return Compressed(bytes(buf[start + 6 : end])), end
        if kind == DATA:
            return self._data_frame_at(start)
        if kind == ACK:
            raise ProtocolViolation("unexpected_ack", "clients do not send ACK frames")
        raise ProtocolViolation("unknown_frame_type", f"unknown frame type byte {kind:#04x}")

    def _data_frame_at(self, start: int) -> tuple[Frame, int] | None:
        """A D frame has no total length: walk its pairs, bounding each and the sum."""
        buf = self._buffer
        if len(buf) - start < 10:
            return None
        seq, count = _U32_PAIR.unpack_from(buf, start + 2)
        if count > self.limits.max_pairs:
            raise ProtocolViolation(
                "too_many_pairs", f"data frame has {count} pairs (limit {self.limits.max_pairs})"
            )
        position = start + 10
        pairs: dict[str, str] = {}
        for _ in range(count):
            texts: list[str] = []
            for _part in ("key", "value"):
                if len(buf) - position < 4:
                    return None
                length = _U32.unpack_from(buf, position)[0]
                position += 4
                self._check_size(position - start + length, "data frame")
                if len(buf) - position < length:
                    return None
                texts.append(bytes(buf[position : position + length]).decode("utf-8", "replace"))
                position += length
            pairs[texts[0]] = texts[1]
        return Event(seq, pairs), position

    def _check_size(self, length: int, what: str) -> None:
        if length > self.limits.max_frame_bytes:
            raise ProtocolViolation(
                "frame_too_large",
                f"{what} of {length} bytes is over the {self.limits.max_frame_bytes}-byte limit",
            )


class WindowBudget:
    """What one window may cost: decompressed bytes and compressed frames."""

    def __init__(self, max_bytes: int, max_compressed_frames: int) -> None:
        self.bytes_left = max_bytes
        self.compressed_left = max_compressed_frames

    def charge(self, size: int) -> None:
        self.bytes_left -= size
        if self.bytes_left < 0:
            raise ProtocolViolation(
                "window_too_large", "the window's events are over the decompressed size limit"
            )

    def charge_compressed(self) -> None:
        self.compressed_left -= 1
        if self.compressed_left < 0:
            raise ProtocolViolation(
                "too_many_compressed_frames", "too many compressed frames in one window"
            )


def expand(
    payload: bytes, limits: FrameLimits, budget: WindowBudget, depth: int = 1
) -> list[Event]:
    """The events inside a compressed frame (CPU work: run it off the event loop)."""
    if depth > MAX_COMPRESSED_DEPTH:
        raise ProtocolViolation(
            "compression_nesting", f"compressed frames nested deeper than {MAX_COMPRESSED_DEPTH}"
        )
    budget.charge_compressed()
    bound = max(0, min(limits.max_frame_bytes, budget.bytes_left))
    try:
        plain = inflate(payload, zlib.MAX_WBITS, bound)
    except PayloadTooLarge:
        raise ProtocolViolation(
            "decompressed_too_large",
            f"compressed frame inflates past {bound} bytes (frame or window limit)",
        ) from None
    except RequestError as error:
        raise ProtocolViolation("bad_compression", str(error)) from None
    budget.charge(len(plain))
    reader = FrameReader(limits)
    events: list[Event] = []
    for frame in reader.feed(plain):
        if isinstance(frame, Event):
            events.append(frame)
        elif isinstance(frame, Compressed):
            events.extend(expand(frame.payload, limits, budget, depth + 1))
        else:
            raise ProtocolViolation(
                "window_in_compressed", "window frame inside a compressed frame"
            )
    if reader.partial_bytes:
        raise ProtocolViolation(
            "truncated_frame", "a compressed frame ends in the middle of a frame"
        )
    return events
