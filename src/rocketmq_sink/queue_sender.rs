//! One sender per target queue: it batches consecutive records bound for
//! its queue, keeps exactly one batch in flight, and retries a failed batch
//! on the same queue, in order, with capped backoff, until it is stored.
//! Queues proceed in parallel; order within a queue is the order records
//! were handed over.
//!
//! A failed send may still have been stored (the answer timed out, or the
//! connection broke after the broker wrote it). With exactly-once on, the
//! sender asks `stored_check` what of the batch is in its queue already
//! before sending again, so such a failure does not become a duplicate.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering as AtomicOrdering};
use std::time::{Duration, Instant};

use metrics::{Counter, Histogram};
use rocketmq_client_rust::DefaultMQProducer;
use rocketmq_model::message::MessageQueue;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::encode::Envelope;
use super::send::{SendFailure, send_once};
use super::stored_check::{StoredCheck, unstored};
use crate::checkpoint::{Checkpoints, PartitionId};
use crate::health::Readiness;
use crate::in_flight::{InFlight, InFlightPermit};
use crate::status::StatusBoard;

/// What a queue's channel carries: an encoded record and its share of the
/// in-flight cap.
pub type QueuedRecord = InFlight<Envelope>;

/// Batching and retry limits.
#[derive(Debug, Clone, Copy)]
pub struct SenderSettings {
    pub max_batch_records: usize,
    pub max_batch_bytes: usize,
    pub send_timeout: Duration,
    pub max_backoff: Duration,
}

/// Counters shared by all senders, for the summary log and the tests.
#[derive(Debug, Default)]
pub struct SendCounters {
    pub records: AtomicU64,
    pub bytes: AtomicU64,
    pub batches: AtomicU64,
    pub failed_attempts: AtomicU64,
    /// Records of failed sends found stored anyway, and not sent again.
    pub stored_despite_failure: AtomicU64,
}

/// One mapping's metric handles, registered once.
#[derive(Clone)]
pub struct SenderMeters {
    pub mapping: Arc<str>,
    pub produced: Counter,
    pub produced_bytes: Counter,
    pub retries: Counter,
    pub send_latency: Histogram,
    pub end_to_end_latency: Histogram,
}

impl SenderMeters {
    pub fn new(mapping: &str) -> Self {
        let label = mapping.to_string();
        SenderMeters {
            mapping: Arc::from(mapping),
            produced: metrics::counter!(crate::metrics::RECORDS_PRODUCED, "mapping" => label.clone()),
            produced_bytes: metrics::counter!(crate::metrics::BYTES_PRODUCED, "mapping" => label.clone()),
            retries: metrics::counter!(crate::metrics::SEND_RETRIES, "mapping" => label.clone()),
            send_latency: metrics::histogram!(crate::metrics::SEND_LATENCY, "mapping" => label.clone()),
            end_to_end_latency: metrics::histogram!(crate::metrics::END_TO_END_LATENCY, "mapping" => label),
        }
    }
}

/// What all senders share; [`SenderShared::for_mapping`] adds a mapping's meters.
#[derive(Clone)]
pub struct SenderShared {
    pub readiness: Arc<Readiness>,
    pub status: Arc<StatusBoard>,
    pub producer: Arc<DefaultMQProducer>,
    pub checkpoints: Arc<Checkpoints>,
    pub counters: Arc<SendCounters>,
    pub settings: SenderSettings,
    /// `None` when exactly-once is off: a failed batch is sent again whole.
    pub stored_check: Option<Arc<StoredCheck>>,
}

impl SenderShared {
    pub fn for_mapping(&self, mapping: &str) -> SenderContext {
        SenderContext {
            shared: self.clone(),
            meters: SenderMeters::new(mapping),
        }
    }
}

/// Everything a sender needs besides its queue.
#[derive(Clone)]
pub struct SenderContext {
    pub shared: SenderShared,
    pub meters: SenderMeters,
}

