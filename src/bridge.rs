//! `run`: wires source -> mapping -> router -> sink -> checkpoint and keeps
//! it going until a signal or a `fail` policy stops it.
//!
//! One dispatcher task reads Kafka in order and hands each mapped record to
//! the sender of its queue. When a sender's buffer is full the dispatcher
//! pauses the Kafka assignment and keeps polling (so the group does not
//! evict it) until there is room. A committer task commits acknowledged
//! offsets every `commit_interval`.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering as AtomicOrdering};
use std::time::{Duration, Instant};

use rdkafka::Message as _;
use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::message::OwnedMessage;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::checkpoint::{Checkpoints, PartitionId};
use metrics::Counter;
use rocketmq_client_rust::DefaultMQProducer;
use rocketmq_model::message::MessageQueue;

use crate::config::{
    BridgeConfig, BridgeSettings, MappingConfig, MessageIds, RecordPolicy, StartFrom,
};
use crate::dead_letter::DeadLetterWriter;
use crate::health::Readiness;
use crate::kafka_source::consumer::{self, BridgeConsumer};
use crate::kafka_source::{self, start_position};
use crate::mapping::{self, MappingRules, Rejection, SourceRecord};
use crate::message_id;
use crate::rocketmq_sink::queue_sender::{
    self, Envelope, SendCounters, SenderSettings, SenderShared,
};
use crate::rocketmq_sink::{self, RocketMqRuntime};
use crate::router::QueueRouter;

/// Why `run` returned.
#[derive(Debug)]
pub enum RunOutcome {
    /// Stopped by a signal; everything acknowledged was committed.
    Stopped(RunSummary),
    /// A record hit a `fail` policy; nothing past it was committed.
    RecordFailed { summary: RunSummary, reason: String },
}

/// Totals for the closing log line and the exit code.
#[derive(Debug, Clone, Default)]
pub struct RunSummary {
    pub consumed: u64,
    pub produced: u64,
    pub skipped: u64,
    pub dead_lettered: u64,
    /// Whether every sender drained before `shutdown_timeout`.
    pub drained: bool,
}

/// Start-up failed; nothing was consumed.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct StartError(String);

/// One mapping at run time.
struct MappingRuntime {
    label: String,
    consumed: Counter,
    consumed_bytes: Counter,
    rules: MappingRules,
    router: QueueRouter,
    senders: Vec<mpsc::Sender<Envelope>>,
    config: MappingConfig,
}

/// Why the dispatcher stopped.
enum Stop {
    Signal,
    RecordFailed(String),
}

/// Counters the dispatcher keeps.
#[derive(Default)]
struct DispatchCounters {
    consumed: AtomicU64,
    skipped: AtomicU64,
    dead_lettered: AtomicU64,
}

