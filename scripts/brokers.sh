#!/usr/bin/env bash
# Local real brokers for the demo, the tests and the benchmarks, on 127.0.0.1:
#   Apache Kafka (KRaft, combined broker and controller) and Apache RocketMQ (name server and
#   broker), assembled from Maven Central into a cache outside the checkout and started with java.
#
#   scripts/brokers.sh start [COMPONENT ...]          install if missing, start, wait until ready
#   scripts/brokers.sh stop [--kill] [COMPONENT ...]  stop what this script started (by pid)
#   scripts/brokers.sh status                         what runs, and where
#   scripts/brokers.sh clean                          stop everything and delete logs and data
#   scripts/brokers.sh install                        only install (Java, Maven, the broker jars)
#   scripts/brokers.sh env                            print the addresses as shell exports
#
# Components: kafka (every node), kafka-N (node N), namesrv, broker (every master),
# broker-a, broker-b, ... (one master). None means all.
#
# Environment (defaults in brackets):
#   BRIDGE_KAFKA_PORT [9092]  BRIDGE_NAMESRV_PORT [9876]  BRIDGE_BROKER_PORT [10911]
#   BRIDGE_KAFKA_VERSION [4.4.0]  BRIDGE_ROCKETMQ_VERSION [5.5.0]   versions from Maven Central
#   BRIDGE_KAFKA_NODES [1]   KRaft nodes, each broker and controller; node N listens on
#       BRIDGE_KAFKA_PORT + 2(N-1) for clients and the port after it for the controllers
#   BRIDGE_KAFKA_ADVERTISED_PORT [BRIDGE_KAFKA_PORT]   the port node 1 tells clients to use
#   BRIDGE_KAFKA_AUTH_USER [unset]   USER:PASSWORD: Kafka takes only SASL/SCRAM-SHA-256 and
#       SCRAM-SHA-512 logins (SASL_PLAINTEXT), and knows this one user
#   BRIDGE_KAFKA_AUTHENTICATION [unset]   1: the same with the user bridge:bridge-secret
#   BRIDGE_BROKER_MASTERS [1]   RocketMQ master brokers (broker-a, broker-b, ...) in one cluster;
#       master K (from 0) listens on BRIDGE_BROKER_PORT + 4K, and binds that port - 2 and + 1
#   BRIDGE_BROKER_HA_PORT [BRIDGE_BROKER_PORT+1]   broker-a's HA listener
#   BRIDGE_BROKER_IP [127.0.0.1]   the address the RocketMQ brokers register (brokerIP1); they
#       still bind 127.0.0.1. With BRIDGE_KAFKA_ADVERTISED_PORT it lets a test put a proxy
#       between the clients and the brokers.
#   BRIDGE_BROKER_AUTH_USER [unset]   USER:PASSWORD: the RocketMQ brokers require authentication
#       (ACL 2.0), with this one (super) user
#   BRIDGE_BROKERS_DIR [<repo>/.brokers]   logs, pid files and the brokers' data
#   BRIDGE_BROKER_FILE_MB [64]   size of each RocketMQ commit-log file in MiB (the broker
#       allocates it whole, plus the next one; its index files are scaled with it)
#   BRIDGE_CACHE_DIR [${XDG_CACHE_HOME:-$HOME/.cache}/kafka-rocketmq-bridge]   jars, reused
#   BRIDGE_BROKER_HEAP_MB [512]   maximum heap of each Kafka node and RocketMQ broker
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(dirname "$HERE")
# shellcheck source=scripts/prerequisites.sh
. "$HERE/prerequisites.sh"

