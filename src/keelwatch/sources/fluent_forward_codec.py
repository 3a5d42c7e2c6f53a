"""Fluent forward protocol v1: msgpack framing, the four event modes and the shared_key handshake.

Pure functions and small classes, no sockets: ``fluent_forward`` runs them on connections.

Wire shapes (every top-level value is one msgpack array; ``nil`` is a keep-alive):

- Message ``[tag, time, record, option?]``
- Forward ``[tag, [[time, record], ...], option?]``
- PackedForward ``[tag, bin|str of concatenated [time, record] entries, option?]``
- CompressedPackedForward: the same with option ``compressed: "gzip"`` (gzip members, possibly
  several one after the other).

``time`` is an integer (seconds), a float, or an EventTime (ext type 0: seconds and nanoseconds as
two big-endian uint32). Fluent Bit may send ``[[time, metadata], record]``; the metadata is dropped.
Everything is unpacked with ``raw=True`` (strings as bytes) and turned into text afterwards:
packed entries may arrive as a msgpack *str*, and decoding that as UTF-8 would corrupt it.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import secrets
import struct
import zlib
from dataclasses import dataclass, field
from typing import Any

import msgpack  # type: ignore[import-untyped]
import orjson

from keelwatch.errors import RequestError

Time = int | float
Entry = tuple[Time, dict[str, Any]]
DeadLetters = list[tuple[bytes, str]]

EVENT_TIME_CODE = 0
_EVENT_TIME = struct.Struct(">II")
_GZIP_WBITS = 16 + zlib.MAX_WBITS


class FrameRefused(RequestError):
    """The connection must close; ``reason`` is a short, fixed label for the reject counter."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


def _ext_hook(code: int, data: bytes) -> Any:
    if code == EVENT_TIME_CODE and len(data) == _EVENT_TIME.size:
        seconds, nanoseconds = _EVENT_TIME.unpack(data)
        return seconds + nanoseconds / 1e9 if nanoseconds else seconds
    return msgpack.ExtType(code, data)


def new_unpacker(max_buffer_bytes: int, max_item_bytes: int) -> msgpack.Unpacker:
    """A streaming unpacker whose buffer and every declared length are bounded.

    Length headers are checked before their bytes arrive, so a declared 4 GiB array fails at once.
    Map keys stay restricted to strings (``strict_map_key``): integer keys would allow hash floods.
    """
    return msgpack.Unpacker(
        raw=True,
        ext_hook=_ext_hook,
        max_buffer_size=max_buffer_bytes,
        max_bin_len=max_item_bytes,
        max_str_len=max_item_bytes,
        max_array_len=max_item_bytes,
        max_map_len=max_item_bytes,
        max_ext_len=max_item_bytes,
    )


def pack(value: Any) -> bytes:
    packed: bytes = msgpack.packb(value, use_bin_type=True)
    return packed


# -- turning msgpack values into JSON-like records ---------------------------------------------


class _TooDeep(ValueError):
    pass


def text(value: bytes) -> str:
    return value.decode("utf-8", "replace")


def plain(value: Any, max_depth: int, depth: int = 0) -> Any:
    """``value`` with bytes as text and foreign ext values as strings (JSON-serialisable)."""
    if isinstance(value, bytes):
        return text(value)
    if isinstance(value, dict):
        if depth >= max_depth:
            raise _TooDeep(f"nested deeper than {max_depth} levels")
        return {
            (text(k) if isinstance(k, bytes) else str(k)): plain(v, max_depth, depth + 1)
            for k, v in value.items()
        }
    if isinstance(value, list):
        if depth >= max_depth:
            raise _TooDeep(f"nested deeper than {max_depth} levels")
        return [plain(v, max_depth, depth + 1) for v in value]
    if isinstance(value, msgpack.ExtType):
        return f"ext:{value.code}:{value.data.hex()}"
    return value