/// Runs the bridge until `shutdown` turns true or a record fails.
pub async fn run(
    config: BridgeConfig,
    mut shutdown: watch::Receiver<bool>,
    readiness: Arc<Readiness>,
) -> Result<RunOutcome, StartError> {
    // Topics created later that match a regex are picked up at the next start.
    let config = kafka_source::resolve_regex_mappings(&config, Duration::from_secs(30))
        .await
        .map_err(StartError)?;
    let settings = &config.bridge;
    let checkpoints = Checkpoints::new();
    let runtime = RocketMqRuntime::start(2).map_err(StartError)?;
    let mut producer = rocketmq_sink::start_producer(runtime.client_runtime(), &config.rocketmq)
        .await
        .map_err(|e| StartError(e.to_string()))?;
    let batch_bytes = settings
        .max_batch_bytes
        .0
        .min(config.rocketmq.max_message_size.0) as usize;
    let mut plans = Vec::new();
    for mapping in &config.mappings {
        let queues = rocketmq_sink::fetch_queues(
            &mut producer,
            &mapping.rocketmq_topic,
            &config.rocketmq.name_server,
            Duration::from_secs(30),
        )
        .await
        .map_err(|e| StartError(e.to_string()))?;
        plans.push((mapping.clone(), queues));
    }
    let sender_context = SenderShared {
        readiness: Arc::clone(&readiness),
        producer: Arc::new(producer),
        checkpoints: Arc::clone(&checkpoints),
        counters: Arc::new(SendCounters::default()),
        settings: SenderSettings {
            max_batch_records: settings.max_batch_records,
            max_batch_bytes: batch_bytes,
            send_timeout: config.rocketmq.send_timeout.0,
            max_backoff: settings.max_retry_backoff.0,
        },
    };
    let mut sender_tasks = Vec::new();
    let mut mappings = HashMap::new();
    let mut watched = Vec::new();
    for (mapping, queues) in plans {
        watched.push((
            mapping.kafka_topic.clone(),
            mapping.rocketmq_topic.clone(),
            queues.len(),
        ));
        let (router, senders) = start_senders(
            &sender_context,
            &mapping,
            queues,
            settings,
            &mut sender_tasks,
        );
        tracing::info!(
            mapping = mapping.label(), kafka_topic = %mapping.kafka_topic, rocketmq_topic = %mapping.rocketmq_topic,
            queues = router.queue_count(), ordering = %mapping.ordering, "mapping ready"
        );
        let rules = MappingRules {
            tag: mapping.tag.clone(),
            tag_header: mapping.tag_header.clone(),
            max_message_size: config.rocketmq.max_message_size.0 as usize,
        };
        let label = mapping.label().to_string();
        mappings.insert(
            mapping.kafka_topic.clone(),
            MappingRuntime {
                consumed: metrics::counter!(crate::metrics::RECORDS_CONSUMED, "mapping" => label.clone()),
                consumed_bytes: metrics::counter!(crate::metrics::BYTES_CONSUMED, "mapping" => label.clone()),
                label,
                rules,
                router,
                senders,
                config: mapping,
            },
        );
    }
    let dead_letters = if config
        .mappings
        .iter()
        .any(|m| m.dead_letter_topic.is_some())
    {
        Some(DeadLetterWriter::new(&config.kafka, Arc::clone(&checkpoints)).map_err(StartError)?)
    } else {
        None
    };
    let topics: Vec<String> = config.kafka_topics();
    if let StartFrom::Timestamp(ms) = config.kafka.start_from {
        start_position::commit_start_offsets(&config.kafka, &topics, ms, Duration::from_secs(30))
            .map_err(StartError)?;
    }
    let consumer = consumer::subscribe(
        &config.kafka,
        &topics,
        Arc::clone(&checkpoints),
        settings.shutdown_timeout.0,
        Arc::clone(&readiness),
    )
    .map_err(StartError)?;
    readiness.running.store(true, AtomicOrdering::Relaxed);
    tracing::info!(group = %config.kafka.group_id, topics = %topics.join(","), "bridge running");

    let committer = spawn_committer(
        Arc::clone(&consumer),
        Arc::clone(&checkpoints),
        settings.commit_interval.0,
    );
    let counters = Arc::new(DispatchCounters::default());
    let gauges = spawn_gauges(
        Arc::clone(&sender_context.counters),
        Arc::clone(&checkpoints),
    );
    let reporter = spawn_reporter(
        Arc::clone(&counters),
        Arc::clone(&sender_context.counters),
        Arc::clone(&checkpoints),
    );
    let (replan_tx, replans) = mpsc::channel(16);
    let watcher = spawn_queue_watcher(
        Arc::clone(&sender_context.producer),
        Arc::clone(&readiness),
        config.rocketmq.name_server.clone(),
        watched,
        settings.queue_refresh_interval.0,
        replan_tx,
    );
    let mut dispatcher = Dispatcher {
        consumer: Arc::clone(&consumer),
        checkpoints: Arc::clone(&checkpoints),
        mappings,
        dead_letters,
        counters: Arc::clone(&counters),
        stash: VecDeque::new(),
        sender_context: sender_context.clone(),
        sender_tasks,
        settings: settings.clone(),
        message_ids: config.rocketmq.message_ids,
        replans,
    };
    let stop = dispatcher.run(&mut shutdown).await;
    readiness.running.store(false, AtomicOrdering::Relaxed);
    watcher.abort();
    let dead_letters = dispatcher.dead_letters.take();
    let sender_tasks = std::mem::take(&mut dispatcher.sender_tasks);
    drop(dispatcher);

    let drained = drain(
        sender_tasks,
        &checkpoints,
        dead_letters,
        settings.shutdown_timeout.0,
    )
    .await;
    committer.abort();
    reporter.abort();
    gauges.abort();
    final_commit(&consumer, &checkpoints);
    consumer.context().closing();
    consumer.unsubscribe();
    drop(consumer);
    // A clone shares the producer's client instance; shutting it down lets
    // the runtime stop at once instead of waiting out its own timeout.
    let mut producer = (*sender_context.producer).clone();
    producer.shutdown().await;
    runtime.shutdown().await;

    let summary = RunSummary {
        consumed: counters.consumed.load(AtomicOrdering::Relaxed),
        produced: sender_context
            .counters
            .records
            .load(AtomicOrdering::Relaxed),
        skipped: counters.skipped.load(AtomicOrdering::Relaxed),
        dead_lettered: counters.dead_lettered.load(AtomicOrdering::Relaxed),
        drained,
    };
    Ok(match stop {
        Stop::Signal => RunOutcome::Stopped(summary),
        Stop::RecordFailed(reason) => RunOutcome::RecordFailed { summary, reason },
    })
}

