//! The Kafka side of the count-match: reads a mapping's topic from where
//! the day range starts to the current end of each partition, and reports
//! every record to a visitor. It never joins or commits to any group.
//!
//! offsetsForTimes only picks where to start (minus the slack, since some
//! brokers answer per batch or on broker time); each record's own timestamp
//! decides its day. Transaction markers and aborted records are never
//! delivered (read_committed, as the bridge reads), so offsets may have gaps.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::{Offset, TopicPartitionList};

use super::VerifyError;
use super::progress::Progress;
use crate::config::KafkaConfig;
use crate::kafka_source::{
    self,
    consumer::{TopicNames, source_record},
};
use crate::mapping::SourceRecord;

/// How long the scan waits for Kafka to deliver anything before giving up.
const STALL_TIMEOUT: Duration = Duration::from_secs(60);
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// Logs librdkafka's problems, except the end-of-partition events the scans
/// wait for (librdkafka reports them as errors too).
struct ScanContext;

impl ClientContext for ScanContext {
    fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        if (level as i32) <= (RDKafkaLogLevel::Warning as i32) {
            tracing::warn!(target: "librdkafka", facility, "{message}");
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        if error.rdkafka_error_code() != Some(RDKafkaErrorCode::PartitionEOF) {
            tracing::warn!(target: "librdkafka", %error, "Kafka client error: {reason}");
        }
    }
}

impl ConsumerContext for ScanContext {}

type ScanConsumer = BaseConsumer<ScanContext>;

/// Where one partition's scan started, and what that says about retention.
#[derive(Debug, Clone)]
pub struct PartitionScan {
    pub start: i64,
    /// The partition's log start was above 0 and the scan began there:
    /// records older than the first one read may have been deleted.
    pub truncated: bool,
    /// Timestamp of the first record read, if any.
    pub first_timestamp: Option<i64>,
    /// The group's committed offset (next to copy), if any.
    pub committed: Option<i64>,
    /// Records read from this partition.
    pub read: u64,
}

/// What a scan learnt about each partition, by number.
pub type PartitionScans = BTreeMap<i32, PartitionScan>;

fn failed(
    kafka: &KafkaConfig,
    topic: &str,
    what: &str,
    cause: impl std::fmt::Display,
) -> VerifyError {
    VerifyError(format!(
        "Kafka at {} (topic `{topic}`): {what}: {cause}; check kafka.bootstrap_servers and that the topic exists",
        kafka.bootstrap_servers
    ))
}

/// Reads `topic` from `since_ms` (by offsetsForTimes) to the end of every
/// partition, calling `visit` for each record in offset order per partition.
pub fn scan(
    kafka: &KafkaConfig,
    topic: &str,
    since_ms: i64,
    progress: &Progress,
    mut visit: impl FnMut(&SourceRecord),
) -> Result<PartitionScans, VerifyError> {
    let started = Instant::now();
    let consumer = scan_consumer(kafka, topic)?;
    let topic_names = TopicNames::default();
    let mut scans = start_positions(kafka, &consumer, topic, since_ms)?;
    let starts = scans
        .iter()
        .map(|(partition, scan)| (*partition, scan.start));
    assign_at(kafka, &consumer, topic, starts)?;
    tracing::debug!(
        topic,
        took_ms = started.elapsed().as_millis() as u64,
        "Kafka scan: start offsets found"
    );
    let mut first_record: Option<Instant> = None;
    let mut open: Vec<i32> = scans.keys().copied().collect();
    let mut last_progress = Instant::now();
    while !open.is_empty() {
        match consumer.poll(Duration::from_millis(200)) {
            None => {
                if last_progress.elapsed() > STALL_TIMEOUT {
                    return Err(failed(
                        kafka,
                        topic,
                        "no answer",
                        format!(
                            "partitions {open:?} delivered nothing for {}s",
                            STALL_TIMEOUT.as_secs()
                        ),
                    ));
                }
            }
            Some(Err(KafkaError::PartitionEOF(partition))) => {
                open.retain(|p| *p != partition);
                last_progress = Instant::now();
            }
            Some(Err(error)) => return Err(failed(kafka, topic, "reading failed", error)),
            Some(Ok(message)) => {
                last_progress = Instant::now();
                if first_record.is_none() {
                    tracing::debug!(
                        topic,
                        after_ms = started.elapsed().as_millis() as u64,
                        "Kafka scan: first record"
                    );
                    first_record = Some(last_progress);
                }
                let record = source_record(&message, &topic_names);
                if let Some(scan) = scans.get_mut(&record.partition) {
                    scan.read += 1;
                    scan.first_timestamp = scan
                        .first_timestamp
                        .or(record.timestamp.map(|(millis, _)| millis));
                }
                progress.add(1);
                visit(&record);
            }
        }
    }
    tracing::debug!(
        topic,
        took_ms = started.elapsed().as_millis() as u64,
        streaming_ms = first_record.map_or(0, |t| t.elapsed().as_millis() as u64),
        "Kafka scan: done"
    );
    Ok(scans)
}

