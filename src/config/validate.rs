//! Semantic checks on a config that deserialized: names, addresses,
//! duplicates, and settings the bridge must own itself.

use std::collections::HashMap;

use super::load::Problems;
use super::locate::Segment;
use super::regex_mappings::{TOPIC_PLACEHOLDER, anchored};
use super::{BridgeConfig, MappingConfig, RateLimit, RecordPolicy};

/// librdkafka settings the bridge sets itself; a user value would break
/// checkpointing or contradict the dedicated key.
const BRIDGE_OWNED_PROPERTIES: &[(&str, &str)] = &[
    ("bootstrap.servers", "use kafka.bootstrap_servers"),
    ("group.id", "use kafka.group_id"),
    (
        "enable.auto.commit",
        "the bridge commits only acknowledged offsets, so auto-commit stays off",
    ),
    (
        "enable.auto.offset.store",
        "the bridge stores offsets itself after RocketMQ acknowledges them",
    ),
];

pub(super) fn validate(config: &BridgeConfig, problems: &mut Problems) {
    validate_kafka(config, problems);
    validate_rocketmq(config, problems);
    validate_mappings(config, problems);
    validate_bridge(config, problems);
}

fn validate_bridge(config: &BridgeConfig, problems: &mut Problems) {
    let bridge = &config.bridge;
    for (field, value) in [
        ("max_batch_records", bridge.max_batch_records),
        ("queue_buffer_records", bridge.queue_buffer_records),
    ] {
        if value == 0 {
            problems.push(&[key("bridge"), key(field)], "must be at least 1");
        }
    }
    validate_rate_limit(
        &bridge.rate_limit,
        &[key("bridge"), key("rate_limit")],
        problems,
    );
}

/// Rates and bursts are positive and fit the limiter (32-bit cells).
fn validate_rate_limit(limit: &RateLimit, base: &[Segment], problems: &mut Problems) {
    let at = |field: &str| {
        let mut path = base.to_vec();
        path.push(key(field));
        path
    };
    for (field, value) in [
        ("messages_per_second", limit.messages_per_second),
        ("burst_messages", limit.burst_messages),
    ] {
        if value == Some(0) {
            problems.push(&at(field), "must be at least 1 (leave it out for no limit)");
        }
    }
    for (field, value) in [
        ("bytes_per_second", limit.bytes_per_second),
        ("burst_bytes", limit.burst_bytes),
    ] {
        if value.is_some_and(|bytes| bytes.0 > u64::from(u32::MAX)) {
            problems.push(&at(field), "must be at most 4GiB");
        }
    }
    if limit.burst_messages.is_some() && limit.messages_per_second.is_none() {
        problems.push(
            &at("burst_messages"),
            "has no effect without messages_per_second",
        );
    }
    if limit.burst_bytes.is_some() && limit.bytes_per_second.is_none() {
        problems.push(&at("burst_bytes"), "has no effect without bytes_per_second");
    }
}

fn key(name: &str) -> Segment {
    Segment::Key(name.to_string())
}

fn validate_kafka(config: &BridgeConfig, problems: &mut Problems) {
    let kafka = &config.kafka;
    let servers_path = [key("kafka"), key("bootstrap_servers")];
    check_host_ports(
        &kafka.bootstrap_servers,
        ',',
        &servers_path,
        "127.0.0.1:9092",
        problems,
    );
    if kafka.group_id.trim().is_empty() {
        problems.push(&[key("kafka"), key("group_id")], "must not be empty");
    }
    for (name, hint) in BRIDGE_OWNED_PROPERTIES {
        if kafka.properties.contains_key(*name) {
            let path = [key("kafka"), key("properties"), key(name)];
            problems.push(
                &path,
                format!("is set by the bridge and cannot be overridden: {hint}"),
            );
        }
    }
}

