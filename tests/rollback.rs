//! A rollback rehearsal against the real brokers: after the cutover,
//! producers write to RocketMQ only, the way back copies it into Kafka, a
//! RocketMQ consumer group consumes part of each queue, and
//! `translate-offsets --to-kafka --apply` moves that group back to Kafka.
//! A Kafka consumer of the group then reads exactly the copies of the
//! messages the RocketMQ group had not consumed, and re-reads no more
//! than the output's `redelivered` count.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use kafka_rocketmq_bridge::checkpoint::PartitionId;
use kafka_rocketmq_bridge::config::RocketMqConfig;
use kafka_rocketmq_bridge::rocketmq_sink::{RocketMqRuntime, start_producer};
use kafka_rocketmq_bridge::rocketmq_source::RocketMqSource;
use kafka_rocketmq_bridge::source::{Incoming, Source};
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message as _};
use rocketmq_model::common::message::message_single::Message;
use rocketmq_model::message::MessageQueue;

use crate::support::*;

const QUEUES: i32 = 4;
const PARTITIONS: i32 = 4;
const KEYS: usize = 40;
const TOTAL: usize = 2_000;

/// A reverse mapping `rocketmq_topic` -> `kafka_topic` and nothing else.
fn rollback_config(
    brokers: &TestBrokers,
    rocketmq_topic: &str,
    kafka_topic: &str,
    ordering: &str,
) -> String {
    let group = unique("back").replace(['.', '-'], "_");
    let text = config_text(&brokers.kafka, &brokers.name_server, &[]).replace(
        "rocketmq:\n",
        &format!("rocketmq:\n  consumer_group: \"{group}\"\n"),
    );
    format!(
        "{text}  - direction: rocketmq_to_kafka\n    rocketmq_topic: \"{rocketmq_topic}\"\n    \
         kafka_topic: \"{kafka_topic}\"\n    ordering: {ordering}\n\
         metrics:\n  listen: \"127.0.0.1:{}\"\n\
         bridge:\n  commit_interval: 1s\n",
        closed_port()
    )
}

fn rocketmq_config(name_server: &str) -> RocketMqConfig {
    serde_yaml::from_str(&format!("name_server: \"{name_server}\"")).expect("config")
}

/// Message `n`: key `k{n % KEYS}` with a property, on queue `(n % KEYS) % QUEUES`.
fn message(topic: &str, n: usize) -> Message {
    Message::builder()
        .topic(topic)
        .body_slice(format!("body-{n}").as_bytes())
        .keys(vec![format!("k{}", n % KEYS)])
        .raw_property("n", n.to_string())
        .expect("a legal property")
        .build_unchecked()
}

/// Producers on RocketMQ only: `TOTAL` keyed messages over the queues.
async fn produce_messages(name_server: &str, topic: &str) {
    let runtime = RocketMqRuntime::start(1).expect("runtime");
    let mut producer = start_producer(runtime.client_runtime(), &rocketmq_config(name_server))
        .await
        .expect("producer");
    let mut per_queue: BTreeMap<i32, Vec<Message>> = BTreeMap::new();
    for n in 0..TOTAL {
        let queue = ((n % KEYS) as i32) % QUEUES;
        per_queue.entry(queue).or_default().push(message(topic, n));
    }
    for (queue, messages) in per_queue {
        for batch in messages.chunks(200) {
            producer
                .send_batch_to_queue(
                    batch.to_vec(),
                    MessageQueue::from_parts(topic, "broker-a", queue),
                )
                .await
                .expect("RocketMQ stored the batch");
        }
    }
    producer.shutdown().await;
    runtime.shutdown().await;
}

