//! End-to-end latency at a steady load: a producer writes at a fixed rate
//! and each record's delay is read from where it lands (RocketMQ's store
//! time for the bridge; an rdkafka consumer for Kafka alone, the yardstick).

use std::fmt::Write as _;

use super::*;

/// End-to-end latency at a steady `rate` for `duration`: (p50, p99, p999) in
/// ms, Kafka record timestamp to RocketMQ store time, and the rate the
/// producer actually reached.
pub async fn latency(
    bench: &Bench,
    rate: f64,
    duration: Duration,
    variant: &Variant,
) -> Result<(f64, f64, f64, f64)> {
    let (kafka_topic, rocketmq_topic) = (unique("bench.lat."), unique("bench_lat_"));
    let config = bench.config(&kafka_topic, &rocketmq_topic, variant)?;
    bench.create_topics(&config, bench.args.partitions, bench.args.queues)?;
    let mut bridge = BridgeProcess::start_with_env(bench, &config, variant.env)?;
    let producer = latency_producer(bench, &kafka_topic).await?;
    let probes = bench.args.partitions as i64;
    // Ready once every partition's probe record went through.
    wait_for_copy(
        bench,
        Target::RocketMq(&rocketmq_topic),
        probes,
        Duration::from_secs(60),
        &mut bridge,
    )
    .await?;
    let (total, offered) = produce_steady(bench, &producer, &kafka_topic, rate, duration).await?;
    wait_for_copy(
        bench,
        Target::RocketMq(&rocketmq_topic),
        total as i64 + probes,
        Duration::from_secs(300),
        &mut bridge,
    )
    .await?;
    bridge.stop()?;
    let mut latencies = Vec::with_capacity(total);
    // BRIDGE_BENCH_LATENCY_DUMP=PREFIX writes each record's times, to see
    // when the slow ones happened: queue, offset, sent, stored (ms).
    let mut dump = String::new();
    for queue in bench.reader.queues(&rocketmq_topic).await? {
        for message in bench.reader.read_queue(&queue).await? {
            let sent = message
                .properties
                .iter()
                .find(|(k, _)| k == "KAFKA_TIMESTAMP")
                .and_then(|(_, v)| v.parse::<i64>().ok());
            if let (Some(sent), false) = (sent, message.body == b"probe") {
                latencies.push((message.store_timestamp - sent) as f64);
                let _ = writeln!(
                    dump,
                    "{},{},{sent},{}",
                    queue.queue_id(),
                    message.queue_offset,
                    message.store_timestamp
                );
            }
        }
    }
    if let Ok(path) = std::env::var("BRIDGE_BENCH_LATENCY_DUMP") {
        std::fs::write(format!("{path}.{rocketmq_topic}.csv"), dump)?;
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
/// latency-minded producer sends), after it stored one probe record in each
/// partition. The measured window starts once every probe went through:
/// the first record of each partition (and of each RocketMQ queue) pays
/// one-time costs, such as the broker creating the queue's files, that
/// belong to a new topic, not to the load.
pub async fn latency_producer(bench: &Bench, kafka_topic: &str) -> Result<FutureProducer> {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &bench.args.kafka)
        .set("linger.ms", "1")
        .set("queue.buffering.max.messages", "1000000")
        .create()?;
    for partition in 0..bench.args.partitions as i32 {
        producer
            .send(
                FutureRecord::<[u8], [u8]>::to(kafka_topic)
                    .partition(partition)
                    .payload(b"probe"),
                Duration::from_secs(10),
            )
            .await
            .map_err(|(e, _)| e)?;
    }
    Ok(producer)
}

/// Produces at a steady `rate` for `duration`, each record stamped with the
/// time it was made; waits for every delivery. Returns (records, rate reached).
pub async fn produce_steady(
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
/// load, read back by a plain rdkafka consumer at `isolation`; (p50, p99, p999) in ms from
/// the record's timestamp to its arrival in the consumer.
pub async fn kafka_latency(
    bench: &Bench,
    rate: f64,
    duration: Duration,
    isolation: &str,
) -> Result<(f64, f64, f64)> {
    let kafka_topic = unique("bench.klat.");
    let config = bench.config(&kafka_topic, &unique("bench_klat_"), &PARTITION)?;
    bench.create_topics(&config, bench.args.partitions, bench.args.queues)?;
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", &bench.args.kafka)
        .set("group.id", unique("bench-klat-"))
        .set("session.timeout.ms", "6000")
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .set("isolation.level", isolation)
        .create()?;
    consumer.subscribe(&[&kafka_topic])?;
    let producer = latency_producer(bench, &kafka_topic).await?;
    // Ready once the consumer got every partition's probe record.
    for _ in 0..bench.args.partitions {
        tokio::time::timeout(Duration::from_secs(60), consumer.recv())
            .await
            .context("the Kafka consumer did not get every probe within 60 s")??;
    }
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
