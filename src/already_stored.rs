//! Exactly-once restarts: which records of a newly owned partition are
//! already in RocketMQ, so the bridge does not send them twice.
//!
//! A previous owner (this process before a crash, or another instance) may
//! have stored records past the committed offset before it stopped. Every
//! copy carries its provenance, and each queue is written in order by one
//! sender, so the copies of one partition appear in a queue in offset order.
//! Reading a queue backwards from its end until a copy from before the
//! committed offset shows up therefore finds every copy the commit does not
//! cover. The copies read first say how far back that is (their Kafka
//! offsets against the commit), so the read jumps there rather than
//! stepping. The dispatcher acknowledges those offsets without sending them.
//!
//! This holds only while the bridge is the only writer of its target topics;
//! `docs/reliability.md` says what happens otherwise.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use rocketmq_model::common::message::message_ext::MessageExt;
use rocketmq_model::message::MessageQueue;

use crate::checkpoint::PartitionId;
use crate::mapping::{KAFKA_OFFSET, KAFKA_PARTITION, KAFKA_TOPIC};
use crate::rocketmq_reader::{ReadError, TopicReader};

/// Messages read in the first step back from a queue's end: one pull,
/// enough to see how far each partition's copies are past its commit.
const FIRST_STEP: i64 = 32;
/// Each further step reads as far back as the copies seen say the commits
/// are, plus this; where they say nothing, it doubles, up to [`MAX_STEP`].
const STEP_MARGIN: i64 = 32;
const MAX_STEP: i64 = 16 * 1024;

/// A set of offsets kept as sorted, disjoint, inclusive ranges: what a
/// crash leaves behind is mostly runs of consecutive offsets.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OffsetRanges(Vec<(i64, i64)>);

impl OffsetRanges {
    pub fn from_offsets(mut offsets: Vec<i64>) -> Self {
        offsets.sort_unstable();
        let mut ranges: Vec<(i64, i64)> = Vec::new();
        for offset in offsets {
            match ranges.last_mut() {
                Some((_, end)) if offset <= *end + 1 => *end = (*end).max(offset),
                _ => ranges.push((offset, offset)),
            }
        }
        OffsetRanges(ranges)
    }

    /// The set with every offset below `end` added.
    pub fn with_all_below(mut self, end: i64) -> Self {
        if end <= 0 {
            return self;
        }
        let merged = self.0.iter().take_while(|(start, _)| *start <= end).count();
        let last = self.0[..merged]
            .iter()
            .map(|(_, last)| *last)
            .fold(end - 1, i64::max);
        self.0.splice(..merged, [(0, last)]);
        self
    }

    /// Whether `offset` is in the set. Offsets come in increasing order, so
    /// everything below `offset` is forgotten.
    pub fn take(&mut self, offset: i64) -> bool {
        let passed = self.0.iter().take_while(|(_, end)| *end < offset).count();
        self.0.drain(..passed);
        self.0.first().is_some_and(|(start, _)| *start <= offset)
    }

    /// The last offset of the run of consecutive offsets holding `offset`.
    pub fn run_end(&self, offset: i64) -> Option<i64> {
        self.0
            .iter()
            .find(|(start, end)| (*start..=*end).contains(&offset))
            .map(|(_, end)| *end)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn count(&self) -> i64 {
        self.0.iter().map(|(start, end)| end - start + 1).sum()
    }

    /// `10-19,25`, for the log line.
    pub fn describe(&self) -> String {
        let parts: Vec<String> = self
            .0
            .iter()
            .map(|(start, end)| match start == end {
                true => start.to_string(),
                false => format!("{start}-{end}"),
            })
            .collect();
        parts.join(",")
    }
}

/// The partitions whose queues were read since this process got them, and
/// what was found there.
#[derive(Debug, Default)]
pub struct AlreadyStored {
    scanned: foldhash::HashMap<PartitionId, OffsetRanges>,
}

impl AlreadyStored {
    pub fn is_scanned(&self, partition: &PartitionId) -> bool {
        self.scanned.contains_key(partition)
    }

    pub fn record(&mut self, partition: PartitionId, stored: OffsetRanges) {
        self.scanned.insert(partition, stored);
    }

    /// Whether this record's copy is already in RocketMQ.
    pub fn take(&mut self, partition: &PartitionId, offset: i64) -> bool {
        self.scanned
            .get_mut(partition)
            .is_some_and(|stored| !stored.is_empty() && stored.take(offset))
    }

    /// The last offset of the run of stored records holding `offset`.
    pub fn run_end(&self, partition: &PartitionId, offset: i64) -> Option<i64> {
        self.scanned.get(partition)?.run_end(offset)
    }

    /// Forgets every stored offset up to `last`: the partition skipped them
    /// without reading them.
    pub fn take_through(&mut self, partition: &PartitionId, last: i64) {
        if let Some(stored) = self.scanned.get_mut(partition) {
            stored.take(last + 1);
        }
    }