KAFKA_PORT=${BRIDGE_KAFKA_PORT:-9092}
NAMESRV_PORT=${BRIDGE_NAMESRV_PORT:-9876}
BROKER_PORT=${BRIDGE_BROKER_PORT:-10911}
BROKER_HA_PORT=${BRIDGE_BROKER_HA_PORT:-$((BROKER_PORT + 1))}
KAFKA_ADVERTISED_PORT=${BRIDGE_KAFKA_ADVERTISED_PORT:-$KAFKA_PORT}
KAFKA_NODES=${BRIDGE_KAFKA_NODES:-1}
BROKER_MASTERS=${BRIDGE_BROKER_MASTERS:-1}
BROKER_IP=${BRIDGE_BROKER_IP:-127.0.0.1}
STATE_DIR=${BRIDGE_BROKERS_DIR:-$REPO/.brokers}
CACHE_DIR=${BRIDGE_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/kafka-rocketmq-bridge}
KAFKA_VERSION=${BRIDGE_KAFKA_VERSION:-4.4.0}
ROCKETMQ_VERSION=${BRIDGE_ROCKETMQ_VERSION:-5.5.0}
KAFKA_LIBS=$CACHE_DIR/apache-kafka-$KAFKA_VERSION
ROCKETMQ_LIBS=$CACHE_DIR/apache-rocketmq-$ROCKETMQ_VERSION
READY_TIMEOUT=${BRIDGE_BROKER_READY_TIMEOUT:-120}
FILE_MB=${BRIDGE_BROKER_FILE_MB:-64}
HEAP_MB=${BRIDGE_BROKER_HEAP_MB:-512}
KAFKA_AUTH_USER=${BRIDGE_KAFKA_AUTH_USER:-}
if [ -z "$KAFKA_AUTH_USER" ] && [ "${BRIDGE_KAFKA_AUTHENTICATION:-}" = 1 ]; then
    KAFKA_AUTH_USER=bridge:bridge-secret
fi
# The Apache RocketMQ broker refuses every write once the disk holding its store is more than
# 90% used (diskSpaceWarningLevelRatio, capped at 90%), measured as used / (used + available),
# which is df's Use%. Past 85% (diskSpaceCleanForciblyRatio) it would delete commit-log files
# early, so cleanFileForciblyEnable is off in its config below.
DISK_REFUSAL_PERCENT=90
# A port held by a closed connection (TIME-WAIT, 60 s on Linux) is waited for this long.
PORT_WAIT_SECONDS=90

log() { printf '[brokers] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# ---- install --------------------------------------------------------------

# Copies one pom's runtime dependencies into $2, once; later runs reuse them.
install_jars() {
    local pom=$1 dir=$2 what=$3
    shift 3
    [ -f "$dir/.complete" ] && return
    mkdir -p "$CACHE_DIR/logs"
    exec 9>"$CACHE_DIR/install.lock"
    if ! flock -n 9; then
        log "another process is installing brokers; waiting for it"
        flock 9
    fi
    if [ -f "$dir/.complete" ]; then exec 9>&-; return; fi
    local mvn_log=$CACHE_DIR/logs/$(basename "$dir").log started=$SECONDS
    log "downloading $what from Maven Central into $dir (once per machine; log: $mvn_log)"
    rm -rf "$dir.partial"
    mvn -B -ntp -f "$HERE/maven/$pom" "$@" -Dmaven.repo.local="$CACHE_DIR/maven-repository" \
        dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$dir.partial" \
        >"$mvn_log" 2>&1 &
    local pid=$!
    while kill -0 "$pid" 2>/dev/null; do
        sleep 5 & wait $! || true
        kill -0 "$pid" 2>/dev/null || break
        # Progress for a person watching; CI logs get the start and end lines only.
        if [ -t 2 ] && [ -z "${CI:-}" ]; then
            log "  ... $((SECONDS - started))s, $(find "$CACHE_DIR/maven-repository" -name '*.jar' 2>/dev/null | wc -l) jars in the local Maven repository"
        fi
    done
    if ! wait "$pid"; then
        grep -E 'ERROR|Could not' "$mvn_log" | head -n 5 >&2 || true
        die "Maven could not fetch $what; see $mvn_log"
    fi
    rm -rf "$dir"
    mv "$dir.partial" "$dir"
    touch "$dir/.complete"
    log "$what: $(ls "$dir" | wc -l) jars in $((SECONDS - started))s"
    exec 9>&-
}

cmd_install() {
    require_java_and_maven
    local kafka_extra=()
    # Kafka 3.x also calls the log4j 1 API (broker-logger configs): add the log4j-1.2-api bridge.
    case $KAFKA_VERSION in 3.*) kafka_extra=(-Dkafka.log4j1) ;; esac
    install_jars kafka.pom.xml "$KAFKA_LIBS" "Apache Kafka $KAFKA_VERSION" -Dkafka.version="$KAFKA_VERSION" \
        "${kafka_extra[@]}"
    install_jars rocketmq.pom.xml "$ROCKETMQ_LIBS" "Apache RocketMQ $ROCKETMQ_VERSION" \
        -Drocketmq.version="$ROCKETMQ_VERSION"
}

