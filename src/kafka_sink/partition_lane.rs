//! A Kafka partition as a lane of the shared sender (`sink::sender`): a
//! batch goes to its partition through one idempotent producer, never to
//! another partition.
//!
//! Why the idempotent producer, set up as it is:
//! - `acks=all`: a record counts as stored once every in-sync replica has
//!   it, so the RocketMQ offset behind it may be committed.
//! - `message.timeout.ms=0`: librdkafka retries a record until it is
//!   stored, in order, without duplicates. A record that timed out instead
//!   would leave a gap (the librdkafka manual, "Message timeout
//!   considerations"), and sending it again would land it after its
//!   successors.
//! - `enable.gapless.guarantee=true`: a permanent error fails every record
//!   after the failed one too, as a fatal error, so what a partition holds
//!   of a failed batch is always a prefix of it. The producer is replaced
//!   and the rest is sent again, after a read-back (`read_back`).
//!
//! A send that is not acknowledged within `send_timeout` returns an error
//! for the logs and `/readyz`, but the lane keeps the deliveries: the next
//! attempt waits for them again rather than producing the records twice.

use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer};
use tokio::time::Instant;

use super::encode::KafkaRecord;
use super::read_back;
use crate::checkpoint::PartitionId;
use crate::config::KafkaConfig;
use crate::kafka_source;
use crate::sink::{Lane, SendError, Stored};

/// Why a send to a partition failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KafkaSendFailure {
    /// Kafka has not acknowledged every record yet; librdkafka goes on
    /// retrying them, and the lane waits for them on the next attempt.
    #[error("not acknowledged within {}ms; librdkafka keeps retrying in order", .0.as_millis())]
    Unacknowledged(Duration),
    /// The producer failed for good (a gap it cannot close, or fenced); it
    /// is replaced before the next attempt.
    #[error("fatal producer error: {0}")]
    Fatal(String),
    /// Kafka (or librdkafka) refused a record for good: too large, not
    /// authorized, no such partition.
    #[error("refused: {0}")]
    Refused(String),
}

impl SendError for KafkaSendFailure {
    fn kind(&self) -> &'static str {
        match self {
            KafkaSendFailure::Unacknowledged(_) => "timeout",
            KafkaSendFailure::Fatal(_) => "fatal",
            KafkaSendFailure::Refused(_) => "refused",
        }
    }

    /// An unacknowledged batch stays with the lane, which waits for it on
    /// the next attempt instead of sending it: nothing to read back.
    fn may_have_been_stored(&self) -> bool {
        !matches!(self, KafkaSendFailure::Unacknowledged(_))
    }
}

/// The producer settings the lanes rely on; `kafka.properties` may not
/// override them (the config refuses none of these today, so they are set
/// last and win).
pub const PRODUCER_SETTINGS: [(&str, &str); 4] = [
    ("enable.idempotence", "true"),
    ("enable.gapless.guarantee", "true"),
    ("acks", "all"),
    ("message.timeout.ms", "0"),
];

/// What every partition lane of a run shares: the producer, replaced when
/// it fails for good.
#[derive(Clone)]
pub struct PartitionLanes {
    shared: Arc<Shared>,
}

struct Shared {
    client: ClientConfig,
    bootstrap: String,
    producer: Mutex<Arc<FutureProducer>>,
    send_timeout: Duration,
    /// Exactly-once on: a failed batch is read back before it is resent.
    read_back: bool,
}

impl PartitionLanes {
    pub fn new(
        kafka: &KafkaConfig,
        send_timeout: Duration,
        read_back: bool,
    ) -> Result<Self, String> {
        let client = kafka_source::client_config(kafka);
        let producer = create_producer(&client, &kafka.bootstrap_servers)?;
        Ok(PartitionLanes {
            shared: Arc::new(Shared {
                client,
                bootstrap: kafka.bootstrap_servers.clone(),
                producer: Mutex::new(Arc::new(producer)),
                send_timeout,
                read_back,
            }),
        })
    }

