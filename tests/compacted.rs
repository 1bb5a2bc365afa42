//! A compacted topic on Apache Kafka: many updates to few keys, compacted
//! by the broker's log cleaner until the partitions have offset gaps, then
//! copied. The bridge copies exactly what Kafka holds (the same
//! coordinates), resumes across the gaps after a SIGTERM restart without
//! duplicates, and `verify` MATCHes.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;

use crate::support::*;

type Coordinates = (String, i32, i64);

const PARTITIONS: i32 = 2;
const KEYS: usize = 20;
const UPDATES: usize = 2000;

/// Creates `topic` compacted, with settings that let the cleaner compact
/// it seconds after a segment rolls.
async fn create_compacted_topic(bootstrap: &str, topic: &str) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("admin client");
    let new_topic = NewTopic::new(topic, PARTITIONS, TopicReplication::Fixed(1))
        .set("cleanup.policy", "compact")
        .set("segment.ms", "100")
        .set("min.cleanable.dirty.ratio", "0.01")
        .set("delete.retention.ms", "100")
        .set("min.compaction.lag.ms", "0");
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let results = admin
        .create_topics([&new_topic], &options)
        .await
        .expect("CreateTopics");
    for result in results {
        result.unwrap_or_else(|(name, code)| panic!("creating {name}: {code}"));
    }
}

/// `count` records over keys `{tag}-0..keys`, key k on partition k mod 2,
/// stamped 1 ms apart from `*clock` on (a day that is over, for `verify`).
/// Segments roll by record time: every 100 ms of it here. With more
/// records than keys, the upper half of the keys is updated in the first
/// half only, so the last updates are spread out and compaction leaves
/// gaps between them too, not only before them.
fn updates(tag: &str, count: usize, keys: usize, clock: &mut i64) -> Vec<TestRecord> {
    (0..count)
        .map(|i| {
            *clock += 1;
            let key = if count <= keys || i < count / 2 {
                i % keys
            } else {
                i % (keys / 2)
            };
            TestRecord {
                key: Some(format!("{tag}-{key}").into_bytes()),
                value: Some(format!("{tag} update {i} of key {key}").into_bytes()),
                headers: vec![("seq".to_string(), Some(i.to_string().into_bytes()))],
                partition: Some(key as i32 % PARTITIONS),
                timestamp: Some(*clock),
            }
        })
        .collect()
}

/// What every partition of `topic` holds now.
fn kafka_holds(bootstrap: &str, topic: &str) -> Vec<ReadBack> {
    (0..PARTITIONS)
        .flat_map(|p| read_partition(bootstrap, topic, p))
        .collect()
}

