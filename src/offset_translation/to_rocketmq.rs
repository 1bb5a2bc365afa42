//! `translate-offsets` (the forward direction): at cutover, a Kafka consumer group continues in
//! RocketMQ where it stopped. For each queue of each target topic this
//! finds the first message that is a copy of a record the Kafka group has
//! not consumed yet (by its provenance), and can write that position as the
//! RocketMQ consumer group's offset.
//!
//! Nothing is skipped: every message before the chosen offset is a copy of
//! a consumed record. A queue that mixes partitions (`key_hash`, or more
//! partitions than queues) can hold consumed copies after the first
//! unconsumed one; they are delivered again and counted as `redelivered`
//! (consumers deduplicate them by msgId). With `ordering: partition` and a
//! queue per partition, the translation is exact.

use std::collections::BTreeMap;
use std::time::Duration;

use rocketmq_model::message::MessageQueue;

use super::{Boundary, Column, SLACK_MS, Seen, check_rocketmq_group, render_table};
use crate::config::{BridgeConfig, MappingConfig};
use crate::count_match::kafka_scan::{group_offsets, timestamps_at, topic_partitions};
use crate::count_match::{Coordinates, Progress, VerifyError};
use crate::rocketmq_reader::{TopicReader, with_reader};
use crate::rocketmq_sink::with_admin;

/// One queue's translated offset.
#[derive(Debug, Clone, serde::Serialize)]
pub struct QueueOffset {
    pub mapping: String,
    pub topic: String,
    pub broker: String,
    pub queue: i32,
    /// The RocketMQ consumer offset: the first message not yet consumed in Kafka.
    pub offset: i64,
    /// One past the queue's last message when translated.
    pub end: i64,
    /// The Kafka record the message at `offset` is a copy of, if any.
    pub next: Option<Coordinates>,
    /// Copies of consumed records at or after `offset`.
    pub redelivered: u64,
    #[serde(skip)]
    message_queue: Option<MessageQueue>,
}

/// The whole translation.
#[derive(Debug, Clone, serde::Serialize)]
pub struct OffsetTranslation {
    pub kafka_group: String,
    pub rocketmq_group: String,
    pub queues: Vec<QueueOffset>,
    /// Partitions the Kafka group never committed: treated as nothing consumed.
    pub notes: Vec<String>,
}

impl OffsetTranslation {
    pub fn render(&self, applied: bool) -> String {
        const COLUMNS: [Column; 6] = [
            Column::left("MAPPING", 24),
            Column::left("BROKER", 12),
            Column::right("QUEUE", 5),
            Column::right("OFFSET", 10),
            Column::right("END", 10),
            Column::right("REDELIVERED", 11),
        ];
        let rows: Vec<Vec<String>> = self
            .queues
            .iter()
            .map(|q| {
                let next = q
                    .next
                    .as_ref()
                    .map_or("(end of queue)".to_string(), ToString::to_string);
                vec![
                    q.mapping.clone(),
                    q.broker.clone(),
                    q.queue.to_string(),
                    q.offset.to_string(),
                    q.end.to_string(),
                    q.redelivered.to_string(),
                    next,
                ]
            })
            .collect();
        render_table(
            &format!(
                "Kafka group `{}` -> RocketMQ consumer group `{}`",
                self.kafka_group, self.rocketmq_group
            ),
            &COLUMNS,
            "NEXT RECORD",
            &rows,
            &self.notes,
            if applied {
                "applied: the RocketMQ consumer group starts at these offsets"
            } else {
                "dry run: add --apply to write these offsets to the RocketMQ consumer group"
            },
        )
    }
}

/// Works the offsets out for every mapping, reading only.
pub async fn translate(
    config: &BridgeConfig,
    kafka_group: &str,
    rocketmq_group: &str,
    progress: &Progress,
) -> Result<OffsetTranslation, VerifyError> {
    check_rocketmq_group(rocketmq_group)?;
    let config = crate::kafka_source::resolve_regex_mappings(config, Duration::from_secs(30))
        .await
        .map_err(VerifyError)?;
    let group = format!("{}-translate", config.rocketmq.producer_group);
    let mut translation = OffsetTranslation {
        kafka_group: kafka_group.to_string(),
        rocketmq_group: rocketmq_group.to_string(),
        queues: Vec::new(),
        notes: Vec::new(),
    };
    let read = with_reader(&config.rocketmq, &group, async |reader| {
        for mapping in &config.mappings {
            progress.phase(format!(
                "reading {} for group {kafka_group}'s position",
                mapping.rocketmq_topic
            ));
            translate_mapping(&config, mapping, reader, &mut translation, progress).await?;
        }
        Ok::<_, VerifyError>(())
    })
    .await;
    progress.finish();
    read?;
    Ok(translation)
}