/// A RocketMQ consumer group reads each queue up to `targets` (next offset
/// to read) and commits there, then leaves the group. Queues without a
/// target are neither read nor committed.
async fn consume_and_commit(
    name_server: &str,
    group: &str,
    topic: &str,
    targets: &BTreeMap<i32, i64>,
) {
    let runtime = RocketMqRuntime::start(1).expect("runtime");
    let source = RocketMqSource::start(
        runtime.client_runtime(),
        &rocketmq_config(name_server),
        group,
        "rehearsal",
        &[topic.to_string()],
        Arc::new(|_: &[PartitionId], _| {}),
    )
    .await
    .expect("the consumer joins its group");
    let mut read: BTreeMap<i32, i64> = BTreeMap::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    let done = |read: &BTreeMap<i32, i64>| {
        targets.iter().all(|(queue, target)| {
            *target == 0 || read.get(queue).is_some_and(|r| r + 1 >= *target)
        })
    };
    while !done(&read) {
        let left = deadline.saturating_duration_since(Instant::now());
        let message = tokio::time::timeout(left, source.recv())
            .await
            .unwrap_or_else(|_| panic!("consumed {read:?} of {targets:?} within 60 s"))
            .expect("a message");
        let entry = read.entry(message.queue_id).or_insert(-1);
        *entry = (*entry).max(message.offset());
    }
    let offsets: Vec<(PartitionId, i64)> = targets
        .iter()
        .map(|(queue, target)| (PartitionId::queue(topic, "broker-a", *queue), *target))
        .collect();
    source.commit(&offsets, true).await.expect("committed");
    source.shutdown().await;
    runtime.shutdown().await;
}

/// (queue id, queue offset) of a reverse copy, from its provenance headers.
fn provenance(message: &rdkafka::message::BorrowedMessage<'_>) -> (i32, i64) {
    let header = |name: &str| {
        message
            .headers()
            .and_then(|h| h.iter().find(|h| h.key == name))
            .and_then(|h| h.value)
            .and_then(|v| std::str::from_utf8(v).ok())
            .and_then(|v| v.parse::<i64>().ok())
            .unwrap_or_else(|| panic!("a copy without {name}"))
    };
    (
        header("ROCKETMQ_QUEUE_ID") as i32,
        header("ROCKETMQ_QUEUE_OFFSET"),
    )
}

fn kafka_consumer(bootstrap: &str, group: &str) -> BaseConsumer {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", "6000")
        .create()
        .expect("Kafka consumer")
}

/// A member of `group` on Kafka: subscribed, with its partitions assigned.
fn join_kafka_group(bootstrap: &str, group: &str, topic: &str) -> BaseConsumer {
    let consumer = kafka_consumer(bootstrap, group);
    consumer.subscribe(&[topic]).expect("subscribe");
    let deadline = Instant::now() + Duration::from_secs(60);
    while consumer.assignment().map_or(0, |a| a.count()) == 0 {
        assert!(Instant::now() < deadline, "no partitions assigned in 60 s");
        // Polling drives the join; no record is consumed before the assignment.
        let _ = consumer.poll(Duration::from_millis(100));
    }
    consumer
}

/// What a consumer of `group` reads from `topic` from the group's
/// committed offsets (`starts`) to the partitions' ends (`ends`), by
/// partition: the copies' (queue, queue offset), in order.
fn read_as_group(
    bootstrap: &str,
    group: &str,
    topic: &str,
    starts: &BTreeMap<i32, i64>,
    ends: &[i64],
) -> BTreeMap<i32, Vec<(i32, i64)>> {
    let consumer = join_kafka_group(bootstrap, group, topic);
    let mut read: BTreeMap<i32, Vec<(i32, i64)>> = BTreeMap::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    let caught_up = |consumer: &BaseConsumer| {
        let positions = consumer.position().expect("positions");
        // A position is known once a record was read: a partition
        // committed at its end has none to read.
        (0..PARTITIONS).all(|p| {
            starts.get(&p).is_some_and(|s| *s >= ends[p as usize])
                || matches!(
                    positions.find_partition(topic, p).map(|e| e.offset()),
                    Some(rdkafka::Offset::Offset(at)) if at >= ends[p as usize]
                )
        })
    };
    while !caught_up(&consumer) {
        assert!(
            Instant::now() < deadline,
            "the group's consumer did not reach the ends {ends:?} in 60 s; read {:?}",
            read.values().map(Vec::len).collect::<Vec<_>>()
        );
        if let Some(message) = consumer.poll(Duration::from_millis(100)) {
            let message = message.expect("a record");
            read.entry(message.partition())
                .or_default()
                .push(provenance(&message));
        }
    }
    read
}

