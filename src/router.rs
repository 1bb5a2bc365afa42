//! Queue routing: which queue of the target topic each record goes to.
//!
//! Order comes from here, not from retries: every record of one Kafka
//! partition (`partition` mode) or of one key (`key_hash` mode) lands on one
//! queue, and each queue is written by one sender, in order.

use crate::config::Ordering;

/// Chooses queues for one mapping, given the target topic's queue count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueRouter {
    ordering: Ordering,
    queue_count: usize,
    /// In `none` mode, consecutive runs of this many offsets share a queue,
    /// so records still batch well.
    spread_run: i64,
}

impl QueueRouter {
    /// `queue_count` must be at least 1 (a topic with no queues has no route).
    pub fn new(ordering: Ordering, queue_count: usize, spread_run: usize) -> Self {
        QueueRouter {
            ordering,
            queue_count: queue_count.max(1),
            spread_run: spread_run.max(1) as i64,
        }
    }

    pub fn queue_count(&self) -> usize {
        self.queue_count
    }

    /// The queue index (into the topic's queues sorted by broker and queue id).
    pub fn route(&self, partition: i32, offset: i64, key: Option<&[u8]>) -> usize {
        match (self.ordering, key) {
            (Ordering::KeyHash, Some(key)) => {
                select_by_hash(java_hash_of_key(key), self.queue_count)
            }
            (Ordering::Partition | Ordering::KeyHash, _) => {
                partition_queue(partition, self.queue_count)
            }
            (Ordering::Unordered, _) => {
                let run = offset.max(0) / self.spread_run;
                let spread = i64::from(partition.max(0)).wrapping_add(run);
                (spread.rem_euclid(self.queue_count as i64)) as usize
            }
        }
    }
}

fn partition_queue(partition: i32, queue_count: usize) -> usize {
    (i64::from(partition).rem_euclid(queue_count as i64)) as usize
}

/// RocketMQ's `SelectMessageQueueByHash`: `abs(hash % size)`, with Java's
/// truncating remainder.
pub fn select_by_hash(hash: i32, queue_count: usize) -> usize {
    let size = i32::try_from(queue_count).unwrap_or(i32::MAX);
    (hash % size).unsigned_abs() as usize
}

/// Java's `String.hashCode()` of the key: over UTF-16 code units for a
/// UTF-8 key; a key that is not UTF-8 is hashed as ISO-8859-1 text (one
/// char per byte), which is what `new String(bytes, ISO_8859_1)` gives.
pub fn java_hash_of_key(key: &[u8]) -> i32 {
    match std::str::from_utf8(key) {
        Ok(text) => java_string_hash(text.encode_utf16()),
        Err(_) => java_string_hash(key.iter().map(|b| u16::from(*b))),
    }
}

fn java_string_hash(units: impl Iterator<Item = u16>) -> i32 {
    units.fold(0i32, |hash, unit| {
        hash.wrapping_mul(31).wrapping_add(i32::from(unit))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn java_string_hash_matches_known_values() {
        // Values printed by OpenJDK 17's String.hashCode().
        assert_eq!(java_hash_of_key(b""), 0);
        assert_eq!(java_hash_of_key(b"a"), 97);
        assert_eq!(java_hash_of_key(b"hello"), 99_162_322);
        assert_eq!(java_hash_of_key(b"customer-007"), 899_125_192);
        assert_eq!(java_hash_of_key("é€😀".as_bytes()), 16_752_006);
        // new String({0xff, 0x00, 0x41}, ISO_8859_1).hashCode()
        assert_eq!(java_hash_of_key(&[0xff, 0x00, 0x41]), 245_120);
        // Overflowing hashes wrap like Java ints.
        assert_eq!(java_hash_of_key(b"polygenelubricants"), i32::MIN);
    }

    #[test]
    fn select_by_hash_is_abs_of_java_remainder() {
        assert_eq!(select_by_hash(-7, 4), 3);
        assert_eq!(select_by_hash(7, 4), 3);
        assert_eq!(select_by_hash(i32::MIN, 8), 0);
        assert_eq!(select_by_hash(i32::MIN, 7), 2);
    }

    #[test]
    fn partition_mode_maps_p_mod_q_and_ignores_keys() {
        let router = QueueRouter::new(Ordering::Partition, 4, 64);
        assert_eq!(router.route(0, 9, Some(b"k")), 0);
        assert_eq!(router.route(5, 1, None), 1);
    }

    #[test]
    fn key_hash_mode_keeps_a_key_on_one_queue_and_falls_back_for_null_keys() {
        let router = QueueRouter::new(Ordering::KeyHash, 8, 64);
        let queue = router.route(3, 0, Some(b"customer-007"));
        // Java: abs("customer-007".hashCode() % 8) == 0
        assert_eq!(queue, 0);
        assert_eq!(router.route(7, 100, Some(b"customer-007")), queue);
        assert_eq!(router.route(6, 100, None), 6);
        assert_eq!(
            router.route(5, 100, Some(b"hello")),
            select_by_hash(99_162_322, 8)
        );
    }

    #[test]
    fn none_mode_spreads_runs_of_offsets() {
        let router = QueueRouter::new(Ordering::Unordered, 4, 10);
        let queues: Vec<usize> = (0..40)
            .step_by(10)
            .map(|o| router.route(0, o, None))
            .collect();
        assert_eq!(queues, [0, 1, 2, 3]);
        assert_eq!(router.route(0, 9, None), 0);
    }
}
