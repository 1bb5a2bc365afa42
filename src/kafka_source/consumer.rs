//! The group consumer: subscribes to the mapped topics, never auto-commits,
//! and on revocation drains and commits what RocketMQ acknowledged before
//! giving a partition up.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering as AtomicOrdering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer,
};
use rdkafka::error::{KafkaError, KafkaResult};
use rdkafka::message::{Headers, Message};
use rdkafka::{Offset, Statistics, Timestamp, TopicPartitionList};

use super::fetch_wake::FetchWake;
use crate::checkpoint::{Checkpoints, PartitionId};
use crate::config::{KafkaConfig, StartFrom};
use crate::health::{Heartbeat, Readiness, stuck_after};
use crate::mapping::{SourceRecord, TimestampType};
use crate::status::StatusBoard;

/// A broker connection that received nothing for this long (microseconds)
/// counts as unreachable; heartbeats answer every few seconds.
const SILENT_AFTER_US: i64 = 15_000_000;

/// The consumer the bridge reads with.
pub type BridgeConsumer = StreamConsumer<SourceContext>;

/// Hooks librdkafka calls from inside `recv()`: logs, commits, rebalances.
pub struct SourceContext {
    checkpoints: Arc<Checkpoints>,
    drain_timeout: Duration,
    /// Set during shutdown, when nothing is left to drain.
    closing: AtomicBool,
    readiness: Arc<Readiness>,
    status: Arc<StatusBoard>,
    /// Partitions revoked since the dispatcher last looked, so it can drop
    /// records of theirs it holds back (the new owner reads them again).
    revoked: Mutex<Vec<PartitionId>>,
    /// Beats whenever the dispatcher polls: librdkafka delivers statistics
    /// from inside `recv()`, so they stop if the dispatcher stops polling.
    polled: Option<Arc<Heartbeat>>,
    /// For messages about refused credentials.
    bootstrap: String,
    last_auth_report: Mutex<Option<std::time::Instant>>,
    /// Wake-ups of the fetchers after a resume (see `fetch_wake`).
    pub(super) fetch_wake: FetchWake,
    /// The topics' names, shared by the records read.
    pub(super) topic_names: TopicNames,
}

impl SourceContext {
    pub fn closing(&self) {
        self.closing.store(true, AtomicOrdering::SeqCst);
    }

