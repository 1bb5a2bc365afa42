#!/usr/bin/env bash
# Soak: steady keyed traffic through the bridge for DURATION while faults hit
# it on a random (seeded) timer, then `verify`: every Kafka record must be in
# RocketMQ exactly once, with the same content. See docs/reliability.md#soak.
#
#   scripts/soak.sh DURATION        DURATION like 90s, 2m, 1h
#
# It builds the release binaries, starts its own brokers on their own ports,
# creates the topics, produces traffic with `demo-traffic stream`, runs the
# bridge and, every 10-40 s, injects one fault drawn from the seed:
#   bridge-kill       kill -9 the bridge, restart it
#   bridge-term       SIGTERM the bridge (it must exit 0), restart it
#   kafka-kill        kill -9 the Kafka broker (its data stays on disk), restart it
#   broker-kill       kill -9 the RocketMQ broker, restart it
#   namesrv-kill      kill -9 the RocketMQ name server, restart it
#   kafka-cut, kafka-blackhole, namesrv-cut, broker-cut, broker-blackhole,
#   broker-delay      a network fault on the way to that broker (through
#                     `fault-proxy`): connections cut mid-request, traffic
#                     held without an answer, or 1.5 s of delay each way
# Each fault lasts 0-10 s (also drawn). The brokers are Apache Kafka and
# Apache RocketMQ (scripts/brokers.sh). Every client reaches the brokers
# through the proxy: Kafka advertises the proxy's port, and the RocketMQ broker registers
# 127.0.0.2, where its proxy listens. When the traffic ends it waits for
# the bridge to commit everything, stops it with SIGTERM and runs `verify`.
# Exit 0 when every day's counts and digests match with zero duplicates.
#
# A fault kind is a function `fault_<kind>` (dashes become underscores) that
# injects the fault and repairs it before returning; BRIDGE_SOAK_FAULTS lists
# the kinds drawn from. A new kind, such as a network proxy fault, is one such
# function plus its name in that list.
#
# Runs of 30 minutes or more rewrite the results block of docs/reliability.md;
# shorter runs never touch it. The brokers and their data (about 1.5 GB) are
# deleted on exit; config, logs and the verify report stay in BRIDGE_SOAK_DIR.
#
# Environment (defaults in brackets):
#   BRIDGE_SOAK_RATE [1000]          records per second over all topics
#   BRIDGE_SOAK_SEED [random]        seed of the fault timer; printed, to replay a run
#   BRIDGE_SOAK_FAULTS [all the kinds above]
#   BRIDGE_SOAK_MIN_GAP [10]  BRIDGE_SOAK_MAX_GAP [40]   seconds between faults
#   BRIDGE_SOAK_MAX_DOWNTIME [10]    longest time a killed process stays down, in seconds
#   BRIDGE_SOAK_DRAIN_TIMEOUT [300]  seconds the bridge gets to catch up after the traffic
#   BRIDGE_SOAK_KAFKA_PORT [39092]  BRIDGE_SOAK_NAMESRV_PORT [39876]
#   BRIDGE_SOAK_BROKER_PORT [40911]  BRIDGE_SOAK_METRICS_PORT [39464]
#   BRIDGE_SOAK_PROXY_PORT [39990]   fault-proxy's command port; its Kafka and
#       name server routes listen on the Kafka port + 2 and the name server port + 1
#   BRIDGE_SOAK_BROKERS_DIR [target/soak-brokers-<kafka port>]   deleted on exit
#   BRIDGE_SOAK_KEEP_BROKERS [0]     1: leave the brokers running with their data and
#       full logs, to look into a failed run (then: brokers.sh clean with the same env)
#   BRIDGE_SOAK_DIR [target/soak/<UTC start time>]   config, logs, reports (kept)
#   CARGO_TARGET_DIR [~/.cache/kafka-rocketmq-bridge/bench-target]   shared with scripts/bench.sh
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(dirname "$HERE")
cd "$REPO"
# shellcheck source=scripts/prerequisites.sh
. "$HERE/prerequisites.sh"
require_build_tools
require_java_and_maven
CACHE_DIR=${BRIDGE_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/kafka-rocketmq-bridge}

log() { printf '[soak] %s %s\n' "$(date -u +%H:%M:%S)" "$*"; }
step() { printf '\n==> %s\n' "$*"; }
die() { log "error: $*" >&2; exit 2; }
now() { date +%s; }

usage() { sed -n '2,7p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
[ $# -eq 1 ] || usage
DURATION_TEXT=$1
if [[ $DURATION_TEXT =~ ^([0-9]+)(s|m|h)$ ]]; then
    case ${BASH_REMATCH[2]} in
        s) DURATION=${BASH_REMATCH[1]} ;;
        m) DURATION=$((BASH_REMATCH[1] * 60)) ;;
        h) DURATION=$((BASH_REMATCH[1] * 3600)) ;;
    esac
