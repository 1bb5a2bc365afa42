//! Starts the way back (RocketMQ to Kafka) of a run: the Kafka producer
//! and each mapping's partitions, the senders, and the RocketMQ consumer
//! group whose consumer offsets are the checkpoints.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering as AtomicOrdering;
use std::time::Duration;

use foldhash::{HashMap, HashMapExt};
use tokio::sync::mpsc;

use super::dispatcher::{Dispatcher, DispatcherParts};
use super::drive::Started;
use super::flow::{ToKafka, ToKafkaRules};
use super::{Core, MappingRuntime, SenderParts, StartError, start_senders};
use crate::checkpoint::PartitionId;
use crate::config::{BridgeConfig, Direction, KafkaConfig, MappingConfig, PropertyValue};
use crate::kafka_sink::PartitionLanes;
use crate::kafka_source;
use crate::mapping::reverse::ReverseRules;
use crate::rocketmq_sink::RocketMqRuntime;
use crate::rocketmq_source::{OnRebalance, RocketMqSource};

/// How long start-up waits for Kafka's metadata and topic configs.
const METADATA_DEADLINE: Duration = Duration::from_secs(30);
/// How long a member that lost queues waits for their copies in flight.
const HANDOFF_DRAIN: Duration = Duration::from_secs(2);
/// How long the restart scan may read one partition.
const SCAN_DEADLINE: Duration = Duration::from_secs(60);

/// Starts the `rocketmq_to_kafka` mappings of `config`, if it has any.
/// The replan sender is returned to keep the dispatcher's channel open:
/// nothing replans a Kafka topic's partitions yet.
pub(super) async fn start(
    config: &BridgeConfig,
    core: &Core,
    runtime: &RocketMqRuntime,
) -> Result<Option<(Started<ToKafka>, mpsc::Sender<(String, Vec<PartitionId>)>)>, StartError> {
    let mappings: Vec<&MappingConfig> = config
        .mappings
        .iter()
        .filter(|m| m.direction == Direction::RocketmqToKafka)
        .collect();
    if mappings.is_empty() {
        return Ok(None);
    }
    let settings = &config.bridge;
    let (partitions, max_bytes) = target_topics(&config.kafka, &mappings).await?;
    let kafka = with_message_limit(&config.kafka, max_bytes.values().copied().min());
    let lanes = PartitionLanes::new(
        &kafka,
        config.kafka.send_timeout.0,
        settings.exactly_once_restarts,
    )
    .map_err(StartError)?;
    let sender_parts = SenderParts {
        shared: core.sender_shared(settings.max_batch_bytes.0 as usize),
        flow: ToKafka {
            lanes,
            client: kafka_source::client_config(&config.kafka),
            scan_deadline: SCAN_DEADLINE,
        },
    };
    core.readiness
        .reads_rocketmq
        .store(true, AtomicOrdering::Relaxed);
    let topics: Vec<String> = mappings.iter().map(|m| m.rocketmq_topic.clone()).collect();
    let group = &config.rocketmq.consumer_group;
    let source = RocketMqSource::start(
        runtime.client_runtime(),
        &config.rocketmq,
        group,
        &instance_name(&config.kafka),
        &topics,
        follow_rebalances(core),
    )
    .await
    .map_err(|e| StartError(e.to_string()))?;
    let mut sender_tasks = Vec::new();
    let mut runtimes = HashMap::new();
    for mapping in mappings {
        let kafka_topic = &mapping.kafka_topic;
        let targets: Vec<PartitionId> = (0..partitions[kafka_topic])
            .map(|partition| PartitionId::new(kafka_topic.as_str(), partition as i32))
            .collect();
        let (router, senders) = start_senders(
            &sender_parts,
            mapping,
            &targets,
            settings,
            &mut sender_tasks,
        );
        let source_queues = source
            .queues(&mapping.rocketmq_topic)
            .await
            .map_err(StartError)?
            .iter()
            .map(|queue| (queue.broker_name().to_string(), queue.queue_id()))
            .collect();
        tracing::info!(
            mapping = mapping.label(), rocketmq_topic = %mapping.rocketmq_topic, kafka_topic = %kafka_topic,
            partitions = router.queue_count(), ordering = %mapping.ordering, "way-back mapping ready"
        );
        let rules = ToKafkaRules {
            reverse: ReverseRules {
                kafka_topic: kafka_topic.clone(),
                max_message_bytes: max_bytes[kafka_topic],
                forward_ids: config.rocketmq.message_ids,
            },
            source_queues,
        };
        runtimes.insert(
            mapping.rocketmq_topic.clone(),
            MappingRuntime::new(core, mapping.clone(), rules, router, targets, senders),
        );
    }
    let dead_letters = core.dead_letters(config, Direction::RocketmqToKafka)?;
    tracing::info!(%group, topics = %topics.join(","), "RocketMQ to Kafka running");
    let (replan_tx, replans) = mpsc::channel(1);
    let source = Arc::new(source);
    // Polled messages wait in a bounded channel, counted by records: no
    // prefetch to take out of the in-flight cap.
    let dispatcher = Dispatcher::new(DispatcherParts {
        dead_letters,
        sender_tasks,
        ..core.dispatcher_parts(Arc::clone(&source), runtimes, sender_parts, replans)
    });
    let started = Started {
        dispatcher,
        source,
        tasks: Vec::new(),
    };
    Ok(Some((started, replan_tx)))
}