# ---- components -------------------------------------------------------------

broker_names() {
    local k
    for ((k = 0; k < BROKER_MASTERS; k++)); do printf 'broker-%s ' "$(printf "\\x$(printf '%x' $((97 + k)))")"; done
}
kafka_names() {
    local n
    for ((n = 1; n <= KAFKA_NODES; n++)); do printf 'kafka-%d ' "$n"; done
}
all_components() { echo "$(kafka_names)namesrv $(broker_names)"; }

# Expands kafka and broker into their nodes; checks every name.
expand() {
    local name
    for name in "$@"; do
        case $name in
            kafka) kafka_names ;;
            broker) broker_names ;;
            kafka-[0-9]*|namesrv|broker-[a-z])
                [[ " $(all_components) " == *" $name "* ]] ||
                    die "no component $name here (BRIDGE_KAFKA_NODES=$KAFKA_NODES, BRIDGE_BROKER_MASTERS=$BROKER_MASTERS)"
                printf '%s ' "$name" ;;
            *) die "unknown component $name: use kafka, kafka-N, namesrv, broker or broker-X" ;;
        esac
    done
}

components() {
    if [ $# -eq 0 ]; then all_components; else expand "$@"; fi
}

kafka_node() { echo "${1#kafka-}"; }
kafka_port_of() { echo $((KAFKA_PORT + 2 * ($(kafka_node "$1") - 1))); }
controller_port_of() { echo $(($(kafka_port_of "$1") + 1)); }
broker_index() { printf '%d' $(($(printf '%d' "'${1#broker-}") - 97)); }
broker_port_of() { echo $((BROKER_PORT + 4 * $(broker_index "$1"))); }
broker_ha_port_of() {
    if [ "$1" = broker-a ]; then echo "$BROKER_HA_PORT"; else echo $(($(broker_port_of "$1") + 1)); fi
}

address_of() {
    case $1 in
        kafka-*) echo "127.0.0.1:$(kafka_port_of "$1")" ;;
        namesrv) echo "127.0.0.1:$NAMESRV_PORT" ;;
        broker-*) echo "$BROKER_IP:$(broker_port_of "$1")" ;;
    esac
}

ports_of() {
    case $1 in
        kafka-*) echo "$(kafka_port_of "$1") $(controller_port_of "$1")" ;;
        namesrv) echo "$NAMESRV_PORT" ;;
        # The broker also binds its "fast" port, listenPort - 2, and the HA port.
        broker-*) local p; p=$(broker_port_of "$1"); echo "$p $((p - 2)) $(broker_ha_port_of "$1")" ;;
    esac
}

# What identifies the component's java process in /proc/PID/cmdline.
marker_of() { echo "-Dbridge.component=$1@$STATE_DIR"; }

pid_file() { echo "$STATE_DIR/$1.pid"; }

# The pid of a component this script started, if it still runs.
running_pid() {
    local file pid
    file=$(pid_file "$1")
    [ -f "$file" ] || return 1
    pid=$(cat "$file")
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 1
    # Guard against a recycled pid: it must still be our java process.
    tr '\0' '\n' <"/proc/$pid/cmdline" 2>/dev/null | grep -qxF -- "$(marker_of "$1")" || return 1
    echo "$pid"
}

