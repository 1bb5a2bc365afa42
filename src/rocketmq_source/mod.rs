//! The RocketMQ source, for the way back (RocketMQ to Kafka): one lite pull
//! consumer in a clustering consumer group, so instances split a topic's
//! queues by RocketMQ's own rebalance; each queue is read in order, and its
//! consumer offset moves only when [`RocketMqSource::commit`] says so,
//! written to the broker and acknowledged.
//!
//! The client's calls are async and its `poll` is not cancel-safe, while the
//! pipeline's [`Source`] pauses and seeks synchronously and cancels its
//! reads at will. So one task owns the consumer: it applies the commands
//! (pause, resume, seek) in the order they were given, between polls, and
//! hands what it polls over a bounded channel, which is cancel-safe and
//! bounds what waits.

pub mod message;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rocketmq_client_rust::{
    AclClientRPCHook, ClientRuntime, DefaultLitePullConsumer, MessageQueueListener, ReadOffsetType,
    SessionCredentials,
};
use rocketmq_model::common::consumer::consume_from_where::ConsumeFromWhere;
use rocketmq_model::message::MessageQueue;
use rocketmq_protocol::protocol::heartbeat::message_model::MessageModel;
use tokio::sync::{Notify, mpsc};
use tokio::task::JoinHandle;

use crate::checkpoint::PartitionId;
use crate::config::RocketMqConfig;
use crate::mapping::SourceRecord;
use crate::mapping::reverse::{self, RocketMqMessage};
use crate::rocketmq_sink::failure_text;
use crate::source::{Committed, Incoming, Source};

pub use message::to_message;
use message::{SharedNames, to_message_sharing};

/// Messages asked for per pull. The client's default is 10; a broker
/// answers with up to 32 from memory (`maxTransferCountOnMessageInMemory`),
/// and each pull costs the client and the broker a round trip.
pub const PULL_BATCH: i32 = 32;
/// Messages polled and not taken by the pipeline yet, over all queues.
const CHANNEL_RECORDS: usize = 1024;
/// How long one poll waits for messages before the task looks at its
/// commands again.
const POLL_WAIT_MS: u64 = 20;
/// How long a queue this member just gained from a live peer waits before
/// its first message goes to the pipeline. RocketMQ's rebalance is not coordinated:
/// each member computes its share on its own, so the member that loses a
/// queue may still be sending its last copies when the new owner starts;
/// the new owner's restart scan must come after those are stored. The
/// loser hears of the change within about 100 ms (the broker notifies
/// every member) and drains before it lets go (see `OnRebalance`).
pub const HANDOFF_GRACE: Duration = Duration::from_secs(3);
/// How long leaving the group may take (see [`Source::close`]).
const CLOSE_WAIT: Duration = Duration::from_secs(2);
/// How often a read holding a message of a queue not announced yet looks
/// again, should it miss the announcement's wake-up.
const ANNOUNCE_RECHECK: Duration = Duration::from_millis(50);

/// Starting the consumer failed; the text names the name server and group.
#[derive(Debug, thiserror::Error)]
#[error(
    "cannot consume RocketMQ topics {topics} as group `{group}` via name server {name_server}: {cause}"
)]
pub struct SourceError {
    pub topics: String,
    pub group: String,
    pub name_server: String,
    pub cause: String,
}

enum Command {
    Pause(Vec<MessageQueue>),
    Resume(Vec<MessageQueue>),
    Seek(MessageQueue, i64),
}

/// The queues this instance owns, per topic, as the group's rebalance left
/// them, and those taken away since the pipeline last asked.
#[derive(Default)]
struct Ownership {
    owned: HashMap<String, HashSet<PartitionId>>,
    revoked: Vec<PartitionId>,
    /// Queues gained, and until when their messages wait.
    gained: HashMap<PartitionId, tokio::time::Instant>,
}

/// Told of each rebalance, on the client's runtime, after the client
/// stopped reading the queues it lost: those queues (the pipeline stops
/// committing them: their next owner may have read past the last commit
/// already) and how many this member owns now.
pub type OnRebalance = Arc<dyn Fn(&[PartitionId], usize) + Send + Sync>;

