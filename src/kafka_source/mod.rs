//! The Kafka source: everything the bridge asks of Kafka, through rdkafka.
//!
//! This module owns the librdkafka client settings (auto-commit is always
//! off: only the checkpoint module commits), and the metadata and admin
//! calls used by `check` and `create-topics`.

mod admin;
mod as_source;
pub mod consumer;
mod fetch_wake;
pub mod start_position;

use std::time::Duration;

use rdkafka::ClientConfig;

use crate::config::KafkaConfig;

pub use admin::{
    KafkaAdminError, commit_group_offsets, create_topic, list_topics, max_message_bytes,
    partition_counts, resolve_regex_mappings,
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
        // librdkafka's default too; explicit because copying an aborted
        // transaction's records would be a copy of what Kafka never held.
        .set("isolation.level", "read_committed")
        .set("client.id", "kafka-rocketmq-bridge");
    config
}

/// Consumer-only properties (scope `C` in librdkafka's CONFIGURATION.md):
/// the ones [`client_config`] sets and the ones users set in
/// `kafka.properties` for the bridge's consumer. A producer ignores them,
/// with a warning (CONFWARN) for each.
const CONSUMER_ONLY: [&str; 23] = [
    "group.id",
    "group.instance.id",
    "group.protocol",
    "group.remote.assignor",
    "partition.assignment.strategy",
    "session.timeout.ms",
    "heartbeat.interval.ms",
    "coordinator.query.interval.ms",
    "max.poll.interval.ms",
    "enable.auto.commit",
    "auto.commit.interval.ms",
    "enable.auto.offset.store",
    "queued.min.messages",
    "queued.max.messages.kbytes",
    "fetch.wait.max.ms",
    "fetch.queue.backoff.ms",
    "fetch.message.max.bytes",
    "fetch.max.bytes",
    "fetch.min.bytes",
    "fetch.error.backoff.ms",
    "isolation.level",
    "enable.partition.eof",
    "auto.offset.reset",
];

/// A [`client_config`] made fit for a producer.
pub fn for_producer(mut config: ClientConfig) -> ClientConfig {
    for name in CONSUMER_ONLY {
        config.remove(name);
    }
    config
}

/// librdkafka's `fetch.queue.backoff.ms`, unless the user set it.
const FETCH_QUEUE_BACKOFF: (&str, &str) = ("fetch.queue.backoff.ms", "10");

/// `client_config` for a consumer that reads records as fast as it can.
/// Once a partition's prefetch queue is over `queued.min.messages` or
/// `queued.max.messages.kbytes`, librdkafka waits `fetch.queue.backoff.ms`
/// (1 s by default) before fetching it again. A reader that empties the
/// queue sooner then sits idle for the rest of that second: the bridge,
/// whose prefetch the in-flight cap bounds, and `verify`. Measured with
/// `verify` on a 500,000-record topic on the local brokers: 1.0-1.3 s of
/// reading with 10 ms against 3.0 s with the default.
pub fn streaming_consumer_config(kafka: &KafkaConfig) -> ClientConfig {
    let mut config = client_config(kafka);
    set_unless_given(&mut config, kafka, &[FETCH_QUEUE_BACKOFF]);
    config
}

/// How long a fetch of the bridge's consumer may wait for data, and how
/// much it waits for, unless the user set them: 64 KiB or 5 ms, whichever
/// comes first. librdkafka's defaults (1 byte, or 500 ms) answer a fetch as
/// soon as one record is there, so at low load every few records cost a
/// fetch, a dispatch and a RocketMQ send. Measured at 7,600 records/s
/// (`scripts/bench.sh --only-latency 7600`, steady state): p99 201 ms with
/// the defaults against 23 ms, and half the bridge's CPU (0.47 of a core
/// against 0.23) and less of RocketMQ's (0.40 against 0.26). A backlog
/// fills 64 KiB at once, so throughput is unchanged (benches/analysis.md).
pub const FETCH_BATCHING: [(&str, &str); 2] =
    [("fetch.min.bytes", "65536"), ("fetch.wait.max.ms", "5")];

/// Sets each of `defaults` in `config` unless `kafka.properties` has it.
pub fn set_unless_given(config: &mut ClientConfig, kafka: &KafkaConfig, defaults: &[(&str, &str)]) {
    for (key, value) in defaults {
        if !kafka.properties.contains_key(*key) {
            config.set(*key, *value);
        }
    }
}

/// `client_config` with socket and metadata timeouts capped, for commands
/// that must answer quickly when a cluster is down.
pub fn quick_client_config(kafka: &KafkaConfig, deadline: Duration) -> ClientConfig {
    let mut config = client_config(kafka);
    let millis = deadline.as_millis().max(1).to_string();
    config.set("socket.timeout.ms", &millis);
    config
}

/// Whether librdkafka's error callback reports refused credentials (SASL),
/// which no retry fixes.
pub fn is_authentication_failure(error: &rdkafka::error::KafkaError) -> bool {
    use rdkafka::error::RDKafkaErrorCode;
    matches!(
        error.rdkafka_error_code(),
        Some(
            RDKafkaErrorCode::Authentication
                | RDKafkaErrorCode::SaslAuthenticationFailed
                | RDKafkaErrorCode::ClusterAuthorizationFailed
        )
    )
}

/// The useful part of librdkafka's reason for a refused login, without the
/// broker-id prefix and the retry timing: e.g. `SASL SCRAM authentication
/// failed: broker responded with unknown-user`. It holds no credentials.
pub fn authentication_reason(reason: &str) -> String {
    let reason = reason
        .split_once(": ")
        .filter(|(prefix, _)| prefix.contains("://"))
        .map_or(reason, |(_, rest)| rest);
    let reason = reason.split(" (after ").next().unwrap_or(reason);
    reason
        .trim_start_matches("SASL authentication error: ")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authentication_reasons_lose_the_broker_prefix_and_timing() {
        assert_eq!(
            authentication_reason(
                "sasl_plaintext://127.0.0.1:45092/bootstrap: SASL authentication error: SASL SCRAM \
                 authentication failed: broker responded with unknown-user (after 25ms in state AUTH_REQ)"
            ),
            "SASL SCRAM authentication failed: broker responded with unknown-user"
        );
        assert_eq!(authentication_reason("plain text"), "plain text");
    }

    #[test]
    fn streaming_consumers_back_off_briefly_unless_told_otherwise() {
        let kafka = |properties: &str| -> KafkaConfig {
            serde_yaml::from_str(&format!("bootstrap_servers: \"k:9092\"\n{properties}"))
                .expect("config")
        };
        let backoff = |config: &KafkaConfig| {
            streaming_consumer_config(config)
                .get("fetch.queue.backoff.ms")
                .map(str::to_string)
        };
        assert_eq!(backoff(&kafka("")).as_deref(), Some("10"));
        let chosen = kafka("properties:\n  fetch.queue.backoff.ms: 500\n");
        assert_eq!(backoff(&chosen).as_deref(), Some("500"));
        assert_eq!(
            client_config(&kafka("")).get("fetch.queue.backoff.ms"),
            None
        );
    }
}