def describe(value: Any) -> bytes:
    """A dead letter's bytes for a decoded value: JSON, readable in the dead-letter table."""
    try:
        return orjson.dumps(plain(value, 64), default=repr)
    except (TypeError, ValueError):
        return repr(value).encode()


def _kind(value: Any) -> str:
    if isinstance(value, bytes):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    if value is None:
        return "nil"
    return {dict: "a map", list: "an array", int: "an integer", float: "a float"}.get(
        type(value), type(value).__name__
    )


def entry_time(value: Any) -> Time | None:
    """An entry's time: integer seconds, float, EventTime, or Fluent Bit's [time, metadata]."""
    if isinstance(value, list) and len(value) == 2 and isinstance(value[1], dict | None):
        value = value[0]
    if type(value) is int:
        return value
    if type(value) is float and math.isfinite(value):
        return value
    return None


# -- messages ----------------------------------------------------------------------------------


@dataclass(slots=True)
class Message:
    """One top-level forward message, classified but not yet expanded."""

    tag: str
    mode: str  # "message", "forward", "packed" or "compressed"
    payload: Any  # [time, record] for "message", the entries array, or the packed bytes
    chunk: str | bytes | None = None  # the ``chunk`` option: answer {"ack": chunk} once durable
    compression: str = ""

    @property
    def single(self) -> bool:
        return self.mode == "message"


def classify(value: Any) -> Message | None:
    """The message ``value`` is, None for a keep-alive ``nil``; refuses what is not forward data."""
    if value is None:
        return None
    if not isinstance(value, list) or len(value) < 2 or not isinstance(value[0], bytes):
        raise FrameRefused("not a forward message", f"got {_kind(value)}, not [tag, ...]")
    tag = text(value[0])
    second = value[1]
    payload: Any
    if isinstance(second, list):
        mode, payload, rest = "forward", second, value[2:]
    elif isinstance(second, bytes):
        mode, payload, rest = "packed", second, value[2:]
    elif len(value) >= 3:  # Message: the time is checked with the entry, so a bad one dead-letters
        mode, payload, rest = "message", [second, value[2]], value[3:]
    else:
        raise FrameRefused("not a forward message", f"[tag, {_kind(second)}] carries no events")
    if len(rest) > 1:
        raise FrameRefused("not a forward message", f"{len(value)} elements in a {mode} message")
    message = Message(tag, mode, payload)
    option = rest[0] if rest else None
    if isinstance(option, dict):
        chunk = option.get(b"chunk")
        if isinstance(chunk, bytes):
            # Clients compare the ack with the id they sent as a string: answer a string.
            try:
                message.chunk = chunk.decode("utf-8")
            except UnicodeDecodeError:
                message.chunk = chunk
        compressed = option.get(b"compressed")
        if isinstance(compressed, bytes) and mode == "packed":
            name = text(compressed).lower()
            if name not in ("", "text"):  # fluent-logger (node) says "text" for uncompressed
                message.mode, message.compression = "compressed", name
    return message


@dataclass(slots=True)
class Expanded:
    entries: list[Entry] = field(default_factory=list)
    dead_letters: DeadLetters = field(default_factory=list)


def expand(message: Message, max_decompressed_bytes: int, max_depth: int) -> Expanded:
    """Every entry of ``message``; entries that cannot be read are dead-lettered with a reason."""
    out = Expanded()
    payload: Any = message.payload
    if message.mode == "message":
        _add_entry(payload, out, max_depth)
    elif message.mode == "forward":
        for item in payload:
            _add_entry(item, out, max_depth)
    else:
        blob: bytes = payload
        if message.mode == "compressed":
            if message.compression != "gzip":
                reason = f"unsupported compression {message.compression!r}; send gzip"
                out.dead_letters.append((blob, reason))
                return out
            blob, tail, failure = gunzip_members(blob, max_decompressed_bytes)
            if failure:
                out.dead_letters.append((tail, failure))
        _unpack_entries(blob, out, max_depth)
    return out


