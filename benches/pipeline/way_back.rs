//! The way back (RocketMQ to Kafka) against its own ceilings, in the same
//! rounds as the forward figures: the raw RocketMQ pull of a pre-loaded
//! topic (the source ceiling), the raw Kafka produce of the same records
//! (the sink ceiling), the bridge with one `rocketmq_to_kafka` mapping, and
//! the ratio of the bridge to the lower ceiling, with its target.
//!
//! The backlog is RocketMQ originals of the benchmark's shape: the same
//! values, the 16-byte keys as `KEYS`, and the two headers as properties,
//! sent in the sink ceiling's batches (one sender per queue).

use std::borrow::Cow;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rocketmq_client_rust::DefaultLitePullConsumer;
use rocketmq_model::common::consumer::consume_from_where::ConsumeFromWhere;
use rocketmq_protocol::protocol::heartbeat::message_model::MessageModel;

use kafka_rocketmq_bridge::checkpoint::PartitionId;
use kafka_rocketmq_bridge::config::{KafkaConfig, MessageIds};
use kafka_rocketmq_bridge::kafka_sink::partition_lane::PRODUCER_SETTINGS;
use kafka_rocketmq_bridge::kafka_source;
use kafka_rocketmq_bridge::mapping::OutgoingMessage;
use kafka_rocketmq_bridge::mapping::reverse::{self, ReverseRules, RocketMqMessage};
use kafka_rocketmq_bridge::rocketmq_sink::encode::Envelope;
use kafka_rocketmq_bridge::rocketmq_source;

use super::{
    Bench, Copy, CpuUse, Figure, PARTITION, Target, Variant, enqueue, now_ms, record_parts, row,
    sink_ceiling, timed_copy, unique, wait_until_readable,
};

/// The bridge with one `rocketmq_to_kafka` mapping, queue q to partition
/// q mod P.
const WAY_BACK: Variant = Variant {
    direction: "rocketmq_to_kafka",
    ..PARTITION
};

/// How often the transactional produce commits, in the comparison with the
/// idempotent producer: about the bridge's batch time, and a long interval.
const TRANSACTION_EVERY: [Duration; 2] = [Duration::from_millis(100), Duration::from_secs(1)];

/// The way back's figures, one sample per round.
#[derive(Default)]
pub struct WayBack {
    /// RocketMQ stored the backlog (batched produce, until readable).
    pub preload: Figure,
    /// Raw pull with the crate's `TopicReader` (classic pull by offset,
    /// every queue at once, 4 pulls ahead per queue).
    pub pull: Figure,
    /// Raw poll of the client's lite pull consumer (what the bridge reads
    /// with), in a fresh group, with the bridge's pull size.
    pub lite_pull: Figure,
    /// Raw produce of the same records to Kafka, with the bridge's producer
    /// settings.
    pub produce: Figure,
    /// The same produce, from the first send to the last acknowledgement.
    pub produce_acknowledged: Figure,
    /// The same records in Kafka transactions committed every
    /// `TRANSACTION_EVERY[0]`, and every `TRANSACTION_EVERY[1]`, from the
    /// first send to the last commit.
    pub transactions_short: Figure,
    pub transactions_long: Figure,
    pub bridge: Figure,
    pub rss: Figure,
    /// Records per batch the bridge sent to a partition.
    pub batch: Figure,
    /// CPU seconds per process during the last copy.
    pub cpu: CpuUse,
}

impl WayBack {
    /// The source ceiling: the faster of the two raw readers.
    fn source_ceiling(&self) -> f64 {
        self.pull.median().max(self.lite_pull.median())
    }

