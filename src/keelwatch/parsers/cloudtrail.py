"""AWS CloudTrail events: S3 log files, single events, EventBridge deliveries.

Accepted shapes:

* a CloudTrail log file, ``{"Records": [event, ...]}``: every event is taken on its own and a bad
  one is dead-lettered without losing its neighbours;
* one event (CloudTrail Lake, CloudWatch Logs, a JSON array split by ``decode``);
* an EventBridge delivery, ``{"detail-type": "AWS API Call via CloudTrail", "detail": event}``;
* events whose top-level names were lower-cased by an Athena/Glue export (``eventname``).

The whole event is kept under ``aws.cloudtrail.`` with CloudTrail's own names; the shared ECS
fields are derived from it (see docs/sources/cloudtrail.md for the rules).
"""

from __future__ import annotations

import functools
import ipaddress
from typing import Any

from keelwatch.errors import ParseError, RecordError
from keelwatch.model.fields import Fields, dig, flatten, parse_timestamp
from keelwatch.parsers.base import ParseContext, Record

NAME = "cloudtrail"
DATASET = "aws.cloudtrail"
DESCRIPTION = "AWS CloudTrail events (log files, single events, EventBridge)"
PREFIX = "aws.cloudtrail"

# CloudTrail names as Athena/Glue tables spell them (all lower case).
_CANONICAL = {
    name.lower(): name
    for name in (
        "eventVersion", "userIdentity", "eventTime", "eventSource", "eventName", "awsRegion",
        "sourceIPAddress", "userAgent", "errorCode", "errorMessage", "requestParameters",
        "responseElements", "additionalEventData", "requestID", "eventID", "readOnly",
        "resources", "eventType", "apiVersion", "managementEvent", "recipientAccountId",
        "sharedEventID", "vpcEndpointId", "vpcEndpointAccountId", "eventCategory",
        "tlsDetails", "sessionCredentialFromConsole", "serviceEventDetails", "edgeDeviceDetails",
        "insightDetails", "addendum",
        # inside userIdentity
        "principalId", "accountId", "userName", "accessKeyId", "sessionContext", "invokedBy",
        "onBehalfOf", "identityProvider",
    )
}  # fmt: skip

_IAM_SOURCES = frozenset(
    {
        "iam.amazonaws.com",
        "sts.amazonaws.com",
        "sso.amazonaws.com",
        "identitystore.amazonaws.com",
        "sso-directory.amazonaws.com",
    }
)
_AUTH_EVENTS = frozenset({"GetSessionToken", "GetFederationToken", "CheckMfa", "ExitRole"})
# eventName verb → ECS event.type for IAM events.
_IAM_VERBS = (
    (("Create",), "creation"),
    (("Delete",), "deletion"),
    (("Get", "List", "Describe", "Generate", "Simulate"), "info"),
    (
        ("Attach", "Detach", "Put", "Update", "Add", "Remove", "Set", "Change", "Enable",
         "Disable", "Tag", "Untag", "Upload", "Reset", "Deactivate", "Activate", "Associate",
         "Disassociate"),
        "change",
    ),
)  # fmt: skip


def matches(record: Record) -> bool:
    if not isinstance(record, dict):
        return False
    records = record.get("Records")
    if isinstance(records, list):
        return bool(records) and _looks_like_event(records[0])
    detail_type = record.get("detail-type")
    if isinstance(detail_type, str) and detail_type.endswith("via CloudTrail"):
        return isinstance(record.get("detail"), dict)
    return _looks_like_event(record)


def _looks_like_event(event: Any) -> bool:
    # eventSource ends in amazonaws.com; S3/SQS/SNS notifications (also "Records") use "aws:s3".
    if not isinstance(event, dict):
        return False
    source = event.get("eventSource", event.get("eventsource"))
    name = event.get("eventName", event.get("eventname"))
    return isinstance(source, str) and source.endswith("amazonaws.com") and isinstance(name, str)


def parse(record: Record, ctx: ParseContext) -> None:
    if not isinstance(record, dict):
        raise ParseError(f"a CloudTrail event is a JSON object, not {type(record).__name__}")
    records = record.get("Records")
    if isinstance(records, list):
        if not records:
            raise ParseError("CloudTrail log file with no Records")
        for item in records:
            try:
                _parse_event(item, ctx)
            except RecordError as error:
                ctx.reject(item, error.reason)
        return
    detail = record.get("detail")
    if isinstance(detail, dict) and isinstance(record.get("detail-type"), str):
        _parse_event(detail, ctx)
        return
    _parse_event(record, ctx)


