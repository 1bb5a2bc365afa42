//! A direction of copying, as the dispatcher drives it: what it reads (a
//! [`Source`]), how one mapping turns a record into an entry of one of its
//! target's lanes, the lanes themselves, and how a restart finds the copies
//! a previous owner stored past the commit. The dispatcher, checkpoints,
//! limits, in-flight permits and senders are the same in every direction;
//! only this differs.
//!
//! [`ToRocketMq`] is the dual-write direction (Kafka to RocketMQ),
//! [`ToKafka`] the way back (RocketMQ to Kafka).

mod to_kafka;
mod to_rocketmq;

use std::future::Future;
use std::time::Duration;

use super::MappingRuntime;
use crate::already_stored::Wanted;
use crate::checkpoint::PartitionId;
use crate::config::{Direction, Ordering};
use crate::mapping::Rejection;
use crate::router::QueueRouter;
use crate::sink::{Lane, Record};
use crate::source::Source;

pub(super) use to_kafka::{ToKafka, ToKafkaRules};
pub(super) use to_rocketmq::ToRocketMq;

/// A record as `F`'s source reads it.
pub(super) type InRecord<F> = <<F as Flow>::Source as Source>::Record;
/// A record as `F`'s lanes carry it.
pub(super) type OutRecord<F> = Record<<<F as Flow>::Lane as Lane>::Entry>;

/// One direction of copying.
pub(super) trait Flow: Clone + Send + Sync + 'static {
    /// What the metrics' `direction` label says.
    const DIRECTION: Direction;
    type Source: Source;
    type Lane: Lane;
    /// A lane of a mapping's target, as the mapping's plan lists them.
    type Target: Clone + Send + Sync + 'static;
    /// How one mapping maps its records.
    type Rules: Send + Sync + 'static;

    /// Routes a mapping's records to its `lanes` target lanes (`spread`:
    /// how many records in a row share a lane when order does not matter).
    fn router(ordering: Ordering, lanes: usize, spread: usize) -> QueueRouter;

    /// What the router takes as `lane`'s "partition": its number among the
    /// source topic's lanes.
    fn lane_index(rules: &Self::Rules, lane: &PartitionId) -> i32;

    /// The lane that writes to `target`.
    fn lane(&self, target: &Self::Target) -> Self::Lane;

    /// `target` as the logs name it.
    fn describe(target: &Self::Target) -> String;

    /// The topic a target lane belongs to.
    fn target_topic(target: &Self::Target) -> &str;

    /// Maps `record` (read from source lane `lane`) by `mapping`'s rules,
    /// picks its lane (an index into the mapping's plan) and encodes it for
    /// that lane.
    fn encode(
        &self,
        mapping: &MappingRuntime<Self>,
        record: &InRecord<Self>,
        lane: &PartitionId,
    ) -> Result<(usize, OutRecord<Self>), Rejection>
    where
        Self: Sized;

    /// The copies in each target lane's tail of the source lanes wanted
    /// there, at or past their committed offsets, at most `window` back:
    /// (source lane, offset). Every lane is fenced before it is read, so
    /// what a killed owner's last sends stored is readable by then.
    fn scan_tails(
        &self,
        scans: Vec<(Self::Target, Vec<Wanted>)>,
        window: Duration,
    ) -> impl Future<Output = Result<Vec<(PartitionId, i64)>, String>> + Send;
}
