#!/usr/bin/env bash
# Checks a Grafana dashboard file against Grafana's published dashboard
# schema (validate.mjs says how). Installs its two npm packages, at the
# versions package-lock.json pins, once into a cache outside the checkout.
#
# Usage: deploy/grafana/check/check.sh [DASHBOARD.json]
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
DASHBOARD=${1:-$HERE/../kafka-rocketmq-bridge.json}
command -v node >/dev/null && command -v npm >/dev/null || {
    echo "check.sh: node and npm are needed (Debian: apt-get install -y nodejs npm)" >&2
    exit 2
}
LOCK_HASH=$(sha256sum "$HERE/package-lock.json" | cut -c1-12)
DEPS=${XDG_CACHE_HOME:-$HOME/.cache}/kafka-rocketmq-bridge/grafana-schema-$LOCK_HASH
if [ ! -d "$DEPS/node_modules/@grafana/schema" ]; then
    mkdir -p "$DEPS"
    cp "$HERE/package.json" "$HERE/package-lock.json" "$DEPS/"
    (cd "$DEPS" && npm ci --no-audit --no-fund --loglevel=error >&2)
fi
exec node "$HERE/validate.mjs" "$DEPS" "$DASHBOARD"
