//! The dispatcher: the one task that reads Kafka, in order, and hands each
//! record on (mapping, routing, the queue's sender), or applies its policy.
//!
//! It is also where back-pressure happens, always by pausing Kafka and never
//! by buffering without bound:
//! - a rate limiter that refuses a record holds back that record's topic
//!   (later records of the topic queue behind it, up to a bound, then its
//!   partitions pause); other topics go on;
//! - a full queue buffer parks the record's partition: its later records
//!   wait in order behind it, and past a bound the partition pauses; other
//!   partitions go on (see `parked`);
//! - the in-flight byte cap makes it wait for the senders; if that lasts
//!   over [`PAUSE_AFTER`], every partition pauses.
//!
//! While paused it keeps polling, so the group does not evict it; what
//! arrives meanwhile is kept in order.

mod parked;
mod restart_scan;

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::Ordering as AtomicOrdering;
use std::time::{Duration, Instant};

use foldhash::{HashMap, HashMapExt, HashSet, HashSetExt};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use super::flow::{Flow, InRecord, OutRecord};
use super::{DispatchCounters, MappingRuntime, QueuedFor, SenderParts, Stop, start_senders};
use crate::already_stored::AlreadyStored;
use crate::checkpoint::{Checkpoints, PartitionId};
use crate::config::{BridgeSettings, Direction, LiveLimits, MappingConfig, RecordPolicy};
use crate::dead_letter::DeadLetterWriter;
use crate::in_flight::{InFlight, InFlightBudget};
use crate::mapping::Rejection;
use crate::metrics::mapping_labels;
use crate::rate_limit::{Admission, LimiterKind, RateLimits, Throttled};
use crate::source::{Incoming, Source};
use crate::status::{StatusBoard, ThrottleChange};
use parked::{PARKED_RETRY, ParkedPartition};

/// How long the dispatcher waits for the senders without polling Kafka
/// before it pauses the partitions and polls. Short waits are the normal
/// rhythm of a backlog: librdkafka's prefetch (bounded by
/// `queued.max.messages.kbytes`) absorbs them, while a pause would drop
/// that prefetch and cost a fetch round trip on resume. Long waits (RocketMQ
/// failing) must poll, or the group would evict the instance.
const PAUSE_AFTER: Duration = Duration::from_secs(1);

/// How often the dispatcher asks librdkafka again while it waits for a
/// record. rdkafka's `recv()` sleeps until librdkafka reports that its
/// queue turned non-empty, and on the Apache pair that report went missing
/// during copies: a 1,000,000-record copy had 6-9 waits of 0.3-1 s each,
/// 3.7-6.5 s in all, which a re-poll every 5 ms cut to 0.7 s in all
/// (benches/analysis.md, "the dispatcher's lost wake-ups"). An idle
/// bridge pays one cheap poll per tick.
const REPOLL_EVERY: Duration = Duration::from_millis(5);

/// Records of one source topic waiting for a rate limiter, oldest first.
struct HeldRecords<R> {
    records: VecDeque<R>,
    bytes: u64,
    /// How far the front record got through its limiters.
    admission: Admission,
    /// The limiter holding the front record, and since when.
    blocked: (LimiterKind, Instant),
    retry_at: Instant,
    /// Whether this topic's partitions are paused for it.
    paused: bool,
}

pub(super) struct Dispatcher<F: Flow> {
    pub source: Arc<F::Source>,
    pub checkpoints: Arc<Checkpoints>,
    /// By source topic.
    pub mappings: HashMap<String, MappingRuntime<F>>,
    pub dead_letters: Option<DeadLetterWriter>,
    pub counters: Arc<DispatchCounters>,
    /// Records that arrived while every partition was being paused.
    pub stash: VecDeque<InRecord<F>>,
    /// By source topic: records a rate limiter holds back.
    held: HashMap<String, HeldRecords<InRecord<F>>>,
    /// Partitions waiting for a full queue buffer.
    parked: HashMap<PartitionId, ParkedPartition<F>>,
    /// What the parked records behind them weigh (`Incoming::limited_bytes`).
    parked_bytes: u64,
    pub sender_parts: SenderParts<F>,
    pub sender_tasks: Vec<JoinHandle<()>>,
    /// Bytes handed to the senders and not stored yet.
    in_flight: Arc<InFlightBudget>,
    pub settings: BridgeSettings,
    /// New target plans from the watcher: (source topic, target lanes).
    pub replans: mpsc::Receiver<(String, Vec<F::Target>)>,
    limits: RateLimits,
    max_in_flight_bytes: u64,
    prefetch_bytes: u64,
    /// How far back the restart scan reads; `None` when
    /// `exactly_once_restarts` is off.
    restart_scan_window: Option<Duration>,
    already_stored: AlreadyStored,
    /// Partitions revoked since the record in hand reached [`Self::dispatch`].
    /// The waits there poll Kafka, and so run the rebalance callback.
    revoked_meanwhile: HashSet<PartitionId>,
    limit_updates: watch::Receiver<LiveLimits>,
    status: Arc<StatusBoard>,
}

