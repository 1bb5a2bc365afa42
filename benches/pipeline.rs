//! The benchmark harness behind `scripts/bench.sh`: every figure measured in
//! one run, on the same pre-loaded data, against the local brokers.
//!
//! Ceilings (raw Kafka consume, raw RocketMQ produce with the bridge's own
//! batches; `pipeline/ceilings.rs`), the hand-written baseline (one
//! synchronous send and one commit per record), the bridge in each mode
//! (`pipeline/bridge_run.rs`), 2 KiB and 64 KiB values (`pipeline/sizes.rs`),
//! the way back against its own ceilings (`pipeline/way_back.rs`), latency
//! at half and a tenth of the load (`pipeline/latency.rs`), rate-limit
//! accuracy, kill -9 restarts, one RocketMQ master of two down
//! (`pipeline/master_down.rs`) and a scaling table. It prints each figure
//! as it goes and writes the Markdown report and a CSV for the chart
//! (`pipeline/report.rs`).
//!
//! Run through `scripts/bench.sh`; `--smoke` shrinks everything to seconds.

// The release build's layout of the nested async bodies needs more than 128.
#![recursion_limit = "256"]

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use rdkafka::ClientConfig;
use rdkafka::Message as _;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, StreamConsumer};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer};

use kafka_rocketmq_bridge::checkpoint::PartitionId;
use kafka_rocketmq_bridge::config::RocketMqConfig;
use kafka_rocketmq_bridge::kafka_source::consumer::source_record;
use kafka_rocketmq_bridge::mapping::{self, MappingRules};
use kafka_rocketmq_bridge::rocketmq_reader::TopicReader;
use kafka_rocketmq_bridge::rocketmq_sink::encode::{Envelope, build_batch, to_message};
use kafka_rocketmq_bridge::rocketmq_sink::{self, RocketMqRuntime};

// Not in benches/ itself, where cargo would take it for a bench target of its own.
#[path = "pipeline/bridge_run.rs"]
mod bridge_run;
#[path = "pipeline/ceilings.rs"]
mod ceilings;
#[path = "pipeline/daily_verify_cost.rs"]
mod daily_verify_cost;
#[path = "pipeline/latency.rs"]
mod latency;
#[path = "pipeline/master_down.rs"]
mod master_down;
#[path = "pipeline/report.rs"]
mod report;
#[path = "pipeline/restart.rs"]
mod restart;
#[path = "pipeline/results_scan.rs"]
mod results_scan;
#[path = "pipeline/sizes.rs"]
mod sizes;
#[path = "pipeline/target.rs"]
mod target;
#[path = "pipeline/way_back.rs"]
mod way_back;

use bridge_run::*;
use ceilings::*;
use latency::*;
use report::*;
use target::Target;

struct Args {
    smoke: bool,
    records: usize,
    value_size: usize,
    partitions: u32,
    queues: u32,
    repeat: usize,
    bridge: PathBuf,
    kafka: String,
    name_server: String,
    report: PathBuf,
    csv: PathBuf,
    command: String,
    /// Pre-load and the `partition` bridge runs only (for profiling).
    only_bridge: bool,
    /// Extra lines for the `bridge:` section of the `--only-bridge` runs.
    bridge_yaml: String,
    /// Extra lines for `kafka.properties` of the `--only-bridge` runs.
    kafka_yaml: String,
    /// `ordering` of the `--only-bridge` runs.
    ordering: String,
    /// Latency at this rate only, with and without a short Kafka fetch wait.
    only_latency: Option<f64>,
    /// Pre-load and the kill -9 restarts only.
    only_restart: bool,
    /// The way back's pre-load and bridge runs only (for profiling).
    only_way_back: bool,
    /// One RocketMQ master down only.
    only_master_down: bool,
    /// Pre-load and the rate-limit window at this limit only.
    only_rate_limit: Option<u32>,
}