def _add_entry(item: Any, out: Expanded, max_depth: int) -> None:
    if not isinstance(item, list) or len(item) != 2:
        out.dead_letters.append((describe(item), f"entry is {_kind(item)}, not [time, record]"))
        return
    moment = entry_time(item[0])
    if moment is None:
        reason = f"event time is {_kind(item[0])}, not an integer or EventTime"
        out.dead_letters.append((describe(item), reason))
        return
    if not isinstance(item[1], dict):
        out.dead_letters.append((describe(item), f"record is {_kind(item[1])}, not a map"))
        return
    try:
        record = plain(item[1], max_depth)
    except _TooDeep as error:
        out.dead_letters.append((describe(item), f"record {error}"))
        return
    out.entries.append((moment, record))


def _unpack_entries(blob: bytes, out: Expanded, max_depth: int) -> None:
    size = len(blob)
    unpacker = new_unpacker(max(size, 1), max(size, 1))
    unpacker.feed(blob)
    done = 0
    try:
        for item in unpacker:
            done = unpacker.tell()
            _add_entry(item, out, max_depth)
    except Exception as error:  # any msgpack failure: keep what came before, dead-letter the rest
        out.dead_letters.append((blob[done:], f"packed entries undecodable: {error or 'bad'}"))
        return
    if done < size:
        out.dead_letters.append((blob[done:], "packed entries end in a truncated entry"))


def gunzip_members(data: bytes, max_bytes: int) -> tuple[bytes, bytes, str]:
    """Inflate concatenated gzip members up to ``max_bytes`` in total.

    Returns (output of the complete members, the bytes not used, why they were not used or "").
    """
    out = bytearray()
    rest = data
    while rest:
        inflater = zlib.decompressobj(_GZIP_WBITS)
        try:
            piece = inflater.decompress(rest, max_bytes - len(out) + 1)
        except zlib.error as error:
            return bytes(out), rest, f"compressed entries do not decompress: {error}"
        if len(out) + len(piece) > max_bytes or inflater.unconsumed_tail:
            return bytes(out), rest, f"entries are larger than {max_bytes} bytes once decompressed"
        if not inflater.eof:
            return bytes(out), rest, "compressed entries end in a truncated gzip member"
        out += piece
        rest = inflater.unused_data
    return bytes(out), b"", ""


# -- the shared_key handshake ------------------------------------------------------------------


def _digest(*parts: bytes) -> bytes:
    return hashlib.sha512(b"".join(parts)).hexdigest().encode()


@dataclass(slots=True)
class Handshake:
    """The server side of HELO → PING → PONG for one connection (no user/password auth)."""

    shared_key: bytes
    server_hostname: str
    nonce: bytes = field(default_factory=lambda: secrets.token_bytes(16))

    def helo(self) -> bytes:
        # auth "" says no username/password is asked for; keepalive: the connection stays open.
        return pack(["HELO", {"nonce": self.nonce, "auth": "", "keepalive": True}])

    def answer(self, ping: Any) -> tuple[bytes, str]:
        """The PONG to send and "" if the PING proves the key, else why it does not."""
        reason = self._check(ping)
        if reason:
            return pack(["PONG", False, reason, self.server_hostname, ""]), reason
        salt: bytes = ping[2]
        proof = _digest(salt, self.server_hostname.encode(), self.nonce, self.shared_key)
        return pack(["PONG", True, "", self.server_hostname, proof.decode()]), ""

    def _check(self, ping: Any) -> str:
        if not (isinstance(ping, list) and len(ping) >= 4 and ping[0] == b"PING"):
            return "expected a PING message"
        hostname, salt, digest = ping[1], ping[2], ping[3]
        if not all(isinstance(part, bytes) for part in (hostname, salt, digest)):
            return "PING hostname, salt and digest must be strings"
        expected = _digest(salt, hostname, self.nonce, self.shared_key)
        if not hmac.compare_digest(expected, digest):
            return "shared_key mismatch"
        return ""
