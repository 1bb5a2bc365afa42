//! Reads back what RocketMQ holds: every message of a topic's queues, in
//! queue order, with what the mapping needs to recover the Kafka record.
//! Used by `verify`, the demo's reader and the tests.

// Classic pull is deprecated upstream in favour of the lite pull consumer,
// but it is the API that reads a queue by explicit offset without keeping
// consumer state or committing anything, which is exactly what a reader
// that must not disturb anything needs.
#![allow(deprecated)]

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt as _;
use futures::stream::FuturesOrdered;

use rocketmq_client_rust::{
    AclClientRPCHook, ClientRuntime, DefaultMQProducer, DefaultMQPullConsumer, PullStatus,
    SessionCredentials,
};
use rocketmq_model::common::message::message_ext::MessageExt;
use rocketmq_model::message::MessageQueue;

use crate::config::RocketMqConfig;
use crate::mapping::{self, SourceRecord, StoredMessage, UnmapError};
use crate::rocketmq_sink::{RocketMqRuntime, failure_text};

/// Whether a pull at `at` that says the next one starts at `next` handed
/// over exactly the messages in between, with no gap.
fn answers_exactly(found: &[MessageExt], at: i64, next: i64) -> bool {
    next > at
        && found.len() as i64 == next - at
        && found
            .iter()
            .zip(at..)
            .all(|(message, offset)| message.queue_offset() == offset)
}

/// One stored message.
#[derive(Debug, Clone)]
pub struct ReadMessage {
    pub queue_id: i32,
    pub queue_offset: i64,
    /// The client-side message id (`UNIQ_KEY`), what consumers call msgId.
    pub uniq_key: Option<String>,
    pub keys: Option<String>,
    pub tags: Option<String>,
    pub store_timestamp: i64,
    pub body: Vec<u8>,
    /// User properties only, sorted by name.
    pub properties: Vec<(String, String)>,
}

impl ReadMessage {
    /// The Kafka record this message is a copy of.
    pub fn kafka_record(&self) -> Result<SourceRecord, UnmapError> {
        mapping::unmap(&StoredMessage {
            body: &self.body,
            keys: self.keys.as_deref(),
            properties: self
                .properties
                .iter()
                .map(|(n, v)| (n.as_str(), v.as_str()))
                .collect(),
        })
    }
}

/// Reading failed; the text names the name server and topic.
#[derive(Debug, thiserror::Error)]
#[error("reading RocketMQ topic `{topic}` via name server {name_server}: {cause}")]
pub struct ReadError {
    pub topic: String,
    pub name_server: String,
    pub cause: String,
}

/// A pull consumer that reads queues by offset, committing nothing.
pub struct TopicReader {
    consumer: DefaultMQPullConsumer,
    name_server: String,
}

const CALL_TIMEOUT: Duration = Duration::from_secs(15);
/// How long [`TopicReader::shutdown`] waits for the client.
const SHUTDOWN_WAIT: Duration = Duration::from_secs(1);
/// Messages asked for per pull; the broker may return fewer.
const PULL_BATCH: i32 = 256;
/// A pull below the queue's end that finds nothing (the broker answers
/// "not found" or "retry" while it is busy) is asked again this often...
const EMPTY_ANSWER_RETRIES: u32 = 5;
/// ...after this times the number of empty answers so far.
const EMPTY_ANSWER_BACKOFF: Duration = Duration::from_millis(100);
/// Pulls of one queue in flight at once. A broker answers a pull with at
/// most 32 messages from memory (`maxTransferCountOnMessageInMemory`), so
/// one pull at a time is bound by round trips; the next ones go out at the
/// offsets the answers so far say they will start at.
const PULLS_AHEAD: usize = 4;

impl TopicReader {
    pub async fn start(
        runtime: Arc<ClientRuntime>,
        config: &RocketMqConfig,
        group: &str,
    ) -> Result<Self, ReadError> {
        let failed = |cause: String| ReadError {
            topic: String::new(),
            name_server: config.name_server.clone(),
            cause,
        };
        let mut builder = DefaultMQPullConsumer::builder(runtime)
            .consumer_group(group)
            .name_server_addr(config.name_server.as_str())
            .consumer_pull_timeout(Duration::from_secs(10));
        if let (Some(access), Some(secret)) = (&config.access_key, &config.secret_key) {
            let credentials = SessionCredentials::with_keys(access.expose(), secret.expose());
            builder = builder.rpc_hook(Arc::new(AclClientRPCHook::new(credentials)));
        }
        let consumer = builder.build().map_err(|e| failed(failure_text(&e)))?;
        consumer
            .start()
            .await
            .map_err(|e| failed(failure_text(&e)))?;
        Ok(TopicReader {
            consumer,
            name_server: config.name_server.clone(),
        })
    }