struct Dispatcher {
    consumer: Arc<BridgeConsumer>,
    checkpoints: Arc<Checkpoints>,
    mappings: HashMap<String, MappingRuntime>,
    dead_letters: Option<DeadLetterWriter>,
    counters: Arc<DispatchCounters>,
    /// Messages that arrived while the assignment was being paused.
    stash: VecDeque<OwnedMessage>,
    sender_context: SenderShared,
    sender_tasks: Vec<JoinHandle<()>>,
    settings: BridgeSettings,
    message_ids: MessageIds,
    /// New queue lists from the watcher: (Kafka topic, queues).
    replans: mpsc::Receiver<(String, Vec<MessageQueue>)>,
}

impl Dispatcher {
    async fn run(&mut self, shutdown: &mut watch::Receiver<bool>) -> Stop {
        let mut last_error_log: Option<Instant> = None;
        loop {
            if *shutdown.borrow() {
                return Stop::Signal;
            }
            let message = match self.stash.pop_front() {
                Some(message) => message,
                None => tokio::select! {
                    received = self.consumer.recv() => match received {
                        Ok(message) => message.detach(),
                        Err(error) => {
                            // Transient by nature (broker down, rebalance); librdkafka reconnects.
                            if last_error_log.is_none_or(|t| t.elapsed() > Duration::from_secs(30)) {
                                tracing::warn!(%error, "Kafka consume error; retrying");
                                last_error_log = Some(Instant::now());
                            }
                            continue;
                        }
                    },
                    _ = shutdown.changed() => return Stop::Signal,
                    Some((topic, queues)) = self.replans.recv() => {
                        if let Err(stop) = self.replan(&topic, queues, shutdown).await {
                            return stop;
                        }
                        continue;
                    }
                },
            };
            if let Err(stop) = self.dispatch(message, shutdown).await {
                return stop;
            }
        }
    }

