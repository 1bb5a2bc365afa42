//! Exactly-once for a failed send: what of a failed batch is in its queue
//! anyway. A send that failed without a clear refusal may have been stored
//! (the answer timed out, or the connection broke after the broker wrote
//! it); the sender reads its queue's tail, behind a write fence, before
//! sending again, and leaves out what is already there.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::Ordering as AtomicOrdering;
use std::time::{Duration, Instant};

use rocketmq_model::message::MessageQueue;

use super::encode::Envelope;
use super::fence::Fence;
use super::queue_sender::{SenderContext, describe};
use crate::already_stored::{Wanted, scan_queue_tail};
use crate::checkpoint::PartitionId;
use crate::config::RocketMqConfig;
use crate::rocketmq_reader::{ReadError, with_reader};

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

/// How long a sender waits, once its queue can be read again and the
/// failed records are not there, before reading once more and sending them
/// again. Far above the broker's own send-queue wait (200 ms, after which
/// it refuses a request).
const SETTLE_BEFORE_RESEND: Duration = Duration::from_secs(3);

/// The pull group the check reads as; it never commits anything.
const STORED_CHECK_GROUP_SUFFIX: &str = "-resend-check";

/// The part of `pending` that is not in `queue` yet, read back from the
/// queue's tail; retried with backoff until the queue can be read, since
/// sending again without knowing could store a record twice.
pub(super) async fn unstored<'a>(
    context: &SenderContext,
    check: &StoredCheck,
    queue: &MessageQueue,
    pending: Vec<&'a Envelope>,
    backoff: &mut Duration,
) -> Vec<&'a Envelope> {
    let mut last_report: Option<Instant> = None;
    let mut settled = false;
    loop {
        match stored_in_queue(check, queue, &pending).await {
            Ok((stored, _)) if stored.len() < pending.len() && !settled => {
                // The failed request may still be on its way: held by a
                // network that just healed, or waiting in the broker's send
                // queue while this read went through its pull queue. Either
                // lands within moments of the broker answering again; a
                // second read after that tells.
                settled = true;
                tokio::time::sleep(SETTLE_BEFORE_RESEND).await;
            }
            Ok((stored, queue_end)) => {
                let before = pending.len();
                let rest: Vec<&Envelope> = pending
                    .into_iter()
                    .filter(|e| !stored.contains(&(e.partition.clone(), e.offset)))
                    .collect();
                let found = before - rest.len();
                if found > 0 {
                    context
                        .shared
                        .counters
                        .stored_despite_failure
                        .fetch_add(found as u64, AtomicOrdering::Relaxed);
                    metrics::counter!(crate::metrics::RECORDS_STORED_DESPITE_FAILURE, "mapping" => context.meters.mapping.to_string())
                        .increment(found as u64);
                    tracing::info!(
                        queue = %describe(queue), found, resending = rest.len(),
                        "a failed send was stored all the same; not sending those records again"
                    );
                } else if let Some(first) = rest.first() {
                    // The record to look for if a duplicate shows up later;
                    // a copy of it below `queue_end` would mean the read
                    // missed it, at or above that it was stored after.
                    tracing::info!(
                        queue = %describe(queue), resending = rest.len(),
                        first_record = %format!("{}@{}", first.partition, first.offset),
                        queue_end,
                        "a failed send is not in the queue after two reads; sending it again"
                    );
                }
                return rest;
            }
            Err(error) => {
                if last_report.is_none_or(|t| t.elapsed() >= Duration::from_secs(30)) {
                    tracing::warn!(
                        queue = %describe(queue), %error,
                        "cannot read the queue back to see whether a failed send was stored; retrying before sending again"
                    );
                    last_report = Some(Instant::now());
                }
                tokio::time::sleep(*backoff).await;
                *backoff = (*backoff * 2).min(context.shared.settings.max_backoff);
            }
        }
    }
}

/// The (partition, offset) of each `pending` record whose copy is in
/// `queue`, and the queue's end offset read after the scan. This sender is
/// the queue's only writer and sends in order, so a stored copy of a
/// pending record can only be at the tail, after every earlier copy of its
/// partition: the tail scan of exactly-once restarts finds it.
async fn stored_in_queue(
    check: &StoredCheck,
    queue: &MessageQueue,
    pending: &[&Envelope],
) -> Result<(HashSet<(PartitionId, i64)>, i64), ReadError> {
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
    let stored = found
        .into_iter()
        .map(|(index, offset)| (wanted[index].partition.clone(), offset))
        .collect();
    Ok((stored, queue_end))
}
