//! The topic-mapping configuration: its YAML schema, loading with `${VAR}`
//! substitution, and validation that reports every problem at once with
//! file, line and field.
//!
//! Everything else in the bridge receives a [`BridgeConfig`] that already
//! passed validation, so no other module re-checks user input.

mod env_subst;
mod load;
mod locate;
mod secret;
mod validate;

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;

pub use load::{load_file, load_str};
pub use secret::Secret;
pub use validate::{is_legal_rocketmq_topic, suggest_rocketmq_topic};

/// The whole configuration file.
#[derive(Debug, Clone, Deserialize)]
pub struct BridgeConfig {
    pub kafka: KafkaConfig,
    pub rocketmq: RocketMqConfig,
    pub mappings: Vec<MappingConfig>,
    #[serde(default)]
    pub metrics: MetricsConfig,
}

/// Where to consume from.
#[derive(Debug, Clone, Deserialize)]
pub struct KafkaConfig {
    /// Comma-separated `host:port` list, as librdkafka takes it.
    pub bootstrap_servers: String,
    #[serde(default = "default_group_id")]
    pub group_id: String,
    /// Passed verbatim to librdkafka (security.protocol, sasl.*, ssl.*, ...).
    #[serde(default)]
    pub properties: BTreeMap<String, PropertyValue>,
}

/// Where to produce to.
#[derive(Debug, Clone, Deserialize)]
pub struct RocketMqConfig {
    /// `host:port`, or several separated by `;`.
    pub name_server: String,
    #[serde(default = "default_producer_group")]
    pub producer_group: String,
    /// RocketMQ ACL credentials; both or neither.
    #[serde(default)]
    pub access_key: Option<Secret>,
    #[serde(default)]
    pub secret_key: Option<Secret>,
}

/// One Kafka topic copied into one RocketMQ topic.
#[derive(Debug, Clone, Deserialize)]
pub struct MappingConfig {
    /// Label used in logs and metrics; defaults to the Kafka topic.
    #[serde(default)]
    pub name: Option<String>,
    pub kafka_topic: String,
    pub rocketmq_topic: String,
    #[serde(default)]
    pub ordering: Ordering,
}

impl MappingConfig {
    /// The label this mapping goes by in logs, metrics and `--mapping`.
    pub fn label(&self) -> &str {
        self.name.as_deref().unwrap_or(&self.kafka_topic)
    }
}

/// How records are spread over the target topic's queues.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Ordering {
    /// Kafka partition p goes to queue `p mod Q`: per-partition and per-key order.
    #[default]
    Partition,
    /// Queue = Java `String.hashCode(key)` mod Q, like RocketMQ's `SelectMessageQueueByHash`.
    KeyHash,
    /// No order promise; spread for throughput.
    #[serde(rename = "none")]
    Unordered,
}

impl fmt::Display for Ordering {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Ordering::Partition => "partition",
            Ordering::KeyHash => "key_hash",
            Ordering::Unordered => "none",
        })
    }
}

/// Prometheus endpoint settings.
#[derive(Debug, Clone, Deserialize)]
pub struct MetricsConfig {
    #[serde(default = "default_listen")]
    pub listen: ListenAddr,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig {
            listen: default_listen(),
        }
    }
}

/// A `host:port` socket address to listen on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListenAddr(pub SocketAddr);

impl<'de> Deserialize<'de> for ListenAddr {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map(ListenAddr).map_err(|_| {
            serde::de::Error::custom(format!(
                "`{text}` is not a listen address: write IP:port, for example 0.0.0.0:9464"
            ))
        })
    }
}

/// A librdkafka property value. YAML numbers and booleans are accepted and
/// passed on as their text, since librdkafka takes every value as a string.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum PropertyValue {
    Text(String),
    Integer(i64),
    Float(f64),
    Bool(bool),
}

impl PropertyValue {
    pub fn as_librdkafka_value(&self) -> String {
        match self {
            PropertyValue::Text(text) => text.clone(),
            PropertyValue::Integer(n) => n.to_string(),
            PropertyValue::Float(x) => x.to_string(),
            PropertyValue::Bool(b) => b.to_string(),
        }
    }
}

/// Property names whose values are secrets and must never be shown.
pub fn is_secret_property(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    [
        "password",
        "secret",
        "sasl.jaas.config",
        "ssl.key.pem",
        "token",
    ]
    .iter()
    .any(|marker| name.contains(marker))
}

fn default_group_id() -> String {
    "kafka-rocketmq-bridge".to_string()
}

fn default_producer_group() -> String {
    "kafka-rocketmq-bridge".to_string()
}

fn default_listen() -> ListenAddr {
    ListenAddr(SocketAddr::from(([0, 0, 0, 0], 9464)))
}

/// One problem in a config file, located as precisely as the file allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblem {
    pub line: Option<usize>,
    pub column: Option<usize>,
    /// Dotted path of the field, e.g. `mappings[0].rocketmq_topic`; empty for the whole file.
    pub field: String,
    pub message: String,
}

/// Why a config could not be loaded: every problem found, not just the first.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {}: {source}", file.display())]
    Read {
        file: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}", format_problems(file, problems))]
    Invalid {
        file: String,
        problems: Vec<ConfigProblem>,
    },
}

impl ConfigError {
    /// The problems found, empty when the file could not be read at all.
    pub fn problems(&self) -> &[ConfigProblem] {
        match self {
            ConfigError::Read { .. } => &[],
            ConfigError::Invalid { problems, .. } => problems,
        }
    }
}

fn format_problems(file: &str, problems: &[ConfigProblem]) -> String {
    let plural = if problems.len() == 1 { "" } else { "s" };
    let mut out = format!(
        "{file}: {} problem{plural} in the configuration",
        problems.len()
    );
    for problem in problems {
        out.push_str("\n  ");
        out.push_str(&format_problem(file, problem));
    }
    out
}

fn format_problem(file: &str, problem: &ConfigProblem) -> String {
    let location = match (problem.line, problem.column) {
        (Some(line), Some(column)) => format!("{file}:{line}:{column}"),
        (Some(line), None) => format!("{file}:{line}"),
        _ => file.to_string(),
    };
    if problem.field.is_empty() {
        format!("{location}: {}", problem.message)
    } else {
        format!("{location}: {}: {}", problem.field, problem.message)
    }
}