/// A consumer that reads by assignment, never joins or commits to a
/// group, and reports reaching the end of each partition.
fn scan_consumer(kafka: &KafkaConfig, topic: &str) -> Result<ScanConsumer, VerifyError> {
    let mut config = kafka_source::streaming_consumer_config(kafka);
    config
        .set("group.id", format!("{}-verify", kafka.group_id))
        .set("enable.partition.eof", "true")
        .set("auto.offset.reset", "earliest");
    config
        .create_with_context(ScanContext)
        .map_err(|e| failed(kafka, topic, "cannot create a client", e))
}

/// Assigns `consumer` the partitions of `topic` at the given offsets.
fn assign_at(
    kafka: &KafkaConfig,
    consumer: &ScanConsumer,
    topic: &str,
    starts: impl Iterator<Item = (i32, i64)>,
) -> Result<(), VerifyError> {
    let mut assignment = TopicPartitionList::new();
    for (partition, offset) in starts {
        assignment
            .add_partition_offset(topic, partition, Offset::Offset(offset))
            .map_err(|e| failed(kafka, topic, "bad start offset", e))?;
    }
    consumer
        .assign(&assignment)
        .map_err(|e| failed(kafka, topic, "cannot assign partitions", e))
}

/// Each partition's start offset and committed offset.
fn start_positions(
    kafka: &KafkaConfig,
    consumer: &ScanConsumer,
    topic: &str,
    since_ms: i64,
) -> Result<PartitionScans, VerifyError> {
    let partitions = partition_ids(kafka, consumer, topic)?;
    let mut by_time = TopicPartitionList::new();
    for partition in &partitions {
        by_time
            .add_partition_offset(topic, *partition, Offset::Offset(since_ms.max(0)))
            .map_err(|e| failed(kafka, topic, "bad timestamp", e))?;
    }
    let found = consumer
        .offsets_for_times(by_time, CALL_TIMEOUT)
        .map_err(|e| failed(kafka, topic, "looking up offsets by time", e))?;
    let committed = committed_offsets(kafka, topic, &partitions)?;
    let mut scans = PartitionScans::new();
    for partition in partitions {
        let (low, high) = consumer
            .fetch_watermarks(topic, partition, CALL_TIMEOUT)
            .map_err(|e| failed(kafka, topic, "reading watermarks", e))?;
        let start = match found.find_partition(topic, partition).map(|e| e.offset()) {
            Some(Offset::Offset(offset)) => offset.clamp(low, high.max(low)),
            // No record at or after the time: nothing of the range here yet.
            _ => high.max(low),
        };
        scans.insert(
            partition,
            PartitionScan {
                start,
                truncated: start == low && low > 0,
                first_timestamp: None,
                committed: committed.get(&partition).copied(),
                read: 0,
            },
        );
    }
    Ok(scans)
}

/// The bridge group's committed offsets, read without joining the group.
fn committed_offsets(
    kafka: &KafkaConfig,
    topic: &str,
    partitions: &[i32],
) -> Result<BTreeMap<i32, i64>, VerifyError> {
    group_offsets(kafka, &kafka.group_id, topic, partitions)
}

