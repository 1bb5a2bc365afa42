//! `translate-offsets --to-kafka`: for a rollback, a Kafka consumer group
//! continues in Kafka where a RocketMQ consumer group stopped, over the
//! `rocketmq_to_kafka` mappings. It reads the RocketMQ group's consumer
//! offset of each queue (from the brokers, without joining the group),
//! finds in each Kafka partition the first reverse copy of a message the
//! group has not consumed (by the `ROCKETMQ_` provenance headers), and
//! can write that position as the Kafka group's committed offset.
//!
//! Nothing is skipped: every record before the chosen offset is a copy of
//! a consumed message or no reverse copy at all (a record written to Kafka
//! directly). A partition that mixes queues (`key_hash`, or more queues
//! than partitions) can hold copies of consumed messages after the first
//! unconsumed one: they are read again and counted as `redelivered`;
//! records that are no reverse copy after it are read too (`not_copies`).
//! With `ordering: partition` and at least as many partitions as queues,
//! the translation is exact.
//!
//! The read of a partition starts at its first record whose timestamp is
//! at or after the oldest unconsumed message's store time less
//! [`SLACK_MS`]: a copy's timestamp is its message's born time (or, on a
//! `LogAppendTime` topic, when Kafka stored the copy), and Kafka's
//! offsets-for-times lookup puts every earlier record before that time.
//! So the read covers the time since the RocketMQ group's oldest
//! unconsumed message, never a long retention whole.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use rocketmq_model::message::MessageQueue;

use super::{Boundary, Column, SLACK_MS, Seen, check_rocketmq_group, render_table};
use crate::checkpoint::PartitionId;
use crate::config::{BridgeConfig, Direction, MappingConfig};
use crate::count_match::kafka_scan::topic_partitions;
use crate::count_match::{Progress, VerifyError};
use crate::kafka_sink::read_back::scan_since;
use crate::kafka_source::{client_config, commit_group_offsets};
use crate::rocketmq_reader::{TopicReader, with_reader};
use crate::rocketmq_sink::with_admin;

/// How long the RocketMQ admin calls and the Kafka commit may take.
const CALL_DEADLINE: Duration = Duration::from_secs(30);
/// How long the read of one Kafka partition may take.
const PARTITION_DEADLINE: Duration = Duration::from_secs(600);

/// One RocketMQ queue as the translation found it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct QueuePosition {
    pub topic: String,
    pub broker: String,
    pub queue: i32,
    /// The RocketMQ group's consumer offset: its first unconsumed message.
    /// `None`: the group never committed this queue (nothing consumed).
    pub committed: Option<i64>,
    /// One past the queue's last message when translated.
    pub end: i64,
    /// The reverse copy's own group's offset (copied up to here), if any.
    pub copied: Option<i64>,
}

/// One Kafka partition's translated offset.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PartitionOffset {
    /// The reverse mappings writing this topic, comma-separated.
    pub mapping: String,
    pub topic: String,
    pub partition: i32,
    /// The Kafka committed offset: the first copy of a message the
    /// RocketMQ group has not consumed, or `end`.
    pub offset: i64,
    /// The partition's high watermark when translated.
    pub end: i64,
    /// The message the record at `offset` is a copy of:
    /// `topic@broker#queue offset N`.
    pub next: Option<String>,
    /// Copies of consumed messages at or after `offset`: read again.
    pub redelivered: u64,
    /// Records at or after `offset` that are no reverse copy of a mapped
    /// queue (written to Kafka directly): read too.
    pub not_copies: u64,
    /// Where the read of the partition started (see the module's bound).
    pub read_from: i64,
}

/// The whole translation for a rollback.
#[derive(Debug, Clone, serde::Serialize)]
pub struct KafkaOffsetTranslation {
    pub rocketmq_group: String,
    pub kafka_group: String,
    pub queues: Vec<QueuePosition>,
    pub partitions: Vec<PartitionOffset>,
    pub notes: Vec<String>,
}