    /// Which raw reader [`WayBack::source_ceiling`] is.
    fn source_reader(&self) -> &'static str {
        if self.pull.median() >= self.lite_pull.median() {
            "`TopicReader` pull"
        } else {
            "lite pull"
        }
    }

    fn ceiling(&self) -> f64 {
        self.source_ceiling().min(self.produce.median())
    }

    /// The section of the report.
    pub fn render(&self, out: &mut String, records: usize, value_size: usize) {
        let _ = writeln!(
            out,
            "## The way back (RocketMQ to Kafka)\n\n\
             The same {records} records as RocketMQ originals (value as body, key as `KEYS`, the two headers as properties), \
             copied by one `direction: rocketmq_to_kafka` mapping (queue q to partition q mod P), in the same rounds as the figures above.\n\n\
             | what | records/s | payload | spread |\n| --- | --- | --- | --- |"
        );
        row(
            out,
            "source ceiling: raw RocketMQ pull (`TopicReader`: pull by offset, all queues at once)",
            &self.pull,
            "/s",
            value_size,
        );
        row(
            out,
            "source ceiling: raw RocketMQ lite pull consumer poll (the bridge's client and pull size)",
            &self.lite_pull,
            "/s",
            value_size,
        );
        row(
            out,
            "sink ceiling: raw Kafka produce (idempotent, `acks=all`), until readable",
            &self.produce,
            "/s",
            value_size,
        );
        row(
            out,
            "Kafka produce, idempotent, from the first send to the last acknowledgement",
            &self.produce_acknowledged,
            "/s",
            value_size,
        );
        for (every, figure) in TRANSACTION_EVERY
            .iter()
            .zip([&self.transactions_short, &self.transactions_long])
        {
            let name = format!(
                "Kafka produce in transactions committed every {} ms, from the first send to the last commit",
                every.as_millis()
            );
            row(out, &name, figure, "/s", value_size);
        }
        row(
            out,
            "**the bridge, the way back**",
            &self.bridge,
            "/s",
            value_size,
        );
        row(
            out,
            "(RocketMQ pre-load, for reference)",
            &self.preload,
            "/s",
            value_size,
        );
        let per_record = |seconds: f64| seconds / records as f64 * 1e6;
        let cpu = self.cpu;
        let _ = writeln!(
            out,
            "\nThe source ceiling is the faster of the two raw readers. The sink ceiling produces each record as the bridge would write it \
             (the reverse mapping's key, value and headers, provenance included; queue q to partition q mod P) through one rdkafka producer \
             with the bridge's settings for the way back. It and the bridge are timed from the first to the last record below Kafka's high watermarks. \
             Peak RSS of the bridge (VmHWM): {:.0} MiB; it sent {:.0} records per batch on average (at most {}). CPU used during the last copy: bridge {:.1} s ({:.1} µs/record), Kafka broker {:.1} s ({:.1} µs/record), \
             RocketMQ name server and broker {:.1} s ({:.1} µs/record).\n",
            self.rss.median() / (1 << 20) as f64,
            self.batch.median(),
            kafka_rocketmq_bridge::config::BridgeSettings::default().max_batch_records,
            cpu.bridge,
            per_record(cpu.bridge),
            cpu.kafka,
            per_record(cpu.kafka),
            cpu.rocketmq,
            per_record(cpu.rocketmq),
        );
    }

    /// The target's row, for the targets table.
    pub fn target_row(&self, verdict: fn(bool) -> &'static str) -> String {
        let ratio = self.bridge.median() / self.ceiling();
        format!(
            "| the way back ≥ 90% of min(RocketMQ source, Kafka sink ceiling) | {:.0}% ({:.0}/s against min({:.0} ({}), {:.0})/s) | {} |",
            ratio * 100.0,
            self.bridge.median(),
            self.source_ceiling(),
            self.source_reader(),
            self.produce.median(),
            verdict(ratio >= 0.9)
        )
    }

    /// Rows of the throughput CSV (and chart).
    pub fn csv_rows(&self) -> [(&'static str, &Figure); 4] {
        [
            ("way back source ceiling: RocketMQ pull", &self.pull),
            ("way back source ceiling: lite pull", &self.lite_pull),
            ("way back sink ceiling: Kafka produce", &self.produce),
            ("bridge way back", &self.bridge),
        ]
    }
}

/// A RocketMQ original of the benchmark's shape: record `i`'s value as
/// body, its key as `KEYS`, its two headers as properties.
fn original(topic: &str, i: usize, value_size: usize) -> Envelope {
    let (key, value, _) = record_parts(i, value_size);
    let key = String::from_utf8_lossy(&key).into_owned();
    let message = OutgoingMessage {
        body: &value,
        keys: Some(Cow::Owned(key)),
        tag: None,
        properties: vec![
            (Cow::Borrowed("trace-id"), Cow::Owned(format!("{i:016x}"))),
            (Cow::Borrowed("source"), Cow::Borrowed("bench")),
        ],
    };
    Envelope::new(
        PartitionId::new(topic, 0),
        i as i64,
        &message,
        &format!("{i:032X}"),
        None,
    )
}