/// Each target topic's partition count and `max.message.bytes`; a
/// missing topic is an error naming its mapping.
async fn target_topics(
    kafka: &KafkaConfig,
    mappings: &[&MappingConfig],
) -> Result<(BTreeMap<String, usize>, BTreeMap<String, usize>), StartError> {
    let topics: Vec<String> = mappings.iter().map(|m| m.kafka_topic.clone()).collect();
    let counts = kafka_source::partition_counts(kafka, &topics, METADATA_DEADLINE)
        .await
        .map_err(|e| StartError(e.to_string()))?;
    let mut partitions = BTreeMap::new();
    for mapping in mappings {
        match counts.get(&mapping.kafka_topic).copied().flatten() {
            Some(count) if count > 0 => {
                partitions.insert(mapping.kafka_topic.clone(), count);
            }
            _ => {
                return Err(StartError(format!(
                    "Kafka topic `{}` (the target of mapping `{}`) does not exist at {}: create it (`create-topics` does) and start again",
                    mapping.kafka_topic,
                    mapping.label(),
                    kafka.bootstrap_servers
                )));
            }
        }
    }
    let max_bytes = kafka_source::max_message_bytes(kafka, &topics, METADATA_DEADLINE)
        .await
        .map_err(|e| StartError(e.to_string()))?;
    Ok((partitions, max_bytes))
}

/// librdkafka builds batches up to its `message.max.bytes` and never
/// splits one the broker refuses as too large, so, unless the user set it,
/// it is held to the smallest target topic's `max.message.bytes`.
fn with_message_limit(kafka: &KafkaConfig, smallest: Option<usize>) -> KafkaConfig {
    let mut kafka = kafka.clone();
    if let Some(bytes) = smallest {
        // librdkafka's own floor.
        let bytes = bytes.max(1000) as i64;
        kafka
            .properties
            .entry("message.max.bytes".to_string())
            .or_insert(PropertyValue::Integer(bytes));
    }
    kafka
}

/// RocketMQ tells group members apart by IP and instance name; the
/// process id keeps two instances on one host apart.
fn instance_name(kafka: &KafkaConfig) -> String {
    let name = kafka.group_instance_id.as_deref().unwrap_or("bridge");
    format!("{name}-{}", std::process::id())
}

/// Queues a rebalance took away: their copies in flight get up to
/// `HANDOFF_DRAIN` to be stored (the new owner waits
/// `rocketmq_source::HANDOFF_GRACE` before its restart scan reads the
/// partitions' tails), then their checkpoints are dropped, so no commit of
/// this instance moves an offset their new owner moves. `/readyz` counts
/// the queues owned.
fn follow_rebalances(core: &Core) -> OnRebalance {
    let checkpoints = Arc::clone(&core.checkpoints);
    let status = Arc::clone(&core.status);
    let readiness = Arc::clone(&core.readiness);
    Arc::new(move |revoked: &[PartitionId], owned: usize| {
        if !revoked.is_empty() {
            // Called on the client's runtime, which is multi-threaded.
            let drained =
                tokio::task::block_in_place(|| checkpoints.wait_drained(revoked, HANDOFF_DRAIN));
            if !drained {
                tracing::warn!(
                    queues = revoked.len(),
                    "RocketMQ queues revoked before their copies in flight were stored; their new owner may copy some again"
                );
            }
        }
        checkpoints.revoke(revoked);
        status.revoked(revoked);
        readiness
            .assigned_queues
            .store(owned, AtomicOrdering::Relaxed);
    })
}
