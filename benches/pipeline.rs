//! The benchmark harness behind `scripts/bench.sh`: every figure measured in
//! one run, on the same pre-loaded data, against the local brokers.
//!
//! Ceilings (raw Kafka consume, raw RocketMQ produce with the bridge's own
//! batches), the hand-written baseline (one synchronous send and one commit
//! per record), the bridge in each mode, the way back against its own
//! ceilings (`pipeline/way_back.rs`), latency at half load, rate-limit
//! accuracy, and a scaling table. It prints each figure as it goes and
//! writes the Markdown report and a CSV for the chart.
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
#[path = "pipeline/daily_verify_cost.rs"]
mod daily_verify_cost;
#[path = "pipeline/restart.rs"]
mod restart;
#[path = "pipeline/results_scan.rs"]
mod results_scan;
#[path = "pipeline/target.rs"]
mod target;
#[path = "pipeline/way_back.rs"]
mod way_back;

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
/// librdkafka waits up to `fetch.wait.max.ms` (500 ms by default) for a
/// fetch to fill; the latency runs compare it with a short wait.
const SHORT_FETCH_WAIT: Variant = Variant {
    kafka: "    fetch.wait.max.ms: 10\n",
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
        let text = format!(
            "kafka:\n  bootstrap_servers: \"{}\"\n  group_id: \"{}\"\n{kafka_keys}  properties:\n    session.timeout.ms: 6000\n{kafka}\
             metrics:\n  listen: \"127.0.0.1:0\"\n\
             rocketmq:\n  name_server: \"{}\"\n{consumer_group}{rocketmq}bridge:\n  commit_interval: 1s\n{bridge}\
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

    async fn count(&self, topic: &str) -> Result<i64> {
        let mut total = 0;
        for queue in self.reader.queues(topic).await? {
            let (min, max) = self.reader.offsets(&queue).await?;
            total += max - min;
        }
        Ok(total)
    }
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

/// Raw rdkafka consume of the whole backlog: records per second.
async fn source_ceiling(bootstrap: &str, topic: &str, records: usize) -> Result<f64> {
    let consumer = kafka_consumer(bootstrap, topic)?;
    let first = consumer.recv().await?;
    let mut bytes = first.payload().map_or(0, <[u8]>::len);
    let started = Instant::now();
    for _ in 1..records {
        let message = consumer.recv().await?;
        bytes += message.payload().map_or(0, <[u8]>::len);
    }
    std::hint::black_box(bytes);
    Ok((records - 1) as f64 / started.elapsed().as_secs_f64())
}

/// The sink ceiling's two rates, records per second.
struct SinkRates {
    /// From the first to the last message readable in the topic: the end
    /// condition the bridge is timed by.
    readable: f64,
    /// From the first send to the last acknowledgement. The broker
    /// acknowledges a message before it dispatches it to its consume queue
    /// and index, so this rate outruns what it can sustain.
    acknowledged: f64,
    /// CPU seconds the RocketMQ processes used until the last was readable.
    broker_cpu: f64,
}

/// Raw RocketMQ produce of `records` messages made by `envelope` (topic,
/// index, value size): the sink ceiling sends them shaped like the
/// bridge's copies ([`bench_envelope`]), in batches of the bridge's default
/// size, one sender per queue; the way back pre-loads its originals so.
async fn sink_ceiling(
    bench: &Bench,
    topic: &str,
    records: usize,
    value_size: usize,
    envelope: fn(&str, usize, usize) -> Envelope,
) -> Result<SinkRates> {
    let runtime = bench.runtime.as_ref().context("runtime")?;
    let mut producer =
        rocketmq_sink::start_producer(runtime.client_runtime(), &bench.rocketmq).await?;
    let queues = rocketmq_sink::fetch_queues(
        &mut producer,
        topic,
        &bench.args.name_server,
        Duration::from_secs(30),
    )
    .await?;
    let producer = Arc::new(producer);
    let per_queue = records.div_ceil(queues.len());
    let broker_cpu_before = rocketmq_cpu_seconds();
    let started = Instant::now();
    let mut tasks = Vec::new();
    let retries = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let batch_records = kafka_rocketmq_bridge::config::BridgeSettings::default().max_batch_records;
    for (q, queue) in queues.into_iter().enumerate() {
        let producer = Arc::clone(&producer);
        let retries = Arc::clone(&retries);
        let topic = topic.to_string();
        tasks.push(tokio::spawn(async move {
            let mine = per_queue.min(records.saturating_sub(q * per_queue));
            let mut sent = 0;
            while sent < mine {
                let batch: Vec<Envelope> = (sent..(sent + batch_records).min(mine))
                    .map(|i| envelope(&topic, q * per_queue + i, value_size))
                    .collect();
                sent += batch.len();
                // Like the bridge: a refused batch (broker busy) is retried, in order.
                let mut attempts = 0;
                loop {
                    let message = build_batch(&topic, &batch).map_err(anyhow::Error::msg)?;
                    match producer
                        .send_to_queue_with_timeout(message, queue.clone(), 10_000)
                        .await
                    {
                        Ok(_) => break,
                        Err(error) if attempts < 100 => {
                            attempts += 1;
                            retries.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            if attempts == 1 {
                                eprintln!(
                                    "sink ceiling: send failed, retrying: {}",
                                    rocketmq_sink::error_text(&error)
                                );
                            }
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                        Err(error) => bail!("sink ceiling: {}", rocketmq_sink::error_text(&error)),
                    }
                }
            }
            anyhow::Ok(sent)
        }));
    }
    let sending = async {
        let mut sent = 0;
        for task in tasks {
            sent += task.await??;
        }
        anyhow::Ok((sent, started.elapsed()))
    };
    let readable = wait_until_readable(
        bench,
        Target::RocketMq(topic),
        records as i64,
        Duration::from_secs(900),
        || false,
    );
    let ((sent, acknowledged), (first, last)) = tokio::try_join!(sending, readable)?;
    let broker_cpu = rocketmq_cpu_seconds() - broker_cpu_before;
    let mut producer = (*producer).clone();
    producer.shutdown().await;
    Ok(SinkRates {
        readable: sent as f64 / last.duration_since(first).as_secs_f64().max(0.001),
        acknowledged: sent as f64 / acknowledged.as_secs_f64(),
        broker_cpu,
    })
}

fn bench_envelope(topic: &str, i: usize, value_size: usize) -> Envelope {
    let (key, value, _) = record_parts(i, value_size);
    let record = kafka_rocketmq_bridge::mapping::SourceRecord {
        topic: topic.to_string(),
        partition: 0,
        offset: i as i64,
        timestamp: Some((now_ms(), mapping::TimestampType::CreateTime)),
        key: Some(key),
        value: Some(value),
        headers: vec![
            ("trace-id".into(), Some(format!("{i:016x}").into_bytes())),
            ("source".into(), Some(b"bench".to_vec())),
        ],
    };
    let rules = MappingRules {
        tag: None,
        tag_header: None,
        max_message_size: 4 << 20,
        loop_prevention: false,
    };
    let message =
        mapping::map_record(&record, &rules).unwrap_or_else(|_| mapping::OutgoingMessage {
            body: b"x",
            keys: None,
            tag: None,
            properties: vec![],
        });
    Envelope::new(
        PartitionId::new(topic, 0),
        i as i64,
        &message,
        &format!("{:032X}", i),
        None,
    )
}

/// What a team writes by hand: consume, one synchronous send, one
/// synchronous commit, per record. Runs for `budget` at most.
async fn naive_bridge(
    bench: &Bench,
    kafka_topic: &str,
    rocketmq_topic: &str,
    records: usize,
    budget: Duration,
) -> Result<f64> {
    let runtime = bench.runtime.as_ref().context("runtime")?;
    let producer = rocketmq_sink::start_producer(runtime.client_runtime(), &bench.rocketmq).await?;
    let consumer = kafka_consumer(&bench.args.kafka, kafka_topic)?;
    let rules = MappingRules {
        tag: None,
        tag_header: None,
        max_message_size: 4 << 20,
        loop_prevention: false,
    };
    let mut copied = 0usize;
    let mut started = None;
    while copied < records {
        let message = consumer.recv().await?;
        let record = source_record(&message);
        let outgoing = mapping::map_record(&record, &rules).map_err(|e| anyhow::anyhow!("{e}"))?;
        producer
            .send(to_message(rocketmq_topic, &outgoing))
            .await
            .map_err(|e| anyhow::anyhow!("naive send: {}", rocketmq_sink::error_text(&e)))?;
        consumer.commit_message(&message, CommitMode::Sync)?;
        copied += 1;
        let began = *started.get_or_insert_with(Instant::now);
        if began.elapsed() > budget {
            break;
        }
    }
    let rate =
        (copied.saturating_sub(1)) as f64 / started.map_or(1.0, |s| s.elapsed().as_secs_f64());
    let mut producer = producer;
    producer.shutdown().await;
    Ok(rate)
}

/// `topic`'s count once it has not changed for half a second (at most 10 s).
async fn settled_count(bench: &Bench, topic: &str) -> Result<i64> {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut count = bench.count(topic).await?;
    let mut since = Instant::now();
    while since.elapsed() < Duration::from_millis(500) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let now = bench.count(topic).await?;
        if now != count {
            (count, since) = (now, Instant::now());
        }
    }
    Ok(count)
}

/// A `run` of the bridge binary; the log goes to a file.
struct BridgeProcess {
    child: Child,
    log: PathBuf,
}

impl BridgeProcess {
    fn start(bench: &Bench, config: &Path) -> Result<Self> {
        Self::start_with_env(bench, config, &[])
    }

    fn start_with_env(bench: &Bench, config: &Path, env: &[(&str, &str)]) -> Result<Self> {
        let log = bench.work.join(format!("{}.log", unique("bridge-")));
        let child = Command::new(&bench.args.bridge)
            .args(["run", "--config"])
            .arg(config)
            .env("NO_COLOR", "1")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log)?)
            .spawn()?;
        Ok(BridgeProcess { child, log })
    }

    /// Peak resident memory so far (VmHWM), in bytes.
    fn peak_rss(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        status
            .lines()
            .find(|l| l.starts_with("VmHWM:"))
            .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
            .map_or(0, |kib| kib * 1024)
    }

    /// SIGKILL, as a crash would.
    fn kill9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn exited(&mut self) -> bool {
        self.child.try_wait().ok().flatten().is_some()
    }

    fn stop(mut self) -> Result<()> {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if self.child.try_wait()?.is_some() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        bail!("the bridge did not stop; log {}", self.log.display())
    }
}

