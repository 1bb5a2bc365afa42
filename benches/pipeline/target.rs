//! Where a copy lands, and how many records a consumer can read there: a
//! RocketMQ topic's consume queues (the forward copy) or a Kafka topic's
//! partitions below their high watermarks (the way back). The end
//! condition every throughput figure is timed by.

use std::time::Duration;

use anyhow::{Context, Result};
use rdkafka::consumer::Consumer;

use super::Bench;

/// Where a copy lands.
#[derive(Clone, Copy)]
pub enum Target<'a> {
    /// A RocketMQ topic: the forward copy's target.
    RocketMq(&'a str),
    /// A Kafka topic: the way back's.
    Kafka(&'a str),
}

impl std::fmt::Display for Target<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::RocketMq(topic) => write!(f, "RocketMQ topic {topic}"),
            Target::Kafka(topic) => write!(f, "Kafka topic {topic}"),
        }
    }
}

impl Bench {
    /// Records a consumer can read in `target`: messages in its queues, or
    /// records below its partitions' high watermarks.
    pub async fn count_in(&self, target: Target<'_>) -> Result<i64> {
        match target {
            Target::RocketMq(topic) => self.count(topic).await,
            Target::Kafka(topic) => tokio::task::block_in_place(|| {
                let timeout = Duration::from_secs(10);
                let metadata = self
                    .watermarks
                    .fetch_metadata(Some(topic), timeout)
                    .with_context(|| format!("metadata of Kafka topic {topic}"))?;
                let partitions = metadata
                    .topics()
                    .first()
                    .map_or(0, |t| t.partitions().len() as i32);
                let mut total = 0;
                for partition in 0..partitions {
                    let (low, high) = self
                        .watermarks
                        .fetch_watermarks(topic, partition, timeout)
                        .with_context(|| {
                            format!("watermarks of Kafka topic {topic} [{partition}]")
                        })?;
                    total += high - low;
                }
                Ok(total)
            }),
        }
    }
}