    async fn dispatch(
        &mut self,
        message: OwnedMessage,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<(), Stop> {
        let id = PartitionId::new(message.topic(), message.partition());
        if !self.checkpoints.dispatch(&id, message.offset()) {
            return Ok(());
        }
        self.counters.consumed.fetch_add(1, AtomicOrdering::Relaxed);
        let record = consumer::source_record(&message);
        let Some(mapping) = self.mappings.get(message.topic()) else {
            // Subscribed topics are exactly the mapped ones; nothing else arrives.
            return Err(Stop::RecordFailed(format!(
                "record from unmapped topic {id}@{}",
                message.offset()
            )));
        };
        mapping.consumed.increment(1);
        mapping
            .consumed_bytes
            .increment(record.value.as_ref().map_or(0, |v| v.len() as u64));
        match mapping::map_record(&record, &mapping.rules) {
            Ok(outgoing) => {
                let queue =
                    mapping
                        .router
                        .route(record.partition, record.offset, record.key.as_deref());
                let sender = mapping.senders[queue].clone();
                let message_id = message_id::message_id(
                    self.message_ids,
                    &mapping.config.rocketmq_topic,
                    &record.topic,
                    record.partition,
                    record.offset,
                    record.timestamp.map(|(ms, _)| ms),
                );
                let envelope = Envelope {
                    partition: id,
                    offset: record.offset,
                    message: outgoing,
                    message_id,
                    timestamp_ms: record.timestamp.map(|(ms, _)| ms),
                };
                let size = envelope.message.size() as i64;
                self.sender_context
                    .counters
                    .in_flight_bytes
                    .fetch_add(size, AtomicOrdering::Relaxed);
                self.hand_over(&sender, envelope, shutdown).await
            }
            Err(rejection) => self.reject(message.topic().to_string(), record, id, rejection),
        }
    }

    /// Gives `envelope` to its queue's sender, pausing Kafka while the
    /// sender's buffer is full.
    async fn hand_over(
        &mut self,
        sender: &mpsc::Sender<Envelope>,
        envelope: Envelope,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<(), Stop> {
        let envelope = match sender.try_send(envelope) {
            Ok(()) => return Ok(()),
            Err(mpsc::error::TrySendError::Full(envelope)) => envelope,
            Err(mpsc::error::TrySendError::Closed(_)) => return Err(Stop::Signal),
        };
        consumer::set_paused(&self.consumer, true);
        let result = loop {
            tokio::select! {
                permit = sender.reserve() => match permit {
                    Ok(permit) => { permit.send(envelope); break Ok(()) }
                    Err(_) => break Err(Stop::Signal),
                },
                // Keep polling so the group keeps us; a partition assigned
                // meanwhile is not paused yet, so keep what it delivers.
                received = self.consumer.recv() => {
                    if let Ok(message) = received {
                        self.stash.push_back(message.detach());
                        consumer::set_paused(&self.consumer, true);
                    }
                }
                _ = shutdown.changed() => break Err(Stop::Signal),
            }
        };
        consumer::set_paused(&self.consumer, false);
        result
    }

    /// Switches a mapping to a new queue list. Every record already routed
    /// is stored first, so no key has records in flight on two queues.
    async fn replan(
        &mut self,
        topic: &str,
        queues: Vec<MessageQueue>,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<(), Stop> {
        consumer::set_paused(&self.consumer, true);
        while self.checkpoints.in_flight_of_topic(topic) > 0 {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(50)) => {}
                received = self.consumer.recv() => {
                    if let Ok(message) = received {
                        self.stash.push_back(message.detach());
                        consumer::set_paused(&self.consumer, true);
                    }
                }
                _ = shutdown.changed() => return Err(Stop::Signal),
            }
        }
        if let Some(mapping) = self.mappings.get_mut(topic) {
            let (router, senders) = start_senders(
                &self.sender_context,
                &mapping.config,
                queues,
                &self.settings,
                &mut self.sender_tasks,
            );
            mapping.router = router;
            // The old senders are idle; dropping their channels ends them.
            mapping.senders = senders;
            tracing::warn!(mapping = %mapping.label, queues = router.queue_count(), "mapping re-planned onto the new queue count");
        }
        consumer::set_paused(&self.consumer, false);
        Ok(())
    }

    fn reject(
        &mut self,
        topic: String,
        record: SourceRecord,
        id: PartitionId,
        rejection: Rejection,
    ) -> Result<(), Stop> {
        let Some(mapping) = self.mappings.get(&topic) else {
            return Ok(());
        };
        let policy = match rejection {
            Rejection::EmptyValue => mapping.config.on_empty_value,
            Rejection::OversizedBody { .. } => mapping.config.on_oversized_body,
            Rejection::OversizedProperties { .. } => mapping.config.on_oversized_properties,
        };
        let coordinates = format!("{id}@{}", record.offset);
        match policy {
            RecordPolicy::Fail => {
                let field = policy_field(rejection);
                let reason = format!(
                    "record {coordinates} of mapping {} cannot be copied: {rejection}. The bridge stopped without \
                     committing past it. Set mappings[].{field} to skip or dead_letter to let it through.",
                    mapping.label
                );
                tracing::error!(mapping = %mapping.label, record = %coordinates, reason = rejection.reason(), "{reason}");
                Err(Stop::RecordFailed(reason))
            }
            RecordPolicy::Skip => {
                tracing::warn!(
                    mapping = %mapping.label, record = %coordinates, reason = rejection.reason(),
                    "record skipped by policy: {rejection}"
                );
                self.counters.skipped.fetch_add(1, AtomicOrdering::Relaxed);
                metrics::counter!(crate::metrics::RECORDS_SKIPPED, "mapping" => mapping.label.clone(), "reason" => rejection.reason())
                    .increment(1);
                self.checkpoints.acknowledge(&id, [record.offset]);
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
                metrics::counter!(crate::metrics::RECORDS_DEAD_LETTERED, "mapping" => mapping.label.clone(), "reason" => rejection.reason())
                    .increment(1);
                writer.write(dlq.clone(), record, id, rejection);
                Ok(())
            }
        }
    }
}

/// One sender task per queue; returns the router over them and their channels.
fn start_senders(
    context: &SenderShared,
    mapping: &MappingConfig,
    queues: Vec<MessageQueue>,
    settings: &BridgeSettings,
    tasks: &mut Vec<JoinHandle<()>>,
) -> (QueueRouter, Vec<mpsc::Sender<Envelope>>) {
    let router = QueueRouter::new(mapping.ordering, queues.len(), settings.max_batch_records);
    let mut senders = Vec::with_capacity(queues.len());
    let context = context.for_mapping(mapping.label());
    for queue in queues {
        let (tx, rx) = mpsc::channel(settings.queue_buffer_records);
        tasks.push(queue_sender::spawn(context.clone(), queue, rx));
        senders.push(tx);
    }
    (router, senders)
}

/// Re-reads each target topic's queues every `interval`; a change in count
/// is logged loudly and handed to the dispatcher to re-plan.
fn spawn_queue_watcher(
    producer: Arc<DefaultMQProducer>,
    readiness: Arc<Readiness>,
    name_server: String,
    mut watched: Vec<(String, String, usize)>,
    interval: Duration,
    replans: mpsc::Sender<(String, Vec<MessageQueue>)>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        // A clone shares the client instance; fetching needs `&mut`.
        let mut producer = (*producer).clone();
        let mut ticker = tokio::time::interval(interval);
        ticker.tick().await;
        loop {
            ticker.tick().await;
            for (kafka_topic, rocketmq_topic, known) in &mut watched {
                let fetched = rocketmq_sink::fetch_queues(
                    &mut producer,
                    rocketmq_topic,
                    &name_server,
                    interval,
                )
                .await;
                readiness
                    .route_failing
                    .store(fetched.is_err(), AtomicOrdering::Relaxed);
                let Ok(queues) = fetched else { continue };
                if queues.len() != *known {
                    tracing::error!(
                        rocketmq_topic = %rocketmq_topic, from = *known, to = queues.len(),
                        "queue count of a target topic changed while running; draining in-flight records and re-planning"
                    );
                    *known = queues.len();
                    if replans.send((kafka_topic.clone(), queues)).await.is_err() {
                        return;
                    }
                }
            }
        }
    })
}