else
    log "DURATION must be a number with s, m or h, like 90s, 2m or 1h (got \`$DURATION_TEXT\`)" >&2
    usage
fi
[ "$DURATION" -gt 0 ] || die "DURATION must be more than 0"

RATE=${BRIDGE_SOAK_RATE:-1000}
SEED=${BRIDGE_SOAK_SEED:-$(( $(od -An -N2 -tu2 /dev/urandom) % 32768 ))}
ALL_FAULTS="bridge-kill bridge-term kafka-kill broker-kill namesrv-kill kafka-cut kafka-blackhole namesrv-cut broker-cut broker-blackhole broker-delay"
read -r -a FAULT_KINDS <<<"${BRIDGE_SOAK_FAULTS:-$ALL_FAULTS}"
MIN_GAP=${BRIDGE_SOAK_MIN_GAP:-10}
MAX_GAP=${BRIDGE_SOAK_MAX_GAP:-40}
MAX_DOWNTIME=${BRIDGE_SOAK_MAX_DOWNTIME:-10}
DRAIN_TIMEOUT=${BRIDGE_SOAK_DRAIN_TIMEOUT:-300}
METRICS_PORT=${BRIDGE_SOAK_METRICS_PORT:-39464}
PARTITIONS=4
QUEUES=4
export BRIDGE_KAFKA_PORT=${BRIDGE_SOAK_KAFKA_PORT:-39092}
export BRIDGE_NAMESRV_PORT=${BRIDGE_SOAK_NAMESRV_PORT:-39876}
export BRIDGE_BROKER_PORT=${BRIDGE_SOAK_BROKER_PORT:-40911}
export BRIDGE_BROKERS_DIR=${BRIDGE_SOAK_BROKERS_DIR:-$REPO/target/soak-brokers-$BRIDGE_KAFKA_PORT}
PROXY_PORT=${BRIDGE_SOAK_PROXY_PORT:-39990}
# Clients reach every broker through fault-proxy (see the header).
# Kafka's port + 1 is its KRaft controller's.
KAFKA_PROXY_PORT=$((BRIDGE_KAFKA_PORT + 2))
NAMESRV_PROXY_PORT=$((BRIDGE_NAMESRV_PORT + 1))
export BRIDGE_KAFKA_ADVERTISED_PORT=$KAFKA_PROXY_PORT
export BRIDGE_BROKER_IP=127.0.0.2
unset BRIDGE_BROKER_HA_PORT
STARTED_AT=$(date -u +%Y%m%dT%H%M%SZ)
WORK=${BRIDGE_SOAK_DIR:-$REPO/target/soak/$STARTED_AT}

for number in RATE SEED MIN_GAP MAX_GAP MAX_DOWNTIME DRAIN_TIMEOUT METRICS_PORT PROXY_PORT; do
    [[ ${!number} =~ ^[0-9]+$ ]] || die "BRIDGE_SOAK_$number must be a whole number (got \`${!number}\`)"
done
[ "$RATE" -gt 0 ] || die "BRIDGE_SOAK_RATE must be more than 0"
[ "$MIN_GAP" -le "$MAX_GAP" ] || die "BRIDGE_SOAK_MIN_GAP must not exceed BRIDGE_SOAK_MAX_GAP"
[ "${#FAULT_KINDS[@]}" -gt 0 ] || die "BRIDGE_SOAK_FAULTS lists no fault kind"
mkdir -p "$WORK" "$REPO/target"
CONFIG=$WORK/bridge.yaml
BRIDGE_LOG=$WORK/bridge.log
TRAFFIC_LOG=$WORK/traffic.log
TRAFFIC_SUMMARY=$WORK/traffic.json
BROKERS_LOG=$WORK/brokers-script.log
VERIFY_JSON=$WORK/verify.json
FAULTS_FILE=$WORK/faults.tsv
: >"$FAULTS_FILE"

# ---- state, and what happens on exit ----------------------------------------

BRIDGE_PID=
TRAFFIC_PID=
PROXY_PID=
brokers_started=0
bridge_starts=0
bridge_unexpected_exits=0
problems=()
result_known=0

problem() {
    problems+=("$*")
    log "PROBLEM: $*" >&2
}

show_logs() {
    step "logs (all in $WORK)"
    echo "--- bridge log, last 60 lines ($BRIDGE_LOG)"
    tail -n 60 "$BRIDGE_LOG" 2>/dev/null || true
    echo "--- traffic log, last 10 lines ($TRAFFIC_LOG)"
    tail -n 10 "$TRAFFIC_LOG" 2>/dev/null || true
    for name in kafka namesrv broker; do
        echo "--- $name log, last 30 lines (kept as $WORK/$name.log.tail)"
        tail -n 30 "$WORK/$name.log.tail" 2>/dev/null || true
    done
}

