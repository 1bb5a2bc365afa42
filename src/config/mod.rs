//! The topic-mapping configuration: its YAML schema, loading with `${VAR}`
//! substitution, and validation that reports every problem at once with
//! file, line and field.
//!
//! Everything else in the bridge receives a [`BridgeConfig`] that already
//! passed validation, so no other module re-checks user input.

mod daily_verify;
mod env_subst;
mod load;
mod locate;
mod regex_mappings;
mod reload;
mod secret;
mod secret_files;
mod validate;
mod values;

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

pub use daily_verify::{DEFAULT_MAX_SCAN_RATE, DailyVerify, TimeOfDay, TimeZone};
pub use load::{load_file, load_str};
pub use regex_mappings::{TOPIC_PLACEHOLDER, expand_regex_mappings};
pub use reload::{LiveLimits, reload_limits};
pub use secret::Secret;
pub use validate::{is_legal_rocketmq_topic, suggest_rocketmq_topic};
use values::ScalarText;
pub use values::{ByteSize, HumanDuration, ListenAddr, PropertyValue};

/// The whole configuration file.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct BridgeConfig {
    pub kafka: KafkaConfig,
    pub rocketmq: RocketMqConfig,
    pub mappings: Vec<MappingConfig>,
    #[serde(default)]
    pub metrics: MetricsConfig,
    #[serde(default)]
    pub bridge: BridgeSettings,
}

impl BridgeConfig {
    /// The config with its `kafka_to_rocketmq` mappings only, and the
    /// labels of the others: for the tools that do not cover the way back
    /// (`compare-results`, `translate-offsets` without `--to-kafka`, and
    /// `cutover-check`'s results conditions).
    pub fn forward_part(&self) -> (BridgeConfig, Vec<String>) {
        let (forward, back): (Vec<MappingConfig>, Vec<MappingConfig>) = self
            .mappings
            .iter()
            .cloned()
            .partition(|m| m.direction == Direction::KafkaToRocketmq);
        let labels = back.iter().map(|m| m.label().to_string()).collect();
        let config = BridgeConfig {
            mappings: forward,
            ..self.clone()
        };
        (config, labels)
    }

    /// The Kafka topic of every mapping, in mapping order.
    pub fn kafka_topics(&self) -> Vec<String> {
        self.mappings
            .iter()
            .map(|m| m.kafka_topic.clone())
            .collect()
    }

    /// Every mapping's Kafka dead-letter topic, each once, in mapping order.
    pub fn dead_letter_topics(&self) -> Vec<String> {
        let mut topics: Vec<String> = Vec::new();
        for topic in self
            .mappings
            .iter()
            .filter_map(|m| m.dead_letter_topic.as_ref())
        {
            if !topics.contains(topic) {
                topics.push(topic.clone());
            }
        }
        topics
    }

    /// The Kafka topics the bridge reads or writes: every mapped topic, then
    /// every dead-letter topic that is not one of them.
    pub fn kafka_topics_and_dead_letters(&self) -> Vec<String> {
        let mut topics = self.kafka_topics();
        for topic in self.dead_letter_topics() {
            if !topics.contains(&topic) {
                topics.push(topic);
            }
        }
        topics
    }

    /// The RocketMQ topic of every mapping, in mapping order.
    pub fn rocketmq_topics(&self) -> Vec<String> {
        self.mappings
            .iter()
            .map(|m| m.rocketmq_topic.clone())
            .collect()
    }
}

