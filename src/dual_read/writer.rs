//! [`LedgerWriter`]: appends a dual-read consumer's entries to its side's
//! ledger topic in batches, without holding the consumer up for long.
//!
//! Entries are grouped per source partition, so one partition's entries
//! keep their order in one ledger partition. A batch goes out when it is
//! full or old; librdkafka sends it in the background. Call
//! [`LedgerWriter::flush`] before committing the consumer's offsets, so
//! that every committed record has its entry.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::client::ClientContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::DeliveryResult;
use rdkafka::producer::{BaseRecord, Producer, ProducerContext, ThreadedProducer};

use super::entry::{self, Outcome, RecordId, Side};

/// The default ledger topic of `group` on `side`.
pub fn ledger_topic(group: &str, side: Side) -> String {
    format!("dual-read.{group}.{side}")
}

/// The ledger could not take or deliver entries. The consumer should not
/// commit its offsets: the records are handled again and their entries
/// written again (counted as processed more than once, never lost).
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error("cannot create the ledger producer for `{topic}`: {cause}")]
    Client { topic: String, cause: String },
    #[error(
        "the ledger producer's queue for `{topic}` stayed full for {waited_ms} ms: is Kafka reachable? \
         The entries are kept; call record or flush again"
    )]
    Full { topic: String, waited_ms: u128 },
    #[error(
        "{failed} ledger record(s) to `{topic}` were not delivered (last error: {last}): \
         do not commit the consumer's offsets; handle the records again"
    )]
    Delivery {
        topic: String,
        failed: u64,
        last: String,
    },
    #[error("flushing the ledger `{topic}` timed out after {waited_ms} ms: is Kafka reachable?")]
    FlushTimeout { topic: String, waited_ms: u128 },
}

/// Delivery failures since the last flush.
#[derive(Default)]
struct Failures {
    count: u64,
    last: String,
}

struct LedgerContext {
    failures: Arc<Mutex<Failures>>,
}

impl ClientContext for LedgerContext {}

impl ProducerContext for LedgerContext {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: Self::DeliveryOpaque) {
        if let Err((error, _)) = result {
            let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
            failures.count += 1;
            failures.last = error.to_string();
        }
    }
}

/// When a batch goes out.
#[derive(Debug, Clone, Copy)]
pub struct BatchLimits {
    /// Entries per ledger record, at most.
    pub max_entries: usize,
    /// A batch older than this goes out with the next entry or flush.
    pub linger: Duration,
    /// How long `record` may wait for room in the producer's queue.
    pub max_block: Duration,
}

impl Default for BatchLimits {
    fn default() -> Self {
        BatchLimits {
            max_entries: 500,
            linger: Duration::from_millis(200),
            max_block: Duration::from_secs(1),
        }
    }
}

struct Batch {
    started: Instant,
    entries: usize,
    value: Vec<u8>,
}

/// Writes one consumer group's entries for one side.
pub struct LedgerWriter {
    producer: ThreadedProducer<LedgerContext>,
    failures: Arc<Mutex<Failures>>,
    topic: String,
    group: String,
    side: Side,
    limits: BatchLimits,
    batches: HashMap<(String, i32), Batch>,
}

impl LedgerWriter {
    /// A writer for `group` on `side`, to [`ledger_topic`]. `client` carries
    /// `bootstrap.servers` and any security settings, as for the consumer.
    pub fn new(client: &ClientConfig, group: &str, side: Side) -> Result<Self, LedgerError> {
        Self::with_topic(client, group, side, &ledger_topic(group, side))
    }

    pub fn with_topic(
        client: &ClientConfig,
        group: &str,
        side: Side,
        topic: &str,
    ) -> Result<Self, LedgerError> {
        let mut config = client.clone();
        // A retried send must not write an entry twice: that would read as
        // a record processed twice.
        config
            .set("enable.idempotence", "true")
            .set("linger.ms", "20");
        // A consumer's config may carry consumer-only settings.
        for consumer_only in ["group.id", "enable.auto.commit", "auto.offset.reset"] {
            config.remove(consumer_only);
        }
        let failures = Arc::new(Mutex::new(Failures::default()));
        let context = LedgerContext {
            failures: Arc::clone(&failures),
        };
        let producer = config
            .create_with_context(context)
            .map_err(|e| LedgerError::Client {
                topic: topic.to_string(),
                cause: e.to_string(),
            })?;
        Ok(LedgerWriter {
            producer,
            failures,
            topic: topic.to_string(),
            group: group.to_string(),
            side,
            limits: BatchLimits::default(),
            batches: HashMap::new(),
        })
    }

    pub fn with_limits(mut self, limits: BatchLimits) -> Self {
        self.limits = limits;
        self
    }

    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// Adds the entry for one handled record. Sends batches that are full
    /// or old; waits at most `max_block` for room, then returns
    /// [`LedgerError::Full`] with the entry kept.
    pub fn record(&mut self, id: &RecordId, outcome: &Outcome) -> Result<(), LedgerError> {
        let key = (id.topic.clone(), id.partition);
        let batch = self.batches.entry(key).or_insert_with(|| Batch {
            started: Instant::now(),
            entries: 0,
            value: Vec::with_capacity(4096),
        });
        entry::encode(self.side, &self.group, id, outcome, &mut batch.value);
        batch.entries += 1;
        let limits = self.limits;
        let due: Vec<(String, i32)> = self
            .batches
            .iter()
            .filter(|(_, b)| {
                b.entries >= limits.max_entries || b.started.elapsed() >= limits.linger
            })
            .map(|(key, _)| key.clone())
            .collect();
        for key in due {
            self.send(&key)?;
        }
        Ok(())
    }

    /// Sends every batch and waits up to `timeout` for Kafka to acknowledge
    /// all of them. Ok means every entry recorded so far is in the ledger.
    pub fn flush(&mut self, timeout: Duration) -> Result<(), LedgerError> {
        let keys: Vec<(String, i32)> = self.batches.keys().cloned().collect();
        for key in keys {
            self.send(&key)?;
        }
        let started = Instant::now();
        self.producer
            .flush(timeout)
            .map_err(|_| LedgerError::FlushTimeout {
                topic: self.topic.clone(),
                waited_ms: started.elapsed().as_millis(),
            })?;
        let failures =
            std::mem::take(&mut *self.failures.lock().unwrap_or_else(|p| p.into_inner()));
        if failures.count > 0 {
            return Err(LedgerError::Delivery {
                topic: self.topic.clone(),
                failed: failures.count,
                last: failures.last,
            });
        }
        Ok(())
    }

    /// Hands one batch to librdkafka, waiting up to `max_block` while its
    /// queue is full. The batch stays if it cannot go.
    fn send(&mut self, key: &(String, i32)) -> Result<(), LedgerError> {
        let Some(batch) = self.batches.get(key) else {
            return Ok(());
        };
        let record_key = format!("{}/{}", key.0, key.1);
        let started = Instant::now();
        loop {
            let record = BaseRecord::to(&self.topic)
                .key(&record_key)
                .payload(&batch.value);
            match self.producer.send(record) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _))
                    if started.elapsed() < self.limits.max_block =>
                {
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                    return Err(LedgerError::Full {
                        topic: self.topic.clone(),
                        waited_ms: started.elapsed().as_millis(),
                    });
                }
                Err((error, _)) => {
                    return Err(LedgerError::Client {
                        topic: self.topic.clone(),
                        cause: error.to_string(),
                    });
                }
            }
        }
        self.batches.remove(key);
        Ok(())
    }
}
