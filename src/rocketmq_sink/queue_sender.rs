//! One sender per target queue: it batches consecutive records bound for
//! its queue, keeps exactly one batch in flight, and retries a failed batch
//! on the same queue, in order, with capped backoff, until it is stored.
//! Queues proceed in parallel; order within a queue is the order records
//! were handed over.
//!
//! A failed send may still have been stored (the answer timed out, or the
//! connection broke after the broker wrote it). With exactly-once on, the
//! sender reads its queue's tail before sending again and leaves out what
//! is already there, so such a failure does not become a duplicate.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering as AtomicOrdering};
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes};
use cheetah_string::CheetahString;
use metrics::{Counter, Histogram};
use rocketmq_client_rust::{DefaultMQProducer, SendStatus};
use rocketmq_model::common::message::message_batch::MessageBatch;
use rocketmq_model::common::message::message_single::Message;
use rocketmq_model::common::message::{MessageConst, MessageTrait};
use rocketmq_model::message::MessageQueue;
use tokio::sync::{Notify, mpsc};
use tokio::task::JoinHandle;

use super::client::failure_text;
use super::fence::Fence;
use crate::already_stored::{Wanted, scan_queue_tail};
use crate::checkpoint::{Checkpoints, PartitionId};
use crate::config::RocketMqConfig;
use crate::health::Readiness;
use crate::mapping::OutgoingMessage;
use crate::message_id::UNIQ_KEY;
use crate::rocketmq_reader::{ReadError, with_reader};
use crate::status::StatusBoard;

/// A mapped record on its way to one queue, already encoded as its entry
/// of a RocketMQ batch body: one allocation per record, encoded once
/// however often its batch is retried.
#[derive(Debug)]
pub struct Envelope {
    pub partition: PartitionId,
    pub offset: i64,
    /// [`encode_batch_entry`]'s output, with this record's UNIQ_KEY (fixed
    /// here, so every retry carries the same id).
    entry: Box<[u8]>,
    /// The Kafka record timestamp, for the end-to-end latency.
    pub timestamp_ms: Option<i64>,
}

impl Envelope {
    pub fn new(
        partition: PartitionId,
        offset: i64,
        message: &OutgoingMessage,
        message_id: &str,
        timestamp_ms: Option<i64>,
    ) -> Self {
        Envelope {
            partition,
            offset,
            entry: encode_batch_entry(message, message_id),
            timestamp_ms,
        }
    }

    /// Bytes this record adds to a batch body.
    pub fn size(&self) -> usize {
        self.entry.len()
    }

    /// Bytes of memory this record holds from the hand-over until it is
    /// stored, as counted against the in-flight cap: the envelope, its
    /// encoded entry with the allocator's overhead, and the entry's copy in
    /// the batch body while that is sent.
    pub fn footprint(&self) -> usize {
        const PER_ALLOCATION: usize = 16;
        std::mem::size_of::<Envelope>() + PER_ALLOCATION + 2 * self.entry.len()
    }
}

/// Batching and retry limits.
#[derive(Debug, Clone, Copy)]
pub struct SenderSettings {
    pub max_batch_records: usize,
    pub max_batch_bytes: usize,
    pub send_timeout: Duration,
    pub max_backoff: Duration,
}

/// Counters shared by all senders, for the summary log and the tests.
#[derive(Debug, Default)]
pub struct SendCounters {
    pub records: AtomicU64,
    pub bytes: AtomicU64,
    pub batches: AtomicU64,
    pub failed_attempts: AtomicU64,
    /// Records of failed sends found stored anyway, and not sent again.
    pub stored_despite_failure: AtomicU64,
    /// Memory held by records handed to senders and not yet stored
    /// ([`Envelope::footprint`]).
    pub in_flight_bytes: AtomicI64,
    /// Signalled when a stored batch frees in-flight bytes.
    pub space_freed: Notify,
}