/// Where to consume from.
#[derive(Clone, PartialEq, Deserialize)]
pub struct KafkaConfig {
    /// Comma-separated `host:port` list, as librdkafka takes it.
    pub bootstrap_servers: String,
    #[serde(default = "default_group_id")]
    pub group_id: String,
    /// Static group membership (librdkafka's `group.instance.id`) for the
    /// bridge's group consumer only: a restarted instance with the same id
    /// gets its partitions back at once instead of after the session timeout.
    #[serde(default)]
    pub group_instance_id: Option<String>,
    /// Passed verbatim to librdkafka (security.protocol, sasl.*, ssl.*, ...).
    /// After loading, also holds each `property_files` entry's contents, as
    /// [`PropertyValue::Secret`].
    #[serde(default)]
    pub properties: BTreeMap<String, PropertyValue>,
    /// librdkafka properties read from files (Docker and Kubernetes
    /// secrets): property name -> path. The loader reads them into `properties`.
    #[serde(default)]
    pub property_files: BTreeMap<String, PathBuf>,
    /// Where to start a partition that has no committed offset in the group
    /// (and, for `earliest`/`latest`/a timestamp, whether to ignore it).
    #[serde(default)]
    pub start_from: StartFrom,
    /// The way back: how long a send to a Kafka partition may wait for its
    /// acknowledgement before it is reported (librdkafka keeps retrying).
    #[serde(default = "default_kafka_send_timeout")]
    pub send_timeout: HumanDuration,
}

impl fmt::Debug for KafkaConfig {
    /// Secret-looking properties (`sasl.password`, ...) and every property
    /// read from a file print as `***`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let properties: BTreeMap<&str, String> = self
            .properties
            .iter()
            .map(|(name, value)| {
                let shown = if is_secret_property(name) || matches!(value, PropertyValue::Secret(_))
                {
                    "***".to_string()
                } else {
                    value.as_librdkafka_value()
                };
                (name.as_str(), shown)
            })
            .collect();
        f.debug_struct("KafkaConfig")
            .field("bootstrap_servers", &self.bootstrap_servers)
            .field("group_id", &self.group_id)
            .field("group_instance_id", &self.group_instance_id)
            .field("properties", &properties)
            .field("property_files", &self.property_files)
            .field("start_from", &self.start_from)
            .field("send_timeout", &self.send_timeout)
            .finish()
    }
}

/// Where consumption starts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum StartFrom {
    /// The group's committed offset, or the earliest offset without one.
    #[default]
    Committed,
    /// The earliest offset, ignoring committed offsets.
    Earliest,
    /// The end of each partition, ignoring committed offsets.
    Latest,
    /// The first offset whose timestamp is at or after this many ms since the epoch.
    Timestamp(i64),
}

impl<'de> Deserialize<'de> for StartFrom {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // A timestamp is naturally written unquoted, which YAML reads as a number.
        let text = deserializer.deserialize_any(ScalarText(
            "committed, earliest, latest or a timestamp in ms",
        ))?;
        match text.as_str() {
            "committed" => Ok(StartFrom::Committed),
            "earliest" => Ok(StartFrom::Earliest),
            "latest" => Ok(StartFrom::Latest),
            other => other.parse::<i64>().ok().filter(|ms| *ms >= 0).map(StartFrom::Timestamp).ok_or_else(|| {
                serde::de::Error::custom(format!(
                    "`{other}` is not a start position: use committed, earliest, latest, or a timestamp in \
                     milliseconds since the epoch"
                ))
            }),
        }
    }
}

/// Where to produce to.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct RocketMqConfig {
    /// `host:port`, or several separated by `;`.
    pub name_server: String,
    #[serde(default = "default_producer_group")]
    pub producer_group: String,
    /// The way back: the consumer group that reads the RocketMQ topics of
    /// `rocketmq_to_kafka` mappings and holds their checkpoints.
    #[serde(default = "default_consumer_group")]
    pub consumer_group: String,
    /// RocketMQ ACL credentials; both or neither. After loading, these also
    /// hold what `access_key_file` and `secret_key_file` point to.
    #[serde(default)]
    pub access_key: Option<Secret>,
    #[serde(default)]
    pub secret_key: Option<Secret>,
    /// Files holding the credentials (Docker and Kubernetes secrets).
    #[serde(default)]
    pub access_key_file: Option<PathBuf>,
    #[serde(default)]
    pub secret_key_file: Option<PathBuf>,
    /// The brokers' `maxMessageSize`: bigger records get the oversized policy,
    /// and no batch is built bigger than this.
    #[serde(default = "default_max_message_size")]
    pub max_message_size: ByteSize,
    /// How long one send may take before it is retried.
    #[serde(default = "default_send_timeout")]
    pub send_timeout: HumanDuration,
    /// Where message ids (UNIQ_KEY) come from.
    #[serde(default)]
    pub message_ids: MessageIds,
    /// The bridge's own topic for write fences (`rocketmq_sink::fence`):
    /// nobody consumes it; `create-topics` creates it.
    #[serde(default = "default_fence_topic")]
    pub fence_topic: String,
}

