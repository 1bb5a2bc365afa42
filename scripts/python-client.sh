#!/usr/bin/env bash
# Prepares a Python for the dual-read example (clients/python): a virtual
# environment outside the checkout with confluent-kafka, made once per
# machine, then runs the format's unit tests. Prints the interpreter's path:
#
#   "$(scripts/python-client.sh)" clients/python/example_consumer.py --help
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(dirname "$HERE")
# shellcheck source=scripts/prerequisites.sh
. "$HERE/prerequisites.sh"
require_python_venv >&2
CACHE_DIR=${BRIDGE_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/kafka-rocketmq-bridge}
venv=$CACHE_DIR/dual-read-venv
# The wheel bundles librdkafka: nothing to build.
requirement='confluent-kafka==2.16.1'

if ! "$venv/bin/python" -c 'import confluent_kafka' 2>/dev/null; then
    echo "installing $requirement into $venv (once)" >&2
    python3 -m venv "$venv" >&2
    "$venv/bin/pip" install --quiet --disable-pip-version-check "$requirement" >&2
fi
(cd "$REPO/clients/python" && "$venv/bin/python" -m unittest -q test_dual_read >&2)
echo "$venv/bin/python"
