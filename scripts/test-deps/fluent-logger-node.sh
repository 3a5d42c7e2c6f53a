#!/usr/bin/env bash
# Install the Node.js fluent-logger (npm) into .cache/node for tests/sources/test_fluent_forward.py.
#
# Debian has no fluentd package, and fluent-logger for Python speaks only Message mode without
# acknowledgements or authentication. The Node.js logger is the fluent project's own client for
# the other half of the protocol: PackedForward, CompressedPackedForward, `chunk` acks and the
# shared_key HELO/PING/PONG handshake. Without node/npm the tests that use it skip.
# Idempotent: exits at once when the pinned version is already there.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
prefix="${KEELWATCH_NODE_CACHE:-$root/.cache/node}"
package="fluent-logger@3.4.1"
stamp="$prefix/fluent-logger.done"

if [[ -f "$stamp" && "$(cat "$stamp")" == "$package" ]]; then
    exit 0
fi
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    echo "fluent-logger-node: node and npm are needed; the Node.js client tests will skip" >&2
    exit 0
fi
mkdir -p "$prefix"
npm install --prefix "$prefix" --no-audit --no-fund --ignore-scripts --no-save --silent "$package"
if [[ ! -f "$prefix/node_modules/fluent-logger/lib/sender.js" ]]; then
    echo "fluent-logger-node: $package is missing after npm install" >&2
    exit 1
fi
echo "$package" >"$stamp"
echo "fluent-logger-node: installed $package into $prefix"