probe() {
    case $1 in
        kafka-*) "$HERE/probe.py" kafka "$(address_of "$1")" ;;
        namesrv) "$HERE/probe.py" namesrv "$(address_of namesrv)" ;;
        broker-*) "$HERE/probe.py" broker "$(address_of namesrv)" "$1" "$(address_of "$1")" ;;
    esac
}

# What the kernel says of local port $1: "listening" (a process accepts on it
# where a server binding 127.0.0.1 would clash),
# "held" (another socket has it, e.g. in TIME-WAIT, so a server cannot bind it
# yet) or "free". Asked of the kernel, not by connecting: a connect to a port
# nobody listens on can pick that very port as its source and connect to
# itself, and the port then stays in TIME-WAIT for a minute. (RocketMQ clients
# retrying a stopped name server do that too.)
port_state() {
    python3 - "$1" <<'PY'
import socket, sys
port = int(sys.argv[1])
# Listeners that keep a server from binding 127.0.0.1: on that address or on a
# wildcard (IPv4, IPv6, IPv4-mapped). One on another loopback address, such as
# a test's proxy on 127.0.0.2, does not.
CLASHING = {"0100007F", "00000000", "0" * 32, "0000000000000000FFFF00000100007F"}
for table in ("/proc/net/tcp", "/proc/net/tcp6"):
    try:
        rows = open(table).read().splitlines()[1:]
    except OSError:
        continue
    for row in rows:
        fields = row.split()
        address, hex_port = fields[1].rsplit(":", 1)
        if int(hex_port, 16) == port and fields[3] == "0A" and address in CLASHING:
            print("listening")
            sys.exit()
probe = socket.socket()
try:
    probe.bind(("127.0.0.1", port))
    print("free")
except OSError:
    print("held")
PY
}

# Waits until local port $1 is free, at most PORT_WAIT_SECONDS; fails at once
# if a process listens on it.
wait_for_port() {
    local port=$1 name=$2 waited=0 state
    while :; do
        state=$(port_state "$port")
        case $state in
            free) return 0 ;;
            listening) die "port $port for $name is already in use by another process; choose other ports with BRIDGE_KAFKA_PORT, BRIDGE_NAMESRV_PORT or BRIDGE_BROKER_PORT" ;;
        esac
        if [ "$waited" -ge "$PORT_WAIT_SECONDS" ]; then
            die "port $port for $name is still held by a closed connection (TIME-WAIT) after ${PORT_WAIT_SECONDS}s; see ss -tan | grep :$port"
        fi
        [ "$waited" = 0 ] && log "port $port for $name is held by a closed connection (TIME-WAIT); waiting for it"
        sleep 1
        waited=$((waited + 1))
    done
}

# ---- Kafka ------------------------------------------------------------------

kafka_voters() {
    local name voters=()
    for name in $(kafka_names); do
        voters+=("$(kafka_node "$name")@127.0.0.1:$(controller_port_of "$name")")
    done
    (IFS=,; echo "${voters[*]}")
}

kafka_auth_properties() {
    [ -n "$KAFKA_AUTH_USER" ] || return 0
    cat <<PROPS
sasl.enabled.mechanisms=SCRAM-SHA-256,SCRAM-SHA-512
sasl.mechanism.inter.broker.protocol=SCRAM-SHA-256
listener.name.client.scram-sha-256.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="inter-broker" password="inter-broker-secret";
listener.name.client.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="inter-broker" password="inter-broker-secret";
PROPS
}

