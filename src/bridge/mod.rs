//! `run`: wires source -> mapping -> router -> sink -> checkpoint and keeps
//! it going until a signal or a `fail` policy stops it.
//!
//! Each direction the config has is started (`forward`: Kafka to RocketMQ,
//! `way_back`: RocketMQ to Kafka) and driven the same way (`drive`): one
//! dispatcher task ([`dispatcher`]) reads its source in order and hands
//! each mapped record to the sender of its target lane, within the rate
//! limits and the in-flight cap, and a committer commits acknowledged
//! offsets every `commit_interval`. Both share the checkpoints, the cap and
//! the counters; small tasks refresh gauges, `/status` and the summary log.

mod dispatcher;
mod drive;
mod flow;
mod forward;
mod queue_watcher;
mod way_back;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering as AtomicOrdering};
use std::time::Duration;

use foldhash::HashMap;
use metrics::Counter;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::checkpoint::Checkpoints;
use crate::config::{BridgeConfig, BridgeSettings, Direction, LiveLimits, MappingConfig};
use crate::dead_letter::DeadLetterWriter;
use crate::health::{Heartbeat, Readiness, stuck_after};
use crate::in_flight::InFlightBudget;
use crate::kafka_source;
use crate::rocketmq_sink::RocketMqRuntime;
use crate::router::QueueRouter;
use crate::sink::Lane;
use crate::sink::sender::{self, Queued, SendCounters, SenderSettings, SenderShared};
use crate::status::{StatusBoard, ThrottleChange};
use dispatcher::DispatcherParts;
use drive::Ended;
use flow::Flow;

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

/// What both directions of a run share: one set of checkpoints (a lane
/// names its system), one in-flight cap, one set of counters for the
/// summary, and the health, status and limits of the process.
struct Core {
    settings: BridgeSettings,
    checkpoints: Arc<Checkpoints>,
    counters: Arc<DispatchCounters>,
    sent: Arc<SendCounters>,
    in_flight: Arc<InFlightBudget>,
    readiness: Arc<Readiness>,
    status: Arc<StatusBoard>,
    limits: watch::Receiver<LiveLimits>,
}

impl Core {
    fn sender_shared(&self, max_batch_bytes: usize) -> SenderShared {
        SenderShared {
            readiness: Arc::clone(&self.readiness),
            status: Arc::clone(&self.status),
            checkpoints: Arc::clone(&self.checkpoints),
            counters: Arc::clone(&self.sent),
            settings: SenderSettings {
                max_batch_records: self.settings.max_batch_records,
                max_batch_bytes,
                max_backoff: self.settings.max_retry_backoff.0,
            },
        }
    }

    /// A dead-letter writer for `direction`, if one of its mappings has a
    /// dead-letter topic: dead letters go to Kafka in both directions.
    fn dead_letters(
        &self,
        config: &BridgeConfig,
        direction: Direction,
    ) -> Result<Option<DeadLetterWriter>, StartError> {
        let wanted = config
            .mappings
            .iter()
            .any(|m| m.direction == direction && m.dead_letter_topic.is_some());
        if !wanted {
            return Ok(None);
        }
        DeadLetterWriter::new(&config.kafka, Arc::clone(&self.checkpoints))
            .map(Some)
            .map_err(StartError)
    }

    /// A direction's dispatcher parts, the shared ones taken from the core;
    /// no dead letters, senders or prefetch until the caller sets them.
    fn dispatcher_parts<F: Flow>(
        &self,
        source: Arc<F::Source>,
        mappings: HashMap<String, MappingRuntime<F>>,
        sender_parts: SenderParts<F>,
        replans: mpsc::Receiver<(String, Vec<F::Target>)>,
    ) -> DispatcherParts<F> {
        let settings = &self.settings;
        DispatcherParts {
            source,
            checkpoints: Arc::clone(&self.checkpoints),
            mappings,
            dead_letters: None,
            counters: Arc::clone(&self.counters),
            sender_parts,
            sender_tasks: Vec::new(),
            in_flight: Arc::clone(&self.in_flight),
            settings: settings.clone(),
            prefetch_bytes: 0,
            replans,
            limit_updates: self.limits.clone(),
            status: Arc::clone(&self.status),
            restart_scan_window: settings
                .exactly_once_restarts
                .then_some(settings.restart_scan_window.0),
        }
    }
}

impl<F: Flow> MappingRuntime<F> {
    /// Registers the mapping's metrics and `/status` row.
    fn new(
        core: &Core,
        config: MappingConfig,
        rules: F::Rules,
        router: QueueRouter,
        targets: Vec<F::Target>,
        senders: Vec<mpsc::Sender<QueuedFor<F>>>,
    ) -> Self {
        let label = config.label().to_string();
        crate::metrics::register_mapping(&label, config.direction);
        let labels = crate::metrics::mapping_labels(&label, config.direction, &[]);
        core.status.add_mapping(
            &label,
            config.limit_label(),
            &config.kafka_topic,
            &config.rocketmq_topic,
            config.direction,
        );
        MappingRuntime {
            limit_label: config.limit_label().to_string(),
            consumed: metrics::counter!(crate::metrics::RECORDS_CONSUMED, labels.iter()),
            consumed_bytes: metrics::counter!(crate::metrics::BYTES_CONSUMED, labels.iter()),
            label,
            rules,
            router,
            targets,
            senders,
            config,
        }
    }
}

