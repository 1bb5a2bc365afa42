//! The content digest both sides compute, so a day can be compared by count
//! and by content without holding the day in memory.
//!
//! Each record gets a 64-bit hash: the first 8 bytes (little-endian) of the
//! SHA-256 of its canonical form (see [`canonical_form`]). A day's digest is
//! the wrapping sum of its records' hashes, so it does not depend on the
//! order in which queues and partitions are read. `docs/count-match.md`
//! documents the same, for anyone who wants to recompute it.

use std::cell::RefCell;
use std::collections::BTreeMap;

use sha2::{Digest as _, Sha256};

use crate::mapping::SourceRecord;

/// Records of one partition are also tallied per block of this many
/// offsets, so a mismatch can be narrowed down to the blocks that differ
/// without keeping per-record state.
pub const BLOCK_OFFSETS: i64 = 1 << 16;

/// Key, value, headers (stable-sorted by name, so repeated names keep their
/// order) and timestamp, each length-prefixed, nulls marked.
pub fn canonical_form(record: &SourceRecord) -> Vec<u8> {
    let mut out = Vec::new();
    write_canonical(record, &mut out);
    out
}

/// The record's 64-bit content hash.
pub fn content_hash(record: &SourceRecord) -> u64 {
    // One buffer per thread, reused: `verify` hashes millions of records.
    thread_local! {
        static CANONICAL: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
    }
    let digest = CANONICAL.with_borrow_mut(|canonical| {
        canonical.clear();
        write_canonical(record, canonical);
        Sha256::digest(&canonical[..])
    });
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_le_bytes(first)
}

/// Appends [`canonical_form`] to `out`.
fn write_canonical(record: &SourceRecord, out: &mut Vec<u8>) {
    out.reserve(64 + record.value().map_or(0, <[u8]>::len) + record.key().map_or(0, <[u8]>::len));
    put_nullable(out, record.key());
    put_nullable(out, record.value());
    let mut headers: Vec<_> = record.headers().collect();
    headers.sort_by(|a, b| a.0.cmp(b.0));
    out.extend_from_slice(&(headers.len() as u32).to_le_bytes());
    for (name, value) in headers {
        put_nullable(out, Some(name.as_bytes()));
        put_nullable(out, value);
    }
    let timestamp = record.timestamp.map_or(-1, |(millis, _)| millis);
    out.extend_from_slice(&timestamp.to_le_bytes());
}

fn put_nullable(out: &mut Vec<u8>, bytes: Option<&[u8]>) {
    match bytes {
        None => out.push(0),
        Some(bytes) => {
            out.push(1);
            out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
            out.extend_from_slice(bytes);
        }
    }
}

/// Binds a content hash to its coordinates, for the per-block tallies: a
/// record moved to another offset changes its block's sum.
fn placed_hash(partition: i32, offset: i64, content: u64) -> u64 {
    splitmix(content ^ splitmix(((partition as u64) << 48) ^ offset as u64))
}

pub(crate) fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// Count and order-independent digest of a set of records.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    pub count: u64,
    pub digest: u64,
}

impl Tally {
    pub fn add(&mut self, hash: u64) {
        self.count += 1;
        self.digest = self.digest.wrapping_add(hash);
    }
}

/// Where a block of offsets lives: Kafka partition and block number (a
/// tally covers one mapping, so one Kafka topic).
pub type BlockId = (i32, i64);

/// A day's records: the whole tally and one per block of offsets.
#[derive(Debug, Clone, Default)]
pub struct DayTally {
    pub total: Tally,
    pub blocks: BTreeMap<BlockId, Tally>,
}

impl DayTally {
    pub fn add(&mut self, partition: i32, offset: i64, content: u64) {
        self.total.add(content);
        self.blocks
            .entry((partition, offset / BLOCK_OFFSETS))
            .or_default()
            .add(placed_hash(partition, offset, content));
    }

