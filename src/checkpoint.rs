//! Checkpointing: which Kafka offset each partition may commit.
//!
//! An offset is committable only when it and every earlier offset of its
//! partition were acknowledged by RocketMQ (or deliberately skipped or
//! dead-lettered). Records of one partition can be acknowledged out of order
//! (in `key_hash` mode they go to several queues), so each partition keeps
//! the set of offsets still in flight; the commit point is the lowest of them.

use std::collections::BTreeSet;
use std::fmt;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use foldhash::HashMap;

/// An ordered lane of a source, whose offsets are checkpointed: a Kafka
/// topic and partition, or a RocketMQ queue (topic, broker name, queue id)
/// for the way back. Offsets count per lane in both systems.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PartitionId {
    pub topic: Arc<str>,
    /// The RocketMQ broker holding the queue; `None` for Kafka.
    pub broker: Option<Arc<str>>,
    /// The Kafka partition, or the RocketMQ queue id.
    pub partition: i32,
}

impl PartitionId {
    /// A Kafka partition.
    pub fn new(topic: impl Into<Arc<str>>, partition: i32) -> Self {
        PartitionId {
            topic: topic.into(),
            broker: None,
            partition,
        }
    }

    /// A RocketMQ queue.
    pub fn queue(topic: &str, broker: &str, queue_id: i32) -> Self {
        PartitionId {
            topic: Arc::from(topic),
            broker: Some(Arc::from(broker)),
            partition: queue_id,
        }
    }
}

/// `topic/partition` for Kafka, `topic@broker#queue` for RocketMQ, as the
/// logs write each system's lanes.
impl fmt::Display for PartitionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.broker {
            None => write!(f, "{}/{}", self.topic, self.partition),
            Some(broker) => write!(f, "{}@{}#{}", self.topic, broker, self.partition),
        }
    }
}

/// One partition's progress.
#[derive(Debug)]
pub struct PartitionCheckpoint {
    in_flight: BTreeSet<i64>,
    /// One past the highest offset handed to the pipeline.
    next_offset: Option<i64>,
    /// The offset last committed to the group by this process.
    committed: Option<i64>,
    last_advanced: Instant,
    /// Offsets acknowledged since this process took the partition.
    acknowledged: u64,
}

impl Default for PartitionCheckpoint {
    fn default() -> Self {
        PartitionCheckpoint {
            in_flight: BTreeSet::new(),
            next_offset: None,
            committed: None,
            last_advanced: Instant::now(),
            acknowledged: 0,
        }
    }
}

impl PartitionCheckpoint {
    fn dispatched(&mut self, offset: i64) {
        self.in_flight.insert(offset);
        self.next_offset = Some(
            self.next_offset
                .map_or(offset + 1, |next| next.max(offset + 1)),
        );
    }

    fn acknowledged(&mut self, offset: i64) {
        if self.in_flight.remove(&offset) {
            self.acknowledged += 1;
        }
    }

    /// The offset to commit: the oldest one still in flight, or one past
    /// everything dispatched.
    pub fn committable(&self) -> Option<i64> {
        self.in_flight.first().copied().or(self.next_offset)
    }

    /// `committable` if it is ahead of what was committed.
    fn to_commit(&self) -> Option<i64> {
        self.committable()
            .filter(|offset| self.committed.is_none_or(|done| *offset > done))
    }

    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    pub fn committed(&self) -> Option<i64> {
        self.committed
    }

    /// Time since this partition's commit point last moved.
    pub fn checkpoint_age(&self) -> Duration {
        self.last_advanced.elapsed()
    }

    /// The next offset the pipeline expects, to drop re-deliveries.
    pub fn next_offset(&self) -> Option<i64> {
        self.next_offset
    }
}

/// One partition's progress at one moment.
#[derive(Debug, Clone)]
pub struct PartitionProgress {
    pub partition: PartitionId,
    pub committed: Option<i64>,
    pub in_flight: usize,
    pub checkpoint_age: Duration,
    pub acknowledged: u64,
}

/// All partitions this process owns, shared by the dispatcher, the queue
/// senders, the committer and the rebalance callback.
#[derive(Debug, Default)]
pub struct Checkpoints {
    partitions: Mutex<HashMap<PartitionId, PartitionCheckpoint>>,
    /// Signalled whenever an acknowledgement arrives, for draining.
    acknowledged: Condvar,
}

