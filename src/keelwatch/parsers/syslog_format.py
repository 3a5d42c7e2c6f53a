"""The syslog message formats: RFC 5424 and RFC 3164 (BSD) with its real-world variants.

Pure text → ``SyslogMessage``; the mapping to event fields is in ``parsers/syslog.py``.
Everything is scanned by hand, left to right, once: no regular expression ever sees a line.

RFC 3164 variants read: a missing HOSTNAME (``<13>Oct 11 22:14:15 su: ...``), year-less
timestamps (resolved against the time of receipt), fractional seconds, a year after the day
(``Mar  1 2024 18:46:11``, network gear), RFC 3339 timestamps (rsyslog's ForwardFormat), a missing
timestamp, and the TAG as ``name:``, ``name[pid]:``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from keelwatch.errors import ParseError
from keelwatch.model.fields import parse_timestamp

RFC5424 = "rfc5424"
RFC3164 = "rfc3164"
NIL = "-"
BOM = "\ufeff"
MAX_PRIORITY = 191  # facility 23 (local7) * 8 + severity 7
# A year-less timestamp is taken in the latest year that does not put it further than this
# into the future (senders' clocks and time zones differ from ours).
FUTURE_TOLERANCE = timedelta(days=2)
# Longest TAG read as a program name; a longer first word is message text.
MAX_TAG_CHARS = 64
_MONTHS = {
    name: number
    for number, name in enumerate(
        ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"),
        start=1,
    )
}

StructuredData = dict[str, dict[str, str | list[str]]]


@dataclass(slots=True)
class SyslogMessage:
    format: str
    priority: int | None = None
    version: int | None = None
    timestamp: datetime | None = None
    bad_timestamp: str | None = None  # a timestamp that was present but unreadable
    hostname: str | None = None
    appname: str | None = None
    procid: str | None = None
    msgid: str | None = None
    structured_data: StructuredData = field(default_factory=dict)
    message: str = ""


def has_priority(text: str) -> bool:
    """True when ``text`` starts with a valid ``<PRI>`` (the cheap test for recognition)."""
    try:
        return _priority(text)[0] is not None
    except ParseError:
        return False


def parse_message(text: str, received_at: datetime) -> SyslogMessage:
    """Read one syslog message; ``received_at`` resolves year-less timestamps."""
    text = text.rstrip("\r\n\x00")
    priority, rest = _priority(text)
    version_end = _digits_end(rest, 0, 3)
    if priority is not None and version_end > 0 and rest[version_end : version_end + 1] == " ":
        message = _parse_5424(rest, version_end)
    else:
        message = _parse_3164(rest, received_at)
    message.priority = priority
    return message


def _priority(text: str) -> tuple[int | None, str]:
    if not text.startswith("<"):
        return None, text
    end = _digits_end(text, 1, 3)
    if end == 1 or text[end : end + 1] != ">":
        raise ParseError("the message starts with '<' but has no valid <PRI> (1-3 digits and '>')")
    value = int(text[1:end])
    if value > MAX_PRIORITY:
        raise ParseError(f"PRI {value} is out of range (0-{MAX_PRIORITY})")
    return value, text[end + 1 :]


def _digits_end(text: str, start: int, most: int) -> int:
    end = start
    while end < len(text) and end - start < most and "0" <= text[end] <= "9":
        end += 1
    return end


# -- RFC 5424 ------------------------------------------------------------------------------


def _parse_5424(rest: str, version_end: int) -> SyslogMessage:
    parts = rest.split(" ", 6)
    if len(parts) < 7:
        raise ParseError("RFC 5424 header is incomplete (needs VERSION TIMESTAMP HOSTNAME "
                         "APP-NAME PROCID MSGID STRUCTURED-DATA)")  # fmt: skip
    version, stamp, hostname, appname, procid, msgid, tail = parts
    if not all((stamp, hostname, appname, procid, msgid, tail)):
        raise ParseError("RFC 5424 header has an empty field (two spaces in a row)")
    message = SyslogMessage(RFC5424, version=int(version[:version_end]))
    if stamp != NIL:
        moment = parse_timestamp(stamp) if len(stamp) >= 19 and stamp[10] in "Tt" else None
        if moment is None:
            message.bad_timestamp = stamp
        message.timestamp = moment
    message.hostname = None if hostname == NIL else hostname
    message.appname = None if appname == NIL else appname
    message.procid = None if procid == NIL else procid
    message.msgid = None if msgid == NIL else msgid
    if tail == NIL or tail.startswith(NIL + " "):
        body = tail[2:]
    elif tail.startswith("["):
        message.structured_data, end = _structured_data(tail)
        if end < len(tail) and tail[end] != " ":
            raise ParseError(
                f"unexpected {tail[end]!r} after STRUCTURED-DATA (a space must follow)"
            )
        body = tail[end + 1 :]
    else:
        raise ParseError("STRUCTURED-DATA must be '-' or start with '['")
    message.message = body.removeprefix(BOM)
    return message


def _structured_data(text: str) -> tuple[StructuredData, int]:
    """SD-ELEMENTs from ``text[0] == '['``; returns them and the offset just after the last."""
    elements: StructuredData = {}
    at = 0
    while at < len(text) and text[at] == "[":
        name_end = _name_end(text, at + 1)
        sd_id = text[at + 1 : name_end]
        if not sd_id:
            raise ParseError("SD-ELEMENT without an SD-ID")
        params = elements.setdefault(sd_id, {})
        at = name_end
        while True:
            if at >= len(text):
                raise ParseError(f"SD-ELEMENT {sd_id[:32]!r} is not closed with ']'")
            if text[at] == "]":
                at += 1
                break
            if text[at] != " ":
                raise ParseError(f"unexpected {text[at]!r} in SD-ELEMENT {sd_id[:32]!r}")
            at = _param(text, at + 1, params)
    return elements, at


def _name_end(text: str, start: int) -> int:
    """End of an SD-NAME: printable US-ASCII except '=', ' ', ']' and '"'."""
    end = start
    while end < len(text) and "!" <= text[end] <= "~" and text[end] not in '= ]"':
        end += 1
    return end


def _param(text: str, start: int, params: dict[str, str | list[str]]) -> int:
    """One ``name="value"``; the three escapes (\\" \\\\ \\]) are undone, others kept as sent."""
    name_end = _name_end(text, start)
    name = text[start:name_end]
    if not name or text[name_end : name_end + 2] != '="':
        raise ParseError(f'SD-PARAM {text[start:name_end][:32]!r} is not name="value"')
    pieces: list[str] = []
    at = piece_start = name_end + 2
    while True:
        if at >= len(text):
            raise ParseError(f"SD-PARAM {name[:32]!r} value is not closed with '\"'")
        char = text[at]
        if char == '"':
            break
        if char == "\\" and text[at + 1 : at + 2] in ('"', "\\", "]"):
            pieces.append(text[piece_start:at])
            piece_start = at + 1  # keep the escaped character, drop the backslash
            at += 2
            continue
        at += 1
    pieces.append(text[piece_start:at])
    value = "".join(pieces)
    known = params.get(name)
    if known is None:
        params[name] = value
    elif isinstance(known, list):
        known.append(value)
    else:
        params[name] = [known, value]  # a repeated PARAM-NAME (e.g. origin ip=) keeps all values
    return at + 1


# -- RFC 3164 ------------------------------------------------------------------------------


def _parse_3164(rest: str, received_at: datetime) -> SyslogMessage:
    message = SyslogMessage(RFC3164)
    moment, after = _bsd_timestamp(rest, received_at)
    if (
        after == 0 and rest[:4].isascii() and rest[:4].isdigit() and rest[4:5] == "-"
    ):  # RFC 3339 (rsyslog forwarding)
        stamp, _, _ = rest.partition(" ")
        moment = parse_timestamp(stamp)
        if moment is None:
            message.bad_timestamp = stamp[:64]
        after = len(stamp) + 1
    message.timestamp = moment
    body = rest[after:]
    if after:  # a HOSTNAME follows the timestamp, unless the next word is already the TAG
        word, _, remainder = body.partition(" ")
        if word and _tag(word) is None:
            message.hostname = word
            body = remainder
    word, space, remainder = body.partition(" ")
    tag = _tag(word)
    if tag is not None:
        message.appname, message.procid = tag
        body = remainder if space else ""
    message.message = body
    return message


def _tag(word: str) -> tuple[str, str | None] | None:
    """``name:`` or ``name[pid]:`` → (name, pid); None when ``word`` is not a TAG."""
    if len(word) < 2 or len(word) > MAX_TAG_CHARS or word[-1] != ":":
        return None
    word = word[:-1]
    pid = None
    if word.endswith("]"):
        open_at = word.find("[")
        if open_at <= 0:
            return None
        pid = word[open_at + 1 : -1] or None
        word = word[:open_at]
    if not word or "[" in word or "]" in word or not word.isprintable():
        return None
    return word, pid


def _bsd_timestamp(text: str, received_at: datetime) -> tuple[datetime | None, int]:
    """``Mmm dd [yyyy] hh:mm:ss[.frac]`` then a space; returns the moment and where text goes on.

    (None, 0) when ``text`` does not start with one.
    """
    month = _MONTHS.get(text[:3].lower())
    if month is None or text[3:4] != " ":
        return None, 0
    at = 5 if text[4:5] == " " else 4  # "Oct  1" (padded) or "Oct 1"
    day_end = _digits_end(text, at, 2)
    if day_end == at or text[day_end : day_end + 1] != " ":
        return None, 0
    day = int(text[at:day_end])
    at = day_end + 1
    year = None
    if _digits_end(text, at, 4) == at + 4 and text[at + 4 : at + 5] == " ":
        year = int(text[at : at + 4])
        at += 5
    clock = text[at : at + 8]
    if len(clock) != 8 or clock[2] != ":" or clock[5] != ":":
        return None, 0
    hour, minute, second = clock[:2], clock[3:5], clock[6:8]
    if not (hour.isdigit() and minute.isdigit() and second.isdigit()):
        return None, 0
    at += 8
    micros = 0
    if text[at : at + 1] == ".":
        fraction_end = _digits_end(text, at + 1, 9)
        micros = int(text[at + 1 : fraction_end][:6].ljust(6, "0") or 0)
        at = fraction_end
    if text[at : at + 1] == ":":  # network gear: "Mar  1 18:46:11.123: %SYS-5-..."
        at += 1
    if at < len(text) and text[at] != " ":
        return None, 0
    parts = (month, day, int(hour), int(minute), int(second), micros)
    moment = _in_year(year, parts) if year is not None else _nearest_past(parts, received_at)
    if moment is None:
        return None, 0  # e.g. "Feb 30": not a date, so not a timestamp
    return moment, at + 1


def _in_year(year: int, parts: tuple[int, int, int, int, int, int]) -> datetime | None:
    try:
        return datetime(year, *parts, tzinfo=UTC)
    except ValueError:
        return None


def _nearest_past(
    parts: tuple[int, int, int, int, int, int], received_at: datetime
) -> datetime | None:
    """The latest year in which the moment is not beyond ``FUTURE_TOLERANCE`` after receipt."""
    limit = received_at + FUTURE_TOLERANCE
    for year in (received_at.year + 1, received_at.year, received_at.year - 1):
        moment = _in_year(year, parts)
        if moment is not None and moment <= limit:
            return moment
    # Feb 29 with no leap year near: take the last leap year before receipt.
    year = received_at.year - 2
    while _in_year(year, parts) is None and year > received_at.year - 8:
        year -= 1
    return _in_year(year, parts)