cleanup() {
    local status=$?
    trap - EXIT INT TERM
    for pid in "$TRAFFIC_PID" "$BRIDGE_PID" "$PROXY_PID"; do
        if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
            kill -KILL "$pid" 2>/dev/null || true
            wait "$pid" 2>/dev/null || true
        fi
    done
    for name in kafka namesrv broker; do
        tail -n 300 "$BRIDGE_BROKERS_DIR/$name.log" >"$WORK/$name.log.tail" 2>/dev/null || true
    done
    if [ "$status" != 0 ] || [ "$result_known" = 0 ]; then
        show_logs
    fi
    if [ "$brokers_started" = 1 ] && [ "${BRIDGE_SOAK_KEEP_BROKERS:-0}" = 1 ]; then
        step "leaving the soak brokers running (BRIDGE_SOAK_KEEP_BROKERS=1): Kafka 127.0.0.1:$BRIDGE_KAFKA_PORT, name server 127.0.0.1:$BRIDGE_NAMESRV_PORT, data and logs in $BRIDGE_BROKERS_DIR"
    elif [ "$brokers_started" = 1 ]; then
        step "stopping the soak brokers and deleting their data ($BRIDGE_BROKERS_DIR)"
        "$HERE/brokers.sh" clean >>"$BROKERS_LOG" 2>&1 || log "brokers.sh clean failed; see $BROKERS_LOG" >&2
    fi
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---- helpers -------------------------------------------------------------------

# wait_until DESCRIPTION SECONDS COMMAND...: polls COMMAND until it succeeds;
# fails after SECONDS.
wait_until() {
    local what=$1 deadline=$(($(now) + $2))
    shift 2
    until "$@"; do
        if [ "$(now)" -ge "$deadline" ]; then
            log "gave up waiting for $what" >&2
            return 1
        fi
        sleep 0.5
    done
}

http_ok() { curl -fsS -o /dev/null --max-time 2 "http://127.0.0.1:$METRICS_PORT/$1" 2>/dev/null; }
bridge_alive() { [ -n "$BRIDGE_PID" ] && kill -0 "$BRIDGE_PID" 2>/dev/null; }
bridge_serving() {
    bridge_alive || return 2
    http_ok healthz
}

start_bridge() {
    bridge_starts=$((bridge_starts + 1))
    printf '\n===== soak: bridge start %d at %s =====\n' "$bridge_starts" "$(date -u +%FT%TZ)" >>"$BRIDGE_LOG"
    NO_COLOR=1 "$BIN/kafka-rocketmq-bridge" run --config "$CONFIG" >>"$BRIDGE_LOG" 2>&1 </dev/null &
    BRIDGE_PID=$!
    local deadline=$(($(now) + 60))
    until bridge_serving; do
        if ! bridge_alive; then
            local code=0
            wait "$BRIDGE_PID" || code=$?
            BRIDGE_PID=
            die "the bridge exited during start-up (code $code); log: $BRIDGE_LOG"
        fi
        [ "$(now)" -lt "$deadline" ] || die "the bridge did not serve /healthz within 60 s; log: $BRIDGE_LOG"
        sleep 0.2
    done
}

# restart_if_exited WHEN: a bridge that exited on its own is a problem;
# it is started again so the run goes on.
restart_if_exited() {
    bridge_alive && return 0
    local code=0
    wait "$BRIDGE_PID" || code=$?
    BRIDGE_PID=
    bridge_unexpected_exits=$((bridge_unexpected_exits + 1))
    problem "the bridge exited on its own (code $code) $1; restarting it"
    start_bridge
}

# Stops the bridge with SIGNAL; its exit code goes to STOP_CODE.
stop_bridge() {
    local signal=$1 code=0 deadline
    kill "-$signal" "$BRIDGE_PID" 2>/dev/null || true
    # SIGTERM drains for up to bridge.shutdown_timeout (30 s) and commits.
    deadline=$(($(now) + 90))
    while kill -0 "$BRIDGE_PID" 2>/dev/null; do
        if [ "$(now)" -ge "$deadline" ]; then
            problem "the bridge did not exit within 90 s of SIG$signal; killed"
            kill -KILL "$BRIDGE_PID" 2>/dev/null || true
            break
        fi
        sleep 0.1
    done
    wait "$BRIDGE_PID" || code=$?
    BRIDGE_PID=
    STOP_CODE=$code
}

# A killed process stays down for this long before it is restarted.
stay_down() { [ "$1" -gt 0 ] && sleep "$1"; return 0; }

brokers() {
    "$HERE/brokers.sh" "$@" >>"$BROKERS_LOG" 2>&1 || {
        tail -n 20 "$BROKERS_LOG" >&2
        die "brokers.sh $* failed; see $BROKERS_LOG"
    }
}

# ---- fault kinds ---------------------------------------------------------------
# fault_<kind> DOWNTIME injects the fault, keeps it up for DOWNTIME seconds,
# repairs it (waiting until the repaired part answers), and leaves a short
# note in FAULT_NOTE. It runs in this shell, never in a subshell: it may
# restart the bridge, whose pid this shell keeps.

fault_bridge_kill() {
    stop_bridge KILL
    stay_down "$1"
    start_bridge
    FAULT_NOTE="bridge killed (exit $STOP_CODE) and restarted"
}

fault_bridge_term() {
    stop_bridge TERM
    [ "$STOP_CODE" = 0 ] || problem "the bridge exited $STOP_CODE after SIGTERM (expected 0)"
    stay_down "$1"
    start_bridge
    FAULT_NOTE="bridge stopped (exit $STOP_CODE) and restarted"
}

fault_kafka_kill() {
    brokers stop --kill kafka
    stay_down "$1"
    brokers start kafka
    FAULT_NOTE="Kafka restarted"
}

fault_broker_kill() {
    brokers stop --kill broker
    stay_down "$1"
    brokers start broker
    FAULT_NOTE="broker restarted"
}

fault_namesrv_kill() {
    brokers stop --kill namesrv
    stay_down "$1"
    brokers start namesrv
    FAULT_NOTE="name server restarted"
}

# proxy COMMAND...: one command to fault-proxy; fails unless it answers ok.
proxy() {
    local reply
    exec 7<>"/dev/tcp/127.0.0.1/$PROXY_PORT" || die "fault-proxy does not answer on port $PROXY_PORT"
    printf '%s\n' "$*" >&7
    read -r -t 5 reply <&7 || reply="no answer"
    exec 7>&-
    [ "$reply" = ok ] || die "fault-proxy refused \`$*\`: $reply"
}

# network_fault ROUTE MODE DOWNTIME: the route's traffic in MODE for DOWNTIME s.
network_fault() {
    proxy "$1" $2
    stay_down "$3"
    proxy "$1" pass
    FAULT_NOTE="$1 $2 for $3 s, then healed"
}

fault_kafka_cut() { network_fault kafka cut "$1"; }
fault_kafka_blackhole() { network_fault kafka blackhole "$1"; }
fault_namesrv_cut() { network_fault namesrv cut "$1"; }
fault_broker_cut() { network_fault broker cut "$1"; }
fault_broker_blackhole() { network_fault broker blackhole "$1"; }
fault_broker_delay() { network_fault broker "delay 1500" "$1"; }

for kind in "${FAULT_KINDS[@]}"; do
    declare -F "fault_${kind//-/_}" >/dev/null || die "unknown fault kind \`$kind\` in BRIDGE_SOAK_FAULTS"
done

# ---- set-up --------------------------------------------------------------------

step "soak for $DURATION_TEXT: $RATE records/s, faults every $MIN_GAP-$MAX_GAP s from: ${FAULT_KINDS[*]}"
log "seed $SEED (replay this fault schedule with BRIDGE_SOAK_SEED=$SEED)"
log "work dir $WORK"

# One soak per set of ports; a soak killed hard leaves its brokers behind,
# and the next one (holding the lock) cleans them up.
exec 8>"$REPO/target/soak-$BRIDGE_KAFKA_PORT.lock"
flock -n 8 || die "another soak runs on port $BRIDGE_KAFKA_PORT; give this one other ports (BRIDGE_SOAK_KAFKA_PORT, BRIDGE_SOAK_NAMESRV_PORT, BRIDGE_SOAK_BROKER_PORT, BRIDGE_SOAK_METRICS_PORT)"
if [ -d "$BRIDGE_BROKERS_DIR" ]; then
    log "removing what an earlier soak left in $BRIDGE_BROKERS_DIR"
    brokers clean
fi

export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$CACHE_DIR/bench-target}
step "building the release binaries ($CARGO_TARGET_DIR)"
cargo build --release --locked --bin kafka-rocketmq-bridge --bin demo-traffic --bin fault-proxy
BIN=$CARGO_TARGET_DIR/release

