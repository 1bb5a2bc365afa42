//! Kafka metadata and topic creation with a deadline, for `check` and
//! `create-topics`, and a consumer group's committed offsets written from
//! outside the group, for `translate-offsets --to-kafka --apply`.

use std::collections::BTreeMap;
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, ResourceSpecifier, TopicReplication};
use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::{Offset, TopicPartitionList};

use crate::config::{BridgeConfig, KafkaConfig, expand_regex_mappings};

/// A Kafka call that failed; the text names the cluster and what to check.
#[derive(Debug, thiserror::Error)]
pub enum KafkaAdminError {
    #[error(
        "cannot reach Kafka at {bootstrap} within {seconds}s ({cause}): check kafka.bootstrap_servers, \
         the security settings in kafka.properties, and that the brokers are up"
    )]
    Unreachable {
        bootstrap: String,
        seconds: u64,
        cause: String,
    },
    #[error("Kafka at {bootstrap} refused to create topic `{topic}`: {cause}")]
    CreateTopic {
        bootstrap: String,
        topic: String,
        cause: String,
    },
    #[error(
        "Kafka at {bootstrap} refused the credentials ({cause}): check kafka.properties \
         security.protocol, sasl.mechanism, sasl.username and sasl.password (or their *_file keys)"
    )]
    Authentication { bootstrap: String, cause: String },
    #[error(
        "Kafka at {bootstrap} cannot describe topic `{topic}`: {cause}; check that it exists (create-topics) and that the bridge may describe its config"
    )]
    DescribeTopic {
        bootstrap: String,
        topic: String,
        cause: String,
    },
    #[error("invalid Kafka client settings: {0}")]
    Settings(String),
    #[error(
        "Kafka at {bootstrap} refused to set consumer group `{group}`'s offsets because the group has \
         active members ({cause}): stop every consumer of group `{group}` on Kafka, wait until it has \
         no members (kafka-consumer-groups.sh --describe --group {group} --members), then run this again"
    )]
    GroupActive {
        bootstrap: String,
        group: String,
        cause: String,
    },
    #[error(
        "Kafka at {bootstrap} did not store consumer group `{group}`'s offsets: {cause}; check \
         kafka.bootstrap_servers, the group's ACLs, and that the topics exist"
    )]
    GroupCommit {
        bootstrap: String,
        group: String,
        cause: String,
    },
}

/// A client context that keeps librdkafka quiet, but remembers an
/// authentication failure: librdkafka reports it only through this
/// callback, while the call itself just times out. Admin commands return
/// their failure with context; librdkafka would otherwise log the same
/// connection error dozens of times.
#[derive(Default)]
struct QuietContext {
    authentication: std::sync::Mutex<Option<String>>,
}

impl QuietContext {
    /// The call failed with `cause`; an authentication failure seen meanwhile
    /// is what the user must fix, so it is named instead.
    fn failure(&self, kafka: &KafkaConfig, deadline: Duration, cause: String) -> KafkaAdminError {
        let authentication = self
            .authentication
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        match authentication {
            Some(reason) => KafkaAdminError::Authentication {
                bootstrap: kafka.bootstrap_servers.clone(),
                cause: reason,
            },
            None => KafkaAdminError::Unreachable {
                bootstrap: kafka.bootstrap_servers.clone(),
                seconds: deadline.as_secs().max(1),
                cause,
            },
        }
    }
}

impl ClientContext for QuietContext {
    fn log(&self, _level: RDKafkaLogLevel, _fac: &str, _log_message: &str) {}

    fn error(&self, error: KafkaError, reason: &str) {
        if super::is_authentication_failure(&error) {
            let mut seen = self
                .authentication
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            seen.get_or_insert_with(|| super::authentication_reason(reason));
        }
    }
}

impl ConsumerContext for QuietContext {}

/// Partition count of each topic in `topics`, `None` for a topic that does
/// not exist. Asks for all topics so that no broker auto-creates one.
pub async fn partition_counts(
    kafka: &KafkaConfig,
    topics: &[String],
    deadline: Duration,
) -> Result<BTreeMap<String, Option<usize>>, KafkaAdminError> {
    let found = topic_partitions(kafka, deadline).await?;
    Ok(topics
        .iter()
        .map(|t| (t.clone(), found.get(t).copied()))
        .collect())
}

