"""Every corpus file of every supported source goes through the HTTP API of a real server.

Nothing may vanish: each file yields stored events/findings or dead letters, the server's own
tables hold exactly what it acknowledged, and no request fails.
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import httpx
import orjson
import pytest

from .corpus_sources import bodies, corpus_files
from .server_process import make_server


@pytest.mark.corpus
def test_every_corpus_file_is_stored_or_dead_lettered(corpus: Path, tmp_path: Path) -> None:
    server = make_server(tmp_path)
    server.start()
    accepted: Counter[str] = Counter()
    dead: Counter[str] = Counter()
    files: Counter[str] = Counter()
    try:
        with httpx.Client(base_url=server.url, headers=server.headers("admin"), timeout=60) as http:
            for source, path in corpus_files(corpus):
                files[source] += 1
                produced = received = 0
                for body in bodies(path):
                    answer = http.post(f"/ingest/{source}", content=body)
                    assert answer.status_code == 200, f"{path}: {answer.text}"
                    result = answer.json()
                    accepted[source] += result["accepted"]
                    dead[source] += result["dead_lettered"]
                    produced += result["accepted"] + result["dead_lettered"]
                    received += result["received"]
                # An empty report (`[]`: a compliant Kubescape case) holds nothing to store.
                assert produced > 0 or received == 0, f"{path} produced nothing"
            counts = orjson.loads(
                http.post(
                    "/api/v1/sql",
                    content=orjson.dumps(
                        {
                            "query": "SELECT (SELECT count(*) FROM events) + "
                            "(SELECT count(*) FROM findings), (SELECT count(*) FROM dead_letters)"
                        }
                    ),
                ).content
            )
    finally:
        server.stop()
    report = os.environ.get("KEELWATCH_CORPUS_REPORT")
    if report:  # the table in docs/schema.md is made this way
        lines = ["| source | files | stored | dead-lettered |", "| --- | ---: | ---: | ---: |"]
        lines += [f"| {s} | {files[s]} | {accepted[s]} | {dead[s]} |" for s in sorted(files)]
        Path(report).write_text("\n".join(lines) + "\n")
    assert counts["rows"] == [[sum(accepted.values()), sum(dead.values())]]
    assert set(accepted) | set(dead) >= {"k8s-audit", "falco", "cloudtrail", "kube-bench"}