impl KafkaOffsetTranslation {
    pub fn render(&self, applied: bool) -> String {
        const COLUMNS: [Column; 6] = [
            Column::left("MAPPING", 24),
            Column::left("TOPIC", 24),
            Column::right("PARTITION", 9),
            Column::right("OFFSET", 10),
            Column::right("END", 10),
            Column::right("REDELIVERED", 11),
        ];
        let rows: Vec<Vec<String>> = self
            .partitions
            .iter()
            .map(|p| {
                vec![
                    p.mapping.clone(),
                    p.topic.clone(),
                    p.partition.to_string(),
                    p.offset.to_string(),
                    p.end.to_string(),
                    p.redelivered.to_string(),
                    p.next
                        .clone()
                        .unwrap_or_else(|| "(end of partition)".into()),
                ]
            })
            .collect();
        render_table(
            &format!(
                "RocketMQ consumer group `{}` -> Kafka group `{}`",
                self.rocketmq_group, self.kafka_group
            ),
            &COLUMNS,
            "NEXT MESSAGE",
            &rows,
            &self.notes,
            if applied {
                "applied: the Kafka consumer group starts at these offsets"
            } else {
                "dry run: add --apply to write these offsets to the Kafka consumer group \
                 (its consumers stopped)"
            },
        )
    }
}

/// The config's `rocketmq_to_kafka` mappings, grouped by Kafka topic.
fn reverse_mappings(
    config: &BridgeConfig,
) -> Result<BTreeMap<String, Vec<&MappingConfig>>, VerifyError> {
    let mut by_topic: BTreeMap<String, Vec<&MappingConfig>> = BTreeMap::new();
    for mapping in config
        .mappings
        .iter()
        .filter(|m| m.direction == Direction::RocketmqToKafka)
    {
        by_topic
            .entry(mapping.kafka_topic.clone())
            .or_default()
            .push(mapping);
    }
    if by_topic.is_empty() {
        return Err(VerifyError(
            "the config has no `direction: rocketmq_to_kafka` mapping: --to-kafka translates over the \
             reverse copy's mappings (RocketMQ topic to Kafka topic); give the config the way back runs with"
                .to_string(),
        ));
    }
    Ok(by_topic)
}

/// Works the offsets out for every reverse mapping, reading only.
pub async fn translate(
    config: &BridgeConfig,
    kafka_group: &str,
    rocketmq_group: &str,
    progress: &Progress,
) -> Result<KafkaOffsetTranslation, VerifyError> {
    check_rocketmq_group(rocketmq_group)?;
    if kafka_group.trim().is_empty() {
        return Err(VerifyError(
            "--group is empty: give the Kafka consumer group to write".into(),
        ));
    }
    let by_topic = reverse_mappings(config)?;
    let mut translation = KafkaOffsetTranslation {
        rocketmq_group: rocketmq_group.to_string(),
        kafka_group: kafka_group.to_string(),
        queues: Vec::new(),
        partitions: Vec::new(),
        notes: Vec::new(),
    };
    let mut rocketmq_topics: Vec<String> = by_topic
        .values()
        .flatten()
        .map(|m| m.rocketmq_topic.clone())
        .collect();
    rocketmq_topics.sort();
    rocketmq_topics.dedup();
    progress.phase(format!(
        "reading RocketMQ group {rocketmq_group}'s consumer offsets"
    ));
    let committed = read_group_offsets(config, rocketmq_group, &rocketmq_topics).await;
    let committed = match committed {
        Ok(found) => found,
        Err(error) => {
            progress.finish();
            return Err(error);
        }
    };
    // The oldest unconsumed message's store time, per RocketMQ topic.
    let mut committed = committed;
    let oldest = oldest_unconsumed(config, &mut committed, &mut translation).await;
    let oldest = match oldest {
        Ok(found) => found,
        Err(error) => {
            progress.finish();
            return Err(error);
        }
    };
    let consumed_before: HashMap<PartitionId, Option<i64>> = committed
        .iter()
        .map(|(queue, position)| (queue.clone(), position.committed))
        .collect();
    let kafka = config.kafka.clone();
    let result = tokio::task::block_in_place(|| {
        for (kafka_topic, mappings) in &by_topic {
            progress.phase(format!("reading {kafka_topic} for the unconsumed copies"));
            let since = mappings
                .iter()
                .filter_map(|m| oldest.get(&m.rocketmq_topic).copied().flatten())
                .min()
                .map(|ms| ms.saturating_sub(SLACK_MS).max(0));
            let label = mappings
                .iter()
                .map(|m| m.label())
                .collect::<Vec<_>>()
                .join(", ");
            for partition in topic_partitions(&kafka, kafka_topic)? {
                let found = translate_partition(
                    &kafka,
                    kafka_topic,
                    partition,
                    since,
                    &consumed_before,
                    progress,
                )?;
                translation.partitions.push(PartitionOffset {
                    mapping: label.clone(),
                    ..found
                });
            }
        }
        Ok::<_, VerifyError>(())
    });
    progress.finish();
    result?;
    translation.queues = committed.into_values().collect();
    Ok(translation)
}

