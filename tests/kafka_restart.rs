//! The Kafka broker killed with -9 mid-copy and restarted on its data: the
//! bridge never exits, loses nothing, keeps each partition's order and,
//! with `exactly_once_restarts` (the default), copies nothing twice, though
//! its commits failed while Kafka was down and its group session expired.
//! A Kafka of the test's own (it is killed); the shared RocketMQ.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use crate::support::*;

const PARTITIONS: usize = 4;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_killed_and_restarted_mid_copy_leaves_one_copy_per_record() {
    let shared = brokers();
    let own = OwnBrokers::start(&["kafka"], &[]);
    let base = unique("kafka-restart");
    let (kafka_topic, rocketmq_topic) = (format!("{base}.in"), format!("{base}_out"));
    let port = closed_port();
    // The rate limit keeps the copy going for seconds, so the kill lands
    // mid-copy, with records in flight and uncommitted.
    let file = config_file(&format!(
        "{}metrics:\n  listen: \"127.0.0.1:{port}\"\nbridge:\n  commit_interval: 1s\n  \
         max_retry_backoff: 2s\n  rate_limit:\n    messages_per_second: 2000\n",
        config_text(
            &own.kafka,
            &shared.name_server,
            &[(&kafka_topic, &rocketmq_topic)]
        ),
    ));
    create_topics(file.path(), PARTITIONS as u32, PARTITIONS as u32);

    let first = 20_000;
    let mut produced = {
        let producer = kafka_producer(&own.kafka);
        produce(&producer, &kafka_topic, &keyed_records("k1", first, 200)).await
    };
    let mut bridge = BridgeProcess::start(file.path());
    let reader = Reader::new(&shared.name_server).await;
    let before = reader
        .wait_for_count(&rocketmq_topic, 4_000, Duration::from_secs(120))
        .await;
    assert!(before >= 4_000, "stalled: {}", bridge.logs());

    own.run("stop", &["--kill", "kafka"]);
    let killed_at = Instant::now();
    let at_kill = reader.count(&rocketmq_topic).await;
    // The bridge notices (its statistics say no broker is up)...
    let down = wait_for_http(port, "/readyz", Duration::from_secs(60), |status, body| {
        status == 503 && body.contains("\"kafka\":\"unreachable\"")
    })
    .await;
    assert!(
        matches!(&down, Some((503, _))),
        "readyz did not report Kafka down: {down:?}"
    );
    // ...and Kafka stays down past the group session timeout (6 s in
    // config_text): the scenario is an outage long enough for the bridge
    // to lose its partitions, not a condition to wait for.
    let outage = Duration::from_secs(8);
    if let Some(left) = outage.checked_sub(killed_at.elapsed()) {
        tokio::time::sleep(left).await;
    }
    assert!(
        bridge.wait(Duration::from_millis(10)).is_none(),
        "the bridge exited while Kafka was down: {}",
        bridge.logs()
    );
    let restart_at = killed_at.elapsed();
    own.run("start", &["kafka"]);
    let outage = killed_at.elapsed();

    // Traffic goes on once Kafka is back.
    let second = 10_000;
    {
        let producer = kafka_producer(&own.kafka);
        produced.extend(produce(&producer, &kafka_topic, &keyed_records("k2", second, 200)).await);
    }
    let total = first + second;
    let produced_at = killed_at.elapsed();
    assert_ready_again(port, &bridge).await;
    let ready_at = killed_at.elapsed();
    reader
        .wait_for_all(&rocketmq_topic, total, Duration::from_secs(300))
        .await;
    let copied_at = killed_at.elapsed();
    assert!(
        bridge.wait(Duration::from_millis(10)).is_none(),
        "the bridge exited: {}",
        bridge.logs()
    );
    bridge.stop_gracefully(Duration::from_secs(30));
    // Read again with the bridge stopped, so late copies are counted too.
    let messages = reader.read(&rocketmq_topic).await;
    reader.close().await;
    let logs = bridge.logs();

    let wanted: BTreeSet<_> = produced
        .iter()
        .map(|r| (r.topic.to_string(), r.partition, r.offset))
        .collect();
    assert_eq!(wanted.len(), total);
    let mut copies: BTreeMap<(String, i32, i64), usize> = BTreeMap::new();
    for message in &messages {
        *copies.entry(coordinates(message)).or_default() += 1;
    }
    let missing: Vec<_> = wanted
        .iter()
        .filter(|c| !copies.contains_key(*c))
        .take(5)
        .collect();
    assert!(
        missing.is_empty(),
        "records missing, e.g. {missing:?}; log:\n{logs}"
    );
    assert_eq!(
        copies.keys().cloned().collect::<BTreeSet<_>>(),
        wanted,
        "messages that are no produced record"
    );
    let extra: Vec<_> = copies.iter().filter(|(_, n)| **n > 1).take(5).collect();
    let duplicates = assert_complete_and_ordered(&messages, total, PARTITIONS);
    assert_eq!(
        duplicates,
        0,
        "first duplicated: {extra:?}; its copies: {:?}; trail:\n{}",
        extra
            .first()
            .map(|(first, _)| copies_of(&messages, first))
            .unwrap_or_default(),
        ownership_trail(&logs).join("\n")
    );
    let lost = logs.contains("partitions lost");
    eprintln!(
        "kafka restart: {before} copied when killed ({at_kill} just after), outage {outage:?} \
         (start called at {restart_at:?}), second batch produced at {produced_at:?}, ready at \
         {ready_at:?}, all copied at {copied_at:?} after the kill; partitions lost: {lost}, {} \
         copies of {total} records",
        messages.len()
    );
}
