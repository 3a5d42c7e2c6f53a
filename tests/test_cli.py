"""The `keelwatch` command in local mode (no server): import, search, sql, tokens."""

from __future__ import annotations

import gzip
from pathlib import Path

import orjson
from click.testing import CliRunner

from keelwatch.auth import TokenStore
from keelwatch.cli import main

from .fixtures import audit_event, event_list


def run(*args: str) -> str:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.stdout


def write_audit_file(tmp_path: Path) -> Path:
    events = [
        audit_event("create", "pods", name="web-1", when="2026-03-01T10:00:00Z"),
        audit_event("get", "secrets", name="db-password", user="mallory", code=403),
        audit_event("delete", "networkpolicies", name="deny-all", user="mallory"),
    ]
    path = tmp_path / "audit.json.gz"
    path.write_bytes(gzip.compress(orjson.dumps(event_list(*events))))
    return path


def test_ingest_then_search(tmp_path: Path) -> None:
    data = tmp_path / "data"
    out = run(
        "ingest", str(write_audit_file(tmp_path)), "--source", "k8s-audit", "--data", str(data)
    )
    assert "received 1, stored 3, dead-lettered 0" in out
    lines = run(
        "search",
        "--data",
        str(data),
        "--json",
        "user.name:mallory AND kubernetes.audit.responseStatus.code >= 400",
    )
    rows = [orjson.loads(line) for line in lines.splitlines()]
    assert [row["orchestrator.resource.name"] for row in rows] == ["db-password"]
    counted = run("search", "--data", str(data), "--json", "--count-by", "user.name")
    buckets = [orjson.loads(line) for line in counted.splitlines()]
    assert buckets[0] == {"value": "mallory", "count": 2}
    table = run("search", "--data", str(data), "kubernetes.audit.verb:create")
    assert "1 matching events" in table


def test_ingest_dead_letters_bad_lines(tmp_path: Path) -> None:
    data = tmp_path / "data"
    path = tmp_path / "mixed.ndjson"
    path.write_bytes(orjson.dumps(audit_event()) + b"\n{not json\n")
    out = run("ingest", str(path), "--source", "k8s-audit", "--data", str(data))
    assert "stored 1, dead-lettered 1" in out
    letters = [orjson.loads(line) for line in run("dead-letters", "--data", str(data)).splitlines()]
    assert letters[0]["raw"] == "{not json" and "invalid JSON" in letters[0]["reason"]


def test_sql_is_read_only(tmp_path: Path) -> None:
    data = tmp_path / "data"
    run("ingest", str(write_audit_file(tmp_path)), "--source", "k8s-audit", "--data", str(data))
    rows = run(
        "sql",
        "--data",
        str(data),
        "--json",
        "SELECT audit_verb, count(*) AS n FROM events GROUP BY 1 ORDER BY 1",
    )
    assert orjson.loads(rows.splitlines()[0]) == {"audit_verb": "create", "n": 1}
    refused = CliRunner().invoke(main, ["sql", "--data", str(data), "DROP TABLE events"])
    assert refused.exit_code == 2 and "read-only" in refused.output


def test_search_reports_query_errors(tmp_path: Path) -> None:
    data = tmp_path / "data"
    run("ingest", str(write_audit_file(tmp_path)), "--source", "k8s-audit", "--data", str(data))
    result = CliRunner().invoke(main, ["search", "--data", str(data), 'user.name:"unterminated'])
    assert result.exit_code == 2 and "unterminated" in result.output


def test_unknown_source_is_refused_with_the_list(tmp_path: Path) -> None:
    path = tmp_path / "x.json"
    path.write_text("{}")
    result = CliRunner().invoke(
        main, ["ingest", str(path), "--source", "nope", "--data", str(tmp_path)]
    )
    assert result.exit_code == 2 and "k8s-audit" in result.output


def test_tokens_lifecycle(tmp_path: Path) -> None:
    secret = run(
        "tokens", "create", "--role", "analyst", "--name", "bob", "--data", str(tmp_path)
    ).strip()
    assert secret.startswith("kw_")
    store = TokenStore(tmp_path)
    record = store.authenticate(secret)
    assert (record.role, record.name) == ("analyst", "bob")
    assert secret not in (tmp_path / "tokens.json").read_text()
    assert record.id in run("tokens", "list", "--data", str(tmp_path))
    run("tokens", "revoke", record.id, "--data", str(tmp_path))
    assert store.records() == []
    first = run("tokens", "ensure-admin", "--data", str(tmp_path))
    assert first.startswith("export KEELWATCH_TOKEN=kw_")
    assert run("tokens", "ensure-admin", "--data", str(tmp_path)) == ""


def test_sources_lists_every_parser() -> None:
    out = run("sources")
    for name in ("k8s-audit", "falco", "tetragon", "hubble", "cloudtrail", "kube-bench", "auto"):
        assert name in out
