//! One sender per lane: it batches consecutive records bound for its lane,
//! keeps exactly one batch in flight, and retries a failed batch on the same
//! lane, in order, with capped backoff, until it is stored. Lanes proceed in
//! parallel; order within a lane is the order records were handed over.
//!
//! A failed send may still have been stored (the answer timed out, or the
//! connection broke after the broker wrote it). When the lane can read
//! itself back (exactly-once on), the sender leaves out what is already
//! there before sending again, so such a failure does not become a duplicate.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering as AtomicOrdering};
use std::time::{Duration, Instant};

use metrics::{Counter, Histogram};

use crate::config::Direction;
use crate::metrics::mapping_labels;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::{Entry, Lane, Record, SendError, Stored};
use crate::checkpoint::{Checkpoints, PartitionId};
use crate::health::Readiness;
use crate::in_flight::{InFlight, InFlightPermit};
use crate::status::StatusBoard;

/// What a lane's channel carries: an encoded record and its share of the
/// in-flight cap.
pub type Queued<E> = InFlight<Record<E>>;

/// Batching and retry limits.
#[derive(Debug, Clone, Copy)]
pub struct SenderSettings {
    pub max_batch_records: usize,
    pub max_batch_bytes: usize,
    pub max_backoff: Duration,
}

/// How long a sender waits, once its lane can be read again and the
/// failed records are not there, before reading once more and sending them
/// again. Far above a broker's own send-queue wait (RocketMQ's is 200 ms,
/// after which it refuses a request).
const SETTLE_BEFORE_RESEND: Duration = Duration::from_secs(3);

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
    pub direction: Direction,
    pub produced: Counter,
    pub produced_bytes: Counter,
    pub retries: Counter,
    pub send_latency: Histogram,
    pub end_to_end_latency: Histogram,
}

impl SenderMeters {
    pub fn new(mapping: &str, direction: Direction) -> Self {
        let labels = mapping_labels(mapping, direction, &[]);
        SenderMeters {
            mapping: Arc::from(mapping),
            direction,
            produced: metrics::counter!(crate::metrics::RECORDS_PRODUCED, labels.iter()),
            produced_bytes: metrics::counter!(crate::metrics::BYTES_PRODUCED, labels.iter()),
            retries: metrics::counter!(crate::metrics::SEND_RETRIES, labels.iter()),
            send_latency: metrics::histogram!(crate::metrics::SEND_LATENCY, labels.iter()),
            end_to_end_latency: metrics::histogram!(
                crate::metrics::END_TO_END_LATENCY,
                labels.iter()
            ),
        }
    }

    /// This mapping's labels and `extra`, for a series made on the spot.
    fn labels(&self, extra: &[(&'static str, &'static str)]) -> Vec<metrics::Label> {
        mapping_labels(&self.mapping, self.direction, extra)
    }
}

/// What all senders share; [`SenderShared::for_mapping`] adds a mapping's meters.
#[derive(Clone)]
pub struct SenderShared {
    pub readiness: Arc<Readiness>,
    pub status: Arc<StatusBoard>,
    pub checkpoints: Arc<Checkpoints>,
    pub counters: Arc<SendCounters>,
    pub settings: SenderSettings,
}

impl SenderShared {
    pub fn for_mapping(&self, mapping: &str, direction: Direction) -> SenderContext {
        SenderContext {
            shared: self.clone(),
            meters: SenderMeters::new(mapping, direction),
        }
    }
}

/// Everything a sender needs besides its lane.
#[derive(Clone)]
pub struct SenderContext {
    pub shared: SenderShared,
    pub meters: SenderMeters,
}

/// Starts the sender of `lane`; it ends when `records` closes and its last
/// batch is stored.
pub fn spawn<L: Lane>(
    context: SenderContext,
    lane: L,
    records: mpsc::Receiver<Queued<L::Entry>>,
) -> JoinHandle<()> {
    tokio::spawn(run(context, lane, records))
}

/// Records taken off the channel to send together; their permits merged
/// into one, given back when the batch is dropped, after acknowledgement.
struct Batch<E> {
    records: Vec<Record<E>>,
    _in_flight: InFlightPermit,
}

async fn run<L: Lane>(
    context: SenderContext,
    lane: L,
    mut records: mpsc::Receiver<Queued<L::Entry>>,
) {
    let mut carry: Option<Queued<L::Entry>> = None;
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
        send_until_stored(&context, &lane, &batch.records).await;
        acknowledge(&context.shared.checkpoints, &batch.records);
    }
}

