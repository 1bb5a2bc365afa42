//! The ceilings the bridge is measured against, and the baseline below it:
//! raw rdkafka consume of the backlog (the source ceiling), raw RocketMQ
//! batched produce of records shaped like the bridge's copies (the sink
//! ceiling), and the naive hand-written bridge (one synchronous send and one
//! commit per record).

use kafka_rocketmq_bridge::sink::Entry as _;

use super::*;

/// Raw rdkafka consume of the whole backlog: records per second.
pub async fn source_ceiling(bootstrap: &str, topic: &str, records: usize) -> Result<f64> {
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
pub struct SinkRates {
    /// From the first to the last message readable in the topic: the end
    /// condition the bridge is timed by.
    pub readable: f64,
    /// From the first send to the last acknowledgement. The broker
    /// acknowledges a message before it dispatches it to its consume queue
    /// and index, so this rate outruns what it can sustain.
    pub acknowledged: f64,
    /// CPU seconds the RocketMQ processes used until the last was readable.
    pub broker_cpu: f64,
}

/// Raw RocketMQ produce of `records` messages made by `envelope` (topic,
/// index, value size): the sink ceiling sends them shaped like the
/// bridge's copies ([`bench_envelope`]), in batches of the bridge's default
/// sizes (records and bytes), one sender per queue; the way back pre-loads its originals so.
pub async fn sink_ceiling(
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
    // The bridge's default batches: up to max_batch_records, and under
    // max_batch_bytes (the records are all of one size).
    let settings = kafka_rocketmq_bridge::config::BridgeSettings::default();
    let record_bytes = envelope(topic, 0, value_size).entry.size().max(1);
    let batch_records =
        (settings.max_batch_bytes.0 as usize / record_bytes).clamp(1, settings.max_batch_records);
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

pub fn bench_envelope(topic: &str, i: usize, value_size: usize) -> Envelope {
    let (key, value, _) = record_parts(i, value_size);
    let trace_id = format!("{i:016x}");
    let record = kafka_rocketmq_bridge::mapping::SourceRecord::new(
        topic,
        0,
        i as i64,
        Some((now_ms(), mapping::TimestampType::CreateTime)),
        Some(&key),
        Some(&value),
        [
            ("trace-id", Some(trace_id.as_bytes())),
            ("source", Some(&b"bench"[..])),
        ],
    );
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
pub async fn naive_bridge(
    bench: &Bench,
    kafka_topic: &str,
    rocketmq_topic: &str,
    records: usize,
    budget: Duration,
) -> Result<f64> {
    let runtime = bench.runtime.as_ref().context("runtime")?;
    let producer = rocketmq_sink::start_producer(runtime.client_runtime(), &bench.rocketmq).await?;
    let consumer = kafka_consumer(&bench.args.kafka, kafka_topic)?;
    let topic_names = kafka_rocketmq_bridge::kafka_source::consumer::TopicNames::default();
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
        let record = source_record(&message, &topic_names);
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