/// A new RocketMQ topic holding `records` originals; returns it and the
/// rate RocketMQ stored them at (until readable).
pub async fn backlog(bench: &Bench, records: usize) -> Result<(String, f64)> {
    let topic = unique("bench_back_in_");
    let config = bench.config(&unique("bench.unused."), &topic, &WAY_BACK)?;
    bench.create_topics_on(
        Some("rocketmq"),
        &config,
        bench.args.partitions,
        bench.args.queues,
    )?;
    let rates = sink_ceiling(bench, &topic, records, bench.args.value_size, original).await?;
    Ok((topic, rates.readable))
}

/// One round: both source ceilings, the sink ceiling and the bridge, over
/// the backlog `topic` of `records` messages.
pub async fn round(
    bench: &mut Bench,
    round: usize,
    topic: &str,
    records: usize,
    into: &mut WayBack,
) -> Result<()> {
    let pull = pull_ceiling(bench, topic, records).await?;
    into.pull.push(pull);
    let lite_pull = lite_pull_ceiling(bench, topic, records).await?;
    into.lite_pull.push(lite_pull);
    let idempotent = produce(bench, topic, records, Commit::Idempotent).await?;
    let produce_rate = idempotent.readable;
    into.produce.push(produce_rate);
    into.produce_acknowledged.push(idempotent.committed);
    for (every, figure) in [
        (TRANSACTION_EVERY[0], &mut into.transactions_short),
        (TRANSACTION_EVERY[1], &mut into.transactions_long),
    ] {
        let produced = produce(bench, topic, records, Commit::Transactions(every)).await?;
        figure.push(produced.committed);
    }
    let copy = bridge_copy(bench, topic, records).await?;
    into.bridge.push(copy.rate);
    into.rss.push(copy.rss as f64);
    into.batch.push(copy.mean_batch);
    into.cpu = copy.cpu;
    bench.say(format!(
        "round {round}, the way back: RocketMQ pull {pull:.0}/s, lite pull {lite_pull:.0}/s, Kafka produce {produce_rate:.0}/s (in transactions every 100 ms {:.0}/s, every 1 s {:.0}/s), bridge {:.0}/s ({:.0} MiB peak RSS, {:.0} records per batch; CPU s: bridge {:.1}, Kafka broker {:.1}, RocketMQ {:.1})",
        into.transactions_short.last(),
        into.transactions_long.last(),
        copy.rate,
        copy.rss as f64 / (1 << 20) as f64,
        copy.mean_batch,
        copy.cpu.bridge,
        copy.cpu.kafka,
        copy.cpu.rocketmq
    ));
    Ok(())
}

/// The bridge's copy of the backlog `topic` into a new Kafka topic.
async fn bridge_copy(bench: &mut Bench, topic: &str, records: usize) -> Result<Copy> {
    let kafka_topic = unique("bench.back.");
    let config = bench.config(&kafka_topic, topic, &WAY_BACK)?;
    bench.create_topics(&config, bench.args.partitions, bench.args.queues)?;
    timed_copy(
        bench,
        config,
        Target::Kafka(&kafka_topic),
        records,
        &WAY_BACK,
    )
    .await
}

/// `--only-way-back`: the bridge's copy alone, for profiling.
pub async fn bridge_only(
    bench: &mut Bench,
    round: usize,
    topic: &str,
    records: usize,
) -> Result<()> {
    let copy = bridge_copy(bench, topic, records).await?;
    bench.say(format!(
        "round {round}, the way back: bridge {:.0}/s ({:.0} records per batch; CPU s: bridge {:.1}, Kafka broker {:.1}, RocketMQ {:.1})",
        copy.rate, copy.mean_batch, copy.cpu.bridge, copy.cpu.kafka, copy.cpu.rocketmq
    ));
    Ok(())
}