/// Takes what is already waiting, up to the batch limits. A record that
/// would overflow the byte limit is returned to start the next batch.
fn fill_batch<E: Entry>(
    first: Queued<E>,
    records: &mut mpsc::Receiver<Queued<E>>,
    settings: &SenderSettings,
) -> (Batch<E>, Option<Queued<E>>) {
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

async fn send_until_stored<L: Lane>(context: &SenderContext, lane: &L, batch: &[Record<L::Entry>]) {
    let mut backoff = Duration::from_millis(100);
    let mut attempts = 0u64;
    let mut last_report = Instant::now();
    // What is still to send: all of `batch` unless a read-back found some stored.
    let mut pending: Vec<&Record<L::Entry>> = batch.iter().collect();
    // Records whose partitions were revoked while the batch was retried.
    let mut left: Vec<&Record<L::Entry>> = Vec::new();
    loop {
        attempts += 1;
        let started = Instant::now();
        let outcome = if pending.is_empty() {
            Ok(())
        } else {
            lane.send(&pending).await
        };
        let cause = match outcome {
            Ok(()) => {
                if attempts > 1 {
                    lane_failing(context, false);
                    tracing::info!(lane = %lane.name(), attempts, "{} recovered: batch stored after retries", L::LANE);
                }
                record_stored(context, batch, &left, started.elapsed());
                return;
            }
            Err(cause) => cause,
        };
        context
            .shared
            .counters
            .failed_attempts
            .fetch_add(1, AtomicOrdering::Relaxed);
        if attempts == 1 {
            lane_failing(context, true);
        }
        let kind = cause.kind();
        metrics::counter!(
            crate::metrics::SEND_ERRORS,
            context.meters.labels(&[("kind", kind)])
        )
        .increment(1);
        context.meters.retries.increment(1);
        // One line when a lane starts failing, then one every 30 s: never one per retry.
        if attempts == 1 || last_report.elapsed() >= Duration::from_secs(30) {
            tracing::warn!(
                lane = %lane.name(), records = pending.len(), first_record = %first_of(&pending), attempts, kind,
                error = %cause, "send to {} failed; retrying on the same {}, checkpoints held", L::SINK, L::LANE
            );
            last_report = Instant::now();
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(context.shared.settings.max_backoff);
        if lane.can_read_back() && cause.may_have_been_stored() {
            pending = unstored(context, lane, pending, &mut backoff).await;
        }
        pending = leave_revoked(&context.shared.checkpoints, pending, &mut left);
    }
}

/// Marks the mapping's lane failing (or recovered) for `/readyz` and `/status`.
fn lane_failing(context: &SenderContext, failing: bool) {
    let failing_lanes = &context.shared.readiness.failing_queues;
    if failing {
        failing_lanes.fetch_add(1, AtomicOrdering::Relaxed);
    } else {
        failing_lanes.fetch_sub(1, AtomicOrdering::Relaxed);
    }
    context
        .shared
        .status
        .queue_failing(&context.meters.mapping, failing);
}

fn first_of<E>(records: &[&Record<E>]) -> String {
    records
        .first()
        .map(|r| format!("{}@{}", r.partition, r.offset))
        .unwrap_or_default()
}

/// Moves the records of partitions revoked while their batch was retried
/// from `pending` to `left`. Their partition's next owner copies them from
/// the committed offset, which is not past them (they were never
/// acknowledged); a late copy from here could land after that owner's
/// restart scan and be stored twice.
fn leave_revoked<'a, E>(
    checkpoints: &Checkpoints,
    pending: Vec<&'a Record<E>>,
    left: &mut Vec<&'a Record<E>>,
) -> Vec<&'a Record<E>> {
    let (owned, revoked): (Vec<&Record<E>>, Vec<&Record<E>>) = pending
        .into_iter()
        .partition(|record| checkpoints.owns(&record.partition));
    if !revoked.is_empty() {
        tracing::info!(
            records = revoked.len(), first_record = %first_of(&revoked),
            "partition revoked while its records were retried; they are left to the partition's next owner"
        );
    }
    left.extend(revoked);
    owned
}

/// The part of `pending` that is not in the lane yet, read back from it;
/// retried with backoff until the lane can be read, since sending again
/// without knowing could store a record twice.
async fn unstored<'a, L: Lane>(
    context: &SenderContext,
    lane: &L,
    pending: Vec<&'a Record<L::Entry>>,
    backoff: &mut Duration,
) -> Vec<&'a Record<L::Entry>> {
    let mut last_report: Option<Instant> = None;
    let mut settled = false;
    loop {
        match lane.read_back(&pending).await {
            Ok(stored) if stored.found.len() < pending.len() && !settled => {
                // The failed request may still be on its way: held by a
                // network that just healed, or waiting in the broker's send
                // queue while this read went through its pull queue. Either
                // lands within moments of the broker answering again; a
                // second read after that tells.
                settled = true;
                tokio::time::sleep(SETTLE_BEFORE_RESEND).await;
            }
            Ok(stored) => return not_found(context, lane, pending, &stored),
            Err(error) => {
                if last_report.is_none_or(|t| t.elapsed() >= Duration::from_secs(30)) {
                    tracing::warn!(
                        lane = %lane.name(), %error,
                        "cannot read the {} back to see whether a failed send was stored; retrying before sending again", L::LANE
                    );
                    last_report = Some(Instant::now());
                }
                tokio::time::sleep(*backoff).await;
                *backoff = (*backoff * 2).min(context.shared.settings.max_backoff);
            }
        }
    }
}

