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
use std::sync::Mutex;

use chrono::NaiveDate;
use rocketmq_model::common::message::message_ext::MessageExt;
use rocketmq_model::message::MessageQueue;

use super::VerifyError;
use super::days::DayRange;
use super::progress::Progress;
use crate::mapping::{self, KAFKA_OFFSET, KAFKA_PARTITION, KAFKA_TOPIC, SourceRecord};
use crate::rocketmq_reader::{TopicReader, stored_message, uniq_key};

/// A message's place in RocketMQ.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct QueuePosition {
    pub broker: String,
    pub queue: i32,
    pub queue_offset: i64,
    pub msg_id: Option<String>,
    /// When the broker stored it (ms since the epoch): ties a duplicate
    /// to the incident that caused it.
    pub store_timestamp_ms: i64,
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
        if let Some(stored) = chrono::DateTime::from_timestamp_millis(self.store_timestamp_ms) {
            write!(
                f,
                ", stored {}",
                stored.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
            )?;
        }
        Ok(())
    }
}

/// One message, as the count-match sees it.
pub enum Seen<'a> {
    /// A copy of a Kafka record of the range; `duplicate_at` says where,
    /// if an earlier copy of it was already seen.
    Copy {
        day: NaiveDate,
        record: &'a SourceRecord,
        duplicate_at: Option<QueuePosition>,
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
    visit: impl FnMut(Seen<'_>) + Send,
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
    // A broker answers a pull with at most 32 messages from memory
    // (`maxTransferCountOnMessageInMemory`), so one queue at a time is
    // bound by round trips. All queues are read at once instead. Their
    // futures share this task, so `visit` is only ever called by one; a
    // mutex rather than a RefCell keeps the whole scan `Send`, so that it can
    // run in a task of its own (the daily count-match inside `run`).
    let visit = Mutex::new(visit);
    let scans = queues.iter().map(|queue| {
        let queue_scan = QueueReading {
            reader,
            queue,
            kafka_topic,
            range,
            progress,
        };
        queue_scan.read(since_store_ms, &visit)
    });
    futures::future::try_join_all(scans).await
}

/// One queue's part of [`scan`].
struct QueueReading<'a> {
    reader: &'a TopicReader,
    queue: &'a MessageQueue,
    kafka_topic: &'a str,
    range: &'a DayRange,
    progress: &'a Progress,
}

impl QueueReading<'_> {
    async fn read(
        self,
        since_store_ms: i64,
        visit: &Mutex<impl FnMut(Seen<'_>)>,
    ) -> Result<QueueScan, VerifyError> {
        let failed = |e: crate::rocketmq_reader::ReadError| VerifyError(e.to_string());
        let (reader, queue) = (self.reader, self.queue);
        let (min, max) = reader.offsets(queue).await.map_err(failed)?;
        let start = reader
            .offset_at(queue, since_store_ms)
            .await
            .map_err(failed)?
            .clamp(min, max.max(min));
        let mut queue_scan = QueueScan {
            truncated: start == min && min > 0,
            first_timestamp: None,
            read: 0,
        };
        // Within one queue, each partition's offsets only go up but for re-sends.
        let mut highest: HashMap<i32, i64> = HashMap::new();
        reader
            .scan_queue_with(queue, start, max, |message| {
                self.progress.add(1);
                queue_scan.read += 1;
                let seen = match classify(message, self.kafka_topic, &mut highest) {
                    Classified::Copy(record, duplicate) => {
                        let millis = record.timestamp.map(|(millis, _)| millis);
                        queue_scan.first_timestamp = queue_scan.first_timestamp.or(millis);
                        let Some(day) = millis.and_then(|ms| self.range.day_of(ms)) else {
                            return;
                        };
                        let duplicate_at = duplicate.then(|| position(queue, message));
                        (visit.lock().unwrap_or_else(|p| p.into_inner()))(Seen::Copy {
                            day,
                            record: &record,
                            duplicate_at,
                        });
                        return;
                    }
                    Classified::Foreign(why) => (message.store_timestamp(), why),
                };
                let (stored, why) = seen;
                if let Some(day) = self.range.day_of(stored) {
                    let at = position(queue, message);
                    (visit.lock().unwrap_or_else(|p| p.into_inner()))(Seen::Foreign {
                        day,
                        at,
                        why,
                    });
                }
            })
            .await
            .map_err(failed)?;
        Ok(queue_scan)
    }
}

fn position(queue: &MessageQueue, message: &MessageExt) -> QueuePosition {
    QueuePosition {
        broker: queue.broker_name().to_string(),
        queue: queue.queue_id(),
        queue_offset: message.queue_offset(),
        msg_id: uniq_key(message),
        store_timestamp_ms: message.store_timestamp(),
    }
}

enum Classified {
    Copy(SourceRecord, bool),
    Foreign(String),
}

/// Straight from the client's decoded message: `verify` reads millions,
/// and a copy of each first would cost as much as the decoding.
fn classify(
    message: &MessageExt,
    kafka_topic: &str,
    highest: &mut HashMap<i32, i64>,
) -> Classified {
    let stored = stored_message(message);
    let has = |name: &str| stored.properties.iter().any(|(n, _)| *n == name);
    if !(has(KAFKA_TOPIC) && has(KAFKA_PARTITION) && has(KAFKA_OFFSET)) {
        return Classified::Foreign("no Kafka provenance".into());
    }
    let record = match mapping::unmap(&stored) {
        Ok(record) => record,
        Err(error) => return Classified::Foreign(error.to_string()),
    };
    if &*record.topic != kafka_topic {
        let why = format!(
            "a copy from Kafka topic `{}`, not `{kafka_topic}`",
            record.topic
        );
        return Classified::Foreign(why);
    }
    let seen = highest.entry(record.partition).or_insert(-1);
    let duplicate = record.offset <= *seen;
    *seen = (*seen).max(record.offset);
    Classified::Copy(record, duplicate)
}
