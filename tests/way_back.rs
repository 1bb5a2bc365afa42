//! The way back (RocketMQ to Kafka) run by the binary against the real
//! brokers: each message copied once across kill -9 restarts, in queue
//! and key order, with its body, key, tags and properties.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kafka_rocketmq_bridge::checkpoint::PartitionId;
use kafka_rocketmq_bridge::config::RocketMqConfig;
use kafka_rocketmq_bridge::mapping::OutgoingMessage;
use kafka_rocketmq_bridge::rocketmq_sink::RocketMqAdmin;
use kafka_rocketmq_bridge::rocketmq_sink::encode::{Envelope, build_batch};
use kafka_rocketmq_bridge::rocketmq_sink::{RocketMqRuntime, start_producer};
use kafka_rocketmq_bridge::rocketmq_source::RocketMqSource;
use kafka_rocketmq_bridge::router::kafka_partition_of_key;
use kafka_rocketmq_bridge::source::Source;
use rocketmq_model::common::message::message_single::Message;
use rocketmq_model::message::MessageQueue;

use crate::support::*;

const QUEUES: i32 = 4;
const KEYS: usize = 40;

/// A reverse mapping `rocketmq_topic` -> `kafka_topic`, committing every
/// second: each kill leaves up to a second of copies past the commit.
fn way_back_config(
    brokers: &TestBrokers,
    rocketmq_topic: &str,
    kafka_topic: &str,
    ordering: &str,
    metrics_port: u16,
) -> String {
    let group = unique("back").replace(['.', '-'], "_");
    let text = config_text(&brokers.kafka, &brokers.name_server, &[]).replace(
        "rocketmq:\n",
        &format!("rocketmq:\n  consumer_group: \"{group}\"\n"),
    );
    format!(
        "{text}  - direction: rocketmq_to_kafka\n    rocketmq_topic: \"{rocketmq_topic}\"\n    \
         kafka_topic: \"{kafka_topic}\"\n    ordering: {ordering}\n\
         metrics:\n  listen: \"127.0.0.1:{metrics_port}\"\n\
         bridge:\n  commit_interval: 1s\n  queue_buffer_records: 512\n  max_batch_records: 128\n"
    )
}

/// `config` (a [`way_back_config`] in `partition` order) with a rate limit
/// of `per_second` messages on its mapping.
fn rate_limited(config: String, per_second: u32) -> String {
    config.replace(
        "    ordering: partition\n",
        &format!(
            "    ordering: partition\n    rate_limit:\n      messages_per_second: {per_second}\n"
        ),
    )
}

/// The key index whose messages go without a key.
const UNKEYED: usize = 7;

/// Message `n`: key `k{n % KEYS}` (none for [`UNKEYED`]), always on the
/// queue of its key index, so that key order and queue order can both be
/// checked.
fn message(topic: &str, n: usize) -> Message {
    let key = n % KEYS;
    let builder = Message::builder()
        .topic(topic)
        .body_slice(format!("body-{n}").as_bytes());
    let builder = match key {
        UNKEYED => builder,
        _ => builder.keys(vec![format!("k{key}")]),
    };
    builder
        .tags(format!("t{}", n % 3))
        .raw_property("n", n.to_string())
        .expect("a legal property")
        .build_unchecked()
}

/// Sends `total` messages, in batches per queue.
async fn produce_messages(name_server: &str, topic: &str, total: usize) {
    let config: RocketMqConfig =
        serde_yaml::from_str(&format!("name_server: \"{name_server}\"")).expect("config");
    let runtime = RocketMqRuntime::start(1).expect("runtime");
    let producer = start_producer(runtime.client_runtime(), &config)
        .await
        .expect("producer");
    let mut per_queue: BTreeMap<i32, Vec<Message>> = BTreeMap::new();
    for n in 0..total {
        let queue = ((n % KEYS) as i32) % QUEUES;
        let batch = per_queue.entry(queue).or_default();
        batch.push(message(topic, n));
        if batch.len() == 200 {
            let batch = std::mem::take(batch);
            send(&producer, topic, queue, batch).await;
        }
    }
    for (queue, batch) in per_queue {
        if !batch.is_empty() {
            send(&producer, topic, queue, batch).await;
        }
    }
    let mut producer = producer;
    producer.shutdown().await;
    runtime.shutdown().await;
}