/// `group`'s committed offsets on `topic`, read without joining the group.
pub fn group_offsets(
    kafka: &KafkaConfig,
    group: &str,
    topic: &str,
    partitions: &[i32],
) -> Result<BTreeMap<i32, i64>, VerifyError> {
    let mut config = kafka_source::client_config(kafka);
    config.set("group.id", group);
    let consumer: BaseConsumer = config
        .create()
        .map_err(|e| failed(kafka, topic, "cannot create a client", e))?;
    let mut list = TopicPartitionList::new();
    for partition in partitions {
        list.add_partition(topic, *partition);
    }
    let committed = consumer
        .committed_offsets(list, CALL_TIMEOUT)
        .map_err(|e| {
            failed(
                kafka,
                topic,
                &format!("reading group `{group}`'s committed offsets"),
                e,
            )
        })?;
    Ok(committed
        .elements()
        .iter()
        .filter_map(|e| match e.offset() {
            Offset::Offset(offset) => Some((e.partition(), offset)),
            _ => None,
        })
        .collect())
}

/// How far the bridge group is behind on each partition of `topic`: high
/// watermark minus committed offset (minus the log start when nothing is
/// committed).
pub fn lag(kafka: &KafkaConfig, topic: &str) -> Result<BTreeMap<i32, i64>, VerifyError> {
    let consumer: BaseConsumer = kafka_source::client_config(kafka)
        .create()
        .map_err(|e| failed(kafka, topic, "cannot create a client", e))?;
    let partitions = partition_ids(kafka, &consumer, topic)?;
    let committed = committed_offsets(kafka, topic, &partitions)?;
    let mut lags = BTreeMap::new();
    for partition in partitions {
        let (low, high) = consumer
            .fetch_watermarks(topic, partition, CALL_TIMEOUT)
            .map_err(|e| failed(kafka, topic, "reading watermarks", e))?;
        let next = committed.get(&partition).copied().unwrap_or(low);
        lags.insert(partition, (high - next).max(0));
    }
    Ok(lags)
}

/// The partition numbers of `topic`; an error if it does not exist.
fn partition_ids<C: ConsumerContext>(
    kafka: &KafkaConfig,
    consumer: &BaseConsumer<C>,
    topic: &str,
) -> Result<Vec<i32>, VerifyError> {
    let metadata = consumer
        .fetch_metadata(Some(topic), CALL_TIMEOUT)
        .map_err(|e| failed(kafka, topic, "reading metadata", e))?;
    let partitions: Vec<i32> = metadata
        .topics()
        .iter()
        .filter(|t| t.name() == topic && t.error().is_none())
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect();
    if partitions.is_empty() {
        return Err(failed(
            kafka,
            topic,
            "reading metadata",
            "the topic does not exist",
        ));
    }
    Ok(partitions)
}

/// The partitions of `topic`.
pub fn topic_partitions(kafka: &KafkaConfig, topic: &str) -> Result<Vec<i32>, VerifyError> {
    let consumer: BaseConsumer = kafka_source::client_config(kafka)
        .create()
        .map_err(|e| failed(kafka, topic, "cannot create a client", e))?;
    partition_ids(kafka, &consumer, topic)
}

/// The timestamp of the first record at or after each partition's offset in
/// `at`, `None` where the partition has nothing from there on.
pub fn timestamps_at(
    kafka: &KafkaConfig,
    topic: &str,
    at: &BTreeMap<i32, i64>,
) -> Result<BTreeMap<i32, Option<i64>>, VerifyError> {
    let consumer = scan_consumer(kafka, topic)?;
    let topic_names = TopicNames::default();
    assign_at(kafka, &consumer, topic, at.iter().map(|(p, o)| (*p, *o)))?;
    let mut found: BTreeMap<i32, Option<i64>> = BTreeMap::new();
    let started = Instant::now();
    while found.len() < at.len() {
        if started.elapsed() > STALL_TIMEOUT {
            return Err(failed(
                kafka,
                topic,
                "no answer",
                "reading one record per partition",
            ));
        }
        match consumer.poll(Duration::from_millis(200)) {
            None => {}
            Some(Err(KafkaError::PartitionEOF(partition))) => {
                found.entry(partition).or_insert(None);
            }
            Some(Err(error)) => return Err(failed(kafka, topic, "reading failed", error)),
            Some(Ok(message)) => {
                let record = source_record(&message, &topic_names);
                let millis = record.timestamp.map(|(millis, _)| millis);
                found.entry(record.partition).or_insert(millis);
            }
        }
    }
    Ok(found)
}