    /// Partitions revoked since the last call.
    pub fn take_revoked(&self) -> Vec<PartitionId> {
        std::mem::take(&mut *self.revoked.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

impl ClientContext for SourceContext {
    fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        match level {
            RDKafkaLogLevel::Emerg
            | RDKafkaLogLevel::Alert
            | RDKafkaLogLevel::Critical
            | RDKafkaLogLevel::Error => {
                tracing::error!(target: "librdkafka", facility, "{message}")
            }
            RDKafkaLogLevel::Warning => tracing::warn!(target: "librdkafka", facility, "{message}"),
            _ => tracing::debug!(target: "librdkafka", facility, "{message}"),
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        if super::is_authentication_failure(&error) {
            // Retrying cannot fix this; say what to change, once in a while.
            self.readiness
                .kafka_credentials_refused
                .store(true, AtomicOrdering::Relaxed);
            let mut last = self
                .last_auth_report
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            if last.is_none_or(|t| t.elapsed() >= Duration::from_secs(30)) {
                *last = Some(std::time::Instant::now());
                tracing::error!(
                    bootstrap = %self.bootstrap,
                    "Kafka at {} refused the credentials ({}): check kafka.properties security.protocol, \
                     sasl.mechanism, sasl.username and sasl.password (or their *_file keys); retrying",
                    self.bootstrap,
                    super::authentication_reason(reason)
                );
            }
            return;
        }
        tracing::warn!(target: "librdkafka", %error, "Kafka client error: {reason}");
    }

    /// librdkafka's statistics carry each partition's lag behind its
    /// high watermark (taken from fetch responses, so it is exact).
    fn stats(&self, statistics: Statistics) {
        if let Some(polled) = &self.polled {
            polled.beat();
        }
        // Connected is not enough: a partitioned network keeps the socket
        // open and answers nothing. A group member hears from its
        // coordinator every heartbeat, so a long silence means unreachable.
        let up = statistics
            .brokers
            .values()
            .any(|broker| broker.state == "UP" && (0..SILENT_AFTER_US).contains(&broker.rxidle));
        self.readiness.kafka_up.store(up, AtomicOrdering::Relaxed);
        if up {
            self.readiness
                .kafka_credentials_refused
                .store(false, AtomicOrdering::Relaxed);
        }
        for (topic, details) in &statistics.topics {
            for (partition, stats) in details.partitions.iter().filter(|(p, _)| **p >= 0) {
                if stats.hi_offset >= 0 {
                    let committed = Some(stats.committed_offset).filter(|o| *o >= 0);
                    self.status.offsets(
                        PartitionId::new(topic.as_str(), *partition),
                        stats.hi_offset,
                        committed,
                    );
                }
                if stats.consumer_lag >= 0 {
                    metrics::gauge!(crate::metrics::CONSUMER_LAG, "topic" => topic.clone(), "partition" => partition.to_string())
                        .set(stats.consumer_lag as f64);
                }
            }
        }
    }
}

impl SourceContext {
    /// Drains and commits partitions being revoked, so their next owner
    /// starts where this one stopped.
    fn commit_revoked(&self, consumer: &BaseConsumer<Self>, partitions: &[PartitionId]) {
        self.drain_revoked(partitions);
        let commits: Vec<_> = self
            .checkpoints
            .pending_commits()
            .into_iter()
            .filter(|(id, _)| partitions.contains(id))
            .collect();
        if let Err(error) = commit(consumer, &commits, CommitMode::Sync) {
            tracing::warn!(%error, "commit on revocation failed; the new owner resumes from the previous commit");
        } else {
            self.checkpoints.committed(&commits);
        }
    }

    /// Waits (up to `drain_timeout`) until the in-flight records of
    /// partitions being given up are stored.
    fn drain_revoked(&self, partitions: &[PartitionId]) {
        let drained = self.closing.load(AtomicOrdering::SeqCst)
            || self
                .checkpoints
                .wait_drained(partitions, self.drain_timeout);
        if !drained {
            tracing::warn!(
                timeout_s = self.drain_timeout.as_secs(),
                in_flight = self.checkpoints.in_flight(),
                "partitions revoked before their in-flight records were acknowledged; the new owner re-sends them"
            );
        }
    }

    /// Stops tracking partitions this instance no longer owns.
    fn forget(&self, partitions: &[PartitionId]) {
        self.checkpoints.revoke(partitions);
        let assigned = &self.readiness.assigned_partitions;
        let _ = assigned.fetch_update(AtomicOrdering::SeqCst, AtomicOrdering::SeqCst, |n| {
            Some(n.saturating_sub(partitions.len()))
        });
        self.status.revoked(partitions);
        self.revoked
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend(partitions.iter().cloned());
    }
}

impl ConsumerContext for SourceContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let Rebalance::Revoke(list) = rebalance else {
            return;
        };
        let partitions = partition_ids(list);
        if partitions.is_empty() {
            return;
        }
        if consumer.assignment_lost() {
            // The group took them away (no word from the coordinator within
            // the session timeout). A commit could not reach the coordinator
            // and would block the dispatcher until it answers; the next owner
            // resumes from the last commit and its restart scan skips what
            // was stored since. That scan must not run while copies of ours
            // are still on their way (it would miss them, and they would be
            // sent twice), so what is in flight is drained first.
            tracing::warn!(
                partitions = %list_text(&partitions),
                "partitions lost: the group coordinator was not heard from within the session timeout; \
                 not committing them"
            );
            self.drain_revoked(&partitions);
        } else {
            self.commit_revoked(consumer, &partitions);
        }
        self.forget(&partitions);
        tracing::info!(partitions = %list_text(&partitions), "partitions revoked");
    }

    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(list) = rebalance {
            self.readiness
                .assigned_partitions
                .fetch_add(list.count(), AtomicOrdering::SeqCst);
            let partitions = partition_ids(list);
            self.status.assigned(&partitions);
            // A cooperative rebalance that moves nothing here assigns an empty list.
            if !partitions.is_empty() {
                tracing::info!(partitions = %list_text(&partitions), "partitions assigned");
            }
        }
    }

