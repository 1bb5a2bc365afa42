//! What a Kafka partition holds of the way back's copies, found by the
//! RocketMQ coordinates each copy carries in its headers:
//! - [`stored_since`]: after a failed send, the records of a batch stored
//!   from where the lane's copies can start to the partition's end;
//! - [`scan_partition_tail`]: at a restart, the copies of newly owned
//!   queues past their committed offsets, read backwards from the
//!   partition's end (the mirror of `already_stored::scan_queue_tail`);
//! - [`scan_since`]: for `translate-offsets --to-kafka`, every record's
//!   provenance from a record time on, to the partition's end.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

use crate::already_stored::Wanted;
use crate::checkpoint::PartitionId;
use crate::mapping::reverse;
use crate::sink::Stored;

/// Records read in the first step back from a partition's end; each
/// further step doubles, up to [`MAX_STEP`].
const FIRST_STEP: i64 = 1024;
const MAX_STEP: i64 = 16 * 1024;

/// The records of `wanted` that partition `topic/partition` holds at or
/// after offset `from`. Blocking: run it off the async workers.
pub fn stored_since(
    client: &ClientConfig,
    topic: &str,
    partition: i32,
    from: i64,
    wanted: &HashSet<(PartitionId, i64)>,
    deadline: Duration,
) -> Result<Stored, String> {
    let tail = PartitionTail::open(client, topic, partition, deadline)?;
    let mut found = HashSet::new();
    tail.scan(from.max(tail.low), tail.high, |_, coordinates| {
        if let Some(coordinates) = coordinates.filter(|c| wanted.contains(c)) {
            found.insert(coordinates);
        }
    })?;
    Ok(Stored {
        found,
        end: tail.high,
    })
}

/// Reads partition `topic/partition` backwards from its end, down to the
/// first record `window` of record time before its newest one, and
/// returns the copies of `wanted` queues at or past their committed
/// offsets, as (index into `wanted`, queue offset). Each queue's copies are
/// in queue order in the partition (one lane writes them, in order), so a
/// queue's search ends at its first copy from before its commit.
/// Blocking: run it off the async workers.
pub fn scan_partition_tail(
    client: &ClientConfig,
    topic: &str,
    partition: i32,
    wanted: &[Wanted],
    window: Duration,
    deadline: Duration,
) -> Result<Vec<(usize, i64)>, String> {
    let tail = PartitionTail::open(client, topic, partition, deadline)?;
    if tail.high <= tail.low || wanted.is_empty() {
        return Ok(Vec::new());
    }
    let floor = tail.window_start(window)?;
    let mut open: HashSet<usize> = (0..wanted.len()).collect();
    let uncommitted = wanted.iter().any(|w| w.committed.is_none());
    let mut found = Vec::new();
    let (mut end, mut step) = (tail.high, FIRST_STEP);
    while end > floor && (uncommitted || !open.is_empty()) {
        let start = (end - step).max(floor);
        tail.scan(start, end, |_, coordinates| {
            let Some((queue, offset)) = coordinates else {
                return;
            };
            for (index, want) in wanted.iter().enumerate() {
                if want.partition != queue {
                    continue;
                }
                match want.committed {
                    Some(committed) if offset < committed => {
                        open.remove(&index);
                    }
                    _ => found.push((index, offset)),
                }
            }
        })?;
        end = start;
        step = (step * 2).min(MAX_STEP);
    }
    Ok(found)
}

/// The offsets of a partition when [`scan_since`] read it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScannedRange {
    /// The log start.
    pub low: i64,
    /// The high watermark: one past the last record.
    pub high: i64,
    /// Where the read started.
    pub start: i64,
}

/// Reads partition `topic/partition` from its first record whose
/// timestamp is at or after `since_ms` (Kafka's offsets-for-times lookup:
/// every record before it has an earlier timestamp) to its end, calling
/// `visit` with each record's offset and provenance in offset order.
/// Without `since_ms`, reads nothing. Blocking: run it off the async
/// workers.
pub fn scan_since(
    client: &ClientConfig,
    topic: &str,
    partition: i32,
    since_ms: Option<i64>,
    deadline: Duration,
    visit: impl FnMut(i64, Option<(PartitionId, i64)>),
) -> Result<ScannedRange, String> {
    let tail = PartitionTail::open(client, topic, partition, deadline)?;
    let start = match since_ms {
        Some(since) if tail.high > tail.low => tail.offset_at(since)?,
        _ => tail.high,
    };
    tail.scan(start, tail.high, visit)?;
    Ok(ScannedRange {
        low: tail.low,
        high: tail.high,
        start,
    })
}

