//! Message ids (UNIQ_KEY) with batching on: one per record, deterministic by
//! default so a re-sent copy carries its first copy's id.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use crate::support::*;
use kafka_rocketmq_bridge::message_id::deterministic_id;

fn scenario(
    extra_rocketmq: &str,
    partitions: u32,
    bridge: &str,
) -> (tempfile::NamedTempFile, String, String) {
    let brokers = brokers();
    let base = unique("ids");
    let (kafka_topic, rocketmq_topic) = (format!("{base}.in"), format!("{base}_out"));
    let text = config_text(
        &brokers.kafka,
        &brokers.name_server,
        &[(&kafka_topic, &rocketmq_topic)],
    )
    .replace("mappings:\n", &format!("{extra_rocketmq}mappings:\n"));
    let file = config_file(&format!(
        "{text}metrics:\n  listen: \"127.0.0.1:{}\"\n{}",
        closed_port(),
        match bridge {
            "" => String::new(),
            settings => format!("bridge:\n{settings}"),
        }
    ));
    create_topics(file.path(), partitions, partitions);
    (file, kafka_topic, rocketmq_topic)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_batched_record_has_its_own_deterministic_id_and_resends_keep_it() {
    let brokers = brokers();
    // The restart must re-send (at-least-once), to show re-sent copies keep
    // their ids; a long commit interval leaves plenty uncommitted at the kill.
    let (file, kafka_topic, rocketmq_topic) = scenario(
        "",
        4,
        "  exactly_once_restarts: false\n  commit_interval: 10s\n",
    );
    let total = 50_000usize;
    let producer = kafka_producer(&brokers.kafka);
    let stored = produce(&producer, &kafka_topic, &keyed_records("id", total, 100)).await;
    let timestamps: BTreeMap<(i32, i64), i64> = stored
        .iter()
        .map(|r| ((r.partition, r.offset), r.timestamp.unwrap().0))
        .collect();

    let reader = Reader::new(&brokers.name_server).await;
    // A kill -9 mid-run makes the restart re-send what was not committed.
    let first = BridgeProcess::start(file.path());
    assert!(
        reader
            .wait_for_count(&rocketmq_topic, 20_000, Duration::from_secs(120))
            .await
            >= 20_000,
        "{}",
        first.logs()
    );
    first.kill9();
    let mut second = BridgeProcess::start(file.path());
    reader
        .wait_for_all(&rocketmq_topic, total, Duration::from_secs(180))
        .await;
    second.stop_gracefully(Duration::from_secs(30));
    // Read again once the bridge is stopped, so late re-sends are counted.
    let messages = reader.read(&rocketmq_topic).await;

    // Each copy's id is the documented function of its coordinates.
    let mut id_of: BTreeMap<(String, i32, i64), String> = BTreeMap::new();
    for message in &messages {
        let (topic, partition, offset) = coordinates(message);
        let id = message
            .uniq_key
            .clone()
            .expect("every message has a UNIQ_KEY");
        let expected = deterministic_id(
            &rocketmq_topic,
            &topic,
            partition,
            offset,
            timestamps.get(&(partition, offset)).copied(),
        );
        assert_eq!(id, expected, "{topic}/{partition}@{offset}");
        if let Some(first_id) = id_of.insert((topic, partition, offset), id.clone()) {
            assert_eq!(first_id, id, "a re-sent copy carries its first copy's id");
        }
    }
    assert_eq!(id_of.len(), total);
    let duplicates = messages.len() - total;
    assert!(
        duplicates > 0,
        "the restart re-sent nothing, so nothing shows that re-sent copies keep their ids"
    );
    // A consumer that drops ids it has seen processes each record exactly once.
    let distinct_ids: BTreeSet<&String> = id_of.values().collect();
    assert_eq!(distinct_ids.len(), total, "ids are distinct across records");
    let mut processed: BTreeSet<&str> = BTreeSet::new();
    let mut dropped = 0usize;
    for message in &messages {
        let id = message.uniq_key.as_deref().expect("checked above");
        if !processed.insert(id) {
            dropped += 1;
        }
    }
    assert_eq!(processed.len(), total, "each record processed once");
    assert_eq!(dropped, duplicates, "exactly the re-sent copies dropped");
    eprintln!(
        "message ids: {} copies of {total} records, {duplicates} duplicates, all with their first id",
        messages.len(),
    );
    reader.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_generated_ids_are_distinct_within_batches_too() {
    let brokers = brokers();
    let (file, kafka_topic, rocketmq_topic) = scenario("", 2, "");
    let file_text = std::fs::read_to_string(file.path())
        .unwrap()
        .replace("  name_server:", "  message_ids: client\n  name_server:");
    let file = config_file(&file_text);
    produce(
        &kafka_producer(&brokers.kafka),
        &kafka_topic,
        &keyed_records("c", 5_000, 10),
    )
    .await;
    let mut bridge = BridgeProcess::start(file.path());
    let reader = Reader::new(&brokers.name_server).await;
    assert_eq!(
        reader
            .wait_for_count(&rocketmq_topic, 5_000, Duration::from_secs(120))
            .await,
        5_000,
        "{}",
        bridge.logs()
    );
    bridge.stop_gracefully(Duration::from_secs(30));
    let messages = reader.read(&rocketmq_topic).await;
    let ids: BTreeSet<String> = messages
        .iter()
        .map(|m| m.uniq_key.clone().expect("UNIQ_KEY"))
        .collect();
    assert_eq!(ids.len(), 5_000);
    let deterministic = messages.iter().filter(|m| {
        let (t, p, o) = coordinates(m);
        m.uniq_key
            .as_deref()
            .is_some_and(|id| id[..20] == deterministic_id(&rocketmq_topic, &t, p, o, None)[..20])
    });
    assert_eq!(deterministic.count(), 0, "client mode does not derive ids");
    reader.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_with_spaces_is_found_by_a_key_query_and_maps_back() {
    use kafka_rocketmq_bridge::config::RocketMqConfig;
    use kafka_rocketmq_bridge::rocketmq_reader::query_by_key;
    use kafka_rocketmq_bridge::rocketmq_sink::{RocketMqRuntime, start_producer};

    let brokers = brokers();
    let (file, kafka_topic, rocketmq_topic) = scenario("", 1, "");
    let key = format!("order {} eu 50%", unique("k"));
    let records = vec![
        TestRecord {
            key: Some(key.clone().into_bytes()),
            value: Some(b"spaced".to_vec()),
            headers: vec![],
            partition: Some(0),
            timestamp: None,
        },
        TestRecord {
            key: Some(b"plain-key".to_vec()),
            value: Some(b"plain".to_vec()),
            headers: vec![],
            partition: Some(0),
            timestamp: None,
        },
    ];
    produce(&kafka_producer(&brokers.kafka), &kafka_topic, &records).await;
    let mut bridge = BridgeProcess::start(file.path());
    let reader = Reader::new(&brokers.name_server).await;
    assert_eq!(
        reader
            .wait_for_count(&rocketmq_topic, 2, Duration::from_secs(120))
            .await,
        2,
        "{}",
        bridge.logs()
    );
    bridge.stop_gracefully(Duration::from_secs(30));
    reader.close().await;

    let runtime = RocketMqRuntime::start(1).expect("runtime");
    let config: RocketMqConfig =
        serde_yaml::from_str(&format!("name_server: \"{}\"", brokers.name_server)).unwrap();
    let mut producer = start_producer(runtime.client_runtime(), &config)
        .await
        .expect("producer");
    // The documented lookup form: `%` as %25, spaces as %20. The broker's
    // index is built asynchronously, so ask until it answers or a deadline.
    let encoded = key.replace('%', "%25").replace(' ', "%20");
    let start = std::time::Instant::now();
    let found = loop {
        let found = query_by_key(
            &mut producer,
            &rocketmq_topic,
            &encoded,
            &brokers.name_server,
        )
        .await
        .expect("key query");
        if !found.is_empty() || start.elapsed() > Duration::from_secs(30) {
            break found;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert_eq!(found.len(), 1, "the whole key is one indexed token");
    let record = found[0].kafka_record().expect("unmap");
    assert_eq!(
        record.key(),
        Some(key.as_bytes()),
        "maps back to the original key"
    );
    assert_eq!(record.value(), Some(&b"spaced"[..]));
    let plain = query_by_key(
        &mut producer,
        &rocketmq_topic,
        "plain-key",
        &brokers.name_server,
    )
    .await
    .expect("key query");
    assert_eq!(plain.len(), 1);
    producer.shutdown().await;
    runtime.shutdown().await;
}