async fn send(
    producer: &rocketmq_client_rust::DefaultMQProducer,
    topic: &str,
    queue: i32,
    batch: Vec<Message>,
) {
    producer
        .send_batch_to_queue(batch, MessageQueue::from_parts(topic, "broker-a", queue))
        .await
        .expect("RocketMQ stored the batch");
}

fn header<'a>(record: &'a ReadBack, name: &str) -> Option<&'a str> {
    record
        .headers
        .iter()
        .find(|(key, _)| key == name)
        .and_then(|(_, value)| value.as_deref())
        .and_then(|value| std::str::from_utf8(value).ok())
}

/// (queue id, queue offset) of a copy, from its provenance headers.
fn source_of(record: &ReadBack) -> (i32, i64) {
    let number = |name| {
        header(record, name)
            .and_then(|v| v.parse::<i64>().ok())
            .unwrap_or_else(|| panic!("copy {record:?} has no {name}"))
    };
    (
        number("ROCKETMQ_QUEUE_ID") as i32,
        number("ROCKETMQ_QUEUE_OFFSET"),
    )
}

/// Every record of `topic`'s partitions `0..partitions`, partition by partition.
fn read_all(bootstrap: &str, topic: &str, partitions: i32) -> Vec<ReadBack> {
    (0..partitions)
        .flat_map(|p| read_partition(bootstrap, topic, p))
        .collect()
}

/// How many copies of each (queue id, queue offset) `copies` hold.
fn copies_per_message<'a>(
    copies: impl Iterator<Item = &'a ReadBack>,
) -> BTreeMap<(i32, i64), usize> {
    let mut count = BTreeMap::new();
    for copy in copies {
        *count.entry(source_of(copy)).or_default() += 1;
    }
    count
}

/// The consumer offsets of the way back's group, per queue, read by a
/// new member of the group once the bridge stopped.
async fn committed_offsets(config: &std::path::Path, topic: &str) -> Vec<i64> {
    let config = parse_config(&std::fs::read_to_string(config).expect("config")).rocketmq;
    let runtime = RocketMqRuntime::start(1).expect("runtime");
    let source = RocketMqSource::start(
        runtime.client_runtime(),
        &config,
        &config.consumer_group,
        "checker",
        &[topic.to_string()],
        Arc::new(|_: &[PartitionId], _| {}),
    )
    .await
    .expect("the checker joins the group");
    let lanes: Vec<PartitionId> = (0..QUEUES)
        .map(|queue| PartitionId::queue(topic, "broker-a", queue))
        .collect();
    let offsets =
        tokio::task::block_in_place(|| source.committed_offsets(&lanes, Duration::from_secs(10)))
            .expect("committed offsets readable");
    source.shutdown().await;
    runtime.shutdown().await;
    offsets
        .into_iter()
        .map(|(lane, offset)| offset.unwrap_or_else(|| panic!("nothing committed for {lane}")))
        .collect()
}

/// Waits until the way back's group has committed `total` messages on
/// `topic`, read from the broker without joining the group (the bridge is
/// still its member). A bridge started when every copy was already stored
/// commits them only once its restart scan has skipped them.
async fn wait_for_commits(
    config: &std::path::Path,
    topic: &str,
    total: i64,
    bridge: &BridgeProcess,
) {
    let config = parse_config(&std::fs::read_to_string(config).expect("config")).rocketmq;
    let runtime = RocketMqRuntime::start(1).expect("runtime");
    let admin = RocketMqAdmin::connect(runtime.client_runtime(), &config, Duration::from_secs(10))
        .await
        .expect("admin");
    let queues = admin.topic_queues(topic).await.expect("the topic's queues");
    let committed = async || {
        let offsets = admin
            .consumer_offsets(&config.consumer_group, &queues)
            .await;
        offsets
            .expect("the group's offsets")
            .into_iter()
            .flatten()
            .sum()
    };
    wait_for_count(
        "committed",
        total,
        Duration::from_secs(60),
        bridge,
        committed,
    )
    .await;
    admin.shutdown().await;
    runtime.shutdown().await;
}