/// One mapping's metric handles, registered once.
#[derive(Clone)]
pub struct SenderMeters {
    pub mapping: Arc<str>,
    pub produced: Counter,
    pub produced_bytes: Counter,
    pub retries: Counter,
    pub send_latency: Histogram,
    pub end_to_end_latency: Histogram,
}

impl SenderMeters {
    pub fn new(mapping: &str) -> Self {
        let label = mapping.to_string();
        SenderMeters {
            mapping: Arc::from(mapping),
            produced: metrics::counter!(crate::metrics::RECORDS_PRODUCED, "mapping" => label.clone()),
            produced_bytes: metrics::counter!(crate::metrics::BYTES_PRODUCED, "mapping" => label.clone()),
            retries: metrics::counter!(crate::metrics::SEND_RETRIES, "mapping" => label.clone()),
            send_latency: metrics::histogram!(crate::metrics::SEND_LATENCY, "mapping" => label.clone()),
            end_to_end_latency: metrics::histogram!(crate::metrics::END_TO_END_LATENCY, "mapping" => label),
        }
    }
}

/// What all senders share; [`SenderShared::for_mapping`] adds a mapping's meters.
#[derive(Clone)]
pub struct SenderShared {
    pub readiness: Arc<Readiness>,
    pub status: Arc<StatusBoard>,
    pub producer: Arc<DefaultMQProducer>,
    pub checkpoints: Arc<Checkpoints>,
    pub counters: Arc<SendCounters>,
    pub settings: SenderSettings,
    /// `None` when exactly-once is off: a failed batch is sent again whole.
    pub stored_check: Option<Arc<StoredCheck>>,
}

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

impl SenderShared {
    pub fn for_mapping(&self, mapping: &str) -> SenderContext {
        SenderContext {
            shared: self.clone(),
            meters: SenderMeters::new(mapping),
        }
    }
}

/// Everything a sender needs besides its queue.
#[derive(Clone)]
pub struct SenderContext {
    pub shared: SenderShared,
    pub meters: SenderMeters,
}

/// Starts the sender of `queue`; it ends when `records` closes and its last batch is stored.
pub fn spawn(
    context: SenderContext,
    queue: MessageQueue,
    records: mpsc::Receiver<Envelope>,
) -> JoinHandle<()> {
    tokio::spawn(run(context, queue, records))
}

async fn run(context: SenderContext, queue: MessageQueue, mut records: mpsc::Receiver<Envelope>) {
    let mut carry: Option<Envelope> = None;
    loop {
        let first = match carry.take() {
            Some(envelope) => envelope,
            None => match records.recv().await {
                Some(envelope) => envelope,
                None => return,
            },
        };
        let (batch, next) = fill_batch(first, &mut records, &context.shared.settings);
        carry = next;
        send_until_stored(&context, &queue, &batch).await;
        acknowledge(&context.shared.checkpoints, &batch);
    }
}

/// Takes what is already waiting, up to the batch limits. A record that
/// would overflow the byte limit is returned to start the next batch.
fn fill_batch(
    first: Envelope,
    records: &mut mpsc::Receiver<Envelope>,
    settings: &SenderSettings,
) -> (Vec<Envelope>, Option<Envelope>) {
    let mut bytes = first.size();
    let mut batch = vec![first];
    while batch.len() < settings.max_batch_records {
        let Ok(next) = records.try_recv() else { break };
        let size = next.size();
        if bytes + size > settings.max_batch_bytes {
            return (batch, Some(next));
        }
        bytes += size;
        batch.push(next);
    }
    (batch, None)
}

