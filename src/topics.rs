//! `create-topics`: creates the mapped topics that do not exist yet, on
//! either side, so a new deployment (or the demo) can start in one step.
//! Existing topics are never changed: a new queue count would re-route keys.

use std::time::{Duration, Instant};

use crate::config::BridgeConfig;
use crate::kafka_source::{self, KafkaAdminError};
use crate::rocketmq_sink::{self, RocketMqAdmin, RocketMqAdminError};

/// Which side to create topics on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Kafka,
    RocketMq,
}

/// What to create.
#[derive(Debug, Clone)]
pub struct CreateRequest {
    pub partitions: u32,
    pub queues: u32,
    /// RocketMQ cluster name, `DefaultCluster` on a stock broker.
    pub cluster: String,
    /// Both sides when `None`.
    pub only: Option<Side>,
    /// Dual-read consumer groups whose two ledger topics are created on Kafka.
    pub ledger_groups: Vec<String>,
    pub timeout: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum CreateTopicsError {
    #[error(transparent)]
    Kafka(#[from] KafkaAdminError),
    #[error(transparent)]
    RocketMq(#[from] RocketMqAdminError),
    #[error("{0}")]
    Resolve(String),
}

/// Creates every missing mapped topic; returns one line per topic.
pub async fn create_missing(
    config: &BridgeConfig,
    request: &CreateRequest,
) -> Result<Vec<String>, CreateTopicsError> {
    // Regex mappings name existing Kafka topics; their RocketMQ targets may be missing.
    let resolved = kafka_source::resolve_regex_mappings(config, request.timeout)
        .await
        .map_err(CreateTopicsError::Resolve)?;
    let config = &resolved;
    let mut lines = Vec::new();
    if request.only != Some(Side::RocketMq) {
        lines.extend(create_kafka(config, request).await?);
    }
    if request.only != Some(Side::Kafka) {
        lines.extend(create_rocketmq(config, request).await?);
    }
    Ok(lines)
}

async fn create_kafka(
    config: &BridgeConfig,
    request: &CreateRequest,
) -> Result<Vec<String>, CreateTopicsError> {
    // The mapped topics, and the dead-letter topics: a cluster that creates
    // no topic on a first write (auto.create.topics.enable=false, as in
    // production) would refuse every dead letter.
    let dead_letter = config.dead_letter_topics();
    let ledgers: Vec<String> = request
        .ledger_groups
        .iter()
        .flat_map(|group| {
            crate::dual_read::Side::BOTH.map(|side| crate::dual_read::ledger_topic(group, side))
        })
        .collect();
    let mut topics = config.kafka_topics_and_dead_letters();
    topics.extend(ledgers.iter().cloned());
    let existing = kafka_source::partition_counts(&config.kafka, &topics, request.timeout).await?;
    let mut lines = Vec::new();
    let mut created = Vec::new();
    for (topic, partitions) in existing {
        let note = if dead_letter.contains(&topic) {
            " (a dead-letter topic)"
        } else if ledgers.contains(&topic) {
            " (a dual-read ledger)"
        } else {
            ""
        };
        if let Some(partitions) = partitions {
            lines.push(format!(
                "kafka     {topic}: exists with {partitions} partitions, left as is{note}"
            ));
            continue;
        }
        let count = i32::try_from(request.partitions).unwrap_or(i32::MAX);
        kafka_source::create_topic(&config.kafka, &topic, count, request.timeout).await?;
        created.push(topic.clone());
        lines.push(format!(
            "kafka     {topic}: created with {} partitions{note}",
            request.partitions
        ));
    }
    wait_until_listed(config, &created, request.timeout).await?;
    Ok(lines)
}

/// Apache Kafka answers CreateTopics before every broker's metadata lists
/// the topic (seen: a `check` right after it found the topic missing for up
/// to 3 s), so `create-topics` returns once the metadata lists them all, or
/// at the deadline.
async fn wait_until_listed(
    config: &BridgeConfig,
    topics: &[String],
    deadline: Duration,
) -> Result<(), CreateTopicsError> {
    let until = Instant::now() + deadline;
    while !topics.is_empty() {
        let counts = kafka_source::partition_counts(&config.kafka, topics, deadline).await?;
        if counts.values().all(Option::is_some) || Instant::now() >= until {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

async fn create_rocketmq(
    config: &BridgeConfig,
    request: &CreateRequest,
) -> Result<Vec<String>, CreateTopicsError> {
    let work = async |admin: &RocketMqAdmin| create_with(admin, config, request).await;
    Ok(rocketmq_sink::with_admin(&config.rocketmq, request.timeout, work).await?)
}

async fn create_with(
    admin: &RocketMqAdmin,
    config: &BridgeConfig,
    request: &CreateRequest,
) -> Result<Vec<String>, RocketMqAdminError> {
    // The mapped topics, and the bridge's own fence topic
    // (`rocketmq_sink::fence`), for which one queue per broker is enough.
    let fence = &config.rocketmq.fence_topic;
    let mut topics: Vec<String> = config.rocketmq_topics();
    topics.push(fence.clone());
    let mut lines = Vec::new();
    for (topic, existing) in admin.queue_counts(&topics).await? {
        let (wanted, note) = if topic == *fence {
            (1, " (the bridge's fence topic)")
        } else {
            (request.queues, "")
        };
        let line = match existing {
            Some(queues) => format!(
                "rocketmq  {topic}: exists with {}, left as is{note}",
                queue_count(queues)
            ),
            None => {
                admin.create_topic(&topic, wanted, &request.cluster).await?;
                format!(
                    "rocketmq  {topic}: created with {} on cluster {}{note}",
                    queue_count(wanted as usize),
                    request.cluster
                )
            }
        };
        lines.push(line);
    }
    Ok(lines)
}

fn queue_count(queues: usize) -> String {
    if queues == 1 {
        "1 queue".to_string()
    } else {
        format!("{queues} queues")
    }
}
