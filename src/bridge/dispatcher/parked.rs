//! Parked partitions: how a full queue buffer holds back only the records
//! that must wait for it.
//!
//! When a record's queue buffer is full (its broker slow or down), the
//! record is parked with its partition, and the dispatcher goes on with
//! every other partition. Later records of a parked partition queue behind
//! it, unmapped, so that the partition's records still enter the pipeline
//! in offset order: the checkpoint never sees a gap, and a key's records
//! never overtake each other. Parked records are not in flight yet, so a
//! rebalance or a stop simply drops them; the committed offset is not past
//! them, and the next owner reads them again.
//!
//! A buffer is full for a moment all the time while a backlog is copied, so
//! parking alone does not pause Kafka: a pause drops librdkafka's prefetch
//! of the partition and costs a fetch on resume. The partition pauses once
//! its parked records reach the bound of records a limiter may hold
//! (`queue_buffer_records`, or a quarter of the in-flight cap over all
//! parked partitions), which a slow or dead queue soon does. What a paused
//! partition still delivers is bounded by librdkafka's prefetch, which is
//! already taken out of the in-flight cap.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};

use super::super::QueuedFor;
use super::super::flow::{Flow, InRecord, OutRecord};
use super::{Dispatcher, Stop, count_throttled};
use crate::checkpoint::PartitionId;
use crate::rate_limit::LimiterKind;
use crate::source::{Incoming, Source};

/// How often parked partitions try their queue again. A queue sender takes
/// up to a batch out of its buffer at a time, so a short retry keeps the
/// buffer from running dry without a wake-up per stored batch.
pub(super) const PARKED_RETRY: Duration = Duration::from_millis(5);

/// One partition waiting for a full queue buffer.
pub(super) struct ParkedPartition<F: Flow> {
    /// The record whose queue was full, encoded, with that queue's sender.
    head: Option<(mpsc::Sender<QueuedFor<F>>, OutRecord<F>)>,
    /// The partition's later records, in offset order, not mapped yet.
    tail: VecDeque<InRecord<F>>,
    /// The highest offset parked: a re-delivery after the pause is dropped.
    last_offset: i64,
    /// Set while the tail is being dispatched, so that those records are
    /// not parked behind themselves.
    draining: bool,
    /// Whether its Kafka partition is paused for it.
    paused: bool,
    /// The index, in its mapping's plan, of the queue the head waits for
    /// (for the log; a re-plan drains parked records first), and since when.
    queue: usize,
    since: Instant,
}

impl<F: Flow> Dispatcher<F> {
    /// Whether `record` belongs behind its partition's parked records; if
    /// so it is kept there (or dropped, if it was parked already).
    pub(super) fn park_behind(
        &mut self,
        id: &PartitionId,
        record: InRecord<F>,
    ) -> Option<InRecord<F>> {
        let Some(parked) = self.parked.get_mut(id) else {
            return Some(record);
        };
        if parked.draining {
            return Some(record);
        }
        if record.offset() > parked.last_offset {
            parked.last_offset = record.offset();
            self.parked_bytes += record.limited_bytes();
            parked.tail.push_back(record);
            self.pause_if_parked_full(id);
        }
        None
    }

    /// Pauses `id` once the records parked reach the bound.
    fn pause_if_parked_full(&mut self, id: &PartitionId) {
        let (records_bound, bytes_bound) = self.hold_bounds();
        let total_bytes = self.parked_bytes;
        let Some(parked) = self.parked.get_mut(id) else {
            return;
        };
        if !parked.paused && (parked.tail.len() >= records_bound || total_bytes >= bytes_bound) {
            parked.paused = true;
            let queue = parked.queue;
            tracing::debug!(partition = %id, queue = %self.queue_name(id, queue), "parked records reached the bound; partition paused");
            self.source.set_lanes_paused(std::slice::from_ref(id), true);
        }
    }

    /// Queue `queue` of `id`'s mapping, as the logs name queues.
    fn queue_name(&self, id: &PartitionId, queue: usize) -> String {
        self.mappings
            .get(&*id.topic)
            .and_then(|m| m.targets.get(queue))
            .map_or_else(|| format!("queue {queue}"), F::describe)
    }