/// A reader of one partition, and its offsets when it was opened.
struct PartitionTail<'a> {
    consumer: BaseConsumer,
    topic: &'a str,
    partition: i32,
    low: i64,
    high: i64,
    give_up: Instant,
    deadline: Duration,
}

impl<'a> PartitionTail<'a> {
    fn open(
        client: &ClientConfig,
        topic: &'a str,
        partition: i32,
        deadline: Duration,
    ) -> Result<Self, String> {
        let consumer: BaseConsumer = client
            .clone()
            .set("enable.partition.eof", "false")
            .create()
            .map_err(|error| {
                format!("cannot create a reader for Kafka partition {topic}/{partition}: {error}")
            })?;
        let (low, high) = consumer
            .fetch_watermarks(topic, partition, deadline)
            .map_err(|error| {
                format!("cannot read the offsets of Kafka partition {topic}/{partition}: {error}")
            })?;
        Ok(PartitionTail {
            consumer,
            topic,
            partition,
            low,
            high,
            give_up: Instant::now() + deadline,
            deadline,
        })
    }

    fn name(&self) -> String {
        format!("Kafka partition {}/{}", self.topic, self.partition)
    }

    /// The first offset whose record time is `window` before the newest
    /// record's. Record times of copies are the messages' born times, not
    /// always increasing; the window is far wider than their disorder.
    fn window_start(&self, window: Duration) -> Result<i64, String> {
        let mut newest = None;
        self.scan_messages(self.high - 1, self.high, |message| {
            newest = message.timestamp().to_millis();
        })?;
        let Some(newest) = newest else {
            return Ok(self.low);
        };
        let since = newest.saturating_sub(i64::try_from(window.as_millis()).unwrap_or(i64::MAX));
        self.offset_at(since)
    }

    /// The first offset whose record's timestamp is at or after `since`
    /// (the partition's end if none is).
    fn offset_at(&self, since: i64) -> Result<i64, String> {
        let mut at = TopicPartitionList::new();
        at.add_partition_offset(self.topic, self.partition, Offset::Offset(since))
            .map_err(|error| format!("{}: {error}", self.name()))?;
        let found = self
            .consumer
            .offsets_for_times(at, self.deadline)
            .map_err(|error| format!("cannot look up a time in {}: {error}", self.name()))?;
        let offset = found
            .find_partition(self.topic, self.partition)
            .and_then(|element| match element.offset() {
                Offset::Offset(offset) => Some(offset),
                _ => None,
            })
            .unwrap_or(self.high);
        Ok(offset.clamp(self.low, self.high))
    }

    /// Calls `visit` with the offset and provenance of each record in
    /// `[start, end)`.
    fn scan(
        &self,
        start: i64,
        end: i64,
        mut visit: impl FnMut(i64, Option<(PartitionId, i64)>),
    ) -> Result<(), String> {
        self.scan_messages(start, end, |message| {
            let headers = message.headers();
            let pairs = headers
                .into_iter()
                .flat_map(|h| h.iter().map(|h| (h.key, h.value)));
            visit(message.offset(), reverse::provenance(pairs));
        })
    }

    fn scan_messages(
        &self,
        start: i64,
        end: i64,
        mut visit: impl FnMut(&rdkafka::message::BorrowedMessage<'_>),
    ) -> Result<(), String> {
        if start >= end {
            return Ok(());
        }
        let mut assignment = TopicPartitionList::new();
        assignment
            .add_partition_offset(self.topic, self.partition, Offset::Offset(start))
            .and_then(|()| self.consumer.assign(&assignment))
            .map_err(|error| format!("cannot read {} from offset {start}: {error}", self.name()))?;
        let mut next = start;
        while next < end {
            if Instant::now() >= self.give_up {
                return Err(format!(
                    "{}: read up to offset {next} of {end} within {}s",
                    self.name(),
                    self.deadline.as_secs()
                ));
            }
            let Some(message) = self.consumer.poll(Duration::from_millis(100)) else {
                // Transaction markers take offsets no message is read at:
                // the fetch position tells when they end the range.
                next = next.max(self.fetch_position().unwrap_or(next));
                continue;
            };
            let message =
                message.map_err(|error| format!("cannot read {}: {error}", self.name()))?;
            next = message.offset() + 1;
            if message.offset() < end {
                visit(&message);
            }
        }
        Ok(())
    }

    fn fetch_position(&self) -> Option<i64> {
        let positions = self.consumer.position().ok()?;
        match positions
            .find_partition(self.topic, self.partition)?
            .offset()
        {
            Offset::Offset(offset) => Some(offset),
            _ => None,
        }
    }
}
