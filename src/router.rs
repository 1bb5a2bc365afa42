//! Lane routing: which queue of the target topic each record goes to, or,
//! on the way back, which Kafka partition.
//!
//! Order comes from here, not from retries: every record of one source
//! partition or queue (`partition` mode) or of one key (`key_hash` mode)
//! lands on one lane, and each lane is written by one sender, in order. Keys
//! are hashed the way the target system's own clients do, so producers that
//! switch over keep each key on the same lane: Java's `String.hashCode` like
//! RocketMQ's `SelectMessageQueueByHash`, and murmur2 like Kafka's default
//! partitioner.

use crate::config::Ordering;

/// Chooses queues for one mapping, given the target topic's queue count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueRouter {
    ordering: Ordering,
    key_hash: KeyHash,
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
            key_hash: KeyHash::RocketMq,
            queue_count: queue_count.max(1),
            spread_run: spread_run.max(1) as i64,
        }
    }

    /// Routes to the `partitions` of a Kafka topic, keys as Kafka's default
    /// partitioner places them; the "partition" routed from is the source
    /// queue's index.
    pub fn to_kafka(ordering: Ordering, partitions: usize, spread_run: usize) -> Self {
        QueueRouter {
            key_hash: KeyHash::Kafka,
            ..QueueRouter::new(ordering, partitions, spread_run)
        }
    }

    pub fn queue_count(&self) -> usize {
        self.queue_count
    }

    /// The queue index (into the topic's queues sorted by broker and queue id).
    pub fn route(&self, partition: i32, offset: i64, key: Option<&[u8]>) -> usize {
        match (self.ordering, key) {
            (Ordering::KeyHash, Some(key)) => match self.key_hash {
                KeyHash::RocketMq => select_by_hash(java_hash_of_key(key), self.queue_count),
                KeyHash::Kafka => kafka_partition_of_key(key, self.queue_count),
            },
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

/// Whose client's key placement a router follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KeyHash {
    RocketMq,
    Kafka,
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

/// Kafka's default partitioner for a keyed record:
/// `toPositive(murmur2(key)) % partitions`.
pub fn kafka_partition_of_key(key: &[u8], partitions: usize) -> usize {
    let positive = (murmur2(key) & 0x7fff_ffff) as usize;
    positive % partitions.max(1)
}

/// Kafka's `Utils.murmur2`: MurmurHash2, 32 bits, seed `0x9747b28c`, over
/// little-endian 4-byte words.
pub fn murmur2(data: &[u8]) -> i32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    let mut hash = SEED ^ data.len() as u32;
    let mut words = data.chunks_exact(4);
    for word in &mut words {
        let mut k = u32::from_le_bytes([word[0], word[1], word[2], word[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        hash = hash.wrapping_mul(M) ^ k;
    }
    let tail = words.remainder();
    if !tail.is_empty() {
        for (index, byte) in tail.iter().enumerate().rev() {
            hash ^= u32::from(*byte) << (8 * index);
        }
        hash = hash.wrapping_mul(M);
    }
    hash ^= hash >> 13;
    hash = hash.wrapping_mul(M);
    hash ^= hash >> 15;
    hash as i32
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

    /// Kafka's own `UtilsTest.testMurmur2` vectors.
    #[test]
    fn murmur2_matches_the_java_client() {
        let cases: [(&[u8], i32); 6] = [
            (b"21", -973_932_308),
            (b"foobar", -790_332_482),
            (b"a-little-bit-long-string", -985_981_536),
            (b"a-little-bit-longer-string", -1_486_304_829),
            (
                b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
                -58_897_971,
            ),
            (b"abc", 479_470_107),
        ];
        for (key, hash) in cases {
            assert_eq!(murmur2(key), hash, "{}", String::from_utf8_lossy(key));
        }
        // (-790332482 & 0x7fffffff) % 50
        assert_eq!(kafka_partition_of_key(b"foobar", 50), 16);
    }

    #[test]
    fn to_kafka_places_keys_like_kafka_and_queues_mod_p() {
        let router = QueueRouter::to_kafka(Ordering::KeyHash, 50, 64);
        assert_eq!(router.route(3, 0, Some(b"foobar")), 16);
        assert_eq!(router.route(53, 0, None), 3);
        let by_queue = QueueRouter::to_kafka(Ordering::Partition, 4, 64);
        assert_eq!(by_queue.route(6, 0, Some(b"foobar")), 2);
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