    /// Parks `envelope`, whose queue buffer is full, until the queue takes
    /// it; its partition's later records wait behind it.
    pub(super) fn park(
        &mut self,
        sender: &mpsc::Sender<QueuedFor<F>>,
        envelope: OutRecord<F>,
        queue: usize,
    ) {
        let id = envelope.partition.clone();
        if let Some(parked) = self.parked.get_mut(&id) {
            // Draining the tail met the full queue again: the rest waits.
            parked.head = Some((sender.clone(), envelope));
            parked.draining = false;
            return;
        }
        tracing::trace!(partition = %id, offset = envelope.offset, queue = %self.queue_name(&id, queue), "queue buffer full; partition parked, the others go on");
        self.parked.insert(
            id,
            ParkedPartition {
                last_offset: envelope.offset,
                head: Some((sender.clone(), envelope)),
                tail: VecDeque::new(),
                draining: false,
                paused: false,
                queue,
                since: Instant::now(),
            },
        );
    }

    /// Hands parked records to their queues where there is room now. With
    /// `resume`, a partition paused for records parked no more is resumed; the
    /// waits that pause every partition pass false and resume them all at
    /// their end.
    pub(super) async fn drain_parked(
        &mut self,
        resume: bool,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<(), Stop> {
        let mut ids: Vec<PartitionId> = self.parked.keys().cloned().collect();
        ids.sort();
        for id in ids {
            if self.drain_partition(&id, shutdown).await? && resume {
                self.resume_where(|lane| lane == &id);
            }
        }
        Ok(())
    }

    /// Moves `id`'s head into its queue if it has room, then dispatches
    /// the tail until it is empty or meets a full queue. Returns whether
    /// the partition is free again and was paused for its parked records.
    async fn drain_partition(
        &mut self,
        id: &PartitionId,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<bool, Stop> {
        let Some(parked) = self.parked.get_mut(id) else {
            return Ok(false);
        };
        if let Some((sender, envelope)) = parked.head.take() {
            let full = match sender.try_reserve() {
                Ok(permit) => {
                    self.put_in_flight(permit, envelope);
                    None
                }
                Err(mpsc::error::TrySendError::Full(())) => Some(envelope),
                Err(mpsc::error::TrySendError::Closed(())) => return Err(Stop::Signal),
            };
            if let Some(envelope) = full {
                if let Some(parked) = self.parked.get_mut(id) {
                    parked.head = Some((sender, envelope));
                }
                return Ok(false);
            }
        }
        loop {
            // Gone if its partition was revoked while a record waited.
            let Some(parked) = self.parked.get_mut(id) else {
                return Ok(false);
            };
            if parked.head.is_some() {
                return Ok(false);
            }
            let Some(record) = parked.tail.pop_front() else {
                return Ok(self.unpark(id));
            };
            parked.draining = true;
            self.parked_bytes = self.parked_bytes.saturating_sub(record.limited_bytes());
            self.dispatch(record, shutdown).await?;
        }
    }

    /// Ends `id`'s parking; returns whether its partition was paused for it.
    fn unpark(&mut self, id: &PartitionId) -> bool {
        let Some(parked) = self.parked.remove(id) else {
            return false;
        };
        let waited = parked.since.elapsed();
        count_throttled(
            &self.mapping_label(&id.topic),
            F::DIRECTION,
            LimiterKind::QueueBuffer,
            waited,
        );
        if waited >= Duration::from_secs(5) {
            tracing::info!(partition = %id, queue = %self.queue_name(id, parked.queue), waited_s = waited.as_secs(),
                "partition un-parked: its queue takes records again");
        }
        parked.paused
    }

    /// Drops the parked records of revoked partitions; they were never in
    /// flight, and the partition's next owner reads them again.
    pub(super) fn forget_parked(&mut self, gone: &foldhash::HashSet<PartitionId>) {
        self.parked.retain(|id, _| !gone.contains(id));
        self.parked_bytes = self
            .parked
            .values()
            .flat_map(|p| &p.tail)
            .map(Incoming::limited_bytes)
            .sum();
    }

    /// Whether a partition must stay paused for its parked records.
    pub(super) fn is_parked(&self, lane: &PartitionId) -> bool {
        self.parked.get(lane).is_some_and(|p| p.paused)
    }
}