/// Runs the bridge until `shutdown` turns true or a record fails: both
/// directions at once when the config maps topics both ways.
pub async fn run(config: BridgeConfig, controls: Controls) -> Result<RunOutcome, StartError> {
    let Controls {
        shutdown,
        limits,
        readiness,
        status,
    } = controls;
    status.reset(&limits.borrow());
    // Topics created later that match a regex are picked up at the next start.
    let config = kafka_source::resolve_regex_mappings(&config, Duration::from_secs(30))
        .await
        .map_err(StartError)?;
    let core = Core {
        settings: config.bridge.clone(),
        checkpoints: Checkpoints::new(),
        counters: Arc::new(DispatchCounters::default()),
        sent: Arc::new(SendCounters::default()),
        in_flight: InFlightBudget::new(),
        readiness,
        status,
        limits,
    };
    let runtime = RocketMqRuntime::start(2).map_err(StartError)?;
    // Boxed, like each direction's drive below: the futures are large, and
    // inline they overflowed a worker thread's stack in debug builds.
    let forward = Box::pin(forward::start(&config, &core, &runtime)).await?;
    let way_back = Box::pin(way_back::start(&config, &core, &runtime)).await?;
    core.readiness.running.store(true, AtomicOrdering::Relaxed);

    let gauges = spawn_gauges(
        Arc::clone(&core.in_flight),
        Arc::clone(&core.checkpoints),
        Arc::clone(&core.status),
        core.readiness
            .heartbeat("status sampler", stuck_after(GAUGE_INTERVAL)),
    );
    let reporter = spawn_reporter(&core);
    let daily_verify = core.settings.daily_verify.clone().map(|schedule| {
        crate::daily_verify::spawn(config.clone(), schedule, Arc::clone(&core.status))
    });
    let (stop_all, stop) = watch::channel(false);
    let relay = tokio::spawn(relay_shutdown(shutdown, stop_all.clone()));
    let forward_flow = forward.as_ref().map(|f| f.flow.clone());
    let run_forward = async {
        match forward {
            Some(forward) => Some(
                Box::pin(drive::drive(
                    forward.started,
                    &core,
                    stop.clone(),
                    &stop_all,
                    "committer",
                ))
                .await,
            ),
            None => None,
        }
    };
    let run_way_back = async {
        match way_back {
            Some((started, _replans)) => Some(
                Box::pin(drive::drive(
                    started,
                    &core,
                    stop.clone(),
                    &stop_all,
                    "way-back committer",
                ))
                .await,
            ),
            None => None,
        }
    };
    let (forward_end, way_back_end) = tokio::join!(run_forward, run_way_back);
    relay.abort();
    if let Some(daily_verify) = daily_verify {
        daily_verify.abort();
    }
    reporter.abort();
    gauges.abort();
    if let Some(flow) = forward_flow {
        forward::close_producer(&flow).await;
    }
    runtime.shutdown().await;

    let ends: Vec<Ended> = forward_end.into_iter().chain(way_back_end).collect();
    let summary = RunSummary {
        consumed: core.counters.consumed.load(AtomicOrdering::Relaxed),
        produced: core.sent.records.load(AtomicOrdering::Relaxed),
        skipped: core.counters.skipped.load(AtomicOrdering::Relaxed),
        dead_lettered: core.counters.dead_lettered.load(AtomicOrdering::Relaxed),
        already_stored: core.counters.already_stored.load(AtomicOrdering::Relaxed),
        batches: core.sent.batches.load(AtomicOrdering::Relaxed),
        drained: ends.iter().all(|end| end.drained),
    };
    let failed = ends.into_iter().find_map(|end| match end.stop {
        Stop::RecordFailed(reason) => Some(reason),
        Stop::Signal => None,
    });
    Ok(match failed {
        None => RunOutcome::Stopped(summary),
        Some(reason) => RunOutcome::RecordFailed { summary, reason },
    })
}

/// Turns `stop_all` true when `shutdown` does (or its sender is gone).
async fn relay_shutdown(mut shutdown: watch::Receiver<bool>, stop_all: watch::Sender<bool>) {
    while !*shutdown.borrow_and_update() {
        if shutdown.changed().await.is_err() {
            break;
        }
    }
    let _ = stop_all.send(true);
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
    let router = F::router(mapping.ordering, targets.len(), settings.max_batch_records);
    let mut senders = Vec::with_capacity(targets.len());
    let context = parts.shared.for_mapping(mapping.label(), mapping.direction);
    for target in targets {
        let (tx, rx) = mpsc::channel(settings.queue_buffer_records);
        tasks.push(sender::spawn(context.clone(), parts.flow.lane(target), rx));
        senders.push(tx);
    }
    (router, senders)
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

fn spawn_reporter(core: &Core) -> JoinHandle<()> {
    let dispatch = Arc::clone(&core.counters);
    let sent = Arc::clone(&core.sent);
    let in_flight = Arc::clone(&core.in_flight);
    let checkpoints = Arc::clone(&core.checkpoints);
    let status = Arc::clone(&core.status);
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