write_kafka_config() {
    local name=$1 dir=$STATE_DIR/$1 port advertised protocol=PLAINTEXT
    port=$(kafka_port_of "$name")
    advertised=$port
    [ "$name" = kafka-1 ] && advertised=$KAFKA_ADVERTISED_PORT
    [ -n "$KAFKA_AUTH_USER" ] && protocol=SASL_PLAINTEXT
    local replicas=$((KAFKA_NODES < 3 ? KAFKA_NODES : 3))
    mkdir -p "$dir/data"
    cat >"$dir/server.properties" <<PROPS
process.roles=broker,controller
node.id=$(kafka_node "$name")
controller.quorum.voters=$(kafka_voters)
listeners=CLIENT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$(controller_port_of "$name")
advertised.listeners=CLIENT://127.0.0.1:$advertised,CONTROLLER://127.0.0.1:$(controller_port_of "$name")
listener.security.protocol.map=CLIENT:$protocol,CONTROLLER:PLAINTEXT
controller.listener.names=CONTROLLER
inter.broker.listener.name=CLIENT
log.dirs=$dir/data
num.partitions=1
default.replication.factor=$replicas
offsets.topic.replication.factor=$replicas
offsets.topic.num.partitions=10
transaction.state.log.replication.factor=$replicas
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=4
share.coordinator.state.topic.replication.factor=$replicas
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
# Like a production cluster: topics are created on purpose, not by a first produce or fetch.
auto.create.topics.enable=false
log.segment.bytes=67108864
log.retention.check.interval.ms=30000
$(kafka_auth_properties)
PROPS
    cat >"$dir/log4j2.properties" <<PROPS
status = warn
appender.file.type = File
appender.file.name = file
appender.file.fileName = $dir/server.log
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = info
rootLogger.appenderRef.file.ref = file
logger.state.name = state.change.logger
logger.state.level = warn
PROPS
}

# Sets JAVA_CMD to the java command line of Kafka node $1 running "${@:2}".
kafka_java() {
    local name=$1
    shift
    JAVA_CMD=(java -Xms128m -Xmx"${HEAP_MB}m" -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
        "-Xlog:gc:file=$STATE_DIR/$name-gc.log:uptime,time:filecount=2,filesize=10m" \
        -Dlog4j2.configurationFile="$STATE_DIR/$name/log4j2.properties" \
        "$(marker_of "$name")" -cp "$KAFKA_LIBS/*" "$@")
}

