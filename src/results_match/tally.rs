//! What one side's ledger says, folded into fixed-size tallies: per day,
//! topic, partition and block of offsets, which records were handled,
//! processed, processed again, and a digest of their results. Two sides'
//! tallies then give the exact one-side-only and status counts, and the
//! blocks whose results must be compared record by record.

use std::collections::{BTreeMap, HashMap};
use std::hash::{Hash, Hasher};

use chrono::NaiveDate;

use crate::count_match::digest::splitmix;

/// Offsets per block: one bit each in the bitmaps.
pub const BLOCK_OFFSETS: i64 = 1024;
const WORDS: usize = (BLOCK_OFFSETS / 64) as usize;

/// Where a block is: day, topic, partition, block number.
pub type BlockKey = (NaiveDate, String, i32, i64);

/// One side's view of one block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockTally {
    handled: [u64; WORDS],
    processed: [u64; WORDS],
    repeated: [u64; WORDS],
    /// Sum of the placed hashes of each record's first processed result.
    results: u64,
}

impl Default for BlockTally {
    fn default() -> Self {
        BlockTally {
            handled: [0; WORDS],
            processed: [0; WORDS],
            repeated: [0; WORDS],
            results: 0,
        }
    }
}

/// The hash of a result digest bound to its offset.
fn placed(offset: i64, result: &str) -> u64 {
    let mut hasher = std::hash::DefaultHasher::new();
    result.hash(&mut hasher);
    splitmix(hasher.finish() ^ splitmix(offset as u64))
}

fn bit(offset: i64) -> (usize, u64) {
    let within = offset.rem_euclid(BLOCK_OFFSETS) as usize;
    (within / 64, 1u64 << (within % 64))
}

impl BlockTally {
    /// One entry for the record at `offset`: `result` is `None` if it failed.
    /// A record's first processed result is the one compared.
    fn add(&mut self, offset: i64, result: Option<&str>) {
        let (word, mask) = bit(offset);
        self.handled[word] |= mask;
        let Some(result) = result else { return };
        if self.processed[word] & mask != 0 {
            self.repeated[word] |= mask;
        } else {
            self.processed[word] |= mask;
            self.results = self.results.wrapping_add(placed(offset, result));
        }
    }
}

/// Counts over bitmaps, for one day and topic.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct SideCounts {
    /// Records with at least one entry.
    pub read: u64,
    /// Records with at least one `processed` entry.
    pub processed: u64,
    /// Records with entries, none of them `processed`.
    pub failed: u64,
    /// Records with more than one `processed` entry.
    pub processed_more_than_once: u64,
}

fn ones(words: impl Iterator<Item = u64>) -> u64 {
    words.map(|w| u64::from(w.count_ones())).sum()
}

impl SideCounts {
    fn add(&mut self, block: &BlockTally) {
        let read = ones(block.handled.iter().copied());
        let processed = ones(block.processed.iter().copied());
        self.read += read;
        self.processed += processed;
        self.failed += read - processed;
        self.processed_more_than_once += ones(block.repeated.iter().copied());
    }
}

/// How two sides' tallies of one block compare, before any record is read again.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BlockComparison {
    pub only_kafka: u64,
    pub only_rocketmq: u64,
    /// Processed on one side, failed on the other.
    pub status_differs: u64,
    pub both_failed: u64,
    pub both_processed: u64,
    /// Every processed record is processed on both sides with the same result.
    pub results_agree: bool,
}

/// Compares one block; `None` stands for a side with no entry in it.
pub fn compare_block(kafka: Option<&BlockTally>, rocketmq: Option<&BlockTally>) -> BlockComparison {
    let empty = BlockTally::default();
    let (k, r) = (kafka.unwrap_or(&empty), rocketmq.unwrap_or(&empty));
    let words = |f: &dyn Fn(usize) -> u64| ones((0..WORDS).map(f));
    BlockComparison {
        only_kafka: words(&|i| k.handled[i] & !r.handled[i]),
        only_rocketmq: words(&|i| r.handled[i] & !k.handled[i]),
        status_differs: words(&|i| k.handled[i] & r.handled[i] & (k.processed[i] ^ r.processed[i])),
        both_failed: words(&|i| k.handled[i] & r.handled[i] & !k.processed[i] & !r.processed[i]),
        both_processed: words(&|i| k.processed[i] & r.processed[i]),
        results_agree: k.processed == r.processed && k.results == r.results,
    }
}

