//! Kafka to RocketMQ, the dual-write phase: a Kafka partition's records go
//! to the queues of the mapping's RocketMQ topic, and a restart reads the
//! queues' tails back for the copies a killed owner stored.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use rocketmq_model::message::MessageQueue;

use super::Flow;
use crate::already_stored::{Wanted, scan_queue_tail};
use crate::bridge::MappingRuntime;
use crate::checkpoint::PartitionId;
use crate::config::{Direction, MessageIds, Ordering, RocketMqConfig};
use crate::kafka_source::consumer::BridgeConsumer;
use crate::mapping::{self, MappingRules, Rejection, SourceRecord};
use crate::message_id;
use crate::rocketmq_reader::{ReadError, with_reader};
use crate::rocketmq_sink::encode::Envelope;
use crate::rocketmq_sink::fence::Fence;
use crate::rocketmq_sink::queue_lane::{QueueLane, QueueLanes, describe};
use crate::router::QueueRouter;

/// Kafka to RocketMQ: the dual-write phase.
#[derive(Clone)]
pub(in crate::bridge) struct ToRocketMq {
    pub lanes: QueueLanes,
    pub message_ids: MessageIds,
    pub rocketmq: RocketMqConfig,
    /// Written on each broker before its queues are read back.
    pub fence: Arc<Fence>,
}

/// The group the restart scan's reader pulls as; it never commits anything.
const READER_GROUP_SUFFIX: &str = "-restart-scan";

impl Flow for ToRocketMq {
    type Source = BridgeConsumer;
    type Lane = QueueLane;
    type Target = MessageQueue;
    type Rules = MappingRules;
    const DIRECTION: Direction = Direction::KafkaToRocketmq;

    fn router(ordering: Ordering, lanes: usize, spread: usize) -> QueueRouter {
        QueueRouter::new(ordering, lanes, spread)
    }

    fn lane_index(_rules: &MappingRules, lane: &PartitionId) -> i32 {
        lane.partition
    }

    fn lane(&self, target: &MessageQueue) -> QueueLane {
        self.lanes.lane(target.clone())
    }

    fn describe(target: &MessageQueue) -> String {
        describe(target)
    }

    fn target_topic(target: &MessageQueue) -> &str {
        target.topic_str()
    }

    fn encode(
        &self,
        mapping: &MappingRuntime<Self>,
        record: &SourceRecord,
        lane: &PartitionId,
    ) -> Result<(usize, Envelope), Rejection> {
        let outgoing = mapping::map_record(record, &mapping.rules)?;
        let queue = mapping
            .router
            .route(record.partition, record.offset, record.key());
        let timestamp = record.timestamp.map(|(ms, _)| ms);
        let message_id = message_id::message_id(
            self.message_ids,
            &mapping.config.rocketmq_topic,
            &record.topic,
            record.partition,
            record.offset,
            timestamp,
        );
        let envelope = Envelope::new(
            lane.clone(),
            record.offset,
            &outgoing,
            &message_id,
            timestamp,
        );
        Ok((queue, envelope))
    }

    async fn scan_tails(
        &self,
        scans: Vec<(MessageQueue, Vec<Wanted>)>,
        window: Duration,
    ) -> Result<Vec<(PartitionId, i64)>, String> {
        let group = format!("{}{READER_GROUP_SUFFIX}", self.rocketmq.producer_group);
        let fence = &self.fence;
        let started = std::time::Instant::now();
        with_reader(&self.rocketmq, &group, async |reader| {
            let reader_ms = started.elapsed().as_millis() as u64;
            // The reader learns where each topic's queues live from its route.
            let topics: BTreeSet<&str> = scans.iter().map(|(q, _)| q.topic_str()).collect();
            for topic in topics {
                reader.queues(topic).await?;
            }
            let routes_ms = started.elapsed().as_millis() as u64;
            let brokers: BTreeSet<&str> = scans
                .iter()
                .map(|(q, _)| q.broker_name().as_str())
                .collect();
            for broker in brokers {
                fence.pass(reader, broker).await?;
            }
            let fences_ms = started.elapsed().as_millis() as u64;
            tracing::debug!(
                reader_ms,
                routes_ms,
                fences_ms,
                "restart scan: reader started, routes read, fences passed"
            );
            // Every queue at once: each pull is a round trip for a few dozen messages.
            let tails = scans.iter().map(|(queue, wanted)| async move {
                let found = scan_queue_tail(reader, queue, wanted, window).await?;
                Ok::<_, ReadError>(
                    found
                        .into_iter()
                        .map(|(index, offset)| (wanted[index].partition.clone(), offset))
                        .collect::<Vec<_>>(),
                )
            });
            let found = futures::future::try_join_all(tails).await?;
            Ok::<_, ReadError>(found.into_iter().flatten().collect())
        })
        .await
        .map_err(|e| e.to_string())
    }
}