/// The group's consumer offset and the reverse copy's progress on every
/// queue of `topics`, by queue.
async fn read_group_offsets(
    config: &BridgeConfig,
    group: &str,
    topics: &[String],
) -> Result<BTreeMap<PartitionId, QueuePosition>, VerifyError> {
    let copier = config.rocketmq.consumer_group.as_str();
    with_admin(&config.rocketmq, CALL_DEADLINE, async |admin| {
        let mut found = BTreeMap::new();
        for topic in topics {
            let queues = admin.topic_queues(topic).await?;
            let committed = admin.consumer_offsets(group, &queues).await?;
            let copied = admin.consumer_offsets(copier, &queues).await?;
            for (((queue, _), committed), copied) in queues.iter().zip(committed).zip(copied) {
                let position = QueuePosition {
                    topic: topic.clone(),
                    broker: queue.broker_name().to_string(),
                    queue: queue.queue_id(),
                    committed,
                    end: 0,
                    copied,
                };
                found.insert(lane_of(queue), position);
            }
        }
        Ok(found)
    })
    .await
    .map_err(|e| VerifyError(e.to_string()))
}

fn lane_of(queue: &MessageQueue) -> PartitionId {
    PartitionId::queue(queue.topic_str(), queue.broker_name(), queue.queue_id())
}

