//! `kafka.start_from: <timestamp>` starts a new group at the first record at
//! or after that time, `latest` at the end the partitions have when they
//! start; committed offsets win on restart.

use std::collections::BTreeSet;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use kafka_rocketmq_bridge::mapping::SourceRecord;

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timestamp_start_skips_older_records_and_restart_resumes_from_commits() {
    let brokers = brokers();
    let base = unique("start");
    let (kafka_topic, rocketmq_topic) = (format!("{base}.in"), format!("{base}_out"));
    let producer = kafka_producer(&brokers.kafka);
    let plain = config_file(&config_text(
        &brokers.kafka,
        &brokers.name_server,
        &[(&kafka_topic, &rocketmq_topic)],
    ));
    create_topics(plain.path(), 2, 2);
    // The scenario needs records on both sides of a point in time, the
    // first new one exactly on it. Stamping them (CreateTime) puts them
    // there without waiting: Apache Kafka's offsetsForTimes answers per
    // record (its time index only says where to start scanning), so no gap
    // between the two sets is needed, unlike the per-batch index of the
    // stand-in broker the 1.5 s pauses were for.
    let start_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
        - 60_000;
    let stamped = |tag: &str, count: usize, first_ms: i64| {
        let mut records = keyed_records(tag, count, 10);
        for (i, record) in records.iter_mut().enumerate() {
            record.timestamp = Some(first_ms + i as i64);
        }
        records
    };
    let old = produce(
        &producer,
        &kafka_topic,
        &stamped("old", 500, start_ms - 500),
    )
    .await;
    let new = produce(&producer, &kafka_topic, &stamped("new", 700, start_ms)).await;
    assert!(old.iter().all(|r| r.timestamp.unwrap().0 < start_ms));
    assert!(new.iter().all(|r| r.timestamp.unwrap().0 >= start_ms));
    assert_eq!(old.last().unwrap().timestamp.unwrap().0, start_ms - 1);
    assert_eq!(new[0].timestamp.unwrap().0, start_ms);

    let text = config_text(
        &brokers.kafka,
        &brokers.name_server,
        &[(&kafka_topic, &rocketmq_topic)],
    )
    .replace(
        "  properties:",
        &format!("  start_from: \"{start_ms}\"\n  properties:"),
    );
    let file = config_file(&format!(
        "{text}metrics:\n  listen: \"127.0.0.1:{}\"\n",
        closed_port()
    ));
    let mut bridge = BridgeProcess::start(file.path());
    let reader = Reader::new(&brokers.name_server).await;
    assert_eq!(
        reader
            .wait_for_count(&rocketmq_topic, 700, Duration::from_secs(120))
            .await,
        700,
        "{}",
        bridge.logs()
    );
    bridge.stop_gracefully(Duration::from_secs(30));
    let messages = reader.read(&rocketmq_topic).await;
    assert_eq!(
        messages.iter().map(coordinates).collect::<BTreeSet<_>>(),
        coordinates_of(&new),
        "exactly the records from the start time on"
    );
    assert_eq!(messages.len(), new.len(), "each once");

    // Restart: committed offsets win over start_from; only newer records follow.
    let later = produce(&producer, &kafka_topic, &keyed_records("later", 100, 10)).await;
    let mut bridge = BridgeProcess::start(file.path());
    assert_eq!(
        reader
            .wait_for_count(&rocketmq_topic, 800, Duration::from_secs(120))
            .await,
        800,
        "{}",
        bridge.logs()
    );
    bridge.stop_gracefully(Duration::from_secs(30));
    let messages = reader.read(&rocketmq_topic).await;
    reader.close().await;
    let mut wanted = coordinates_of(&new);
    wanted.extend(coordinates_of(&later));
    assert_eq!(
        messages.iter().map(coordinates).collect::<BTreeSet<_>>(),
        wanted
    );
    assert_eq!(assert_complete_and_ordered(&messages, 800, 2), 0);
}