    pub fn lane(&self, topic: &str, partition: i32) -> PartitionLane {
        PartitionLane {
            lanes: self.clone(),
            topic: Arc::from(topic),
            partition,
            state: tokio::sync::Mutex::new(LaneState::default()),
        }
    }

    /// The producer, or a new one if it failed for good.
    fn producer(&self) -> Result<Arc<FutureProducer>, String> {
        let mut current = self
            .shared
            .producer
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some((code, reason)) = current.client().fatal_error() {
            tracing::warn!(error = %format!("{code:?}: {reason}"), "the Kafka producer failed for good; replacing it");
            *current = Arc::new(create_producer(
                &self.shared.client,
                &self.shared.bootstrap,
            )?);
        }
        Ok(Arc::clone(&current))
    }
}

fn create_producer(client: &ClientConfig, bootstrap: &str) -> Result<FutureProducer, String> {
    let mut config = kafka_source::for_producer(client.clone());
    for (name, value) in PRODUCER_SETTINGS {
        config.set(name, value);
    }
    config
        .create()
        .map_err(|error| format!("cannot create the Kafka producer for {bootstrap}: {error}"))
}

/// One target partition.
pub struct PartitionLane {
    lanes: PartitionLanes,
    topic: Arc<str>,
    partition: i32,
    /// Only the lane's own sender calls it, one batch at a time; the lock
    /// is held across the waits.
    state: tokio::sync::Mutex<LaneState>,
}

#[derive(Default)]
struct LaneState {
    /// Deliveries of records handed to librdkafka and not answered yet,
    /// in order, with the source coordinates of each.
    awaiting: VecDeque<((PartitionId, i64), DeliveryFuture)>,
    /// Where this partition's copies of the batch in hand can start: one
    /// past the last record the lane saw stored, or the partition's end
    /// before the lane's first send.
    floor: Option<i64>,
}

impl Lane for PartitionLane {
    type Entry = super::KafkaEntry;
    type Error = KafkaSendFailure;
    const SINK: &'static str = "Kafka";
    const LANE: &'static str = "partition";

    fn name(&self) -> String {
        format!("{}/{}", self.topic, self.partition)
    }

    async fn send(&self, batch: &[&KafkaRecord]) -> Result<(), KafkaSendFailure> {
        let mut state = self.state.lock().await;
        if state.floor.is_none() {
            state.floor = Some(self.end_offset().await.map_err(KafkaSendFailure::Refused)?);
        }
        let deadline = Instant::now() + self.lanes.shared.send_timeout;
        // Records a previous attempt handed over are librdkafka's until it
        // answers: waited for, never produced again.
        let timeout = self.lanes.shared.send_timeout;
        if state.awaiting.is_empty() {
            self.enqueue(&mut state, batch).await?;
        } else {
            let mut stored = HashSet::new();
            await_deliveries(&mut state, deadline, timeout, |at| {
                stored.insert(at);
            })
            .await?;
            let rest: Vec<&KafkaRecord> = batch
                .iter()
                .copied()
                .filter(|record| !stored.contains(&(record.partition.clone(), record.offset)))
                .collect();
            self.enqueue(&mut state, &rest).await?;
        }
        await_deliveries(&mut state, deadline, timeout, drop).await
    }

    fn can_read_back(&self) -> bool {
        self.lanes.shared.read_back
    }

    async fn read_back(&self, pending: &[&KafkaRecord]) -> Result<Stored, String> {
        let from = self.state.lock().await.floor.unwrap_or(0);
        let wanted: HashSet<(PartitionId, i64)> = pending
            .iter()
            .map(|record| (record.partition.clone(), record.offset))
            .collect();
        let client = self.lanes.shared.client.clone();
        let (topic, partition) = (self.topic.clone(), self.partition);
        let deadline = self.lanes.shared.send_timeout.max(Duration::from_secs(10));
        tokio::task::spawn_blocking(move || {
            read_back::stored_since(&client, &topic, partition, from, &wanted, deadline)
        })
        .await
        .map_err(|error| format!("the read-back task failed: {error}"))?
    }
}