fn parse_args() -> Result<Args> {
    let mut args = Args {
        smoke: false,
        records: 1_000_000,
        value_size: 200,
        partitions: 8,
        queues: 8,
        repeat: 3,
        bridge: PathBuf::from("target/release/kafka-rocketmq-bridge"),
        kafka: "127.0.0.1:9092".into(),
        name_server: "127.0.0.1:9876".into(),
        report: PathBuf::from("docs/benchmarks.md"),
        csv: PathBuf::from("target/bench/throughput.csv"),
        command: "scripts/bench.sh".into(),
        only_bridge: false,
        bridge_yaml: String::new(),
        kafka_yaml: String::new(),
        ordering: "partition".into(),
        only_latency: None,
        only_restart: false,
        only_way_back: false,
        only_master_down: false,
        only_rate_limit: None,
    };
    let mut given = std::env::args().skip(1);
    while let Some(flag) = given.next() {
        let mut value = || {
            given
                .next()
                .with_context(|| format!("{flag} needs a value"))
        };
        match flag.as_str() {
            "--smoke" => args.smoke = true,
            "--records" => args.records = value()?.parse()?,
            "--value-size" => args.value_size = value()?.parse()?,
            "--partitions" => args.partitions = value()?.parse()?,
            "--queues" => args.queues = value()?.parse()?,
            "--repeat" => args.repeat = value()?.parse()?,
            "--bridge" => args.bridge = value()?.into(),
            "--kafka" => args.kafka = value()?,
            "--name-server" => args.name_server = value()?,
            "--report" => args.report = value()?.into(),
            "--csv" => args.csv = value()?.into(),
            "--command" => args.command = value()?,
            "--only-bridge" => args.only_bridge = true,
            "--only-restart" => args.only_restart = true,
            "--only-way-back" => args.only_way_back = true,
            "--bridge-yaml" => args.bridge_yaml = value()?.replace("\\n", "\n"),
            "--kafka-yaml" => args.kafka_yaml = value()?.replace("\\n", "\n"),
            "--ordering" => args.ordering = value()?,
            "--only-latency" => args.only_latency = Some(value()?.parse()?),
            "--only-master-down" => args.only_master_down = true,
            "--only-rate-limit" => args.only_rate_limit = Some(value()?.parse()?),
            // cargo bench passes this to every bench target.
            "--bench" => {}
            other => bail!("unknown argument {other}"),
        }
    }
    if args.smoke {
        args.records = args.records.min(5_000);
        args.repeat = 1;
    }
    Ok(args)
}

/// One measured figure, repeated.
#[derive(Default, Clone)]
struct Figure {
    samples: Vec<f64>,
}

impl Figure {
    fn push(&mut self, value: f64) {
        self.samples.push(value);
    }

    /// The latest sample (NaN before the first).
    fn last(&self) -> f64 {
        self.samples.last().copied().unwrap_or(f64::NAN)
    }

    fn median(&self) -> f64 {
        let mut sorted = self.samples.clone();
        sorted.sort_by(f64::total_cmp);
        match sorted.len() {
            0 => f64::NAN,
            n if n % 2 == 1 => sorted[n / 2],
            n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
        }
    }

    /// (max - min) / median, in percent.
    fn spread(&self) -> f64 {
        let min = self.samples.iter().copied().fold(f64::INFINITY, f64::min);
        let max = self
            .samples
            .iter()
            .copied()
            .fold(f64::NEG_INFINITY, f64::max);
        (max - min) / self.median() * 100.0
    }
}