/// Hears the group's rebalance. Called after the client started or
/// stopped reading the queues, on the client's runtime.
struct RebalanceListener {
    ownership: Arc<Mutex<Ownership>>,
    /// Wakes a read holding a message of a queue the client reads already
    /// and this listener has not announced yet.
    announced: Arc<Notify>,
    on_rebalance: OnRebalance,
}

impl MessageQueueListener for RebalanceListener {
    fn message_queue_changed(
        &self,
        topic: &str,
        all: &HashSet<MessageQueue>,
        mine: &HashSet<MessageQueue>,
    ) {
        let now: HashSet<PartitionId> = mine.iter().map(lane_of).collect();
        let mut ownership = self.ownership.lock().unwrap_or_else(|p| p.into_inner());
        let before = ownership.owned.insert(topic.to_string(), now.clone());
        let before = before.unwrap_or_default();
        let gone: Vec<PartitionId> = before
            .iter()
            .filter(|lane| !now.contains(*lane))
            .cloned()
            .collect();
        // A member that owns every queue has no live peer still sending
        // (one that left drained first; one killed sends nothing more).
        if mine.len() < all.len() {
            let until = tokio::time::Instant::now() + HANDOFF_GRACE;
            for lane in now.iter().filter(|lane| !before.contains(*lane)) {
                ownership.gained.insert(lane.clone(), until);
            }
        }
        for lane in &gone {
            ownership.gained.remove(lane);
        }
        if !gone.is_empty() || !now.is_empty() {
            let mut names: Vec<String> = now.iter().map(ToString::to_string).collect();
            names.sort();
            tracing::info!(topic, owned = %names.join(" "), revoked = gone.len(), "RocketMQ queues assigned");
        }
        let owned = ownership.owned.values().map(HashSet::len).sum();
        ownership.revoked.extend(gone.iter().cloned());
        // The callback may wait for the lost queues to drain: not under
        // the lock, which the pipeline's reads take.
        drop(ownership);
        self.announced.notify_waiters();
        (self.on_rebalance)(&gone, owned);
    }
}

/// What the pipeline has not taken yet: the channel from the poller, and a
/// message held back while its queue's handoff lasts.
struct Untaken {
    channel: mpsc::Receiver<RocketMqMessage>,
    waiting: Option<RocketMqMessage>,
}

/// A RocketMQ queue as the pipeline names it.
pub fn lane_of(queue: &MessageQueue) -> PartitionId {
    PartitionId::queue(queue.topic_str(), queue.broker_name(), queue.queue_id())
}

fn queue_of(lane: &PartitionId) -> Option<MessageQueue> {
    let broker = lane.broker.as_deref()?;
    Some(MessageQueue::from_parts(
        lane.topic.as_ref(),
        broker,
        lane.partition,
    ))
}

/// A consumer group member reading RocketMQ topics for the pipeline.
pub struct RocketMqSource {
    consumer: Arc<DefaultLitePullConsumer>,
    ownership: Arc<Mutex<Ownership>>,
    announced: Arc<Notify>,
    records: tokio::sync::Mutex<Untaken>,
    commands: mpsc::UnboundedSender<Command>,
    poller: JoinHandle<()>,
    /// The runtime the source was started on: [`Source::committed_offsets`]
    /// is blocking (called off the async workers) and runs the client's
    /// queries on it.
    runtime: tokio::runtime::Handle,
}