/// Starts the sender of `queue`; it ends when `records` closes and its last batch is stored.
pub fn spawn(
    context: SenderContext,
    queue: MessageQueue,
    records: mpsc::Receiver<QueuedRecord>,
) -> JoinHandle<()> {
    tokio::spawn(run(context, queue, records))
}

/// Records taken off the channel to send together; their permits merged
/// into one, given back when the batch is dropped, after acknowledgement.
struct Batch {
    records: Vec<Envelope>,
    _in_flight: InFlightPermit,
}

async fn run(
    context: SenderContext,
    queue: MessageQueue,
    mut records: mpsc::Receiver<QueuedRecord>,
) {
    let mut carry: Option<QueuedRecord> = None;
    loop {
        let first = match carry.take() {
            Some(record) => record,
            None => match records.recv().await {
                Some(record) => record,
                None => return,
            },
        };
        let (batch, next) = fill_batch(first, &mut records, &context.shared.settings);
        carry = next;
        send_until_stored(&context, &queue, &batch.records).await;
        acknowledge(&context.shared.checkpoints, &batch.records);
    }
}

/// Takes what is already waiting, up to the batch limits. A record that
/// would overflow the byte limit is returned to start the next batch.
fn fill_batch(
    first: QueuedRecord,
    records: &mut mpsc::Receiver<QueuedRecord>,
    settings: &SenderSettings,
) -> (Batch, Option<QueuedRecord>) {
    let mut bytes = first.record.size();
    let mut batch = Batch {
        records: vec![first.record],
        _in_flight: first.permit,
    };
    while batch.records.len() < settings.max_batch_records {
        let Ok(next) = records.try_recv() else { break };
        let size = next.record.size();
        if bytes + size > settings.max_batch_bytes {
            return (batch, Some(next));
        }
        bytes += size;
        batch.records.push(next.record);
        batch._in_flight.absorb(next.permit);
    }
    (batch, None)
}

