"""End-to-end alert latency: from sending a request to its alert being queryable, at 50% load.

A real `keelwatch serve --rules content/rules` first takes a short burst of 1.4 KB audit events
in requests of 100 (four client threads) to measure its capacity in events/s. Then a steady,
open-loop stream at half that rate: every request carries one `kubectl exec` into a pod (which
the pack's "Exec or Attach Into a Pod Container" rule alerts on) by a unique user, the marker.
A poller asks ``GET /api/v1/alerts?rule=…&since=…`` every 25 ms; an alert's latency is the
time from the moment its request was due (open loop: a client held up by slow answers does not
hide the wait) to the first poll that returned it. Reported: p50
and p99 (target p99 ≤ 1 s), with the acknowledgement latency of the same requests beside it.

    python -m bench.latency_bench [--seconds S] [--quick] [--record]
"""

from __future__ import annotations

import argparse
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import httpx
import orjson
import yaml

from bench.harness import ROOT, BenchServer, append_results, bench_server
from bench.ingest_bench import post_all
from bench.measure import percentile
from bench.workload import audit_lines, ndjson_bodies

RULES = ROOT / "content" / "rules"
EXEC_RULE = RULES / "kubernetes" / "pod_exec_attach.yml"
BATCH = 100
POLL_SECONDS = 0.025
TARGET_P99_SECONDS = 1.0


def exec_event(marker: str, moment: datetime) -> bytes:
    stamp = moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return orjson.dumps(
        {
            "kind": "Event", "apiVersion": "audit.k8s.io/v1", "level": "Metadata",
            "auditID": f"{marker}-audit", "stage": "ResponseComplete",
            "requestURI": "/api/v1/namespaces/shop/pods/web-1/exec?command=sh&stdin=true&tty=true",
            "verb": "create",
            "user": {"username": marker, "groups": ["developers", "system:authenticated"]},
            "sourceIPs": ["10.0.3.17"], "userAgent": "kubectl/v1.31.0 (linux/amd64)",
            "objectRef": {"resource": "pods", "namespace": "shop", "name": "web-1",
                          "apiVersion": "v1", "subresource": "exec"},
            "responseStatus": {"metadata": {}, "code": 101},
            "requestReceivedTimestamp": stamp, "stageTimestamp": stamp,
            "annotations": {"authorization.k8s.io/decision": "allow"},
        }
    )  # fmt: skip


@dataclass
class Probes:
    """Due, acknowledged and first-seen times (perf_counter seconds) by marker; event times."""

    sent: dict[str, float] = field(default_factory=dict)
    acked: dict[str, float] = field(default_factory=dict)
    seen: dict[str, float] = field(default_factory=dict)
    moments: dict[str, datetime] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def pending(self) -> list[str]:
        with self.lock:
            return [m for m in self.sent if m not in self.seen]