async fn send_until_stored(context: &SenderContext, queue: &MessageQueue, batch: &[Envelope]) {
    let mut backoff = Duration::from_millis(100);
    let mut attempts = 0u64;
    let mut last_report = Instant::now();
    // What is still to send: all of `batch` unless a check found some stored.
    let mut remaining: Option<Vec<&Envelope>> = None;
    // Records whose partitions were revoked while the batch was retried.
    let mut left: Vec<&Envelope> = Vec::new();
    loop {
        attempts += 1;
        let started = Instant::now();
        let outcome = match &remaining {
            None => send_once(context, queue, batch.iter()).await,
            Some(rest) if rest.is_empty() => Ok(()),
            Some(rest) => send_once(context, queue, rest.iter().copied()).await,
        };
        match outcome {
            Ok(()) => {
                if attempts > 1 {
                    context
                        .shared
                        .readiness
                        .failing_queues
                        .fetch_sub(1, AtomicOrdering::Relaxed);
                    context
                        .shared
                        .status
                        .queue_failing(&context.meters.mapping, false);
                    tracing::info!(queue = %describe(queue), attempts, "queue recovered: batch stored after retries");
                }
                record_stored(context, batch, &left, started.elapsed());
                return;
            }
            Err(cause) => {
                context
                    .shared
                    .counters
                    .failed_attempts
                    .fetch_add(1, AtomicOrdering::Relaxed);
                if attempts == 1 {
                    context
                        .shared
                        .readiness
                        .failing_queues
                        .fetch_add(1, AtomicOrdering::Relaxed);
                    context
                        .shared
                        .status
                        .queue_failing(&context.meters.mapping, true);
                }
                let kind = crate::metrics::error_kind(&cause);
                metrics::counter!(crate::metrics::SEND_ERRORS, "mapping" => context.meters.mapping.to_string(), "kind" => kind)
                    .increment(1);
                context.meters.retries.increment(1);
                // One line when a queue starts failing, then one every 30 s: never one per retry.
                if attempts == 1 || last_report.elapsed() >= Duration::from_secs(30) {
                    let first = batch
                        .first()
                        .map(|e| format!("{}@{}", e.partition, e.offset))
                        .unwrap_or_default();
                    tracing::warn!(
                        queue = %describe(queue), records = batch.len(), first_record = %first, attempts, kind,
                        error = %cause, "send to RocketMQ failed; retrying on the same queue, checkpoints held"
                    );
                    last_report = Instant::now();
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(context.shared.settings.max_backoff);
                let mut pending = remaining.take().unwrap_or_else(|| batch.iter().collect());
                if let Some(check) = &context.shared.stored_check
                    && may_have_been_stored(kind)
                {
                    pending = unstored(context, check, queue, pending, &mut backoff).await;
                }
                remaining = Some(leave_revoked(
                    &context.shared.checkpoints,
                    pending,
                    &mut left,
                ));
            }
        }
    }
}

/// Moves the records of partitions revoked while their batch was retried
/// from `pending` to `left`. Their partition's next owner copies them from
/// the committed offset, which is not past them (they were never
/// acknowledged); a late copy from here could land after that owner's
/// restart scan and be stored twice.
fn leave_revoked<'a>(
    checkpoints: &Checkpoints,
    pending: Vec<&'a Envelope>,
    left: &mut Vec<&'a Envelope>,
) -> Vec<&'a Envelope> {
    let (owned, revoked): (Vec<&Envelope>, Vec<&Envelope>) = pending
        .into_iter()
        .partition(|envelope| checkpoints.owns(&envelope.partition));
    if let Some(first) = revoked.first() {
        tracing::info!(
            records = revoked.len(), first_record = %format!("{}@{}", first.partition, first.offset),
            "partition revoked while its records were retried; they are left to the partition's next owner"
        );
    }
    left.extend(revoked);
    owned
}

/// Whether a failed send may have been written all the same: anything but
/// an answer that says the broker did not take it.
fn may_have_been_stored(kind: &str) -> bool {
    !matches!(
        kind,
        "broker_busy" | "broker_not_writable" | "route" | "credentials"
    )
}