async fn translate_mapping(
    config: &BridgeConfig,
    mapping: &MappingConfig,
    reader: &TopicReader,
    translation: &mut OffsetTranslation,
    progress: &Progress,
) -> Result<(), VerifyError> {
    let topic = &mapping.kafka_topic;
    let kafka = &config.kafka;
    let group = translation.kafka_group.clone();
    let (committed, first_unconsumed) = tokio::task::block_in_place(|| {
        let partitions = topic_partitions(kafka, topic)?;
        let committed = group_offsets(kafka, &group, topic, &partitions)?;
        let starts: BTreeMap<i32, i64> = partitions
            .iter()
            .map(|p| (*p, committed.get(p).copied().unwrap_or(0)))
            .collect();
        for partition in partitions.iter().filter(|p| !committed.contains_key(p)) {
            translation.notes.push(format!(
                "group `{group}` has no committed offset on {topic}/{partition}: treated as nothing consumed"
            ));
        }
        Ok::<_, VerifyError>((committed, timestamps_at(kafka, topic, &starts)?))
    })?;
    let is_consumed =
        |partition: i32, offset: i64| committed.get(&partition).is_some_and(|next| offset < *next);
    // The oldest unconsumed record bounds where its copy can be stored.
    let earliest = first_unconsumed.values().flatten().min().copied();
    for queue in reader
        .queues(&mapping.rocketmq_topic)
        .await
        .map_err(|e| VerifyError(e.to_string()))?
    {
        let found =
            translate_queue(reader, mapping, queue, earliest, &is_consumed, progress).await?;
        translation.queues.push(found);
    }
    Ok(())
}

/// The first message of `queue` that is not a consumed copy.
async fn translate_queue(
    reader: &TopicReader,
    mapping: &MappingConfig,
    queue: MessageQueue,
    earliest_unconsumed: Option<i64>,
    is_consumed: &impl Fn(i32, i64) -> bool,
    progress: &Progress,
) -> Result<QueueOffset, VerifyError> {
    let failed = |e: crate::rocketmq_reader::ReadError| VerifyError(e.to_string());
    let (min, max) = reader.offsets(&queue).await.map_err(failed)?;
    let kafka_topic = mapping.kafka_topic.as_str();
    let mut scan = Boundary::default();
    // Everything consumed: no earliest unconsumed record, start at the end.
    if let Some(earliest) = earliest_unconsumed {
        let start = reader
            .offset_at(&queue, earliest - SLACK_MS)
            .await
            .map_err(failed)?
            .clamp(min, max.max(min));
        let read = |from| {
            read_queue(
                reader,
                &queue,
                (from, max),
                kafka_topic,
                is_consumed,
                progress,
            )
        };
        scan = read(start).await?;
        // The time index is approximate: if the very first message read was
        // already unconsumed, earlier ones may be too. Read the whole queue.
        if start > min && scan.first_seen == Some(start) && scan.offset() == Some(start) {
            scan = read(min).await?;
        }
    }
    let (offset, next) = scan.first.unwrap_or((max, None));
    Ok(QueueOffset {
        mapping: mapping.label().to_string(),
        topic: mapping.rocketmq_topic.clone(),
        broker: queue.broker_name().to_string(),
        queue: queue.queue_id(),
        offset,
        end: max,
        next,
        redelivered: scan.redelivered,
        message_queue: Some(queue),
    })
}

/// One pass over a queue from `from` to `to`: a message that is not a
/// copy of a consumed record (a record not consumed, or no copy at all)
/// is the boundary.
async fn read_queue(
    reader: &TopicReader,
    queue: &MessageQueue,
    (from, to): (i64, i64),
    kafka_topic: &str,
    is_consumed: &impl Fn(i32, i64) -> bool,
    progress: &Progress,
) -> Result<Boundary<Option<Coordinates>>, VerifyError> {
    let mut scan = Boundary::default();
    reader
        .scan_queue(queue, from, to, |message| {
            progress.add(1);
            let record = message
                .kafka_record()
                .ok()
                .filter(|r| &*r.topic == kafka_topic);
            let seen = match record {
                Some(r) if is_consumed(r.partition, r.offset) => Seen::Consumed,
                record => Seen::Unconsumed(record.as_ref().map(Coordinates::of)),
            };
            scan.see(message.queue_offset, seen);
        })
        .await
        .map_err(|e| VerifyError(e.to_string()))?;
    Ok(scan)
}

/// Writes the translated offsets to the RocketMQ consumer group.
pub async fn apply(
    config: &BridgeConfig,
    translation: &OffsetTranslation,
) -> Result<(), VerifyError> {
    let offsets: Vec<(MessageQueue, i64)> = translation
        .queues
        .iter()
        .filter_map(|q| Some((q.message_queue.clone()?, q.offset)))
        .collect();
    let group = translation.rocketmq_group.as_str();
    with_admin(&config.rocketmq, Duration::from_secs(30), async |admin| {
        admin.set_consumer_offsets(group, &offsets).await
    })
    .await
    .map_err(|e| VerifyError(e.to_string()))
}