def poll(server: BenchServer, rule_id: str, probes: Probes, stop: threading.Event) -> None:
    with httpx.Client(timeout=30, headers=server.headers) as client:
        while not stop.is_set():
            waiting = probes.pending()
            if waiting:
                with probes.lock:
                    oldest = min(probes.moments[m] for m in waiting)
                since = (oldest - timedelta(seconds=1)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
                answer = client.get(
                    f"{server.url}/api/v1/alerts",
                    params={"rule": rule_id, "since": since, "limit": "10000"},
                )
                now = time.perf_counter()
                answer.raise_for_status()
                with probes.lock:
                    for alert in answer.json()["alerts"]:
                        user = (alert.get("entity") or {}).get("user")
                        if user in probes.sent and user not in probes.seen:
                            probes.seen[user] = now
            time.sleep(POLL_SECONDS)


def capacity(server: BenchServer, lines: Sequence[bytes]) -> float:
    start = time.perf_counter()
    post_all(server, ndjson_bodies(list(lines), BATCH))
    return len(lines) / (time.perf_counter() - start)


def stream(server: BenchServer, rate: float, seconds: float, background: Sequence[bytes]) -> Probes:
    """Send requests of BATCH events at ``rate`` events/s for ``seconds``, open loop."""
    rule_id = str(yaml.safe_load(EXEC_RULE.read_text())["id"])
    probes = Probes()
    stop = threading.Event()
    poller = threading.Thread(target=poll, args=(server, rule_id, probes, stop), daemon=True)
    poller.start()
    local = threading.local()
    headers = {**server.headers, "Content-Type": "application/json"}

    def send(number: int, due: float) -> None:
        client = getattr(local, "client", None)
        if client is None:
            client = local.client = httpx.Client(timeout=60)
        marker = f"latency-probe-{number}"
        moment = datetime.now(UTC)
        first = (number * (BATCH - 1)) % max(1, len(background) - BATCH)
        body = b"\n".join([*background[first : first + BATCH - 1], exec_event(marker, moment)])
        with probes.lock:
            probes.moments[marker] = moment
            probes.sent[marker] = due
        answer = client.post(f"{server.url}/ingest/k8s-audit", content=body, headers=headers)
        answer.raise_for_status()  # a 503 here means the rate was above capacity
        with probes.lock:
            probes.acked[marker] = time.perf_counter()

    interval = BATCH / rate
    requests = max(1, int(seconds / interval))
    start = time.perf_counter()
    with ThreadPoolExecutor(32) as pool:
        futures = []
        for number in range(requests):
            due = start + number * interval
            delay = due - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            futures.append(pool.submit(send, number, due))
        for future in futures:
            future.result()
    deadline = time.monotonic() + 30
    while probes.pending() and time.monotonic() < deadline:
        time.sleep(0.05)
    stop.set()
    poller.join()
    return probes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="length of the steady stream")
    parser.add_argument("--quick", action="store_true", help="a 3 s stream, for a smoke test")
    parser.add_argument("--record", action="store_true", help="append to docs/benchmarks.md")
    args = parser.parse_args()
    seconds = 3.0 if args.quick else args.seconds
    burst = audit_lines(2_000 if args.quick else 30_000, seed=31, large=True)
    background = audit_lines(20_000 if not args.quick else 2_000, seed=37, large=True)
    with bench_server("--rules", str(RULES)) as server:
        measured = capacity(server, burst)
        rate = measured / 2
        probes = stream(server, rate, seconds, background)
    alerted = [probes.seen[m] - probes.sent[m] for m in probes.seen]
    acks = [probes.acked[m] - probes.sent[m] for m in probes.acked]
    if not alerted:
        raise SystemExit("no alert became queryable")
    p50, p99 = percentile(alerted, 0.5), percentile(alerted, 0.99)
    met = "✓" if p99 <= TARGET_P99_SECONDS else "✗"
    body = "\n".join(
        [
            f"Server with the rule pack; capacity {measured:,.0f} events/s (wall, requests of "
            f"{BATCH}, 4 clients); stream at {rate:,.0f} events/s for {seconds:.0f} s, one "
            f"alerting `kubectl exec` per request; alerts polled every {POLL_SECONDS * 1000:.0f} ms"
            ".",
            "",
            "| latency | p50 ms | p99 ms | max ms | samples |",
            "| --- | ---: | ---: | ---: | ---: |",
            f"| request due → alert queryable (target p99 ≤ {TARGET_P99_SECONDS * 1000:.0f} ms) "
            f"| {p50 * 1000:,.0f} | {p99 * 1000:,.0f} {met} | {max(alerted) * 1000:,.0f} "
            f"| {len(alerted):,} of {len(probes.sent):,} |",
            f"| request due → acknowledged (durable) | {percentile(acks, 0.5) * 1000:,.0f} "
            f"| {percentile(acks, 0.99) * 1000:,.0f} | {max(acks) * 1000:,.0f} | {len(acks):,} |",
        ]
    )
    print(body)
    if args.record:
        append_results("Alert latency end to end", body)


if __name__ == "__main__":
    main()
