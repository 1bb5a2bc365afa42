//! Demo traffic for `scripts/demo.sh`. Not part of the product image.
//!
//! `produce` writes keyed records with headers into every Kafka topic of a
//! config, as an application would; `stream` does the same at a steady rate
//! for a while (`scripts/soak.sh`). `compare` reads each Kafka topic and its
//! RocketMQ copy and prints a one-screen summary: counts, missing records,
//! duplicates, content, and per-key order.

#![recursion_limit = "256"]

use std::collections::{BTreeMap, HashMap};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering as AtomicOrdering};
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use kafka_rocketmq_bridge::config::{self, BridgeConfig, MappingConfig};
use kafka_rocketmq_bridge::kafka_source::{
    self,
    consumer::{TopicNames, source_record},
};
use kafka_rocketmq_bridge::mapping::SourceRecord;
use kafka_rocketmq_bridge::rocketmq_reader::{ReadMessage, TopicReader};
use kafka_rocketmq_bridge::rocketmq_sink::RocketMqRuntime;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};

#[derive(Parser)]
#[command(about = "Demo traffic for kafka-rocketmq-bridge")]
struct Args {
    #[arg(long, env = "BRIDGE_CONFIG", global = true)]
    config: Option<std::path::PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Produce keyed records with headers into every mapped Kafka topic.
    Produce {
        /// Records per mapped topic.
        #[arg(long, default_value_t = 1000)]
        records: usize,
        /// Distinct keys (customers) the records are spread over.
        #[arg(long, default_value_t = 20)]
        keys: usize,
    },
    /// Produce keyed records with headers into the mapped Kafka topics, in
    /// turn, at a steady total rate for a fixed time (the soak's traffic).
    Stream {
        /// Records per second, over all mapped topics together.
        #[arg(long, default_value_t = 1000)]
        rate: u64,
        /// How long to produce: 90s, 2m, 1h.
        #[arg(long, value_parser = parse_duration)]
        duration: Duration,
        /// Distinct keys (customers) the records of each topic are spread over.
        #[arg(long, default_value_t = 50)]
        keys: usize,
        /// Write the records Kafka acknowledged, per topic, as JSON to this file.
        #[arg(long)]
        summary: Option<std::path::PathBuf>,
    },
    /// Compare each Kafka topic with its RocketMQ copy.
    Compare {
        /// Keep re-reading until RocketMQ caught up, at most this many seconds.
        #[arg(long, default_value_t = 60)]
        wait_seconds: u64,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let Some(path) = args.config else {
        eprintln!("error: --config (or BRIDGE_CONFIG) is required");
        return ExitCode::from(2);
    };
    let config = match config::load_file(&path) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::from(1);
        }
    };
    let result = match args.command {
        Command::Produce { records, keys } => produce_all(&config, records, keys).await,
        Command::Stream {
            rate,
            duration,
            keys,
            summary,
        } => stream(&config, rate, duration, keys, summary.as_deref()).await,
        Command::Compare { wait_seconds } => {
            compare_all(&config, Duration::from_secs(wait_seconds)).await
        }
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::from(2)
        }
    }
}

/// An idempotent producer for the config's Kafka cluster, as an
/// application would use.
fn application_producer(config: &BridgeConfig) -> Result<FutureProducer, String> {
    let mut client = kafka_source::client_config(&config.kafka);
    client
        .set("linger.ms", "5")
        .set("enable.idempotence", "true");
    client
        .create()
        .map_err(|e| format!("Kafka producer for {}: {e}", config.kafka.bootstrap_servers))
}

async fn produce_all(config: &BridgeConfig, records: usize, keys: usize) -> Result<bool, String> {
    let producer = application_producer(config)?;
    for mapping in &config.mappings {
        produce(&producer, &mapping.kafka_topic, records, keys)
            .await
            .map_err(|e| format!("{}: {e}", mapping.kafka_topic))?;
        println!(
            "produced {records} records over {keys} keys into {}",
            mapping.kafka_topic
        );
    }
    Ok(true)
}

