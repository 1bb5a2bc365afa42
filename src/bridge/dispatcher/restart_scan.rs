//! The dispatcher's side of exactly-once restarts (`already_stored`, and
//! `kafka_sink::read_back` on the way back): the first record of a partition
//! this process has not checked yet triggers one read of the target lanes'
//! tails (`Flow::scan_tails`) for every such partition assigned. The source
//! is not read meanwhile; a scan that takes longer than `PAUSE_AFTER`
//! pauses it and keeps it polled, so the group keeps this instance.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::super::flow::Flow;
use super::{Dispatcher, PAUSE_AFTER, Stop};
use crate::already_stored::{OffsetRanges, Wanted};
use crate::checkpoint::PartitionId;
use crate::config::Ordering;
use crate::source::Source;

const COMMITTED_TIMEOUT: Duration = Duration::from_secs(10);
const MAX_RETRY_WAIT: Duration = Duration::from_secs(10);
/// Stored records after the one in hand worth a seek (a new fetch round
/// trip) instead of reading and skipping them.
const SEEK_PAST_AT_LEAST: i64 = 1000;

/// One target lane to read, and the source partitions whose copies may be in it.
struct TargetScan<T> {
    target: T,
    partitions: Vec<PartitionId>,
}

impl<F: Flow> Dispatcher<F> {
    /// Reads the queue tails of `first` (whose first record since it was
    /// assigned is at `first_offset`) and of every other assigned partition
    /// not checked yet, retrying until it succeeds or the bridge stops.
    pub(super) async fn scan_new_partitions(
        &mut self,
        window: Duration,
        first: &PartitionId,
        first_offset: i64,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<(), Stop> {
        let mut partitions: Vec<PartitionId> = self
            .source
            .assigned()
            .into_iter()
            .filter(|p| self.mappings.contains_key(&*p.topic) && !self.already_stored.is_scanned(p))
            .filter(|p| p != first)
            .collect();
        partitions.push(first.clone());
        let queues = self.queue_scans(&partitions);
        let started = Instant::now();
        let mut source_paused = false;
        let pause_at = started + PAUSE_AFTER;
        let mut wait = Duration::from_millis(500);
        let found = loop {
            let attempt = read_tails(
                Arc::clone(&self.source),
                self.sender_parts.flow.clone(),
                window,
                partitions.clone(),
                (first.clone(), first_offset),
                &queues,
            );
            let polled = self.polling_while(attempt, pause_at, &mut source_paused, shutdown);
            let Some(outcome) = polled.await else {
                return Err(Stop::Signal);
            };
            let readiness = &self.sender_parts.shared.readiness;
            readiness
                .reads_failing
                .store(outcome.is_err(), std::sync::atomic::Ordering::Relaxed);
            match outcome {
                Ok(found) => break found,
                Err(error) => {
                    tracing::warn!(%error, direction = %F::DIRECTION, retry_in_ms = wait.as_millis() as u64, "restart scan: cannot read the targets' tails to skip records already stored; the source is not read until it can (paused and polled past one second)");
                    let waited = tokio::time::sleep(wait);
                    let polled = self.polling_while(waited, pause_at, &mut source_paused, shutdown);
                    if polled.await.is_none() {
                        return Err(Stop::Signal);
                    }
                    wait = (wait * 2).min(MAX_RETRY_WAIT);
                }
            }
        };
        if source_paused {
            self.resume_all();
        }
        let elapsed = started.elapsed();
        metrics::histogram!(crate::metrics::RESTART_SCAN).record(elapsed.as_secs_f64());
        let total: i64 = found.values().map(|(stored, _)| stored.count()).sum();
        tracing::info!(
            direction = %F::DIRECTION,
            partitions = partitions.len(),
            targets = queues.len(),
            already_stored = total,
            took_ms = elapsed.as_millis() as u64,
            "restart scan: read the targets' tails of newly assigned source lanes"
        );
        // A partition revoked meanwhile is read again if it comes back:
        // its next owner may have stored more by then.
        let still_assigned: HashSet<PartitionId> = self.source.assigned().into_iter().collect();
        for (partition, (stored, committed)) in found {
            if !still_assigned.contains(&partition) {
                continue;
            }
            if !stored.is_empty() {
                tracing::info!(%partition, records = stored.count(), offsets = %stored.describe(),
                    "records past the committed offset are already stored in the target; they will not be sent again");
            }
            // Everything below the group's commit was stored before it was
            // committed. Kafka's consumer starts at the commit, but
            // RocketMQ's client works out where to start on its own, and a
            // member that lost the queue may commit after that: what this
            // one reads below the commit is skipped, not copied again.
            let stored = stored.with_all_below(committed.unwrap_or(0));
            self.already_stored.record(partition, stored);
        }
        Ok(())
    }

    /// After the stored record at `offset`, the rest of its run of stored
    /// records is skipped at once, by moving the partition's fetch past it,
    /// when the run is long: a crash leaves up to `commit_interval` of
    /// copies past the commit, and reading them from Kafka only to skip them
    /// took longer than the scan that found them (87,000 records, about
    /// 0.5 s, benches/analysis.md). Records of the run that arrive anyway
    /// (prefetched, or kept while the scan ran) count as re-deliveries.
    pub(super) fn seek_past_stored(&mut self, id: &PartitionId, offset: i64) {
        let Some(last) = self.already_stored.run_end(id, offset) else {
            return;
        };
        if last - offset < SEEK_PAST_AT_LEAST {
            return;
        }
        if let Err(error) = self.source.seek(id, last + 1) {
            tracing::debug!(partition = %id, %error, "cannot move the fetch past stored records; reading and skipping them");
            return;
        }
        self.already_stored.take_through(id, last);
        self.checkpoints.skip_stored(id, offset + 1, last);
        let skipped = (last - offset) as u64;
        self.counters
            .consumed
            .fetch_add(skipped, std::sync::atomic::Ordering::Relaxed);
        self.count_already_stored(id, skipped);
    }

    /// The queues each partition's copies can be in: its own queue in
    /// `partition` mode, every queue of the target topic otherwise.
    fn queue_scans(&self, partitions: &[PartitionId]) -> Vec<TargetScan<F::Target>> {
        let mut by_queue: BTreeMap<(String, usize), TargetScan<F::Target>> = BTreeMap::new();
        for partition in partitions {
            let Some(mapping) = self.mappings.get(&*partition.topic) else {
                continue;
            };
            let indices: Vec<usize> = match mapping.config.ordering {
                Ordering::Partition => {
                    let index = F::lane_index(&mapping.rules, partition);
                    vec![mapping.router.route(index, 0, None)]
                }
                Ordering::KeyHash | Ordering::Unordered => (0..mapping.targets.len()).collect(),
            };
            for index in indices {
                let Some(target) = mapping.targets.get(index) else {
                    continue;
                };
                by_queue
                    .entry((F::target_topic(target).to_string(), index))
                    .or_insert_with(|| TargetScan {
                        target: target.clone(),
                        partitions: Vec::new(),
                    })
                    .partitions
                    .push(partition.clone());
            }
        }
        by_queue.into_values().collect()
    }
}

/// The group's committed offsets, then each target lane's tail: the
/// offsets of every partition whose copies are already stored past its
/// commit, and the commit.
async fn read_tails<F: Flow>(
    source: Arc<F::Source>,
    flow: F,
    window: Duration,
    partitions: Vec<PartitionId>,
    first: (PartitionId, i64),
    targets: &[TargetScan<F::Target>],
) -> Result<HashMap<PartitionId, (OffsetRanges, Option<i64>)>, String> {
    let lookup = partitions.clone();
    let committed =
        tokio::task::spawn_blocking(move || source.committed_offsets(&lookup, COMMITTED_TIMEOUT))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| format!("cannot read the group's committed offsets: {e}"))?;
    let group_committed: HashMap<PartitionId, Option<i64>> = committed.into_iter().collect();
    let mut committed = group_committed.clone();
    // Exact, where the group's offset could only say where fetching began.
    committed.insert(first.0, Some(first.1));
    let scans = targets
        .iter()
        .map(|scan| {
            let wanted = scan
                .partitions
                .iter()
                .map(|p| Wanted {
                    partition: p.clone(),
                    committed: committed.get(p).copied().flatten(),
                })
                .collect();
            (scan.target.clone(), wanted)
        })
        .collect();
    let mut found: HashMap<PartitionId, Vec<i64>> = HashMap::new();
    for (partition, offset) in flow.scan_tails(scans, window).await? {
        found.entry(partition).or_default().push(offset);
    }
    Ok(partitions
        .into_iter()
        .map(|p| {
            let offsets = found.remove(&p).unwrap_or_default();
            let committed = group_committed.get(&p).copied().flatten();
            (p, (OffsetRanges::from_offsets(offsets), committed))
        })
        .collect())
}