# Formats a node's log directory once: one cluster id for every node of this state directory.
format_kafka() {
    local name=$1 dir=$STATE_DIR/$1
    [ -f "$dir/data/meta.properties" ] && return
    local id_file=$STATE_DIR/kafka-cluster-id
    if [ ! -s "$id_file" ]; then
        kafka_java "$name" kafka.tools.StorageTool random-uuid
        "${JAVA_CMD[@]}" | tail -n 1 >"$id_file.tmp"
        mv "$id_file.tmp" "$id_file"
    fi
    local scram=()
    if [ -n "$KAFKA_AUTH_USER" ]; then
        local user=${KAFKA_AUTH_USER%%:*} password=${KAFKA_AUTH_USER#*:} mechanism
        for mechanism in SCRAM-SHA-256 SCRAM-SHA-512; do
            scram+=(--add-scram "$mechanism=[name=$user,password=$password]"
                --add-scram "$mechanism=[name=inter-broker,password=inter-broker-secret]")
        done
    fi
    kafka_java "$name" kafka.tools.StorageTool format -t "$(cat "$id_file")" \
        -c "$dir/server.properties" --ignore-formatted "${scram[@]}"
    "${JAVA_CMD[@]}" >>"$dir/format.log" 2>&1 ||
        { tail -n 5 "$dir/format.log" >&2; die "formatting $dir/data failed; log: $dir/format.log"; }
}

launch_kafka() {
    local name=$1
    write_kafka_config "$name"
    format_kafka "$name"
    kafka_java "$name" kafka.Kafka "$STATE_DIR/$name/server.properties"
    setsid "${JAVA_CMD[@]}" >>"$STATE_DIR/$name.log" 2>&1 </dev/null &
    echo $! >"$(pid_file "$name")"
}

# ---- RocketMQ -----------------------------------------------------------------

# Sets JAVA_CMD to the java command line of RocketMQ component $1 with heap $2 MiB running "${@:3}".
rocketmq_java() {
    local name=$1 heap=$2
    shift 2
    # user.home: the brokers log under ${user.home}/logs/rocketmqlogs.
    # The add-opens/exports are what RocketMQ's own scripts pass on Java 9+ (direct buffers).
    JAVA_CMD=(env ROCKETMQ_HOME="$STATE_DIR/rocketmq-home" java -Xms64m -Xmx"${heap}m" -XX:+UseG1GC \
        -XX:MaxDirectMemorySize=256m \
        "-Xlog:gc:file=$STATE_DIR/$name-gc.log:uptime,time:filecount=2,filesize=10m" \
        --add-exports java.base/sun.nio.ch=ALL-UNNAMED --add-opens java.base/java.nio=ALL-UNNAMED \
        --add-opens java.base/java.lang=ALL-UNNAMED --add-opens java.base/sun.nio.ch=ALL-UNNAMED \
        -Duser.home="$STATE_DIR/$name-home" -Drocketmq.home.dir="$STATE_DIR/rocketmq-home" \
        "$(marker_of "$name")" -cp "$ROCKETMQ_LIBS/*" "$@")
}

broker_auth_properties() {
    [ -n "${BRIDGE_BROKER_AUTH_USER:-}" ] || return 0
    local user=${BRIDGE_BROKER_AUTH_USER%%:*} password=${BRIDGE_BROKER_AUTH_USER#*:}
    case $ROCKETMQ_VERSION in
        # RocketMQ 4.x has only ACL 1.0: aclEnable and an admin in $ROCKETMQ_HOME/conf/plain_acl.yml.
        4.*) mkdir -p "$STATE_DIR/rocketmq-home/conf"
            printf 'accounts:\n  - accessKey: %s\n    secretKey: %s\n    admin: true\n' "$user" "$password" \
                >"$STATE_DIR/rocketmq-home/conf/plain_acl.yml"
            echo aclEnable=true
            return ;;
    esac
    cat <<PROPS
authenticationEnabled=true
authenticationProvider=org.apache.rocketmq.auth.authentication.provider.DefaultAuthenticationProvider
authenticationMetadataProvider=org.apache.rocketmq.auth.authentication.provider.LocalAuthenticationMetadataProvider
authConfigPath=$STATE_DIR/$1-auth
initAuthenticationUser={"username":"$user","password":"$password"}
innerClientAuthenticationCredentials={"accessKey":"$user","secretKey":"$password"}
PROPS
}

write_broker_config() {
    local name=$1 store=$STATE_DIR/$1-store port
    port=$(broker_port_of "$name")
    mkdir -p "$store" "$STATE_DIR/rocketmq-home" "$STATE_DIR/$name-home"
    cat >"$STATE_DIR/$name.conf" <<PROPS
brokerClusterName=DefaultCluster
brokerName=$name
brokerId=0
brokerRole=ASYNC_MASTER
flushDiskType=ASYNC_FLUSH
namesrvAddr=127.0.0.1:$NAMESRV_PORT
bindAddress=127.0.0.1
listenPort=$port
haListenPort=$(broker_ha_port_of "$name")
brokerIP1=$BROKER_IP
storePathRootDir=$store
storePathCommitLog=$store/commitlog
# Like a production cluster: topics are created on purpose, not by a first send.
autoCreateTopicEnable=false
autoCreateSubscriptionGroup=true
mappedFileSizeCommitLog=$((FILE_MB * 1024 * 1024))
maxHashSlotNum=$((5000000 * FILE_MB / 1024))
maxIndexNum=$((20000000 * FILE_MB / 1024))
messageIndexEnable=true
transientStorePoolEnable=false
# A full disk must stop writes, never delete stored messages early.
cleanFileForciblyEnable=false
$(broker_auth_properties "$name")
PROPS
}

# RocketMQ 4.x loads $ROCKETMQ_HOME/conf/logback_$1.xml (only its distribution has it) or exits.
write_rocketmq_logback() {
    mkdir -p "$STATE_DIR/rocketmq-home/conf"
    cat >"$STATE_DIR/rocketmq-home/conf/logback_$1.xml" <<XML
<configuration>
  <appender name="file" class="ch.qos.logback.core.FileAppender">
    <file>\${user.home}/logs/rocketmqlogs/$1.log</file>
    <encoder><pattern>%d{yyyy-MM-dd HH:mm:ss.SSS} %p %t - %m%n</pattern></encoder>
  </appender>
  <root level="INFO"><appender-ref ref="file"/></root>
</configuration>
XML
}

launch_namesrv() {
    mkdir -p "$STATE_DIR/rocketmq-home" "$STATE_DIR/namesrv-home"
    case $ROCKETMQ_VERSION in 4.*) write_rocketmq_logback namesrv ;; esac
    printf 'listenPort=%s\nbindAddress=127.0.0.1\n' "$NAMESRV_PORT" >"$STATE_DIR/namesrv.conf"
    rocketmq_java namesrv 256 org.apache.rocketmq.namesrv.NamesrvStartup -c "$STATE_DIR/namesrv.conf"
    setsid "${JAVA_CMD[@]}" >>"$STATE_DIR/namesrv.log" 2>&1 </dev/null &
    echo $! >"$(pid_file namesrv)"
}