async fn send_until_stored(context: &SenderContext, queue: &MessageQueue, batch: &[Envelope]) {
    let mut backoff = Duration::from_millis(100);
    let mut attempts = 0u64;
    let mut last_report = Instant::now();
    // What is still to send: all of `batch` unless a check found some stored.
    let mut remaining: Option<Vec<&Envelope>> = None;
    // Records whose partitions were revoked while the batch was retried.
    let mut left: Vec<&Envelope> = Vec::new();
    loop {
        attempts += 1;
        let started = Instant::now();
        let outcome = match &remaining {
            None => send(context, queue, batch.iter()).await,
            Some(rest) if rest.is_empty() => Ok(()),
            Some(rest) => send(context, queue, rest.iter().copied()).await,
        };
        match outcome {
            Ok(()) => {
                if attempts > 1 {
                    context
                        .shared
                        .readiness
                        .failing_queues
                        .fetch_sub(1, AtomicOrdering::Relaxed);
                    context
                        .shared
                        .status
                        .queue_failing(&context.meters.mapping, false);
                    tracing::info!(queue = %describe(queue), attempts, "queue recovered: batch stored after retries");
                }
                record_stored(context, batch, &left, started.elapsed());
                return;
            }
            Err(cause) => {
                context
                    .shared
                    .counters
                    .failed_attempts
                    .fetch_add(1, AtomicOrdering::Relaxed);
                if attempts == 1 {
                    context
                        .shared
                        .readiness
                        .failing_queues
                        .fetch_add(1, AtomicOrdering::Relaxed);
                    context
                        .shared
                        .status
                        .queue_failing(&context.meters.mapping, true);
                }
                let kind = cause.kind();
                metrics::counter!(crate::metrics::SEND_ERRORS, "mapping" => context.meters.mapping.to_string(), "kind" => kind.label())
                    .increment(1);
                context.meters.retries.increment(1);
                // One line when a queue starts failing, then one every 30 s: never one per retry.
                if attempts == 1 || last_report.elapsed() >= Duration::from_secs(30) {
                    let first = batch
                        .first()
                        .map(|e| format!("{}@{}", e.partition, e.offset))
                        .unwrap_or_default();
                    tracing::warn!(
                        queue = %describe(queue), records = batch.len(), first_record = %first, attempts, kind = kind.label(),
                        error = %cause, "send to RocketMQ failed; retrying on the same queue, checkpoints held"
                    );
                    last_report = Instant::now();
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(context.shared.settings.max_backoff);
                let mut pending = remaining.take().unwrap_or_else(|| batch.iter().collect());
                if let Some(check) = &context.shared.stored_check
                    && kind.may_have_been_stored()
                {
                    pending = unstored(context, check, queue, pending, &mut backoff).await;
                }
                remaining = Some(leave_revoked(
                    &context.shared.checkpoints,
                    pending,
                    &mut left,
                ));
            }
        }
    }
}

/// Moves the records of partitions revoked while their batch was retried
/// from `pending` to `left`. Their partition's next owner copies them from
/// the committed offset, which is not past them (they were never
/// acknowledged); a late copy from here could land after that owner's
/// restart scan and be stored twice.
fn leave_revoked<'a>(
    checkpoints: &Checkpoints,
    pending: Vec<&'a Envelope>,
    left: &mut Vec<&'a Envelope>,
) -> Vec<&'a Envelope> {
    let (owned, revoked): (Vec<&Envelope>, Vec<&Envelope>) = pending
        .into_iter()
        .partition(|envelope| checkpoints.owns(&envelope.partition));
    if let Some(first) = revoked.first() {
        tracing::info!(
            records = revoked.len(), first_record = %format!("{}@{}", first.partition, first.offset),
            "partition revoked while its records were retried; they are left to the partition's next owner"
        );
    }
    left.extend(revoked);
    owned
}
/// Counters, gauges and latencies for a stored batch: all of `batch` but
/// the records `left` to another owner.
fn record_stored(
    context: &SenderContext,
    batch: &[Envelope],
    left: &[&Envelope],
    send_time: Duration,
) {
    // `left` is nearly always empty: no allocation for the usual batch.
    let stored = || {
        batch
            .iter()
            .filter(|e| !left.iter().any(|l| std::ptr::eq(*l, *e)))
    };
    let (records, bytes) = stored().fold((0usize, 0usize), |(n, b), e| (n + 1, b + e.size()));
    let counters = &context.shared.counters;
    counters
        .records
        .fetch_add(records as u64, AtomicOrdering::Relaxed);
    counters
        .bytes
        .fetch_add(bytes as u64, AtomicOrdering::Relaxed);
    counters.batches.fetch_add(1, AtomicOrdering::Relaxed);
    let meters = &context.meters;
    meters.produced.increment(records as u64);
    meters.produced_bytes.increment(bytes as u64);
    meters.send_latency.record(send_time.as_secs_f64());
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    for timestamp in stored().filter_map(|e| e.timestamp_ms) {
        meters
            .end_to_end_latency
            .record((now_ms - timestamp).max(0) as f64 / 1000.0);
    }
}
async fn send<'a>(
    context: &SenderContext,
    queue: &MessageQueue,
    batch: impl IntoIterator<Item = &'a Envelope>,
) -> Result<(), SendFailure> {
    let shared = &context.shared;
    send_once(&shared.producer, queue, batch, shared.settings.send_timeout).await
}

fn acknowledge(checkpoints: &Checkpoints, batch: &[Envelope]) {
    let mut by_partition: BTreeMap<&PartitionId, Vec<i64>> = BTreeMap::new();
    for envelope in batch {
        by_partition
            .entry(&envelope.partition)
            .or_default()
            .push(envelope.offset);
    }
    for (partition, offsets) in by_partition {
        checkpoints.acknowledge(partition, offsets);
    }
}

