//! A record mapped from a RocketMQ message, owned, as a Kafka lane sends it:
//! encoded once, however often its batch is retried.

use crate::mapping::reverse::OutgoingRecord;
use crate::sink::{Entry, Record};

/// A header's name and value.
pub type OwnedHeader = (Box<str>, Box<[u8]>);

/// Key, value, headers and timestamp of one Kafka record to produce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KafkaEntry {
    pub key: Option<Box<[u8]>>,
    pub value: Box<[u8]>,
    pub headers: Box<[OwnedHeader]>,
    pub timestamp_ms: i64,
}

/// A record on its way to a Kafka partition, with its RocketMQ coordinates.
pub type KafkaRecord = Record<KafkaEntry>;

impl KafkaEntry {
    pub fn new(record: &OutgoingRecord<'_>) -> Self {
        KafkaEntry {
            key: record.key.map(Box::from),
            value: Box::from(record.value),
            headers: record
                .headers
                .iter()
                .map(|(name, value)| (Box::from(name.as_ref()), Box::from(value.as_ref())))
                .collect(),
            timestamp_ms: record.timestamp_ms,
        }
    }
}

/// What librdkafka adds per record in its queue and per header, roughly:
/// the in-flight cap counts memory, so an estimate on the high side.
const RECORD_OVERHEAD: usize = 256;
const HEADER_OVERHEAD: usize = 48;

impl Entry for KafkaEntry {
    fn size(&self) -> usize {
        let headers: usize = self
            .headers
            .iter()
            .map(|(name, value)| name.len() + value.len())
            .sum();
        self.key.as_ref().map_or(0, |key| key.len()) + self.value.len() + headers
    }

    /// The entry itself, and librdkafka's copy of it while it is queued.
    fn footprint(&self) -> usize {
        2 * self.size() + RECORD_OVERHEAD + self.headers.len() * 2 * HEADER_OVERHEAD
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
        assert_eq!(&*entry.value, b"body");
        assert_eq!(entry.timestamp_ms, 7);
        assert!(entry.footprint() > 2 * entry.size());
    }
}