    /// Blocks whose count or digest differ between `self` and `other`, in order.
    pub fn differing_blocks(&self, other: &DayTally) -> Vec<BlockId> {
        let mut ids: Vec<&BlockId> = self.blocks.keys().chain(other.blocks.keys()).collect();
        ids.sort();
        ids.dedup();
        ids.into_iter()
            .filter(|id| self.blocks.get(*id) != other.blocks.get(*id))
            .cloned()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mapping::TimestampType;

    fn record(offset: i64, value: &str, headers: &[(&str, Option<&str>)]) -> SourceRecord {
        SourceRecord::new(
            "t",
            0,
            offset,
            Some((1_700_000_000_000, TimestampType::CreateTime)),
            Some(b"k"),
            Some(value.as_bytes()),
            headers.iter().map(|(n, v)| (*n, v.map(str::as_bytes))),
        )
    }

    #[test]
    fn the_hash_covers_content_not_coordinates() {
        let a = record(1, "v", &[("h", Some("1"))]);
        let same_elsewhere = record(99, "v", &[("h", Some("1"))]);
        assert_eq!(content_hash(&a), content_hash(&same_elsewhere));
        assert_ne!(
            content_hash(&a),
            content_hash(&record(1, "w", &[("h", Some("1"))]))
        );
        assert_ne!(
            content_hash(&a),
            content_hash(&record(1, "v", &[("h", None)]))
        );
        let no_key = a.clone().with_key(None);
        assert_ne!(content_hash(&a), content_hash(&no_key));
        let empty_key = a.clone().with_key(Some(b""));
        assert_ne!(
            content_hash(&no_key),
            content_hash(&empty_key),
            "null is not empty"
        );
        let mut later = a.clone();
        later.timestamp = Some((1_700_000_000_001, TimestampType::CreateTime));
        assert_ne!(content_hash(&a), content_hash(&later));
    }

    #[test]
    fn the_hash_is_the_documented_sha256_of_the_canonical_form() {
        let sorted = record(5, "v", &[("a", Some("1")), ("b", None)]);
        let unsorted = record(5, "v", &[("b", None), ("a", Some("1"))]);
        let mut expected = Vec::new();
        expected.extend_from_slice(&[1, 1, 0, 0, 0, b'k', 1, 1, 0, 0, 0, b'v', 2, 0, 0, 0]);
        expected.extend_from_slice(&[1, 1, 0, 0, 0, b'a', 1, 1, 0, 0, 0, b'1']);
        expected.extend_from_slice(&[1, 1, 0, 0, 0, b'b', 0]);
        expected.extend_from_slice(&1_700_000_000_000i64.to_le_bytes());
        for record in [&sorted, &unsorted] {
            assert_eq!(canonical_form(record), expected);
            let digest = Sha256::digest(&expected);
            let first = u64::from_le_bytes(digest[..8].try_into().expect("8 bytes"));
            assert_eq!(content_hash(record), first);
        }
    }

    #[test]
    fn header_order_between_names_does_not_matter_but_within_a_name_does() {
        let ab = record(1, "v", &[("a", Some("1")), ("b", Some("2"))]);
        let ba = record(1, "v", &[("b", Some("2")), ("a", Some("1"))]);
        assert_eq!(content_hash(&ab), content_hash(&ba));
        let a12 = record(1, "v", &[("a", Some("1")), ("a", Some("2"))]);
        let a21 = record(1, "v", &[("a", Some("2")), ("a", Some("1"))]);
        assert_ne!(content_hash(&a12), content_hash(&a21));
    }

    #[test]
    fn tallies_are_order_independent_and_blocks_locate_a_difference() {
        let hashes: Vec<(i64, u64)> = (0..1000).map(|o| (o * 300, o as u64 * 7919)).collect();
        let mut forward = DayTally::default();
        let mut backward = DayTally::default();
        for (offset, hash) in &hashes {
            forward.add(3, *offset, *hash);
        }
        for (offset, hash) in hashes.iter().rev() {
            backward.add(3, *offset, *hash);
        }
        assert_eq!(forward.total, backward.total);
        assert!(forward.differing_blocks(&backward).is_empty());
        let mut altered = DayTally::default();
        for (offset, hash) in &hashes {
            let hash = if *offset == 150_000 { hash + 1 } else { *hash };
            altered.add(3, *offset, hash);
        }
        assert_ne!(forward.total, altered.total);
        assert_eq!(
            forward.differing_blocks(&altered),
            vec![(3, 150_000 / BLOCK_OFFSETS)]
        );
    }
}
