//! The RocketMQ side of the count-match: reads a target topic's queues from
//! where the day range starts (searchOffset by store time, minus the slack)
//! to their current end, recovers each message's Kafka record, and tells
//! first copies from duplicates by their provenance.
//!
//! Duplicates: each queue is written in order by one sender, so within one
//! queue a partition's offsets only go up, except when a restart re-sends
//! what was in flight. A message whose Kafka offset is not above the highest
//! already seen for its partition in the same queue is therefore a re-sent
//! copy. This needs one number per queue and partition, whatever the size.

use std::collections::HashMap;

use chrono::NaiveDate;

use super::VerifyError;
use super::days::DayRange;
use super::progress::Progress;
use crate::mapping::{KAFKA_OFFSET, KAFKA_PARTITION, KAFKA_TOPIC, SourceRecord};
use crate::rocketmq_reader::{ReadMessage, TopicReader};

/// A message's place in RocketMQ.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct QueuePosition {
    pub broker: String,
    pub queue: i32,
    pub queue_offset: i64,
    pub msg_id: Option<String>,
}

impl std::fmt::Display for QueuePosition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} queue {} offset {}",
            self.broker, self.queue, self.queue_offset
        )?;
        if let Some(id) = &self.msg_id {
            write!(f, " (msgId {id})")?;
        }
        Ok(())
    }
}

/// One message, as the count-match sees it.
pub enum Seen<'a> {
    /// A copy of a Kafka record of the range; `duplicate` if an earlier copy
    /// of it was already seen.
    Copy {
        day: NaiveDate,
        record: &'a SourceRecord,
        duplicate: bool,
    },
    /// A message of the range's days that is not a copy of the mapping's
    /// Kafka topic (no provenance, another topic, unreadable).
    Foreign {
        day: NaiveDate,
        at: QueuePosition,
        why: String,
    },
}

/// Where each queue's scan started, and what that says about retention.
#[derive(Debug, Clone, Default)]
pub struct QueueScan {
    /// The queue's first retained offset was above 0 and the scan began
    /// there: older messages may have been deleted.
    pub truncated: bool,
    /// Kafka timestamp of the first message read, if any.
    pub first_timestamp: Option<i64>,
    /// Messages read from this queue.
    pub read: u64,
}

/// Reads every queue of `topic` and reports each message of the range's days.
pub async fn scan(
    reader: &TopicReader,
    topic: &str,
    kafka_topic: &str,
    range: &DayRange,
    since_store_ms: i64,
    progress: &Progress,
    mut visit: impl FnMut(Seen<'_>),
) -> Result<Vec<QueueScan>, VerifyError> {
    let queues = reader
        .queues(topic)
        .await
        .map_err(|e| VerifyError(e.to_string()))?;
    if queues.is_empty() {
        return Err(VerifyError(format!(
            "RocketMQ topic `{topic}` has no queues: check rocketmq.name_server and that the topic exists"
        )));
    }
    // Keyed by the queue's index in `queues`: queue ids repeat across brokers.
    let mut highest: HashMap<(usize, i32), i64> = HashMap::new();
    let mut scans = Vec::new();
    for (index, queue) in queues.iter().enumerate() {
        let (min, max) = reader
            .offsets(queue)
            .await
            .map_err(|e| VerifyError(e.to_string()))?;
        let start = reader
            .offset_at(queue, since_store_ms)
            .await
            .map_err(|e| VerifyError(e.to_string()))?
            .clamp(min, max.max(min));
        let mut queue_scan = QueueScan {
            truncated: start == min && min > 0,
            first_timestamp: None,
            read: 0,
        };
        let queue_id = queue.queue_id();
        reader
            .scan_queue(queue, start, max, |message| {
                progress.add(1);
                queue_scan.read += 1;
                match classify(&message, kafka_topic, index, &mut highest) {
                    Classified::Copy(record, duplicate) => {
                        let millis = record.timestamp.map(|(millis, _)| millis);
                        queue_scan.first_timestamp = queue_scan.first_timestamp.or(millis);
                        if let Some(day) = millis.and_then(|ms| range.day_of(ms)) {
                            visit(Seen::Copy {
                                day,
                                record: &record,
                                duplicate,
                            });
                        }
                    }
                    Classified::Foreign(why) => {
                        if let Some(day) = range.day_of(message.store_timestamp) {
                            let at = QueuePosition {
                                broker: queue.broker_name().to_string(),
                                queue: queue_id,
                                queue_offset: message.queue_offset,
                                msg_id: message.uniq_key.clone(),
                            };
                            visit(Seen::Foreign { day, at, why });
                        }
                    }
                }
            })
            .await
            .map_err(|e| VerifyError(e.to_string()))?;
        scans.push(queue_scan);
    }
    Ok(scans)
}

enum Classified {
    Copy(SourceRecord, bool),
    Foreign(String),
}

fn classify(
    message: &ReadMessage,
    kafka_topic: &str,
    queue_index: usize,
    highest: &mut HashMap<(usize, i32), i64>,
) -> Classified {
    let has = |name: &str| message.properties.iter().any(|(n, _)| n == name);
    if !(has(KAFKA_TOPIC) && has(KAFKA_PARTITION) && has(KAFKA_OFFSET)) {
        return Classified::Foreign("no Kafka provenance".into());
    }
    let record = match message.kafka_record() {
        Ok(record) => record,
        Err(error) => return Classified::Foreign(error.to_string()),
    };
    if record.topic != kafka_topic {
        let why = format!(
            "a copy from Kafka topic `{}`, not `{kafka_topic}`",
            record.topic
        );
        return Classified::Foreign(why);
    }
    let seen = highest.entry((queue_index, record.partition)).or_insert(-1);
    let duplicate = record.offset <= *seen;
    *seen = (*seen).max(record.offset);
    Classified::Copy(record, duplicate)
}