fn validate_rocketmq(config: &BridgeConfig, problems: &mut Problems) {
    let rocketmq = &config.rocketmq;
    let path = [key("rocketmq"), key("name_server")];
    check_host_ports(
        &rocketmq.name_server,
        ';',
        &path,
        "127.0.0.1:9876",
        problems,
    );
    if !is_legal_rocketmq_topic(&rocketmq.producer_group) {
        problems.push(
            &[key("rocketmq"), key("producer_group")],
            "must be 1-255 characters from letters, digits, `%`, `|`, `_` and `-`",
        );
    }
    match (&rocketmq.access_key, &rocketmq.secret_key) {
        (Some(_), None) => problems.push(
            &[key("rocketmq"), key("access_key")],
            "is set but secret_key is not: set both or neither",
        ),
        (None, Some(_)) => problems.push(
            &[key("rocketmq"), key("secret_key")],
            "is set but access_key is not: set both or neither",
        ),
        _ => {}
    }
}

fn validate_mappings(config: &BridgeConfig, problems: &mut Problems) {
    if config.mappings.is_empty() {
        problems.push(
            &[key("mappings")],
            "is empty: add at least one kafka_topic -> rocketmq_topic mapping",
        );
    }
    let mut sources: HashMap<&str, usize> = HashMap::new();
    let mut targets: HashMap<&str, usize> = HashMap::new();
    let mut labels: HashMap<&str, usize> = HashMap::new();
    for (index, mapping) in config.mappings.iter().enumerate() {
        let at = |field: &str| [key("mappings"), Segment::Index(index), key(field)];
        validate_source(mapping, &at, problems);
        validate_target(mapping, &at, problems);
        validate_policies(mapping, &at, problems);
        validate_rate_limit(
            &mapping.rate_limit,
            &[key("mappings"), Segment::Index(index), key("rate_limit")],
            problems,
        );
        if mapping.kafka_topic_regex.is_some() {
            // Regex mappings are checked for clashes once expanded, at start-up.
            continue;
        }
        if let Some(first) = sources.insert(&mapping.kafka_topic, index) {
            problems.push(
                &at("kafka_topic"),
                format!("`{}` is already mapped by mappings[{first}]: each Kafka topic may be mapped once", mapping.kafka_topic),
            );
        }
        if let Some(first) = targets.insert(&mapping.rocketmq_topic, index) {
            problems.push(
                &at("rocketmq_topic"),
                format!(
                    "`{}` is already the target of mappings[{first}]: two sources in one RocketMQ topic would break ordering and the count-match",
                    mapping.rocketmq_topic
                ),
            );
        }
        if let Some(first) = labels
            .insert(mapping.label(), index)
            .filter(|_| mapping.name.is_some())
        {
            problems.push(
                &at("name"),
                format!(
                    "`{}` is already the name of mappings[{first}]",
                    mapping.label()
                ),
            );
        }
    }
}

/// Exactly one source: a legal topic name or a regex that compiles.
fn validate_source(
    mapping: &MappingConfig,
    at: &dyn Fn(&str) -> [Segment; 3],
    problems: &mut Problems,
) {
    match (&mapping.kafka_topic_regex, mapping.kafka_topic.is_empty()) {
        (Some(_), false) => problems.push(
            &at("kafka_topic_regex"),
            "set either kafka_topic or kafka_topic_regex, not both",
        ),
        (None, true) => problems.push(
            &at("kafka_topic"),
            "required key `kafka_topic` (or `kafka_topic_regex`) is missing",
        ),
        (Some(pattern), true) => {
            if let Err(error) = anchored(pattern) {
                problems.push(
                    &at("kafka_topic_regex"),
                    format!("`{pattern}` is not a valid regex: {error}"),
                );
            }
        }
        (None, false) if !is_legal_kafka_topic(&mapping.kafka_topic) => problems.push(
            &at("kafka_topic"),
            format!(
                "`{}` is not a legal Kafka topic name (1-249 of letters, digits, `.`, `_`, `-`)",
                mapping.kafka_topic
            ),
        ),
        (None, false) => {}
    }
}

