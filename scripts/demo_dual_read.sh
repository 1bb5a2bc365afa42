# Sourced by `scripts/demo.sh --dual-read`, with the brokers started and the
# binaries built in $BIN: the dual-read demo. Each run uses topics and groups
# of its own (DEMO_RUN), so it can be run again on the same brokers.

DEMO_RUN=${DEMO_RUN:-$(date +%s)}
export DEMO_RUN
CONFIG=config/dual-read-demo.yaml
TOPIC=dual-read-demo-$DEMO_RUN.orders
GROUP=totals-$DEMO_RUN
RECORDS=${DEMO_RECORDS:-1000}
DAY=$(date -u -d yesterday +%F)
KAFKA=127.0.0.1:${BRIDGE_KAFKA_PORT:-9092}
NAMESRV=127.0.0.1:${BRIDGE_NAMESRV_PORT:-9876}

step "building the Java dual-read helper and its example consumer (clients/java)"
CLASSPATH_JAVA=$("$HERE/java-client.sh")
example() {
    java -Xmx256m -cp "$CLASSPATH_JAVA" org.kafkarocketmqbridge.dualread.example.DualReadExample "$@" 2>/dev/null
}

step "creating $TOPIC, its RocketMQ copy and the ledger topics of groups $GROUP and $GROUP-bug"
"$BIN/kafka-rocketmq-bridge" create-topics --config "$CONFIG" --partitions 4 --queues 4 \
    --dual-read-group "$GROUP" --dual-read-group "$GROUP-bug"

step "producing $RECORDS orders stamped yesterday ($DAY, UTC) with an amount header; one carries it twice"
example produce --bootstrap "$KAFKA" --topic "$TOPIC" --records "$RECORDS" --days-ago 1

step "kafka-rocketmq-bridge run --config $CONFIG (in the background; log: $LOG)"
"$BIN/kafka-rocketmq-bridge" run --config "$CONFIG" >"$LOG" 2>&1 &
BRIDGE_PID=$!
trap 'kill -TERM $BRIDGE_PID 2>/dev/null || true' EXIT
"$BIN/demo-traffic" --config "$CONFIG" compare --wait-seconds 120 >/dev/null

step "group $GROUP: the same logic (totals of amount per key) on each side, each writing its ledger"
example consume --side kafka --bootstrap "$KAFKA" --topic "$TOPIC" --group "$GROUP" --records "$RECORDS"
example consume --side rocketmq --bootstrap "$KAFKA" --name-server "$NAMESRV" \
    --rocketmq-topic "dual_read_demo_${DEMO_RUN}_orders" --group "$GROUP" --records "$RECORDS"

step "kafka-rocketmq-bridge compare-results --group $GROUP --from $DAY --to $DAY"
same_status=0
"$BIN/kafka-rocketmq-bridge" compare-results --config "$CONFIG" --group "$GROUP" --from "$DAY" --to "$DAY" ||
    same_status=$?

step "group $GROUP-bug: the RocketMQ side reads the amount header from the plain property (the bug)"
example consume --side kafka --bootstrap "$KAFKA" --topic "$TOPIC" --group "$GROUP-bug" --records "$RECORDS"
example consume --side rocketmq --bootstrap "$KAFKA" --name-server "$NAMESRV" \
    --rocketmq-topic "dual_read_demo_${DEMO_RUN}_orders" --group "$GROUP-bug" --records "$RECORDS" --bug

step "kafka-rocketmq-bridge compare-results --group $GROUP-bug --from $DAY --to $DAY"
bug_status=0
"$BIN/kafka-rocketmq-bridge" compare-results --config "$CONFIG" --group "$GROUP-bug" --from "$DAY" --to "$DAY" ||
    bug_status=$?

kill -TERM "$BRIDGE_PID"
wait "$BRIDGE_PID" || true
trap - EXIT

echo
if [ "$same_status" = 0 ] && [ "$bug_status" = 1 ]; then
    echo "Dual-read demo done: the same logic MATCHes; the misread header is a MISMATCH naming its record."
else
    echo "Dual-read demo FAILED (compare-results exit $same_status for $GROUP, want 0; $bug_status for $GROUP-bug, want 1)"
    exit 1
fi
echo "Brokers are still running: scripts/brokers.sh status | stop | clean"
