//! Dual read, the consumers' side of the migration: each consumer reads
//! both systems, runs the same logic on each, and records what it did with
//! every record in its side's *ledger* (a Kafka topic). `compare-results`
//! ([`crate::results_match`]) then compares the two ledgers day by day.
//!
//! The format is `docs/dual-read.md`; [`entry`] writes and reads it,
//! [`writer`] batches entries to Kafka. Both sides name a record by its
//! Kafka coordinates: on RocketMQ they come from the provenance properties
//! the bridge stamps on every copy.

pub mod entry;
pub mod writer;

pub use entry::{Outcome, RecordId, Side, result_digest};
pub use writer::{BatchLimits, LedgerError, LedgerWriter, ledger_topic};

use crate::mapping::{KAFKA_OFFSET, KAFKA_PARTITION, KAFKA_TIMESTAMP, KAFKA_TOPIC};

/// A RocketMQ message the bridge did not copy (or whose provenance was
/// stripped): it has no Kafka identity to record.
#[derive(Debug, thiserror::Error)]
#[error(
    "the message has no valid `{property}` property: it was not copied by kafka-rocketmq-bridge, \
     so it has no Kafka identity to record"
)]
pub struct NoProvenance {
    pub property: &'static str,
}

impl RecordId {
    /// The identity of a record consumed from Kafka.
    pub fn of_kafka(message: &impl rdkafka::Message) -> Self {
        RecordId {
            topic: message.topic().to_string(),
            partition: message.partition(),
            offset: message.offset(),
            timestamp: message.timestamp().to_millis().unwrap_or(0),
        }
    }

    /// The identity of a RocketMQ copy, from its properties (for example
    /// `|name| message.property(name)` on a client's message).
    pub fn of_rocketmq<'a>(
        property: impl Fn(&str) -> Option<&'a str>,
    ) -> Result<Self, NoProvenance> {
        let text = |name: &'static str| property(name).ok_or(NoProvenance { property: name });
        let number = |name: &'static str| {
            text(name)?
                .parse::<i64>()
                .map_err(|_| NoProvenance { property: name })
        };
        Ok(RecordId {
            topic: text(KAFKA_TOPIC)?.to_string(),
            partition: i32::try_from(number(KAFKA_PARTITION)?).map_err(|_| NoProvenance {
                property: KAFKA_PARTITION,
            })?,
            offset: number(KAFKA_OFFSET)?,
            // Absent when the Kafka record had none; its Kafka side reads 0 then too.
            timestamp: match property(KAFKA_TIMESTAMP) {
                None => 0,
                Some(_) => number(KAFKA_TIMESTAMP)?,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_copy_is_named_by_its_provenance() {
        let properties = [
            (KAFKA_TOPIC, "orders"),
            (KAFKA_PARTITION, "2"),
            (KAFKA_OFFSET, "77"),
            (KAFKA_TIMESTAMP, "1764633600000"),
        ];
        let lookup = |name: &str| properties.iter().find(|(n, _)| *n == name).map(|(_, v)| *v);
        let id = RecordId::of_rocketmq(lookup).expect("provenance");
        assert_eq!(
            id,
            RecordId {
                topic: "orders".into(),
                partition: 2,
                offset: 77,
                timestamp: 1_764_633_600_000
            }
        );
        let missing = RecordId::of_rocketmq(|name| (name != KAFKA_OFFSET).then_some("1"))
            .expect_err("no offset");
        assert_eq!(missing.property, KAFKA_OFFSET);
    }
}
