"""Bodies for the Elasticsearch `_bulk` tests: Falco alerts and NDJSON."""

from __future__ import annotations

import uuid
from typing import Any

import orjson


def falco_alert(rule: str = "Terminal shell in container", pod: str = "web-1") -> dict[str, Any]:
    return {
        "uuid": str(uuid.uuid4()),
        "output": f"10:00:00.000000000: Notice {rule} (container_id=5b1e7c9a2f44)",
        "priority": "Notice",
        "rule": rule,
        "time": "2026-03-01T10:00:00.000000000Z",
        "output_fields": {
            "container.id": "5b1e7c9a2f44",
            "k8s.ns.name": "shop",
            "k8s.pod.name": pod,
            "proc.name": "bash",
        },
        "source": "syscall",
        "tags": ["container", "shell"],
        "hostname": "node-1",
    }


def ndjson(*values: object) -> bytes:
    return b"".join(orjson.dumps(value) + b"\n" for value in values)


def bulk(*pairs: tuple[str, dict[str, Any]]) -> bytes:
    """An index action naming ``index`` before each document."""
    return ndjson(*[part for index, doc in pairs for part in ({"index": {"_index": index}}, doc)])