/// Sets each queue's end; returns the store time of the oldest message the
/// group has not consumed, per RocketMQ topic (`None`: everything consumed).
/// Notes the queues never committed and those the reverse copy is behind on.
async fn oldest_unconsumed(
    config: &BridgeConfig,
    committed: &mut BTreeMap<PartitionId, QueuePosition>,
    translation: &mut KafkaOffsetTranslation,
) -> Result<HashMap<String, Option<i64>>, VerifyError> {
    let group = format!("{}-translate", config.rocketmq.producer_group);
    let mut oldest: HashMap<String, Option<i64>> = HashMap::new();
    with_reader(&config.rocketmq, &group, async |reader: &TopicReader| {
        // The reader learns each topic's route by listing its queues.
        let mut queues = HashMap::new();
        for position in committed.values() {
            if !oldest.contains_key(&position.topic) {
                for queue in reader.queues(&position.topic).await? {
                    queues.insert(lane_of(&queue), queue);
                }
                oldest.insert(position.topic.clone(), None);
            }
        }
        for (lane, position) in committed.iter_mut() {
            let Some(queue) = queues.get(lane) else {
                return Err(VerifyError(format!(
                    "RocketMQ topic `{}` has no queue {lane} any more: run the translation again",
                    position.topic
                )));
            };
            let (min, max) = reader.offsets(queue).await?;
            position.end = max;
            let first = position.committed.unwrap_or(min).max(min);
            let entry = oldest.entry(position.topic.clone()).or_default();
            if first >= max {
                continue;
            }
            let mut stored = None;
            reader
                .scan_queue(queue, first, first + 1, |message| {
                    stored = Some(message.store_timestamp);
                })
                .await?;
            // Unreadable (deleted meanwhile): no bound, partitions read whole.
            let stored = stored.unwrap_or(0);
            *entry = Some(entry.map_or(stored, |t: i64| t.min(stored)));
        }
        Ok::<_, VerifyError>(())
    })
    .await?;
    let group = &translation.rocketmq_group;
    let mut never = 0;
    for (lane, position) in committed.iter() {
        let end = position.end;
        if position.committed.is_none() {
            never += 1;
            translation.notes.push(format!(
                "RocketMQ group `{group}` has no consumer offset on {lane}: treated as nothing consumed"
            ));
        }
        match position.copied {
            Some(copied) if copied >= end => {}
            copied => translation.notes.push(format!(
                "the reverse copy (group `{}`) has committed {} of {end} messages of {lane}: let it catch up \
                 (stop producers on RocketMQ first), or copies of consumed messages that arrive later are read again",
                config.rocketmq.consumer_group,
                copied.unwrap_or(0)
            )),
        }
    }
    if never > 0 && never == committed.len() {
        translation.notes.push(format!(
            "RocketMQ group `{group}` has no consumer offset on any queue: check --rocketmq-group"
        ));
    }
    Ok(oldest)
}

/// The first copy in `kafka_topic/partition` of a message not consumed.
fn translate_partition(
    kafka: &crate::config::KafkaConfig,
    kafka_topic: &str,
    partition: i32,
    since_ms: Option<i64>,
    consumed_before: &HashMap<PartitionId, Option<i64>>,
    progress: &Progress,
) -> Result<PartitionOffset, VerifyError> {
    let mut boundary = Boundary::default();
    let range = scan_since(
        &client_config(kafka),
        kafka_topic,
        partition,
        since_ms,
        PARTITION_DEADLINE,
        |offset, provenance| {
            progress.add(1);
            let seen = match provenance {
                Some((queue, queue_offset)) => match consumed_before.get(&queue) {
                    Some(Some(committed)) if queue_offset < *committed => Seen::Consumed,
                    Some(_) => Seen::Unconsumed(format!("{queue} offset {queue_offset}")),
                    None => Seen::Other,
                },
                None => Seen::Other,
            };
            boundary.see(offset, seen);
        },
    )
    .map_err(|cause| {
        VerifyError(format!(
            "Kafka at {}: {cause}; check kafka.bootstrap_servers and that topic `{kafka_topic}` exists",
            kafka.bootstrap_servers
        ))
    })?;
    let (offset, next) = match boundary.first {
        Some((offset, next)) => (offset, Some(next)),
        None => (range.high, None),
    };
    Ok(PartitionOffset {
        mapping: String::new(),
        topic: kafka_topic.to_string(),
        partition,
        offset,
        end: range.high,
        next,
        redelivered: boundary.redelivered,
        not_copies: boundary.others,
        read_from: range.start,
    })
}

/// Writes the translated offsets as the Kafka group's committed offsets.
/// Kafka refuses while the group has members: the error says so.
pub async fn apply(
    config: &BridgeConfig,
    translation: &KafkaOffsetTranslation,
) -> Result<(), VerifyError> {
    let offsets: Vec<(String, i32, i64)> = translation
        .partitions
        .iter()
        .map(|p| (p.topic.clone(), p.partition, p.offset))
        .collect();
    let group = translation.kafka_group.as_str();
    tokio::task::block_in_place(|| {
        commit_group_offsets(&config.kafka, group, &offsets, CALL_DEADLINE)
    })
    .map_err(|e| VerifyError(e.to_string()))
}