launch_broker() {
    local name=$1
    write_broker_config "$name"
    case $ROCKETMQ_VERSION in 4.*) write_rocketmq_logback broker ;; esac
    check_disk "$STATE_DIR/$name-store"
    rocketmq_java "$name" "$HEAP_MB" org.apache.rocketmq.broker.BrokerStartup -c "$STATE_DIR/$name.conf"
    setsid "${JAVA_CMD[@]}" >>"$STATE_DIR/$name.log" 2>&1 </dev/null &
    echo $! >"$(pid_file "$name")"
}

# The RocketMQ broker's view of the disk holding $1: percent used (df's Use%).
disk_used_percent() {
    df -P -B1 "$1" | awk 'NR == 2 { printf "%d", $3 * 100 / ($3 + $4) }'
}

# Fails early, with the reason, where the broker would start but refuse
# every send (each send would fail with "Broker operation failed").
check_disk() {
    local dir=$1 used
    used=$(disk_used_percent "$dir") || return 0
    if [ "$used" -ge "$DISK_REFUSAL_PERCENT" ]; then
        die "the disk holding $dir is $used% used; the RocketMQ broker refuses every write above $DISK_REFUSAL_PERCENT%. Free space there (e.g. old target/ directories), or set BRIDGE_BROKERS_DIR to a roomier disk"
    fi
    if [ "$used" -ge $((DISK_REFUSAL_PERCENT - 5)) ]; then
        log "warning: the disk holding $dir is $used% used; the RocketMQ broker refuses every write above $DISK_REFUSAL_PERCENT%"
    fi
}

# ---- lifecycle ------------------------------------------------------------------

launch() {
    local name=$1 port
    for port in $(ports_of "$name"); do
        wait_for_port "$port" "$name"
    done
    case $name in
        kafka-*) launch_kafka "$name" ;;
        namesrv) launch_namesrv ;;
        broker-*) launch_broker "$name" ;;
    esac
}

log_of() {
    case $1 in
        kafka-*) echo "$STATE_DIR/$1/server.log" ;;
        broker-*) echo "$STATE_DIR/$1-home/logs/rocketmqlogs/broker.log" ;;
        namesrv) echo "$STATE_DIR/namesrv-home/logs/rocketmqlogs/namesrv.log" ;;
    esac
}

