//! The bridge against the real brokers: completeness, exact content,
//! order, graceful shutdown and resume.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use crate::support::*;
use kafka_rocketmq_bridge::mapping::SourceRecord;

struct Scenario {
    _file: tempfile::NamedTempFile,
    path: String,
    topics: Vec<(String, String)>,
    group: String,
}

/// Three mappings: partition order with a constant tag, key_hash with the
/// tag from a header, and partition order without a tag.
fn three_topic_scenario(extra_bridge: &str) -> Scenario {
    let brokers = brokers();
    let base = unique("e2e");
    let topics: Vec<(String, String)> = ["orders", "payments", "audit"]
        .iter()
        .map(|t| (format!("{base}.{t}"), format!("{base}_{t}")))
        .collect();
    let group = unique("group");
    let text = format!(
        "kafka:\n  bootstrap_servers: \"{kafka}\"\n  group_id: \"{group}\"\n  properties:\n    session.timeout.ms: \"6000\"\n\
         rocketmq:\n  name_server: \"{ns}\"\n\
         mappings:\n\
         \x20 - kafka_topic: \"{k0}\"\n    rocketmq_topic: \"{r0}\"\n    ordering: partition\n    tag: \"orders\"\n\
         \x20 - kafka_topic: \"{k1}\"\n    rocketmq_topic: \"{r1}\"\n    ordering: key_hash\n    tag_header: \"origin\"\n\
         \x20 - kafka_topic: \"{k2}\"\n    rocketmq_topic: \"{r2}\"\n\
         metrics:\n  listen: \"127.0.0.1:{port}\"\n{extra_bridge}",
        kafka = brokers.kafka,
        ns = brokers.name_server,
        k0 = topics[0].0,
        r0 = topics[0].1,
        k1 = topics[1].0,
        r1 = topics[1].1,
        k2 = topics[2].0,
        r2 = topics[2].1,
        port = closed_port(),
    );
    let file = config_file(&text);
    let path = file.path().to_str().unwrap().to_string();
    create_topics(&path, 8, 8);
    Scenario {
        _file: file,
        path,
        topics,
        group,
    }
}

fn by_coordinates(records: Vec<SourceRecord>) -> BTreeMap<(String, i32, i64), SourceRecord> {
    records
        .into_iter()
        .map(|r| ((r.topic.to_string(), r.partition, r.offset), r))
        .collect()
}

