"""Stored events for the search benchmark: N audit events in a DuckDBStore, built once, cached.

A few thousand distinct 1.4 KB audit events are normalized by the real k8s-audit parser, then
replicated with fresh event ids, timestamps spread over a week in arrival order, users drawn
from a skewed pool of 3,000 and varied source addresses, edited in the flat dicts (and in
``event.original``), and appended through ``DuckDBStore.append`` in 50,000-event batches, as
the server's writer appends them. The result is cached under .cache/bench/, keyed by size, a
data version and the events table's columns, so reruns skip loading.
"""

from __future__ import annotations

import hashlib
import json
import random
import shutil
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb

from bench.harness import ROOT
from bench.workload import audit_lines, ndjson_bodies
from keelwatch.ingest.service import build_batch
from keelwatch.model.fields import Fields
from keelwatch.parsers.base import Batch
from keelwatch.store import duckdb_store
from keelwatch.store.duckdb_store import DATABASE_FILE, DuckDBStore

DATA_VERSION = 1  # bump when the synthetic data below changes
CACHE = ROOT / ".cache" / "bench"
START = datetime(2026, 11, 1, tzinfo=UTC)
SPAN = timedelta(days=7)
DISTINCT = 20_000
APPEND_BATCH = 50_000
SAMPLE_IDS = 2_000
USERS = 3_000


@dataclass(frozen=True, slots=True)
class Dataset:
    data_dir: Path
    size: int
    ids: list[str]  # a sample of stored event ids, for lookups
    load_seconds: float | None  # None: taken from the cache

    @property
    def file(self) -> Path:
        return self.data_dir / DATABASE_FILE


def _store_code_digest() -> str:
    digest = hashlib.sha256(str(DATA_VERSION).encode())
    for source in sorted(Path(str(duckdb_store.__file__)).parent.glob("*.py")):
        digest.update(source.read_bytes())
    return digest.hexdigest()[:12]


# Read when the store is imported, so the key names the code that builds and reads the file.
_STORE_CODE = _store_code_digest()


def cache_key(size: int) -> str:
    """Size, data version and the store package's code: a changed layout builds anew."""
    return f"search-{size}-{_STORE_CODE}"


def _user_pool(rng: random.Random) -> list[str]:
    pool = [f"system:node:worker-{n}" for n in range(400)]
    pool += [f"system:serviceaccount:team-{n % 60}:sa-{n}" for n in range(1_600)]
    pool += [f"user-{n}@example.com" for n in range(USERS - len(pool))]
    rng.shuffle(pool)
    return pool


def _distinct_events(count: int) -> list[Fields]:
    lines = audit_lines(count, seed=23, large=True)
    events: list[Fields] = []
    for body in ndjson_bodies(lines, 5_000):
        events.extend(build_batch(body, "k8s-audit", START)[0].events)
    return events


def _uuid(rng: random.Random) -> str:
    text = f"{rng.getrandbits(128):032x}"
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


def _replica(base: Fields, rng: random.Random, moment: datetime, user: str) -> Fields:
    row = dict(base)
    new_id = _uuid(rng)
    original = str(row["event.original"])
    original = original.replace(str(row["kubernetes.audit.auditID"]), new_id, 1)
    original = original.replace(f'"username":"{row["user.name"]}"', f'"username":"{user}"', 1)
    ip = f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"
    original = original.replace(f'"sourceIPs":["{row["source.ip"]}"]', f'"sourceIPs":["{ip}"]', 1)
    row.update(
        {
            "event.id": new_id,
            "kubernetes.audit.auditID": new_id,
            "@timestamp": moment,
            "event.ingested": moment + timedelta(milliseconds=rng.randrange(50, 2_000)),
            "user.name": user,
            "kubernetes.audit.user.username": user,
            "source.ip": ip,
            "kubernetes.audit.sourceIPs": [ip],
            "event.original": original,
        }
    )
    return row


def build(target: Path, size: int, log: bool = True) -> list[str]:
    """Append ``size`` events to a new store in ``target``; returns a sample of their ids."""
    rng = random.Random(size)
    base = _distinct_events(min(size, DISTINCT))
    users = _user_pool(rng)
    step = SPAN / size
    store = DuckDBStore(target)
    ids: list[str] = []
    sample_every = max(1, size // SAMPLE_IDS)
    started = time.perf_counter()
    try:
        for first in range(0, size, APPEND_BATCH):
            rows = []
            for n in range(first, min(size, first + APPEND_BATCH)):
                user = users[int(USERS * rng.random() ** 3)]  # a few users make most requests
                row = _replica(base[rng.randrange(len(base))], rng, START + n * step, user)
                rows.append(row)
                if n % sample_every == 0:
                    ids.append(str(row["event.id"]))
            store.append(Batch(events=rows))
            if log and first and first % (10 * APPEND_BATCH) == 0:
                done = first + len(rows)
                rate = done / (time.perf_counter() - started)
                print(f"  loaded {done:,} / {size:,} ({rate:,.0f} events/s)", flush=True)
    finally:
        store.close()
    con = duckdb.connect(str(target / DATABASE_FILE))
    con.execute("SET enable_progress_bar = false")
    con.execute("CHECKPOINT")
    con.close()
    return ids


def dataset(size: int, cache: Path = CACHE) -> Dataset:
    """The cached store of ``size`` events, built first if absent."""
    final = cache / cache_key(size)
    manifest = final / "bench.json"
    if manifest.exists():
        ids = json.loads(manifest.read_text())["ids"]
        return Dataset(final, size, ids, None)
    building = cache / (cache_key(size) + ".building")
    shutil.rmtree(building, ignore_errors=True)
    building.mkdir(parents=True)
    started = time.perf_counter()
    ids = build(building, size)
    seconds = time.perf_counter() - started
    (building / "bench.json").write_text(json.dumps({"size": size, "ids": ids}))
    shutil.rmtree(final, ignore_errors=True)
    building.rename(final)
    return Dataset(final, size, ids, seconds)