/// Every healthy topic of the cluster with its partition count, from one
/// all-topics metadata request (asking for all topics auto-creates none).
async fn topic_partitions(
    kafka: &KafkaConfig,
    deadline: Duration,
) -> Result<BTreeMap<String, usize>, KafkaAdminError> {
    let consumer: BaseConsumer<QuietContext> = super::quick_client_config(kafka, deadline)
        .create_with_context(QuietContext::default())
        .map_err(|e| KafkaAdminError::Settings(e.to_string()))?;
    let consumer = std::sync::Arc::new(consumer);
    let fetching = std::sync::Arc::clone(&consumer);
    let metadata = tokio::task::spawn_blocking(move || fetching.fetch_metadata(None, deadline))
        .await
        .map_err(|e| e.to_string())
        .and_then(|r| r.map_err(|e| e.to_string()))
        .map_err(|cause| {
            // Error events wait in the client's queue until it is polled;
            // this delivers any authentication failure to the context.
            let _ = consumer.poll(Duration::from_millis(100));
            consumer.context().failure(kafka, deadline, cause)
        })?;
    Ok(metadata
        .topics()
        .iter()
        .filter(|t| t.error().is_none())
        .map(|t| (t.name().to_string(), t.partitions().len()))
        .collect())
}

/// Creates `topic` with `partitions` partitions; an existing topic is fine.
pub async fn create_topic(
    kafka: &KafkaConfig,
    topic: &str,
    partitions: i32,
    deadline: Duration,
) -> Result<(), KafkaAdminError> {
    let admin: AdminClient<QuietContext> = super::quick_client_config(kafka, deadline)
        .create_with_context(QuietContext::default())
        .map_err(|e| KafkaAdminError::Settings(e.to_string()))?;
    // -1: the cluster's default.replication.factor (KIP-464, brokers 2.4 and newer).
    let new_topic = NewTopic::new(topic, partitions, TopicReplication::Fixed(-1));
    let options = AdminOptions::new()
        .operation_timeout(Some(deadline))
        .request_timeout(Some(deadline));
    let failed = |cause: String| KafkaAdminError::CreateTopic {
        bootstrap: kafka.bootstrap_servers.clone(),
        topic: topic.to_string(),
        cause,
    };
    let results = admin
        .create_topics([&new_topic], &options)
        .await
        .map_err(|e| failed(e.to_string()))?;
    for result in results {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((_, code)) => return Err(failed(code.to_string())),
        }
    }
    Ok(())
}

/// Each topic's `max.message.bytes`: the largest record batch its brokers
/// take, which bounds what the way back may write to it.
pub async fn max_message_bytes(
    kafka: &KafkaConfig,
    topics: &[String],
    deadline: Duration,
) -> Result<BTreeMap<String, usize>, KafkaAdminError> {
    let context = QuietContext::default();
    let admin: AdminClient<QuietContext> = super::quick_client_config(kafka, deadline)
        .create_with_context(context)
        .map_err(|e| KafkaAdminError::Settings(e.to_string()))?;
    let options = AdminOptions::new().request_timeout(Some(deadline));
    let specifiers: Vec<ResourceSpecifier<'_>> = topics
        .iter()
        .map(|topic| ResourceSpecifier::Topic(topic))
        .collect();
    let results = admin
        .describe_configs(&specifiers, &options)
        .await
        .map_err(|e| {
            admin
                .inner()
                .context()
                .failure(kafka, deadline, e.to_string())
        })?;
    let mut found = BTreeMap::new();
    for (topic, result) in topics.iter().zip(results) {
        let unreadable = |cause: String| KafkaAdminError::DescribeTopic {
            bootstrap: kafka.bootstrap_servers.clone(),
            topic: topic.clone(),
            cause,
        };
        let resource = result.map_err(|code| unreadable(code.to_string()))?;
        let value = resource
            .get("max.message.bytes")
            .and_then(|entry| entry.value.as_deref())
            .ok_or_else(|| unreadable("no max.message.bytes in its config".to_string()))?;
        let bytes = value
            .parse()
            .map_err(|_| unreadable(format!("max.message.bytes is `{value}`, not a number")))?;
        found.insert(topic.clone(), bytes);
    }
    Ok(found)
}

