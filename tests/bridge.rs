//! The bridge against the real brokers: completeness, exact content,
//! order, graceful shutdown and resume.

mod support;

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use kafka_rocketmq_bridge::mapping::SourceRecord;
use support::*;

/// Creates the topics of `config_path` with `partitions` partitions and queues.
fn create_topics(config_path: &str, partitions: u32) {
    let n = partitions.to_string();
    let output = run(&[
        "create-topics",
        "--config",
        config_path,
        "--partitions",
        &n,
        "--queues",
        &n,
    ]);
    assert!(
        output.status.success(),
        "{}{}",
        stdout(&output),
        stderr(&output)
    );
}

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
    create_topics(&path, 8);
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
        .map(|r| ((r.topic.clone(), r.partition, r.offset), r))
        .collect()
}

/// Headers come back sorted by name when all are plain properties.
fn sorted_headers(mut record: SourceRecord) -> SourceRecord {
    record.headers.sort();
    record
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
        let want = expected.iter().filter(|r| &r.topic == kafka_topic).count() as i64;
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
    bridge.signal("TERM");
    let status = bridge
        .wait(Duration::from_secs(30))
        .expect("bridge exits after SIGTERM");
    assert!(status.success(), "exit {status:?}; log:\n{}", bridge.logs());

    // Complete and exact: every Kafka record once, with body, key, headers, provenance.
    let expected = by_coordinates(expected);
    let mut seen = HashMap::new();
    for message in messages.iter().flatten() {
        let record = message
            .kafka_record()
            .expect("every message carries provenance");
        let key = (record.topic.clone(), record.partition, record.offset);
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
        String::from_utf8_lossy(r.key.as_deref().unwrap_or_default()).into_owned()
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