impl PartitionLane {
    /// The partition's end offset, where this lane's first copies land.
    async fn end_offset(&self) -> Result<i64, String> {
        let producer = self.lanes.producer()?;
        let (topic, partition) = (self.topic.clone(), self.partition);
        let timeout = self.lanes.shared.send_timeout;
        tokio::task::spawn_blocking(move || {
            producer
                .client()
                .fetch_watermarks(&topic, partition, timeout)
                .map(|(_, high)| high)
                .map_err(|error| {
                    format!("cannot read the end of Kafka partition {topic}/{partition}: {error}")
                })
        })
        .await
        .map_err(|error| format!("the watermark task failed: {error}"))?
    }

    /// Hands `records` to librdkafka, in order.
    async fn enqueue(
        &self,
        state: &mut LaneState,
        records: &[&KafkaRecord],
    ) -> Result<(), KafkaSendFailure> {
        let producer = self.lanes.producer().map_err(KafkaSendFailure::Fatal)?;
        for record in records {
            let entry = &record.entry;
            let mut headers = OwnedHeaders::new_with_capacity(entry.headers().len());
            for (name, value) in entry.headers() {
                headers = headers.insert(Header {
                    key: name,
                    value: Some(value),
                });
            }
            let mut message: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(&self.topic)
                .partition(self.partition)
                .payload(entry.value())
                .timestamp(entry.timestamp_ms)
                .headers(headers);
            if let Some(key) = entry.key() {
                message = message.key(key);
            }
            let delivery = loop {
                match producer.send_result(message) {
                    Ok(delivery) => break delivery,
                    Err((
                        KafkaError::MessageProduction(rdkafka::types::RDKafkaErrorCode::QueueFull),
                        back,
                    )) => {
                        message = back;
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                    // What went before is handed over: kept, so the caller
                    // waits for it or reads it back.
                    Err((error, _)) => {
                        return Err(KafkaSendFailure::Refused(format!(
                            "record {}@{}: {error}",
                            record.partition, record.offset
                        )));
                    }
                }
            };
            state
                .awaiting
                .push_back(((record.partition.clone(), record.offset), delivery));
        }
        Ok(())
    }
}

/// Waits until `deadline` for what the lane handed over, and gives each
/// stored record's coordinates to `stored`; on an error, forgets the rest
/// (librdkafka failed them, and every later one, for good).
async fn await_deliveries(
    state: &mut LaneState,
    deadline: Instant,
    timeout: Duration,
    mut stored: impl FnMut((PartitionId, i64)),
) -> Result<(), KafkaSendFailure> {
    while let Some((_, delivery)) = state.awaiting.front_mut() {
        let Ok(outcome) = tokio::time::timeout_at(deadline, delivery).await else {
            return Err(KafkaSendFailure::Unacknowledged(timeout));
        };
        let Some((coordinates, _)) = state.awaiting.pop_front() else {
            break;
        };
        match outcome {
            Ok(Ok(delivery)) => {
                state.floor = Some(delivery.offset + 1);
                stored(coordinates);
            }
            Ok(Err((error, _))) => {
                state.awaiting.clear();
                return Err(failure_of(&error));
            }
            Err(_canceled) => {
                state.awaiting.clear();
                return Err(KafkaSendFailure::Fatal(
                    "the producer was dropped before it answered".to_string(),
                ));
            }
        }
    }
    Ok(())
}

fn failure_of(error: &KafkaError) -> KafkaSendFailure {
    use rdkafka::types::RDKafkaErrorCode as Code;
    match error.rdkafka_error_code() {
        Some(
            Code::MessageSizeTooLarge
            | Code::InvalidMessageSize
            | Code::TopicAuthorizationFailed
            | Code::ClusterAuthorizationFailed
            | Code::UnknownPartition
            | Code::UnknownTopicOrPartition
            | Code::InvalidRecord,
        ) => KafkaSendFailure::Refused(error.to_string()),
        _ => KafkaSendFailure::Fatal(error.to_string()),
    }
}