    pub fn failed(&self, topic: &str, cause: String) -> ReadError {
        ReadError {
            topic: topic.to_string(),
            name_server: self.name_server.clone(),
            cause,
        }
    }

    /// The topic's queues, sorted by broker name and queue id.
    pub async fn queues(&self, topic: &str) -> Result<Vec<MessageQueue>, ReadError> {
        let call = self.consumer.fetch_subscribe_message_queues(topic);
        let mut queues = tokio::time::timeout(CALL_TIMEOUT, call)
            .await
            .map_err(|_| self.failed(topic, "no answer".into()))?
            .map_err(|e| self.failed(topic, failure_text(&e)))?;
        queues.sort_by(|a, b| {
            (a.broker_name().as_str(), a.queue_id()).cmp(&(b.broker_name().as_str(), b.queue_id()))
        });
        Ok(queues)
    }

    /// Every message of `queue` from its first offset to its current end.
    pub async fn read_queue(&self, queue: &MessageQueue) -> Result<Vec<ReadMessage>, ReadError> {
        let (min, max) = self.offsets(queue).await?;
        let mut messages = Vec::new();
        self.scan_queue(queue, min, max, |message| messages.push(message))
            .await?;
        Ok(messages)
    }

    /// Streams the messages of `queue` from offset `from` up to `to`
    /// (exclusive) to `visit`, in queue order, holding one pull at a time.
    pub async fn scan_queue(
        &self,
        queue: &MessageQueue,
        from: i64,
        to: i64,
        mut visit: impl FnMut(ReadMessage),
    ) -> Result<(), ReadError> {
        let queue_id = queue.queue_id();
        self.scan_queue_with(queue, from, to, |message| {
            visit(to_read_message(queue_id, message))
        })
        .await
    }

    /// Like [`TopicReader::scan_queue`], handing over each message as the
    /// client decoded it, for callers that need only a property or two.
    ///
    /// `to` must not exceed the queue's end as [`TopicReader::offsets`]
    /// gave it: every offset below it holds a message, so a pull that finds
    /// none there is asked again, and then an error. Ending the scan early
    /// instead would report stored messages as absent, which makes the
    /// sender's check re-send records already stored.
    pub async fn scan_queue_with(
        &self,
        queue: &MessageQueue,
        from: i64,
        to: i64,
        mut visit: impl FnMut(&MessageExt),
    ) -> Result<(), ReadError> {
        let mut expected = from;
        // Messages per answer, once seen: where the pulls ahead start.
        let mut stride: Option<i64> = None;
        let mut ahead = FuturesOrdered::new();
        let mut next_pull = from;
        let mut empty_answers = 0u32;
        while expected < to {
            if ahead.is_empty() {
                next_pull = expected;
            }
            let depth = if stride.is_some() { PULLS_AHEAD } else { 1 };
            while ahead.len() < depth && next_pull < to {
                let at = next_pull;
                ahead.push_back(async move { (at, self.pull_at(queue, at).await) });
                next_pull = at + stride.unwrap_or(i64::from(PULL_BATCH));
            }
            let Some((at, pulled)) = ahead.next().await else {
                break;
            };
            if at != expected {
                // Pulled ahead at a guessed offset that the answers did not reach.
                continue;
            }
            let pulled = pulled?;
            let next = pulled.next_begin_offset() as i64;
            let found = pulled.msg_found_list().unwrap_or_default();
            match pulled.pull_status() {
                PullStatus::Found if answers_exactly(found, at, next) => empty_answers = 0,
                // Retention removed messages since `offsets`: go on from
                // the first one the broker still holds.
                PullStatus::OffsetIllegal if next > at => {
                    expected = next;
                    ahead = FuturesOrdered::new();
                    continue;
                }
                status => {
                    // Not found, retry, or an answer with a gap in it.
                    empty_answers += 1;
                    if empty_answers > EMPTY_ANSWER_RETRIES {
                        return Err(self.failed(
                            queue.topic_str(),
                            format!(
                                "pull at offset {at} of queue {}: the broker answered {status:?} \
                                 {empty_answers} times, though the queue holds messages up to offset {to}",
                                queue.queue_id()
                            ),
                        ));
                    }
                    tokio::time::sleep(EMPTY_ANSWER_BACKOFF * empty_answers).await;
                    ahead = FuturesOrdered::new();
                    continue;
                }
            }
            for message in found.iter() {
                if message.queue_offset() < to {
                    visit(message);
                }
            }
            if stride != Some(next - at) {
                // The pulls ahead were placed for another answer size.
                stride = Some(next - at);
                ahead = FuturesOrdered::new();
            }
            expected = next;
        }
        Ok(())
    }