/// What the dispatcher starts from.
pub(super) struct DispatcherParts<F: Flow> {
    pub source: Arc<F::Source>,
    pub checkpoints: Arc<Checkpoints>,
    pub mappings: HashMap<String, MappingRuntime<F>>,
    pub dead_letters: Option<DeadLetterWriter>,
    pub counters: Arc<DispatchCounters>,
    pub sender_parts: SenderParts<F>,
    pub sender_tasks: Vec<JoinHandle<()>>,
    pub in_flight: Arc<InFlightBudget>,
    pub settings: BridgeSettings,
    /// librdkafka's prefetch budget, taken out of the in-flight cap.
    pub prefetch_bytes: u64,
    pub replans: mpsc::Receiver<(String, Vec<F::Target>)>,
    pub limit_updates: watch::Receiver<LiveLimits>,
    pub status: Arc<StatusBoard>,
    pub restart_scan_window: Option<Duration>,
}

impl<F: Flow> Dispatcher<F> {
    pub fn new(parts: DispatcherParts<F>) -> Self {
        let mut limit_updates = parts.limit_updates;
        let limits = limit_updates.borrow_and_update().clone();
        Dispatcher {
            source: parts.source,
            checkpoints: parts.checkpoints,
            mappings: parts.mappings,
            dead_letters: parts.dead_letters,
            counters: parts.counters,
            stash: VecDeque::new(),
            held: HashMap::new(),
            parked: HashMap::new(),
            parked_bytes: 0,
            sender_parts: parts.sender_parts,
            sender_tasks: parts.sender_tasks,
            in_flight: parts.in_flight,
            settings: parts.settings,
            replans: parts.replans,
            limits: RateLimits::new(&limits),
            max_in_flight_bytes: limits.max_in_flight_bytes,
            prefetch_bytes: parts.prefetch_bytes,
            restart_scan_window: parts.restart_scan_window,
            already_stored: AlreadyStored::default(),
            revoked_meanwhile: HashSet::new(),
            limit_updates,
            status: parts.status,
        }
    }