/// How each copied message gets its id.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MessageIds {
    /// Derived from the target topic and the Kafka coordinates: a re-sent
    /// copy carries the id of the first one.
    #[default]
    Deterministic,
    /// A fresh id per record from the client's generator.
    Client,
}

/// Which way a mapping copies.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Kafka records into RocketMQ: the dual-write phase.
    #[default]
    KafkaToRocketmq,
    /// RocketMQ messages into Kafka: the cutover window and the way back.
    RocketmqToKafka,
}

impl Direction {
    /// Every direction, in a fixed order (for metrics registration).
    pub const ALL: [Direction; 2] = [Direction::KafkaToRocketmq, Direction::RocketmqToKafka];

    /// The `direction` label of metrics and the config value.
    pub fn label(self) -> &'static str {
        match self {
            Direction::KafkaToRocketmq => "kafka_to_rocketmq",
            Direction::RocketmqToKafka => "rocketmq_to_kafka",
        }
    }

    /// The system this direction reads from, as log lines name it.
    pub fn source_system(self) -> &'static str {
        match self {
            Direction::KafkaToRocketmq => "Kafka",
            Direction::RocketmqToKafka => "RocketMQ",
        }
    }
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// One Kafka topic copied into one RocketMQ topic, or (with `direction:
/// rocketmq_to_kafka`) one RocketMQ topic copied into one Kafka topic.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct MappingConfig {
    /// Label used in logs and metrics; defaults to the source topic.
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub direction: Direction,
    /// Copies the bridge made in the other direction are never copied
    /// back, and provenance a producer forged is a rejection
    /// (`on_suspect_provenance`). Required on both mappings of a topic
    /// pair mapped both ways.
    #[serde(default)]
    pub loop_prevention: bool,
    /// Kafka topic to copy from. Exactly one of this and `kafka_topic_regex`.
    #[serde(default)]
    pub kafka_topic: String,
    /// Copy every Kafka topic whose whole name matches this regex. Then
    /// `rocketmq_topic` is a template in which `{topic}` is the Kafka name.
    #[serde(default)]
    pub kafka_topic_regex: Option<String>,
    pub rocketmq_topic: String,
    /// For regex mappings: replace characters RocketMQ does not allow in the
    /// derived name with this string (for example "_"). Without it, an
    /// illegal derived name is a start-up error.
    #[serde(default)]
    pub replace_illegal_chars: Option<String>,
    #[serde(default)]
    pub ordering: Ordering,
    /// A constant RocketMQ tag for every message of this mapping.
    #[serde(default)]
    pub tag: Option<String>,
    /// Take the tag from this Kafka header (falling back to `tag` when absent).
    #[serde(default)]
    pub tag_header: Option<String>,
    /// Records with a null or empty value (tombstones).
    #[serde(default)]
    pub on_empty_value: RecordPolicy,
    /// Records bigger than `rocketmq.max_message_size`.
    #[serde(default)]
    pub on_oversized_body: RecordPolicy,
    /// Records whose properties would exceed RocketMQ's 32,767-byte limit.
    #[serde(default)]
    pub on_oversized_properties: RecordPolicy,
    /// Records whose provenance a producer set (partial, malformed, or not
    /// matching the msgId or copy id the bridge gives): never taken for a
    /// copy in silence.
    #[serde(default)]
    pub on_suspect_provenance: RecordPolicy,
    /// Kafka topic that `dead_letter` policies write to.
    #[serde(default)]
    pub dead_letter_topic: Option<String>,
    /// This mapping's own throughput limit (a regex mapping: each matched topic).
    #[serde(default)]
    pub rate_limit: RateLimit,
    /// For a mapping expanded from `kafka_topic_regex`: the label of the
    /// regex mapping, whose `rate_limit` all its topics share.
    #[serde(skip)]
    pub expanded_from: Option<String>,
}