    /// One pull of `queue` at `offset`.
    async fn pull_at(
        &self,
        queue: &MessageQueue,
        offset: i64,
    ) -> Result<rocketmq_client_rust::PullResult, ReadError> {
        let topic = queue.topic_str();
        tokio::time::timeout(
            CALL_TIMEOUT,
            self.consumer.pull(queue, "*", offset, PULL_BATCH),
        )
        .await
        .map_err(|_| self.failed(topic, format!("pull at offset {offset}: no answer")))?
        .map_err(|e| {
            self.failed(
                topic,
                format!("pull at offset {offset}: {}", failure_text(&e)),
            )
        })
    }

    /// The first offset of `queue` whose message was stored at or after
    /// `store_time_ms` (the broker's index; approximate by design).
    pub async fn offset_at(
        &self,
        queue: &MessageQueue,
        store_time_ms: i64,
    ) -> Result<i64, ReadError> {
        let topic = queue.topic_str();
        let search = self
            .consumer
            .search_offset(queue, store_time_ms.max(0) as u64);
        tokio::time::timeout(CALL_TIMEOUT, search)
            .await
            .map_err(|_| self.failed(topic, "no answer to an offset search by time".into()))?
            .map_err(|e| self.failed(topic, failure_text(&e)))
    }

    /// The first offset of `queue` and one past its last.
    pub async fn offsets(&self, queue: &MessageQueue) -> Result<(i64, i64), ReadError> {
        let topic = queue.topic_str();
        let no_answer = || self.failed(topic, "no answer to an offset query".into());
        let min = tokio::time::timeout(CALL_TIMEOUT, self.consumer.min_offset(queue))
            .await
            .map_err(|_| no_answer())?;
        let max = tokio::time::timeout(CALL_TIMEOUT, self.consumer.max_offset(queue))
            .await
            .map_err(|_| no_answer())?;
        let min = min.map_err(|e| self.failed(topic, failure_text(&e)))?;
        let max = max.map_err(|e| self.failed(topic, failure_text(&e)))?;
        Ok((min, max))
    }

    /// The offset this reader's consumer group has stored for `queue` on
    /// the broker (where a consumer of the group resumes); negative if none.
    pub async fn group_offset(&self, queue: &MessageQueue) -> Result<i64, ReadError> {
        let topic = queue.topic_str();
        tokio::time::timeout(
            CALL_TIMEOUT,
            self.consumer.fetch_consume_offset(queue, true),
        )
        .await
        .map_err(|_| self.failed(topic, "no answer to a consumer offset query".into()))?
        .map_err(|e| self.failed(topic, failure_text(&e)))
    }

    /// Every message of every queue of `topic`, queue by queue.
    pub async fn read_topic(&self, topic: &str) -> Result<Vec<ReadMessage>, ReadError> {
        let mut all = Vec::new();
        for queue in self.queues(topic).await? {
            all.extend(self.read_queue(&queue).await?);
        }
        Ok(all)
    }

    /// Stops the consumer, waiting at most [`SHUTDOWN_WAIT`]. The client
    /// runs the classic pull API on its lite pull consumer, which
    /// rebalances the queues this reader touched and starts background
    /// pull tasks for them; stopping those takes 5 s each, and this reader
    /// has nothing of theirs to wait for.
    pub async fn shutdown(self) {
        let _ = tokio::time::timeout(SHUTDOWN_WAIT, self.consumer.shutdown()).await;
    }
}