fn policy_field(rejection: Rejection) -> &'static str {
    match rejection {
        Rejection::EmptyValue => "on_empty_value",
        Rejection::OversizedBody { .. } => "on_oversized_body",
        Rejection::OversizedProperties { .. } => "on_oversized_properties",
    }
}

fn spawn_committer(
    consumer: Arc<BridgeConsumer>,
    checkpoints: Arc<Checkpoints>,
    interval: Duration,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            let commits = checkpoints.pending_commits();
            // Async: the commit callback records success, from the dispatcher's poll.
            if let Err(error) = consumer::commit(consumer.as_ref(), &commits, CommitMode::Async) {
                tracing::warn!(%error, "cannot start an offset commit; will retry");
            }
        }
    })
}

/// Refreshes the gauges the hot path does not own, every 2 s.
fn spawn_gauges(sent: Arc<SendCounters>, checkpoints: Arc<Checkpoints>) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(Duration::from_secs(2));
        loop {
            ticker.tick().await;
            metrics::gauge!(crate::metrics::IN_FLIGHT_RECORDS).set(checkpoints.in_flight() as f64);
            let bytes = sent.in_flight_bytes.load(AtomicOrdering::Relaxed).max(0);
            metrics::gauge!(crate::metrics::IN_FLIGHT_BYTES).set(bytes as f64);
            for (id, _, _, age) in checkpoints.snapshot() {
                metrics::gauge!(crate::metrics::CHECKPOINT_AGE, "topic" => id.topic.to_string(), "partition" => id.partition.to_string())
                    .set(age.as_secs_f64());
            }
        }
    })
}

