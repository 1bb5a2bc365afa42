//! `kafka.start_from: <timestamp>`: partitions the group has never committed
//! start at the first record at or after that time. Committed offsets always
//! win, so a restart resumes where it stopped and never re-copies or skips.
//!
//! librdkafka has no "reset to a timestamp" setting, so before joining the
//! group the bridge looks the offsets up (ListOffsets by time) and commits
//! them for the partitions that have no commit yet.

use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::{Offset, TopicPartitionList};

use crate::config::KafkaConfig;

/// Commits the start offsets for `timestamp_ms` on every partition of
/// `topics` without a committed offset. Returns how many were set.
pub fn commit_start_offsets(
    kafka: &KafkaConfig,
    topics: &[String],
    timestamp_ms: i64,
    deadline: Duration,
) -> Result<usize, String> {
    let consumer: BaseConsumer = super::quick_client_config(kafka, deadline)
        .create()
        .map_err(|e| {
            format!(
                "cannot create a Kafka client for {}: {e}",
                kafka.bootstrap_servers
            )
        })?;
    let unreachable = |what: &str, e: rdkafka::error::KafkaError| {
        format!(
            "{what} at {} failed: {e}; check kafka.bootstrap_servers",
            kafka.bootstrap_servers
        )
    };
    let metadata = consumer
        .fetch_metadata(None, deadline)
        .map_err(|e| unreachable("reading topic metadata", e))?;
    let mut all = TopicPartitionList::new();
    for topic in metadata
        .topics()
        .iter()
        .filter(|t| topics.iter().any(|name| name == t.name()))
    {
        for partition in topic.partitions() {
            all.add_partition(topic.name(), partition.id());
        }
    }
    let committed = consumer
        .committed_offsets(all, deadline)
        .map_err(|e| unreachable("reading committed offsets", e))?;
    let mut wanted = TopicPartitionList::new();
    for element in committed
        .elements()
        .iter()
        .filter(|e| !matches!(e.offset(), Offset::Offset(_)))
    {
        wanted
            .add_partition_offset(
                element.topic(),
                element.partition(),
                Offset::Offset(timestamp_ms),
            )
            .map_err(|e| e.to_string())?;
    }
    if wanted.count() == 0 {
        return Ok(0);
    }
    let found = consumer
        .offsets_for_times(wanted, deadline)
        .map_err(|e| unreachable("looking up offsets by time", e))?;
    let mut start = TopicPartitionList::new();
    for element in found.elements() {
        // No record at or after the time: start at the end.
        let offset = match element.offset() {
            Offset::Offset(offset) => offset,
            _ => consumer
                .fetch_watermarks(element.topic(), element.partition(), deadline)
                .map(|(_, high)| high)
                .map_err(|e| unreachable("reading the end offset", e))?,
        };
        start
            .add_partition_offset(element.topic(), element.partition(), Offset::Offset(offset))
            .map_err(|e| e.to_string())?;
        tracing::info!(partition = %format!("{}/{}", element.topic(), element.partition()), offset, timestamp_ms, "start position set from start_from");
    }
    consumer
        .commit(&start, CommitMode::Sync)
        .map_err(|e| format!("committing start offsets for group {} failed: {e} (is another instance already running?)", kafka.group_id))?;
    Ok(start.count())
}
