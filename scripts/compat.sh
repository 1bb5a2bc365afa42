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
#   BRIDGE_TEST_RECORDS [20000]  BRIDGE_TEST_KILL_RECORDS [40000]   the big runs' sizes: the
#       matrix is about what each version does, not about volume
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
export BRIDGE_TEST_RECORDS=${BRIDGE_TEST_RECORDS:-20000}
export BRIDGE_TEST_KILL_RECORDS=${BRIDGE_TEST_KILL_RECORDS:-40000}
trap '"$HERE/brokers.sh" clean >/dev/null 2>&1 || true' EXIT

# The first panic message of a failed test area, to say why in the report.
first_failure() {
    grep -m1 -A1 "panicked at" "$1" | tail -n 1 | tr '|' '/' | cut -c1-220
}

declare -A rows
# Pairs not run this time keep their row from the previous report.
if [ -f "$REPORT" ]; then
    while IFS= read -r line; do
        [[ $line =~ ^\|\ ([0-9.]+)\ \|\ ([0-9.]+)\ \|\ (.*)$ ]] || continue
        kafka=${BASH_REMATCH[1]} rocketmq=${BASH_REMATCH[2]} rest=${BASH_REMATCH[3]}
        # Rows written before the "run on" column: the report's own date.
        if ! [[ $rest =~ ^[0-9]{4}-[0-9]{2}-[0-9]{2}\ \| ]]; then
            rest="$(grep -o '[0-9]\{4\}-[0-9]\{2\}-[0-9]\{2\}' "$REPORT" | head -n 1) | $rest"
        fi
        rows["$kafka $rocketmq"]="| $kafka | $rocketmq | $rest"
    done <"$REPORT"
fi
today=$(date -u +%Y-%m-%d)

for kafka in "${KAFKA_VERSIONS[@]}"; do
    for rocketmq in "${ROCKETMQ_VERSIONS[@]}"; do
        pair="Kafka $kafka, RocketMQ $rocketmq"
        log=$WORK/kafka-$kafka-rocketmq-$rocketmq.log
        step "$pair (log: $log)"
        export BRIDGE_KAFKA_VERSION=$kafka BRIDGE_ROCKETMQ_VERSION=$rocketmq
        "$HERE/brokers.sh" clean >/dev/null 2>&1 || true
        if ! "$HERE/brokers.sh" start >"$log" 2>&1; then
            reason=$(grep -m1 'error:' "$log" | sed 's/^\[brokers\] error: //' | cut -c1-200)
            rows["$kafka $rocketmq"]="| $kafka | $rocketmq | $today | brokers did not start | ${reason:-see $log} |"
            continue
        fi
        results=()
        reasons=()
        for area in "${TESTS[@]}"; do
            started=$SECONDS
            area_log=$WORK/kafka-$kafka-rocketmq-$rocketmq-${area%::}.log
            if cargo test --locked --test tests -- "$area" --test-threads 2 >"$area_log" 2>&1; then
                results+=("${area%::} passed ($((SECONDS - started)) s)")
            else
                reasons+=("$(first_failure "$area_log")")
                results+=("**${area%::} FAILED**: ${reasons[-1]}")
            fi
            cat "$area_log" >>"$log"
        done
        summary=$(IFS=';'; echo "${results[*]}" | sed 's/;/; /g')
        # Every area failing the same way: say it once.
        if [ ${#reasons[@]} -eq ${#TESTS[@]} ] && [ "$(printf '%s\n' "${reasons[@]}" | sort -u | wc -l)" = 1 ]; then
            summary="**every area FAILED**: ${reasons[0]}"
        fi
        verdict=passed
        [[ $summary == *FAILED* ]] && verdict="**failed**"
        rows["$kafka $rocketmq"]="| $kafka | $rocketmq | $today | $verdict | $summary |"
        "$HERE/brokers.sh" clean >/dev/null 2>&1 || true
    done
done

{
    echo "# Compatibility"
    echo
    echo "Written by \`scripts/compat.sh\` (last run $today, $(uname -m), $(java -version 2>&1 | head -n 1))."
    echo "Each pair ran the core integration tests (${TESTS[*]}) against brokers of its own,"
    echo "started by \`scripts/brokers.sh\` from Maven Central; a failed area shows its first"
    echo "panic message. CI runs only the default pair (Kafka 4.4.0, RocketMQ 5.5.0), as part"
    echo "of \`scripts/test.sh\`. Pairs not run the last time keep the row of their own run."
    echo
    echo "| Kafka | RocketMQ | run on | result | tests |"
    echo "| --- | --- | --- | --- | --- |"
    for key in $(printf '%s\n' "${!rows[@]}" | sort -t' ' -k1,1Vr -k2,2Vr | tr ' ' '_'); do
        echo "${rows[${key/_/ }]}"
    done
} >"$REPORT.new"
mv "$REPORT.new" "$REPORT"
step "wrote $REPORT"
cat "$REPORT"