fn translate(path: &str, group: &str, rocketmq_group: &str, apply: bool) -> std::process::Output {
    let mut args = vec![
        "translate-offsets",
        "--config",
        path,
        "--group",
        group,
        "--rocketmq-group",
        rocketmq_group,
        "--to-kafka",
        "--json",
    ];
    if apply {
        args.push("--apply");
    }
    run(&args)
}

fn json_of(output: &std::process::Output) -> serde_json::Value {
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}{}",
        stdout(output),
        stderr(output)
    );
    serde_json::from_str(&stdout(output)).expect("JSON output")
}

async fn rollback_rehearsal(ordering: &str) {
    let brokers = brokers();
    let base = unique("rollback");
    let (rocketmq_topic, kafka_topic) = (format!("{base}_src"), format!("{base}.back"));
    let file = config_file(&rollback_config(
        &brokers,
        &rocketmq_topic,
        &kafka_topic,
        ordering,
    ));
    let path = file.path().to_str().expect("path");
    create_topics(file.path(), PARTITIONS as u32, QUEUES as u32);
    produce_messages(&brokers.name_server, &rocketmq_topic).await;

    // The way back copies everything.
    let mut bridge = BridgeProcess::start(file.path());
    let deadline = Instant::now() + Duration::from_secs(120);
    let ends = loop {
        let ends = high_watermarks(&brokers.kafka, &kafka_topic, PARTITIONS);
        if ends.iter().sum::<i64>() >= TOTAL as i64 {
            break ends;
        }
        assert!(
            Instant::now() < deadline,
            "{ends:?} copies of {TOTAL} after 120 s: {}",
            bridge.logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    bridge.stop_gracefully(Duration::from_secs(30));
    assert_eq!(
        ends.iter().sum::<i64>(),
        TOTAL as i64,
        "each message copied once"
    );

    // A RocketMQ group consumed part of each queue: nothing of queue 0
    // (never committed), a third, half and all of the others.
    let per_queue = (TOTAL / QUEUES as usize) as i64;
    let targets: BTreeMap<i32, i64> =
        BTreeMap::from([(1, per_queue / 3), (2, per_queue / 2), (3, per_queue)]);
    let rocketmq_group = unique("rollback_consumers").replace(['.', '-'], "_");
    consume_and_commit(
        &brokers.name_server,
        &rocketmq_group,
        &rocketmq_topic,
        &targets,
    )
    .await;
    let consumed = |queue: i32, offset: i64| targets.get(&queue).is_some_and(|t| offset < *t);

    // Dry run: the group's offsets as read without joining it, nothing written.
    let kafka_group = unique("rollback-consumers");
    let dry = json_of(&translate(path, &kafka_group, &rocketmq_group, false));
    for queue in dry["queues"].as_array().expect("queues") {
        let id = queue["queue"].as_i64().expect("queue id") as i32;
        let committed = queue["committed"].as_i64();
        assert_eq!(queue["end"].as_i64(), Some(per_queue), "{dry}");
        match targets.get(&id) {
            Some(target) => assert_eq!(committed, Some(*target), "queue {id}: {dry}"),
            None => assert!(
                committed.unwrap_or(0) == 0,
                "queue {id} not consumed: {dry}"
            ),
        }
    }
    let table = run(&[
        "translate-offsets",
        "--config",
        path,
        "--group",
        &kafka_group,
        "--rocketmq-group",
        &rocketmq_group,
        "--to-kafka",
    ]);
    assert_eq!(table.status.code(), Some(0), "{}", stderr(&table));
    assert!(
        stdout(&table).contains("REDELIVERED") && stdout(&table).contains("dry run"),
        "{}",
        stdout(&table)
    );
    eprintln!("{}", stdout(&table));
    assert_eq!(
        group_committed(&brokers.kafka, &kafka_group, &kafka_topic, PARTITIONS),
        vec![None; PARTITIONS as usize],
        "a dry run writes nothing"
    );

    // Kafka refuses while the group has a live member, and the error says so.
    let member = join_kafka_group(&brokers.kafka, &kafka_group, &kafka_topic);
    let refused = translate(path, &kafka_group, &rocketmq_group, true);
    assert_eq!(refused.status.code(), Some(2), "{}", stderr(&refused));
    assert!(
        stderr(&refused).contains("active members"),
        "{}",
        stderr(&refused)
    );
    drop(member);

    let applied = json_of(&translate(path, &kafka_group, &rocketmq_group, true));
    let partitions = applied["partitions"].as_array().expect("partitions");
    assert_eq!(partitions.len(), PARTITIONS as usize, "{applied}");
    let field = |p: &serde_json::Value, name: &str| p[name].as_i64().expect(name);
    let offsets: BTreeMap<i32, i64> = partitions
        .iter()
        .map(|p| (field(p, "partition") as i32, field(p, "offset")))
        .collect();
    assert_eq!(
        group_committed(&brokers.kafka, &kafka_group, &kafka_topic, PARTITIONS),
        offsets.values().map(|o| Some(*o)).collect::<Vec<_>>(),
        "the Kafka group's committed offsets are the translation's"
    );

    // The Kafka group's consumer reads every copy of an unconsumed message,
    // and, of consumed ones, exactly the `redelivered` count per partition.
    let read = read_as_group(&brokers.kafka, &kafka_group, &kafka_topic, &offsets, &ends);
    let mut unconsumed_read = BTreeSet::new();
    for partition in partitions {
        let p = field(partition, "partition") as i32;
        let records = read.get(&p).cloned().unwrap_or_default();
        let again = records.iter().filter(|(q, o)| consumed(*q, *o)).count() as i64;
        assert_eq!(
            again,
            field(partition, "redelivered"),
            "partition {p}: re-read copies of consumed messages: {applied}"
        );
        assert_eq!(field(partition, "not_copies"), 0, "{applied}");
        assert_eq!(
            records.len() as i64,
            ends[p as usize] - offsets[&p],
            "partition {p} read from its committed offset to its end"
        );
        for copy in records.iter().filter(|(q, o)| !consumed(*q, *o)) {
            assert!(unconsumed_read.insert(*copy), "{copy:?} read twice");
        }
    }
    let unconsumed: BTreeSet<(i32, i64)> = (0..QUEUES)
        .flat_map(|q| (0..per_queue).map(move |o| (q, o)))
        .filter(|(q, o)| !consumed(*q, *o))
        .collect();
    assert_eq!(
        unconsumed_read, unconsumed,
        "every copy of an unconsumed message is read"
    );
    let redelivered: i64 = partitions.iter().map(|p| field(p, "redelivered")).sum();
    if ordering == "partition" {
        assert_eq!(redelivered, 0, "one queue per partition: exact: {applied}");
    }
    eprintln!(
        "{ordering}: {} unconsumed, {redelivered} redelivered, offsets {offsets:?}",
        unconsumed.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kafka_group_rolls_back_to_where_the_rocketmq_group_stopped_in_partition_mode() {
    rollback_rehearsal("partition").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kafka_group_rolls_back_to_where_the_rocketmq_group_stopped_in_key_hash_mode() {
    rollback_rehearsal("key_hash").await;
}

#[test]
fn to_kafka_without_a_reverse_mapping_is_a_clear_error() {
    let brokers = brokers();
    let file = config_file(&config_text(
        &brokers.kafka,
        &brokers.name_server,
        &[("rollback.in", "rollback_out")],
    ));
    let path = file.path().to_str().expect("path");
    let output = run(&[
        "translate-offsets",
        "--config",
        path,
        "--group",
        "g",
        "--to-kafka",
    ]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("no `direction: rocketmq_to_kafka` mapping"),
        "{}",
        stderr(&output)
    );
    assert!(stdout(&output).is_empty(), "{}", stdout(&output));
}
