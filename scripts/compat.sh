#!/usr/bin/env bash
# The compatibility matrix: the core integration tests (copy with headers and
# order, kill -9 restart with exactly-once, verify, translate-offsets) against
# each pair of broker versions, each pair on brokers of its own. Writes
# docs/compatibility.md, dated, with what passed.
#
#   scripts/compat.sh                 every pair below
#   scripts/compat.sh KAFKA ROCKETMQ  one pair, e.g. scripts/compat.sh 3.9.2 5.5.0
#
# Environment: BRIDGE_COMPAT_KAFKA [4.4.0 3.9.2]  BRIDGE_COMPAT_ROCKETMQ [5.5.0 4.9.7]
#   BRIDGE_COMPAT_TESTS [bridge:: exactly_once:: verify:: translate_offsets::]
#   BRIDGE_COMPAT_REPORT [docs/compatibility.md]
# CI runs only the default pair (through scripts/test.sh).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(dirname "$HERE")
cd "$REPO"
# shellcheck source=scripts/prerequisites.sh
. "$HERE/prerequisites.sh"

read -r -a KAFKA_VERSIONS <<<"${BRIDGE_COMPAT_KAFKA:-4.4.0 3.9.2}"
read -r -a ROCKETMQ_VERSIONS <<<"${BRIDGE_COMPAT_ROCKETMQ:-5.5.0 4.9.7}"
read -r -a TESTS <<<"${BRIDGE_COMPAT_TESTS:-bridge:: exactly_once:: verify:: translate_offsets::}"
REPORT=${BRIDGE_COMPAT_REPORT:-docs/compatibility.md}
if [ $# -eq 2 ]; then KAFKA_VERSIONS=("$1"); ROCKETMQ_VERSIONS=("$2"); fi
WORK=$REPO/target/compat
mkdir -p "$WORK"

step() { printf '\n==> %s\n' "$*"; }

require_build_tools
step "building the tests"
cargo test --locked --test tests --no-run

export BRIDGE_KAFKA_PORT=${BRIDGE_COMPAT_KAFKA_PORT:-49092}
export BRIDGE_NAMESRV_PORT=${BRIDGE_COMPAT_NAMESRV_PORT:-49876}
export BRIDGE_BROKER_PORT=${BRIDGE_COMPAT_BROKER_PORT:-50911}
export BRIDGE_BROKERS_DIR=$WORK/brokers
export BRIDGE_TEST_KAFKA=127.0.0.1:$BRIDGE_KAFKA_PORT
export BRIDGE_TEST_NAMESRV=127.0.0.1:$BRIDGE_NAMESRV_PORT
export BRIDGE_TEST_BROKERS_SCRIPT=$HERE/brokers.sh
trap '"$HERE/brokers.sh" clean >/dev/null 2>&1 || true' EXIT

rows=()
for kafka in "${KAFKA_VERSIONS[@]}"; do
    for rocketmq in "${ROCKETMQ_VERSIONS[@]}"; do
        pair="Kafka $kafka, RocketMQ $rocketmq"
        log=$WORK/kafka-$kafka-rocketmq-$rocketmq.log
        step "$pair (log: $log)"
        export BRIDGE_KAFKA_VERSION=$kafka BRIDGE_ROCKETMQ_VERSION=$rocketmq
        "$HERE/brokers.sh" clean >/dev/null 2>&1 || true
        if ! "$HERE/brokers.sh" start >"$log" 2>&1; then
            reason=$(grep -m1 'error:' "$log" | sed 's/^\[brokers\] error: //' | cut -c1-200)
            rows+=("| $kafka | $rocketmq | brokers did not start | ${reason:-see $log} |")
            continue
        fi
        results=()
        for area in "${TESTS[@]}"; do
            started=$SECONDS
            if cargo test --locked --test tests -- "$area" --test-threads 2 >>"$log" 2>&1; then
                results+=("${area%::} passed ($((SECONDS - started)) s)")
            else
                results+=("**${area%::} FAILED**")
            fi
        done
        summary=$(IFS=';'; echo "${results[*]}" | sed 's/;/, /g')
        verdict=passed
        [[ $summary == *FAILED* ]] && verdict="**failed**"
        rows+=("| $kafka | $rocketmq | $verdict | $summary |")
        "$HERE/brokers.sh" clean >/dev/null 2>&1 || true
    done
done

{
    echo "# Compatibility"
    echo
    echo "Written by \`scripts/compat.sh\` on $(date -u +%Y-%m-%d) ($(uname -m), $(java -version 2>&1 | head -n 1))."
    echo "Each pair ran the core integration tests (${TESTS[*]}) against brokers of its own,"
    echo "started by \`scripts/brokers.sh\` from Maven Central. CI runs only the default pair"
    echo "(Kafka 4.4.0, RocketMQ 5.5.0), as part of \`scripts/test.sh\`."
    echo
    echo "| Kafka | RocketMQ | result | tests |"
    echo "| --- | --- | --- | --- |"
    printf '%s\n' "${rows[@]}"
} >"$REPORT.new"
mv "$REPORT.new" "$REPORT"
step "wrote $REPORT"
cat "$REPORT"