def _parse_event(event: Any, ctx: ParseContext) -> None:
    if not isinstance(event, dict):
        raise ParseError(f"a CloudTrail event is a JSON object, not {type(event).__name__}")
    original = event
    if "eventName" not in event and "eventname" in event:
        event = _canonical(event)
        if isinstance(event.get("userIdentity"), dict):
            event["userIdentity"] = _canonical(event["userIdentity"])
    name = event.get("eventName")
    if not isinstance(name, str) or not name:
        raise ParseError("not a CloudTrail event: no eventName")

    out: Fields = {}
    flatten(event, PREFIX, out, ctx.limits)
    out["event.kind"] = "event"
    out["event.dataset"] = DATASET
    out["event.action"] = name
    out["cloud.provider"] = "aws"
    _set_str(out, "event.id", event.get("eventID"))
    source = event.get("eventSource")
    _set_str(out, "event.provider", source)
    _set_str(out, "cloud.region", event.get("awsRegion"))
    _set_str(out, "user_agent.original", event.get("userAgent"))
    _set_str(out, "cloud.account.id", event.get("recipientAccountId"))
    _set_timestamp(out, event, ctx)
    _set_source(out, event.get("sourceIPAddress"))
    _set_outcome(out, event)
    identity = event.get("userIdentity")
    if isinstance(identity, dict):
        _set_user(out, identity)
        if "cloud.account.id" not in out:
            _set_str(out, "cloud.account.id", identity.get("accountId"))
    _set_categories(out, name, source)
    ctx.emit(out, original)


def _canonical(mapping: dict[str, Any]) -> dict[str, Any]:
    return {_CANONICAL.get(key, key): value for key, value in mapping.items()}


def _set_str(out: Fields, name: str, value: Any) -> None:
    if isinstance(value, str) and value:
        out[name] = value


def _set_timestamp(out: Fields, event: dict[str, Any], ctx: ParseContext) -> None:
    raw = event.get("eventTime")
    if raw is None:
        raw = event.get("@timestamp")  # a Logstash/Beats export that dropped eventTime
    if raw is None:
        return
    moment = parse_timestamp(raw)
    if moment is None:
        ctx.warn(f"eventTime {str(raw)[:64]!r} is not a timestamp; the time of receipt is used")
        return
    out["@timestamp"] = moment


def _set_source(out: Fields, address: Any) -> None:
    """sourceIPAddress is an IP, or a service principal such as ``ec2.amazonaws.com``."""
    if not isinstance(address, str) or not address:
        return
    out["source.address"] = address
    ip = _as_ip(address)
    if ip is not None:
        out["source.ip"] = ip


@functools.lru_cache(maxsize=4096)  # callers repeat: the same few addresses fill a log file
def _as_ip(text: str) -> str | None:
    """The address in canonical form, or None for a service name, "AWS Internal", or an
    address written with leading zeros (ambiguous: octal or decimal?)."""
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return None


def _set_outcome(out: Fields, event: dict[str, Any]) -> None:
    code = event.get("errorCode")
    message = event.get("errorMessage")
    _set_str(out, "error.code", code)
    _set_str(out, "error.message", message)
    failed = isinstance(code, str) and bool(code)
    # A failed console sign-in carries no errorCode, only responseElements.ConsoleLogin.
    if dig(event, "responseElements", "ConsoleLogin") == "Failure":
        failed = True
    out["event.outcome"] = "failure" if failed else "success"


def _set_user(out: Fields, identity: dict[str, Any]) -> None:
    """user.name / user.id by identity type (the table in docs/sources/cloudtrail.md)."""
    kind = identity.get("type")
    arn = identity.get("arn")
    name: Any = identity.get("userName")
    if kind in ("AssumedRole", "FederatedUser"):
        # arn:aws:sts::ACCOUNT:assumed-role/ROLE/SESSION, …:federated-user/NAME
        if isinstance(arn, str) and "/" in arn:
            name = arn.rsplit("/", 1)[1]
        else:
            name = dig(identity, "sessionContext", "sessionIssuer", "userName")
    elif kind == "AWSService":
        name = identity.get("invokedBy")
    elif kind == "Root" and not (isinstance(name, str) and name):
        name = "root"
    elif not (isinstance(name, str) and name) and isinstance(arn, str) and "/" in arn:
        name = arn.rsplit("/", 1)[1]
    _set_str(out, "user.name", name)
    user_id = identity.get("principalId")
    if not (isinstance(user_id, str) and user_id):
        user_id = dig(identity, "onBehalfOf", "userId")  # IAM Identity Center users
    _set_str(out, "user.id", user_id)


def _set_categories(out: Fields, name: str, source: Any) -> None:
    source = source if isinstance(source, str) else ""
    if source == "signin.amazonaws.com" or name.startswith("AssumeRole") or name in _AUTH_EVENTS:
        out["event.category"] = ["authentication"]
        out["event.type"] = ["start"] if name != "ExitRole" else ["end"]
        return
    if source not in _IAM_SOURCES:
        return
    out["event.category"] = ["iam"]
    for verbs, kind in _IAM_VERBS:
        if name.startswith(verbs):
            out["event.type"] = [kind]
            return
