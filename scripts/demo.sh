#!/usr/bin/env bash
# The main job on the embedded default: start local brokers, create the demo
# topics, produce sample keyed traffic with headers into Kafka, run the bridge
# on config/demo.yaml, and show with a small reader that RocketMQ holds the
# same records in the same per-key order.
#
# `scripts/demo.sh --dual-read` runs the second phase instead: the Java
# example consumer (clients/java) reads each side with the same toy logic and
# writes its ledger, and `compare-results` says MATCH; then the RocketMQ side
# runs with a deliberate bug (a header read wrongly) and `compare-results`
# says MISMATCH, naming the record. See docs/dual-read.md.
#
# The brokers keep running afterwards; stop them with `scripts/brokers.sh stop`
# (or `scripts/brokers.sh clean` to also delete their data).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(dirname "$HERE")
cd "$REPO"
CONFIG=config/demo.yaml
RECORDS=${DEMO_RECORDS:-1000}
LOG=${DEMO_LOG:-$REPO/.brokers/demo-bridge.log}
mkdir -p "$(dirname "$LOG")"

step() { printf '\n==> %s\n' "$*"; }

# shellcheck source=scripts/prerequisites.sh
. "$HERE/prerequisites.sh"
require_build_tools

step "starting local brokers (the first run downloads them from Maven Central: about a minute)"
"$HERE/brokers.sh" start

step "building kafka-rocketmq-bridge"
cargo build --locked --bins
BIN=target/debug

if [ "${1:-}" = --dual-read ]; then
    # shellcheck source=scripts/demo_dual_read.sh
    . "$HERE/demo_dual_read.sh"
    exit 0
fi

step "creating the demo topics (4 partitions, 4 queues)"
"$BIN/kafka-rocketmq-bridge" create-topics --config "$CONFIG" --partitions 4 --queues 4

step "producing $RECORDS keyed records with headers into each demo Kafka topic"
"$BIN/demo-traffic" --config "$CONFIG" produce --records "$RECORDS"

step "kafka-rocketmq-bridge check --config $CONFIG"
"$BIN/kafka-rocketmq-bridge" check --config "$CONFIG"

step "kafka-rocketmq-bridge run --config $CONFIG (in the background; log: $LOG)"
"$BIN/kafka-rocketmq-bridge" run --config "$CONFIG" >"$LOG" 2>&1 &
BRIDGE_PID=$!
trap 'kill -TERM $BRIDGE_PID 2>/dev/null || true' EXIT

step "reading RocketMQ back and comparing it with Kafka"
compare_status=0
"$BIN/demo-traffic" --config "$CONFIG" compare --wait-seconds 120 || compare_status=$?

step "stopping the bridge (SIGTERM: drain, commit, exit 0)"
kill -TERM "$BRIDGE_PID"
bridge_status=0
wait "$BRIDGE_PID" || bridge_status=$?
trap - EXIT
grep -E "final commit done|stopped" "$LOG" | sed 's/^/  /' | cut -c1-200

echo
if [ "$compare_status" = 0 ] && [ "$bridge_status" = 0 ]; then
    echo "Demo done: RocketMQ holds the same records as Kafka, in the same per-key order."
else
    echo "Demo FAILED (compare exit $compare_status, bridge exit $bridge_status); bridge log: $LOG"
    exit 1
fi
echo "Brokers are still running: scripts/brokers.sh status | stop | clean"
