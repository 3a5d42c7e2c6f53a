"""cloudtrail: shapes, identity rules, dead letters and the corpus (golden files cover mapping)."""

from __future__ import annotations

import contextlib
import copy
import json
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from keelwatch.errors import RecordError
from keelwatch.model.fields import RecordLimits
from keelwatch.parsers import cloudtrail
from keelwatch.parsers.base import Batch, ParseContext, Parser
from keelwatch.parsers.registry import recognise
from keelwatch.pipeline.decode import decode_body

from .helpers import RECEIVED_AT, json_values, parse_records, reasons

PARSER = Parser(
    cloudtrail.NAME,
    cloudtrail.DATASET,
    cloudtrail.DESCRIPTION,
    cloudtrail.matches,
    cloudtrail.parse,
)
run = partial(parse_records, PARSER)
STRATUS = "cloud/aws-cloudtrail-stratus-red-team"
OTRF = "cloud/aws-cloudtrail-otrf/ec2_proxy_s3_exfiltration_2020-09-14011940.json"
PANTHER = "panther-analysis/extracted-tests/aws_cloudtrail.ndjson"


def event(**overrides: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "eventVersion": "1.09",
        "userIdentity": {
            "type": "IAMUser",
            "principalId": "AIDAEXAMPLEPRINCIPAL",
            "arn": "arn:aws:iam::111122223333:user/sam",
            "accountId": "111122223333",
            "userName": "sam",
        },
        "eventTime": "2025-01-02T03:04:05Z",
        "eventSource": "ec2.amazonaws.com",
        "eventName": "DescribeInstances",
        "awsRegion": "ca-central-1",
        "sourceIPAddress": "192.0.2.10",
        "userAgent": "aws-cli/2.15.0",
        "requestParameters": {"maxResults": 5},
        "responseElements": None,
        "eventID": "11111111-2222-4333-8444-555555555555",
        "eventType": "AwsApiCall",
        "recipientAccountId": "111122223333",
    }
    record.update(overrides)
    return record


# --- shapes ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "record",
    [
        event(),
        {"Records": [event()]},
        {"detail-type": "AWS API Call via CloudTrail", "source": "aws.ec2", "detail": event()},
        {k.lower(): v for k, v in event().items()},
    ],
    ids=["single", "log-file", "eventbridge", "lower-case"],
)
def test_matches_cloudtrail_shapes(record: Any) -> None:
    assert cloudtrail.matches(record)
    assert recognise(record) is not None
    assert recognise(record).name == "cloudtrail"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "record",
    [
        # S3 event notifications also use "Records", with aws:s3 as the source
        {
            "Records": [
                {"eventVersion": "2.1", "eventSource": "aws:s3", "eventName": "ObjectCreated:Put"}
            ]
        },
        {"Records": []},
        {
            "records": [{"category": "kube-audit", "properties": {"log": "{}"}}]
        },  # AKS via Event Hubs
        {"kind": "Event", "apiVersion": "audit.k8s.io/v1", "verb": "get", "auditID": "x"},
        {"protoPayload": {"serviceName": "iam.googleapis.com"}, "logName": "projects/p/logs/x"},
        {"rule": "Terminal shell in container", "priority": "Notice", "output": "shell"},
        {"Controls": [], "Totals": {}},
        {"detail-type": "EC2 Instance State-change Notification", "detail": {"state": "running"}},
        {"eventSource": 42, "eventName": "x"},
        "eventSource ec2.amazonaws.com",
        [event()],
        None,
    ],
)
def test_does_not_match_neighbours(record: Any) -> None:
    assert not cloudtrail.matches(record)


def test_neighbours_do_not_claim_cloudtrail() -> None:
    for record in (event(), {"Records": [event()]}):
        parser = recognise(record)
        assert parser is not None and parser.name == "cloudtrail"