    fn commit_callback(&self, result: KafkaResult<()>, offsets: &TopicPartitionList) {
        match result {
            Ok(()) => {
                let commits: Vec<_> = offsets
                    .elements()
                    .iter()
                    .filter_map(|e| match e.offset() {
                        Offset::Offset(offset) => {
                            Some((PartitionId::new(e.topic(), e.partition()), offset))
                        }
                        _ => None,
                    })
                    .collect();
                self.checkpoints.committed(&commits);
            }
            Err(error) => {
                tracing::warn!(%error, "offset commit failed; will retry at the next interval")
            }
        }
    }
}

/// Creates the consumer and subscribes it to `topics`.
pub fn subscribe(
    kafka: &KafkaConfig,
    topics: &[String],
    checkpoints: Arc<Checkpoints>,
    drain_timeout: Duration,
    readiness: Arc<Readiness>,
    status: Arc<StatusBoard>,
) -> Result<Arc<BridgeConsumer>, String> {
    let mut config = super::streaming_consumer_config(kafka);
    super::set_unless_given(&mut config, kafka, &super::FETCH_BATCHING);
    let reset = match kafka.start_from {
        StartFrom::Latest => "latest",
        _ => "earliest",
    };
    config.set("auto.offset.reset", reset);
    if let Some(id) = &kafka.group_instance_id {
        // Static membership: a restart under the same id takes its old
        // place and partitions without a rebalance. Only this consumer
        // joins the group, so the id goes on no other client.
        config.set("group.instance.id", id);
    }
    if !kafka
        .properties
        .contains_key("partition.assignment.strategy")
    {
        // Instances joining or leaving move only the partitions that must
        // move; the others keep flowing (an eager rebalance stops them all).
        config.set("partition.assignment.strategy", "cooperative-sticky");
    }
    let stats_interval_ms = match kafka.properties.get("statistics.interval.ms") {
        Some(value) => value
            .as_librdkafka_value()
            .trim()
            .parse::<u64>()
            .unwrap_or(0),
        None => {
            // Feeds the consumer lag metric and the dispatcher's heartbeat.
            config.set("statistics.interval.ms", "5000");
            5000
        }
    };
    // Without statistics there is no beat while Kafka is idle, so the
    // dispatcher is not watched.
    let polled = (stats_interval_ms > 0).then(|| {
        let interval = Duration::from_millis(stats_interval_ms);
        readiness.heartbeat("dispatcher", stuck_after(interval))
    });
    let context = SourceContext {
        checkpoints,
        drain_timeout,
        closing: AtomicBool::new(false),
        readiness,
        status,
        revoked: Mutex::new(Vec::new()),
        polled,
        bootstrap: kafka.bootstrap_servers.clone(),
        last_auth_report: Mutex::new(None),
        fetch_wake: FetchWake::default(),
        topic_names: TopicNames::default(),
    };
    let consumer: BridgeConsumer = config.create_with_context(context).map_err(|e| {
        format!(
            "cannot create the Kafka consumer for {}: {e}",
            kafka.bootstrap_servers
        )
    })?;
    let names: Vec<&str> = topics.iter().map(String::as_str).collect();
    consumer.subscribe(&names).map_err(|e| {
        format!(
            "cannot subscribe to {} at {}: {e}",
            names.join(", "),
            kafka.bootstrap_servers
        )
    })?;
    Ok(Arc::new(consumer))
}

/// Commits `commits` (offsets are "next to read").
pub fn commit<C: Consumer<X>, X: ConsumerContext>(
    consumer: &C,
    commits: &[(PartitionId, i64)],
    mode: CommitMode,
) -> KafkaResult<()> {
    if commits.is_empty() {
        return Ok(());
    }
    let mut list = TopicPartitionList::new();
    for (id, offset) in commits {
        list.add_partition_offset(&id.topic, id.partition, Offset::Offset(*offset))?;
    }
    consumer.commit(&list, mode)
}

/// The partitions assigned to this consumer now.
pub fn assigned(consumer: &BridgeConsumer) -> Vec<PartitionId> {
    consumer.assignment().map_or_else(
        |_| Vec::new(),
        |list| {
            list.elements()
                .iter()
                .map(|e| PartitionId::new(e.topic(), e.partition()))
                .collect()
        },
    )
}