/// Every topic name the cluster reports.
pub async fn list_topics(
    kafka: &KafkaConfig,
    deadline: Duration,
) -> Result<Vec<String>, KafkaAdminError> {
    Ok(topic_partitions(kafka, deadline)
        .await?
        .into_keys()
        .collect())
}

/// The config with every `kafka_topic_regex` mapping expanded against the
/// cluster's current topics. Without regex mappings, Kafka is not asked.
pub async fn resolve_regex_mappings(
    config: &BridgeConfig,
    deadline: Duration,
) -> Result<BridgeConfig, String> {
    if config
        .mappings
        .iter()
        .all(|m| m.kafka_topic_regex.is_none())
    {
        return Ok(config.clone());
    }
    let topics = list_topics(&config.kafka, deadline)
        .await
        .map_err(|e| e.to_string())?;
    expand_regex_mappings(config, &topics).map_err(|problems| problems.join("\n"))
}

/// Kafka's answers to a commit from outside a group that has members: the
/// group is not empty (classic protocol: unknown member, generation or a
/// rebalance; consumer protocol: member epochs).
fn group_is_active(code: RDKafkaErrorCode) -> bool {
    matches!(
        code,
        RDKafkaErrorCode::UnknownMemberId
            | RDKafkaErrorCode::IllegalGeneration
            | RDKafkaErrorCode::RebalanceInProgress
            | RDKafkaErrorCode::StaleMemberEpoch
            | RDKafkaErrorCode::FencedMemberEpoch
            | RDKafkaErrorCode::NonEmptyGroup
    )
}

/// Stores `offsets` (topic, partition, next offset to read) as consumer
/// group `group`'s committed offsets, without joining the group, and reads
/// them back. Kafka takes this only while the group has no members.
/// Blocking: run it off the async workers.
pub fn commit_group_offsets(
    kafka: &KafkaConfig,
    group: &str,
    offsets: &[(String, i32, i64)],
    deadline: Duration,
) -> Result<(), KafkaAdminError> {
    let failed = |cause: String| KafkaAdminError::GroupCommit {
        bootstrap: kafka.bootstrap_servers.clone(),
        group: group.to_string(),
        cause,
    };
    let context = QuietContext::default();
    let mut config = super::quick_client_config(kafka, deadline);
    config.set("group.id", group);
    let consumer: BaseConsumer<QuietContext> = config
        .create_with_context(context)
        .map_err(|e| KafkaAdminError::Settings(e.to_string()))?;
    let mut list = TopicPartitionList::new();
    for (topic, partition, offset) in offsets {
        list.add_partition_offset(topic, *partition, Offset::Offset(*offset))
            .map_err(|e| failed(format!("{topic}/{partition}: {e}")))?;
    }
    let refused = |error: KafkaError| match error.rdkafka_error_code() {
        Some(code) if group_is_active(code) => KafkaAdminError::GroupActive {
            bootstrap: kafka.bootstrap_servers.clone(),
            group: group.to_string(),
            cause: error.to_string(),
        },
        _ => consumer
            .context()
            .failure(kafka, deadline, error.to_string()),
    };
    consumer.commit(&list, CommitMode::Sync).map_err(refused)?;
    // A partition's own error may not fail the whole commit: read back.
    let stored = consumer
        .committed_offsets(list.clone(), deadline)
        .map_err(refused)?;
    for element in list.elements() {
        let found = stored
            .find_partition(element.topic(), element.partition())
            .map(|e| e.offset());
        if found != Some(element.offset()) {
            return Err(failed(format!(
                "{}/{} reads back as {found:?} after committing {:?}",
                element.topic(),
                element.partition(),
                element.offset()
            )));
        }
    }
    Ok(())
}