wait_ready() {
    local name=$1 deadline=$((SECONDS + READY_TIMEOUT))
    until probe "$name" 2>/dev/null; do
        if ! running_pid "$name" >/dev/null; then
            tail -n 20 "$STATE_DIR/$name.log" >&2 || true
            die "$name exited during start-up; logs: $STATE_DIR/$name.log and $(log_of "$name")"
        fi
        if [ "$SECONDS" -ge "$deadline" ]; then
            probe "$name" || true
            die "$name did not answer within ${READY_TIMEOUT}s; logs: $STATE_DIR/$name.log and $(log_of "$name")"
        fi
        sleep 0.2
    done
}

cmd_start() {
    mkdir -p "$STATE_DIR"
    cmd_install
    local name started=()
    # Launch first, then wait: the JVMs start side by side, and the KRaft nodes of a
    # cluster need each other to elect a controller.
    for name in $(components "$@"); do
        if pid=$(running_pid "$name"); then
            log "$name already running (pid $pid) at $(address_of "$name")"
        else
            # A broker registers with the name server: start that first.
            [[ $name == broker-* ]] && [[ " ${started[*]} " == *" namesrv "* ]] && wait_ready namesrv
            launch "$name"
            started+=("$name")
        fi
    done
    for name in "${started[@]}"; do
        wait_ready "$name"
        log "$name ready at $(address_of "$name") (pid $(cat "$(pid_file "$name")"))"
    done
    cmd_env
}

stop_one() {
    local name=$1 signal=$2 pid
    if ! pid=$(running_pid "$name"); then
        rm -f "$(pid_file "$name")"
        return
    fi
    kill "-$signal" "$pid" 2>/dev/null || true
    local deadline=$((SECONDS + 20))
    while kill -0 "$pid" 2>/dev/null && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then
        log "$name (pid $pid) ignored SIG$signal for 20s; sending SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
        while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
        signal=KILL
    fi
    rm -f "$(pid_file "$name")"
    log "$name stopped (pid $pid, SIG$signal)"
}

cmd_stop() {
    local signal=TERM
    if [ "${1:-}" = "--kill" ]; then signal=KILL; shift; fi
    local names
    names=$(components "$@" | tr ' ' '\n' | tac | tr '\n' ' ')
    for name in $names; do stop_one "$name" "$signal"; done
}

cmd_status() {
    local name state
    for name in $(all_components); do
        if pid=$(running_pid "$name"); then
            if probe "$name" 2>/dev/null; then state=ready; else state="running, not answering"; fi
            printf '%-9s %-22s pid %-8s %s\n' "$name" "$(address_of "$name")" "$pid" "$state"
        else
            printf '%-9s %-22s %s\n' "$name" "$(address_of "$name")" "stopped"
        fi
    done
    echo "Apache Kafka $KAFKA_VERSION, Apache RocketMQ $ROCKETMQ_VERSION; logs, pid files and data: $STATE_DIR"
}

cmd_env() {
    local name servers=()
    for name in $(kafka_names); do servers+=("$(address_of "$name")"); done
    echo "export BRIDGE_KAFKA_BOOTSTRAP=$(IFS=,; echo "${servers[*]}")"
    echo "export BRIDGE_NAMESRV=127.0.0.1:$NAMESRV_PORT"
    echo "export BRIDGE_KAFKA_VERSION=$KAFKA_VERSION BRIDGE_ROCKETMQ_VERSION=$ROCKETMQ_VERSION"
    echo "# logs, pid files and data: $STATE_DIR"
}

cmd_clean() {
    # Every component that has a pid file, whatever the node counts are now.
    local file
    for file in "$STATE_DIR"/*.pid; do
        [ -e "$file" ] || continue
        stop_one "$(basename "$file" .pid)" TERM
    done
    rm -rf "$STATE_DIR"
    log "removed $STATE_DIR"
}

case ${1:-} in
    start) shift; cmd_start "$@" ;;
    stop) shift; cmd_stop "$@" ;;
    status) cmd_status ;;
    clean) cmd_clean ;;
    install) cmd_install; log "installed under $CACHE_DIR" ;;
    env) cmd_env ;;
    *) sed -n '2,38p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
