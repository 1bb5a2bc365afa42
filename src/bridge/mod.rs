//! `run`: wires source -> mapping -> router -> sink -> checkpoint and keeps
//! it going until a signal or a `fail` policy stops it.
//!
//! One dispatcher task ([`dispatcher`]) reads Kafka in order and hands each
//! mapped record to the sender of its queue, within the rate limits and the
//! in-flight cap. A committer task commits acknowledged offsets every
//! `commit_interval`; small tasks refresh gauges, `/status` and the summary log.

mod dispatcher;
mod flow;
mod queue_watcher;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering as AtomicOrdering};
use std::time::Duration;

use metrics::Counter;
use rdkafka::consumer::{CommitMode, Consumer};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::checkpoint::Checkpoints;
use crate::config::{
    BridgeConfig, BridgeSettings, KafkaConfig, LiveLimits, MappingConfig, PropertyValue, StartFrom,
};
use crate::dead_letter::DeadLetterWriter;
use crate::health::{Heartbeat, Readiness, stuck_after};
use crate::in_flight::InFlightBudget;
use crate::kafka_source::consumer::{self, BridgeConsumer};
use crate::kafka_source::{self, start_position};
use crate::mapping::MappingRules;
use crate::rocketmq_sink::fence::Fence;
use crate::rocketmq_sink::queue_lane::QueueLanes;
use crate::rocketmq_sink::stored_check::StoredCheck;
use crate::rocketmq_sink::{self, RocketMqRuntime};
use crate::router::QueueRouter;
use crate::sink::Lane;
use crate::sink::sender::{self, Queued, SendCounters, SenderSettings, SenderShared};
use crate::status::{StatusBoard, ThrottleChange};
use dispatcher::{Dispatcher, DispatcherParts};
use flow::{Flow, ToRocketMq};

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
    /// Records not sent because a previous owner had stored them.
    pub already_stored: u64,
    /// Batches stored; `produced / batches` is the mean batch size.
    pub batches: u64,
    /// Whether every sender drained before `shutdown_timeout`.
    pub drained: bool,
}

/// Start-up failed; nothing was consumed.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct StartError(String);

/// What a running bridge listens to and reports into, besides its config.
pub struct Controls {
    pub shutdown: watch::Receiver<bool>,
    /// New limits from a SIGHUP reload.
    pub limits: watch::Receiver<LiveLimits>,
    pub readiness: Arc<Readiness>,
    pub status: Arc<StatusBoard>,
}

/// One mapping at run time, in the direction `F`.
struct MappingRuntime<F: Flow> {
    label: String,
    /// The key of its rate limit (shared by a regex mapping's topics).
    limit_label: String,
    consumed: Counter,
    consumed_bytes: Counter,
    rules: F::Rules,
    router: QueueRouter,
    /// The target's lanes, in the router's order.
    targets: Vec<F::Target>,
    senders: Vec<mpsc::Sender<QueuedFor<F>>>,
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
    /// Not sent: a previous owner had stored them (exactly-once restarts).
    already_stored: AtomicU64,
}