/// A throughput limit: a message rate, a byte rate, or both. Reloaded on SIGHUP.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub struct RateLimit {
    #[serde(default)]
    pub messages_per_second: Option<u32>,
    /// Counted over each Kafka record's key, value and headers.
    #[serde(default)]
    pub bytes_per_second: Option<ByteSize>,
    /// Messages that may pass at once after an idle spell; default one second's worth.
    #[serde(default)]
    pub burst_messages: Option<u32>,
    /// Bytes that may pass at once after an idle spell; default one second's worth.
    #[serde(default)]
    pub burst_bytes: Option<ByteSize>,
}

impl RateLimit {
    pub fn is_unlimited(&self) -> bool {
        self.messages_per_second.is_none() && self.bytes_per_second.is_none()
    }
}

/// What to do with a record RocketMQ cannot take.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordPolicy {
    /// Stop the bridge without committing past the record.
    #[default]
    Fail,
    /// Count, log and skip it.
    Skip,
    /// Write it to `dead_letter_topic` in Kafka with the reason in a header.
    DeadLetter,
}

/// How the bridge batches, commits and shuts down.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct BridgeSettings {
    /// How often acknowledged offsets are committed.
    #[serde(default = "default_commit_interval")]
    pub commit_interval: HumanDuration,
    /// How long SIGTERM waits for in-flight sends before committing and exiting.
    #[serde(default = "default_shutdown_timeout")]
    pub shutdown_timeout: HumanDuration,
    /// At most this many records in one batch sent to one queue.
    #[serde(default = "default_batch_records")]
    pub max_batch_records: usize,
    /// At most this many bytes in one batch (capped at `rocketmq.max_message_size`).
    #[serde(default = "default_batch_bytes")]
    pub max_batch_bytes: ByteSize,
    /// Records waiting per queue before the Kafka partitions are paused.
    #[serde(default = "default_queue_buffer")]
    pub queue_buffer_records: usize,
    /// Longest wait between two retries of a failing send.
    #[serde(default = "default_max_backoff")]
    pub max_retry_backoff: HumanDuration,
    /// How often target topics' queue counts are re-read.
    #[serde(default = "default_queue_refresh")]
    pub queue_refresh_interval: HumanDuration,
    /// Bytes of records handed to RocketMQ and not yet stored, over all
    /// mappings. Bounds memory; a single bigger record still passes, alone.
    #[serde(default = "default_max_in_flight_bytes")]
    pub max_in_flight_bytes: ByteSize,
    /// On start and on gaining a partition, read the tails of its target
    /// queues and skip records a previous owner already stored.
    #[serde(default = "default_true")]
    pub exactly_once_restarts: bool,
    /// How far back (in store time, behind a queue's newest message) that
    /// read may go.
    #[serde(default = "default_restart_scan_window")]
    pub restart_scan_window: HumanDuration,
    /// A limit over all mappings together. Reloaded on SIGHUP.
    #[serde(default)]
    pub rate_limit: RateLimit,
    /// `run` verifies each closed day by itself at this time; off when absent.
    #[serde(default)]
    pub daily_verify: Option<DailyVerify>,
}

impl Default for BridgeSettings {
    fn default() -> Self {
        BridgeSettings {
            commit_interval: default_commit_interval(),
            shutdown_timeout: default_shutdown_timeout(),
            max_batch_records: default_batch_records(),
            max_batch_bytes: default_batch_bytes(),
            queue_buffer_records: default_queue_buffer(),
            max_retry_backoff: default_max_backoff(),
            queue_refresh_interval: default_queue_refresh(),
            max_in_flight_bytes: default_max_in_flight_bytes(),
            exactly_once_restarts: true,
            restart_scan_window: default_restart_scan_window(),
            rate_limit: RateLimit::default(),
            daily_verify: None,
        }
    }
}

impl MappingConfig {
    /// The label its `rate_limit` is kept under: a regex mapping's topics share one.
    pub fn limit_label(&self) -> &str {
        self.expanded_from
            .as_deref()
            .unwrap_or_else(|| self.label())
    }

