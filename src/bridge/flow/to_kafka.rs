//! RocketMQ to Kafka, the way back: a RocketMQ queue's messages go to the
//! partitions of the mapping's Kafka topic (queue index mod partitions, or
//! Kafka's own key hash), and a restart reads the partitions' tails back
//! for the copies a killed owner stored, by the provenance headers.

use std::time::Duration;

use rdkafka::ClientConfig;

use super::Flow;
use crate::already_stored::Wanted;
use crate::bridge::MappingRuntime;
use crate::checkpoint::PartitionId;
use crate::config::{Direction, Ordering};
use crate::kafka_sink::encode::{KafkaEntry, KafkaRecord};
use crate::kafka_sink::partition_lane::{PartitionLane, PartitionLanes};
use crate::kafka_sink::read_back::scan_partition_tail;
use crate::mapping::Rejection;
use crate::mapping::reverse::{self, ReverseRules, RocketMqMessage};
use crate::rocketmq_source::RocketMqSource;
use crate::router::QueueRouter;

/// RocketMQ to Kafka: the cutover window and the rollback.
#[derive(Clone)]
pub(in crate::bridge) struct ToKafka {
    pub lanes: PartitionLanes,
    /// The restart scan's reader settings.
    pub client: ClientConfig,
    /// How long the restart scan may take per partition.
    pub scan_deadline: Duration,
}

/// How one reverse mapping maps and routes its messages.
pub(in crate::bridge) struct ToKafkaRules {
    pub reverse: ReverseRules,
    /// The source topic's queues as (broker, queue id), sorted: a queue's
    /// place here is the "partition" the router maps to a Kafka partition,
    /// so queues of several brokers do not collide.
    pub source_queues: Vec<(String, i32)>,
}

impl ToKafkaRules {
    /// The queue's index among its topic's queues. A queue added after the
    /// start is not listed: its queue id stands in for it, as with one
    /// broker.
    fn queue_index(&self, broker: &str, queue_id: i32) -> i32 {
        self.source_queues
            .binary_search_by(|(listed, queue)| (listed.as_str(), *queue).cmp(&(broker, queue_id)))
            .map_or(queue_id, |index| index as i32)
    }
}

impl Flow for ToKafka {
    type Source = RocketMqSource;
    type Lane = PartitionLane;
    /// A partition of the target Kafka topic.
    type Target = PartitionId;
    type Rules = ToKafkaRules;
    const DIRECTION: Direction = Direction::RocketmqToKafka;

    fn router(ordering: Ordering, lanes: usize, spread: usize) -> QueueRouter {
        QueueRouter::to_kafka(ordering, lanes, spread)
    }

    fn lane_index(rules: &ToKafkaRules, lane: &PartitionId) -> i32 {
        rules.queue_index(lane.broker.as_deref().unwrap_or_default(), lane.partition)
    }

    fn lane(&self, target: &PartitionId) -> PartitionLane {
        self.lanes.lane(&target.topic, target.partition)
    }

    fn describe(target: &PartitionId) -> String {
        target.to_string()
    }

    fn target_topic(target: &PartitionId) -> &str {
        &target.topic
    }

    fn encode(
        &self,
        mapping: &MappingRuntime<Self>,
        message: &RocketMqMessage,
        lane: &PartitionId,
    ) -> Result<(usize, KafkaRecord), Rejection> {
        let outgoing = reverse::map_message(message, &mapping.rules.reverse)?;
        let partition = mapping.router.route(
            mapping.rules.queue_index(&message.broker, message.queue_id),
            message.queue_offset,
            outgoing.key,
        );
        let record = KafkaRecord {
            partition: lane.clone(),
            offset: message.queue_offset,
            timestamp_ms: Some(message.born_timestamp_ms),
            entry: KafkaEntry::new(&outgoing),
        };
        Ok((partition, record))
    }

    /// No fence: a Kafka produce request a killed owner left in flight
    /// could still be stored after the scan (noted in docs/architecture.md).
    async fn scan_tails(
        &self,
        scans: Vec<(PartitionId, Vec<Wanted>)>,
        window: Duration,
    ) -> Result<Vec<(PartitionId, i64)>, String> {
        let reads = scans.into_iter().map(|(target, wanted)| {
            let client = self.client.clone();
            let deadline = self.scan_deadline;
            tokio::task::spawn_blocking(move || {
                let found = scan_partition_tail(
                    &client,
                    &target.topic,
                    target.partition,
                    &wanted,
                    window,
                    deadline,
                )
                .map_err(|error| format!("restart scan of Kafka partition {target}: {error}"))?;
                Ok::<_, String>(
                    found
                        .into_iter()
                        .map(|(index, offset)| (wanted[index].partition.clone(), offset))
                        .collect::<Vec<_>>(),
                )
            })
        });
        let mut stored = Vec::new();
        for read in futures::future::join_all(reads).await {
            stored.extend(read.map_err(|e| format!("restart scan task failed: {e}"))??);
        }
        Ok(stored)
    }
}
