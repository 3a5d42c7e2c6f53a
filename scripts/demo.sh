#!/usr/bin/env bash
# make demo: a simulated cluster under attack, streamed into a fresh Keelwatch through real
# protocols (Elasticsearch _bulk and Fluent forward), scored against its ground truth.
set -euo pipefail

bin="${BIN:-.venv/bin}"
data="${DEMO_DATA:-./demo-data}"
port="${DEMO_PORT:-8088}"
forward_port="${DEMO_FORWARD_PORT:-24288}"
url="http://127.0.0.1:$port"

rm -rf "$data"
mkdir -p "$data"
export KEELWATCH_TOKEN
KEELWATCH_TOKEN="$("$bin/keelwatch" tokens ensure-admin --data "$data" | sed -n 's/^export KEELWATCH_TOKEN=//p')"
shared_key="$(head -c 24 /dev/urandom | base64 | tr -d '/+=')"

echo "==> starting Keelwatch on $url (data in $data, Keelwatch rule pack loaded)"
"$bin/keelwatch" serve --data "$data" --port "$port" --rules content/rules --rules scripts/demo-filters \
    --forward-port "$forward_port" --forward-shared-key "$shared_key" \
    --log-level warning >"$data/server.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null; wait $server 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do
    curl -fsS "$url/healthz" >/dev/null 2>&1 && break
    kill -0 "$server" 2>/dev/null || { cat "$data/server.log"; exit 1; }
    sleep 0.2
done

common=(--duration 10m --rate 40 --seed 7 --server "$url" --send-rate 0)
echo "==> streaming a 10-minute simulated cluster: audit, Falco, Tetragon, Hubble and container logs"
echo "    attacks and benign look-alikes through Elasticsearch _bulk"
"$bin/keelwatch" simulate "${common[@]}" --protocol elasticsearch
echo "    the same cluster's next 10 minutes (seed 8, quiet) through Fluent forward with shared_key"
"$bin/keelwatch" simulate --duration 10m --rate 40 --seed 8 --scenarios none --server "$url" \
    --send-rate 0 --start 2025-06-02T09:10:00Z --protocol forward \
    --forward-port "$forward_port" --forward-shared-key "$shared_key"

echo "==> did Keelwatch catch the attacks? (ground truth from the simulator's labels)"
"$bin/keelwatch" simulate "${common[@]}" --evaluate --no-stream

cat <<GUIDE

==> Keelwatch is running at $url with the demo data. Try, in another terminal:

    export KEELWATCH_TOKEN=$KEELWATCH_TOKEN KEELWATCH_SERVER=$url
    .venv/bin/keelwatch alerts --severity high
    .venv/bin/keelwatch search 'kubernetes.audit.objectRef.subresource:exec' --since 3650d
    .venv/bin/keelwatch search 'event.dataset:falco.alerts' --since 3650d --count-by rule.name
    .venv/bin/keelwatch search 'kubernetes.audit.verb:(list OR get) AND kubernetes.audit.objectRef.resource:secrets' --since 3650d --count-by user.name
    .venv/bin/keelwatch hunt content/rules --since 3650d
    curl -H "Authorization: Bearer \$KEELWATCH_TOKEN" "$url/api/v1/alerts?severity=critical"

Press Ctrl-C to stop the server (the data stays in $data).
GUIDE
wait $server
