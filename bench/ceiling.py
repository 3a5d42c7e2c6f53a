"""The JSON-decode ceiling: msgspec decoding audit events into typed Structs.

The Structs hold the fields the k8s-audit parser reads by name (kind, apiVersion, auditID,
stage, verb, requestURI, user, impersonatedUser, sourceIPs, userAgent, objectRef,
responseStatus.code, the two timestamps as datetimes, annotations). Other fields
(requestObject, user.extra) are skipped by msgspec without building objects, which the parser
cannot do because it keeps every field. No Python parser of the same bytes can be faster.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import msgspec


class User(msgspec.Struct):
    username: str | None = None
    uid: str | None = None
    groups: list[str] = []


class ObjectRef(msgspec.Struct):  # field names are the audit Event's own
    resource: str | None = None
    namespace: str | None = None
    name: str | None = None
    apiGroup: str | None = None
    apiVersion: str | None = None
    subresource: str | None = None


class ResponseStatus(msgspec.Struct):
    code: int | None = None


class AuditEvent(msgspec.Struct):
    kind: str = "Event"
    apiVersion: str | None = None
    level: str | None = None
    auditID: str | None = None
    stage: str | None = None
    requestURI: str | None = None
    verb: str | None = None
    user: User | None = None
    impersonatedUser: User | None = None
    sourceIPs: list[str] = []
    userAgent: str | None = None
    objectRef: ObjectRef | None = None
    responseStatus: ResponseStatus | None = None
    requestReceivedTimestamp: datetime | None = None
    stageTimestamp: datetime | None = None
    annotations: dict[str, str] = {}


class EventList(msgspec.Struct):
    items: list[AuditEvent]
    kind: str = "EventList"
    apiVersion: str | None = None


_EVENT = msgspec.json.Decoder(AuditEvent)
_LIST = msgspec.json.Decoder(EventList)


def decode_ndjson(bodies: Sequence[bytes]) -> int:
    """Decode NDJSON bodies line by line; returns the events decoded."""
    decode = _EVENT.decode
    count = 0
    for body in bodies:
        for line in body.split(b"\n"):
            if line:
                decode(line)
                count += 1
    return count


def decode_event_lists(bodies: Sequence[bytes]) -> int:
    return sum(len(_LIST.decode(body).items) for body in bodies)