/// The part of `pending` that is not in `queue` yet, read back from the
/// queue's tail; retried with backoff until the queue can be read, since
/// sending again without knowing could store a record twice.
async fn unstored<'a>(
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
) -> Result<(std::collections::HashSet<(PartitionId, i64)>, i64), ReadError> {
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

/// Counters, gauges and latencies for a stored batch.
/// Counts `batch` stored, but for the records `left` to another owner; all
/// of it leaves the in-flight cap.
fn record_stored(
    context: &SenderContext,
    batch: &[Envelope],
    left: &[&Envelope],
    send_time: Duration,
) {
    let footprint: usize = batch.iter().map(Envelope::footprint).sum();
    // `left` is nearly always empty: no allocation for the usual batch.
    let stored = || {
        batch
            .iter()
            .filter(|e| !left.iter().any(|l| std::ptr::eq(*l, *e)))
    };
    let (records, bytes) = stored().fold((0usize, 0usize), |(n, b), e| (n + 1, b + e.size()));
    let counters = &context.shared.counters;
    counters
        .records
        .fetch_add(records as u64, AtomicOrdering::Relaxed);
    counters
        .bytes
        .fetch_add(bytes as u64, AtomicOrdering::Relaxed);
    counters.batches.fetch_add(1, AtomicOrdering::Relaxed);
    counters
        .in_flight_bytes
        .fetch_sub(footprint as i64, AtomicOrdering::Relaxed);
    counters.space_freed.notify_one();
    let meters = &context.meters;
    meters.produced.increment(records as u64);
    meters.produced_bytes.increment(bytes as u64);
    meters.send_latency.record(send_time.as_secs_f64());
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    for timestamp in stored().filter_map(|e| e.timestamp_ms) {
        meters
            .end_to_end_latency
            .record((now_ms - timestamp).max(0) as f64 / 1000.0);
    }
}

async fn send_once<'a>(
    context: &SenderContext,
    queue: &MessageQueue,
    batch: impl IntoIterator<Item = &'a Envelope>,
) -> Result<(), String> {
    let batch = build_batch(queue.topic_str(), batch)?;
    let timeout = context.shared.settings.send_timeout;
    let millis = timeout.as_millis() as u64;
    let call = context
        .shared
        .producer
        .send_to_queue_with_timeout(batch, queue.clone(), millis);
    // The client's own timeout governs the request; this one only guards
    // against a call that never returns.
    let result = tokio::time::timeout(timeout + Duration::from_secs(1), call)
        .await
        .map_err(|_| format!("no answer within {millis}ms"))?
        .map_err(|e| failure_text(&e))?
        .ok_or_else(|| "the client returned no send result".to_string())?;
    match result.send_status {
        SendStatus::SendOk => Ok(()),
        status => Err(format!(
            "broker answered {status:?} (stored, but not as SEND_OK)"
        )),
    }
}

/// Builds the batch the way `send_batch_to_queue` would, except for ids:
/// each message carries its own UNIQ_KEY and the wrapper none. Brokers that
/// copy the wrapper's properties onto every message (all before the fix for
/// apache/rocketmq#9416, and rocketmq-rust 1.0.0) would otherwise give the
/// whole batch one id. The client adds no id to a batch it is handed.
///
/// The body is the records' encoded entries back to back, with no client
/// `Message` per record: those cost a property map and a dozen allocations
/// each, on every send attempt. The client reads only the wrapper to send;
/// its list of messages would serve only to join their ids into the send
/// result, which the bridge does not use.
pub fn build_batch<'a>(
    topic: &str,
    batch: impl IntoIterator<Item = &'a Envelope>,
) -> Result<MessageBatch, String> {
    let entries: Vec<&[u8]> = batch.into_iter().map(|e| &*e.entry).collect();
    if entries.is_empty() {
        return Err("cannot build an empty batch".to_string());
    }
    let body = Bytes::from(entries.concat());
    let mut wrapper = Message::default();
    wrapper.set_topic(CheetahString::from(topic));
    wrapper.set_wait_store_msg_ok(true);
    wrapper.set_body(Some(body));
    Ok(MessageBatch {
        final_message: wrapper,
        messages: Vec::new(),
    })
}

/// Separators of RocketMQ's property string: `name\x01value\x02...`.
const NAME_VALUE_SEPARATOR: u8 = 1;
const PROPERTY_SEPARATOR: u8 = 2;

