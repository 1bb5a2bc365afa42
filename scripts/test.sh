#!/usr/bin/env bash
# The whole test suite: formatting, clippy, unit tests and the integration
# tests against real local brokers (Apache Kafka and Apache RocketMQ).
#
# It installs what a fresh machine lacks (scripts/prerequisites.sh), starts
# test brokers on their own ports (so a developer's brokers on the default
# ports are left alone), runs everything, and stops and deletes what it
# started. A first run on a fresh machine also downloads the brokers' jars
# from Maven Central (about a minute) into a cache reused by later runs.
#
# Extra arguments go to `cargo test`, e.g. `scripts/test.sh -- check::`.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(dirname "$HERE")
cd "$REPO"
# shellcheck source=scripts/prerequisites.sh
. "$HERE/prerequisites.sh"

export BRIDGE_KAFKA_PORT=${BRIDGE_TEST_KAFKA_PORT:-29092}
export BRIDGE_NAMESRV_PORT=${BRIDGE_TEST_NAMESRV_PORT:-29876}
export BRIDGE_BROKER_PORT=${BRIDGE_TEST_BROKER_PORT:-30911}
export BRIDGE_BROKERS_DIR=${BRIDGE_TEST_BROKERS_DIR:-$REPO/target/test-brokers}
# Small (64 MiB) commit-log files, brokers.sh's default: the suite crosses
# file boundaries, and the key query test runs after a kill -9 restart.
unset BRIDGE_BROKER_FILE_MB
# What the integration tests connect to, and how they restart a broker.
export BRIDGE_TEST_KAFKA=127.0.0.1:$BRIDGE_KAFKA_PORT
export BRIDGE_TEST_NAMESRV=127.0.0.1:$BRIDGE_NAMESRV_PORT
export BRIDGE_TEST_BROKERS_SCRIPT=$HERE/brokers.sh

step() { printf '\n==> %s\n' "$*"; }

step "prerequisites"
require_build_tools
require_java_and_maven
require_operator_tools
"$HERE/brokers.sh" install

step "toolchain: $(rustc --version)"
rustup component add rustfmt clippy >/dev/null 2>&1 || true

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy --all-targets -- -D warnings"
cargo clippy --all-targets --locked -- -D warnings

step "building tests"
cargo test --locked --no-run

started_brokers=0
cleanup() {
    if [ "$started_brokers" = 1 ]; then
        step "stopping the test brokers and deleting their data"
        "$HERE/brokers.sh" clean || true
    fi
}
trap cleanup EXIT

step "test brokers (Kafka $BRIDGE_TEST_KAFKA, RocketMQ name server $BRIDGE_TEST_NAMESRV)"
# Not `status | grep -q`: with pipefail, grep's early exit makes the pipeline fail.
broker_status=$("$HERE/brokers.sh" status)
if [[ $broker_status == *stopped* ]]; then
    started_brokers=1
    "$HERE/brokers.sh" start >/dev/null
fi
"$HERE/brokers.sh" status

step "cargo test ($(df -P -B1 . | awk 'NR == 2 { printf "disk: %.0f GiB available, %d%% used as the RocketMQ broker counts it", $4 / 2^30, $3 * 100 / ($3 + $4) }'))"
cargo test --locked "$@"

if [ $# -eq 0 ]; then
    step "benchmark harness, smoke run (scripts/bench.sh --smoke)"
    BRIDGE_BENCH_KAFKA=$BRIDGE_TEST_KAFKA BRIDGE_BENCH_NAMESRV=$BRIDGE_TEST_NAMESRV \
        "$HERE/bench.sh" --smoke
    step "soak, 2 minutes (scripts/soak.sh 2m)"
    "$HERE/soak.sh" 2m
    step "the container image, runtime stage (scripts/image.sh --fast; scripts/image.sh builds it whole)"
    "$HERE/image.sh" --fast
fi