fn unique(prefix: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("{prefix}{}", nanos % 10_000_000_000)
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// How a bridge run differs from the default: YAML lines for its sections.
#[derive(Clone, Copy)]
struct Variant {
    ordering: &'static str,
    /// Extra lines for `kafka.properties`.
    kafka: &'static str,
    /// Extra lines for the `kafka` section itself.
    kafka_keys: &'static str,
    rocketmq: &'static str,
    bridge: &'static str,
    /// Environment of the bridge process.
    env: &'static [(&'static str, &'static str)],
    /// `mappings[].direction`: empty for the default (Kafka to RocketMQ).
    direction: &'static str,
}

const PARTITION: Variant = Variant {
    ordering: "partition",
    kafka: "",
    kafka_keys: "",
    rocketmq: "",
    bridge: "",
    env: &[],
    direction: "",
};
/// glibc gives each thread that allocates its own arena (up to 8 per core)
/// and keeps freed memory in each; two arenas bound what is kept.
const TWO_MALLOC_ARENAS: Variant = Variant {
    env: &[("MALLOC_ARENA_MAX", "2")],
    ..PARTITION
};
/// The bridge's fetches wait for 64 KiB or 5 ms (`kafka_source::FETCH_BATCHING`);
/// the latency runs compare librdkafka's defaults, which answer a fetch as
/// soon as one record is there.
const LIBRDKAFKA_FETCH: Variant = Variant {
    kafka: "    fetch.min.bytes: 1\n    fetch.wait.max.ms: 500\n",
    ..PARTITION
};
const KEY_HASH: Variant = Variant {
    ordering: "key_hash",
    ..PARTITION
};
const CLIENT_IDS: Variant = Variant {
    rocketmq: "  message_ids: client\n",
    ..PARTITION
};

/// The bench's view of the clusters: a config file per run, and a reader
/// on each side.
struct Bench {
    args: Args,
    reader: TopicReader,
    /// Reads Kafka topics' high watermarks (the way back's copies).
    watermarks: BaseConsumer,
    runtime: Option<RocketMqRuntime>,
    rocketmq: RocketMqConfig,
    work: PathBuf,
    log: String,
}

impl Bench {
    fn say(&mut self, line: String) {
        println!("{line}");
        self.log.push_str(&line);
        self.log.push('\n');
    }

    fn config(
        &self,
        kafka_topic: &str,
        rocketmq_topic: &str,
        variant: &Variant,
    ) -> Result<PathBuf> {
        let path = self.work.join(format!("{}.yaml", unique("config-")));
        let Variant {
            ordering,
            kafka,
            kafka_keys,
            rocketmq,
            bridge,
            env: _,
            direction,
        } = variant;
        // The way back reads RocketMQ as a consumer group of its own: a new
        // one per run reads each queue from its first message.
        let (direction, consumer_group) = if direction.is_empty() {
            (String::new(), String::new())
        } else {
            (
                format!("    direction: {direction}\n"),
                format!("  consumer_group: \"{}\"\n", unique("bench_back_group_")),
            )
        };
        // The default, written out: the runs measure the bridge's defaults.
        let commit_interval = default_commit_interval().as_millis();
        let text = format!(
            "kafka:\n  bootstrap_servers: \"{}\"\n  group_id: \"{}\"\n{kafka_keys}  properties:\n    session.timeout.ms: 6000\n{kafka}\
             metrics:\n  listen: \"127.0.0.1:0\"\n\
             rocketmq:\n  name_server: \"{}\"\n{consumer_group}{rocketmq}bridge:\n  commit_interval: {commit_interval}ms\n{bridge}\
             mappings:\n  - kafka_topic: \"{kafka_topic}\"\n    rocketmq_topic: \"{rocketmq_topic}\"\n    ordering: {ordering}\n{direction}",
            self.args.kafka,
            unique("bench-group-"),
            self.args.name_server,
        );
        std::fs::write(&path, text)?;
        Ok(path)
    }

    /// Creates the topics with the bridge's own `create-topics`.
    fn create_topics(&self, config: &Path, partitions: u32, queues: u32) -> Result<()> {
        self.create_topics_on(None, config, partitions, queues)
    }

    /// `create-topics`, on one side only (`kafka` or `rocketmq`) when given.
    fn create_topics_on(
        &self,
        only: Option<&str>,
        config: &Path,
        partitions: u32,
        queues: u32,
    ) -> Result<()> {
        let mut command = Command::new(&self.args.bridge);
        command.arg("create-topics");
        if let Some(side) = only {
            command.args(["--only", side]);
        }
        let output = command
            .arg("--config")
            .arg(config)
            .args(["--partitions", &partitions.to_string()])
            .args(["--queues", &queues.to_string()])
            .output()?;
        if !output.status.success() {
            bail!(
                "create-topics failed: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        Ok(())
    }

    /// Messages stored in `topic`'s queues; their offsets are asked at once.
    async fn count(&self, topic: &str) -> Result<i64> {
        let queues = self.reader.queues(topic).await?;
        let offsets = futures::future::try_join_all(queues.iter().map(|q| self.reader.offsets(q)));
        Ok(offsets.await?.iter().map(|(min, max)| max - min).sum())
    }

    /// `topic`'s count and the moment it describes: the middle of its
    /// queries. A window timed from before one count to after the next
    /// would add the second count's time to the window (it took hundreds
    /// of milliseconds on a busy machine) without its records.
    async fn count_at(&self, topic: &str) -> Result<(i64, Instant)> {
        let asked = Instant::now();
        let count = self.count(topic).await?;
        Ok((count, asked + asked.elapsed() / 2))
    }
}

/// The bridge's default `commit_interval`.
pub fn default_commit_interval() -> Duration {
    kafka_rocketmq_bridge::config::BridgeSettings::default()
        .commit_interval
        .0
}

fn kafka_producer(bootstrap: &str) -> Result<FutureProducer> {
    Ok(ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("linger.ms", "20")
        .set("batch.size", "1000000")
        .set("queue.buffering.max.messages", "1000000")
        .create()?)
}

/// A record of the benchmark's shape: 16-byte key, `value_size` bytes, 2 headers.
fn record_parts(i: usize, value_size: usize) -> (Vec<u8>, Vec<u8>, OwnedHeaders) {
    let key = format!("key-{:012}", i % 100_000).into_bytes();
    let mut value = format!("{i:012}").into_bytes();
    value.resize(value_size.max(12), b'v');
    let headers = OwnedHeaders::new()
        .insert(Header {
            key: "trace-id",
            value: Some(format!("{i:016x}").as_bytes()),
        })
        .insert(Header {
            key: "source",
            value: Some("bench".as_bytes()),
        });
    (key, value, headers)
}

/// Produces `records` records, their CreateTime spread over the day that
/// starts at `day_start` (ms) when given; returns how long Kafka took to
/// store them.
async fn preload(
    bootstrap: &str,
    topic: &str,
    records: usize,
    value_size: usize,
    day_start: Option<i64>,
) -> Result<Duration> {
    let producer = kafka_producer(bootstrap)?;
    let started = Instant::now();
    let mut pending = Vec::new();
    for i in 0..records {
        let (key, value, headers) = record_parts(i, value_size);
        let mut record: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(topic)
            .key(key.as_slice())
            .payload(value.as_slice())
            .headers(headers);
        if let Some(start) = day_start {
            record = record.timestamp(start + (i as i64 * 86_400_000) / records.max(1) as i64);
        }
        pending.push(enqueue(&producer, record).await);
        if pending.len() >= 50_000 {
            for delivery in pending.drain(..) {
                delivery.await?.map_err(|(e, _)| e)?;
            }
        }
    }
    for delivery in pending {
        delivery.await?.map_err(|(e, _)| e)?;
    }
    producer.flush(Duration::from_secs(30))?;
    Ok(started.elapsed())
}

/// Hands `record` to the producer, waiting while its queue is full.
async fn enqueue(
    producer: &FutureProducer,
    mut record: FutureRecord<'_, [u8], [u8]>,
) -> DeliveryFuture {
    loop {
        match producer.send_result(record) {
            Ok(delivery) => return delivery,
            Err((_, back)) => {
                record = back;
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
    }
}

fn kafka_consumer(bootstrap: &str, topic: &str) -> Result<StreamConsumer> {
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", unique("bench-raw-"))
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", "6000")
        .create()?;
    consumer.subscribe(&[topic])?;
    Ok(consumer)
}

/// Records per second `verify` reads on each side (Kafka, RocketMQ), from
/// its own report, over today's records of a copied backlog.
fn verify_speed(bench: &Bench, config: &Path) -> Result<(f64, f64)> {
    let today = chrono::Utc::now().date_naive().to_string();
    let output = Command::new(&bench.args.bridge)
        .args(["verify", "--config"])
        .arg(config)
        .args(["--from", &today, "--to", &today, "--json"])
        .output()?;
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).with_context(|| {
        format!(
            "verify printed no report: {}",
            String::from_utf8_lossy(&output.stderr)
        )
    })?;
    let rate = |side: &str| {
        let scans = report["scans"].as_array().cloned().unwrap_or_default();
        let (read, seconds) =
            scans
                .iter()
                .filter(|scan| scan["side"] == side)
                .fold((0.0, 0.0), |(r, t), scan| {
                    let read = scan["records_read"].as_f64().unwrap_or(0.0);
                    (r + read, t + scan["seconds"].as_f64().unwrap_or(0.0))
                });
        read / f64::max(seconds, 1e-6)
    };
    Ok((rate("kafka"), rate("rocketmq")))
}

/// How long the achieved rate under a limit is measured.
const RATE_LIMIT_WINDOW: Duration = Duration::from_secs(10);

/// Seconds of the limit copied before the window opens: the first
/// second's burst, and one more.
const RATE_LIMIT_WARM_UP_SECONDS: u64 = 2;

/// The achieved rate with a `limit` msg/s, over a steady window, and how
/// the window was counted. The backlog is its own, sized so that the copy
/// is still limited when the window closes: a backlog that ran out inside
/// the window would be counted as a rate below the limit.
async fn rate_limit_accuracy(bench: &Bench, limit: u32, window: Duration) -> Result<(f64, String)> {
    let margin = Duration::from_secs(RATE_LIMIT_WARM_UP_SECONDS + 3);
    let records = (f64::from(limit) * (window + margin).as_secs_f64()) as usize;
    let (kafka_topic, _) =
        fresh_backlog(bench, bench.args.partitions, records, bench.args.value_size).await?;
    let kafka_topic = kafka_topic.as_str();
    let rocketmq_topic = unique("bench_rl_");
    let bridge_lines = format!("  rate_limit:\n    messages_per_second: {limit}\n");
    let variant = Variant {
        bridge: bridge_lines.leak(),
        ..PARTITION
    };
    let config = bench.config(kafka_topic, &rocketmq_topic, &variant)?;
    bench.create_topics(&config, bench.args.partitions, bench.args.queues)?;
    let mut bridge = BridgeProcess::start(bench, &config)?;
    // Past the first second's burst.
    wait_for_copy(
        bench,
        Target::RocketMq(&rocketmq_topic),
        i64::from(limit) * RATE_LIMIT_WARM_UP_SECONDS as i64,
        Duration::from_secs(120),
        &mut bridge,
    )
    .await?;
    let asked = Instant::now();
    let (before, start) = bench.count_at(&rocketmq_topic).await?;
    tokio::time::sleep(window).await;
    let (after, end) = bench.count_at(&rocketmq_topic).await?;
    if after >= records as i64 {
        bail!("rate limit {limit}/s: the {records}-record backlog ran out inside the window");
    }
    let counts_took = [start - asked, asked.elapsed() - (end - asked)].map(|half| 2 * half);
    let seconds = end.duration_since(start).as_secs_f64();
    let detail = format!(
        "{} records in {seconds:.3} s; the counts took {:?} and {:?}",
        after - before,
        counts_took[0],
        counts_took[1]
    );
    bridge.stop()?;
    Ok(((after - before) as f64 / seconds, detail))
}

async fn fresh_backlog(
    bench: &Bench,
    partitions: u32,
    records: usize,
    value_size: usize,
) -> Result<(String, Duration)> {
    fresh_backlog_stamped(bench, partitions, records, value_size, None).await
}

/// A new topic of `records` records, stamped over the day starting at
/// `day_start` when given.
async fn fresh_backlog_stamped(
    bench: &Bench,
    partitions: u32,
    records: usize,
    value_size: usize,
    day_start: Option<i64>,
) -> Result<(String, Duration)> {
    let topic = unique("bench.in.");
    let config = bench.config(&topic, &unique("bench_unused_"), &PARTITION)?;
    bench.create_topics_on(Some("kafka"), &config, partitions, bench.args.queues)?;
    let took = preload(&bench.args.kafka, &topic, records, value_size, day_start).await?;
    Ok((topic, took))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    let args = parse_args()?;
    let work = PathBuf::from("target/bench");
    std::fs::create_dir_all(&work)?;
    let rocketmq: RocketMqConfig =
        serde_yaml::from_str(&format!("name_server: \"{}\"", args.name_server))?;
    let runtime = RocketMqRuntime::start(2).map_err(anyhow::Error::msg)?;
    let reader = TopicReader::start(
        runtime.client_runtime(),
        &rocketmq,
        &unique("bench-reader-"),
    )
    .await?;
    let watermarks: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &args.kafka)
        .create()
        .context("a Kafka client for the watermarks")?;
    let mut bench = Bench {
        args,
        reader,
        watermarks,
        runtime: Some(runtime),
        rocketmq,
        work,
        log: String::new(),
    };
    let report = run_all(&mut bench).await?;
    if let Some(parent) = bench.args.report.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(&bench.args.report, report)?;
    println!("wrote {}", bench.args.report.display());
    let Bench {
        reader, runtime, ..
    } = bench;
    reader.shutdown().await;
    if let Some(runtime) = runtime {
        runtime.shutdown().await;
    }
    Ok(())
}

/// Every figure of the report, in order.
#[derive(Default)]
struct Results {
    preload: Figure,
    source: Figure,
    sink: Figure,
    /// The sink ceiling's rate to the last acknowledgement.
    sink_acknowledged: Figure,
    /// RocketMQ CPU seconds during the last sink ceiling run.
    sink_broker_cpu: f64,
    naive: Figure,
    partition: Figure,
    /// `partition` mode timed from the process start, as a user's run is.
    partition_from_start: Figure,
    key_hash: Figure,
    client_ids: Figure,
    /// Per round, 1 - `partition` / `client_ids`, the two copies run one
    /// after the other: the throughput cost of deterministic ids.
    id_cost_paired: Figure,
    rss_partition: Figure,
    /// `partition` mode with MALLOC_ARENA_MAX=2: (records/s, peak RSS).
    arenas: Figure,
    rss_arenas: Figure,
    rss_key_hash: Figure,
    /// Records per batch the bridge sent.
    batch_partition: Figure,
    batch_key_hash: Figure,
    /// `verify`'s reading speed per side, records/s.
    verify_kafka: Figure,
    verify_rocketmq: Figure,
    /// `compare-results`' reading speed per ledger, entries/s.
    results_kafka: Figure,
    results_rocketmq: Figure,
    results_entries: usize,
    /// The copy's rate with the daily count-match scanning beside it, as a
    /// share of its rate without: paced (the default), and unpaced.
    verify_beside_paced: Figure,
    verify_beside_unpaced: Figure,
    /// Count-match passes started during each paced copy.
    verify_beside_passes: Vec<usize>,
    /// Bridge CPU seconds over the copy: alone, paced, unpaced.
    verify_beside_cpu: [Figure; 3],
    /// CPU seconds per process during the last `partition` copy.
    cpu: CpuUse,
    latency: Option<(f64, f64, f64, f64)>,
    light_latency: Option<(f64, f64, f64, f64)>,
    /// Kafka alone at the steady load: (p50, p99, p999) ms.
    kafka_latency: Option<(f64, f64, f64)>,
    /// Nanoseconds per id: (deterministic, client-generated).
    id_cost: (f64, f64),
    limit: Option<(u32, f64)>,
    /// Kill -9 halfway and restart, with each kind of restart.
    restart: Option<restart::Restarts>,
    /// The way back (RocketMQ to Kafka) against its own ceilings.
    way_back: way_back::WayBack,
    scaling: BTreeMap<String, f64>,
    /// One RocketMQ master of two killed and restarted.
    master_down: Option<master_down::MasterDown>,
    /// 2 KiB and 64 KiB values against the sink ceiling at that size.
    sized: Vec<sizes::Sized>,
}

async fn run_all(bench: &mut Bench) -> Result<String> {
    let (records, value_size, repeat) =
        (bench.args.records, bench.args.value_size, bench.args.repeat);
    let mut results = Results::default();
    if let Some(rate) = bench.args.only_latency {
        let window = Duration::from_secs(30);
        for (name, variant) in [
            ("default", PARTITION),
            (
                "librdkafka's fetch defaults: fetch.min.bytes 1, fetch.wait.max.ms 500",
                LIBRDKAFKA_FETCH,
            ),
        ] {
            let (p50, p99, p999, offered) = latency(bench, rate, window, &variant).await?;
            bench.say(format!("latency at {rate:.0}/s ({name}; producer reached {offered:.0}/s): p50 {p50:.0} ms, p99 {p99:.0} ms, p999 {p999:.0} ms"));
        }
        for isolation in ["read_uncommitted", "read_committed"] {
            let (k50, k99, k999) = kafka_latency(bench, rate, window, isolation).await?;
            bench.say(format!("Kafka alone at {rate:.0}/s (produce, then an rdkafka consumer, {isolation}): p50 {k50:.0} ms, p99 {k99:.0} ms, p999 {k999:.0} ms"));
        }
        bail!("--only-latency: no report written");
    }
    if bench.args.only_way_back {
        let (topic, _) = way_back::backlog(bench, records).await?;
        for round in 1..=repeat {
            way_back::bridge_only(bench, round, &topic, records).await?;
        }
        bail!("--only-way-back: no report written");
    }
    if bench.args.only_master_down {
        master_down::measure(bench).await?;
        bail!("--only-master-down: no report written");
    }
    if let Some(limit) = bench.args.only_rate_limit {
        for round in 1..=repeat {
            let (achieved, detail) = rate_limit_accuracy(bench, limit, RATE_LIMIT_WINDOW).await?;
            let off = 100.0 * (achieved / f64::from(limit) - 1.0);
            bench.say(format!(
                "round {round}: rate limit {limit}/s: achieved {achieved:.0}/s ({off:+.1}%): {detail}"
            ));
        }
        bail!("--only-rate-limit: no report written");
    }
    bench.say(format!(
        "pre-loading {records} records of {value_size} B into {} partitions",
        bench.args.partitions
    ));
    let (backlog, took) = fresh_backlog(bench, bench.args.partitions, records, value_size).await?;
    results.preload.push(records as f64 / took.as_secs_f64());
    bench.say(format!(
        "  Kafka stored them at {:.0} records/s",
        results.preload.median()
    ));

    if bench.args.only_restart {
        restart::measure(bench, &backlog, records).await?;
        bail!("--only-restart: no report written");
    }
    if bench.args.only_bridge {
        for round in 1..=repeat {
            let variant = Variant {
                bridge: bench.args.bridge_yaml.clone().leak(),
                kafka: bench.args.kafka_yaml.clone().leak(),
                ordering: bench.args.ordering.clone().leak(),
                ..PARTITION
            };
            let copy = bridge_throughput(bench, &backlog, records, &variant).await?;
            bench.say(format!(
                "round {round}: bridge {} {:.0}/s, {:.0} MiB peak RSS, {:.0} records per batch, CPU s: bridge {:.1}, Kafka broker {:.1}, RocketMQ {:.1}",
                variant.ordering,
                copy.rate,
                copy.rss as f64 / (1 << 20) as f64,
                copy.mean_batch,
                copy.cpu.bridge,
                copy.cpu.kafka,
                copy.cpu.rocketmq
            ));
        }
        bail!("--only-bridge: no report written");
    }
    let ledgers = results_scan::fill(bench, records)?;
    results.results_entries = ledgers.entries;
    let stamped = daily_verify_cost::backlog(bench, records).await?;
    results.sized = sizes::backlogs(bench).await?;
    let (back_backlog, back_preload) = way_back::backlog(bench, records).await?;
    results.way_back.preload.push(back_preload);
    bench.say(format!(
        "  RocketMQ stored the way back's {records} originals at {back_preload:.0} records/s"
    ));
    for round in 1..=repeat {
        let source = source_ceiling(&bench.args.kafka, &backlog, records).await?;
        results.source.push(source);
        let sink_topic = unique("bench_sink_");
        let config = bench.config(&backlog, &sink_topic, &PARTITION)?;
        bench.create_topics(&config, bench.args.partitions, bench.args.queues)?;
        let sink_rates =
            sink_ceiling(bench, &sink_topic, records, value_size, bench_envelope).await?;
        let sink = sink_rates.readable;
        results.sink.push(sink);
        results.sink_acknowledged.push(sink_rates.acknowledged);
        results.sink_broker_cpu = sink_rates.broker_cpu;
        let partition = bridge_throughput(bench, &backlog, records, &PARTITION).await?;
        results.partition.push(partition.rate);
        results.partition_from_start.push(partition.from_start);
        results.rss_partition.push(partition.rss as f64);
        // Right after `partition`, so that the pair sees the same machine.
        let client = bridge_throughput(bench, &backlog, records, &CLIENT_IDS).await?;
        results.client_ids.push(client.rate);
        results
            .id_cost_paired
            .push(1.0 - partition.rate / client.rate);
        results.batch_partition.push(partition.mean_batch);
        results.cpu = partition.cpu;
        let (kafka_scan, rocketmq_scan) = verify_speed(bench, &partition.config)?;
        results.verify_kafka.push(kafka_scan);
        results.verify_rocketmq.push(rocketmq_scan);
        let (kafka_ledger, rocketmq_ledger) = results_scan::speed(bench, &ledgers)?;
        results.results_kafka.push(kafka_ledger);
        results.results_rocketmq.push(rocketmq_ledger);
        let beside = daily_verify_cost::measure(bench, &stamped, records).await?;
        results
            .verify_beside_paced
            .push(beside.paced / beside.alone);
        results
            .verify_beside_unpaced
            .push(beside.unpaced / beside.alone);
        results.verify_beside_passes.push(beside.passes);
        for (figure, seconds) in results.verify_beside_cpu.iter_mut().zip(beside.cpu) {
            figure.push(seconds);
        }
        bench.say(format!(
            "round {round}: copy of yesterday's records alone {:.0}/s, beside the daily count-match paced at {}/s {:.0}/s ({} passes started), unpaced {:.0}/s; bridge CPU s {:.1}, {:.1}, {:.1}",
            beside.alone,
            daily_verify_cost::PACE,
            beside.paced,
            beside.passes,
            beside.unpaced,
            beside.cpu[0],
            beside.cpu[1],
            beside.cpu[2]
        ));
        let keyed = bridge_throughput(bench, &backlog, records, &KEY_HASH).await?;
        results.key_hash.push(keyed.rate);
        results.rss_key_hash.push(keyed.rss as f64);
        results.batch_key_hash.push(keyed.mean_batch);
        let arenas = bridge_throughput(bench, &backlog, records, &TWO_MALLOC_ARENAS).await?;
        results.arenas.push(arenas.rate);
        results.rss_arenas.push(arenas.rss as f64);
        let cpu = partition.cpu;
        bench.say(format!(
            "round {round}: source ceiling {source:.0}/s, sink ceiling {sink:.0}/s (acknowledged at {:.0}/s; RocketMQ CPU {:.1} s), bridge partition {:.0}/s ({:.0}/s from the process start; {:.0} MiB peak RSS; CPU s: bridge {:.1}, Kafka broker {:.1}, RocketMQ {:.1}), key_hash {:.0}/s, client ids {:.0}/s, MALLOC_ARENA_MAX=2 {:.0}/s ({:.0} MiB peak RSS), verify reads Kafka {kafka_scan:.0}/s and RocketMQ {rocketmq_scan:.0}/s, compare-results reads the ledgers at {kafka_ledger:.0} and {rocketmq_ledger:.0} entries/s",
            sink_rates.acknowledged,
            sink_rates.broker_cpu,
            partition.rate,
            partition.from_start,
            partition.rss as f64 / (1 << 20) as f64,
            cpu.bridge,
            cpu.kafka,
            cpu.rocketmq,
            keyed.rate,
            client.rate,
            arenas.rate,
            arenas.rss as f64 / (1 << 20) as f64
        ));
        way_back::round(bench, round, &back_backlog, records, &mut results.way_back).await?;
        sizes::round(bench, round, &mut results.sized).await?;
    }

    let naive_budget = if bench.args.smoke {
        Duration::from_secs(3)
    } else {
        Duration::from_secs(20)
    };
    for _ in 0..repeat {
        let out = unique("bench_naive_");
        let config = bench.config(&backlog, &out, &PARTITION)?;
        bench.create_topics(&config, bench.args.partitions, bench.args.queues)?;
        let rate = naive_bridge(bench, &backlog, &out, records, naive_budget).await?;
        results.naive.push(rate);
    }
    bench.say(format!(
        "naive bridge (sync send + commit per record): {:.0}/s",
        results.naive.median()
    ));

    let steady = results.partition.median() * 0.5;
    let window = if bench.args.smoke {
        Duration::from_secs(2)
    } else {
        Duration::from_secs(30)
    };
    let (p50, p99, p999, offered) = latency(bench, steady, window, &PARTITION).await?;
    results.latency = Some((offered, p50, p99, p999));
    bench.say(format!("latency at {steady:.0}/s (producer reached {offered:.0}/s) for {window:?}: p50 {p50:.0} ms, p99 {p99:.0} ms, p999 {p999:.0} ms"));
    let (k50, k99, k999) = kafka_latency(bench, steady, window, "read_uncommitted").await?;
    results.kafka_latency = Some((k50, k99, k999));
    bench.say(format!("Kafka alone at {steady:.0}/s (produce, then an rdkafka consumer) for {window:?}: p50 {k50:.0} ms, p99 {k99:.0} ms, p999 {k999:.0} ms"));
    // The same at a fifth of that load: separates the bridge's own delay
    // from queueing when producer, brokers and bridge compete for the cores.
    let light = steady / 5.0;
    let (l50, l99, l999, offered) = latency(bench, light, window, &PARTITION).await?;
    results.light_latency = Some((offered, l50, l99, l999));
    bench.say(format!("latency at {light:.0}/s (producer reached {offered:.0}/s) for {window:?}: p50 {l50:.0} ms, p99 {l99:.0} ms, p999 {l999:.0} ms"));

    let limit = ((steady / 1000.0).round().max(1.0) * 1000.0) as u32;
    let limit = if bench.args.smoke { 500 } else { limit };
    let limit_window = if bench.args.smoke {
        Duration::from_secs(2)
    } else {
        RATE_LIMIT_WINDOW
    };
    let (achieved, detail) = rate_limit_accuracy(bench, limit, limit_window).await?;
    results.limit = Some((limit, achieved));
    bench.say(format!(
        "rate limit {limit}/s: achieved {achieved:.0}/s ({detail})"
    ));

    results.id_cost = id_cost();
    let (deterministic, client) = results.id_cost;
    bench.say(format!(
        "msgId derivation: deterministic {deterministic:.0} ns/record, client {client:.0} ns/record"
    ));

    results.restart = Some(restart::measure(bench, &backlog, records).await?);
    results.master_down = Some(master_down::measure(bench).await?);

    scaling(bench, &mut results).await?;
    let report = render(bench, &results);
    write_csv(bench, &results)?;
    Ok(report)
}

/// Nanoseconds to derive one msgId in each scheme, timed over 1,000,000 ids
/// in this process: steadier than comparing two noisy throughput runs.
fn id_cost() -> (f64, f64) {
    use kafka_rocketmq_bridge::config::MessageIds;
    use kafka_rocketmq_bridge::message_id::message_id;
    const IDS: i64 = 1_000_000;
    let time = |scheme: MessageIds| {
        let started = Instant::now();
        for offset in 0..IDS {
            std::hint::black_box(message_id(
                scheme,
                "bench_out_topic",
                "bench.in.topic",
                (offset % 8) as i32,
                offset,
                Some(1_764_000_000_000 + offset),
            ));
        }
        started.elapsed().as_nanos() as f64 / IDS as f64
    };
    (time(MessageIds::Deterministic), time(MessageIds::Client))
}

/// Throughput by partition/queue count, one run each (larger values:
/// [`sizes`]).
async fn scaling(bench: &mut Bench, results: &mut Results) -> Result<()> {
    let base = if bench.args.smoke {
        2_000
    } else {
        bench.args.records / 4
    };
    let saved = (bench.args.partitions, bench.args.queues);
    for count in [1u32, 2, 4, 8] {
        bench.args.partitions = count;
        bench.args.queues = count;
        let (topic, _) = fresh_backlog(bench, count, base, 200).await?;
        let rate = bridge_throughput(bench, &topic, base, &PARTITION)
            .await?
            .rate;
        bench.say(format!(
            "scaling: {count} partitions/queues, 200 B: {rate:.0}/s"
        ));
        results
            .scaling
            .insert(format!("{count} partitions, 200 B"), rate);
    }
    bench.args.partitions = saved.0;
    bench.args.queues = saved.1;
    Ok(())
}