/// One message in the layout of RocketMQ's batch body (Java's
/// `MessageDecoder.encodeMessage`): total size, magic code and body CRC
/// (both 0; the broker fills them), flag, body length and body, properties
/// length (16 bits) and properties. The properties are those [`to_message`]
/// would set, with `message_id` as UNIQ_KEY. The mapping keeps them under
/// 32 KiB, so the length fits.
fn encode_batch_entry(outgoing: &OutgoingMessage, message_id: &str) -> Box<[u8]> {
    const HEADER: usize = 4 + 4 + 4 + 4 + 4 + 2;
    let named = |name: &str, value: &str| name.len() + value.len() + 2;
    let properties_len = outgoing.properties_size()
        + named(MessageConst::PROPERTY_WAIT_STORE_MSG_OK, "true")
        + named(UNIQ_KEY, message_id);
    let body = outgoing.body;
    let total = HEADER + body.len() + properties_len;
    let mut out = Vec::with_capacity(total);
    out.put_i32(total as i32);
    out.put_i32(0);
    out.put_i32(0);
    out.put_i32(0);
    out.put_i32(body.len() as i32);
    out.put_slice(body);
    out.put_i16(properties_len as i16);
    let mut property = |name: &str, value: &str| {
        out.put_slice(name.as_bytes());
        out.put_u8(NAME_VALUE_SEPARATOR);
        out.put_slice(value.as_bytes());
        out.put_u8(PROPERTY_SEPARATOR);
    };
    if let Some(keys) = &outgoing.keys {
        property(MessageConst::PROPERTY_KEYS, keys);
    }
    if let Some(tag) = &outgoing.tag {
        property(MessageConst::PROPERTY_TAGS, tag);
    }
    property(MessageConst::PROPERTY_WAIT_STORE_MSG_OK, "true");
    for (name, value) in &outgoing.properties {
        property(name, value);
    }
    property(UNIQ_KEY, message_id);
    debug_assert_eq!(out.len(), total);
    out.into_boxed_slice()
}

/// Builds the RocketMQ message. Properties go into the map directly: the
/// mapping already escaped every name the client would refuse.
pub fn to_message(topic: &str, outgoing: &OutgoingMessage) -> Message {
    let mut builder = Message::builder()
        .topic(topic)
        .body(Bytes::copy_from_slice(outgoing.body));
    if let Some(keys) = &outgoing.keys {
        builder = builder.key(keys.as_ref());
    }
    if let Some(tag) = &outgoing.tag {
        builder = builder.tags(tag.as_ref());
    }
    // Building only fails without a topic, and the topic is always set.
    let mut message = builder.build_unchecked();
    let map = message.properties_mut().as_map_mut();
    for (name, value) in &outgoing.properties {
        map.insert(
            CheetahString::from(name.as_ref()),
            CheetahString::from(value.as_ref()),
        );
    }
    message
}

fn acknowledge(checkpoints: &Checkpoints, batch: &[Envelope]) {
    let mut by_partition: BTreeMap<&PartitionId, Vec<i64>> = BTreeMap::new();
    for envelope in batch {
        by_partition
            .entry(&envelope.partition)
            .or_default()
            .push(envelope.offset);
    }
    for (partition, offsets) in by_partition {
        checkpoints.acknowledge(partition, offsets);
    }
}

