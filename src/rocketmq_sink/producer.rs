//! The RocketMQ producer the bridge sends with, and the queue list of each
//! target topic. Sends always name their queue; the client never picks one.

use std::sync::Arc;
use std::time::Duration;

use rocketmq_client_rust::{
    AclClientRPCHook, ClientRuntime, DefaultMQProducer, SessionCredentials,
};
use rocketmq_model::message::MessageQueue;

use super::client::error_text;
use crate::config::RocketMqConfig;

/// The producer could not start or could not see a topic.
#[derive(Debug, thiserror::Error)]
pub enum ProducerError {
    #[error("cannot start the RocketMQ producer (name server {name_server}): {cause}")]
    Start { name_server: String, cause: String },
    #[error(
        "RocketMQ topic `{topic}` has no writable queues at name server {name_server}: create it \
         (kafka-rocketmq-bridge create-topics) or check its permissions ({cause})"
    )]
    NoQueues {
        topic: String,
        name_server: String,
        cause: String,
    },
}

/// Starts a producer for the configured cluster. Its own retries are off:
/// the queue senders retry, on the same queue, in order.
pub async fn start_producer(
    runtime: Arc<ClientRuntime>,
    config: &RocketMqConfig,
) -> Result<DefaultMQProducer, ProducerError> {
    let mut builder = DefaultMQProducer::builder(runtime)
        .producer_group(config.producer_group.as_str())
        .name_server_addr(config.name_server.as_str())
        .retry_times_when_send_failed(0)
        .retry_times_when_send_async_failed(0)
        .retry_another_broker_when_not_store_ok(false)
        .max_message_size(u32::try_from(config.max_message_size.0).unwrap_or(u32::MAX))
        .send_msg_timeout(u32::try_from(config.send_timeout.0.as_millis()).unwrap_or(u32::MAX))
        // Compression would change the stored body; the copy must be byte-exact.
        .compress_msg_body_over_howmuch(u32::MAX);
    if let (Some(access), Some(secret)) = (&config.access_key, &config.secret_key) {
        let credentials = SessionCredentials::with_keys(access.expose(), secret.expose());
        builder = builder.rpc_hook(Arc::new(AclClientRPCHook::new(credentials)));
    }
    let mut producer = builder.build();
    producer.start().await.map_err(|e| ProducerError::Start {
        name_server: config.name_server.clone(),
        cause: error_text(&e),
    })?;
    Ok(producer)
}

/// The writable queues of `topic`, sorted by broker name and queue id: the
/// order RocketMQ's own queue selectors index into.
pub async fn fetch_queues(
    producer: &mut DefaultMQProducer,
    topic: &str,
    name_server: &str,
    deadline: Duration,
) -> Result<Vec<MessageQueue>, ProducerError> {
    let failed = |cause: String| ProducerError::NoQueues {
        topic: topic.to_string(),
        name_server: name_server.to_string(),
        cause,
    };
    let queues = tokio::time::timeout(deadline, producer.fetch_publish_message_queues(topic))
        .await
        .map_err(|_| failed(format!("no answer within {}s", deadline.as_secs())))?
        .map_err(|e| failed(error_text(&e)))?;
    let mut queues: Vec<MessageQueue> = queues;
    queues.sort_by(|a, b| {
        (a.broker_name().as_str(), a.queue_id()).cmp(&(b.broker_name().as_str(), b.queue_id()))
    });
    if queues.is_empty() {
        return Err(failed("the route lists no queues".to_string()));
    }
    Ok(queues)
}