# --- mapping rules ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("identity", "name", "user_id"),
    [
        ({"type": "IAMUser", "principalId": "AIDA1", "userName": "sam"}, "sam", "AIDA1"),
        (
            {
                "type": "AssumedRole",
                "principalId": "AROA1:build-42",
                "arn": "arn:aws:sts::111122223333:assumed-role/deployer/build-42",
                "sessionContext": {"sessionIssuer": {"userName": "deployer"}},
            },
            "build-42",
            "AROA1:build-42",
        ),
        (
            {
                "type": "AssumedRole",
                "principalId": "AROA1:x",
                "sessionContext": {"sessionIssuer": {"userName": "deployer"}},
            },
            "deployer",
            "AROA1:x",
        ),
        (
            {
                "type": "FederatedUser",
                "principalId": "1111:bob",
                "arn": "arn:aws:sts::1111:federated-user/bob",
            },
            "bob",
            "1111:bob",
        ),
        ({"type": "Root", "principalId": "111122223333"}, "root", "111122223333"),
        ({"type": "Root", "principalId": "1111", "userName": "acme-prod"}, "acme-prod", "1111"),
        ({"type": "AWSService", "invokedBy": "lambda.amazonaws.com"}, "lambda.amazonaws.com", None),
        (
            {"type": "AWSAccount", "principalId": "AIDAX", "accountId": "444455556666"},
            None,
            "AIDAX",
        ),
        (
            {"type": "IdentityCenterUser", "onBehalfOf": {"userId": "u-1"}, "accountId": "1111"},
            None,
            "u-1",
        ),
        ({"type": "SAMLUser", "principalId": "p:alice", "userName": "alice"}, "alice", "p:alice"),
        ({"type": "Unknown", "arn": "arn:aws:iam::1111:user/legacy"}, "legacy", None),
        ({"type": 7, "userName": ["not", "text"], "principalId": 9}, None, None),
    ],
)
def test_user_by_identity_type(
    identity: dict[str, Any], name: str | None, user_id: str | None
) -> None:
    (out,) = run(event(userIdentity=identity)).events
    assert out.get("user.name") == name
    assert out.get("user.id") == user_id


@pytest.mark.parametrize(
    ("changes", "outcome"),
    [
        ({}, "success"),
        ({"errorCode": "AccessDenied", "errorMessage": "no"}, "failure"),
        ({"errorCode": ""}, "success"),
        ({"eventName": "ConsoleLogin", "responseElements": {"ConsoleLogin": "Failure"}}, "failure"),
        ({"eventName": "ConsoleLogin", "responseElements": {"ConsoleLogin": "Success"}}, "success"),
    ],
)
def test_outcome(changes: dict[str, Any], outcome: str) -> None:
    (out,) = run(event(**changes)).events
    assert out["event.outcome"] == outcome
    if changes.get("errorCode"):
        assert out["error.code"] == changes["errorCode"]


@pytest.mark.parametrize(
    ("address", "ip"),
    [
        ("192.0.2.10", "192.0.2.10"),
        ("2001:DB8::1", "2001:db8::1"),
        ("ec2.amazonaws.com", None),
        ("AWS Internal", None),
        ("075.050.255.67", None),  # leading zeros are ambiguous (octal?): not taken as an IP
    ],
)
def test_source_address(address: str, ip: str | None) -> None:
    (out,) = run(event(sourceIPAddress=address)).events
    assert out["source.address"] == address
    assert out.get("source.ip") == ip


def test_ids_and_time_come_from_the_event() -> None:
    (out,) = run(event()).events
    assert out["event.id"] == "11111111-2222-4333-8444-555555555555"
    assert out["@timestamp"] == datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert out["aws.cloudtrail.requestParameters.maxResults"] == 5
    (hashed,) = run(event(eventID=None)).events
    assert len(hashed["event.id"]) == 32  # content hash


def test_bad_event_time_warns_and_uses_receipt_time() -> None:
    batch = run(event(eventTime="yesterday"))
    assert batch.events[0]["@timestamp"] == RECEIVED_AT
    assert batch.warnings and "eventTime" in batch.warnings[0]


def test_logstash_timestamp_stands_in_for_a_missing_event_time() -> None:
    record = event(**{"@timestamp": "2020-09-14T00:44:23.000Z"})
    del record["eventTime"]
    (out,) = run(record).events
    assert out["@timestamp"] == datetime(2020, 9, 14, 0, 44, 23, tzinfo=UTC)