fn coordinates_held(topic: &str, held: &[ReadBack]) -> BTreeSet<Coordinates> {
    held.iter()
        .map(|r| (topic.to_string(), r.partition, r.offset))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compacted_topic_with_offset_gaps_is_copied_as_kafka_holds_it() {
    let brokers = brokers();
    let base = unique("compacted");
    let (kafka_topic, rocketmq_topic) = (format!("{base}.in"), format!("{base}_out"));
    create_compacted_topic(&brokers.kafka, &kafka_topic).await;
    let text = config_text(
        &brokers.kafka,
        &brokers.name_server,
        &[(&kafka_topic, &rocketmq_topic)],
    );
    let group = parse_config(&text).kafka.group_id.clone();
    let file = config_file(&format!(
        "{text}metrics:\n  listen: \"127.0.0.1:{}\"\n",
        closed_port()
    ));
    // The Kafka topic exists (left as is); this makes the RocketMQ one.
    create_topics(file.path(), PARTITIONS as u32, PARTITIONS as u32);

    let producer = kafka_producer(&brokers.kafka);
    let mut clock = yesterday_start_ms() + 3_600_000;
    let produced = produce(
        &producer,
        &kafka_topic,
        &updates("k", UPDATES, KEYS, &mut clock),
    )
    .await;
    // One record per partition a minute of record time later rolls the
    // segment holding the last updates; it stays alone in the active
    // segment, which the cleaner never touches.
    clock += 60_000;
    let rollers: Vec<TestRecord> = (0..PARTITIONS)
        .map(|p| {
            clock += 1;
            TestRecord {
                key: Some(format!("roller-{p}").into_bytes()),
                value: Some(b"roll".to_vec()),
                headers: Vec::new(),
                partition: Some(p),
                timestamp: Some(clock),
            }
        })
        .collect();
    let rollers = produce(&producer, &kafka_topic, &rollers).await;

    // Compacted: each key once (its last update), then the rollers. The
    // cleaner looks for work every log.cleaner.backoff.ms (15 s by default).
    let mut last_update: BTreeMap<Vec<u8>, (i32, i64)> = BTreeMap::new();
    for record in produced.iter().chain(&rollers) {
        last_update.insert(
            record.key().expect("keyed").to_vec(),
            (record.partition, record.offset),
        );
    }
    let survivors: BTreeSet<Coordinates> = last_update
        .values()
        .map(|(p, o)| (kafka_topic.clone(), *p, *o))
        .collect();
    let started = Instant::now();
    let held = loop {
        let held = kafka_holds(&brokers.kafka, &kafka_topic);
        if coordinates_held(&kafka_topic, &held) == survivors {
            break held;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "not compacted within 120 s: Kafka holds {} records, {} expected",
            held.len(),
            survivors.len()
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    let compaction_took = started.elapsed();
    for p in 0..PARTITIONS {
        let offsets: Vec<i64> = held
            .iter()
            .filter(|r| r.partition == p)
            .map(|r| r.offset)
            .collect();
        assert!(
            offsets[0] > 0 && offsets.windows(2).any(|w| w[1] > w[0] + 1),
            "partition {p} has no offset gap: {offsets:?}"
        );
    }
    assert_eq!(held.len(), KEYS + PARTITIONS as usize);

    let reader = Reader::new(&brokers.name_server).await;
    let mut bridge = BridgeProcess::start(file.path());
    reader
        .wait_for_all(&rocketmq_topic, held.len(), Duration::from_secs(120))
        .await;
    bridge.stop_gracefully(Duration::from_secs(30));
    let messages = reader.read(&rocketmq_topic).await;
    let copied: BTreeSet<Coordinates> = messages.iter().map(coordinates).collect();
    assert_eq!(copied, survivors, "the copy holds what Kafka holds");
    assert_eq!(assert_complete_and_ordered(&messages, held.len(), 2), 0);
    // The values too: the last update of each key.
    for message in &messages {
        let record = message.kafka_record().expect("bridge message");
        let kafka = held
            .iter()
            .find(|r| r.partition == record.partition && r.offset == record.offset)
            .expect("held");
        assert_eq!(
            (record.key(), record.value()),
            (kafka.key.as_deref(), kafka.value.as_deref())
        );
    }
    let highs = high_watermarks(&brokers.kafka, &kafka_topic, PARTITIONS);
    assert_eq!(
        group_committed(&brokers.kafka, &group, &kafka_topic, PARTITIONS),
        highs.iter().map(|h| Some(*h)).collect::<Vec<_>>()
    );

    // New keys while the bridge is down (so no copied record becomes
    // obsolete and is compacted away later: Kafka would then hold less
    // than RocketMQ, an honest MISMATCH for verify).
    clock += 60_000;
    produce(&producer, &kafka_topic, &updates("new", 40, 40, &mut clock)).await;
    let mut bridge = BridgeProcess::start(file.path());
    let held = kafka_holds(&brokers.kafka, &kafka_topic);
    let total = held.len();
    assert_eq!(total, KEYS + PARTITIONS as usize + 40);
    reader
        .wait_for_all(&rocketmq_topic, total, Duration::from_secs(120))
        .await;
    bridge.stop_gracefully(Duration::from_secs(30));
    let messages = reader.read(&rocketmq_topic).await;
    reader.close().await;
    let logs = bridge.logs();
    // Read again: the cleaner may have run meanwhile (it must not remove
    // anything: every key is unique now).
    let held = kafka_holds(&brokers.kafka, &kafka_topic);
    assert_eq!(held.len(), total);
    assert_eq!(
        messages.iter().map(coordinates).collect::<BTreeSet<_>>(),
        coordinates_held(&kafka_topic, &held),
        "log:\n{logs}"
    );
    let duplicates = assert_complete_and_ordered(&messages, total, 2);
    assert_eq!(
        duplicates,
        0,
        "trail:\n{}",
        ownership_trail(&logs).join("\n")
    );
    let highs = high_watermarks(&brokers.kafka, &kafka_topic, PARTITIONS);
    assert_eq!(
        group_committed(&brokers.kafka, &group, &kafka_topic, PARTITIONS),
        highs.iter().map(|h| Some(*h)).collect::<Vec<_>>()
    );

    assert_day_matches(file.path(), clock, total);
    eprintln!(
        "compacted: {UPDATES} updates of {KEYS} keys compacted to {} records in {compaction_took:?}",
        KEYS + PARTITIONS as usize
    );
}