    /// The label this mapping goes by in logs, metrics and `--mapping`.
    pub fn label(&self) -> &str {
        match (&self.name, &self.kafka_topic_regex, self.direction) {
            (Some(name), _, _) => name,
            (None, _, Direction::RocketmqToKafka) => &self.rocketmq_topic,
            (None, Some(regex), _) if self.kafka_topic.is_empty() => regex,
            (None, _, _) => &self.kafka_topic,
        }
    }

    /// The topic this mapping reads.
    pub fn source_topic(&self) -> &str {
        match self.direction {
            Direction::KafkaToRocketmq => &self.kafka_topic,
            Direction::RocketmqToKafka => &self.rocketmq_topic,
        }
    }

    /// The topic this mapping writes.
    pub fn target_topic(&self) -> &str {
        match self.direction {
            Direction::KafkaToRocketmq => &self.rocketmq_topic,
            Direction::RocketmqToKafka => &self.kafka_topic,
        }
    }

    /// What this mapping does with a record RocketMQ cannot take.
    pub fn policy_for(&self, rejection: crate::mapping::Rejection) -> RecordPolicy {
        use crate::mapping::Rejection;
        match rejection {
            Rejection::EmptyValue => self.on_empty_value,
            Rejection::OversizedBody { .. } => self.on_oversized_body,
            Rejection::OversizedProperties { .. } => self.on_oversized_properties,
            Rejection::SuspectProvenance { .. } => self.on_suspect_provenance,
            Rejection::BridgeCopy => RecordPolicy::Skip,
        }
    }

    /// The key that sets [`MappingConfig::policy_for`] `rejection`.
    pub fn policy_field(rejection: crate::mapping::Rejection) -> &'static str {
        use crate::mapping::Rejection;
        match rejection {
            Rejection::EmptyValue => "on_empty_value",
            Rejection::OversizedBody { .. } => "on_oversized_body",
            Rejection::OversizedProperties { .. } => "on_oversized_properties",
            Rejection::SuspectProvenance { .. } => "on_suspect_provenance",
            Rejection::BridgeCopy => "loop_prevention",
        }
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
#[derive(Debug, Clone, PartialEq, Deserialize)]
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

fn default_consumer_group() -> String {
    "kafka-rocketmq-bridge".to_string()
}

fn default_kafka_send_timeout() -> HumanDuration {
    HumanDuration(Duration::from_secs(30))
}

fn default_max_message_size() -> ByteSize {
    ByteSize(4 << 20)
}

fn default_fence_topic() -> String {
    "kafka_rocketmq_bridge_fence".to_string()
}

fn default_send_timeout() -> HumanDuration {
    HumanDuration(Duration::from_secs(5))
}

/// Bounds what a restart re-checks: the copies stored since the last
/// commit, which the restart scan reads back (at a 1 s interval and
/// 190,000 records/s, 198,048 copies and 1.1 s of scan).
fn default_commit_interval() -> HumanDuration {
    HumanDuration(Duration::from_millis(250))
}

fn default_true() -> bool {
    true
}

fn default_restart_scan_window() -> HumanDuration {
    HumanDuration(Duration::from_secs(600))
}

fn default_shutdown_timeout() -> HumanDuration {
    HumanDuration(Duration::from_secs(30))
}

fn default_batch_records() -> usize {
    // 1024 records of 200 B copied 16% faster than 256 in the benchmark
    // (docs/benchmarks.md); batches stay under max_batch_bytes anyway.
    1024
}

fn default_batch_bytes() -> ByteSize {
    ByteSize(1 << 20)
}

fn default_queue_buffer() -> usize {
    // Two full batches waiting behind the one in flight keep a sender busy;
    // 4096 made `key_hash` mode peak at 130 MiB against 122 MiB (docs/benchmarks.md).
    2048
}

fn default_max_backoff() -> HumanDuration {
    HumanDuration(Duration::from_secs(10))
}

fn default_queue_refresh() -> HumanDuration {
    HumanDuration(Duration::from_secs(30))
}

fn default_max_in_flight_bytes() -> ByteSize {
    ByteSize(64 << 20)
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