step "fault-proxy (commands on 127.0.0.1:$PROXY_PORT)"
"$BIN/fault-proxy" --control "127.0.0.1:$PROXY_PORT" \
    --route "kafka=127.0.0.1:$KAFKA_PROXY_PORT:127.0.0.1:$BRIDGE_KAFKA_PORT" \
    --route "namesrv=127.0.0.1:$NAMESRV_PROXY_PORT:127.0.0.1:$BRIDGE_NAMESRV_PORT" \
    --route "broker=127.0.0.2:$BRIDGE_BROKER_PORT:127.0.0.1:$BRIDGE_BROKER_PORT" \
    >"$WORK/fault-proxy.log" 2>&1 </dev/null &
PROXY_PID=$!
proxy_up() { (exec 7<>"/dev/tcp/127.0.0.1/$PROXY_PORT") 2>/dev/null; }
wait_until "fault-proxy to listen" 30 proxy_up || { cat "$WORK/fault-proxy.log" >&2; die "fault-proxy did not start"; }

step "soak brokers (Kafka 127.0.0.1:$BRIDGE_KAFKA_PORT, name server 127.0.0.1:$BRIDGE_NAMESRV_PORT, broker 127.0.0.1:$BRIDGE_BROKER_PORT)"
brokers_started=1
brokers start
"$HERE/brokers.sh" status

