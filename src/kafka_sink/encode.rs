//! A record mapped from a RocketMQ message, owned, as a Kafka lane sends it:
//! encoded once, however often its batch is retried.

use crate::mapping::reverse::OutgoingRecord;
use crate::sink::{Entry, Record};

/// Key, value, headers and timestamp of one Kafka record to produce, in
/// one buffer: a record is copied once per message, and a few allocations
/// per record instead of two per header is measurable at 50,000 records/s.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KafkaEntry {
    /// The key, the value, then each header's name and value, back to back.
    bytes: Box<[u8]>,
    key_len: Option<usize>,
    value_len: usize,
    /// Each header's name and value lengths, in order.
    header_lens: Box<[(usize, usize)]>,
    pub timestamp_ms: i64,
}

/// A record on its way to a Kafka partition, with its RocketMQ coordinates.
pub type KafkaRecord = Record<KafkaEntry>;

impl KafkaEntry {
    pub fn new(record: &OutgoingRecord<'_>) -> Self {
        let mut bytes = Vec::with_capacity(record.size());
        if let Some(key) = record.key {
            bytes.extend_from_slice(key);
        }
        bytes.extend_from_slice(record.value);
        let header_lens = record
            .headers
            .iter()
            .map(|(name, value)| {
                bytes.extend_from_slice(name.as_bytes());
                bytes.extend_from_slice(value);
                (name.len(), value.len())
            })
            .collect();
        KafkaEntry {
            bytes: bytes.into_boxed_slice(),
            key_len: record.key.map(<[u8]>::len),
            value_len: record.value.len(),
            header_lens,
            timestamp_ms: record.timestamp_ms,
        }
    }

    pub fn key(&self) -> Option<&[u8]> {
        self.key_len.map(|len| &self.bytes[..len])
    }

    pub fn value(&self) -> &[u8] {
        let start = self.key_len.unwrap_or(0);
        &self.bytes[start..start + self.value_len]
    }

    /// The headers' names and values, in order.
    pub fn headers(&self) -> impl ExactSizeIterator<Item = (&str, &[u8])> {
        let mut at = self.key_len.unwrap_or(0) + self.value_len;
        self.header_lens.iter().map(move |&(name_len, value_len)| {
            let name = &self.bytes[at..at + name_len];
            let value = &self.bytes[at + name_len..at + name_len + value_len];
            at += name_len + value_len;
            // The name was a `str` when it was copied in.
            (std::str::from_utf8(name).unwrap_or_default(), value)
        })
    }
}

/// What librdkafka adds per record in its queue and per header, roughly:
/// the in-flight cap counts memory, so an estimate on the high side.
const RECORD_OVERHEAD: usize = 256;
const HEADER_OVERHEAD: usize = 48;

impl Entry for KafkaEntry {
    fn size(&self) -> usize {
        self.bytes.len()
    }

    /// The entry itself, and librdkafka's copy of it while it is queued.
    fn footprint(&self) -> usize {
        2 * self.size() + RECORD_OVERHEAD + self.header_lens.len() * 2 * HEADER_OVERHEAD
    }
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;

    use super::*;

    #[test]
    fn an_entry_owns_what_the_record_borrowed_and_counts_its_bytes() {
        let value = b"body".to_vec();
        let record = OutgoingRecord {
            key: Some(b"k1"),
            value: &value,
            headers: vec![(Cow::Borrowed("ROCKETMQ_TOPIC"), Cow::Borrowed(&b"t"[..]))],
            timestamp_ms: 7,
        };
        let entry = KafkaEntry::new(&record);
        assert_eq!(entry.size(), record.size());
        assert_eq!(entry.size(), 2 + 4 + 14 + 1);
        assert_eq!(entry.key(), Some(&b"k1"[..]));
        assert_eq!(entry.value(), b"body");
        let headers: Vec<_> = entry.headers().collect();
        assert_eq!(headers, [("ROCKETMQ_TOPIC", &b"t"[..])]);
        assert_eq!(entry.timestamp_ms, 7);
        assert!(entry.footprint() > 2 * entry.size());
    }
}