pub fn describe(queue: &MessageQueue) -> String {
    format!(
        "{}@{}#{}",
        queue.topic_str(),
        queue.broker_name(),
        queue.queue_id()
    )
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use rocketmq_protocol::common::message::message_decoder::{decode_messages, encode_messages};

    use super::*;

    /// A message with `body`, as mapped from the record at `offset`.
    fn outgoing<'a>(
        body: &'a str,
        offset: i64,
        keys: Option<&'a str>,
        tag: Option<&'a str>,
    ) -> OutgoingMessage<'a> {
        OutgoingMessage {
            body: body.as_bytes(),
            keys: keys.map(Into::into),
            tag: tag.map(Into::into),
            properties: vec![
                ("KAFKA_OFFSET".into(), offset.to_string().into()),
                ("h\u{e9}ader".into(), "v\u{e4}lue".into()),
            ],
        }
    }

    fn id(offset: i64) -> String {
        format!("{offset:032X}")
    }

    fn properties(message: &Message) -> HashMap<String, String> {
        message
            .properties()
            .as_map()
            .iter()
            .map(|(name, value)| (name.to_string(), value.to_string()))
            .collect()
    }

    /// The direct encoding decodes, with the client's own decoder, to what
    /// the client would have encoded from `to_message` plus the id, in order.
    #[test]
    fn batch_body_decodes_to_the_client_messages() {
        let messages = [
            (
                7,
                outgoing("value of record 7", 7, Some("k1 k2"), Some("tag")),
            ),
            (8, outgoing("value of record 8", 8, None, None)),
            (9, outgoing("value of record 9", 9, Some("k"), None)),
        ];
        let envelopes: Vec<Envelope> = messages
            .iter()
            .map(|(offset, m)| {
                Envelope::new(
                    PartitionId::new("orders", 3),
                    *offset,
                    m,
                    &id(*offset),
                    None,
                )
            })
            .collect();
        let batch = build_batch("target", envelopes.iter()).expect("batch");
        assert_eq!(batch.final_message.topic().as_str(), "target");
        assert!(
            batch
                .final_message
                .properties()
                .as_map()
                .get(UNIQ_KEY)
                .is_none()
        );
        let mut body = batch.final_message.get_body().expect("body").clone();
        let expected: Vec<Message> = messages
            .iter()
            .map(|(offset, m)| {
                let mut message = to_message("target", m);
                message.properties_mut().as_map_mut().insert(
                    CheetahString::from_static_str(UNIQ_KEY),
                    CheetahString::from(id(*offset)),
                );
                message
            })
            .collect();
        assert_eq!(body.len(), encode_messages(&expected).len());
        assert_eq!(
            body.len(),
            envelopes.iter().map(Envelope::size).sum::<usize>()
        );
        let decoded = decode_messages(&mut body);
        assert_eq!(decoded.len(), expected.len());
        for (got, want) in decoded.iter().zip(&expected) {
            assert_eq!(got.get_body(), want.get_body());
            assert_eq!(properties(got), properties(want));
            assert_eq!(got.flag(), want.flag());
        }
    }

    /// A retried batch keeps the records of partitions still owned, in
    /// order, and leaves the revoked partition's records to its next owner.
    #[test]
    fn retries_leave_revoked_partitions_to_their_next_owner() {
        let checkpoints = Checkpoints::new();
        let (kept, revoked) = (PartitionId::new("orders", 0), PartitionId::new("orders", 1));
        let envelopes: Vec<Envelope> = [(&kept, 1), (&revoked, 1), (&kept, 2), (&revoked, 2)]
            .into_iter()
            .map(|(partition, offset)| {
                checkpoints.dispatch(partition, offset);
                Envelope::new(
                    partition.clone(),
                    offset,
                    &outgoing("value", offset, None, None),
                    &id(offset),
                    None,
                )
            })
            .collect();
        let mut left = Vec::new();
        let all = leave_revoked(&checkpoints, envelopes.iter().collect(), &mut left);
        assert_eq!(all.len(), 4);
        assert!(left.is_empty());
        checkpoints.revoke(std::slice::from_ref(&revoked));
        let owned = leave_revoked(&checkpoints, all, &mut left);
        let coordinates = |list: &[&Envelope]| -> Vec<(i32, i64)> {
            list.iter()
                .map(|e| (e.partition.partition, e.offset))
                .collect()
        };
        assert_eq!(coordinates(&owned), [(0, 1), (0, 2)]);
        assert_eq!(coordinates(&left), [(1, 1), (1, 2)]);
    }

    #[test]
    fn empty_batch_is_refused() {
        assert!(build_batch("target", std::iter::empty()).is_err());
    }
}
