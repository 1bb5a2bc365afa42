//! `kafka.start_from: <timestamp>` starts a new group at the first record at
//! or after that time; committed offsets win on restart.

mod support;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use support::*;

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
    let old = produce(&producer, &kafka_topic, &keyed_records("old", 500, 10)).await;
    // The scenario needs records on both sides of a point in time; brokers
    // index time per batch, so leave a clear gap.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let start_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let new = produce(&producer, &kafka_topic, &keyed_records("new", 700, 10)).await;
    assert!(old.iter().all(|r| r.timestamp.unwrap().0 < start_ms));
    assert!(new.iter().all(|r| r.timestamp.unwrap().0 >= start_ms));

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
    let copied: std::collections::BTreeSet<_> = reader
        .read(&rocketmq_topic)
        .await
        .iter()
        .map(coordinates)
        .collect();
    let wanted: std::collections::BTreeSet<_> = new
        .iter()
        .map(|r| (r.topic.clone(), r.partition, r.offset))
        .collect();
    assert_eq!(copied, wanted, "exactly the records from the start time on");

    // Restart: committed offsets win over start_from; only newer records follow.
    produce(&producer, &kafka_topic, &keyed_records("later", 100, 10)).await;
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
    assert_eq!(reader.count(&rocketmq_topic).await, 800);
    reader.close().await;
}