/// The group's committed offsets of `partitions` (`None`: nothing committed).
/// Blocks for up to `timeout`.
pub fn committed_offsets(
    consumer: &BridgeConsumer,
    partitions: &[PartitionId],
    timeout: Duration,
) -> KafkaResult<Vec<(PartitionId, Option<i64>)>> {
    let mut list = TopicPartitionList::new();
    for id in partitions {
        list.add_partition(&id.topic, id.partition);
    }
    let committed = consumer.committed_offsets(list, timeout)?;
    Ok(committed
        .elements()
        .iter()
        .map(|e| {
            let offset = match e.offset() {
                Offset::Offset(offset) => Some(offset),
                _ => None,
            };
            (PartitionId::new(e.topic(), e.partition()), offset)
        })
        .collect())
}

/// Pauses or resumes every partition currently assigned.
pub fn set_paused(consumer: &BridgeConsumer, paused: bool) {
    set_paused_where(consumer, paused, |_, _| true);
}

/// Moves `partition`'s next fetch to `offset`, without waiting: librdkafka
/// drops what it prefetched from the old position.
pub fn seek(consumer: &BridgeConsumer, partition: &PartitionId, offset: i64) -> KafkaResult<()> {
    consumer.seek(
        &partition.topic,
        partition.partition,
        Offset::Offset(offset),
        Duration::ZERO,
    )
}

/// Pauses or resumes the assigned partitions that `selected` picks, by
/// topic and partition.
pub fn set_paused_where(
    consumer: &BridgeConsumer,
    paused: bool,
    selected: impl Fn(&str, i32) -> bool,
) {
    let Ok(assignment) = consumer.assignment() else {
        return;
    };
    let mut chosen = TopicPartitionList::new();
    for element in assignment.elements() {
        if selected(element.topic(), element.partition()) {
            chosen.add_partition(element.topic(), element.partition());
        }
    }
    pause_or_resume(consumer, &chosen, paused);
}

/// Pauses or resumes exactly `partitions`.
pub fn set_partitions_paused(consumer: &BridgeConsumer, partitions: &[PartitionId], paused: bool) {
    let mut chosen = TopicPartitionList::new();
    for id in partitions {
        chosen.add_partition(&id.topic, id.partition);
    }
    pause_or_resume(consumer, &chosen, paused);
}

fn pause_or_resume(consumer: &BridgeConsumer, chosen: &TopicPartitionList, paused: bool) {
    if chosen.count() == 0 {
        return;
    }
    let result = if paused {
        consumer.pause(chosen)
    } else {
        consumer.resume(chosen)
    };
    if let Err(error) = result {
        tracing::warn!(%error, paused, "cannot pause/resume the Kafka partitions");
    }
}

/// Copies a consumed message into the mapping's input: one allocation,
/// with the topic's name taken from `names`.
pub fn source_record(message: &impl Message, names: &TopicNames) -> SourceRecord {
    let timestamp = match message.timestamp() {
        Timestamp::CreateTime(ms) => Some((ms, TimestampType::CreateTime)),
        Timestamp::LogAppendTime(ms) => Some((ms, TimestampType::LogAppendTime)),
        Timestamp::NotAvailable => None,
    };
    let headers = message.headers();
    let count = headers.map_or(0, |headers| headers.count());
    let headers = (0..count).filter_map(move |i| headers?.try_get(i));
    SourceRecord::new(
        names.get(message.topic()),
        message.partition(),
        message.offset(),
        timestamp,
        message.key(),
        message.payload(),
        headers.map(|header| (header.key, header.value)),
    )
}

/// The names of the topics read, shared by their records, so that a
/// record's topic costs a comparison instead of an allocation.
#[derive(Debug, Default)]
pub struct TopicNames {
    known: Mutex<foldhash::HashSet<Arc<str>>>,
}

impl TopicNames {
    pub fn get(&self, name: &str) -> Arc<str> {
        let mut known = self.known.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(shared) = known.get(name) {
            return Arc::clone(shared);
        }
        let shared: Arc<str> = Arc::from(name);
        known.insert(Arc::clone(&shared));
        shared
    }
}

fn partition_ids(list: &TopicPartitionList) -> Vec<PartitionId> {
    list.elements()
        .iter()
        .map(|e| PartitionId::new(e.topic(), e.partition()))
        .collect()
}

fn list_text(partitions: &[PartitionId]) -> String {
    let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for id in partitions {
        by_topic.entry(&id.topic).or_default().push(id.partition);
    }
    by_topic
        .iter()
        .map(|(topic, parts)| format!("{topic}{parts:?}"))
        .collect::<Vec<_>>()
        .join(" ")
}
