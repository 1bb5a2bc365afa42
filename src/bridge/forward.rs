//! Starts the dual-write direction (Kafka to RocketMQ) of a run: the
//! RocketMQ producer and each mapping's queues, the senders, the Kafka
//! consumer group, and the watcher that follows queue count changes.

use std::sync::Arc;
use std::time::Duration;

use foldhash::{HashMap, HashMapExt};
use tokio::sync::mpsc;

use super::dispatcher::{Dispatcher, DispatcherParts};
use super::drive::Started;
use super::flow::ToRocketMq;
use super::{Core, MappingRuntime, SenderParts, StartError, queue_watcher, start_senders};
use crate::config::{
    BridgeConfig, Direction, KafkaConfig, MappingConfig, PropertyValue, StartFrom,
};
use crate::kafka_source::consumer;
use crate::kafka_source::start_position;
use crate::mapping::MappingRules;
use crate::rocketmq_sink::fence::Fence;
use crate::rocketmq_sink::queue_lane::QueueLanes;
use crate::rocketmq_sink::stored_check::StoredCheck;
use crate::rocketmq_sink::{self, RocketMqRuntime};

/// The started direction, and its producer, to shut down at the end.
pub(super) struct Forward {
    pub started: Started<ToRocketMq>,
    pub flow: ToRocketMq,
}

/// Shuts the producer down once the direction ended. A clone shares the
/// producer's client instance; shutting it down lets the runtime stop at
/// once instead of waiting out its own timeout.
pub(super) async fn close_producer(flow: &ToRocketMq) {
    let mut producer = (*flow.lanes.producer).clone();
    producer.shutdown().await;
}

/// Starts the `kafka_to_rocketmq` mappings of `config`, if it has any.
pub(super) async fn start(
    config: &BridgeConfig,
    core: &Core,
    runtime: &RocketMqRuntime,
) -> Result<Option<Forward>, StartError> {
    let mappings: Vec<&MappingConfig> = config
        .mappings
        .iter()
        .filter(|m| m.direction == Direction::KafkaToRocketmq)
        .collect();
    if mappings.is_empty() {
        return Ok(None);
    }
    let settings = &config.bridge;
    core.readiness
        .consumes_kafka
        .store(true, std::sync::atomic::Ordering::Relaxed);
    let mut producer = rocketmq_sink::start_producer(runtime.client_runtime(), &config.rocketmq)
        .await
        .map_err(|e| StartError(e.to_string()))?;
    let batch_bytes = settings
        .max_batch_bytes
        .0
        .min(config.rocketmq.max_message_size.0) as usize;
    let mut plans = Vec::new();
    for mapping in mappings {
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
        shared: core.sender_shared(batch_bytes),
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
    let mut runtimes = HashMap::new();
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
        runtimes.insert(
            mapping.kafka_topic.clone(),
            MappingRuntime::new(core, mapping, rules, router, queues, senders),
        );
    }
    let dead_letters = core.dead_letters(config, Direction::KafkaToRocketmq)?;
    let topics: Vec<String> = runtimes.keys().cloned().collect();
    if let StartFrom::Timestamp(ms) = config.kafka.start_from {
        start_position::commit_start_offsets(&config.kafka, &topics, ms, Duration::from_secs(30))
            .map_err(StartError)?;
    }
    let (kafka, prefetch_bytes) =
        with_bounded_prefetch(&config.kafka, settings.max_in_flight_bytes.0);
    let consumer = consumer::subscribe(
        &kafka,
        &topics,
        Arc::clone(&core.checkpoints),
        settings.shutdown_timeout.0,
        Arc::clone(&core.readiness),
        Arc::clone(&core.status),
    )
    .map_err(StartError)?;
    tracing::info!(group = %config.kafka.group_id, topics = %topics.join(","), "Kafka to RocketMQ running");
    let (replan_tx, replans) = mpsc::channel(16);
    let watcher = queue_watcher::spawn(
        Arc::clone(&sender_parts.flow.lanes.producer),
        Arc::clone(&core.readiness),
        config.rocketmq.name_server.clone(),
        watched,
        settings.queue_refresh_interval.0,
        replan_tx,
    );
    let flow = sender_parts.flow.clone();
    let dispatcher = Dispatcher::new(DispatcherParts {
        dead_letters,
        sender_tasks,
        prefetch_bytes,
        ..core.dispatcher_parts(Arc::clone(&consumer), runtimes, sender_parts, replans)
    });
    Ok(Some(Forward {
        started: Started {
            dispatcher,
            source: consumer,
            tasks: vec![watcher],
        },
        flow,
    }))
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