pub fn describe(queue: &MessageQueue) -> String {
    format!(
        "{}@{}#{}",
        queue.topic_str(),
        queue.broker_name(),
        queue.queue_id()
    )
}
#[cfg(test)]
mod tests {
    use super::*;
    use crate::in_flight::InFlightBudget;
    use crate::mapping::OutgoingMessage;

    /// A message with `body`, as mapped from the record at `offset`.
    fn outgoing<'a>(
        body: &'a str,
        offset: i64,
        keys: Option<&'a str>,
        tag: Option<&'a str>,
    ) -> OutgoingMessage<'a> {
        OutgoingMessage {
            body: body.as_bytes(),
            keys: keys.map(Into::into),
            tag: tag.map(Into::into),
            properties: vec![
                ("KAFKA_OFFSET".into(), offset.to_string().into()),
                ("h\u{e9}ader".into(), "v\u{e4}lue".into()),
            ],
        }
    }

    fn id(offset: i64) -> String {
        format!("{offset:032X}")
    }

    /// A retried batch keeps the records of partitions still owned, in
    /// order, and leaves the revoked partition's records to its next owner.
    #[test]
    fn retries_leave_revoked_partitions_to_their_next_owner() {
        let checkpoints = Checkpoints::new();
        let (kept, revoked) = (PartitionId::new("orders", 0), PartitionId::new("orders", 1));
        let envelopes: Vec<Envelope> = [(&kept, 1), (&revoked, 1), (&kept, 2), (&revoked, 2)]
            .into_iter()
            .map(|(partition, offset)| {
                checkpoints.dispatch(partition, offset);
                Envelope::new(
                    partition.clone(),
                    offset,
                    &outgoing("value", offset, None, None),
                    &id(offset),
                    None,
                )
            })
            .collect();
        let mut left = Vec::new();
        let all = leave_revoked(&checkpoints, envelopes.iter().collect(), &mut left);
        assert_eq!(all.len(), 4);
        assert!(left.is_empty());
        checkpoints.revoke(std::slice::from_ref(&revoked));
        let owned = leave_revoked(&checkpoints, all, &mut left);
        let coordinates = |list: &[&Envelope]| -> Vec<(i32, i64)> {
            list.iter()
                .map(|e| (e.partition.partition, e.offset))
                .collect()
        };
        assert_eq!(coordinates(&owned), [(0, 1), (0, 2)]);
        assert_eq!(coordinates(&left), [(1, 1), (1, 2)]);
    }

    /// A batch takes what waits, within its limits, and holds the bytes of
    /// all its records until it is dropped; the record that did not fit
    /// keeps its own.
    #[test]
    fn a_batch_holds_its_records_bytes_until_dropped() {
        let budget = InFlightBudget::new();
        let (tx, mut rx) = mpsc::channel(8);
        let partition = PartitionId::new("orders", 0);
        let mut queued = (0..4).map(|offset| {
            let envelope = Envelope::new(
                partition.clone(),
                offset,
                &outgoing("value", offset, None, None),
                &id(offset),
                None,
            );
            let permit = budget.take(envelope.footprint());
            InFlight {
                record: envelope,
                permit,
            }
        });
        let first = queued.next().expect("four records");
        let size = first.record.size();
        for record in queued {
            tx.try_send(record).expect("room in the channel");
        }
        let settings = SenderSettings {
            max_batch_records: 10,
            max_batch_bytes: 3 * size,
            send_timeout: Duration::from_secs(1),
            max_backoff: Duration::from_secs(1),
        };
        let held = budget.used();
        let (batch, carry) = fill_batch(first, &mut rx, &settings);
        let offsets: Vec<i64> = batch.records.iter().map(|e| e.offset).collect();
        assert_eq!(offsets, [0, 1, 2]);
        let carry = carry.expect("the fourth record did not fit");
        assert_eq!(carry.record.offset, 3);
        assert_eq!(budget.used(), held);
        drop(batch);
        assert_eq!(budget.used(), carry.permit.bytes());
        drop(carry);
        assert_eq!(budget.used(), 0);
    }
}
