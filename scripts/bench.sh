#!/usr/bin/env bash
# Benchmarks, measured side by side in one run (see docs/benchmarks.md):
# the source and sink ceilings, the naive hand-written bridge, the bridge in
# each mode, the way back (RocketMQ to Kafka) against its own ceilings (raw
# RocketMQ pull, raw Kafka produce), 2 KiB and 64 KiB values, latency at half
# and a tenth of the load, rate-limit accuracy, kill -9 restarts, one RocketMQ
# master of two down (a cluster of the harness's own) and a scaling table.
#
#   scripts/bench.sh            full run (about 30 min): rewrites docs/benchmarks.md
#                               and docs/benchmarks.png
#   scripts/bench.sh --smoke    seconds, debug build, writes under target/bench/
#                               (part of scripts/test.sh so the harness cannot rot)
#
# Other arguments go to the harness (benches/pipeline.rs), e.g. --records 200000.
# It starts its own brokers on their own ports unless BRIDGE_BENCH_KAFKA and
# BRIDGE_BENCH_NAMESRV point at running ones. Release builds go to a cache
# outside the checkout so a fresh clone does not rebuild the dependencies.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(dirname "$HERE")
cd "$REPO"
# shellcheck source=scripts/prerequisites.sh
. "$HERE/prerequisites.sh"
require_build_tools
require_java_and_maven
CACHE_DIR=${BRIDGE_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/kafka-rocketmq-bridge}

smoke=0
given_report=
previous=
for arg in "$@"; do
    [ "$arg" = --smoke ] && smoke=1
    # The harness takes the last --report; the chart goes beside it.
    [ "$previous" = --report ] && given_report=$arg
    previous=$arg
done

step() { printf '\n==> %s\n' "$*"; }

# `cargo bench` builds the harness and the bridge binary with one feature
# set (dev-dependencies included); a separate `cargo build` would build
# every dependency a second time.
if [ "$smoke" = 1 ]; then
    profile=(--profile dev)
    bridge_bin=${CARGO_TARGET_DIR:-target}/debug/kafka-rocketmq-bridge
    report=target/bench/smoke.md
else
    export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$CACHE_DIR/bench-target}
    profile=()
    bridge_bin=$CARGO_TARGET_DIR/release/kafka-rocketmq-bridge
    report=docs/benchmarks.md
fi
report=${given_report:-$report}
step "building the harness and the bridge (${CARGO_TARGET_DIR:-target})"
cargo bench --locked "${profile[@]}" --bench pipeline --no-run

started_brokers=0
cleanup() {
    if [ "$started_brokers" = 1 ]; then
        step "stopping the benchmark brokers and deleting their data"
        "$HERE/brokers.sh" clean >/dev/null || true
    fi
}
trap cleanup EXIT

if [ -n "${BRIDGE_BENCH_KAFKA:-}" ] && [ -n "${BRIDGE_BENCH_NAMESRV:-}" ]; then
    kafka=$BRIDGE_BENCH_KAFKA
    namesrv=$BRIDGE_BENCH_NAMESRV
else
    export BRIDGE_KAFKA_PORT=${BRIDGE_BENCH_KAFKA_PORT:-39092}
    export BRIDGE_NAMESRV_PORT=${BRIDGE_BENCH_NAMESRV_PORT:-39876}
    export BRIDGE_BROKER_PORT=${BRIDGE_BENCH_BROKER_PORT:-40911}
    export BRIDGE_BROKERS_DIR=${BRIDGE_BENCH_BROKERS_DIR:-$REPO/target/bench-brokers}
    kafka=127.0.0.1:$BRIDGE_KAFKA_PORT
    namesrv=127.0.0.1:$BRIDGE_NAMESRV_PORT
    step "benchmark brokers (Kafka $kafka, RocketMQ name server $namesrv)"
    started_brokers=1
    # Every run starts on empty brokers: data left in this directory (by
    # brokers started by hand on these ports, or a run that was killed) would
    # be measured with, and would count against the disk-space limit above
    # which RocketMQ refuses writes (90% used).
    "$HERE/brokers.sh" clean >/dev/null
    "$HERE/brokers.sh" start >/dev/null
fi

# The broker versions, for the report.
eval "$("$HERE/brokers.sh" env | grep VERSION)"

step "running the harness"
mkdir -p target/bench
cargo bench --locked "${profile[@]}" --bench pipeline -- \
    --bridge "$bridge_bin" --kafka "$kafka" --name-server "$namesrv" \
    --report "$report" --csv target/bench/throughput.csv \
    --command "scripts/bench.sh $*" "$@"

chart=${report%.md}.png
step "chart"
"$HERE/bench_chart.sh" target/bench/throughput.csv "$chart"
echo "wrote $report and $chart"