/// One side's ledger, folded.
#[derive(Default)]
pub struct SideTally {
    pub blocks: HashMap<BlockKey, BlockTally>,
    /// Next offset after the highest one with an entry, per topic and partition.
    pub positions: BTreeMap<(String, i32), i64>,
}

impl SideTally {
    /// An entry's day, if inside the range, goes into its block; its offset
    /// moves the position whatever its day.
    pub fn add(
        &mut self,
        day: Option<NaiveDate>,
        topic: &str,
        partition: i32,
        offset: i64,
        result: Option<&str>,
    ) {
        let next = offset.saturating_add(1);
        match self.positions.get_mut(&(topic.to_string(), partition)) {
            Some(position) => *position = (*position).max(next),
            None => {
                self.positions.insert((topic.to_string(), partition), next);
            }
        }
        let Some(day) = day else { return };
        let key = (
            day,
            topic.to_string(),
            partition,
            offset.div_euclid(BLOCK_OFFSETS),
        );
        self.blocks.entry(key).or_default().add(offset, result);
    }

    /// Counts per day and topic.
    pub fn counts(&self) -> BTreeMap<(NaiveDate, String), SideCounts> {
        let mut counts: BTreeMap<(NaiveDate, String), SideCounts> = BTreeMap::new();
        for ((day, topic, _, _), block) in &self.blocks {
            counts.entry((*day, topic.clone())).or_default().add(block);
        }
        counts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 11, 30).expect("day")
    }

    fn side(entries: &[(i64, Option<&str>)]) -> SideTally {
        let mut tally = SideTally::default();
        for (offset, result) in entries {
            tally.add(Some(day()), "t", 0, *offset, *result);
        }
        tally
    }

    fn block(tally: &SideTally) -> Option<&BlockTally> {
        tally.blocks.get(&(day(), "t".to_string(), 0, 0))
    }

    #[test]
    fn the_same_results_in_any_order_agree() {
        let kafka = side(&[(1, Some("a")), (2, Some("b")), (3, None)]);
        let rocketmq = side(&[(3, None), (2, Some("b")), (1, Some("a"))]);
        let compared = compare_block(block(&kafka), block(&rocketmq));
        assert!(compared.results_agree);
        assert_eq!((compared.both_processed, compared.both_failed), (2, 1));
        assert_eq!(
            compared.only_kafka + compared.only_rocketmq + compared.status_differs,
            0
        );
    }

    #[test]
    fn a_dropped_record_and_an_altered_result_are_seen() {
        let kafka = side(&[(1, Some("a")), (2, Some("b")), (3, Some("c"))]);
        let rocketmq = side(&[(1, Some("a")), (3, Some("WRONG"))]);
        let compared = compare_block(block(&kafka), block(&rocketmq));
        assert_eq!(compared.only_kafka, 1);
        assert!(!compared.results_agree);
    }

    #[test]
    fn processing_twice_is_counted_not_compared() {
        let once = side(&[(1, Some("a")), (2, Some("b"))]);
        let twice = side(&[
            (1, Some("a")),
            (2, Some("b")),
            (1, Some("a")),
            (2, Some("other")),
        ]);
        let compared = compare_block(block(&once), block(&twice));
        assert!(
            compared.results_agree,
            "the first result is the one compared"
        );
        let counts = twice.counts();
        let counts = counts.get(&(day(), "t".to_string())).expect("counts");
        assert_eq!(
            (
                counts.read,
                counts.processed,
                counts.processed_more_than_once
            ),
            (2, 2, 2)
        );
    }

    #[test]
    fn failed_then_processed_counts_as_processed() {
        let retried = side(&[(5, None), (5, Some("x"))]);
        let counts = retried.counts();
        let counts = counts.get(&(day(), "t".to_string())).expect("counts");
        assert_eq!((counts.read, counts.processed, counts.failed), (1, 1, 0));
        let failed = side(&[(5, None)]);
        let compared = compare_block(block(&retried), block(&failed));
        assert_eq!(compared.status_differs, 1);
    }

    #[test]
    fn positions_follow_every_entry_even_outside_the_days() {
        let mut tally = SideTally::default();
        tally.add(None, "t", 1, 40, Some("a"));
        tally.add(Some(day()), "t", 1, 7, Some("b"));
        assert_eq!(tally.positions.get(&("t".to_string(), 1)), Some(&41));
        assert_eq!(tally.blocks.len(), 1);
    }
}