async fn kill_restarts_copy_each_message_back_once(ordering: &str) {
    let total: usize = 20_000;
    let brokers = brokers();
    let base = unique("back");
    let (rocketmq_topic, kafka_topic) = (format!("{base}_src"), format!("{base}.copy"));
    let partitions = 4;
    let file = config_file(&way_back_config(
        &brokers,
        &rocketmq_topic,
        &kafka_topic,
        ordering,
        closed_port(),
    ));
    create_topics(file.path(), partitions as u32, QUEUES as u32);
    produce_messages(&brokers.name_server, &rocketmq_topic, total).await;

    let seed = std::process::id() as usize;
    let kills: Vec<i64> = (1..=3)
        .map(|k| (total * (k * 20 + (seed * 7 * k) % 15) / 100) as i64)
        .collect();
    let mut logs = Vec::new();
    for point in &kills {
        let bridge = BridgeProcess::start(file.path());
        wait_for_kafka_copies(&brokers.kafka, &kafka_topic, partitions, *point, &bridge).await;
        logs.push(bridge.kill9());
    }
    let mut bridge = BridgeProcess::start(file.path());
    wait_for_kafka_copies(
        &brokers.kafka,
        &kafka_topic,
        partitions,
        total as i64,
        &bridge,
    )
    .await;
    wait_for_commits(file.path(), &rocketmq_topic, total as i64, &bridge).await;
    bridge.stop_gracefully(Duration::from_secs(30));
    logs.push(bridge.logs());

    let copies = read_all(&brokers.kafka, &kafka_topic, partitions);
    let count = copies_per_message(copies.iter());
    let duplicated: Vec<_> = count.iter().filter(|(_, n)| **n > 1).take(5).collect();
    let scans: Vec<&str> = logs
        .iter()
        .flat_map(|l| l.lines())
        .filter(|l| l.contains("already_stored"))
        .collect();
    assert_eq!(
        count.len(),
        total,
        "messages missing; restart scans: {scans:?}"
    );
    assert!(
        duplicated.is_empty(),
        "{} copies of {total} messages after {} kills; duplicated: {duplicated:?}; scans: {scans:?}",
        copies.len(),
        kills.len()
    );
    assert_eq!(copies.len(), total);
    // Every queue's end is still committed once the bridge has left the group.
    let committed = committed_offsets(file.path(), &rocketmq_topic).await;
    assert_eq!(
        committed.iter().sum::<i64>(),
        total as i64,
        "committed per queue: {committed:?}"
    );

    // Each queue's messages, and each key's, in order within a partition;
    // each key in one partition (checked by the order: offsets per key grow).
    let mut last: BTreeMap<String, i64> = BTreeMap::new();
    for copy in &copies {
        let (queue, offset) = source_of(copy);
        let key = copy.key.as_deref().map(String::from_utf8_lossy);
        // A queue's messages may spread over partitions by key (key_hash).
        let in_partition = format!("queue {queue} in partition {}", copy.partition);
        let by_key = key.map(|key| format!("key {key}"));
        for group in std::iter::once(in_partition).chain(by_key) {
            let before = last.insert(group.clone(), offset);
            assert!(
                before.is_none_or(|b| b < offset),
                "{group} out of order: offset {offset} after {before:?}"
            );
        }
    }
    let keys = last.keys().filter(|group| group.starts_with("key")).count();
    assert_eq!(keys, KEYS - 1);
    let unkeyed = copies.iter().filter(|c| c.key.is_none()).count();
    assert_eq!(
        unkeyed,
        total / KEYS,
        "messages without a key get a null key"
    );

    // A sample copy carries its message whole.
    let sample = copies
        .iter()
        .find(|c| header(c, "n") == Some("1234"))
        .expect("message 1234 copied");
    assert_eq!(sample.value.as_deref(), Some(&b"body-1234"[..]));
    assert_eq!(sample.key.as_deref(), Some(&b"k34"[..]));
    assert_eq!(header(sample, "ROCKETMQ_TAGS"), Some("t1"));
    assert_eq!(
        header(sample, "ROCKETMQ_TOPIC"),
        Some(rocketmq_topic.as_str())
    );
    let (queue, _) = source_of(sample);
    let expected_partition = match ordering {
        "key_hash" => kafka_partition_of_key(b"k34", partitions as usize) as i32,
        _ => queue % partitions,
    };
    assert_eq!(
        sample.partition, expected_partition,
        "{ordering}: queue q to partition q mod P, or Kafka's murmur2 of the key"
    );
    eprintln!(
        "{ordering}: kills at {kills:?}; {} copies of {total}; restart scans: {scans:?}",
        copies.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_restarts_copy_each_message_back_once_in_partition_mode() {
    kill_restarts_copy_each_message_back_once("partition").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_restarts_copy_each_message_back_once_in_key_hash_mode() {
    kill_restarts_copy_each_message_back_once("key_hash").await;
}

/// Sets Kafka topic `topic`'s `max.message.bytes`.
async fn set_max_message_bytes(bootstrap: &str, topic: &str, bytes: usize) {
    use rdkafka::admin::{AdminClient, AdminOptions, AlterConfig, ResourceSpecifier};
    use rdkafka::client::DefaultClientContext;
    let admin: AdminClient<DefaultClientContext> = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("admin client");
    let value = bytes.to_string();
    let change = AlterConfig::new(ResourceSpecifier::Topic(topic)).set("max.message.bytes", &value);
    let results = admin
        .alter_configs([&change], &AdminOptions::new())
        .await
        .expect("alter configs");
    for result in results {
        result.expect("max.message.bytes set");
    }
}

/// Messages the way back cannot copy as they are: bigger than the Kafka
/// topic takes, empty, or carrying a forward copy's provenance that a
/// producer set (forged: a msgId that does not match; malformed: not a
/// number). Each goes to its policy, is counted and logged with its
/// coordinates; the others are copied.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_messages_go_to_their_policies_counted_and_logged() {
    let brokers = brokers();
    let base = unique("backbad");
    let (rocketmq_topic, kafka_topic, dlq) = (
        format!("{base}_src"),
        format!("{base}.copy"),
        format!("{base}.dlq"),
    );
    let config = way_back_config(
        &brokers,
        &rocketmq_topic,
        &kafka_topic,
        "partition",
        closed_port(),
    )
    .replace(
        "    ordering: partition\n",
        &format!(
            "    ordering: partition\n    on_oversized_body: dead_letter\n    on_empty_value: skip\n    \
             on_suspect_provenance: dead_letter\n    dead_letter_topic: \"{dlq}\"\n"
        ),
    );
    let file = config_file(&config);
    create_topics(file.path(), 1, 1);
    set_max_message_bytes(&brokers.kafka, &kafka_topic, 4096).await;

    let plain = |body: &[u8]| {
        Message::builder()
            .topic(&rocketmq_topic)
            .body_slice(body)
            .build_unchecked()
    };
    // A forward copy's properties, set by a producer: its msgId is not the
    // one the bridge would give that record.
    let forged = Message::builder()
        .topic(&rocketmq_topic)
        .body_slice(b"forged")
        .raw_property("KAFKA_TOPIC", "orders")
        .and_then(|b| b.raw_property("KAFKA_PARTITION", "0"))
        .and_then(|b| b.raw_property("KAFKA_OFFSET", "7"))
        .expect("legal properties")
        .build_unchecked();
    // A partition that is not a number.
    let malformed = Message::builder()
        .topic(&rocketmq_topic)
        .body_slice(b"malformed")
        .raw_property("KAFKA_TOPIC", "orders")
        .and_then(|b| b.raw_property("KAFKA_PARTITION", "first"))
        .and_then(|b| b.raw_property("KAFKA_OFFSET", "7"))
        .expect("legal properties")
        .build_unchecked();
    let messages = vec![
        plain(b"first"),
        plain(&vec![b'x'; 10_000]),
        plain(b""),
        forged,
        malformed,
        plain(b"last"),
    ];
    let config_rocketmq: RocketMqConfig =
        serde_yaml::from_str(&format!("name_server: \"{}\"", brokers.name_server)).expect("config");
    let runtime = RocketMqRuntime::start(1).expect("runtime");
    let mut producer = start_producer(runtime.client_runtime(), &config_rocketmq)
        .await
        .expect("producer");
    let queue = MessageQueue::from_parts(&rocketmq_topic, "broker-a", 0);
    let mut sent = Vec::new();
    for (index, message) in messages.into_iter().enumerate() {
        let stored = if index == 2 {
            // The client refuses an empty body, so it goes as the only
            // entry of a batch, whose inner messages the broker stores
            // as they are (any producer can do the same).
            let empty = OutgoingMessage {
                body: b"",
                keys: None,
                tag: None,
                properties: Vec::new(),
            };
            let entry = Envelope::new(PartitionId::new("unused", 0), 0, &empty, "EMPTY", None);
            let batch = build_batch(&rocketmq_topic, [&entry]).expect("a batch");
            producer.send_to_queue(batch, queue.clone()).await
        } else {
            producer.send_to_queue(message, queue.clone()).await
        };
        sent.push(stored.is_ok());
    }
    producer.shutdown().await;
    runtime.shutdown().await;
    // Message i is at queue offset i: every one was stored, the empty
    // one too.
    assert!(sent.iter().all(|ok| *ok), "{sent:?}");

    let mut bridge = BridgeProcess::start(file.path());
    let expected_letters = vec![
        ("oversized_body".to_string(), 1),
        ("suspect_provenance".to_string(), 3),
        ("suspect_provenance".to_string(), 4),
    ];
    let mut letters = read_dead_letters(&brokers.kafka, &dlq, 3).await;
    // The dead-letter topic may have several partitions: no order across them.
    letters.sort_by_key(|(_, offset)| *offset);
    assert_eq!(letters, expected_letters, "{}", bridge.logs());
    wait_for_kafka_copies(&brokers.kafka, &kafka_topic, 1, 2, &bridge).await;
    bridge.stop_gracefully(Duration::from_secs(30));
    let logs = bridge.logs();
    let copies = read_partition(&brokers.kafka, &kafka_topic, 0);
    let values: Vec<&[u8]> = copies.iter().filter_map(|c| c.value.as_deref()).collect();
    assert_eq!(values, vec![&b"first"[..], &b"last"[..]]);
    assert!(logs.contains("dead_lettered: 3"), "{logs}");
    // The producers (the way back's, the dead letters') get no consumer
    // settings to warn about.
    assert!(!logs.contains("is a consumer property"), "{logs}");
    assert!(logs.contains("skipped: 1"), "{logs}");
    for index in [1, 2, 3, 4] {
        let coordinates = format!("record={rocketmq_topic}@broker-a#0@{index}");
        assert!(
            logs.contains(&coordinates),
            "{coordinates} is logged:\n{logs}"
        );
    }
    assert!(
        logs.contains("msgId is not the one the bridge gives"),
        "the forged message is logged with why:\n{logs}"
    );
    assert!(
        logs.contains("KAFKA_PARTITION or KAFKA_OFFSET is not a number"),
        "the malformed message is logged with why:\n{logs}"
    );
}

/// One topic pair mapped both ways with loop prevention, producers on both
/// sides: each record crosses once, and no copy comes back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_directions_on_one_pair_copy_each_record_once_and_never_back() {
    let (from_kafka, from_rocketmq): (usize, usize) = (3_000, 2_000);
    let brokers = brokers();
    let base = unique("pair");
    let (kafka_topic, rocketmq_topic) = (format!("{base}.k"), format!("{base}_r"));
    let port = closed_port();
    let config = way_back_config(&brokers, &rocketmq_topic, &kafka_topic, "partition", port)
        .replace(
            "    ordering: partition\n",
            &format!(
                "    ordering: partition\n    loop_prevention: true\n\
                 \x20 - kafka_topic: \"{kafka_topic}\"\n    rocketmq_topic: \"{rocketmq_topic}\"\n    \
                 loop_prevention: true\n"
            ),
        )
        ;
    let file = config_file(&config);
    create_topics(file.path(), QUEUES as u32, QUEUES as u32);
    produce(
        &kafka_producer(&brokers.kafka),
        &kafka_topic,
        &keyed_records("pair", from_kafka, 50),
    )
    .await;
    produce_messages(&brokers.name_server, &rocketmq_topic, from_rocketmq).await;

    let mut bridge = BridgeProcess::start(file.path());
    let crossings = (from_kafka + from_rocketmq) as f64;
    // Each side sees the other's copies and skips them as the bridge's.
    let deadline = Instant::now() + Duration::from_secs(300);
    while metric_sum(port, "bridge_records_skipped_total") < crossings {
        assert!(
            Instant::now() < deadline,
            "skipped {} of {crossings} copies: {}",
            metric_sum(port, "bridge_records_skipped_total"),
            bridge.logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Each direction's series carry its label.
    let count = |name: &str, direction: &str, reason: Option<&str>| {
        let mut labels = vec![("direction", direction)];
        labels.extend(reason.map(|reason| ("reason", reason)));
        metric_sum_where(port, name, &labels) as usize
    };
    let (back, forth) = ("rocketmq_to_kafka", "kafka_to_rocketmq");
    assert_eq!(
        count("bridge_records_consumed_total", back, None),
        from_rocketmq + from_kafka
    );
    assert_eq!(
        count("bridge_records_consumed_total", forth, None),
        from_kafka + from_rocketmq
    );
    assert_eq!(
        count("bridge_records_produced_total", back, None),
        from_rocketmq
    );
    assert_eq!(
        count("bridge_records_produced_total", forth, None),
        from_kafka
    );
    assert_eq!(
        count("bridge_records_skipped_total", back, Some("bridge_copy")),
        from_kafka
    );
    assert_eq!(
        count("bridge_records_skipped_total", forth, Some("bridge_copy")),
        from_rocketmq
    );
    // `/status` lists both mappings, the way back's rows by queue.
    // The status sampler runs every 2 s: wait for a sample with the rows.
    let way_back_of = |status: &serde_json::Value| {
        status["mappings"]
            .as_array()
            .and_then(|m| m.iter().find(|m| m["direction"] == back).cloned())
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    let (status, way_back) = loop {
        let status = status_json(port);
        let way_back =
            way_back_of(&status).unwrap_or_else(|| panic!("no way-back mapping in {status}"));
        let rows = way_back["partitions"].as_array().map_or(0, Vec::len);
        if rows == QUEUES as usize || Instant::now() > deadline {
            break (status, way_back);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let mappings = status["mappings"].as_array().expect("mappings");
    assert_eq!(way_back["rocketmq_topic"], rocketmq_topic.as_str());
    let queues = way_back["partitions"].as_array().expect("rows");
    assert_eq!(queues.len(), QUEUES as usize, "{status}");
    assert!(queues.iter().all(|q| q["broker"] == "broker-a"), "{status}");
    assert!(mappings.iter().any(|m| m["direction"] == forth), "{status}");
    bridge.stop_gracefully(Duration::from_secs(30));
    let logs = bridge.logs();

    // Kafka: its own records, then one copy of each RocketMQ message.
    let in_kafka = read_all(&brokers.kafka, &kafka_topic, QUEUES);
    let copies = copies_per_message(
        in_kafka
            .iter()
            .filter(|r| header(r, "ROCKETMQ_COPY_ID").is_some()),
    );
    assert_eq!(in_kafka.len(), from_kafka + from_rocketmq, "{logs}");
    assert_eq!(copies.len(), from_rocketmq);
    assert!(copies.values().all(|n| *n == 1), "a message copied twice");

    // RocketMQ: its own messages, then one copy of each Kafka record.
    let reader = Reader::new(&brokers.name_server).await;
    let in_rocketmq = reader.read(&rocketmq_topic).await;
    reader.close().await;
    let forward: BTreeMap<(String, i32, i64), usize> = in_rocketmq
        .iter()
        .filter_map(|m| m.kafka_record().ok())
        .fold(BTreeMap::new(), |mut count, r| {
            *count
                .entry((r.topic.to_string(), r.partition, r.offset))
                .or_default() += 1;
            count
        });
    assert_eq!(in_rocketmq.len(), from_kafka + from_rocketmq, "{logs}");
    assert_eq!(forward.len(), from_kafka);
    assert!(forward.values().all(|n| *n == 1), "a record copied twice");
    assert!(
        forward.keys().all(|(topic, _, _)| *topic == kafka_topic),
        "only Kafka's own records were copied forward"
    );
    assert!(
        logs.contains(&format!("skipped: {}", from_kafka + from_rocketmq)),
        "{logs}"
    );
}

/// The queues an instance owns now, from its last "RocketMQ queues
/// assigned" line.
fn owned_queues(logs: &str) -> Vec<String> {
    logs.lines()
        .rfind(|line| line.contains("RocketMQ queues assigned"))
        .and_then(|line| line.split("owned=").nth(1))
        .map(|owned| {
            owned
                .split(" revoked=")
                .next()
                .unwrap_or_default()
                .trim_matches('"')
                .split_whitespace()
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// Two instances in one RocketMQ consumer group split the queues; when one
/// is killed, the other takes its queues over; each message lands once.
/// A rate limit on the mapping keeps the copy running while they change.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_split_the_queues_and_one_takes_over_when_the_other_dies() {
    let total: usize = 12_000;
    let brokers = brokers();
    let base = unique("backscale");
    let (rocketmq_topic, kafka_topic) = (format!("{base}_src"), format!("{base}.copy"));
    let port = closed_port();
    let text = rate_limited(
        way_back_config(&brokers, &rocketmq_topic, &kafka_topic, "partition", port),
        1500,
    );
    // One config per instance, the same groups: each serves its metrics
    // on its own port.
    let file = config_file(&text);
    let other_file = config_file(&text.replace(
        &format!("127.0.0.1:{port}"),
        &format!("127.0.0.1:{}", closed_port()),
    ));
    create_topics(file.path(), QUEUES as u32, QUEUES as u32);
    produce_messages(&brokers.name_server, &rocketmq_topic, total).await;

    let first = BridgeProcess::start(file.path());
    wait_for_kafka_copies(&brokers.kafka, &kafka_topic, QUEUES, 2_000, &first).await;
    let mut second = BridgeProcess::start(other_file.path());
    // The group splits the queues between the two.
    let deadline = Instant::now() + Duration::from_secs(120);
    while !(owned_queues(&first.logs()).len() == 2 && owned_queues(&second.logs()).len() == 2) {
        assert!(
            Instant::now() < deadline,
            "the queues were not split: first {:?}, second {:?}",
            owned_queues(&first.logs()),
            owned_queues(&second.logs())
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let copied = kafka_record_count(&brokers.kafka, &kafka_topic, QUEUES);
    assert!(copied < total as i64, "the copy ended before the split");
    // A way-back-only instance is ready once it owns queues.
    let (code, body) = http_get(port, "/readyz").expect("/readyz answers");
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("\"assigned_queues\":2"), "{body}");
    wait_for_kafka_copies(
        &brokers.kafka,
        &kafka_topic,
        QUEUES,
        copied + 2_000,
        &second,
    )
    .await;
    // The mapping's rate limit holds back the way back's messages.
    let (_, metrics) = http_get(port, "/metrics").expect("/metrics");
    let throttled = metrics
        .lines()
        .find(|l| {
            l.starts_with("bridge_throttled_seconds_sum")
                && l.contains("direction=\"rocketmq_to_kafka\"")
                && l.contains("limiter=\"mapping_messages\"")
        })
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse::<f64>().ok());
    assert!(
        throttled.is_some_and(|s| s > 0.5),
        "throttle time {throttled:?}:\n{metrics}"
    );
    let first_logs = first.kill9();
    wait_for_kafka_copies(&brokers.kafka, &kafka_topic, QUEUES, total as i64, &second).await;
    assert_eq!(
        owned_queues(&second.logs()).len(),
        QUEUES as usize,
        "{}",
        second.logs()
    );
    second.stop_gracefully(Duration::from_secs(30));

    let copies = read_all(&brokers.kafka, &kafka_topic, QUEUES);
    let count = copies_per_message(copies.iter());
    let duplicated: Vec<_> = count.iter().filter(|(_, n)| **n > 1).take(5).collect();
    let missing: Vec<_> = (0..QUEUES)
        .flat_map(|q| (0..(total as i64 / QUEUES as i64)).map(move |o| (q, o)))
        .filter(|k| !count.contains_key(k))
        .take(5)
        .collect();
    assert_eq!(
        count.len(),
        total,
        "messages missing, first {missing:?}; duplicated: {duplicated:?}\nfirst:\n{}\nsecond:\n{}",
        first_logs
            .lines()
            .filter(|l| l.contains("queues assigned")
                || l.contains("restart_scan")
                || l.contains("commit"))
            .collect::<Vec<_>>()
            .join("\n"),
        second
            .logs()
            .lines()
            .filter(|l| l.contains("queues assigned")
                || l.contains("restart_scan")
                || l.contains("commit"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(
        duplicated.is_empty(),
        "{} copies of {total}; duplicated: {duplicated:?}\nfirst:\n{first_logs}\nsecond:\n{}",
        copies.len(),
        second.logs()
    );
}

/// Kafka partitions' record count over `window`, per second.
async fn kafka_rate(bootstrap: &str, topic: &str, window: Duration) -> f64 {
    let count = || kafka_record_count(bootstrap, topic, QUEUES);
    let (start, before) = (Instant::now(), count());
    tokio::time::sleep(window).await;
    let (elapsed, after) = (start.elapsed(), count());
    (after - before) as f64 / elapsed.as_secs_f64()
}

/// SIGHUP changes a way-back mapping's rate limit live, as it does a
/// forward one's, and the copy loses and repeats nothing across it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_changes_the_way_back_rate_limit_live() {
    let total: usize = 20_000;
    let brokers = brokers();
    let base = unique("backhup");
    let (rocketmq_topic, kafka_topic) = (format!("{base}_src"), format!("{base}.copy"));
    let port = closed_port();
    let slow = rate_limited(
        way_back_config(&brokers, &rocketmq_topic, &kafka_topic, "partition", port),
        200,
    );
    let file = config_file(&slow);
    create_topics(file.path(), QUEUES as u32, QUEUES as u32);
    produce_messages(&brokers.name_server, &rocketmq_topic, total).await;

    let mut bridge = BridgeProcess::start(file.path());
    wait_for_kafka_copies(&brokers.kafka, &kafka_topic, QUEUES, 400, &bridge).await;
    let before = kafka_rate(&brokers.kafka, &kafka_topic, Duration::from_secs(4)).await;
    assert!(
        (150.0..=250.0).contains(&before),
        "limit 200, measured {before:.0}: {}",
        bridge.logs()
    );

    let fast = slow.replace("messages_per_second: 200", "messages_per_second: 2000");
    std::fs::write(file.path(), fast).expect("rewrite config");
    bridge.signal("HUP");
    assert!(
        bridge.wait_for_log("new limits applied", 1, Duration::from_secs(10)),
        "{}",
        bridge.logs()
    );
    // The held messages are released and the paused queues pulled again
    // first: measured once copies flow at the new limit.
    let resumed = kafka_record_count(&brokers.kafka, &kafka_topic, QUEUES) + 500;
    wait_for_kafka_copies(&brokers.kafka, &kafka_topic, QUEUES, resumed, &bridge).await;
    let after = kafka_rate(&brokers.kafka, &kafka_topic, Duration::from_secs(3)).await;
    assert!(
        (1500.0..=2500.0).contains(&after),
        "limit 2000 after SIGHUP, measured {after:.0}: {}",
        bridge.logs()
    );
    wait_for_kafka_copies(&brokers.kafka, &kafka_topic, QUEUES, total as i64, &bridge).await;
    bridge.stop_gracefully(Duration::from_secs(30));
    let count = copies_per_message(read_all(&brokers.kafka, &kafka_topic, QUEUES).iter());
    assert_eq!(count.len(), total, "messages missing");
    assert!(
        count.values().all(|&n| n == 1),
        "duplicated: {:?}",
        count
            .iter()
            .filter(|(_, n)| **n > 1)
            .take(5)
            .collect::<Vec<_>>()
    );
}

/// `cutover-check` counts the way back's lag from its consumer group's
/// offsets: behind before the copy ran, caught up after.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cutover_check_waits_for_the_way_back_to_catch_up() {
    let brokers = brokers();
    let base = unique("backcut");
    let (rocketmq_topic, kafka_topic) = (format!("{base}_src"), format!("{base}.copy"));
    let (forward_from, forward_to) = (format!("{base}.fwd"), format!("{base}_fwd"));
    let config = way_back_config(
        &brokers,
        &rocketmq_topic,
        &kafka_topic,
        "partition",
        closed_port(),
    )
    .replace(
        "mappings:\n",
        &format!(
            "mappings:\n  - kafka_topic: \"{forward_from}\"\n    rocketmq_topic: \"{forward_to}\"\n"
        ),
    );
    let file = config_file(&config);
    create_topics(file.path(), QUEUES as u32, QUEUES as u32);
    produce_messages(&brokers.name_server, &rocketmq_topic, 400).await;
    let path = file.path().to_str().expect("path");
    let way_back_line = |output: &std::process::Output| {
        stdout(output)
            .lines()
            .find(|line| line.contains("the way back (group"))
            .unwrap_or_else(|| {
                panic!(
                    "no way-back condition in:\n{}{}",
                    stdout(output),
                    stderr(output)
                )
            })
            .to_string()
    };

    let check = || {
        run(&[
            "cutover-check",
            "--config",
            path,
            "--days",
            "1",
            "--max-lag",
            "100",
        ])
    };
    let before = check();
    let line = way_back_line(&before);
    assert!(
        line.starts_with("NO ") && line.contains("400 messages behind"),
        "{line}"
    );
    assert_eq!(before.status.code(), Some(1), "{}", stdout(&before));

    let mut bridge = BridgeProcess::start(file.path());
    wait_for_kafka_copies(&brokers.kafka, &kafka_topic, QUEUES, 400, &bridge).await;
    bridge.stop_gracefully(Duration::from_secs(30));
    let after = check();
    let line = way_back_line(&after);
    assert!(
        line.starts_with("yes") && line.contains(" 0 messages behind"),
        "{line}"
    );
}