    pub async fn run(&mut self, shutdown: &mut watch::Receiver<bool>) -> Stop {
        let mut last_error_log: Option<Instant> = None;
        let mut parked_retry = Instant::now();
        let mut repoll = tokio::time::interval(REPOLL_EVERY);
        repoll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            if *shutdown.borrow() {
                return Stop::Signal;
            }
            if let Some(message) = self.stash.pop_front() {
                if let Err(stop) = self.accept(message, shutdown).await {
                    return stop;
                }
                continue;
            }
            let next_release = self.held.values().map(|h| h.retry_at).min();
            let step = tokio::select! {
                received = self.source.recv() => match received {
                    Ok(record) => {
                        self.forget_revoked();
                        self.accept(record, shutdown).await
                    }
                    Err(error) => {
                        // Transient by nature (broker down, rebalance); librdkafka reconnects.
                        if last_error_log.is_none_or(|t| t.elapsed() > Duration::from_secs(30)) {
                            tracing::warn!(%error, "consume error; retrying");
                            last_error_log = Some(Instant::now());
                        }
                        Ok(())
                    }
                },
                _ = shutdown.changed() => Err(Stop::Signal),
                Some((topic, queues)) = self.replans.recv() => self.replan(&topic, queues, shutdown).await,
                _ = sleep_until(next_release), if next_release.is_some() => self.release_held(shutdown).await,
                _ = tokio::time::sleep_until(parked_retry.into()), if !self.parked.is_empty() => {
                    parked_retry = Instant::now() + PARKED_RETRY;
                    self.drain_parked(true, shutdown).await
                }
                Ok(()) = self.limit_updates.changed() => {
                    self.apply_new_limits();
                    Ok(())
                }
                // The next turn's `recv()` polls librdkafka's queue afresh.
                _ = repoll.tick() => Ok(()),
            };
            if let Err(stop) = step {
                return stop;
            }
        }
    }

    /// A record in Kafka order: queued behind its topic's held records, or
    /// admitted by the limiters and dispatched, or held itself.
    async fn accept(
        &mut self,
        message: InRecord<F>,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<(), Stop> {
        if let Some(held) = self.held.get_mut(message.topic()) {
            held.bytes += message.limited_bytes();
            held.records.push_back(message);
            let topic = held.records[0].topic().to_string();
            self.pause_if_full(&topic);
            return Ok(());
        }
        let mut admission = Admission::default();
        match self.admit(&message, &mut admission) {
            Ok(()) => self.dispatch(message, shutdown).await,
            Err(throttled) => {
                self.hold(message, admission, throttled);
                Ok(())
            }
        }
    }

    fn admit(&self, message: &InRecord<F>, admission: &mut Admission) -> Result<(), Throttled> {
        if self.limits.is_unlimited() {
            return Ok(());
        }
        let Some(mapping) = self.mappings.get(message.topic()) else {
            return Ok(());
        };
        self.limits
            .admit(&mapping.limit_label, message.limited_bytes(), admission)
    }

    fn hold(&mut self, message: InRecord<F>, admission: Admission, throttled: Throttled) {
        let topic = message.topic().to_string();
        let now = Instant::now();
        self.note_throttled(&topic, throttled.limiter);
        self.held.insert(
            topic.clone(),
            HeldRecords {
                bytes: message.limited_bytes(),
                records: VecDeque::from([message]),
                admission,
                blocked: (throttled.limiter, now),
                retry_at: now + throttled.wait,
                paused: false,
            },
        );
        self.pause_if_full(&topic);
    }

    /// Pauses a topic whose held records reached the bound: the queue
    /// buffer's record count, or a quarter of the in-flight cap.
    fn pause_if_full(&mut self, topic: &str) {
        let (records_bound, bytes_bound) = self.hold_bounds();
        let Some(held) = self.held.get_mut(topic) else {
            return;
        };
        if !held.paused && (held.records.len() >= records_bound || held.bytes >= bytes_bound) {
            held.paused = true;
            self.source
                .set_paused_where(true, &|id| *id.topic == *topic);
        }
    }

    fn hold_bounds(&self) -> (usize, u64) {
        (
            self.settings.queue_buffer_records.max(1),
            (self.max_in_flight_bytes / 4).max(1),
        )
    }

    /// Lets through the held records whose limiters allow them now.
    async fn release_held(&mut self, shutdown: &mut watch::Receiver<bool>) -> Result<(), Stop> {
        let now = Instant::now();
        let mut due: Vec<String> = self
            .held
            .iter()
            .filter(|(_, held)| held.retry_at <= now)
            .map(|(topic, _)| topic.clone())
            .collect();
        due.sort();
        for topic in due {
            self.release_topic(&topic, shutdown).await?;
        }
        Ok(())
    }

    async fn release_topic(
        &mut self,
        topic: &str,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<(), Stop> {
        loop {
            let Some(held) = self.held.get(topic) else {
                return Ok(());
            };
            let Some(front) = held.records.front() else {
                self.end_hold(topic);
                return Ok(());
            };
            let mut admission = held.admission;
            let admitted = self.admit(front, &mut admission);
            let label = self.mapping_label(topic);
            let (records_bound, bytes_bound) = self.hold_bounds();
            let Some(held) = self.held.get_mut(topic) else {
                return Ok(());
            };
            let now = Instant::now();
            match admitted {
                Ok(()) => {
                    let (limiter, since) = held.blocked;
                    count_throttled(&label, F::DIRECTION, limiter, now.duration_since(since));
                    held.blocked = (limiter, now);
                    held.admission = Admission::default();
                    let Some(message) = held.records.pop_front() else {
                        return Ok(());
                    };
                    held.bytes = held.bytes.saturating_sub(message.limited_bytes());
                    // Resume at half the bound, not at once: fewer pause/resume
                    // cycles, each of which makes librdkafka fetch again.
                    let resume = held.paused
                        && held.records.len() <= records_bound / 2
                        && held.bytes <= bytes_bound / 2;
                    if resume {
                        held.paused = false;
                        self.resume_where(|id| *id.topic == *topic);
                    }
                    self.dispatch(message, shutdown).await?;
                }
                Err(throttled) => {
                    held.admission = admission;
                    held.retry_at = now + throttled.wait;
                    let (limiter, since) = held.blocked;
                    if limiter != throttled.limiter {
                        count_throttled(&label, F::DIRECTION, limiter, now.duration_since(since));
                        held.blocked = (throttled.limiter, now);
                    }
                    self.note_throttled(topic, throttled.limiter);
                    return Ok(());
                }
            }
        }
    }

    fn end_hold(&mut self, topic: &str) {
        if let Some(held) = self.held.remove(topic)
            && held.paused
        {
            self.resume_where(|id| *id.topic == *topic);
        }
    }

    fn mapping_label(&self, topic: &str) -> String {
        self.mappings
            .get(topic)
            .map_or_else(|| topic.to_string(), |m| m.label.clone())
    }

    /// Reports a throttle to the status board; its start is one log line.
    fn note_throttled(&self, topic: &str, limiter: LimiterKind) {
        let label = self.mapping_label(topic);
        if let Some(ThrottleChange::Started { limiter }) =
            self.status.throttled(&label, limiter.label())
        {
            let source = F::DIRECTION.source_system();
            tracing::info!(
                mapping = %label,
                limiter,
                "mapping throttled by a rate limit; its records wait, reading from {source} pauses if they pile up"
            );
        }
    }

    /// SIGHUP brought new limits: they apply from the next record on.
    fn apply_new_limits(&mut self) {
        let limits = self.limit_updates.borrow_and_update().clone();
        self.limits = RateLimits::reloaded(&limits);
        self.max_in_flight_bytes = limits.max_in_flight_bytes;
        let now = Instant::now();
        for held in self.held.values_mut() {
            held.admission = Admission::default();
            held.retry_at = now;
        }
        self.status.set_limits(&limits);
        tracing::info!(limits = %limits.describe(), "new limits applied");
    }

    /// Drops held and stashed records of partitions revoked meanwhile: the
    /// new owner reads them again from the committed offset.
    fn forget_revoked(&mut self) {
        let revoked = self.source.take_revoked();
        if revoked.is_empty() {
            return;
        }
        self.already_stored.forget(&revoked);
        let gone: HashSet<PartitionId> = revoked.into_iter().collect();
        self.revoked_meanwhile.extend(gone.iter().cloned());
        let is_gone = |m: &InRecord<F>| gone.contains(&m.lane());
        self.stash.retain(|m| !is_gone(m));
        self.forget_parked(&gone);
        for held in self.held.values_mut() {
            held.records.retain(|m| !is_gone(m));
            held.bytes = held.records.iter().map(Incoming::limited_bytes).sum();
        }
        let emptied: Vec<String> = self
            .held
            .iter()
            .filter(|(_, held)| held.records.is_empty())
            .map(|(topic, _)| topic.clone())
            .collect();
        emptied.iter().for_each(|topic| self.end_hold(topic));
    }

    /// A record received while every partition is paused: kept, in order.
    fn keep_received(&mut self, message: InRecord<F>) {
        self.forget_revoked();
        self.stash.push_back(message);
        // A partition assigned meanwhile is not paused yet.
        self.source.set_paused(true);
    }

    /// Resumes every partition except those that must stay paused.
    fn resume_all(&self) {
        self.resume_where(|_| true);
    }

    /// Resumes the partitions `selected` picks, except those of topics
    /// held by a limiter and parked partitions.
    fn resume_where(&self, selected: impl Fn(&PartitionId) -> bool) {
        self.source.set_paused_where(false, &|id| {
            selected(id)
                && self.held.get(&*id.topic).is_none_or(|held| !held.paused)
                && !self.is_parked(id)
        });
        Arc::clone(&self.source).wake_resumed();
    }

    async fn dispatch(
        &mut self,
        record: InRecord<F>,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<(), Stop> {
        let id = record.lane();
        let Some(record) = self.park_behind(&id, record) else {
            return Ok(());
        };
        let offset = record.offset();
        // Revocations taken so far were applied to the stash and the held
        // records, so the record in hand is not of those partitions. One not
        // taken yet may be its partition's: it counts as "meanwhile".
        self.revoked_meanwhile.clear();
        if let Some(window) = self.restart_scan_window
            && !self.already_stored.is_scanned(&id)
        {
            self.scan_new_partitions(window, &id, offset, shutdown)
                .await?;
            if self.revoked_while_waiting(&id, offset) {
                return Ok(());
            }
        }
        if self.checkpoints.is_redelivery(&id, offset) {
            return Ok(());
        }
        self.counters.consumed.fetch_add(1, AtomicOrdering::Relaxed);
        if self.already_stored.take(&id, offset) {
            self.checkpoints.dispatch(&id, offset);
            self.skip_already_stored(&id, offset);
            self.seek_past_stored(&id, offset);
            return Ok(());
        }
        let Some(mapping) = self.mappings.get(record.topic()) else {
            // Subscribed topics are exactly the mapped ones; nothing else arrives.
            return Err(Stop::RecordFailed(format!(
                "record from unmapped topic {id}@{offset}"
            )));
        };
        mapping.consumed.increment(1);
        mapping.consumed_bytes.increment(record.value_bytes());
        match self.sender_parts.flow.encode(mapping, &record, &id) {
            Ok((lane, outgoing)) => {
                let sender = mapping.senders[lane].clone();
                let size = outgoing.footprint() as i64;
                self.wait_for_in_flight_room(size, record.topic(), shutdown)
                    .await?;
                self.hand_over(&sender, outgoing, lane)
            }
            Err(rejection) => {
                self.checkpoints.dispatch(&id, offset);
                self.reject(record, id, rejection)
            }
        }
    }

    /// A previous owner stored this record's copy: acknowledged, not sent.
    fn skip_already_stored(&mut self, id: &PartitionId, offset: i64) {
        self.checkpoints.acknowledge(id, [offset]);
        self.count_already_stored(id, 1);
    }

    fn count_already_stored(&self, id: &PartitionId, records: u64) {
        self.counters
            .already_stored
            .fetch_add(records, AtomicOrdering::Relaxed);
        if let Some(mapping) = self.mappings.get(&*id.topic) {
            mapping.consumed.increment(records);
            metrics::counter!(
                crate::metrics::RECORDS_ALREADY_STORED,
                mapping_labels(&mapping.label, F::DIRECTION, &[])
            )
            .increment(records);
        }
    }

    /// Waits until `size` more bytes fit under the in-flight cap. Nothing in
    /// flight means room for any record, however big.
    async fn wait_for_in_flight_room(
        &mut self,
        size: i64,
        topic: &str,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<(), Stop> {
        let budget = Arc::clone(&self.in_flight);
        let cap = i64::try_from(self.records_budget()).unwrap_or(i64::MAX);
        // Go on only once half the cap is free, so a full pipeline does not
        // stop and start for every record.
        let room = || {
            let now = budget.used();
            now <= 0 || (now + size <= cap && now <= cap / 2)
        };
        let first = budget.used();
        if first <= 0 || first + size <= cap {
            return Ok(());
        }
        let since = Instant::now();
        let mut paused = false;
        let freed = async {
            while !room() {
                budget.freed().await;
            }
        };
        let result = self
            .polling_while(freed, since + PAUSE_AFTER, &mut paused, shutdown)
            .await
            .ok_or(Stop::Signal);
        if paused {
            self.resume_all();
        }
        count_throttled(
            &self.mapping_label(topic),
            F::DIRECTION,
            LimiterKind::InFlightBytes,
            since.elapsed(),
        );
        result
    }

    /// Runs `work`. Past `pause_at` it pauses the source and keeps it
    /// polled, so the group does not evict this instance; what arrives
    /// meanwhile is kept in order. `None` if a shutdown came first.
    ///
    /// Work done before `pause_at` neither pauses nor resumes: a pause
    /// drops what librdkafka prefetched, and the resume fetches it again.
    /// `paused` says whether it paused; the caller resumes.
    async fn polling_while<T>(
        &mut self,
        work: impl Future<Output = T>,
        pause_at: Instant,
        paused: &mut bool,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Option<T> {
        let mut work = std::pin::pin!(work);
        loop {
            if !*paused && Instant::now() >= pause_at {
                *paused = true;
                self.source.set_paused(true);
            }
            tokio::select! {
                done = &mut work => return Some(done),
                _ = tokio::time::sleep_until(pause_at.into()), if !*paused => {}
                received = self.source.recv(), if *paused => {
                    if let Ok(record) = received {
                        self.keep_received(record);
                    }
                }
                _ = shutdown.changed() => return None,
            }
        }
    }

    /// The records' share of the in-flight cap: what librdkafka's prefetch
    /// leaves, and at least a quarter of the cap (a cap lowered on SIGHUP
    /// does not shrink the prefetch, which is fixed at start).
    fn records_budget(&self) -> u64 {
        let cap = self.max_in_flight_bytes;
        cap.saturating_sub(self.prefetch_bytes).max(cap / 4)
    }

    /// Whether the record in hand lost its partition to a rebalance while it
    /// waited. The partition's next owner reads it again from the committed
    /// offset, which is not past it since it was never put in flight; a copy
    /// sent now could land after that owner's restart scan and be stored twice.
    fn revoked_while_waiting(&mut self, id: &PartitionId, offset: i64) -> bool {
        self.forget_revoked();
        let revoked = self.revoked_meanwhile.contains(id);
        if revoked {
            tracing::info!(record = %format!("{id}@{offset}"),
                "partition revoked while its record waited; the record is left to the partition's next owner");
        }
        revoked
    }

    /// Gives `envelope` to its queue's sender, or parks its partition if
    /// that sender's buffer is full.
    fn hand_over(
        &mut self,
        sender: &mpsc::Sender<QueuedFor<F>>,
        envelope: OutRecord<F>,
        queue: usize,
    ) -> Result<(), Stop> {
        match sender.try_reserve() {
            Ok(permit) => {
                self.put_in_flight(permit, envelope);
                Ok(())
            }
            Err(mpsc::error::TrySendError::Full(())) => {
                self.park(sender, envelope, queue);
                Ok(())
            }
            Err(mpsc::error::TrySendError::Closed(())) => Err(Stop::Signal),
        }
    }

    /// Puts the record in flight, unless its partition was revoked while it
    /// waited: checkpointed as dispatched, counted against the cap until
    /// its batch is stored, sent.
    fn put_in_flight(&mut self, slot: mpsc::Permit<'_, QueuedFor<F>>, envelope: OutRecord<F>) {
        if self.revoked_while_waiting(&envelope.partition, envelope.offset) {
            return;
        }
        self.checkpoints
            .dispatch(&envelope.partition, envelope.offset);
        let permit = self.in_flight.take(envelope.footprint());
        slot.send(InFlight {
            record: envelope,
            permit,
        });
    }

    /// Switches a mapping to a new queue list. Every record already routed
    /// is stored first, so no key has records in flight on two queues.
    async fn replan(
        &mut self,
        topic: &str,
        queues: Vec<F::Target>,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<(), Stop> {
        self.source.set_paused(true);
        // Parked records of the topic go to their queues first: the new
        // plan may route their keys elsewhere.
        loop {
            self.drain_parked(false, shutdown).await?;
            let parked = self.parked.keys().any(|id| *id.topic == *topic);
            if !parked && self.checkpoints.in_flight_of_topic(topic) == 0 {
                break;
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(50)) => {}
                received = self.source.recv() => {
                    if let Ok(record) = received {
                        self.keep_received(record);
                    }
                }
                _ = shutdown.changed() => return Err(Stop::Signal),
            }
        }
        if let Some(mapping) = self.mappings.get_mut(topic) {
            let (router, senders) = start_senders(
                &self.sender_parts,
                &mapping.config,
                &queues,
                &self.settings,
                &mut self.sender_tasks,
            );
            mapping.router = router;
            mapping.targets = queues;
            // The old senders are idle; dropping their channels ends them.
            mapping.senders = senders;
            tracing::warn!(mapping = %mapping.label, queues = router.queue_count(), "mapping re-planned onto the new queue count");
        }
        self.resume_all();
        Ok(())
    }

    fn count_skipped(&self, mapping: &str, rejection: Rejection, value_bytes: u64) {
        self.counters.skipped.fetch_add(1, AtomicOrdering::Relaxed);
        let labels = mapping_labels(mapping, F::DIRECTION, &[("reason", rejection.reason())]);
        metrics::counter!(crate::metrics::RECORDS_SKIPPED, labels.iter()).increment(1);
        metrics::counter!(crate::metrics::BYTES_SKIPPED, labels.iter()).increment(value_bytes);
    }

    fn reject(
        &mut self,
        record: InRecord<F>,
        id: PartitionId,
        rejection: Rejection,
    ) -> Result<(), Stop> {
        let Some(mapping) = self.mappings.get(record.topic()) else {
            return Ok(());
        };
        let policy = mapping.config.policy_for(rejection);
        let offset = record.offset();
        let coordinates = format!("{id}@{offset}");
        // Value bytes, like bridge_bytes_consumed_total.
        let value_bytes = record.value_bytes();
        match policy {
            RecordPolicy::Fail => {
                let field = MappingConfig::policy_field(rejection);
                let reason = format!(
                    "record {coordinates} of mapping {} cannot be copied: {rejection}. The bridge stopped without \
                     committing past it. Set mappings[].{field} to skip or dead_letter to let it through.",
                    mapping.label
                );
                tracing::error!(mapping = %mapping.label, record = %coordinates, reason = rejection.reason(), "{reason}");
                Err(Stop::RecordFailed(reason))
            }
            // The bridge's own copies come by the thousand in a pair mapped
            // both ways: counted like every skip, logged at debug.
            RecordPolicy::Skip if rejection == Rejection::BridgeCopy => {
                tracing::debug!(mapping = %mapping.label, record = %coordinates, "record not copied back: {rejection}");
                self.count_skipped(&mapping.label, rejection, value_bytes);
                self.checkpoints.acknowledge(&id, [offset]);
                Ok(())
            }
            RecordPolicy::Skip => {
                tracing::warn!(
                    mapping = %mapping.label, record = %coordinates, reason = rejection.reason(),
                    "record skipped by policy: {rejection}"
                );
                self.count_skipped(&mapping.label, rejection, value_bytes);
                self.checkpoints.acknowledge(&id, [offset]);
                Ok(())
            }
            RecordPolicy::DeadLetter => {
                let (Some(writer), Some(dlq)) =
                    (&self.dead_letters, &mapping.config.dead_letter_topic)
                else {
                    return Err(Stop::RecordFailed(format!(
                        "{coordinates}: dead_letter policy without a dead-letter writer"
                    )));
                };
                tracing::warn!(
                    mapping = %mapping.label, record = %coordinates, reason = rejection.reason(), dead_letter_topic = %dlq,
                    "record sent to the dead-letter topic: {rejection}"
                );
                self.counters
                    .dead_lettered
                    .fetch_add(1, AtomicOrdering::Relaxed);
                let labels = mapping_labels(
                    &mapping.label,
                    F::DIRECTION,
                    &[("reason", rejection.reason())],
                );
                metrics::counter!(crate::metrics::RECORDS_DEAD_LETTERED, labels.iter())
                    .increment(1);
                metrics::counter!(crate::metrics::BYTES_DEAD_LETTERED, labels.iter())
                    .increment(value_bytes);
                writer.write(dlq.clone(), record.into_dead_letter(), id, rejection);
                Ok(())
            }
        }
    }
}

fn count_throttled(mapping: &str, direction: Direction, limiter: LimiterKind, waited: Duration) {
    if waited.is_zero() {
        return;
    }
    let labels = mapping_labels(mapping, direction, &[("limiter", limiter.label())]);
    metrics::histogram!(crate::metrics::THROTTLED, labels.iter()).record(waited.as_secs_f64());
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}