/// `kafka.start_from: latest`: a new group copies nothing the topic held
/// before its partitions started, and everything produced after, exactly
/// once (no re-delivery of the record before the start point).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latest_skips_what_came_before_the_start_and_copies_what_follows_exactly() {
    let brokers = brokers();
    let base = unique("latest");
    let (kafka_topic, rocketmq_topic) = (format!("{base}.in"), format!("{base}_out"));
    let producer = kafka_producer(&brokers.kafka);
    let port = closed_port();
    // Statistics every 200 ms: /status shows a partition's high watermark
    // from the first fetch on (below).
    let text = config_text(
        &brokers.kafka,
        &brokers.name_server,
        &[(&kafka_topic, &rocketmq_topic)],
    )
    .replace(
        "  properties:\n",
        "  start_from: latest\n  properties:\n    statistics.interval.ms: \"200\"\n",
    );
    let file = config_file(&format!("{text}metrics:\n  listen: \"127.0.0.1:{port}\"\n"));
    create_topics(file.path(), 2, 2);
    let before = produce(&producer, &kafka_topic, &keyed_records("before", 300, 10)).await;
    assert!(before.iter().any(|r| r.partition == 0) && before.iter().any(|r| r.partition == 1));

    let mut bridge = BridgeProcess::start(file.path());
    assert!(
        bridge.wait_for_log("partitions assigned", 1, Duration::from_secs(60)),
        "{}",
        bridge.logs()
    );
    // The assignment is not yet the start point: librdkafka then looks for
    // a committed offset, finds none and asks for the end (ListOffsets);
    // records produced meanwhile would count as before the start. It
    // fetches only once the position is set, and the statistics carry a
    // partition's high watermark only from a fetch answer on, so a high
    // watermark on /status for both partitions means both start points are
    // set.
    let highs = high_watermarks(&brokers.kafka, &kafka_topic, 2);
    let status = wait_for_http(port, "/status", Duration::from_secs(60), |code, body| {
        code == 200 && status_high_watermarks(body).len() == 2
    })
    .await;
    let seen = status
        .as_ref()
        .map(|(_, body)| status_high_watermarks(body))
        .unwrap_or_default();
    assert_eq!(seen, highs, "/status: {status:?}");

    let after = produce(&producer, &kafka_topic, &keyed_records("after", 500, 10)).await;
    let reader = Reader::new(&brokers.name_server).await;
    reader
        .wait_for_all(&rocketmq_topic, after.len(), Duration::from_secs(120))
        .await;
    bridge.stop_gracefully(Duration::from_secs(30));
    let messages = reader.read(&rocketmq_topic).await;
    let copied: BTreeSet<_> = messages.iter().map(coordinates).collect();
    assert_eq!(copied, coordinates_of(&after), "{}", bridge.logs());
    assert_eq!(messages.len(), after.len(), "no record copied twice");

    // Restart: the commits win over `latest`; what came while the bridge
    // was down is copied, once.
    let later = produce(&producer, &kafka_topic, &keyed_records("later", 100, 10)).await;
    let mut bridge = BridgeProcess::start(file.path());
    reader
        .wait_for_all(&rocketmq_topic, 600, Duration::from_secs(120))
        .await;
    bridge.stop_gracefully(Duration::from_secs(30));
    let messages = reader.read(&rocketmq_topic).await;
    reader.close().await;
    let mut wanted = coordinates_of(&after);
    wanted.extend(coordinates_of(&later));
    assert_eq!(
        messages.iter().map(coordinates).collect::<BTreeSet<_>>(),
        wanted
    );
    assert_eq!(assert_complete_and_ordered(&messages, 600, 2), 0);
}

/// The Kafka coordinates of `records`.
fn coordinates_of(records: &[SourceRecord]) -> BTreeSet<(String, i32, i64)> {
    records
        .iter()
        .map(|r| (r.topic.to_string(), r.partition, r.offset))
        .collect()
}

/// The high watermarks `/status` shows, by partition (partitions without
/// one left out).
fn status_high_watermarks(body: &str) -> Vec<i64> {
    let document: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
    document["mappings"][0]["partitions"]
        .as_array()
        .map(|partitions| {
            partitions
                .iter()
                .filter_map(|p| p["high_watermark"].as_i64())
                .collect()
        })
        .unwrap_or_default()
}
