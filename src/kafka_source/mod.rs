//! The Kafka source: everything the bridge asks of Kafka, through rdkafka.
//!
//! This module owns the librdkafka client settings (auto-commit is always
//! off: only the checkpoint module commits), and the metadata and admin
//! calls used by `check` and `create-topics`.

mod admin;
pub mod consumer;
pub mod start_position;

use std::time::Duration;

use rdkafka::ClientConfig;

use crate::config::KafkaConfig;

pub use admin::{
    KafkaAdminError, create_topic, list_topics, partition_counts, resolve_regex_mappings,
};

/// librdkafka settings for any client of the configured cluster. User
/// properties go first so the bridge's own settings win; the config loader
/// already refuses user values for those keys.
pub fn client_config(kafka: &KafkaConfig) -> ClientConfig {
    let mut config = ClientConfig::new();
    for (name, value) in &kafka.properties {
        config.set(name, value.as_librdkafka_value());
    }
    config
        .set("bootstrap.servers", &kafka.bootstrap_servers)
        .set("group.id", &kafka.group_id)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("client.id", "kafka-rocketmq-bridge");
    config
}

/// `client_config` with socket and metadata timeouts capped, for commands
/// that must answer quickly when a cluster is down.
pub fn quick_client_config(kafka: &KafkaConfig, deadline: Duration) -> ClientConfig {
    let mut config = client_config(kafka);
    let millis = deadline.as_millis().max(1).to_string();
    config.set("socket.timeout.ms", &millis);
    config
}