/// Raw pull of every queue of `topic` at once with the crate's
/// `TopicReader`, from each queue's first offset to its end: records/s.
async fn pull_ceiling(bench: &Bench, topic: &str, records: usize) -> Result<f64> {
    let reader = &bench.reader;
    let queues = reader.queues(topic).await?;
    let started = Instant::now();
    let scans = queues.iter().map(|queue| async move {
        let (min, max) = reader.offsets(queue).await?;
        let (mut read, mut bytes) = (0usize, 0usize);
        reader
            .scan_queue_with(queue, min, max, |message| {
                read += 1;
                bytes += message.body().map_or(0, |body| body.len());
            })
            .await?;
        std::hint::black_box(bytes);
        anyhow::Ok(read)
    });
    let read: usize = futures::future::try_join_all(scans)
        .await?
        .into_iter()
        .sum();
    let elapsed = started.elapsed();
    if read != records {
        bail!("the RocketMQ pull read {read} of the {records} messages in {topic}");
    }
    Ok(read as f64 / elapsed.as_secs_f64())
}

/// Raw poll of `topic` by a lite pull consumer in a new group, with the
/// bridge's pull size, from the first offset, until it has every message:
/// records/s from the first message (the group's rebalance is not
/// throughput).
async fn lite_pull_ceiling(bench: &Bench, topic: &str, records: usize) -> Result<f64> {
    let runtime = bench.runtime.as_ref().context("runtime")?;
    let failed = |what: &str, error: &dyn std::fmt::Display| {
        anyhow::anyhow!("lite pull consumer of {topic}: {what}: {error}")
    };
    let consumer = DefaultLitePullConsumer::builder(runtime.client_runtime())
        .consumer_group(unique("bench_lite_"))
        .name_server_addr(bench.args.name_server.as_str())
        .message_model(MessageModel::Clustering)
        .consume_from_where(ConsumeFromWhere::ConsumeFromFirstOffset)
        .pull_batch_size(rocketmq_source::PULL_BATCH)
        .auto_commit(false)
        .build()
        .map_err(|e| failed("build", &e))?;
    consumer
        .subscribe(topic)
        .await
        .map_err(|e| failed("subscribe", &e))?;
    consumer.start().await.map_err(|e| failed("start", &e))?;
    let deadline = Instant::now() + Duration::from_secs(900);
    let (mut read, mut bytes) = (0usize, 0usize);
    // The clock starts at the first answer, whose messages are not counted
    // in the rate (as the Kafka source ceiling does with its first record).
    let mut started: Option<(Instant, usize)> = None;
    while read < records {
        if Instant::now() > deadline {
            consumer.shutdown().await;
            bail!(
                "the lite pull consumer read {read} of the {records} messages in {topic} within 900 s"
            );
        }
        let polled = consumer.poll_with_timeout(100).await;
        if polled.is_empty() {
            continue;
        }
        read += polled.len();
        bytes += polled
            .iter()
            .map(|message| message.body().map_or(0, |body| body.len()))
            .sum::<usize>();
        started.get_or_insert((Instant::now(), polled.len()));
    }
    let (timed, elapsed) = started.map_or((0, Duration::ZERO), |(at, first)| {
        (read - first, at.elapsed())
    });
    consumer.shutdown().await;
    std::hint::black_box(bytes);
    Ok(timed as f64 / elapsed.as_secs_f64().max(0.001))
}

/// How the raw produce commits: as the bridge does (idempotent, each
/// record acknowledged), or in Kafka transactions committed this often.
#[derive(Clone, Copy)]
enum Commit {
    Idempotent,
    Transactions(Duration),
}

/// One raw produce of the backlog.
struct Produced {
    /// Records/s from the first to the last record below the high
    /// watermarks (idempotent only: a transaction's markers are there too).
    readable: f64,
    /// Records/s from the first send to the last acknowledgement, or to the
    /// last transaction's commit (when a `read_committed` consumer sees it).
    committed: f64,
}