impl Drop for BridgeProcess {
    /// A run abandoned on an error must not outlive the harness.
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits until `target` holds `expected` records; returns when the first and
/// the last arrived, or fails at `deadline` or when the bridge exits.
async fn wait_for_copy(
    bench: &Bench,
    target: Target<'_>,
    expected: i64,
    deadline: Duration,
    bridge: &mut BridgeProcess,
) -> Result<(Instant, Instant)> {
    wait_until_readable(bench, target, expected, deadline, || bridge.exited())
        .await
        .with_context(|| format!("the bridge's log: {}", bridge.log.display()))
}

/// Waits until `target` holds `expected` records a consumer can read: in a
/// RocketMQ topic, once the broker has dispatched them to its consume
/// queues (after acknowledging them); in a Kafka topic, once they are below
/// the high watermark. Returns when the first and the last became
/// readable. Fails at `deadline`, or once `gave_up` says the writer stopped.
async fn wait_until_readable(
    bench: &Bench,
    target: Target<'_>,
    expected: i64,
    deadline: Duration,
    mut gave_up: impl FnMut() -> bool,
) -> Result<(Instant, Instant)> {
    let begin = Instant::now();
    let mut first = None;
    loop {
        let count = bench.count_in(target).await.unwrap_or(0);
        let now = Instant::now();
        if count > 0 && first.is_none() {
            first = Some(now);
        }
        if count >= expected {
            return Ok((first.unwrap_or(now), now));
        }
        if begin.elapsed() > deadline || gave_up() {
            bail!(
                "only {count} of {expected} readable in {target} (within {deadline:?}, or the writer stopped)"
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The bridge over the whole backlog: (records per second, peak RSS bytes).
async fn bridge_throughput(
    bench: &Bench,
    kafka_topic: &str,
    records: usize,
    variant: &Variant,
) -> Result<Copy> {
    let rocketmq_topic = unique("bench_out_");
    let config = bench.config(kafka_topic, &rocketmq_topic, variant)?;
    bench.create_topics(&config, bench.args.partitions, bench.args.queues)?;
    timed_copy(
        bench,
        config,
        Target::RocketMq(&rocketmq_topic),
        records,
        variant,
    )
    .await
}

/// Runs the bridge with `config` until `target` holds `records` copies,
/// timed from the first copy readable to the last.
async fn timed_copy(
    bench: &Bench,
    config: PathBuf,
    target: Target<'_>,
    records: usize,
    variant: &Variant,
) -> Result<Copy> {
    let mut bridge = BridgeProcess::start_with_env(bench, &config, variant.env)?;
    let before = CpuUse::now(bridge.child.id());
    let (first, last) = wait_for_copy(
        bench,
        target,
        records as i64,
        Duration::from_secs(900),
        &mut bridge,
    )
    .await?;
    let rss = bridge.peak_rss();
    let cpu = CpuUse::now(bridge.child.id()).minus(&before);
    let log = bridge.log.clone();
    bridge.stop()?;
    let log = std::fs::read_to_string(log).unwrap_or_default();
    // From the first stored message: start-up and the group join are not throughput.
    let rate = records as f64 / last.duration_since(first).as_secs_f64().max(0.001);
    Ok(Copy {
        rate,
        rss,
        cpu,
        mean_batch: mean_batch(&log),
        config,
        log,
    })
}

/// Records per batch over the run, from the `stopped` line's summary
/// (`produced: N, ... batches: M`); 0 when the line is missing.
fn mean_batch(log: &str) -> f64 {
    let field = |line: &str, name: &str| -> Option<f64> {
        let rest = &line[line.find(&format!("{name}: "))? + name.len() + 2..];
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        digits.parse().ok()
    };
    log.lines()
        .rev()
        .find(|line| line.contains("batches: "))
        .and_then(|line| Some(field(line, "produced")? / field(line, "batches")?.max(1.0)))
        .unwrap_or(0.0)
}

/// One bridge run over a backlog.
pub struct Copy {
    rate: f64,
    rss: u64,
    cpu: CpuUse,
    /// Records per batch sent, from the bridge's last log line.
    mean_batch: f64,
    /// The config it ran with, for `verify` afterwards.
    config: PathBuf,
    /// The bridge's log.
    log: String,
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

/// CPU seconds (user + system) used by the bridge and each broker.
#[derive(Debug, Clone, Copy, Default)]
struct CpuUse {
    bridge: f64,
    kafka: f64,
    rocketmq: f64,
}

impl CpuUse {
    fn now(bridge: u32) -> Self {
        CpuUse {
            bridge: cpu_seconds(bridge),
            kafka: broker_pids(&["kafka-"]).into_iter().map(cpu_seconds).sum(),
            rocketmq: rocketmq_cpu_seconds(),
        }
    }

    fn minus(&self, earlier: &CpuUse) -> CpuUse {
        CpuUse {
            bridge: self.bridge - earlier.bridge,
            kafka: self.kafka - earlier.kafka,
            rocketmq: self.rocketmq - earlier.rocketmq,
        }
    }
}

/// CPU seconds used so far by the RocketMQ name server and broker.
fn rocketmq_cpu_seconds() -> f64 {
    broker_pids(&["namesrv@", "broker-"])
        .into_iter()
        .map(cpu_seconds)
        .sum()
}

/// utime + stime of a process, in seconds (Linux: 100 ticks per second).
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or(vec![], |(_, rest)| rest.split_whitespace().collect());
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

/// The broker JVMs that `scripts/brokers.sh` started whose component name
/// starts with one of `components`: it marks each java command line with
/// `-Dbridge.component=NAME@STATE_DIR`. With `BRIDGE_BROKERS_DIR` set (as
/// bench.sh does for its own brokers), only that state directory's.
fn broker_pids(components: &[&str]) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return vec![];
    };
    let state_dir = std::env::var("BRIDGE_BROKERS_DIR").ok();
    let is_wanted = |arg: &str| {
        let Some(marker) = arg.strip_prefix("-Dbridge.component=") else {
            return false;
        };
        let (name, dir) = marker.split_once('@').unwrap_or((marker, ""));
        let name_matches = components
            .iter()
            .any(|c| name.starts_with(c.trim_end_matches('@')));
        name_matches && state_dir.as_deref().is_none_or(|d| d == dir)
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|line| {
                line.split(|b| *b == 0)
                    .any(|arg| std::str::from_utf8(arg).is_ok_and(is_wanted))
            })
        })
        .collect()
}

/// End-to-end latency at a steady `rate` for `duration`: (p50, p99, p999) in
/// ms, Kafka record timestamp to RocketMQ store time, and the rate the
/// producer actually reached.
async fn latency(
    bench: &Bench,
    rate: f64,
    duration: Duration,
    variant: &Variant,
) -> Result<(f64, f64, f64, f64)> {
    let (kafka_topic, rocketmq_topic) = (unique("bench.lat."), unique("bench_lat_"));
    let config = bench.config(&kafka_topic, &rocketmq_topic, variant)?;
    bench.create_topics(&config, bench.args.partitions, bench.args.queues)?;
    let mut bridge = BridgeProcess::start(bench, &config)?;
    let producer = latency_producer(bench, &kafka_topic).await?;
    // Ready once the probe record went through.
    wait_for_copy(
        bench,
        Target::RocketMq(&rocketmq_topic),
        1,
        Duration::from_secs(60),
        &mut bridge,
    )
    .await?;
    let (total, offered) = produce_steady(bench, &producer, &kafka_topic, rate, duration).await?;
    wait_for_copy(
        bench,
        Target::RocketMq(&rocketmq_topic),
        total as i64 + 1,
        Duration::from_secs(300),
        &mut bridge,
    )
    .await?;
    bridge.stop()?;
    let mut latencies = Vec::with_capacity(total);
    for queue in bench.reader.queues(&rocketmq_topic).await? {
        for message in bench.reader.read_queue(&queue).await? {
            let sent = message
                .properties
                .iter()
                .find(|(k, _)| k == "KAFKA_TIMESTAMP")
                .and_then(|(_, v)| v.parse::<i64>().ok());
            if let (Some(sent), false) = (sent, message.body == b"probe") {
                latencies.push((message.store_timestamp - sent) as f64);
            }
        }
    }
    latencies.sort_by(f64::total_cmp);
    let at = |q: f64| {
        latencies
            .get(((latencies.len() as f64 - 1.0) * q).round() as usize)
            .copied()
            .unwrap_or(f64::NAN)
    };
    Ok((at(0.5), at(0.99), at(0.999), offered))
}

/// A producer with a 1 ms linger (small produce requests, as a
/// latency-minded producer sends), after it stored one probe record.
async fn latency_producer(bench: &Bench, kafka_topic: &str) -> Result<FutureProducer> {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &bench.args.kafka)
        .set("linger.ms", "1")
        .set("queue.buffering.max.messages", "1000000")
        .create()?;
    producer
        .send(
            FutureRecord::<[u8], [u8]>::to(kafka_topic).payload(b"probe"),
            Duration::from_secs(10),
        )
        .await
        .map_err(|(e, _)| e)?;
    Ok(producer)
}

/// Produces at a steady `rate` for `duration`, each record stamped with the
/// time it was made; waits for every delivery. Returns (records, rate reached).
async fn produce_steady(
    bench: &Bench,
    producer: &FutureProducer,
    kafka_topic: &str,
    rate: f64,
    duration: Duration,
) -> Result<(usize, f64)> {
    let total = (rate * duration.as_secs_f64()) as usize;
    let interval = Duration::from_secs_f64(1.0 / rate);
    let started = Instant::now();
    let mut pending = Vec::with_capacity(total);
    for i in 0..total {
        let due = started + interval.mul_f64(i as f64);
        if let Some(wait) = due.checked_duration_since(Instant::now())
            && wait > Duration::from_millis(1)
        {
            tokio::time::sleep(wait).await;
        }
        let (key, value, headers) = record_parts(i, bench.args.value_size);
        let record = FutureRecord::<[u8], [u8]>::to(kafka_topic)
            .key(key.as_slice())
            .payload(value.as_slice())
            .headers(headers)
            .timestamp(now_ms());
        // A producer that falls behind waits: the offered rate is reported as reached.
        pending.push(enqueue(producer, record).await);
    }
    let offered = total as f64 / started.elapsed().as_secs_f64();
    for delivery in pending {
        delivery.await?.map_err(|(e, _)| e)?;
    }
    Ok((total, offered))
}

/// The latency floor Kafka itself sets, beside the bridge's: the same steady
/// load, read back by a plain rdkafka consumer; (p50, p99, p999) in ms from
/// the record's timestamp to its arrival in the consumer.
async fn kafka_latency(bench: &Bench, rate: f64, duration: Duration) -> Result<(f64, f64, f64)> {
    let kafka_topic = unique("bench.klat.");
    let config = bench.config(&kafka_topic, &unique("bench_klat_"), &PARTITION)?;
    bench.create_topics(&config, bench.args.partitions, bench.args.queues)?;
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", &bench.args.kafka)
        .set("group.id", unique("bench-klat-"))
        .set("session.timeout.ms", "6000")
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()?;
    consumer.subscribe(&[&kafka_topic])?;
    let producer = latency_producer(bench, &kafka_topic).await?;
    // Ready once the consumer got the probe record.
    tokio::time::timeout(Duration::from_secs(60), consumer.recv())
        .await
        .context("the Kafka consumer got nothing within 60 s")??;
    let expected = (rate * duration.as_secs_f64()) as usize;
    let reader = tokio::spawn(async move {
        let mut latencies = Vec::with_capacity(expected);
        while latencies.len() < expected {
            let Ok(Ok(message)) =
                tokio::time::timeout(Duration::from_secs(120), consumer.recv()).await
            else {
                break;
            };
            if let Some(sent) = message.timestamp().to_millis() {
                latencies.push((now_ms() - sent) as f64);
            }
        }
        latencies
    });
    produce_steady(bench, &producer, &kafka_topic, rate, duration).await?;
    let mut latencies = reader.await?;
    if latencies.len() < expected {
        bail!(
            "the Kafka consumer read {} of {expected} records",
            latencies.len()
        );
    }
    latencies.sort_by(f64::total_cmp);
    let at = |q: f64| latencies[((latencies.len() as f64 - 1.0) * q).round() as usize];
    Ok((at(0.5), at(0.99), at(0.999)))
}

/// The achieved rate with a `limit` msg/s, over a steady window.
async fn rate_limit_accuracy(
    bench: &Bench,
    kafka_topic: &str,
    limit: u32,
    window: Duration,
) -> Result<f64> {
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
        i64::from(limit) * 2,
        Duration::from_secs(120),
        &mut bridge,
    )
    .await?;
    let (start, before) = (Instant::now(), bench.count(&rocketmq_topic).await?);
    tokio::time::sleep(window).await;
    let achieved =
        (bench.count(&rocketmq_topic).await? - before) as f64 / start.elapsed().as_secs_f64();
    bridge.stop()?;
    Ok(achieved)
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

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .map_or("unknown CPU".to_string(), |s| s.trim().to_string());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let memory = std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .next()
        .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |kib| kib / 1024 / 1024);
    format!("{cores} cores ({cpu}), {memory} GiB memory, Linux; brokers and bridge share the cores")
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
    key_hash: Figure,
    client_ids: Figure,
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
}

