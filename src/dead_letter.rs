//! Dead letters: records a mapping's policy sends back to Kafka instead of
//! RocketMQ, with the reason and their origin in headers. Their offsets
//! count as done only once Kafka acknowledged the dead letter.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use tokio::task::JoinSet;

use crate::checkpoint::{Checkpoints, PartitionId};
use crate::config::KafkaConfig;
use crate::kafka_source;
use crate::mapping::{Rejection, SourceRecord};

/// Header carrying why the record was not copied (`empty_value`, ...).
pub const REASON_HEADER: &str = "bridge.dead_letter.reason";
/// Headers carrying where the record came from.
pub const ORIGIN_TOPIC_HEADER: &str = "bridge.source.topic";
pub const ORIGIN_PARTITION_HEADER: &str = "bridge.source.partition";
pub const ORIGIN_OFFSET_HEADER: &str = "bridge.source.offset";

/// Writes dead letters in the background and acknowledges them when stored.
pub struct DeadLetterWriter {
    producer: FutureProducer,
    checkpoints: Arc<Checkpoints>,
    pending: Mutex<JoinSet<()>>,
}

impl DeadLetterWriter {
    pub fn new(kafka: &KafkaConfig, checkpoints: Arc<Checkpoints>) -> Result<Self, String> {
        let mut config = kafka_source::for_producer(kafka_source::client_config(kafka));
        config.set("enable.idempotence", "true");
        let producer = config.create().map_err(|e| {
            format!(
                "cannot create the dead-letter producer for {}: {e}",
                kafka.bootstrap_servers
            )
        })?;
        Ok(DeadLetterWriter {
            producer,
            checkpoints,
            pending: Mutex::new(JoinSet::new()),
        })
    }

    /// Sends `record` to `topic`, retrying until Kafka stores it.
    pub fn write(
        &self,
        topic: String,
        record: SourceRecord,
        origin: PartitionId,
        rejection: Rejection,
    ) {
        let producer = self.producer.clone();
        let checkpoints = Arc::clone(&self.checkpoints);
        let task = async move {
            let mut backoff = Duration::from_millis(200);
            loop {
                match send(&producer, &topic, &record, rejection).await {
                    Ok(()) => break,
                    Err(error) => {
                        tracing::warn!(
                            dead_letter_topic = %topic, record = %format!("{origin}@{}", record.offset), %error,
                            "dead letter not stored yet; retrying, checkpoint held"
                        );
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(Duration::from_secs(10));
                    }
                }
            }
            checkpoints.acknowledge(&origin, [record.offset]);
        };
        self.pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .spawn(task);
    }

    /// Waits for every dead letter written so far.
    pub async fn finish(self) {
        let mut pending = self.pending.into_inner().unwrap_or_else(|p| p.into_inner());
        while pending.join_next().await.is_some() {}
    }
}

async fn send(
    producer: &FutureProducer,
    topic: &str,
    record: &SourceRecord,
    rejection: Rejection,
) -> Result<(), String> {
    let partition = record.partition.to_string();
    let offset = record.offset.to_string();
    let mut headers = OwnedHeaders::new();
    for (name, value) in record.headers() {
        headers = headers.insert(Header { key: name, value });
    }
    let headers = headers
        .insert(Header {
            key: REASON_HEADER,
            value: Some(rejection.reason()),
        })
        .insert(Header {
            key: ORIGIN_TOPIC_HEADER,
            value: Some(&*record.topic),
        })
        .insert(Header {
            key: ORIGIN_PARTITION_HEADER,
            value: Some(partition.as_str()),
        })
        .insert(Header {
            key: ORIGIN_OFFSET_HEADER,
            value: Some(offset.as_str()),
        });
    let mut message: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(topic).headers(headers);
    if let Some(key) = record.key() {
        message = message.key(key);
    }
    if let Some(value) = record.value() {
        message = message.payload(value);
    }
    if let Some((timestamp, _)) = record.timestamp {
        message = message.timestamp(timestamp);
    }
    producer
        .send(message, Duration::from_secs(30))
        .await
        .map(|_| ())
        .map_err(|(error, _)| error.to_string())
}