impl Checkpoints {
    pub fn new() -> Arc<Self> {
        Arc::new(Checkpoints::default())
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<PartitionId, PartitionCheckpoint>> {
        // A panic while holding the lock leaves plain data behind, still consistent
        // for our purposes; keep going rather than poisoning the whole bridge.
        self.partitions
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Whether `offset` was dispatched already, e.g. re-delivered after a
    /// pause: [`Self::dispatch`] would refuse it.
    pub fn is_redelivery(&self, partition: &PartitionId, offset: i64) -> bool {
        self.lock()
            .get(partition)
            .and_then(PartitionCheckpoint::next_offset)
            .is_some_and(|next| offset < next)
    }

    /// Records that `offset` entered the pipeline. Returns false (and records
    /// nothing) for an offset already dispatched, e.g. re-delivered after a
    /// pause.
    pub fn dispatch(&self, partition: &PartitionId, offset: i64) -> bool {
        let mut partitions = self.lock();
        let checkpoint = partitions.entry(partition.clone()).or_default();
        if checkpoint.next_offset.is_some_and(|next| offset < next) {
            return false;
        }
        checkpoint.dispatched(offset);
        true
    }

    /// Records that `first..=last`, found stored by a previous owner, are
    /// done without entering the pipeline: the partition goes on after
    /// `last`. Offsets already dispatched are not touched.
    pub fn skip_stored(&self, partition: &PartitionId, first: i64, last: i64) {
        let mut partitions = self.lock();
        let checkpoint = partitions.entry(partition.clone()).or_default();
        let from = checkpoint.next_offset.map_or(first, |next| next.max(first));
        if from > last {
            return;
        }
        checkpoint.next_offset = Some(last + 1);
        checkpoint.acknowledged += (last - from + 1) as u64;
        drop(partitions);
        self.acknowledged.notify_all();
    }

    /// Records that RocketMQ stored these offsets (or that they were
    /// skipped or dead-lettered on purpose). Unknown partitions (revoked
    /// meanwhile) are ignored.
    pub fn acknowledge(&self, partition: &PartitionId, offsets: impl IntoIterator<Item = i64>) {
        let mut partitions = self.lock();
        if let Some(checkpoint) = partitions.get_mut(partition) {
            offsets
                .into_iter()
                .for_each(|offset| checkpoint.acknowledged(offset));
        }
        drop(partitions);
        self.acknowledged.notify_all();
    }

    /// Offsets ready to commit, per partition.
    pub fn pending_commits(&self) -> Vec<(PartitionId, i64)> {
        let partitions = self.lock();
        let mut pending: Vec<_> = partitions
            .iter()
            .filter_map(|(id, c)| c.to_commit().map(|offset| (id.clone(), offset)))
            .collect();
        pending.sort();
        pending
    }

    /// Records a successful commit.
    pub fn committed(&self, commits: &[(PartitionId, i64)]) {
        let mut partitions = self.lock();
        for (id, offset) in commits {
            if let Some(checkpoint) = partitions.get_mut(id)
                && checkpoint.committed.is_none_or(|done| *offset > done)
            {
                checkpoint.committed = Some(*offset);
                checkpoint.last_advanced = Instant::now();
            }
        }
    }

    /// Waits until none of `partitions` has records in flight, or `timeout`
    /// passes. Returns whether they drained. Blocking: for the rebalance
    /// callback and shutdown only.
    pub fn wait_drained(&self, partitions: &[PartitionId], timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut guard = self.lock();
        loop {
            let busy = partitions
                .iter()
                .any(|id| guard.get(id).is_some_and(|c| c.in_flight() > 0));
            let now = Instant::now();
            if !busy {
                return true;
            }
            if now >= deadline {
                return false;
            }
            guard = match self.acknowledged.wait_timeout(guard, deadline - now) {
                Ok((guard, _)) => guard,
                Err(poisoned) => poisoned.into_inner().0,
            };
        }
    }

    /// Forgets partitions this process no longer owns.
    pub fn revoke(&self, partitions: &[PartitionId]) {
        let mut guard = self.lock();
        partitions.iter().for_each(|id| {
            guard.remove(id);
        });
    }

    /// Whether this process still owns `partition` (it was dispatched to and
    /// not revoked since).
    pub fn owns(&self, partition: &PartitionId) -> bool {
        self.lock().contains_key(partition)
    }

    /// Records in flight over all partitions.
    pub fn in_flight(&self) -> usize {
        self.lock()
            .values()
            .map(PartitionCheckpoint::in_flight)
            .sum()
    }

    /// Records in flight over the partitions of one topic.
    pub fn in_flight_of_topic(&self, topic: &str) -> usize {
        self.lock()
            .iter()
            .filter(|(id, _)| &*id.topic == topic)
            .map(|(_, c)| c.in_flight())
            .sum()
    }

    /// Every partition's progress, for status and gauges.
    pub fn progress(&self) -> Vec<PartitionProgress> {
        let mut rows: Vec<_> = self
            .lock()
            .iter()
            .map(|(id, c)| PartitionProgress {
                partition: id.clone(),
                committed: c.committed,
                in_flight: c.in_flight(),
                checkpoint_age: c.checkpoint_age(),
                acknowledged: c.acknowledged,
            })
            .collect();
        rows.sort_by(|a, b| a.partition.cmp(&b.partition));
        rows
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_queue_of_one_broker_is_not_the_same_queue_id_elsewhere() {
        let kafka = PartitionId::new("orders", 3);
        let queue_a = PartitionId::queue("orders", "broker-a", 3);
        let queue_b = PartitionId::queue("orders", "broker-b", 3);
        assert_ne!(kafka, queue_a);
        assert_ne!(queue_a, queue_b);
        assert_eq!(kafka.to_string(), "orders/3");
        assert_eq!(queue_b.to_string(), "orders@broker-b#3");
        let checkpoints = Checkpoints::new();
        assert!(checkpoints.dispatch(&queue_a, 0));
        assert!(checkpoints.dispatch(&queue_b, 0));
        checkpoints.acknowledge(&queue_b, [0]);
        // Only the acknowledged queue moves past its first offset.
        assert_eq!(
            checkpoints.pending_commits(),
            vec![(queue_a, 0), (queue_b, 1)]
        );
    }

    #[test]
    fn commit_point_waits_for_the_oldest_unacknowledged_offset() {
        let checkpoints = Checkpoints::new();
        let p = PartitionId::new("t", 0);
        for offset in 10..15 {
            assert!(checkpoints.dispatch(&p, offset));
        }
        // Acknowledged out of order, as in key_hash mode.
        checkpoints.acknowledge(&p, [11, 12, 14]);
        assert_eq!(checkpoints.pending_commits(), vec![(p.clone(), 10)]);
        checkpoints.committed(&[(p.clone(), 10)]);
        assert_eq!(checkpoints.pending_commits(), vec![]);
        checkpoints.acknowledge(&p, [10]);
        assert_eq!(checkpoints.pending_commits(), vec![(p.clone(), 13)]);
        checkpoints.acknowledge(&p, [13]);
        assert_eq!(checkpoints.pending_commits(), vec![(p.clone(), 15)]);
    }

    #[test]
    fn redelivered_offsets_are_refused_and_gaps_are_fine() {
        let checkpoints = Checkpoints::new();
        let p = PartitionId::new("t", 1);
        assert!(checkpoints.dispatch(&p, 5));
        assert!(checkpoints.is_redelivery(&p, 5));
        assert!(!checkpoints.is_redelivery(&p, 6));
        assert!(!checkpoints.dispatch(&p, 5));
        assert!(!checkpoints.dispatch(&p, 3));
        // A gap (compaction, transaction markers) is not waited for.
        assert!(checkpoints.dispatch(&p, 9));
        checkpoints.acknowledge(&p, [5, 9]);
        assert_eq!(checkpoints.pending_commits(), vec![(p, 10)]);
    }

    #[test]
    fn offsets_skipped_as_stored_move_the_commit_point_past_them() {
        let checkpoints = Checkpoints::new();
        let p = PartitionId::new("t", 3);
        assert!(checkpoints.dispatch(&p, 100));
        checkpoints.skip_stored(&p, 101, 5_000);
        // Still waits for the record in flight before the skipped ones.
        assert_eq!(checkpoints.pending_commits(), vec![(p.clone(), 100)]);
        checkpoints.acknowledge(&p, [100]);
        assert_eq!(checkpoints.pending_commits(), vec![(p.clone(), 5_001)]);
        // A late copy of a skipped record out of librdkafka is a re-delivery.
        assert!(checkpoints.is_redelivery(&p, 4_000));
        assert!(!checkpoints.is_redelivery(&p, 5_001));
        // A range already passed changes nothing.
        checkpoints.skip_stored(&p, 200, 300);
        assert_eq!(checkpoints.pending_commits(), vec![(p, 5_001)]);
    }

    #[test]
    fn draining_waits_for_acknowledgements_from_another_thread() {
        let checkpoints = Checkpoints::new();
        let p = PartitionId::new("t", 2);
        checkpoints.dispatch(&p, 1);
        assert!(!checkpoints.wait_drained(std::slice::from_ref(&p), Duration::from_millis(20)));
        let acker = {
            let (checkpoints, p) = (Arc::clone(&checkpoints), p.clone());
            std::thread::spawn(move || checkpoints.acknowledge(&p, [1]))
        };
        assert!(checkpoints.wait_drained(std::slice::from_ref(&p), Duration::from_secs(10)));
        acker.join().unwrap();
        checkpoints.revoke(std::slice::from_ref(&p));
        checkpoints.acknowledge(&p, [7]);
        assert!(checkpoints.pending_commits().is_empty());
    }
}