async fn run_all(bench: &mut Bench) -> Result<String> {
    let (records, value_size, repeat) =
        (bench.args.records, bench.args.value_size, bench.args.repeat);
    let mut results = Results::default();
    if let Some(rate) = bench.args.only_latency {
        let window = Duration::from_secs(30);
        for (name, variant) in [
            ("default", PARTITION),
            ("fetch.wait.max.ms 10", SHORT_FETCH_WAIT),
        ] {
            let (p50, p99, p999, offered) = latency(bench, rate, window, &variant).await?;
            bench.say(format!("latency at {rate:.0}/s ({name}; producer reached {offered:.0}/s): p50 {p50:.0} ms, p99 {p99:.0} ms, p999 {p999:.0} ms"));
        }
        let (k50, k99, k999) = kafka_latency(bench, rate, window).await?;
        bench.say(format!("Kafka alone at {rate:.0}/s (produce, then an rdkafka consumer): p50 {k50:.0} ms, p99 {k99:.0} ms, p999 {k999:.0} ms"));
        bail!("--only-latency: no report written");
    }
    if bench.args.only_way_back {
        let (topic, _) = way_back::backlog(bench, records).await?;
        for round in 1..=repeat {
            way_back::bridge_only(bench, round, &topic, records).await?;
        }
        bail!("--only-way-back: no report written");
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
        results.rss_partition.push(partition.rss as f64);
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
        let client = bridge_throughput(bench, &backlog, records, &CLIENT_IDS).await?;
        results.client_ids.push(client.rate);
        let arenas = bridge_throughput(bench, &backlog, records, &TWO_MALLOC_ARENAS).await?;
        results.arenas.push(arenas.rate);
        results.rss_arenas.push(arenas.rss as f64);
        let cpu = partition.cpu;
        bench.say(format!(
            "round {round}: source ceiling {source:.0}/s, sink ceiling {sink:.0}/s (acknowledged at {:.0}/s; RocketMQ CPU {:.1} s), bridge partition {:.0}/s ({:.0} MiB peak RSS; CPU s: bridge {:.1}, Kafka broker {:.1}, RocketMQ {:.1}), key_hash {:.0}/s, client ids {:.0}/s, MALLOC_ARENA_MAX=2 {:.0}/s ({:.0} MiB peak RSS), verify reads Kafka {kafka_scan:.0}/s and RocketMQ {rocketmq_scan:.0}/s, compare-results reads the ledgers at {kafka_ledger:.0} and {rocketmq_ledger:.0} entries/s",
            sink_rates.acknowledged,
            sink_rates.broker_cpu,
            partition.rate,
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
    let (k50, k99, k999) = kafka_latency(bench, steady, window).await?;
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
        Duration::from_secs(10)
    };
    if (limit as usize) * 3 < records {
        let achieved = rate_limit_accuracy(bench, &backlog, limit, limit_window).await?;
        results.limit = Some((limit, achieved));
        bench.say(format!("rate limit {limit}/s: achieved {achieved:.0}/s"));
    } else {
        bench.say(format!(
            "rate limit: backlog too small for a {limit}/s window, skipped"
        ));
    }

    results.id_cost = id_cost();
    let (deterministic, client) = results.id_cost;
    bench.say(format!(
        "msgId derivation: deterministic {deterministic:.0} ns/record, client {client:.0} ns/record"
    ));

    results.restart = Some(restart::measure(bench, &backlog, records).await?);

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

/// Throughput by partition/queue count and by record size, one run each.
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
    for size in [2048usize, 65536] {
        let budget_bytes = if bench.args.smoke { 4 << 20 } else { 256 << 20 };
        let count = (budget_bytes / size).min(base);
        let (topic, _) = fresh_backlog(bench, saved.0, count, size).await?;
        let rate = bridge_throughput(bench, &topic, count, &PARTITION)
            .await?
            .rate;
        bench.say(format!(
            "scaling: {} partitions, {size} B: {rate:.0}/s ({:.1} MiB/s)",
            saved.0,
            rate * size as f64 / (1 << 20) as f64
        ));
        results
            .scaling
            .insert(format!("{} partitions, {} B", saved.0, size), rate);
    }
    Ok(())
}

fn row(out: &mut String, name: &str, figure: &Figure, unit: &str, value_size: usize) {
    let median = figure.median();
    let _ = writeln!(
        out,
        "| {name} | {median:.0} {unit} | {:.1} MB/s | ±{:.0}% ({} runs) |",
        median * value_size as f64 / 1e6,
        figure.spread() / 2.0,
        figure.samples.len()
    );
}

fn verdict(ok: bool) -> &'static str {
    if ok { "met" } else { "**missed**" }
}

fn render(bench: &Bench, r: &Results) -> String {
    let args = &bench.args;
    let mut out = String::new();
    let ceiling = r.source.median().min(r.sink.median());
    let _ = writeln!(out, "# Benchmarks\n");
    let _ = writeln!(
        out,
        "Written by `{}` (the numbers below are the ones it printed; do not edit by hand).\n",
        args.command
    );
    let _ = writeln!(out, "- Machine: {}.", machine());
    let _ = writeln!(
        out,
        "- Data: {} records, {} B values, 16 B keys, 2 headers, {} partitions, {} queues; each figure is the median of {} runs, ± half the spread.",
        args.records, args.value_size, args.partitions, args.queues, args.repeat
    );
    let _ = writeln!(
        out,
        "- Brokers: Apache Kafka {} (KRaft, one node) and Apache RocketMQ {} (name server and one broker) on 127.0.0.1, started by `scripts/brokers.sh`.\n",
        std::env::var("BRIDGE_KAFKA_VERSION").unwrap_or_else(|_| "(version unknown)".into()),
        std::env::var("BRIDGE_ROCKETMQ_VERSION").unwrap_or_else(|_| "(version unknown)".into())
    );
    let chart = args.report.with_extension("png");
    let chart = chart.file_name().map_or("".into(), |n| n.to_string_lossy());
    let _ = writeln!(
        out,
        "## Throughput\n\n![throughput against the ceilings]({chart})\n"
    );
    let _ = writeln!(
        out,
        "| what | records/s | payload | spread |\n| --- | --- | --- | --- |"
    );
    row(
        &mut out,
        "source ceiling: raw rdkafka consume",
        &r.source,
        "/s",
        args.value_size,
    );
    row(
        &mut out,
        "sink ceiling: raw RocketMQ batched produce, until readable",
        &r.sink,
        "/s",
        args.value_size,
    );
    row(
        &mut out,
        "(the same, until the last acknowledgement)",
        &r.sink_acknowledged,
        "/s",
        args.value_size,
    );
    row(
        &mut out,
        "**the bridge, `partition` mode**",
        &r.partition,
        "/s",
        args.value_size,
    );
    row(
        &mut out,
        "**the bridge, `key_hash` mode**",
        &r.key_hash,
        "/s",
        args.value_size,
    );
    row(
        &mut out,
        "the bridge, `partition`, `message_ids: client`",
        &r.client_ids,
        "/s",
        args.value_size,
    );
    row(
        &mut out,
        "naive bridge: sync send + commit per record",
        &r.naive,
        "/s",
        args.value_size,
    );
    row(
        &mut out,
        "(Kafka pre-load, for reference)",
        &r.preload,
        "/s",
        args.value_size,
    );
    let mib = |f: &Figure| f.median() / (1 << 20) as f64;
    let _ = writeln!(
        out,
        "\nPeak RSS of the bridge (VmHWM): {:.0} MiB in `partition` mode, {:.0} MiB in `key_hash` mode (in-flight cap 64 MiB). \
         With `MALLOC_ARENA_MAX=2` (glibc keeps freed memory per arena, and makes up to 8 arenas per core): {:.0} MiB in `partition` mode, at {:.0} records/s against {:.0}.\n",
        mib(&r.rss_partition),
        mib(&r.rss_key_hash),
        mib(&r.rss_arenas),
        r.arenas.median(),
        r.partition.median()
    );
    let per_record = |seconds: f64| seconds / args.records as f64 * 1e6;
    let cpu = r.cpu;
    let _ = writeln!(
        out,
        "CPU used during the last `partition` copy of the {} records: bridge {:.1} s ({:.1} µs/record), Kafka broker {:.1} s ({:.1} µs/record), RocketMQ name server and broker {:.1} s ({:.1} µs/record). The three share {} cores. \
         The bridge sent {:.0} records per batch on average in `partition` mode and {:.0} in `key_hash` mode (at most {}). \
         During the last sink ceiling run, with no Kafka and no bridge, RocketMQ used {:.1} s ({:.1} µs/record) until the last record was readable.\n\n\
         Both the bridge and the sink ceiling are timed from the first to the last record readable in RocketMQ, that is in a consume queue: \
         the broker acknowledges a batch as soon as it is in the commit log, and dispatches it to the consume queues and the index afterwards, one message after another (the broker's ReputMessageService thread). \
         Timed to the last acknowledgement instead, the ceiling measures a rate the broker cannot sustain: its dispatch backlog grows for as long as the run lasts.\n",
        args.records,
        cpu.bridge,
        per_record(cpu.bridge),
        cpu.kafka,
        per_record(cpu.kafka),
        cpu.rocketmq,
        per_record(cpu.rocketmq),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        r.batch_partition.median(),
        r.batch_key_hash.median(),
        kafka_rocketmq_bridge::config::BridgeSettings::default().max_batch_records,
        r.sink_broker_cpu,
        per_record(r.sink_broker_cpu),
    );
    r.way_back.render(&mut out, args.records, args.value_size);
    let _ = writeln!(
        out,
        "## Targets\n\n| target | measured | verdict |\n| --- | --- | --- |"
    );
    let ratio = r.partition.median() / ceiling;
    let _ = writeln!(
        out,
        "| bridge ≥ 90% of min(source, sink ceiling) | {:.0}% (`partition`), {:.0}% (`key_hash`) | {} |",
        ratio * 100.0,
        r.key_hash.median() / ceiling * 100.0,
        verdict(ratio >= 0.9)
    );
    let _ = writeln!(out, "{}", r.way_back.target_row(verdict));
    let naive_ratio = r.partition.median() / r.naive.median();
    let _ = writeln!(
        out,
        "| bridge ≥ 20x the naive bridge | {naive_ratio:.0}x | {} |",
        verdict(naive_ratio >= 20.0)
    );
    if let (Some((rate, p50, p99, p999)), Some((k50, k99, k999))) = (r.latency, r.kafka_latency) {
        let _ = writeln!(
            out,
            "| p99 end-to-end latency at 50% load ≤ 50 ms, and ≤ Kafka alone's p99 + 10 ms | p50 {p50:.0} ms, p99 {p99:.0} ms, p999 {p999:.0} ms at {rate:.0} records/s; Kafka alone (produce to an rdkafka consumer, same load): p50 {k50:.0} ms, p99 {k99:.0} ms, p999 {k999:.0} ms | {} |",
            verdict(p99 <= 50.0 && p99 <= k99 + 10.0)
        );
    }
    if let Some((rate, p50, p99, p999)) = r.light_latency {
        let _ = writeln!(
            out,
            "| p99 end-to-end latency at 10% load ≤ 50 ms | p50 {p50:.0} ms, p99 {p99:.0} ms, p999 {p999:.0} ms at {rate:.0} records/s | {} |",
            verdict(p99 <= 50.0)
        );
    }
    let cpu_us = r.cpu.bridge / args.records as f64 * 1e6;
    let _ = writeln!(
        out,
        "| bridge CPU ≤ 2 µs per record | {cpu_us:.1} µs (the last `partition` copy: {:.1} s for {} records) | {} |",
        r.cpu.bridge,
        args.records,
        verdict(cpu_us <= 2.0)
    );
    if let Some(restarts) = &r.restart {
        let _ = writeln!(out, "{}", restarts.target_row(args.records, verdict));
    }
    let peak = mib(&r.rss_partition).max(mib(&r.rss_key_hash));
    let _ = writeln!(
        out,
        "| peak RSS ≤ 64 MiB + in-flight cap (128 MiB) | {peak:.0} MiB | {} |",
        verdict(peak <= 128.0)
    );
    if let Some((limit, achieved)) = r.limit {
        let error = (achieved - f64::from(limit)) / f64::from(limit) * 100.0;
        let _ = writeln!(
            out,
            "| achieved rate within 5% of a limit | {achieved:.0}/s for {limit}/s ({error:+.1}%) | {} |",
            verdict(error.abs() <= 5.0)
        );
    }
    let cost = (1.0 - r.partition.median() / r.client_ids.median()) * 100.0;
    let (deterministic, client) = r.id_cost;
    let bridge_ns = r.cpu.bridge / args.records as f64 * 1e9;
    let id_share = (deterministic - client) / bridge_ns * 100.0;
    let _ = writeln!(
        out,
        "| deterministic msgIds cost ≤ 5% against client ids | throughput {:.0}/s against {:.0}/s, a cost of {cost:+.1}% (medians of {} runs each; negative means faster); CPU: {deterministic:.0} ns against {client:.0} ns per id, {id_share:.1}% of the bridge's {bridge_ns:.0} ns per record | {} |",
        r.partition.median(),
        r.client_ids.median(),
        r.partition.samples.len(),
        verdict(id_share <= 5.0)
    );
    let (kafka_scan, rocketmq_scan) = (r.verify_kafka.median(), r.verify_rocketmq.median());
    let _ = writeln!(
        out,
        "| `verify` scans ≥ 200,000 records/s per side | Kafka {kafka_scan:.0}/s ±{:.0}%, RocketMQ {rocketmq_scan:.0}/s ±{:.0}% | {} |",
        r.verify_kafka.spread() / 2.0,
        r.verify_rocketmq.spread() / 2.0,
        verdict(kafka_scan.min(rocketmq_scan) >= 200_000.0)
    );
    let (kafka_ledger, rocketmq_ledger) = (r.results_kafka.median(), r.results_rocketmq.median());
    let _ = writeln!(
        out,
        "| `compare-results` scans ≥ 200,000 ledger entries/s per side | Kafka side's ledger {kafka_ledger:.0}/s ±{:.0}%, RocketMQ side's {rocketmq_ledger:.0}/s ±{:.0}% ({} entries each, 500 per ledger record) | {} |",
        r.results_kafka.spread() / 2.0,
        r.results_rocketmq.spread() / 2.0,
        r.results_entries,
        verdict(kafka_ledger.min(rocketmq_ledger) >= 200_000.0)
    );
    let (paced, unpaced) = (
        r.verify_beside_paced.median(),
        r.verify_beside_unpaced.median(),
    );
    let _ = writeln!(
        out,
        "| the daily count-match costs the copy ≤ 10% of its rate | {:.0}% of the rate alone with the scan paced at {}/s per side (the default `max_scan_rate`), ±{:.0}%, count-match passes started during each paced copy: {:?}; unpaced, {:.0}%. Bridge CPU over the copy: {:.1} s alone, {:.1} s paced, {:.1} s unpaced | {} |",
        paced * 100.0,
        daily_verify_cost::PACE,
        r.verify_beside_paced.spread() / 2.0,
        r.verify_beside_passes,
        unpaced * 100.0,
        r.verify_beside_cpu[0].median(),
        r.verify_beside_cpu[1].median(),
        r.verify_beside_cpu[2].median(),
        verdict(paced >= 0.9 && r.verify_beside_passes.iter().all(|p| *p > 0))
    );
    if let Some(restarts) = &r.restart {
        restarts.render(&mut out);
    }
    let _ = writeln!(
        out,
        "\n## Scaling (one run each)\n\n| backlog | records/s | MiB/s |\n| --- | --- | --- |"
    );
    for (name, rate) in &r.scaling {
        let size: f64 = name
            .rsplit(", ")
            .next()
            .and_then(|s| s.trim_end_matches(" B").parse().ok())
            .unwrap_or(0.0);
        let _ = writeln!(
            out,
            "| {name} | {rate:.0} | {:.1} |",
            rate * size / (1 << 20) as f64
        );
    }
    // Where the time goes: hand-written from profiles, kept next to the harness.
    if let Ok(analysis) = std::fs::read_to_string("benches/analysis.md") {
        let _ = writeln!(out, "\n{analysis}");
    }
    let _ = writeln!(out, "\n## Log of this run\n\n```\n{}```", bench.log);
    out
}

fn write_csv(bench: &Bench, r: &Results) -> Result<()> {
    if let Some(parent) = bench.args.csv.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let mut csv = String::from("what,records_per_second\n");
    let forward = [
        ("source ceiling", &r.source),
        ("sink ceiling", &r.sink),
        ("bridge partition", &r.partition),
        ("bridge key_hash", &r.key_hash),
        ("bridge client ids", &r.client_ids),
        ("naive bridge", &r.naive),
    ];
    for (name, figure) in forward.into_iter().chain(r.way_back.csv_rows()) {
        let _ = writeln!(csv, "{name},{:.0}", figure.median());
    }
    std::fs::write(&bench.args.csv, csv)?;
    Ok(())
}