fn spawn_reporter(
    dispatch: Arc<DispatchCounters>,
    sent: Arc<SendCounters>,
    checkpoints: Arc<Checkpoints>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(Duration::from_secs(30));
        ticker.tick().await;
        loop {
            ticker.tick().await;
            tracing::info!(
                consumed = dispatch.consumed.load(AtomicOrdering::Relaxed),
                produced = sent.records.load(AtomicOrdering::Relaxed),
                skipped = dispatch.skipped.load(AtomicOrdering::Relaxed),
                dead_lettered = dispatch.dead_lettered.load(AtomicOrdering::Relaxed),
                in_flight = checkpoints.in_flight(),
                failed_send_attempts = sent.failed_attempts.load(AtomicOrdering::Relaxed),
                "summary"
            );
        }
    })
}

/// Lets the senders finish what they hold, within `timeout`.
async fn drain(
    sender_tasks: Vec<JoinHandle<()>>,
    checkpoints: &Checkpoints,
    dead_letters: Option<DeadLetterWriter>,
    timeout: Duration,
) -> bool {
    let in_flight = checkpoints.in_flight();
    tracing::info!(
        in_flight,
        timeout_s = timeout.as_secs(),
        "stopping: draining in-flight records"
    );
    let aborts: Vec<_> = sender_tasks.iter().map(JoinHandle::abort_handle).collect();
    let all = async {
        for task in sender_tasks {
            let _ = task.await;
        }
        if let Some(writer) = dead_letters {
            writer.finish().await;
        }
    };
    match tokio::time::timeout(timeout, all).await {
        Ok(()) => true,
        Err(_) => {
            aborts.iter().for_each(|abort| abort.abort());
            tracing::warn!(
                in_flight = checkpoints.in_flight(),
                "shutdown deadline passed with records unacknowledged; they are not committed and will be re-sent"
            );
            false
        }
    }
}

fn final_commit(consumer: &BridgeConsumer, checkpoints: &Checkpoints) {
    let commits = checkpoints.pending_commits();
    match consumer::commit(consumer, &commits, CommitMode::Sync) {
        Ok(()) => {
            checkpoints.committed(&commits);
            let text: Vec<String> = commits
                .iter()
                .map(|(id, offset)| format!("{id}={offset}"))
                .collect();
            tracing::info!(offsets = %text.join(" "), "final commit done");
        }
        Err(error) => {
            tracing::error!(%error, "final commit failed; a restart re-sends from the previous commit")
        }
    }
}
