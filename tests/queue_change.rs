//! A target topic's queue count changes while the bridge runs: it logs it,
//! drains, re-plans, and keeps every record and per-key order.

use std::time::{Duration, Instant};

use crate::support::*;
use kafka_rocketmq_bridge::config::RocketMqConfig;
use kafka_rocketmq_bridge::rocketmq_sink::{RocketMqAdmin, RocketMqRuntime};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn growing_the_queue_count_replans_without_loss() {
    let brokers = brokers();
    let base = unique("grow");
    let (kafka_topic, rocketmq_topic) = (format!("{base}.in"), format!("{base}_out"));
    let text = config_text(
        &brokers.kafka,
        &brokers.name_server,
        &[(&kafka_topic, &rocketmq_topic)],
    )
    .replace(
        "    rocketmq_topic:",
        "    ordering: key_hash\n    rocketmq_topic:",
    );
    let file = config_file(&format!(
        "{text}metrics:\n  listen: \"127.0.0.1:{}\"\nbridge:\n  queue_refresh_interval: 1s\n",
        closed_port()
    ));
    create_topics(file.path(), 2, 2);
    let producer = kafka_producer(&brokers.kafka);
    produce(&producer, &kafka_topic, &keyed_records("before", 2_000, 50)).await;
    let mut bridge = BridgeProcess::start(file.path());
    let reader = Reader::new(&brokers.name_server).await;
    assert_eq!(
        reader
            .wait_for_count(&rocketmq_topic, 2_000, Duration::from_secs(120))
            .await,
        2_000,
        "{}",
        bridge.logs()
    );

    // Grow the topic to 4 queues, as an operator would with mqadmin updateTopic.
    let runtime = RocketMqRuntime::start(1).expect("runtime");
    let config: RocketMqConfig =
        serde_yaml::from_str(&format!("name_server: \"{}\"", brokers.name_server)).unwrap();
    let admin = RocketMqAdmin::connect(runtime.client_runtime(), &config, Duration::from_secs(10))
        .await
        .expect("admin");
    admin
        .create_topic(&rocketmq_topic, 4, "DefaultCluster")
        .await
        .expect("update topic");
    admin.shutdown().await;
    runtime.shutdown().await;

    let start = Instant::now();
    while !bridge
        .logs()
        .contains("mapping re-planned onto the new queue count")
        && start.elapsed() < Duration::from_secs(60)
    {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let logs = bridge.logs();
    assert!(
        logs.contains("queue count of a target topic changed while running"),
        "{logs}"
    );
    assert!(
        logs.contains("mapping re-planned onto the new queue count"),
        "{logs}"
    );

    produce(&producer, &kafka_topic, &keyed_records("after", 2_000, 50)).await;
    assert_eq!(
        reader
            .wait_for_count(&rocketmq_topic, 4_000, Duration::from_secs(120))
            .await,
        4_000,
        "{}",
        bridge.logs()
    );
    bridge.stop_gracefully(Duration::from_secs(30));

    let messages = reader.read(&rocketmq_topic).await;
    let distinct: std::collections::BTreeSet<_> = messages.iter().map(coordinates).collect();
    assert_eq!(
        (distinct.len(), messages.len()),
        (4_000, 4_000),
        "every record once"
    );
    let key = |r: &kafka_rocketmq_bridge::mapping::SourceRecord| {
        String::from_utf8_lossy(r.key().unwrap_or_default()).into_owned()
    };
    let before: Vec<_> = messages
        .iter()
        .filter(|m| m.body.starts_with(b"before"))
        .cloned()
        .collect();
    assert!(before.iter().all(|m| m.queue_id < 2));
    assert_eq!(assert_ordered_by(&before, key), 50);
    let after: Vec<_> = messages
        .iter()
        .filter(|m| m.body.starts_with(b"after"))
        .cloned()
        .collect();
    assert_eq!(after.len(), 2_000);
    // After the re-plan, keys spread over all four queues, each key on one queue, in order.
    assert!(
        after.iter().any(|m| m.queue_id >= 2),
        "no record reached the new queues"
    );
    assert_eq!(assert_ordered_by(&after, key), 50);
    reader.close().await;
}
