//! Exactly-once for a failed send: what of a failed batch is in its queue
//! anyway, read from the queue's tail behind a write fence. The shared
//! sender (`sink::sender`) decides when to ask and what to do with it.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use rocketmq_model::message::MessageQueue;

use super::encode::Envelope;
use super::fence::Fence;
use crate::already_stored::{Wanted, scan_queue_tail};
use crate::checkpoint::PartitionId;
use crate::config::RocketMqConfig;
use crate::rocketmq_reader::{ReadError, with_reader};
use crate::sink::Stored;

/// How a sender finds out what of a failed batch is stored anyway.
#[derive(Debug, Clone)]
pub struct StoredCheck {
    pub rocketmq: RocketMqConfig,
    /// How far back (store time) the queue's tail is read at most.
    pub window: Duration,
    /// Written on the queue's broker before each read, so that a copy the
    /// broker stored is readable when the read looks for it.
    pub fence: Arc<Fence>,
}

/// The pull group the check reads as; it never commits anything.
const STORED_CHECK_GROUP_SUFFIX: &str = "-resend-check";

/// The (partition, offset) of each `pending` record whose copy is in
/// `queue`, and the queue's end offset read after the scan. This sender is
/// the queue's only writer and sends in order, so a stored copy of a
/// pending record can only be at the tail, after every earlier copy of its
/// partition: the tail scan of exactly-once restarts finds it.
pub(super) async fn stored_in_queue(
    check: &StoredCheck,
    queue: &MessageQueue,
    pending: &[&Envelope],
) -> Result<Stored, ReadError> {
    let mut first_pending: BTreeMap<&PartitionId, i64> = BTreeMap::new();
    for envelope in pending {
        let first = first_pending
            .entry(&envelope.partition)
            .or_insert(envelope.offset);
        *first = (*first).min(envelope.offset);
    }
    let wanted: Vec<Wanted> = first_pending
        .into_iter()
        .map(|(partition, first)| Wanted {
            partition: partition.clone(),
            committed: Some(first),
        })
        .collect();
    let group = format!(
        "{}{STORED_CHECK_GROUP_SUFFIX}",
        check.rocketmq.producer_group
    );
    let (found, queue_end) = with_reader(&check.rocketmq, &group, async |reader| {
        // The reader learns where the queue lives from the topic's route.
        reader.queues(queue.topic_str()).await?;
        check.fence.pass(reader, queue.broker_name()).await?;
        let found = scan_queue_tail(reader, queue, &wanted, check.window).await?;
        let (_, queue_end) = reader.offsets(queue).await?;
        Ok((found, queue_end))
    })
    .await?;
    let found = found
        .into_iter()
        .map(|(index, offset)| (wanted[index].partition.clone(), offset))
        .collect();
    Ok(Stored {
        found,
        end: queue_end,
    })
}