def test_lower_case_export_keeps_the_original_record() -> None:
    lowered = {k.lower(): v for k, v in event().items()}
    (out,) = run(lowered).events
    assert out["event.action"] == "DescribeInstances"
    assert out["aws.cloudtrail.eventName"] == "DescribeInstances"
    assert '"eventname"' in out["event.original"]


# --- dead letters ----------------------------------------------------------------------------


def test_a_bad_record_in_a_log_file_leaves_its_neighbours() -> None:
    deep: dict[str, Any] = {}
    node = deep
    for _ in range(60):
        node["x"] = {}
        node = node["x"]
    log_file = {
        "Records": [
            event(eventID="a"),
            "text",
            17,
            None,
            event(eventName={"not": "a name"}),
            event(eventID="b", requestParameters=deep),
            event(eventID="c"),
        ]
    }
    batch = run(log_file)
    assert [e["event.id"] for e in batch.events] == ["a", "c"]
    assert len(batch.dead_letters) == 5
    assert any("nesting deeper" in reason for reason in reasons(batch))
    assert sum("JSON object" in reason for reason in reasons(batch)) == 3


def test_over_wide_event_is_dead_lettered() -> None:
    wide = event(requestParameters={f"k{n}": n for n in range(50)})
    batch = run(wide, limits=RecordLimits(max_fields=40))
    assert not batch.events
    assert "more fields than the limit" in reasons(batch)[0]


@pytest.mark.parametrize(
    "record",
    ["a line of text", 12, None, [], {"eventSource": "ec2.amazonaws.com"}, {"Records": []}],
)
def test_unusable_records_are_dead_lettered_with_a_reason(record: Any) -> None:
    batch = run(record)
    assert not batch.events
    assert len(batch.dead_letters) == 1 and reasons(batch)[0]


_json = json_values()


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(key=st.sampled_from(sorted(event())), value=_json)
def test_any_field_of_any_type_never_crashes(key: str, value: Any) -> None:
    """The parser itself raises only RecordError, whatever type a field holds."""
    for record in (event(**{key: value}), {"Records": [event(**{key: value})]}):
        identity = copy.deepcopy(event()["userIdentity"])
        identity["type"] = value
        for candidate in (record, event(userIdentity=identity)):
            ctx = ParseContext(cloudtrail.NAME, RECEIVED_AT, Batch())
            with contextlib.suppress(RecordError):
                cloudtrail.parse(candidate, ctx)


# --- corpus ----------------------------------------------------------------------------------


def _corpus_records(corpus: Path) -> list[tuple[str, list[Any]]]:
    found = [
        (path.name, decode_body(path.read_bytes()).records)
        for path in sorted((corpus / STRATUS).glob("*.json"))
    ]
    found.append(("otrf", decode_body((corpus / OTRF).read_bytes()).records))
    panther = [orjson.loads(line)["log"] for line in (corpus / PANTHER).read_bytes().splitlines()]
    found.append(("panther", panther))
    return found


@pytest.mark.corpus
def test_corpus_every_record_is_an_event_or_a_dead_letter(corpus: Path) -> None:
    totals = {"records": 0, "events": 0}
    for name, records in _corpus_records(corpus):
        batch = run(*records)
        assert len(batch.events) + len(batch.dead_letters) == len(records), name
        assert all(reason for reason in reasons(batch)), name
        for out in batch.events:
            original = json.loads(out["event.original"])
            assert out["event.action"] in (original.get("eventName"), original.get("eventname"))
            if isinstance(original.get("eventID"), str):
                assert out["event.id"] == original["eventID"]
        totals["records"] += len(records)
        totals["events"] += len(batch.events)
    # Stratus 310 + OTRF 103 + Panther 461: every one of them is a CloudTrail event.
    assert totals == {"records": 874, "events": 874}


@pytest.mark.corpus
def test_corpus_event_times_are_the_events_own(corpus: Path) -> None:
    for name, records in _corpus_records(corpus)[:-1]:  # Panther tests redact some times
        for out in run(*records).events:
            assert out["@timestamp"] != RECEIVED_AT, name