async fn produce(
    producer: &FutureProducer,
    topic: &str,
    records: usize,
    keys: usize,
) -> Result<(), String> {
    let mut pending = Vec::with_capacity(records);
    for seq in 0..records {
        pending.push(send_one(producer, topic, seq, keys).await?);
    }
    for delivery in pending {
        match delivery.await {
            Ok(Ok(_)) => {}
            Ok(Err((error, _))) => return Err(error.to_string()),
            Err(_) => return Err("the producer was dropped before delivery".to_string()),
        }
    }
    Ok(())
}

/// Queues record `seq` of `topic`: a customer key, a JSON value and two headers.
async fn send_one(
    producer: &FutureProducer,
    topic: &str,
    seq: usize,
    keys: usize,
) -> Result<DeliveryFuture, String> {
    let key = format!("customer-{:03}", seq % keys.max(1));
    let value = format!(
        r#"{{"topic":"{topic}","customer":"{key}","seq":{seq},"amount_cents":{}}}"#,
        (seq * 37) % 10_000
    );
    let seq_text = seq.to_string();
    let headers = OwnedHeaders::new()
        .insert(Header {
            key: "source",
            value: Some("demo-traffic"),
        })
        .insert(Header {
            key: "seq",
            value: Some(seq_text.as_str()),
        });
    let mut record = FutureRecord::to(topic)
        .key(&key)
        .payload(&value)
        .headers(headers);
    // librdkafka copies the record when it is queued; wait while its queue is full.
    loop {
        match producer.send_result(record) {
            Ok(delivery) => return Ok(delivery),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                record = back;
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            Err((error, _)) => return Err(error.to_string()),
        }
    }
}

/// Produces `rate` records per second in total, the mapped topics in turn,
/// for `duration`; then waits for every delivery report. Fails if Kafka
/// refused any record.
async fn stream(
    config: &BridgeConfig,
    rate: u64,
    duration: Duration,
    keys: usize,
    summary: Option<&std::path::Path>,
) -> Result<bool, String> {
    if rate == 0 || config.mappings.is_empty() {
        return Err("--rate must be more than 0, and the config must map a topic".to_string());
    }
    let producer = application_producer(config)?;
    let topics: Vec<String> = config
        .mappings
        .iter()
        .map(|m| m.kafka_topic.clone())
        .collect();
    // Delivery reports are awaited in order by a second task, so memory
    // stays bounded however long the stream runs.
    let delivered = Arc::new(AtomicU64::new(0));
    let (pending, mut reports) = tokio::sync::mpsc::channel::<(usize, DeliveryFuture)>(100_000);
    let counter = {
        let delivered = Arc::clone(&delivered);
        let topics = topics.len();
        tokio::spawn(async move {
            let mut per_topic = vec![0u64; topics];
            let mut failed = 0u64;
            let mut first_error = None;
            while let Some((topic, delivery)) = reports.recv().await {
                match delivery.await {
                    Ok(Ok(_)) => {
                        per_topic[topic] += 1;
                        delivered.fetch_add(1, AtomicOrdering::Relaxed);
                    }
                    Ok(Err((error, _))) => {
                        failed += 1;
                        first_error.get_or_insert(error.to_string());
                    }
                    Err(_) => failed += 1,
                }
            }
            (per_topic, failed, first_error)
        })
    };
    let start = Instant::now();
    let mut next_seq = vec![0usize; topics.len()];
    let mut sent = 0u64;
    let mut next_report = Duration::from_secs(30);
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tick.tick().await;
        let elapsed = start.elapsed().min(duration);
        let due = (u128::from(rate) * elapsed.as_millis() / 1000) as u64;
        while sent < due {
            let topic = (sent % topics.len() as u64) as usize;
            let delivery = send_one(&producer, &topics[topic], next_seq[topic], keys).await?;
            next_seq[topic] += 1;
            sent += 1;
            pending
                .send((topic, delivery))
                .await
                .map_err(|_| "the delivery counter stopped".to_string())?;
        }
        if elapsed >= next_report {
            println!(
                "stream: {}s, {sent} records sent, {} acknowledged",
                elapsed.as_secs(),
                delivered.load(AtomicOrdering::Relaxed)
            );
            next_report += Duration::from_secs(30);
        }
        if elapsed >= duration {
            break;
        }
    }
    drop(pending);
    let (per_topic, failed, first_error) = counter
        .await
        .map_err(|e| format!("the delivery counter failed: {e}"))?;
    let acknowledged: u64 = per_topic.iter().sum();
    println!(
        "stream done: {sent} records sent in {:.1}s, {acknowledged} acknowledged, {failed} refused",
        start.elapsed().as_secs_f64()
    );
    if let Some(error) = &first_error {
        eprintln!("first refused record: {error}");
    }
    if let Some(path) = summary {
        let document = serde_json::json!({
            "rate": rate,
            "seconds": duration.as_secs_f64(),
            "sent": sent,
            "acknowledged": acknowledged,
            "refused": failed,
            "topics": topics.iter().cloned().zip(per_topic).collect::<BTreeMap<_, _>>(),
        });
        std::fs::write(path, format!("{document:#}\n"))
            .map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(failed == 0)
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    config::HumanDuration::parse(text)
        .filter(|d| !d.is_zero())
        .ok_or_else(|| format!("`{text}` is not a duration like 90s, 2m or 1h"))
}