/// Headers come back sorted by name when all are plain properties.
fn sorted_headers(record: SourceRecord) -> SourceRecord {
    let mut headers: Vec<_> = record.headers().collect();
    headers.sort();
    record.clone().with_headers(headers)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copies_100k_records_exactly_and_in_order() {
    let total: usize = std::env::var("BRIDGE_TEST_RECORDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let scenario = three_topic_scenario("");
    let brokers = brokers();
    let producer = kafka_producer(&brokers.kafka);
    let mut expected = Vec::new();
    for (index, (kafka_topic, _)) in scenario.topics.iter().enumerate() {
        let count = total / 3 + usize::from(index < total % 3);
        expected.extend(
            produce(
                &producer,
                kafka_topic,
                &keyed_records(kafka_topic, count, 500),
            )
            .await,
        );
    }
    assert_eq!(expected.len(), total);

    let mut bridge = BridgeProcess::start(std::path::Path::new(&scenario.path));
    let reader = Reader::new(&brokers.name_server).await;
    let mut messages = Vec::new();
    for (kafka_topic, rocketmq_topic) in &scenario.topics {
        let want = expected
            .iter()
            .filter(|r| *r.topic == **kafka_topic)
            .count() as i64;
        let got = reader
            .wait_for_count(rocketmq_topic, want, Duration::from_secs(300))
            .await;
        assert_eq!(
            got,
            want,
            "{rocketmq_topic}: bridge log:\n{}",
            bridge.logs()
        );
        let read = reader.read(rocketmq_topic).await;
        assert_eq!(read.len() as i64, want);
        messages.push(read);
    }
    bridge.stop_gracefully(Duration::from_secs(30));

    // Complete and exact: every Kafka record once, with body, key, headers, provenance.
    let expected = by_coordinates(expected);
    let mut seen = HashMap::new();
    for message in messages.iter().flatten() {
        let record = message
            .kafka_record()
            .expect("every message carries provenance");
        let key = (record.topic.to_string(), record.partition, record.offset);
        *seen.entry(key.clone()).or_insert(0) += 1;
        let want = expected
            .get(&key)
            .unwrap_or_else(|| panic!("unexpected record {key:?}"));
        assert_eq!(
            sorted_headers(record),
            sorted_headers(want.clone()),
            "record {key:?}"
        );
    }
    assert_eq!(seen.len(), expected.len(), "missing records");
    assert!(seen.values().all(|n| *n == 1), "duplicates in a clean run");

    // Tags: constant on the first mapping, from the `origin` header on the second, none on the third.
    assert!(
        messages[0]
            .iter()
            .all(|m| m.tags.as_deref() == Some("orders"))
    );
    assert!(
        messages[1]
            .iter()
            .all(|m| m.tags.as_deref() == Some(scenario.topics[1].0.as_str()))
    );
    assert!(messages[2].iter().all(|m| m.tags.is_none()));
    // Keys are carried in KEYS.
    assert!(
        messages[0]
            .iter()
            .all(|m| m.keys.as_deref().is_some_and(|k| k.starts_with("key-")))
    );

    // partition mode: partition p -> queue p mod 8, offsets increasing per partition.
    for read in [&messages[0], &messages[2]] {
        assert!(
            read.iter().all(|m| coordinates(m).1 == m.queue_id),
            "partition p must land on queue p"
        );
        assert_eq!(assert_ordered_by(read, |r| r.partition.to_string()), 8);
    }
    // key_hash mode: each key on one queue, its offsets increasing.
    let keys = assert_ordered_by(&messages[1], |r| {
        String::from_utf8_lossy(r.key().unwrap_or_default()).into_owned()
    });
    assert_eq!(keys, 500);
    let queues_used: std::collections::BTreeSet<i32> =
        messages[1].iter().map(|m| m.queue_id).collect();
    assert!(
        queues_used.len() > 1,
        "key_hash spread keys over several queues"
    );
    reader.close().await;
    let _ = scenario.group;
}

/// Offsets the group has committed for `topic`, per partition.
fn committed_offsets(kafka: &str, group: &str, topic: &str, partitions: i32) -> BTreeMap<i32, i64> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let consumer: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", kafka)
        .set("group.id", group)
        .create()
        .expect("offset reader");
    let mut list = rdkafka::TopicPartitionList::new();
    for partition in 0..partitions {
        list.add_partition(topic, partition);
    }
    let committed = consumer
        .committed_offsets(list, Duration::from_secs(10))
        .expect("committed offsets");
    committed
        .elements()
        .iter()
        .filter_map(|e| match e.offset() {
            rdkafka::Offset::Offset(offset) => Some((e.partition(), offset)),
            _ => None,
        })
        .collect()
}

/// One past the highest Kafka offset RocketMQ holds, per partition.
fn stored_ends(
    messages: &[kafka_rocketmq_bridge::rocketmq_reader::ReadMessage],
) -> BTreeMap<i32, i64> {
    let mut ends = BTreeMap::new();
    for message in messages {
        let (_, partition, offset) = coordinates(message);
        let end = ends.entry(partition).or_insert(0);
        *end = (*end).max(offset + 1);
    }
    ends
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_commits_exactly_what_was_stored_and_restart_copies_nothing_twice() {
    let scenario = three_topic_scenario("bridge:\n  shutdown_timeout: \"20s\"\n");
    let brokers = brokers();
    let (kafka_topic, rocketmq_topic) = scenario.topics[0].clone();
    let producer = kafka_producer(&brokers.kafka);
    produce(&producer, &kafka_topic, &keyed_records("a", 20_000, 100)).await;

    let mut bridge = BridgeProcess::start(std::path::Path::new(&scenario.path));
    let reader = Reader::new(&brokers.name_server).await;
    // Stop mid-stream: once some but not all records are stored.
    let seen = reader
        .wait_for_count(&rocketmq_topic, 2_000, Duration::from_secs(120))
        .await;
    assert!(seen >= 2_000, "log:\n{}", bridge.logs());
    let started = std::time::Instant::now();
    bridge.stop_gracefully(Duration::from_secs(25));
    assert!(started.elapsed() < Duration::from_secs(25));

    // Committed offsets are exactly one past what RocketMQ stored, per partition.
    let stored = reader.read(&rocketmq_topic).await;
    let committed = committed_offsets(&brokers.kafka, &scenario.group, &kafka_topic, 8);
    let ends = stored_ends(&stored);
    for (partition, end) in &ends {
        assert_eq!(
            committed.get(partition),
            Some(end),
            "partition {partition}: committed {committed:?} stored {ends:?}"
        );
    }

    // A restart resumes there: the rest arrives, nothing twice.
    let mut bridge = BridgeProcess::start(std::path::Path::new(&scenario.path));
    let total = reader
        .wait_for_count(&rocketmq_topic, 20_000, Duration::from_secs(180))
        .await;
    assert_eq!(total, 20_000, "log:\n{}", bridge.logs());
    bridge.stop_gracefully(Duration::from_secs(25));
    let all = reader.read(&rocketmq_topic).await;
    let distinct: std::collections::BTreeSet<_> = all.iter().map(coordinates).collect();
    assert_eq!(distinct.len(), 20_000, "every record present");
    assert_eq!(
        all.len(),
        20_000,
        "no record copied twice across the restart"
    );
    reader.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_at_least_once_loses_nothing_and_bounds_duplicates() {
    let total: i64 = std::env::var("BRIDGE_TEST_KILL_RECORDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000);
    let buffer = 512;
    let batch = 128;
    let scenario = three_topic_scenario(&format!(
        "bridge:\n  queue_buffer_records: {buffer}\n  max_batch_records: {batch}\n  exactly_once_restarts: false\n"
    ));
    let brokers = brokers();
    let (kafka_topic, rocketmq_topic) = scenario.topics[0].clone();
    let producer = kafka_producer(&brokers.kafka);
    produce(
        &producer,
        &kafka_topic,
        &keyed_records("k", total as usize, 1000),
    )
    .await;

    let reader = Reader::new(&brokers.name_server).await;
    let path = std::path::Path::new(&scenario.path);
    // Kill points spread over the run, at pseudo-random fractions.
    let seed = std::process::id() as i64;
    let kills: Vec<i64> = (1..=3)
        .map(|k| total * (k * 20 + (seed * 7 * k) % 15) / 100)
        .collect();
    // What a kill may duplicate: everything in the queues' buffers and
    // batches, plus what was stored since the last commit (one commit
    // interval of throughput, and a second for the commit's round trip).
    let mut bound = 0;
    for point in &kills {
        let bridge = BridgeProcess::start(path);
        let seen = reader
            .wait_for_count(&rocketmq_topic, *point, Duration::from_secs(300))
            .await;
        assert!(
            seen >= *point,
            "stalled before {point}; log:\n{}",
            bridge.logs()
        );
        // The throughput just before the kill: a measurement window.
        let started = std::time::Instant::now();
        tokio::time::sleep(Duration::from_millis(500)).await;
        let rate =
            (reader.count(&rocketmq_topic).await - seen) as f64 / started.elapsed().as_secs_f64();
        bridge.kill9();
        bound += 8 * (buffer + batch) + (rate * 2.0).ceil() as i64;
    }
    let mut bridge = BridgeProcess::start(path);
    let messages = reader
        .wait_for_all(&rocketmq_topic, total as usize, Duration::from_secs(300))
        .await;
    bridge.stop_gracefully(Duration::from_secs(30));

    let mut copies: BTreeMap<(String, i32, i64), usize> = BTreeMap::new();
    for message in &messages {
        *copies.entry(coordinates(message)).or_default() += 1;
    }
    assert_eq!(
        copies.len() as i64,
        total,
        "records missing after {} kills",
        kills.len()
    );
    let duplicates = messages.len() as i64 - total;
    assert!(
        duplicates <= bound,
        "{duplicates} duplicates, bound {bound}"
    );
    // Order: per partition, first copies appear in increasing offset order.
    let mut firsts = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    let mut sorted: Vec<_> = messages.iter().collect();
    sorted.sort_by_key(|m| (m.queue_id, m.queue_offset));
    for message in sorted {
        if seen.insert(coordinates(message)) {
            firsts.push(message.clone());
        }
    }
    assert_eq!(assert_ordered_by(&firsts, |r| r.partition.to_string()), 8);
    eprintln!("kill -9 at {kills:?}: {duplicates} duplicates (bound {bound})");
    reader.close().await;
}
