"""Cutting a syslog TCP stream into messages (RFC 6587), frame by frame.

A frame whose first byte is a digit is octet-counted: ``LEN SP MSG`` with exactly LEN bytes of
MSG (RFC 5425 requires this framing over TLS). Any other frame runs to the next newline
("non-transparent framing"; a trailing CR is dropped). Senders that switch between the two, or
add a newline after octet-counted frames, are read correctly because every frame decides anew.

Nothing is buffered beyond ``max_frame_bytes`` (plus one read): a longer frame is skipped to its
end, keeping only its first bytes for the dead letter, and the stream goes on after it.
"""

from __future__ import annotations

from typing import NamedTuple

# LEN is at most this many digits; a longer run of digits is not a length.
MAX_LENGTH_DIGITS = 10
# Bytes between frames that carry nothing (a newline after an octet-counted frame, NUL padding).
_FILLER = b"\r\n\x00"
_KEPT_PREFIX_BYTES = 4096


class Frame(NamedTuple):
    raw: bytes
    problem: str | None = None  # a short code for counters: frame-too-large, bad-frame, …
    detail: str = ""  # the dead-letter reason

    @staticmethod
    def bad(raw: bytes, problem: str, detail: str) -> Frame:
        return Frame(raw[:_KEPT_PREFIX_BYTES], problem, f"{problem}: {detail}")


class Framer:
    """Feed it bytes as they arrive; it returns every frame completed so far."""

    def __init__(self, max_frame_bytes: int) -> None:
        self.max_frame_bytes = max_frame_bytes
        self._buffer = bytearray()
        self._at = 0  # start of the unread part of the buffer (compacted once per feed)
        self._skip_bytes = 0  # rest of an oversized octet-counted frame, to be thrown away
        self._skip_line = False  # rest of an oversized line, to be thrown away

    def feed(self, data: bytes) -> list[Frame]:
        frames: list[Frame] = []
        if self._skip_bytes:
            skipped = min(self._skip_bytes, len(data))
            self._skip_bytes -= skipped
            data = data[skipped:]
        if self._skip_line:
            end = data.find(b"\n")
            if end < 0:
                return frames
            self._skip_line = False
            data = data[end + 1 :]
        self._buffer += data
        while self._next(frames):
            pass
        del self._buffer[: self._at]
        self._at = 0
        return frames

    def close(self) -> list[Frame]:
        """The end of the stream: what is left is a last line, or a truncated frame."""
        rest = bytes(self._buffer[self._at :]).strip(_FILLER)
        self._buffer.clear()
        self._at = 0
        self._skip_bytes = 0
        self._skip_line = False
        if not rest:
            return []
        if not rest[:1].isdigit():
            return [Frame(rest)]  # a last line without its newline
        if _length_prefix(rest) is not None:
            detail = "the stream ended inside an octet-counted frame"
            return [Frame.bad(rest, "truncated-frame", detail)]
        return [Frame.bad(rest, "bad-frame", "a frame starting with a digit has no valid length")]

    def _next(self, frames: list[Frame]) -> bool:
        """Take one frame off the buffer into ``frames``; False when more bytes are needed."""
        buffer = self._buffer
        while self._at < len(buffer) and buffer[self._at] in _FILLER:
            self._at += 1
        if self._at == len(buffer):
            return False
        if 0x30 <= buffer[self._at] <= 0x39:
            return self._counted(frames)
        return self._line(frames)

    def _counted(self, frames: list[Frame]) -> bool:
        buffer, at = self._buffer, self._at
        space = buffer.find(b" ", at, at + MAX_LENGTH_DIGITS + 1)
        if space < 0:
            if len(buffer) - at <= MAX_LENGTH_DIGITS and buffer[at:].isdigit():
                return False  # the length is still arriving
            return self._garbage(frames, "a frame starting with a digit has no valid length")
        length_text = bytes(buffer[at:space])
        if not length_text.isdigit():
            return self._garbage(frames, f"invalid octet count {length_text[:16]!r}")
        length = int(length_text)
        start, end = space + 1, space + 1 + length
        if length > self.max_frame_bytes:
            body = bytes(buffer[start:end])
            detail = f"octet count {length} is over the {self.max_frame_bytes}-byte frame limit"
            frames.append(Frame.bad(body, "frame-too-large", detail))
            self._skip_bytes = length - len(body)
            self._at = start + len(body)
            return True
        if len(buffer) < end:
            return False
        if length:  # "0 " carries nothing
            frames.append(Frame(bytes(buffer[start:end])))
        self._at = end
        return True

    def _line(self, frames: list[Frame]) -> bool:
        buffer, at = self._buffer, self._at
        end = buffer.find(b"\n", at, at + self.max_frame_bytes + 1)
        if end < 0:
            if len(buffer) - at <= self.max_frame_bytes:
                return False
            detail = f"a line longer than the {self.max_frame_bytes}-byte frame limit"
            frames.append(
                Frame.bad(bytes(buffer[at : at + _KEPT_PREFIX_BYTES]), "frame-too-large", detail)
            )
            newline = buffer.find(b"\n", at)
            if newline < 0:  # throw the rest away as it arrives
                self._at = len(buffer)
                self._skip_line = True
                return False
            self._at = newline + 1
            return True
        line = bytes(buffer[at:end]).rstrip(b"\r")
        self._at = end + 1
        if line.strip():
            frames.append(Frame(line))
        return True

    def _garbage(self, frames: list[Frame], detail: str) -> bool:
        """Not a frame: dead-letter up to the next newline and resume after it."""
        buffer, at = self._buffer, self._at
        end = buffer.find(b"\n", at)
        if end < 0:
            if len(buffer) - at <= self.max_frame_bytes:
                return False  # wait for the newline (or the end of the stream)
            end = len(buffer)
            self._skip_line = True
        frames.append(Frame.bad(bytes(buffer[at:end]), "bad-frame", detail))
        self._at = min(end + 1, len(buffer))
        return True


def _length_prefix(data: bytes) -> int | None:
    digits, space, _ = data.partition(b" ")
    if space and digits.isdigit() and 0 < len(digits) <= MAX_LENGTH_DIGITS:
        return int(digits)
    return None