/// Raw produce of the backlog's records as the bridge writes them to a new
/// Kafka topic, with the bridge's producer settings for the way back,
/// committed by `commit`.
async fn produce(
    bench: &Bench,
    rocketmq_topic: &str,
    records: usize,
    commit: Commit,
) -> Result<Produced> {
    let kafka_topic = unique("bench.back.sink.");
    // The backlog's topic exists: only the Kafka topic is created.
    let config = bench.config(&kafka_topic, rocketmq_topic, &WAY_BACK)?;
    bench.create_topics(&config, bench.args.partitions, bench.args.queues)?;
    let kafka: KafkaConfig = serde_yaml::from_str(&format!(
        "bootstrap_servers: \"{}\"\ngroup_id: \"{}\"",
        bench.args.kafka,
        unique("bench-back-sink-")
    ))?;
    let mut client = kafka_source::for_producer(kafka_source::client_config(&kafka));
    for (name, value) in PRODUCER_SETTINGS {
        client.set(name, value);
    }
    if let Commit::Transactions(_) = commit {
        client.set("transactional.id", unique("bench-back-tx-"));
    }
    let producer: FutureProducer = client.create()?;
    let blocking = Duration::from_secs(30);
    if let Commit::Transactions(_) = commit {
        producer.init_transactions(blocking)?;
        producer.begin_transaction()?;
    }
    let mut last_commit = Instant::now();
    let queues = bench.reader.queues(rocketmq_topic).await?;
    let per_queue = records.div_ceil(queues.len().max(1));
    let partitions = bench.args.partitions as usize;
    let rules = ReverseRules {
        kafka_topic: kafka_topic.clone(),
        max_message_bytes: 1 << 20,
        forward_ids: MessageIds::Deterministic,
    };
    let value_size = bench.args.value_size;
    let started = Instant::now();
    let sending = async {
        let mut pending = Vec::new();
        // Round robin over the queues, each in offset order, as the
        // bridge's readers hand them over.
        for offset in 0..per_queue {
            for (q, queue) in queues.iter().enumerate() {
                let i = q * per_queue + offset;
                if offset >= per_queue.min(records.saturating_sub(q * per_queue)) {
                    continue;
                }
                let (key, value, _) = record_parts(i, value_size);
                let now = now_ms();
                let message = RocketMqMessage {
                    topic: rocketmq_topic.into(),
                    broker: queue.broker_name().as_str().into(),
                    queue_id: queue.queue_id(),
                    queue_offset: offset as i64,
                    msg_id: Some(format!("{i:032X}").into()),
                    keys: Some(String::from_utf8_lossy(&key).into_owned().into()),
                    tags: None,
                    born_timestamp_ms: now,
                    store_timestamp_ms: now,
                    body: value.into(),
                    properties: vec![
                        ("trace-id".into(), format!("{i:016x}").into()),
                        ("source".into(), "bench".into()),
                    ],
                };
                let mapped = reverse::map_message(&message, &rules)
                    .map_err(|e| anyhow::anyhow!("the reverse mapping refused message {i}: {e}"))?;
                let headers =
                    mapped
                        .headers
                        .iter()
                        .fold(OwnedHeaders::new(), |headers, (name, value)| {
                            headers.insert(Header {
                                key: name,
                                value: Some(value.as_ref()),
                            })
                        });
                let mut record = FutureRecord::<[u8], [u8]>::to(&kafka_topic)
                    .partition((queue.queue_id() as usize % partitions) as i32)
                    .payload(mapped.value)
                    .headers(headers)
                    .timestamp(mapped.timestamp_ms);
                if let Some(key) = mapped.key {
                    record = record.key(key);
                }
                pending.push(enqueue(&producer, record).await);
                if let Commit::Transactions(every) = commit
                    && last_commit.elapsed() >= every
                {
                    // The commit waits for every record of the transaction.
                    tokio::task::block_in_place(|| {
                        producer.commit_transaction(blocking)?;
                        producer.begin_transaction()
                    })?;
                    last_commit = Instant::now();
                }
                if pending.len() >= 50_000 {
                    for delivery in pending.drain(..) {
                        delivery.await?.map_err(|(e, _)| e)?;
                    }
                }
            }
        }
        if let Commit::Transactions(_) = commit {
            tokio::task::block_in_place(|| producer.commit_transaction(blocking))?;
        }
        for delivery in pending {
            delivery.await?.map_err(|(e, _)| e)?;
        }
        producer.flush(blocking)?;
        anyhow::Ok(started.elapsed())
    };
    let rate = |took: Duration| records as f64 / took.as_secs_f64().max(0.001);
    if let Commit::Transactions(_) = commit {
        let took = sending.await?;
        return Ok(Produced {
            readable: rate(took),
            committed: rate(took),
        });
    }
    let readable = wait_until_readable(
        bench,
        Target::Kafka(&kafka_topic),
        records as i64,
        Duration::from_secs(900),
        || false,
    );
    let (took, (first, last)) = tokio::try_join!(sending, readable)?;
    Ok(Produced {
        readable: rate(last.duration_since(first)),
        committed: rate(took),
    })
}