/// Runs the bridge until `shutdown` turns true or a record fails.
pub async fn run(config: BridgeConfig, controls: Controls) -> Result<RunOutcome, StartError> {
    let Controls {
        mut shutdown,
        limits,
        readiness,
        status,
    } = controls;
    status.reset(&limits.borrow());
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
    let producer = Arc::new(producer);
    let fence = Arc::new(Fence::new(
        Arc::clone(&producer),
        &config.rocketmq.fence_topic,
        config.rocketmq.send_timeout.0,
    ));
    let sender_parts = SenderParts {
        shared: SenderShared {
            readiness: Arc::clone(&readiness),
            status: Arc::clone(&status),
            checkpoints: Arc::clone(&checkpoints),
            counters: Arc::new(SendCounters::default()),
            settings: SenderSettings {
                max_batch_records: settings.max_batch_records,
                max_batch_bytes: batch_bytes,
                max_backoff: settings.max_retry_backoff.0,
            },
        },
        flow: ToRocketMq {
            lanes: QueueLanes {
                producer,
                send_timeout: config.rocketmq.send_timeout.0,
                stored_check: settings.exactly_once_restarts.then(|| {
                    Arc::new(StoredCheck {
                        rocketmq: config.rocketmq.clone(),
                        window: settings.restart_scan_window.0,
                        fence: Arc::clone(&fence),
                    })
                }),
            },
            message_ids: config.rocketmq.message_ids,
            rocketmq: config.rocketmq.clone(),
            fence: Arc::clone(&fence),
        },
    };
    let mut sender_tasks = Vec::new();
    let mut mappings = HashMap::new();
    let mut watched = Vec::new();
    for (mapping, queues) in plans {
        watched.push(queue_watcher::Watched {
            kafka_topic: mapping.kafka_topic.clone(),
            rocketmq_topic: mapping.rocketmq_topic.clone(),
            plan: queues.clone(),
            missing: Default::default(),
        });
        let (router, senders) = start_senders(
            &sender_parts,
            &mapping,
            &queues,
            settings,
            &mut sender_tasks,
        );
        tracing::info!(
            mapping = mapping.label(), kafka_topic = %mapping.kafka_topic, rocketmq_topic = %mapping.rocketmq_topic,
            queues = router.queue_count(), ordering = %mapping.ordering, "mapping ready"
        );
        let rules = MappingRules::of(&mapping, &config.rocketmq);
        let label = mapping.label().to_string();
        crate::metrics::register_mapping(&label);
        status.add_mapping(
            &label,
            mapping.limit_label(),
            &mapping.kafka_topic,
            &mapping.rocketmq_topic,
        );
        mappings.insert(
            mapping.kafka_topic.clone(),
            MappingRuntime {
                limit_label: mapping.limit_label().to_string(),
                consumed: metrics::counter!(crate::metrics::RECORDS_CONSUMED, "mapping" => label.clone()),
                consumed_bytes: metrics::counter!(crate::metrics::BYTES_CONSUMED, "mapping" => label.clone()),
                label,
                rules,
                router,
                targets: queues,
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
    let (kafka, prefetch_bytes) =
        with_bounded_prefetch(&config.kafka, settings.max_in_flight_bytes.0);
    let consumer = consumer::subscribe(
        &kafka,
        &topics,
        Arc::clone(&checkpoints),
        settings.shutdown_timeout.0,
        Arc::clone(&readiness),
        Arc::clone(&status),
    )
    .map_err(StartError)?;
    readiness.running.store(true, AtomicOrdering::Relaxed);
    tracing::info!(group = %config.kafka.group_id, topics = %topics.join(","), "bridge running");

    let committer = spawn_committer(
        Arc::clone(&consumer),
        Arc::clone(&checkpoints),
        settings.commit_interval.0,
        readiness.heartbeat("committer", stuck_after(settings.commit_interval.0)),
    );
    let counters = Arc::new(DispatchCounters::default());
    let in_flight = InFlightBudget::new();
    let gauges = spawn_gauges(
        Arc::clone(&in_flight),
        Arc::clone(&checkpoints),
        Arc::clone(&status),
        readiness.heartbeat("status sampler", stuck_after(GAUGE_INTERVAL)),
    );
    let reporter = spawn_reporter(
        Arc::clone(&counters),
        Arc::clone(&sender_parts.shared.counters),
        Arc::clone(&in_flight),
        Arc::clone(&checkpoints),
        Arc::clone(&status),
    );
    let daily_verify = settings
        .daily_verify
        .clone()
        .map(|schedule| crate::daily_verify::spawn(config.clone(), schedule, Arc::clone(&status)));
    let (replan_tx, replans) = mpsc::channel(16);
    let watcher = queue_watcher::spawn(
        Arc::clone(&sender_parts.flow.lanes.producer),
        Arc::clone(&readiness),
        config.rocketmq.name_server.clone(),
        watched,
        settings.queue_refresh_interval.0,
        replan_tx,
    );
    let mut dispatcher = Dispatcher::new(DispatcherParts {
        source: Arc::clone(&consumer),
        checkpoints: Arc::clone(&checkpoints),
        mappings,
        dead_letters,
        counters: Arc::clone(&counters),
        sender_parts: sender_parts.clone(),
        sender_tasks,
        in_flight,
        settings: settings.clone(),
        prefetch_bytes,
        replans,
        limit_updates: limits,
        status: Arc::clone(&status),
        restart_scan_window: settings
            .exactly_once_restarts
            .then_some(settings.restart_scan_window.0),
    });
    let stop = dispatcher.run(&mut shutdown).await;
    readiness.running.store(false, AtomicOrdering::Relaxed);
    // Draining may take `shutdown_timeout`; the loops stop turning on purpose.
    readiness.forget_loops();
    watcher.abort();
    if let Some(daily_verify) = daily_verify {
        daily_verify.abort();
    }
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
    let mut producer = (*sender_parts.flow.lanes.producer).clone();
    producer.shutdown().await;
    runtime.shutdown().await;

    let summary = RunSummary {
        consumed: counters.consumed.load(AtomicOrdering::Relaxed),
        produced: sender_parts
            .shared
            .counters
            .records
            .load(AtomicOrdering::Relaxed),
        skipped: counters.skipped.load(AtomicOrdering::Relaxed),
        dead_lettered: counters.dead_lettered.load(AtomicOrdering::Relaxed),
        already_stored: counters.already_stored.load(AtomicOrdering::Relaxed),
        batches: sender_parts
            .shared
            .counters
            .batches
            .load(AtomicOrdering::Relaxed),
        drained,
    };
    Ok(match stop {
        Stop::Signal => RunOutcome::Stopped(summary),
        Stop::RecordFailed(reason) => RunOutcome::RecordFailed { summary, reason },
    })
}

/// librdkafka prefetches up to 64 MiB by default, which the in-flight cap
/// must cover. Unless the user set it, prefetch gets an eighth of the cap
/// (1-64 MiB): librdkafka holds about twice its budget (fetch buffers and
/// one op per message), and with a short `fetch.queue.backoff.ms` it keeps
/// the queue topped up, so a quarter peaked above the memory target
/// (docs/benchmarks.md). Returns the config and the prefetch budget in bytes, which
/// the dispatcher leaves out of the records' share of the cap.
fn with_bounded_prefetch(kafka: &KafkaConfig, max_in_flight_bytes: u64) -> (KafkaConfig, u64) {
    const KEY: &str = "queued.max.messages.kbytes";
    let mut kafka = kafka.clone();
    let kbytes = (max_in_flight_bytes / 8 / 1024).clamp(1024, 65536);
    let set = kafka
        .properties
        .entry(KEY.to_string())
        .or_insert(PropertyValue::Integer(kbytes as i64));
    // librdkafka refuses a value that is not a number, at subscribe.
    let kbytes = set.as_librdkafka_value().parse::<u64>().unwrap_or(kbytes);
    (kafka, kbytes * 1024)
}

/// What a lane's channel carries in the direction `F`.
type QueuedFor<F> = Queued<<<F as Flow>::Lane as Lane>::Entry>;

/// What starting a mapping's senders takes: the shared sender's parts, and
/// the direction, which makes the lanes.
#[derive(Clone)]
struct SenderParts<F: Flow> {
    shared: SenderShared,
    flow: F,
}

/// One sender task per target lane; returns the router over them and
/// their channels.
fn start_senders<F: Flow>(
    parts: &SenderParts<F>,
    mapping: &MappingConfig,
    targets: &[F::Target],
    settings: &BridgeSettings,
    tasks: &mut Vec<JoinHandle<()>>,
) -> (QueueRouter, Vec<mpsc::Sender<QueuedFor<F>>>) {
    let router = QueueRouter::new(mapping.ordering, targets.len(), settings.max_batch_records);
    let mut senders = Vec::with_capacity(targets.len());
    let context = parts.shared.for_mapping(mapping.label());
    for target in targets {
        let (tx, rx) = mpsc::channel(settings.queue_buffer_records);
        tasks.push(sender::spawn(context.clone(), parts.flow.lane(target), rx));
        senders.push(tx);
    }
    (router, senders)
}

fn spawn_committer(
    consumer: Arc<BridgeConsumer>,
    checkpoints: Arc<Checkpoints>,
    interval: Duration,
    heartbeat: Arc<Heartbeat>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            heartbeat.beat();
            let commits = checkpoints.pending_commits();
            // Async: the commit callback records success, from the dispatcher's poll.
            if let Err(error) = consumer::commit(consumer.as_ref(), &commits, CommitMode::Async) {
                tracing::warn!(%error, "cannot start an offset commit; will retry");
            }
        }
    })
}