/// `pending` without what the read-back found, counted and logged.
fn not_found<'a, L: Lane>(
    context: &SenderContext,
    lane: &L,
    pending: Vec<&'a Record<L::Entry>>,
    stored: &Stored,
) -> Vec<&'a Record<L::Entry>> {
    let before = pending.len();
    let rest: Vec<&Record<L::Entry>> = pending
        .into_iter()
        .filter(|r| !stored.found.contains(&(r.partition.clone(), r.offset)))
        .collect();
    let found = before - rest.len();
    if found > 0 {
        context
            .shared
            .counters
            .stored_despite_failure
            .fetch_add(found as u64, AtomicOrdering::Relaxed);
        metrics::counter!(
            crate::metrics::RECORDS_STORED_DESPITE_FAILURE,
            context.meters.labels(&[])
        )
        .increment(found as u64);
        tracing::info!(
            lane = %lane.name(), found, resending = rest.len(),
            "a failed send was stored all the same; not sending those records again"
        );
    } else if !rest.is_empty() {
        // The record to look for if a duplicate shows up later; a copy of
        // it below `lane_end` would mean the read missed it, at or above
        // that it was stored after.
        tracing::info!(
            lane = %lane.name(), resending = rest.len(), first_record = %first_of(&rest),
            lane_end = stored.end,
            "a failed send is not in the {} after two reads; sending it again", L::LANE
        );
    }
    rest
}

/// Counters, gauges and latencies for a stored batch: all of `batch` but
/// the records `left` to another owner.
fn record_stored<E: Entry>(
    context: &SenderContext,
    batch: &[Record<E>],
    left: &[&Record<E>],
    send_time: Duration,
) {
    // `left` is nearly always empty: no allocation for the usual batch.
    let stored = || {
        batch
            .iter()
            .filter(|r| !left.iter().any(|l| std::ptr::eq(*l, *r)))
    };
    let (records, bytes) = stored().fold((0usize, 0usize), |(n, b), r| (n + 1, b + r.size()));
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
    for timestamp in stored().filter_map(|r| r.timestamp_ms) {
        meters
            .end_to_end_latency
            .record((now_ms - timestamp).max(0) as f64 / 1000.0);
    }
}

fn acknowledge<E>(checkpoints: &Checkpoints, batch: &[Record<E>]) {
    let mut by_partition: BTreeMap<&PartitionId, Vec<i64>> = BTreeMap::new();
    for record in batch {
        by_partition
            .entry(&record.partition)
            .or_default()
            .push(record.offset);
    }
    for (partition, offsets) in by_partition {
        checkpoints.acknowledge(partition, offsets);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::in_flight::InFlightBudget;

    /// An entry of `.0` bytes, for the batching logic alone.
    struct TestEntry(usize);

    impl Entry for TestEntry {
        fn size(&self) -> usize {
            self.0
        }

        fn footprint(&self) -> usize {
            self.0
        }
    }

    fn record(partition: &PartitionId, offset: i64, bytes: usize) -> Record<TestEntry> {
        Record {
            partition: partition.clone(),
            offset,
            timestamp_ms: None,
            entry: TestEntry(bytes),
        }
    }

    /// A retried batch keeps the records of partitions still owned, in
    /// order, and leaves the revoked partition's records to its next owner.
    #[test]
    fn retries_leave_revoked_partitions_to_their_next_owner() {
        let checkpoints = Checkpoints::new();
        let (kept, revoked) = (PartitionId::new("orders", 0), PartitionId::new("orders", 1));
        let records: Vec<Record<TestEntry>> =
            [(&kept, 1), (&revoked, 1), (&kept, 2), (&revoked, 2)]
                .into_iter()
                .map(|(partition, offset)| {
                    checkpoints.dispatch(partition, offset);
                    record(partition, offset, 10)
                })
                .collect();
        let mut left = Vec::new();
        let all = leave_revoked(&checkpoints, records.iter().collect(), &mut left);
        assert_eq!(all.len(), 4);
        assert!(left.is_empty());
        checkpoints.revoke(std::slice::from_ref(&revoked));
        let owned = leave_revoked(&checkpoints, all, &mut left);
        let coordinates = |list: &[&Record<TestEntry>]| -> Vec<(i32, i64)> {
            list.iter()
                .map(|r| (r.partition.partition, r.offset))
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
            let record = record(&partition, offset, 100);
            let permit = budget.take(record.footprint());
            InFlight { record, permit }
        });
        let first = queued.next().expect("four records");
        for record in queued {
            tx.try_send(record).expect("room in the channel");
        }
        let settings = SenderSettings {
            max_batch_records: 10,
            max_batch_bytes: 300,
            max_backoff: Duration::from_secs(1),
        };
        let held = budget.used();
        let (batch, carry) = fill_batch(first, &mut rx, &settings);
        let offsets: Vec<i64> = batch.records.iter().map(|r| r.offset).collect();
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