impl RocketMqSource {
    /// Joins `group` and reads `topics` from each queue's consumer offset,
    /// or from the queue's first message where the group has none.
    pub async fn start(
        runtime: Arc<ClientRuntime>,
        config: &RocketMqConfig,
        group: &str,
        instance: &str,
        topics: &[String],
        on_rebalance: OnRebalance,
    ) -> Result<Self, SourceError> {
        let failed = |cause: String| SourceError {
            topics: topics.join(", "),
            group: group.to_string(),
            name_server: config.name_server.clone(),
            cause,
        };
        let mut builder = DefaultLitePullConsumer::builder(runtime)
            .consumer_group(group)
            .name_server_addr(config.name_server.as_str())
            .instance_name(instance)
            .message_model(MessageModel::Clustering)
            .consume_from_where(ConsumeFromWhere::ConsumeFromFirstOffset)
            .pull_batch_size(PULL_BATCH)
            // Only the pipeline's acknowledgements move an offset.
            .auto_commit(false);
        if let (Some(access), Some(secret)) = (&config.access_key, &config.secret_key) {
            let credentials = SessionCredentials::with_keys(access.expose(), secret.expose());
            builder = builder.rpc_hook(Arc::new(AclClientRPCHook::new(credentials)));
        }
        let consumer = builder.build().map_err(|e| failed(failure_text(&e)))?;
        let ownership = Arc::new(Mutex::new(Ownership::default()));
        let announced = Arc::new(Notify::new());
        for topic in topics {
            consumer
                .subscribe_with_listener(
                    topic,
                    "*",
                    RebalanceListener {
                        ownership: Arc::clone(&ownership),
                        announced: Arc::clone(&announced),
                        on_rebalance: Arc::clone(&on_rebalance),
                    },
                )
                .await
                .map_err(|e| failed(failure_text(&e)))?;
        }
        consumer
            .start()
            .await
            .map_err(|e| failed(failure_text(&e)))?;
        let consumer = Arc::new(consumer);
        let (records_tx, records) = mpsc::channel(CHANNEL_RECORDS);
        let (commands, commands_rx) = mpsc::unbounded_channel();
        let poller = tokio::spawn(poll_forever(Arc::clone(&consumer), commands_rx, records_tx));
        Ok(RocketMqSource {
            consumer,
            ownership,
            announced,
            records: tokio::sync::Mutex::new(Untaken {
                channel: records,
                waiting: None,
            }),
            commands,
            poller,
            runtime: tokio::runtime::Handle::current(),
        })
    }

    /// The topic's queues, in the order the router indexes them (by broker
    /// name, then queue id).
    pub async fn queues(&self, topic: &str) -> Result<Vec<MessageQueue>, String> {
        let mut queues = self
            .consumer
            .fetch_message_queues(topic)
            .await
            .map_err(|e| {
                format!(
                    "cannot read the queues of RocketMQ topic `{topic}`: {}",
                    failure_text(&e)
                )
            })?;
        queues
            .sort_by(|a, b| (a.broker_name(), a.queue_id()).cmp(&(b.broker_name(), b.queue_id())));
        Ok(queues)
    }

    /// Leaves the group and waits until the client unregistered from the
    /// brokers, however long its pulls take: for a client runtime that
    /// goes on serving others.
    pub async fn shutdown(&self) {
        self.poller.abort();
        self.consumer.shutdown().await;
    }

    fn owns(&self, lane: &PartitionId) -> bool {
        let ownership = self.ownership.lock().unwrap_or_else(|p| p.into_inner());
        ownership
            .owned
            .get(lane.topic.as_ref())
            .is_some_and(|owned| owned.contains(lane))
    }

    /// Whether the client reads `lane` now. It starts a queue's pulls
    /// before it tells the listener (as the Java client does), so under
    /// load a queue's first messages can come before its announcement.
    async fn client_reads(&self, lane: &PartitionId) -> bool {
        let Some(queue) = queue_of(lane) else {
            return false;
        };
        self.consumer
            .assignment()
            .await
            .is_ok_and(|queues| queues.contains(&queue))
    }

    /// Until when `lane`'s messages wait, if it was gained lately.
    fn handoff_until(&self, lane: &PartitionId) -> Option<tokio::time::Instant> {
        let mut ownership = self.ownership.lock().unwrap_or_else(|p| p.into_inner());
        let until = *ownership.gained.get(lane)?;
        if until <= tokio::time::Instant::now() {
            ownership.gained.remove(lane);
            return None;
        }
        Some(until)
    }

    fn send(&self, command: Command) {
        // The poller ends only with the source.
        let _ = self.commands.send(command);
    }
}

