//! `translate-offsets` against the real brokers: after `--apply`, a RocketMQ
//! consumer in the translated group reads exactly the records the Kafka
//! group had not consumed yet: none it had, none missing.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use crate::support::*;
use kafka_rocketmq_bridge::config::RocketMqConfig;
use kafka_rocketmq_bridge::rocketmq_reader::TopicReader;
use kafka_rocketmq_bridge::rocketmq_sink::RocketMqRuntime;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

/// Commits `offsets` (next to read, by partition) for `group`, as a Kafka
/// consumer that stopped there would have.
fn commit_kafka_group(bootstrap: &str, group: &str, topic: &str, offsets: &BTreeMap<i32, i64>) {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()
        .expect("Kafka consumer");
    let mut list = TopicPartitionList::new();
    for (partition, offset) in offsets {
        list.add_partition_offset(topic, *partition, Offset::Offset(*offset))
            .expect("offset");
    }
    consumer.commit(&list, CommitMode::Sync).expect("commit");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rocketmq_group_continues_exactly_where_the_kafka_group_stopped() {
    let brokers = brokers();
    let base = unique("translate");
    let (kafka_topic, rocketmq_topic) = (format!("{base}.in"), format!("{base}_out"));
    let file = config_file(&format!(
        "{}metrics:\n  listen: \"127.0.0.1:{}\"\n",
        config_text(
            &brokers.kafka,
            &brokers.name_server,
            &[(&kafka_topic, &rocketmq_topic)]
        ),
        closed_port()
    ));
    create_topics(file.path(), 4, 4);
    let stored = produce(
        &kafka_producer(&brokers.kafka),
        &kafka_topic,
        &keyed_records("tr", 800, 40),
    )
    .await;
    let mut bridge = BridgeProcess::start(file.path());
    let reader = Reader::new(&brokers.name_server).await;
    let copied = reader
        .wait_for_count(&rocketmq_topic, 800, Duration::from_secs(120))
        .await;
    assert_eq!(copied, 800, "{}", bridge.logs());
    bridge.stop_gracefully(Duration::from_secs(30));
    reader.close().await;

    // The Kafka group stopped at different points: partway, at the start,
    // and at the end of a partition.
    let mut ends: BTreeMap<i32, i64> = BTreeMap::new();
    for record in &stored {
        let end = ends.entry(record.partition).or_default();
        *end = (*end).max(record.offset + 1);
    }
    let partitions: Vec<i32> = ends.keys().copied().collect();
    assert!(partitions.len() >= 3, "keys spread over the partitions");
    let mut committed = BTreeMap::new();
    committed.insert(partitions[0], ends[&partitions[0]] / 3);
    committed.insert(partitions[1], 0);
    committed.insert(partitions[2], ends[&partitions[2]]);
    for partition in &partitions[3..] {
        committed.insert(*partition, ends[partition] - 1);
    }
    let kafka_group = unique("consumers");
    commit_kafka_group(&brokers.kafka, &kafka_group, &kafka_topic, &committed);
    let not_consumed: BTreeSet<(i32, i64)> = stored
        .iter()
        .filter(|r| r.offset >= committed[&r.partition])
        .map(|r| (r.partition, r.offset))
        .collect();

    let rocketmq_group = unique("consumers").replace('-', "_");
    let path = file.path().to_str().expect("path");
    let dry = run(&[
        "translate-offsets",
        "--config",
        path,
        "--group",
        &kafka_group,
        "--rocketmq-group",
        &rocketmq_group,
    ]);
    assert_eq!(
        dry.status.code(),
        Some(0),
        "{}{}",
        stdout(&dry),
        stderr(&dry)
    );
    assert!(stdout(&dry).contains("dry run"), "{}", stdout(&dry));
    assert!(
        !stderr(&dry).contains("ERROR"),
        "a clean run logs no error: {}",
        stderr(&dry)
    );
    let applied = run(&[
        "translate-offsets",
        "--config",
        path,
        "--group",
        &kafka_group,
        "--rocketmq-group",
        &rocketmq_group,
        "--apply",
    ]);
    assert_eq!(
        applied.status.code(),
        Some(0),
        "{}{}",
        stdout(&applied),
        stderr(&applied)
    );

    // A consumer of the RocketMQ group resumes from the group's stored offsets.
    let runtime = RocketMqRuntime::start(1).expect("runtime");
    let config: RocketMqConfig =
        serde_yaml::from_str(&format!("name_server: \"{}\"", brokers.name_server)).expect("config");
    let consumer = TopicReader::start(runtime.client_runtime(), &config, &rocketmq_group)
        .await
        .expect("consumer");
    let mut delivered = Vec::new();
    for queue in consumer.queues(&rocketmq_topic).await.expect("queues") {
        let from = consumer.group_offset(&queue).await.expect("group offset");
        assert!(
            from >= 0,
            "the group has an offset on queue {}",
            queue.queue_id()
        );
        let (_, end) = consumer.offsets(&queue).await.expect("offsets");
        consumer
            .scan_queue(&queue, from, end, |message| {
                let record = message.kafka_record().expect("bridge message");
                delivered.push((record.partition, record.offset));
            })
            .await
            .expect("read");
    }
    consumer.shutdown().await;
    runtime.shutdown().await;
    let delivered_set: BTreeSet<(i32, i64)> = delivered.iter().copied().collect();
    assert_eq!(
        delivered.len(),
        delivered_set.len(),
        "nothing delivered twice"
    );
    assert_eq!(
        delivered_set, not_consumed,
        "exactly what the Kafka group had not consumed"
    );
}
