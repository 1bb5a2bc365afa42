//! What SIGHUP may change in a running bridge: the rate limits and the
//! in-flight cap. Anything else needs a restart, so a reload that touches
//! it is refused whole and the running config stays.

use std::collections::BTreeMap;

use super::{BridgeConfig, RateLimit};

/// The settings a running bridge takes from a reloaded file.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LiveLimits {
    pub global: RateLimit,
    pub max_in_flight_bytes: u64,
    /// Keyed by [`super::MappingConfig::limit_label`]; unlimited mappings are absent.
    pub per_mapping: BTreeMap<String, RateLimit>,
}

impl LiveLimits {
    pub fn of(config: &BridgeConfig) -> Self {
        LiveLimits {
            global: config.bridge.rate_limit,
            max_in_flight_bytes: config.bridge.max_in_flight_bytes.0,
            per_mapping: config
                .mappings
                .iter()
                .filter(|m| !m.rate_limit.is_unlimited())
                .map(|m| (m.limit_label().to_string(), m.rate_limit))
                .collect(),
        }
    }

    /// One line for the log, e.g. `global 1000 msg/s; orders 10485760 B/s; in-flight cap 67108864 B`.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if !self.global.is_unlimited() {
            parts.push(format!("global {}", describe_limit(&self.global)));
        }
        for (label, limit) in &self.per_mapping {
            parts.push(format!("{label} {}", describe_limit(limit)));
        }
        if parts.is_empty() {
            parts.push("no rate limit".to_string());
        }
        parts.push(format!("in-flight cap {} B", self.max_in_flight_bytes));
        parts.join("; ")
    }
}

fn describe_limit(limit: &RateLimit) -> String {
    let mut parts = Vec::new();
    if let Some(messages) = limit.messages_per_second {
        parts.push(format!("{messages} msg/s"));
    }
    if let Some(bytes) = limit.bytes_per_second {
        parts.push(format!("{} B/s", bytes.0));
    }
    parts.join(" + ")
}

/// The limits of `reloaded`, if it differs from `running` in nothing else.
/// Both are files as loaded (regex mappings not yet expanded).
pub fn reload_limits(
    running: &BridgeConfig,
    reloaded: &BridgeConfig,
) -> Result<LiveLimits, String> {
    let (before, after) = (without_limits(running), without_limits(reloaded));
    let changed: Vec<&str> = [
        ("kafka", before.kafka == after.kafka),
        ("rocketmq", before.rocketmq == after.rocketmq),
        ("mappings", before.mappings == after.mappings),
        ("metrics", before.metrics == after.metrics),
        ("bridge", before.bridge == after.bridge),
    ]
    .into_iter()
    .filter(|(_, same)| !same)
    .map(|(section, _)| section)
    .collect();
    if changed.is_empty() {
        Ok(LiveLimits::of(reloaded))
    } else {
        Err(format!(
            "the reloaded config also changes {}, which cannot be applied while running \
             (only bridge.rate_limit, bridge.max_in_flight_bytes and mappings[].rate_limit can); \
             restart the bridge to apply it",
            changed.join(", ")
        ))
    }
}

fn without_limits(config: &BridgeConfig) -> BridgeConfig {
    let mut config = config.clone();
    config.bridge.rate_limit = RateLimit::default();
    config.bridge.max_in_flight_bytes = super::ByteSize(0);
    config
        .mappings
        .iter_mut()
        .for_each(|m| m.rate_limit = RateLimit::default());
    config
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::load_str;

    fn config(limits: &str, mapping_extra: &str) -> BridgeConfig {
        let text = format!(
            "kafka:\n  bootstrap_servers: \"k:1\"\nrocketmq:\n  name_server: \"n:2\"\n\
             mappings:\n  - kafka_topic: orders\n    rocketmq_topic: orders\n{mapping_extra}\
             bridge:\n  max_batch_records: 100\n{limits}"
        );
        load_str(&text, "test.yaml", |_| None).expect("valid config")
    }

    #[test]
    fn limits_change_live_and_nothing_else_does() {
        let running = config("", "");
        let faster = config(
            "  rate_limit:\n    messages_per_second: 500\n  max_in_flight_bytes: 1MiB\n",
            "    rate_limit:\n      bytes_per_second: 10KiB\n",
        );
        let limits = reload_limits(&running, &faster).expect("limits only");
        assert_eq!(limits.global.messages_per_second, Some(500));
        assert_eq!(limits.max_in_flight_bytes, 1 << 20);
        assert_eq!(
            limits.per_mapping["orders"].bytes_per_second.map(|b| b.0),
            Some(10 << 10)
        );
        assert_eq!(
            limits.describe(),
            "global 500 msg/s; orders 10240 B/s; in-flight cap 1048576 B"
        );

        let retargeted = config("", "    ordering: key_hash\n");
        let error = reload_limits(&running, &retargeted).unwrap_err();
        assert!(error.contains("also changes mappings,"), "{error}");
        assert!(error.contains("restart the bridge"), "{error}");
    }
}