/// Applies the commands, then polls, forever; a full channel holds the
/// poll (and so the client's pulls, by its own per-queue thresholds).
async fn poll_forever(
    consumer: Arc<DefaultLitePullConsumer>,
    mut commands: mpsc::UnboundedReceiver<Command>,
    records: mpsc::Sender<RocketMqMessage>,
) {
    let mut names = SharedNames::default();
    loop {
        while let Ok(command) = commands.try_recv() {
            apply(&consumer, command).await;
        }
        // The zero-copy poll shares the client's messages: the plain poll
        // clones each one (body and property map) only for us to copy it.
        for message in consumer.poll_with_timeout_zero_copy(POLL_WAIT_MS).await {
            if records
                .send(to_message_sharing(&message, &mut names))
                .await
                .is_err()
            {
                return;
            }
        }
    }
}

async fn apply(consumer: &DefaultLitePullConsumer, command: Command) {
    match command {
        Command::Pause(queues) => consumer.pause(queues).await,
        Command::Resume(queues) => consumer.resume(queues).await,
        Command::Seek(queue, offset) => {
            if let Err(error) = consumer.seek(&queue, offset).await {
                tracing::warn!(queue = %lane_of(&queue), offset, error = %failure_text(&error), "cannot move a RocketMQ queue to an offset");
            }
        }
    }
}

impl Incoming for RocketMqMessage {
    fn topic(&self) -> &str {
        &self.topic
    }

    fn lane(&self) -> PartitionId {
        PartitionId {
            topic: Arc::clone(&self.topic),
            broker: Some(Arc::clone(&self.broker)),
            partition: self.queue_id,
        }
    }

    fn offset(&self) -> i64 {
        self.queue_offset
    }

    fn limited_bytes(&self) -> u64 {
        let properties: usize = self
            .properties
            .iter()
            .map(|(name, value)| name.len() + value.len())
            .sum();
        let keys = self.keys.as_ref().map_or(0, |keys| keys.len());
        (keys + self.body.len() + properties) as u64
    }

    fn value_bytes(&self) -> u64 {
        self.body.len() as u64
    }

    fn into_dead_letter(self) -> SourceRecord {
        reverse::as_dead_letter(&self)
    }
}

impl Source for RocketMqSource {
    type Record = RocketMqMessage;

    fn reads(&self, lane: &PartitionId) -> bool {
        lane.broker.is_some()
    }

    /// Messages of queues revoked after they were polled are dropped: the
    /// queue's next owner reads them again. A message of a queue the client
    /// reads but has not announced yet waits for the announcement: dropping
    /// it would lose it, as the client reads on past it. The first message
    /// of a queue gained lately waits out the handoff (`HANDOFF_GRACE`),
    /// and every message behind it too: a rebalance is rare, and one wait
    /// keeps the order simple. Cancel-safe: a waiting message stays in
    /// `waiting`.
    async fn recv(&self) -> Result<RocketMqMessage, String> {
        let mut records = self.records.lock().await;
        loop {
            let message = match records.waiting.take() {
                Some(message) => message,
                None => records
                    .channel
                    .recv()
                    .await
                    .ok_or_else(|| "the RocketMQ consumer stopped".to_string())?,
            };
            let lane = message.lane();
            if !self.owns(&lane) {
                if self.client_reads(&lane).await {
                    tracing::debug!(queue = %lane, offset = message.queue_offset, "a message of a queue the client reads before it announced the queue waits for the announcement");
                    records.waiting = Some(message);
                    let _ = tokio::time::timeout(ANNOUNCE_RECHECK, self.announced.notified()).await;
                    continue;
                }
                tracing::debug!(queue = %lane, offset = message.queue_offset, "dropping a message of a queue this member lost; its next owner reads it again");
                continue;
            }
            if let Some(until) = self.handoff_until(&lane) {
                records.waiting = Some(message);
                tokio::time::sleep_until(until).await;
                continue;
            }
            return Ok(message);
        }
    }

