//! Write fences: one small message to the bridge's own fence topic on a
//! broker, waited for until it is readable, before the bridge decides from a
//! queue's tail what is already stored (after a failed send, and when a
//! restarted instance looks for copies past the committed offsets).
//!
//! Why: a queue's tail (its max offset) is read from the consume queue, and
//! an Apache RocketMQ broker fills the consume queues from its commit log
//! asynchronously, in commit-log order (`ReputMessageService`, every 1 ms),
//! after it has stored a message. A send whose client gave up (a timeout, a
//! cut connection, a killed process) may be stored and not yet dispatched
//! when the bridge looks, and its records would be sent again. Once the
//! fence, written after it, is readable, so is everything stored before it.
//! (The stand-in broker used before, rocketmq-rust 1.0, left such a request
//! unreadable until the next write; there the fence was that next write.)
//! Nobody consumes the fence topic.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering as AtomicOrdering};
use std::time::{Duration, Instant};

use rocketmq_client_rust::DefaultMQProducer;
use rocketmq_model::common::message::message_single::Message;

use super::failure_text;
use crate::rocketmq_reader::{ReadError, TopicReader};

/// How long a fence may take to become readable once the broker took it.
const READABLE_WITHIN: Duration = Duration::from_secs(10);
const POLL_EVERY: Duration = Duration::from_millis(20);

pub struct Fence {
    producer: Arc<DefaultMQProducer>,
    topic: String,
    send_timeout: Duration,
    /// Whether the missing fence topic was logged already (once per process).
    missing_reported: AtomicBool,
}

impl Fence {
    pub fn new(producer: Arc<DefaultMQProducer>, topic: &str, send_timeout: Duration) -> Self {
        Fence {
            producer,
            topic: topic.to_string(),
            send_timeout,
            missing_reported: AtomicBool::new(false),
        }
    }

    /// Writes a fence on `broker` and returns once `reader` can read it.
    /// Without a fence topic on that broker it logs so once and returns at
    /// once: the read that follows is then only as good as it was before.
    pub async fn pass(&self, reader: &TopicReader, broker: &str) -> Result<(), ReadError> {
        let queues = match reader.queues(&self.topic).await {
            Ok(queues) => queues,
            Err(error) if topic_missing(&error) => {
                self.report_missing(broker);
                return Ok(());
            }
            Err(error) => return Err(error),
        };
        let Some(queue) = queues.into_iter().find(|q| q.broker_name() == broker) else {
            self.report_missing(broker);
            return Ok(());
        };
        let message = Message::builder()
            .topic(self.topic.as_str())
            .body(b"fence".to_vec())
            .build()
            .map_err(|e| reader.failed(&self.topic, format!("fence message: {e}")))?;
        let millis = self.send_timeout.as_millis() as u64;
        let sent = self
            .producer
            .send_to_queue_with_timeout(message, queue.clone(), millis)
            .await
            .map_err(|e| reader.failed(&self.topic, format!("fence: {}", failure_text(&e))))?
            .ok_or_else(|| reader.failed(&self.topic, "fence: no send result".into()))?;
        let deadline = Instant::now() + READABLE_WITHIN;
        loop {
            let (_, end) = reader.offsets(&queue).await?;
            if end > sent.queue_offset as i64 {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(reader.failed(
                    &self.topic,
                    format!(
                        "fence at offset {} of broker {broker} not readable within {}s",
                        sent.queue_offset,
                        READABLE_WITHIN.as_secs()
                    ),
                ));
            }
            tokio::time::sleep(POLL_EVERY).await;
        }
    }

    fn report_missing(&self, broker: &str) {
        if !self.missing_reported.swap(true, AtomicOrdering::Relaxed) {
            tracing::warn!(
                fence_topic = %self.topic, broker,
                "the fence topic has no queue on this broker: run `create-topics`. Without it, a copy \
                 stored by a send that failed (or by a killed instance) may not be readable yet when \
                 the bridge checks, and be sent again"
            );
        }
    }
}

impl std::fmt::Debug for Fence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fence").field("topic", &self.topic).finish()
    }
}

/// The name server has no route for the topic: it was never created. (Not
/// any error that mentions a route: "No route to host" is a network fault.)
fn topic_missing(error: &ReadError) -> bool {
    let cause = error.cause.to_ascii_lowercase();
    [
        "no route data found for topic",
        // Also the catalog's `route.topic.not_found`.
        "topic.not_found",
        "topic_not_exist",
    ]
    .iter()
    .any(|code| cause.contains(code))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_error(cause: &str) -> ReadError {
        ReadError {
            topic: "kafka_rocketmq_bridge_fence".into(),
            name_server: "127.0.0.1:9876".into(),
            cause: cause.into(),
        }
    }

    #[test]
    fn only_a_missing_route_counts_as_a_missing_fence_topic() {
        // What rocketmq-client-rust 1.0.0 says when a topic has no route.
        assert!(topic_missing(&read_error(
            "core.argument.invalid: Argument is invalid: No route data found for topic: \
             kafka_rocketmq_bridge_fence"
        )));
        assert!(topic_missing(&read_error(
            "route.topic.not_found: Topic route was not found"
        )));
        assert!(topic_missing(&read_error(
            "Broker operation failed (broker response code 17 TOPIC_NOT_EXIST)"
        )));
        assert!(!topic_missing(&read_error(
            "transport.connection.failed: No route to host (os error 113)"
        )));
        assert!(!topic_missing(&read_error("no answer")));
    }
}
