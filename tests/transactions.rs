//! Transactional producers against Apache Kafka: committed and aborted
//! transactions interleaved, with plain records between them, on a
//! 2-partition topic. Aborted records are never copied, no transaction
//! marker becomes a message, committed records are copied exactly once in
//! order, the offsets around the markers commit and resume, and `verify`
//! counts both sides alike.
//!
//! The test must fail if the bridge reads uncommitted data. Tried once with
//! `isolation.level: read_uncommitted` added under kafka.properties, when the
//! config loader still accepted it: the bridge copied all 85 aborted records,
//! and the test failed at its first check with
//!     RocketMQ holds 85 aborted records, e.g. [("txn-6968-194063568-0.in", 0, 26), ...]
//! `verify` would not have caught that: it reads Kafka with the same
//! properties, so it would have counted them on both sides. Since then the
//! loader refuses `isolation.level` (the bridge sets read_committed itself),
//! so the same change fails the test at the bridge's start.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use kafka_rocketmq_bridge::mapping::SourceRecord;
use rdkafka::ClientConfig;
use rdkafka::producer::{FutureProducer, Producer};

use crate::support::*;

type Coordinates = (String, i32, i64);

/// Per partition, one past the highest offset among `copied`.
fn one_past_the_last<'a>(
    copied: impl Iterator<Item = &'a Coordinates>,
    partitions: i32,
) -> Vec<Option<i64>> {
    let mut last = vec![None; partitions as usize];
    for (_, partition, offset) in copied {
        let slot = &mut last[*partition as usize];
        *slot = Some(slot.map_or(offset + 1, |o: i64| o.max(offset + 1)));
    }
    last
}

/// A producer with its own transactional id, transactions initialised.
fn transactional_producer(bootstrap: &str) -> FutureProducer {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("transactional.id", unique("txn-id"))
        .set("linger.ms", "5")
        .create()
        .expect("transactional producer");
    producer
        .init_transactions(Duration::from_secs(30))
        .expect("init_transactions");
    producer
}

/// `count` records alternating over partitions 0 and 1, stamped from
/// `*clock` on (one second apart, in a day that is over, for `verify`).
fn batch(tag: &str, count: usize, clock: &mut i64) -> Vec<TestRecord> {
    (0..count)
        .map(|i| {
            *clock += 1000;
            TestRecord {
                key: Some(format!("{tag}-key-{}", i % 7).into_bytes()),
                value: Some(format!("{tag} record {i}").into_bytes()),
                headers: vec![("seq".to_string(), Some(i.to_string().into_bytes()))],
                partition: Some((i % 2) as i32),
                timestamp: Some(*clock),
            }
        })
        .collect()
}

/// Produces `records` inside a transaction of `producer` that is still open.
async fn in_transaction(
    producer: &FutureProducer,
    topic: &str,
    records: &[TestRecord],
) -> Vec<SourceRecord> {
    // `produce` waits for every delivery, so the coordinates are known
    // (and an abort cannot purge anything still queued).
    produce(producer, topic, records).await
}

fn commit(producer: &FutureProducer) {
    producer
        .commit_transaction(Duration::from_secs(30))
        .expect("commit_transaction");
}

fn abort(producer: &FutureProducer) {
    producer
        .abort_transaction(Duration::from_secs(30))
        .expect("abort_transaction");
}

fn coordinates_of(records: &[SourceRecord]) -> Vec<Coordinates> {
    records
        .iter()
        .map(|r| (r.topic.to_string(), r.partition, r.offset))
        .collect()
}