cat >"$CONFIG" <<YAML
# Written by scripts/soak.sh
kafka:
  bootstrap_servers: "127.0.0.1:$KAFKA_PROXY_PORT"
  group_id: "soak-$STARTED_AT"
  properties:
    session.timeout.ms: "6000"
rocketmq:
  name_server: "127.0.0.1:$NAMESRV_PROXY_PORT"
  producer_group: "soak-$STARTED_AT"
metrics:
  listen: "127.0.0.1:$METRICS_PORT"
bridge:
  commit_interval: 1s
  exactly_once_restarts: true
mappings:
  - name: orders
    kafka_topic: soak.orders
    rocketmq_topic: soak_orders
    ordering: partition
  - name: payments
    kafka_topic: soak.payments
    rocketmq_topic: soak_payments
    ordering: key_hash
  - name: audit
    kafka_topic: soak.audit
    rocketmq_topic: soak_audit
    ordering: partition
    tag_header: source
YAML

step "creating the topics ($PARTITIONS partitions, $QUEUES queues)"
"$BIN/kafka-rocketmq-bridge" create-topics --config "$CONFIG" --partitions "$PARTITIONS" --queues "$QUEUES" </dev/null

# ---- traffic and faults --------------------------------------------------------

step "traffic, bridge and faults for $DURATION_TEXT (bridge log: $BRIDGE_LOG)"
START_DAY=$(date -u +%F)
start_bridge
log "bridge running (pid $BRIDGE_PID, metrics 127.0.0.1:$METRICS_PORT)"
"$BIN/demo-traffic" --config "$CONFIG" stream --rate "$RATE" --duration "${DURATION}s" \
    --keys 50 --summary "$TRAFFIC_SUMMARY" >"$TRAFFIC_LOG" 2>&1 </dev/null &
TRAFFIC_PID=$!
t0=$(now)
end=$((t0 + DURATION))
log "traffic running (pid $TRAFFIC_PID) until $(date -u -d "@$end" +%H:%M:%S)"