/// Runs `work` with a reader of consumer group `group` on a client runtime
/// of its own, and shuts both down whatever `work` returns.
pub async fn with_reader<T, E: From<ReadError>>(
    config: &RocketMqConfig,
    group: &str,
    work: impl AsyncFnOnce(&TopicReader) -> Result<T, E>,
) -> Result<T, E> {
    let failed = |cause: String| ReadError {
        topic: String::new(),
        name_server: config.name_server.clone(),
        cause,
    };
    let runtime = RocketMqRuntime::start(1).map_err(failed)?;
    let result = match TopicReader::start(runtime.client_runtime(), config, group).await {
        Ok(reader) => {
            let result = work(&reader).await;
            reader.shutdown().await;
            result
        }
        Err(error) => Err(error.into()),
    };
    runtime.shutdown().await;
    result
}

/// RocketMQ's response code for a key query that found no message.
const QUERY_NOT_FOUND: &str = "CODE: 208 ";

/// Messages of `topic` whose `KEYS` index holds `key` (the broker's key
/// index, as `mqadmin queryMsgByKey` and the console use it).
pub async fn query_by_key(
    producer: &mut DefaultMQProducer,
    topic: &str,
    key: &str,
    name_server: &str,
) -> Result<Vec<ReadMessage>, ReadError> {
    let failed = |cause: String| ReadError {
        topic: topic.to_string(),
        name_server: name_server.to_string(),
        cause,
    };
    // The client's own timeout for this call is minutes; bound it here.
    let query = producer.query_message(topic, key, 64, 0, u64::MAX / 2);
    let answer = tokio::time::timeout(Duration::from_secs(30), query)
        .await
        .map_err(|_| failed(format!("key query for `{key}`: no answer")))?;
    let found = match answer {
        Ok(found) => found,
        // The broker answers "nothing found" as an error with this code.
        Err(error) if failure_text(&error).contains(QUERY_NOT_FOUND) => return Ok(Vec::new()),
        Err(error) => {
            return Err(failed(format!(
                "key query for `{key}`: {}",
                failure_text(&error)
            )));
        }
    };
    Ok(found
        .message_list()
        .iter()
        .map(|m| to_read_message(m.queue_id(), m))
        .collect())
}

/// What the mapping needs of `message` to recover its Kafka record,
/// borrowed: user properties only, in no particular order.
pub fn stored_message(message: &MessageExt) -> StoredMessage<'_> {
    let props = message.properties();
    let mut properties = Vec::with_capacity(props.len());
    properties.extend(
        props
            .iter()
            .filter(|(name, _)| !mapping::is_system_property(name.as_str()))
            .map(|(n, v)| (n.as_str(), v.as_str())),
    );
    StoredMessage {
        body: message.message.body_slice(),
        keys: props.get("KEYS").map(|keys| keys.as_str()),
        properties,
    }
}

/// A message's UNIQ_KEY, what consumers call its msgId.
pub fn uniq_key(message: &MessageExt) -> Option<String> {
    message
        .properties()
        .get("UNIQ_KEY")
        .map(|id| id.to_string())
}

fn to_read_message(queue_id: i32, message: &MessageExt) -> ReadMessage {
    let props = message.properties();
    let get = |name: &str| {
        props
            .iter()
            .find(|(n, _)| n.as_str() == name)
            .map(|(_, v)| v.to_string())
    };
    let mut properties: Vec<(String, String)> = stored_message(message)
        .properties
        .into_iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect();
    properties.sort_unstable();
    ReadMessage {
        queue_id,
        queue_offset: message.queue_offset(),
        uniq_key: uniq_key(message),
        keys: get("KEYS"),
        tags: get("TAGS"),
        store_timestamp: message.store_timestamp(),
        body: message.body().map(|b| b.to_vec()).unwrap_or_default(),
        properties,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at_offsets(offsets: impl IntoIterator<Item = i64>) -> Vec<MessageExt> {
        offsets
            .into_iter()
            .map(|offset| {
                let mut message = MessageExt::default();
                message.set_queue_offset(offset);
                message
            })
            .collect()
    }

    #[test]
    fn a_pull_answer_counts_only_when_it_covers_its_range_without_gaps() {
        assert!(answers_exactly(&at_offsets(10..14), 10, 14));
        // Empty, short, gapped, or not moving on: asked again.
        assert!(!answers_exactly(&[], 10, 10));
        assert!(!answers_exactly(&[], 10, 14));
        assert!(!answers_exactly(&at_offsets(10..13), 10, 14));
        assert!(!answers_exactly(&at_offsets([10, 11, 13, 14]), 10, 14));
        assert!(!answers_exactly(&at_offsets(11..15), 10, 14));
    }
}