    fn take_revoked(&self) -> Vec<PartitionId> {
        let mut ownership = self.ownership.lock().unwrap_or_else(|p| p.into_inner());
        std::mem::take(&mut ownership.revoked)
    }

    fn assigned(&self) -> Vec<PartitionId> {
        let ownership = self.ownership.lock().unwrap_or_else(|p| p.into_inner());
        ownership.owned.values().flatten().cloned().collect()
    }

    fn set_paused_where(&self, paused: bool, selected: &dyn Fn(&PartitionId) -> bool) {
        let queues: Vec<MessageQueue> = self
            .assigned()
            .iter()
            .filter(|lane| selected(lane))
            .filter_map(queue_of)
            .collect();
        if queues.is_empty() {
            return;
        }
        self.send(if paused {
            Command::Pause(queues)
        } else {
            Command::Resume(queues)
        });
    }

    /// Takes effect between two polls; messages polled before it still
    /// arrive, as with a pause.
    fn seek(&self, lane: &PartitionId, offset: i64) -> Result<(), String> {
        let queue = queue_of(lane).ok_or_else(|| format!("{lane} is not a RocketMQ queue"))?;
        self.send(Command::Seek(queue, offset));
        Ok(())
    }

    fn committed_offsets(
        &self,
        lanes: &[PartitionId],
        timeout: Duration,
    ) -> Result<Vec<(PartitionId, Option<i64>)>, String> {
        let consumer = Arc::clone(&self.consumer);
        let lanes = lanes.to_vec();
        let query = async move {
            let store = consumer
                .offset_store()
                .await
                .ok_or_else(|| "the consumer has no offset store (not started)".to_string())?;
            let mut found = Vec::with_capacity(lanes.len());
            for lane in lanes {
                let queue =
                    queue_of(&lane).ok_or_else(|| format!("{lane} is not a RocketMQ queue"))?;
                // The broker's value: the client's memory may be ahead of it.
                let offset = store
                    .read_offset(&queue, ReadOffsetType::ReadFromStore)
                    .await;
                found.push((lane, (offset >= 0).then_some(offset)));
            }
            Ok::<_, String>(found)
        };
        self.runtime.block_on(async {
            tokio::time::timeout(timeout, query)
                .await
                .map_err(|_| format!("no answer within {}s", timeout.as_secs()))?
        })
    }

    /// Stores `offsets` (next to read, per queue) as the group's consumer
    /// offsets on the brokers, each acknowledged; the first failure is
    /// returned with its queue.
    async fn commit(
        &self,
        offsets: &[(PartitionId, i64)],
        _wait: bool,
    ) -> Result<Committed, String> {
        let Some(store) = self.consumer.offset_store().await else {
            return Err("the consumer has no offset store (not started)".to_string());
        };
        for (lane, offset) in offsets {
            let Some(queue) = queue_of(lane) else {
                return Err(format!("{lane} is not a RocketMQ queue"));
            };
            // Memory first: the client writes what it holds to the broker
            // on a timer and at shutdown, and would undo a commit it did
            // not hold.
            store.update_offset(&queue, *offset, false).await;
            store
                .update_consume_offset_to_broker(&queue, *offset, false)
                .await
                .map_err(|e| {
                    format!(
                        "cannot commit offset {offset} of {lane}: {}",
                        failure_text(&e)
                    )
                })?;
        }
        Ok(Committed::Stored)
    }

    /// Leaves the group, waiting at most `CLOSE_WAIT`: the client's
    /// shutdown waits for its pulls, which the broker may hold (long
    /// polling); measured at 5-20 s. The offsets are committed by then, and
    /// `run` shuts the client runtime down next, which closes the
    /// connections, so the broker drops the member anyway.
    /// [`RocketMqSource::shutdown`] waits for the whole shutdown.
    async fn close(&self) {
        self.poller.abort();
        if tokio::time::timeout(CLOSE_WAIT, self.consumer.shutdown())
            .await
            .is_err()
        {
            tracing::debug!(
                "the RocketMQ consumer's shutdown is still waiting for its pulls; leaving it"
            );
        }
    }
}