RANDOM=$SEED
next_fault=$((t0 + MIN_GAP + RANDOM % (MAX_GAP - MIN_GAP + 1)))
faults=0
while [ "$(now)" -lt "$end" ] && kill -0 "$TRAFFIC_PID" 2>/dev/null; do
    restart_if_exited "at +$(($(now) - t0))s"
    if [ "$(now)" -ge "$next_fault" ]; then
        kind=${FAULT_KINDS[RANDOM % ${#FAULT_KINDS[@]}]}
        downtime=$((RANDOM % (MAX_DOWNTIME + 1)))
        faults=$((faults + 1))
        at=$(now)
        log "fault $faults at +$((at - t0))s: $kind (down ${downtime}s)"
        "fault_${kind//-/_}" "$downtime"
        took=$(($(now) - at))
        log "  $FAULT_NOTE; back after ${took}s"
        printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$faults" "$(date -u -d "@$at" +%H:%M:%S)" "$((at - t0))" \
            "$kind" "$downtime" "$took" >>"$FAULTS_FILE"
        next_fault=$(($(now) + MIN_GAP + RANDOM % (MAX_GAP - MIN_GAP + 1)))
    fi
    sleep 1
done

step "traffic ends; waiting for its last deliveries"
traffic_done() { ! kill -0 "$TRAFFIC_PID" 2>/dev/null; }
wait_until "the traffic to finish" 180 traffic_done ||
    die "the traffic producer did not finish; log: $TRAFFIC_LOG"
traffic_code=0
wait "$TRAFFIC_PID" || traffic_code=$?
TRAFFIC_PID=
traffic_seconds=$(($(now) - t0))
tail -n 3 "$TRAFFIC_LOG"
[ "$traffic_code" = 0 ] || problem "the traffic producer exited $traffic_code (log: $TRAFFIC_LOG)"
[ -s "$TRAFFIC_SUMMARY" ] || die "the traffic producer wrote no summary; log: $TRAFFIC_LOG"

# ---- drain, stop, verify -------------------------------------------------------

# Drained: every partition of every mapping is assigned, nothing is in
# flight, and the committed offsets add up to what the traffic produced
# (fresh topics, so offsets start at 0 and have no gaps).
drained() {
    curl -fsS --max-time 5 "http://127.0.0.1:$METRICS_PORT/status" >"$WORK/status.json" 2>/dev/null || return 1
    python3 - "$WORK/status.json" "$TRAFFIC_SUMMARY" "$PARTITIONS" >"$WORK/drain.txt" <<'PY'
import json, sys
status = json.load(open(sys.argv[1]))
produced = json.load(open(sys.argv[2]))["topics"]
partitions = int(sys.argv[3])
done, parts = True, []
for mapping in status["mappings"]:
    rows = [p for p in mapping["partitions"] if p["state"] != "revoked"]
    committed = sum(p["committed"] or 0 for p in rows)
    in_flight = sum(p["in_flight"] for p in rows)
    want = produced.get(mapping["kafka_topic"], 0)
    if len(rows) < partitions or any(p["committed"] is None for p in rows) \
            or committed < want or in_flight:
        done = False
    parts.append(f"{mapping['mapping']} committed {committed}/{want}, {in_flight} in flight")
print("; ".join(parts))
sys.exit(0 if done else 1)
PY
}

step "draining: waiting until the bridge committed every record (at most ${DRAIN_TIMEOUT}s)"
drain_start=$(now)
drain_deadline=$((drain_start + DRAIN_TIMEOUT))
next_progress=$((drain_start + 10))
drained_ok=0
while :; do
    restart_if_exited "while draining"
    if drained; then drained_ok=1; break; fi
    [ "$(now)" -lt "$drain_deadline" ] || break
    if [ "$(now)" -ge "$next_progress" ]; then
        log "  $(cat "$WORK/drain.txt" 2>/dev/null || echo "no /status yet")"
        next_progress=$((next_progress + 10))
    fi
    sleep 1
done
drain_seconds=$(($(now) - drain_start))
log "  $(cat "$WORK/drain.txt" 2>/dev/null || true)"
if [ "$drained_ok" = 1 ]; then
    log "drained in ${drain_seconds}s"
else
    problem "the bridge did not commit every record within ${DRAIN_TIMEOUT}s (last /status: $WORK/status.json)"
fi

step "stopping the bridge (SIGTERM)"
stop_bridge TERM
[ "$STOP_CODE" = 0 ] || problem "the bridge exited $STOP_CODE after the final SIGTERM (expected 0)"
grep -E "final commit done" "$BRIDGE_LOG" | tail -n 1 | cut -c1-300 || true

# A name server restarted near the end knows no topic until the broker
# registers again (every 30 s): verify, a new client, would find no route.
topics_routed() { "$BIN/kafka-rocketmq-bridge" check --config "$CONFIG" --timeout 5s >/dev/null 2>&1 </dev/null; }
wait_until "the name server to route the topics again" 90 topics_routed ||
    problem "the name server did not route every topic within 90 s of the end"

END_DAY=$(date -u +%F)
step "kafka-rocketmq-bridge verify --from $START_DAY --to $END_DAY --json"
verify_code=0
"$BIN/kafka-rocketmq-bridge" verify --config "$CONFIG" --from "$START_DAY" --to "$END_DAY" \
    --timezone UTC --json >"$VERIFY_JSON" 2>"$WORK/verify.err" </dev/null || verify_code=$?
log "verify exit code $verify_code (report: $VERIFY_JSON)"
if [ "$verify_code" = 2 ] || [ ! -s "$VERIFY_JSON" ]; then
    cat "$WORK/verify.err" >&2
    die "verify could not run"
fi

# ---- judgement and summary -------------------------------------------------------

# From the restart scans' own lines (the 30 s summaries repeat running totals).
already_stored=$({ grep "restart scan: read the targets' tails" "$BRIDGE_LOG" | grep -o 'already_stored=[0-9]*' || true; } | awk -F= '{s += $2} END {print s + 0}')
stored_despite_failure=$({ grep 'stored all the same' "$BRIDGE_LOG" | grep -o 'found=[0-9]*' || true; } | awk -F= '{s += $2} END {print s + 0}')
judge_code=0
python3 - "$VERIFY_JSON" "$TRAFFIC_SUMMARY" "$FAULTS_FILE" "$WORK/result.json" <<'PY' || judge_code=$?
import json, sys
from collections import Counter

report = json.load(open(sys.argv[1]))
traffic = json.load(open(sys.argv[2]))
faults = [line.rstrip("\n").split("\t") for line in open(sys.argv[3]) if line.strip()]
problems = []
kafka_per_topic = Counter()
rows = []
NOT_OVER = "the day is not over yet"
for row in report["rows"]:
    kafka_per_topic[row["kafka_topic"]] += row["kafka_records"]
    name = f"{row['mapping']} {row['day']}"
    if row["verdict"] == "MISMATCH":
        problems.append(f"{name}: MISMATCH {row['notes']} {row['differences'][:5]}")
    elif row["verdict"] == "INCOMPLETE":
        # Today is INCOMPLETE because the day is not over; the copy itself
        # must still be whole: counts and digests equal, nothing unexplained.
        other = [n for n in row["notes"] if n != NOT_OVER]
        if other:
            problems.append(f"{name}: INCOMPLETE for another reason than the day not being over: {other}")
        if row["expected"] != row["rocketmq_unique"] or not row["digests_match"]:
            problems.append(
                f"{name}: Kafka has {row['expected']} records to copy, RocketMQ {row['rocketmq_unique']} "
                f"first copies, digests {'equal' if row['digests_match'] else 'differ'}")
        if row["foreign"] or row["blocked"]:
            problems.append(f"{name}: {row['foreign']} foreign messages, {row['blocked']} blocked records")
    if row["duplicates"]:
        copies = "; ".join(
            f"{c['coordinates']['topic']}/{c['coordinates']['partition']}@{c['coordinates']['offset']}"
            f" again at queue {c['at']['queue']} offset {c['at']['queue_offset']}"
            for c in row.get("duplicate_copies", []))
        problems.append(f"{name}: {row['duplicates']} duplicates ({copies})")
    if row["skipped"] or row["dead_lettered"]:
        problems.append(f"{name}: skipped {row['skipped']}, dead-lettered {row['dead_lettered']}")
    rows.append(row)
for topic, acknowledged in traffic["topics"].items():
    if kafka_per_topic[topic] != acknowledged:
        problems.append(
            f"{topic}: the traffic had {acknowledged} records acknowledged, verify counted {kafka_per_topic[topic]} in Kafka")

print()
print(f"{'MAPPING':<10} {'DAY':<11} {'KAFKA':>9} {'EXPECTED':>9} {'ROCKETMQ':>9} {'DUPS':>5} {'DIGEST':>7}  VERDICT")
for row in rows:
    verdict = row["verdict"]
    if verdict == "INCOMPLETE" and row["notes"] == [NOT_OVER]:
        verdict += " (day not over)"
    print(f"{row['mapping']:<10} {row['day']:<11} {row['kafka_records']:>9} {row['expected']:>9} "
          f"{row['rocketmq_unique']:>9} {row['duplicates']:>5} {'same' if row['digests_match'] else 'differs':>7}  {verdict}")
json.dump({
    "rows": [{k: row[k] for k in ("mapping", "kafka_topic", "rocketmq_topic", "day", "kafka_records",
                                  "expected", "rocketmq_unique", "duplicates", "digests_match", "verdict", "notes")}
             for row in rows],
    "duplicates": sum(row["duplicates"] for row in rows),
    "fault_kinds": Counter(f[3] for f in faults),
    "problems": problems,
}, open(sys.argv[4], "w"), indent=2)
for problem in problems:
    print(f"PROBLEM: {problem}")
sys.exit(1 if problems else 0)
PY
[ "$judge_code" = 0 ] || problem "verify's report does not show an exact copy (see above; report: $VERIFY_JSON)"

produced=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["acknowledged"])' "$TRAFFIC_SUMMARY")
duplicates=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["duplicates"])' "$WORK/result.json")
verdicts=$(python3 -c 'import json,sys,collections; c=collections.Counter(r["verdict"] for r in json.load(open(sys.argv[1]))["rows"]); print(", ".join(f"{n} {v}" for v,n in sorted(c.items())))' "$WORK/result.json")
fault_counts=$(cut -f4 "$FAULTS_FILE" | sort | uniq -c | awk '{printf "%s%s %s", sep, $2, $1; sep=", "}')
restarts=$((bridge_starts - 1))

step "summary"
echo "duration          $DURATION_TEXT (traffic ran ${traffic_seconds}s), seed $SEED, started $STARTED_AT"
echo "records produced  $produced at $RATE/s over 3 topics ($(python3 -c 'import json,sys; print(", ".join(f"{t} {n}" for t,n in json.load(open(sys.argv[1]))["topics"].items()))' "$TRAFFIC_SUMMARY"))"
echo "faults            $faults (${fault_counts:-none})"
if [ -s "$FAULTS_FILE" ]; then
    printf '                  %-4s %-9s %-8s %-13s %-5s %s\n' "#" "UTC" "AT" "KIND" "DOWN" "BACK AFTER"
    while IFS=$'\t' read -r n at offset kind down took; do
        printf '                  %-4s %-9s %-8s %-13s %-5s %s\n' "$n" "$at" "+${offset}s" "$kind" "${down}s" "${took}s"
    done <"$FAULTS_FILE"
fi
echo "bridge restarts   $restarts ($bridge_unexpected_exits unexpected exits)"
echo "not re-sent       $already_stored records found already stored by restart scans"
echo "                  $stored_despite_failure records of failed sends found stored all the same"
echo "drain             ${drain_seconds}s after the traffic stopped"
echo "duplicates        $duplicates"
echo "verify            exit $verify_code; $verdicts"
echo "work dir          $WORK"
result_known=1

if [ "$DURATION" -ge 1800 ]; then
    step "recording the result in docs/reliability.md"
    # The exact command, with any BRIDGE_SOAK_* settings it ran with.
    overrides=$(env | grep -E '^BRIDGE_SOAK_' | sort | tr '\n' ' ' || true)
    SOAK_COMMAND="${overrides}scripts/soak.sh $DURATION_TEXT" SOAK_SEED=$SEED SOAK_STARTED=$STARTED_AT \
        SOAK_CORES=$(nproc) SOAK_PASSED=$((${#problems[@]} == 0)) SOAK_DURATION=$DURATION_TEXT \
        SOAK_TRAFFIC_SECONDS=$traffic_seconds SOAK_RATE=$RATE SOAK_FAULTS="$faults (${fault_counts:-none})" \
        SOAK_RESTARTS="$restarts ($bridge_unexpected_exits unexpected exits)" SOAK_ALREADY_STORED=$already_stored SOAK_STORED_DESPITE_FAILURE=$stored_despite_failure \
        SOAK_DRAIN=$drain_seconds SOAK_VERIFY="exit $verify_code; $verdicts" \
        python3 - "$REPO/docs/reliability.md" "$WORK/result.json" "$TRAFFIC_SUMMARY" <<'PY'
import json, os, re, sys
path, result, traffic = sys.argv[1], json.load(open(sys.argv[2])), json.load(open(sys.argv[3]))
e = os.environ
mem_gib = int(open("/proc/meminfo").read().split("MemTotal:")[1].split()[0]) / 1024 / 1024
lines = [
    "<!-- soak-results:start (rewritten by scripts/soak.sh after runs of 30 minutes or more) -->",
    f"Last long run: `{e['SOAK_COMMAND']}` (seed {e['SOAK_SEED']}), started {e['SOAK_STARTED']},"
    f" on {e['SOAK_CORES']} cores and {mem_gib:.0f} GiB of memory shared with other work.",
    "",
    "| | |",
    "| --- | --- |",
    f"| result | **{'PASS' if e['SOAK_PASSED'] == '1' else 'FAIL'}** |",
    f"| duration | {e['SOAK_DURATION']} (traffic ran {e['SOAK_TRAFFIC_SECONDS']} s) |",
    f"| records produced | {traffic['acknowledged']:,} at {e['SOAK_RATE']}/s over {len(traffic['topics'])} topics |",
    f"| faults | {e['SOAK_FAULTS']} |",
    f"| bridge restarts | {e['SOAK_RESTARTS']} |",
    f"| records a restart found already stored (not sent again) | {e['SOAK_ALREADY_STORED']} |",
    f"| records of failed sends found stored all the same (not sent again) | {e['SOAK_STORED_DESPITE_FAILURE']} |",
    f"| drain after the traffic stopped | {e['SOAK_DRAIN']} s |",
    f"| duplicates | {result['duplicates']} |",
    f"| verify | {e['SOAK_VERIFY']} |",
    "",
    "| mapping | day | Kafka | RocketMQ first copies | duplicates | digest | verdict |",
    "| --- | --- | ---: | ---: | ---: | --- | --- |",
]
for row in result["rows"]:
    verdict = row["verdict"] + (" (day not over)" if row["notes"] == ["the day is not over yet"] else "")
    lines.append(f"| {row['mapping']} | {row['day']} | {row['kafka_records']:,} | {row['rocketmq_unique']:,} "
                 f"| {row['duplicates']} | {'same' if row['digests_match'] else 'differs'} | {verdict} |")
if result["problems"]:
    lines.append("")
    lines.extend(f"- Problem: {problem}" for problem in result["problems"])
lines.append("<!-- soak-results:end -->")
block = "\n".join(lines)
try:
    text = open(path).read()
except FileNotFoundError:
    text = "# Reliability\n"
pattern = re.compile(r"<!-- soak-results:start.*?<!-- soak-results:end -->", re.S)
if pattern.search(text):
    text = pattern.sub(lambda _: block, text)
else:
    text = text.rstrip("\n") + "\n\n## Soak\n\n" + block + "\n"
open(path, "w").write(text)
print(f"rewrote the soak results in {path}")
PY
fi

if [ "${#problems[@]}" -eq 0 ]; then
    echo
    echo "SOAK PASSED: every record copied exactly once through $faults faults."
else
    echo
    echo "SOAK FAILED:"
    printf '  - %s\n' "${problems[@]}"
    exit 1
fi