    /// Partitions given up: a later owner reads their queues again.
    pub fn forget(&mut self, partitions: &[PartitionId]) {
        partitions.iter().for_each(|p| {
            self.scanned.remove(p);
        });
    }
}

/// A partition to look for in a queue, and where its commit stands.
#[derive(Debug, Clone)]
pub struct Wanted {
    pub partition: PartitionId,
    /// Copies from before this offset are covered by the commit. `None`
    /// (nothing committed) means every copy in the window counts.
    pub committed: Option<i64>,
}

/// Reads `queue` backwards from its end, at most `window` of store time
/// behind its newest message, and returns the copies of `wanted` records at
/// or past their committed offsets, as (index into `wanted`, Kafka offset).
pub async fn scan_queue_tail(
    reader: &TopicReader,
    queue: &MessageQueue,
    wanted: &[Wanted],
    window: Duration,
) -> Result<Vec<(usize, i64)>, ReadError> {
    let (min, max) = reader.offsets(queue).await?;
    if max <= min || wanted.is_empty() {
        return Ok(Vec::new());
    }
    let started = std::time::Instant::now();
    let floor = window_start(reader, queue, min, max, window).await?;
    let window_ms = started.elapsed().as_millis() as u64;
    // Partitions that have not yet shown a copy from before their commit.
    let mut open: HashSet<usize> = (0..wanted.len()).collect();
    let uncommitted = wanted.iter().any(|w| w.committed.is_none());
    // Per partition: the lowest Kafka offset seen so far, and how many copies.
    let mut seen: HashMap<usize, (i64, i64)> = HashMap::new();
    let mut found = Vec::new();
    let (mut end, mut step) = (max, FIRST_STEP);
    while end > floor && (uncommitted || !open.is_empty()) {
        let start = (end - step).max(floor);
        reader
            .scan_queue_with(queue, start, end, |message| {
                let Some((topic, partition, offset)) = provenance(message) else {
                    return;
                };
                for (index, want) in wanted.iter().enumerate() {
                    if *want.partition.topic != *topic || want.partition.partition != partition {
                        continue;
                    }
                    let (low, copies) = seen.entry(index).or_insert((offset, 0));
                    *low = (*low).min(offset);
                    *copies += 1;
                    match want.committed {
                        Some(committed) if offset < committed => {
                            open.remove(&index);
                        }
                        _ => found.push((index, offset)),
                    }
                }
            })
            .await?;
        end = start;
        step = match reach_back(wanted, &open, &seen, max - end) {
            Some(reach) if !uncommitted => (reach + STEP_MARGIN).min(MAX_STEP),
            _ => (step * 2).min(MAX_STEP),
        };
    }
    tracing::debug!(queue = %queue, window_ms, took_ms = started.elapsed().as_millis() as u64, read = max - end, found = found.len(), "restart scan: queue tail read");
    Ok(found)
}

/// About how many queue offsets further back the copies from before the
/// commits of the `open` partitions are, if every one of them has shown a
/// copy in the `read` offsets behind the queue's end: a queue holds each
/// partition's copies in offset order, so the copy of `committed - 1` is
/// `lowest - committed + 1` of that partition's copies before the lowest
/// one seen, spread as densely as those seen so far (one per queue offset
/// when the queue holds that one partition).
fn reach_back(
    wanted: &[Wanted],
    open: &HashSet<usize>,
    seen: &HashMap<usize, (i64, i64)>,
    read: i64,
) -> Option<i64> {
    open.iter().try_fold(0, |reach, index| {
        let committed = wanted[*index].committed?;
        let (low, copies) = seen.get(index)?;
        let behind = (low - committed + 1).max(1);
        Some(reach.max(behind.saturating_mul(read) / copies.max(&1)))
    })
}

/// The queue offset `window` of store time before the queue's newest
/// message: older copies cannot be uncommitted leftovers of a recent owner.
async fn window_start(
    reader: &TopicReader,
    queue: &MessageQueue,
    min: i64,
    max: i64,
    window: Duration,
) -> Result<i64, ReadError> {
    let mut newest = None;
    reader
        .scan_queue_with(queue, max - 1, max, |message| {
            newest = Some(message.store_timestamp())
        })
        .await?;
    let Some(newest) = newest else {
        return Ok(min);
    };
    let since = newest.saturating_sub(i64::try_from(window.as_millis()).unwrap_or(i64::MAX));
    Ok(reader.offset_at(queue, since).await?.clamp(min, max))
}

/// A copy's Kafka topic, partition and offset, if it carries them.
fn provenance(message: &MessageExt) -> Option<(String, i32, i64)> {
    let mut topic = None;
    let mut partition = None;
    let mut offset = None;
    for (name, value) in message.properties() {
        match name.as_str() {
            KAFKA_TOPIC => topic = Some(value.to_string()),
            KAFKA_PARTITION => partition = value.as_str().parse().ok(),
            KAFKA_OFFSET => offset = value.as_str().parse().ok(),
            _ => {}
        }
    }
    Some((topic?, partition?, offset?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wanted(committed: &[Option<i64>]) -> Vec<Wanted> {
        committed
            .iter()
            .enumerate()
            .map(|(p, committed)| Wanted {
                partition: PartitionId::new("t", p as i32),
                committed: *committed,
            })
            .collect()
    }

    #[test]
    fn the_next_step_reaches_back_to_the_commit_at_the_density_seen() {
        // One partition per queue: its copies of 960..1000 in the last 40
        // offsets; the copy of 899 is 61 further back.
        let one = wanted(&[Some(900)]);
        let seen = HashMap::from([(0, (960, 40))]);
        assert_eq!(reach_back(&one, &HashSet::from([0]), &seen, 40), Some(61));
        // Four partitions interleaved: 10 copies of partition 1 in the last
        // 40 offsets, the lowest 20 past its commit: 84 offsets back.
        let four = wanted(&[Some(0), Some(100)]);
        let seen = HashMap::from([(0, (5, 10)), (1, (120, 10))]);
        assert_eq!(reach_back(&four, &HashSet::from([1]), &seen, 40), Some(84));
        // The farthest open partition decides.
        assert_eq!(
            reach_back(&four, &HashSet::from([0, 1]), &seen, 40),
            Some(84)
        );
        // A partition not seen yet, or with nothing committed, says nothing.
        let seen_one = HashMap::from([(0, (5, 10))]);
        assert_eq!(reach_back(&four, &HashSet::from([1]), &seen_one, 40), None);
        let uncommitted = wanted(&[None]);
        assert_eq!(
            reach_back(&uncommitted, &HashSet::from([0]), &seen_one, 40),
            None
        );
    }

    #[test]
    fn everything_below_a_commit_joins_the_stored_offsets() {
        let stored = OffsetRanges::from_offsets(vec![5, 6, 7, 12]);
        assert_eq!(stored.clone().with_all_below(0), stored);
        assert_eq!(stored.clone().with_all_below(3).describe(), "0-2,5-7,12");
        assert_eq!(stored.clone().with_all_below(5).describe(), "0-7,12");
        assert_eq!(stored.clone().with_all_below(6).describe(), "0-7,12");
        assert_eq!(stored.clone().with_all_below(20).describe(), "0-19");
        let mut below = stored.with_all_below(3);
        assert!(below.take(0) && below.take(2) && !below.take(3) && below.take(5));
    }

    #[test]
    fn offsets_merge_into_ranges_and_are_taken_in_order() {
        let mut ranges = OffsetRanges::from_offsets(vec![12, 10, 11, 11, 20, 21, 30]);
        assert_eq!(ranges.describe(), "10-12,20-21,30");
        assert_eq!(ranges.count(), 6);
        assert!(!ranges.take(9));
        assert!(ranges.take(10));
        assert!(ranges.take(12));
        assert!(!ranges.take(13));
        assert!(ranges.take(21));
        assert_eq!(ranges.describe(), "20-21,30");
        assert!(!ranges.take(29));
        assert!(ranges.take(30));
        assert!(!ranges.take(31));
        assert!(ranges.is_empty());
    }

    #[test]
    fn a_run_ends_at_its_last_consecutive_offset() {
        let ranges = OffsetRanges::from_offsets(vec![10, 11, 12, 20, 21, 30]);
        assert_eq!(ranges.run_end(10), Some(12));
        assert_eq!(ranges.run_end(12), Some(12));
        assert_eq!(ranges.run_end(13), None);
        assert_eq!(ranges.run_end(21), Some(21));
        assert_eq!(ranges.run_end(30), Some(30));
        let mut stored = AlreadyStored::default();
        let id = PartitionId::new("t", 0);
        stored.record(id.clone(), ranges);
        assert_eq!(stored.run_end(&id, 11), Some(12));
        stored.take_through(&id, 12);
        assert!(!stored.take(&id, 12));
        assert!(stored.take(&id, 20));
    }

    #[test]
    fn forgotten_partitions_are_scanned_again() {
        let partition = PartitionId::new("orders", 3);
        let mut stored = AlreadyStored::default();
        assert!(!stored.is_scanned(&partition));
        stored.record(partition.clone(), OffsetRanges::from_offsets(vec![5, 6]));
        assert!(stored.is_scanned(&partition));
        assert!(!stored.take(&partition, 4));
        assert!(stored.take(&partition, 5));
        stored.forget(std::slice::from_ref(&partition));
        assert!(!stored.is_scanned(&partition));
        assert!(!stored.take(&partition, 6));
    }
}