/// Copies per Kafka record.
fn copies(
    messages: &[kafka_rocketmq_bridge::rocketmq_reader::ReadMessage],
) -> BTreeMap<Coordinates, usize> {
    let mut copies = BTreeMap::new();
    for message in messages {
        *copies.entry(coordinates(message)).or_default() += 1;
    }
    copies
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aborted_transactions_are_never_copied_and_markers_commit_and_resume() {
    let brokers = brokers();
    let base = unique("txn");
    let (kafka_topic, rocketmq_topic) = (format!("{base}.in"), format!("{base}_out"));
    let text = config_text(
        &brokers.kafka,
        &brokers.name_server,
        &[(&kafka_topic, &rocketmq_topic)],
    );
    let group = parse_config(&text).kafka.group_id.clone();
    let file = config_file(&format!(
        "{text}metrics:\n  listen: \"127.0.0.1:{}\"\nbridge:\n  commit_interval: 1s\n",
        closed_port()
    ));
    create_topics(file.path(), 2, 2);

    // Two transactional producers whose transactions overlap, and a plain
    // one writing between them.
    let mut clock = yesterday_start_ms() + 3_600_000;
    let a = transactional_producer(&brokers.kafka);
    let b = transactional_producer(&brokers.kafka);
    let plain = kafka_producer(&brokers.kafka);
    let mut committed: Vec<SourceRecord> = Vec::new();
    let mut aborted: Vec<SourceRecord> = Vec::new();

    a.begin_transaction().expect("begin");
    committed.extend(in_transaction(&a, &kafka_topic, &batch("a1", 50, &mut clock)).await);
    commit(&a);
    // B opens a transaction that A's next one and plain records overtake.
    b.begin_transaction().expect("begin");
    aborted.extend(in_transaction(&b, &kafka_topic, &batch("b1", 30, &mut clock)).await);
    committed.extend(produce(&plain, &kafka_topic, &batch("p1", 20, &mut clock)).await);
    a.begin_transaction().expect("begin");
    committed.extend(in_transaction(&a, &kafka_topic, &batch("a2", 40, &mut clock)).await);
    commit(&a);
    aborted.extend(in_transaction(&b, &kafka_topic, &batch("b1", 30, &mut clock)).await);
    abort(&b);
    a.begin_transaction().expect("begin");
    aborted.extend(in_transaction(&a, &kafka_topic, &batch("a3", 25, &mut clock)).await);
    abort(&a);
    committed.extend(produce(&plain, &kafka_topic, &batch("p2", 10, &mut clock)).await);
    // The last thing in each partition is a commit marker.
    b.begin_transaction().expect("begin");
    committed.extend(in_transaction(&b, &kafka_topic, &batch("b2", 36, &mut clock)).await);
    commit(&b);
    let committed_set: BTreeSet<Coordinates> = coordinates_of(&committed).into_iter().collect();
    let aborted_set: BTreeSet<Coordinates> = coordinates_of(&aborted).into_iter().collect();
    assert_eq!(committed_set.len(), 156);
    assert_eq!(aborted_set.len(), 85);
    // Each commit or abort wrote one marker per partition it touched: the
    // offsets have gaps the records do not fill.
    let highs = high_watermarks(&brokers.kafka, &kafka_topic, 2);
    let markers = highs.iter().sum::<i64>() as usize - committed.len() - aborted.len();
    assert_eq!(markers, 2 * 5, "markers: 5 transactions over 2 partitions");

    let reader = Reader::new(&brokers.name_server).await;
    let mut bridge = BridgeProcess::start(file.path());
    reader
        .wait_for_all(&rocketmq_topic, committed.len(), Duration::from_secs(120))
        .await;
    bridge.stop_gracefully(Duration::from_secs(30));
    // Read after the stop: every copy the bridge made is in.
    let messages = reader.read(&rocketmq_topic).await;
    let first_logs = bridge.logs();
    let copied = copies(&messages);
    let copied_aborted: Vec<_> = copied.keys().filter(|c| aborted_set.contains(*c)).collect();
    assert!(
        copied_aborted.is_empty(),
        "RocketMQ holds {} aborted records, e.g. {:?}",
        copied_aborted.len(),
        copied_aborted.iter().take(3).collect::<Vec<_>>()
    );
    // Every message is a committed record: no marker, nothing invented.
    let foreign: Vec<_> = copied
        .keys()
        .filter(|c| !committed_set.contains(*c))
        .collect();
    assert!(foreign.is_empty(), "not committed records: {foreign:?}");
    let duplicates = assert_complete_and_ordered(&messages, committed.len(), 2);
    assert_eq!(duplicates, 0, "{first_logs}");
    assert_eq!(messages.len(), committed.len());
    // The group's commit is one past each partition's last copied record.
    // Each partition ends with a commit marker, which the bridge never sees
    // (librdkafka hands no control record to the application), so the
    // commit stays at the marker: one short of the high watermark. A restart
    // resumes there and finds only the marker. Checked at the end, so a
    // failure here still lets the restart and verify run.
    let mut offset_problems = Vec::new();
    let after_stop = group_committed(&brokers.kafka, &group, &kafka_topic, 2);
    let wanted_commits = one_past_the_last(copied.keys(), 2);
    let at_the_markers: Vec<_> = highs.iter().map(|h| Some(*h - 1)).collect();
    assert_eq!(
        wanted_commits, at_the_markers,
        "each partition ends with a marker"
    );
    if after_stop != wanted_commits {
        offset_problems.push(format!(
            "after the first stop: committed {after_stop:?}, wanted {wanted_commits:?} (high watermarks {highs:?})"
        ));
    }

    // One more committed transaction while the bridge is down; the restart
    // resumes from the commits and copies exactly it.
    a.begin_transaction().expect("begin");
    let later = in_transaction(&a, &kafka_topic, &batch("a4", 30, &mut clock)).await;
    commit(&a);
    let highs = high_watermarks(&brokers.kafka, &kafka_topic, 2);
    let mut bridge = BridgeProcess::start(file.path());
    let total = committed.len() + later.len();
    reader
        .wait_for_all(&rocketmq_topic, total, Duration::from_secs(120))
        .await;
    bridge.stop_gracefully(Duration::from_secs(30));
    let messages = reader.read(&rocketmq_topic).await;
    reader.close().await;
    let logs = bridge.logs();
    let copied = copies(&messages);
    let mut wanted = committed_set.clone();
    wanted.extend(coordinates_of(&later));
    assert_eq!(
        copied.keys().cloned().collect::<BTreeSet<_>>(),
        wanted,
        "exactly the committed records; log:\n{logs}"
    );
    let duplicates = assert_complete_and_ordered(&messages, total, 2);
    assert_eq!(
        duplicates,
        0,
        "after the restart; trail:\n{}",
        ownership_trail(&logs).join("\n")
    );
    let after_restart = group_committed(&brokers.kafka, &group, &kafka_topic, 2);
    let wanted_commits = one_past_the_last(copied.keys(), 2);
    if after_restart != wanted_commits {
        offset_problems.push(format!(
            "after the restart: committed {after_restart:?}, wanted {wanted_commits:?} (high watermarks {highs:?})"
        ));
    }

    // verify reads Kafka as the bridge does: the aborted records and the
    // markers count on neither side.
    assert_day_matches(file.path(), clock, total);
    assert!(
        offset_problems.is_empty(),
        "the group's commits are not one past the last copied records: {offset_problems:#?}"
    );
}
