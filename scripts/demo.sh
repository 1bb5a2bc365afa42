#!/usr/bin/env bash
# The main job on the embedded default: start local brokers, create the demo
# topics, produce sample keyed traffic with headers into Kafka, and check the
# bridge's plan for config/demo.yaml.
#
# The brokers keep running afterwards; stop them with `scripts/brokers.sh stop`
# (or `scripts/brokers.sh clean` to also delete their data).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(dirname "$HERE")
cd "$REPO"
CONFIG=config/demo.yaml
RECORDS=${DEMO_RECORDS:-1000}

step() { printf '\n==> %s\n' "$*"; }

step "starting local brokers (the first run builds the RocketMQ broker: 20-30 minutes)"
"$HERE/brokers.sh" start

step "building kafka-rocketmq-bridge"
cargo build --locked --bins
BIN=target/debug

step "creating the demo topics (4 partitions, 4 queues)"
"$BIN/kafka-rocketmq-bridge" create-topics --config "$CONFIG" --partitions 4 --queues 4

step "producing $RECORDS keyed records with headers into each demo Kafka topic"
"$BIN/demo-traffic" --config "$CONFIG" --records "$RECORDS"

step "kafka-rocketmq-bridge check --config $CONFIG"
"$BIN/kafka-rocketmq-bridge" check --config "$CONFIG"

step "done"
echo "The bridge's plan is ready. The copy itself (\`kafka-rocketmq-bridge run\`) arrives with the bridge issue."
echo "Brokers are still running: scripts/brokers.sh status | stop | clean"