const GAUGE_INTERVAL: Duration = Duration::from_secs(2);

/// Every 2 s: refreshes the gauges the hot path does not own, samples
/// progress for `/status`, and logs the end of throttles.
fn spawn_gauges(
    in_flight: Arc<InFlightBudget>,
    checkpoints: Arc<Checkpoints>,
    status: Arc<StatusBoard>,
    heartbeat: Arc<Heartbeat>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(GAUGE_INTERVAL);
        loop {
            ticker.tick().await;
            heartbeat.beat();
            metrics::gauge!(crate::metrics::IN_FLIGHT_RECORDS).set(checkpoints.in_flight() as f64);
            let bytes = in_flight.used();
            metrics::gauge!(crate::metrics::IN_FLIGHT_BYTES).set(bytes as f64);
            let progress = checkpoints.progress();
            for row in &progress {
                metrics::gauge!(crate::metrics::CHECKPOINT_AGE, "topic" => row.partition.topic.to_string(), "partition" => row.partition.partition.to_string())
                    .set(row.checkpoint_age.as_secs_f64());
            }
            status.sample(progress, bytes);
            for (mapping, change) in status.expire_throttles() {
                if let ThrottleChange::Ended { lasted } = change {
                    tracing::info!(%mapping, throttled_s = lasted.as_secs(), "mapping no longer throttled");
                }
            }
        }
    })
}

fn spawn_reporter(
    dispatch: Arc<DispatchCounters>,
    sent: Arc<SendCounters>,
    in_flight: Arc<InFlightBudget>,
    checkpoints: Arc<Checkpoints>,
    status: Arc<StatusBoard>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(Duration::from_secs(30));
        ticker.tick().await;
        loop {
            ticker.tick().await;
            tracing::info!(
                consumed = dispatch.consumed.load(AtomicOrdering::Relaxed),
                produced = sent.records.load(AtomicOrdering::Relaxed),
                batches = sent.batches.load(AtomicOrdering::Relaxed),
                skipped = dispatch.skipped.load(AtomicOrdering::Relaxed),
                dead_lettered = dispatch.dead_lettered.load(AtomicOrdering::Relaxed),
                already_stored = dispatch.already_stored.load(AtomicOrdering::Relaxed),
                stored_despite_failure = sent.stored_despite_failure.load(AtomicOrdering::Relaxed),
                in_flight = checkpoints.in_flight(),
                in_flight_bytes = in_flight.used(),
                failed_send_attempts = sent.failed_attempts.load(AtomicOrdering::Relaxed),
                throttled = %status.throttled_summary(),
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
