//! What the shared pipeline asks of a source, whichever system it reads:
//! ordered lanes (a Kafka partition, a RocketMQ queue) it owns until a
//! rebalance takes them, that pause, resume and move to an offset, the
//! records read from them in order, and commits of the offsets done.
//!
//! The dispatcher (`bridge::dispatcher`) and the committer use only this;
//! `kafka_source` implements it for Kafka's consumer group and
//! `rocketmq_source` for a RocketMQ consumer group.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use crate::checkpoint::PartitionId;
use crate::mapping::SourceRecord;

/// A record as the pipeline sees it before it is mapped.
pub trait Incoming: Send + 'static {
    /// Its topic, which picks its mapping.
    fn topic(&self) -> &str;
    /// The lane it was read from.
    fn lane(&self) -> PartitionId;
    fn offset(&self) -> i64;
    /// What byte rate limits count: key, value and headers.
    fn limited_bytes(&self) -> u64;
    /// Its payload, as `bridge_bytes_consumed_total` counts it.
    fn value_bytes(&self) -> u64;
    /// The record as a Kafka record for a dead-letter topic: dead letters
    /// go to Kafka in every direction.
    fn into_dead_letter(self) -> SourceRecord;
}

/// How a commit ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Committed {
    /// The offsets are stored; the caller tells the checkpoints.
    Stored,
    /// The commit is under way; the source tells the checkpoints when it
    /// is stored (Kafka's commit callback).
    Started,
}

/// A source of records in lane order.
pub trait Source: Send + Sync + 'static {
    type Record: Incoming;

    /// Whether `lane` is of this source's kind (a Kafka partition, a
    /// RocketMQ queue): the checkpoints of both directions are kept together.
    fn reads(&self, lane: &PartitionId) -> bool;

    /// The next record of a lane that is owned and not paused. Errors are
    /// transient (the source reconnects by itself): they are logged, and
    /// the caller calls again. Cancel-safe.
    fn recv(&self) -> impl Future<Output = Result<Self::Record, String>> + Send;

    /// Lanes a rebalance took away since the last call.
    fn take_revoked(&self) -> Vec<PartitionId>;

    /// The lanes owned now.
    fn assigned(&self) -> Vec<PartitionId>;

    /// Pauses or resumes the owned lanes `selected` picks. A paused lane
    /// may still deliver what was fetched before the pause.
    fn set_paused_where(&self, paused: bool, selected: &dyn Fn(&PartitionId) -> bool);

    /// Pauses or resumes every owned lane.
    fn set_paused(&self, paused: bool) {
        self.set_paused_where(paused, &|_| true);
    }

    /// Pauses or resumes exactly `lanes`.
    fn set_lanes_paused(&self, lanes: &[PartitionId], paused: bool) {
        self.set_paused_where(paused, &|lane| lanes.contains(lane));
    }

    /// Called after lanes were resumed: makes the source read them again
    /// now rather than at its own next timer. Returns at once.
    fn wake_resumed(self: Arc<Self>) {}

    /// Moves `lane`'s next read to `offset`.
    fn seek(&self, lane: &PartitionId, offset: i64) -> Result<(), String>;

    /// The offsets committed for `lanes` (`None`: nothing committed).
    /// Blocks for up to `timeout`.
    fn committed_offsets(
        &self,
        lanes: &[PartitionId],
        timeout: Duration,
    ) -> Result<Vec<(PartitionId, Option<i64>)>, String>;

    /// Commits `offsets` (the next offset to read, per lane). With `wait`
    /// (the last commit before leaving) it returns once they are stored.
    fn commit(
        &self,
        offsets: &[(PartitionId, i64)],
        wait: bool,
    ) -> impl Future<Output = Result<Committed, String>> + Send;

    /// Leaves the group, after the last commit: the lanes go to the other
    /// members.
    fn close(&self) -> impl Future<Output = ()> + Send;
}