/// What one mapping's comparison found.
struct Comparison {
    kafka: usize,
    rocketmq: usize,
    missing: usize,
    /// Copies of records the Kafka read did not see.
    extra: usize,
    duplicates: usize,
    content_mismatches: usize,
    keys_checked: usize,
    keys_out_of_order: usize,
}

impl Comparison {
    fn matches(&self) -> bool {
        self.missing == 0
            && self.extra == 0
            && self.content_mismatches == 0
            && self.keys_out_of_order == 0
    }
}

async fn compare_all(config: &BridgeConfig, wait: Duration) -> Result<bool, String> {
    let runtime = RocketMqRuntime::start(1)?;
    let reader = TopicReader::start(
        runtime.client_runtime(),
        &config.rocketmq,
        "demo-traffic-compare",
    )
    .await
    .map_err(|e| e.to_string())?;
    let mut rows = Vec::new();
    for mapping in &config.mappings {
        let kafka = read_kafka(config, &mapping.kafka_topic)?;
        let deadline = Instant::now() + wait;
        let comparison = loop {
            let stored = reader
                .read_topic(&mapping.rocketmq_topic)
                .await
                .map_err(|e| e.to_string())?;
            let comparison = compare(&kafka, &stored);
            if comparison.missing == 0 || Instant::now() >= deadline {
                break comparison;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        };
        rows.push((mapping, comparison));
    }
    reader.shutdown().await;
    runtime.shutdown().await;
    print_summary(&rows);
    Ok(rows.iter().all(|(_, c)| c.matches()))
}

/// Every record of `topic`, from the start to the current end.
fn read_kafka(config: &BridgeConfig, topic: &str) -> Result<Vec<SourceRecord>, String> {
    let mut client = kafka_source::client_config(&config.kafka);
    client.set("group.id", "demo-traffic-compare");
    let consumer: BaseConsumer = client.create().map_err(|e| e.to_string())?;
    let metadata = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .map_err(|e| e.to_string())?;
    let partitions: Vec<i32> = metadata
        .topics()
        .iter()
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect();
    let mut ends = HashMap::new();
    let mut list = TopicPartitionList::new();
    for partition in &partitions {
        let (low, high) = consumer
            .fetch_watermarks(topic, *partition, Duration::from_secs(10))
            .map_err(|e| e.to_string())?;
        if high > low {
            ends.insert(*partition, high);
            list.add_partition_offset(topic, *partition, Offset::Beginning)
                .map_err(|e| e.to_string())?;
        }
    }
    consumer.assign(&list).map_err(|e| e.to_string())?;
    // The queried high watermark is exact (Apache Kafka answers ListOffsets
    // with the partition's end), so reading stops at it.
    let mut records = Vec::new();
    let topic_names = TopicNames::default();
    let deadline = Instant::now() + Duration::from_secs(120);
    while !ends.is_empty() {
        if Instant::now() >= deadline {
            return Err(format!(
                "{topic}: partitions {:?} not read to their end within 120 s",
                ends.keys().collect::<Vec<_>>()
            ));
        }
        let Some(message) = consumer.poll(Duration::from_millis(200)) else {
            continue;
        };
        let record = source_record(&message.map_err(|e| e.to_string())?, &topic_names);
        if ends
            .get(&record.partition)
            .is_some_and(|end| record.offset + 1 >= *end)
        {
            ends.remove(&record.partition);
        }
        records.push(record);
    }
    Ok(records)
}

fn compare(kafka: &[SourceRecord], stored: &[ReadMessage]) -> Comparison {
    let expected: HashMap<(i32, i64), &SourceRecord> =
        kafka.iter().map(|r| ((r.partition, r.offset), r)).collect();
    let mut seen: HashMap<(i32, i64), usize> = HashMap::new();
    let mut content_mismatches = 0;
    let mut extra = 0;
    let mut queue_order: Vec<&ReadMessage> = stored.iter().collect();
    queue_order.sort_by_key(|m| (m.queue_id, m.queue_offset));
    let mut last_offset_per_key: BTreeMap<Vec<u8>, i64> = BTreeMap::new();
    let mut keys_out_of_order = 0;
    for message in queue_order {
        let Ok(record) = message.kafka_record() else {
            content_mismatches += 1;
            continue;
        };
        let coordinates = (record.partition, record.offset);
        let copies = seen.entry(coordinates).or_default();
        *copies += 1;
        if *copies > 1 {
            continue;
        }
        let Some(want) = expected.get(&coordinates) else {
            extra += 1;
            continue;
        };
        let (mut a, mut b): (Vec<_>, Vec<_>) =
            (want.headers().collect(), record.headers().collect());
        a.sort();
        b.sort();
        content_mismatches +=
            usize::from(!(want.key() == record.key() && want.value() == record.value() && a == b));
        if let Some(key) = record.key() {
            let last = last_offset_per_key.entry(key.to_vec()).or_insert(-1);
            keys_out_of_order += usize::from(record.offset <= *last);
            *last = record.offset;
        }
    }
    Comparison {
        kafka: kafka.len(),
        rocketmq: stored.len(),
        missing: expected.keys().filter(|c| !seen.contains_key(c)).count(),
        extra,
        duplicates: seen.values().map(|n| n - 1).sum(),
        content_mismatches,
        keys_checked: last_offset_per_key.len(),
        keys_out_of_order,
    }
}

fn print_summary(rows: &[(&MappingConfig, Comparison)]) {
    println!();
    println!(
        "{:<16} {:<16} {:>8} {:>9} {:>8} {:>6} {:>6} {:>8} {:>16}  RESULT",
        "KAFKA TOPIC",
        "ROCKETMQ TOPIC",
        "KAFKA",
        "ROCKETMQ",
        "MISSING",
        "EXTRA",
        "DUPS",
        "CONTENT",
        "PER-KEY ORDER",
    );
    for (mapping, c) in rows {
        let content = if c.content_mismatches == 0 {
            "same".to_string()
        } else {
            format!("{} diff", c.content_mismatches)
        };
        let order = format!(
            "{}/{} keys ok",
            c.keys_checked - c.keys_out_of_order,
            c.keys_checked
        );
        let result = if c.matches() { "MATCH" } else { "MISMATCH" };
        println!(
            "{:<16} {:<16} {:>8} {:>9} {:>8} {:>6} {:>6} {:>8} {:>16}  {result}",
            mapping.kafka_topic,
            mapping.rocketmq_topic,
            c.kafka,
            c.rocketmq,
            c.missing,
            c.extra,
            c.duplicates,
            content,
            order
        );
    }
}