/// A legal RocketMQ name, or for regex mappings a template with `{topic}`.
fn validate_target(
    mapping: &MappingConfig,
    at: &dyn Fn(&str) -> [Segment; 3],
    problems: &mut Problems,
) {
    let is_regex = mapping.kafka_topic_regex.is_some();
    if is_regex && !mapping.rocketmq_topic.contains(TOPIC_PLACEHOLDER) {
        problems.push(
            &at("rocketmq_topic"),
            "must contain `{topic}` in a kafka_topic_regex mapping, or every matched topic would share one target",
        );
        return;
    }
    if !is_regex && mapping.replace_illegal_chars.is_some() {
        problems.push(
            &at("replace_illegal_chars"),
            "only applies to kafka_topic_regex mappings",
        );
    }
    if let Some(replacement) = &mapping.replace_illegal_chars
        && !is_legal_rocketmq_topic(replacement)
    {
        problems.push(
            &at("replace_illegal_chars"),
            "must itself be legal in a RocketMQ name, for example \"_\"",
        );
    }
    // A template is checked with a stand-in; the real names at start-up.
    let name = mapping.rocketmq_topic.replace(TOPIC_PLACEHOLDER, "t");
    if !is_legal_rocketmq_topic(&name) {
        problems.push(
            &at("rocketmq_topic"),
            format!(
                "`{}` is not a legal RocketMQ topic name (1-127 of letters, digits, `%`, `|`, `_`, `-`): use `{}`",
                mapping.rocketmq_topic,
                suggest_rocketmq_topic(&mapping.rocketmq_topic).replace("_topic_", TOPIC_PLACEHOLDER)
            ),
        );
    }
}

fn validate_policies(
    mapping: &MappingConfig,
    at: &dyn Fn(&str) -> [Segment; 3],
    problems: &mut Problems,
) {
    let policies = [
        ("on_empty_value", mapping.on_empty_value),
        ("on_oversized_body", mapping.on_oversized_body),
        ("on_oversized_properties", mapping.on_oversized_properties),
    ];
    let dead_letter = policies
        .iter()
        .find(|(_, policy)| *policy == RecordPolicy::DeadLetter);
    match (&mapping.dead_letter_topic, dead_letter) {
        (None, Some((field, _))) => problems.push(
            &at(field),
            "is dead_letter but the mapping has no dead_letter_topic: add `dead_letter_topic: <kafka topic>`",
        ),
        (Some(topic), _) if !is_legal_kafka_topic(topic) || *topic == mapping.kafka_topic => problems.push(
            &at("dead_letter_topic"),
            format!("`{topic}` must be a legal Kafka topic name other than the mapping's kafka_topic"),
        ),
        _ => {}
    }
    for (field, tag) in [("tag", &mapping.tag), ("tag_header", &mapping.tag_header)] {
        if tag
            .as_deref()
            .is_some_and(|t| t.is_empty() || t.contains("||") || t.contains(['\u{1}', '\u{2}']))
        {
            problems.push(
                &at(field),
                "must be non-empty and contain neither `||` nor control separators",
            );
        }
    }
}

fn check_host_ports(
    list: &str,
    separator: char,
    path: &[Segment],
    example: &str,
    problems: &mut Problems,
) {
    if list.trim().is_empty() {
        problems.push(
            path,
            format!("must not be empty: write host:port, for example {example}"),
        );
        return;
    }
    for entry in list.split(separator).map(str::trim) {
        let valid = entry.rsplit_once(':').is_some_and(|(host, port)| {
            !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0)
        });
        if !valid {
            problems.push(
                path,
                format!("`{entry}` is not host:port, for example {example}"),
            );
        }
    }
}

fn is_legal_kafka_topic(name: &str) -> bool {
    (1..=249).contains(&name.len())
        && name != "."
        && name != ".."
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

/// RocketMQ's topic rule: `[%|a-zA-Z0-9_-]{1,127}`.
pub fn is_legal_rocketmq_topic(name: &str) -> bool {
    (1..=127).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '%' | '|' | '_' | '-'))
}

/// A legal RocketMQ name close to `name`: illegal characters become `_`.
pub fn suggest_rocketmq_topic(name: &str) -> String {
    let replaced: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '%' | '|' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .take(127)
        .collect();
    if replaced.is_empty() {
        "topic".to_string()
    } else {
        replaced
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rocketmq_topic_rule() {
        assert!(is_legal_rocketmq_topic("orders_v1"));
        assert!(is_legal_rocketmq_topic("%RETRY%g|x-1"));
        assert!(!is_legal_rocketmq_topic("orders.v1"));
        assert!(!is_legal_rocketmq_topic(""));
        assert!(!is_legal_rocketmq_topic(&"a".repeat(128)));
        assert_eq!(suggest_rocketmq_topic("orders.v1"), "orders_v1");
        assert_eq!(suggest_rocketmq_topic("é.x"), "__x");
    }
}
