//! Semantic checks on a config that deserialized: names, addresses,
//! duplicates, and settings the bridge must own itself.

use std::collections::{HashMap, HashSet};

use rocketmq_model::common::topic::TopicValidator;

use super::load::{Problems, Sections};
use super::locate::Segment;
use super::regex_mappings::{TOPIC_PLACEHOLDER, anchored};
use super::{
    BridgeSettings, Direction, KafkaConfig, MappingConfig, Ordering, PropertyValue, RateLimit,
    RecordPolicy, RocketMqConfig, is_secret_property,
};

/// librdkafka settings the bridge sets itself; a user value would break
/// checkpointing or contradict the dedicated key.
const BRIDGE_OWNED_PROPERTIES: &[(&str, &str)] = &[
    ("bootstrap.servers", "use kafka.bootstrap_servers"),
    // librdkafka's alias of bootstrap.servers: both set would race.
    ("metadata.broker.list", "use kafka.bootstrap_servers"),
    ("group.id", "use kafka.group_id"),
    (
        "group.instance.id",
        "use kafka.group_instance_id, which only the bridge's group consumer takes",
    ),
    ("auto.offset.reset", "use kafka.start_from"),
    (
        "enable.auto.commit",
        "the bridge commits only acknowledged offsets, so auto-commit stays off",
    ),
    (
        "enable.auto.offset.store",
        "the bridge stores offsets itself after RocketMQ acknowledges them",
    ),
    (
        "isolation.level",
        "the bridge and `verify` read only committed records (read_committed), so records of \
         aborted transactions never reach RocketMQ",
    ),
];

/// Checks every section that deserialized; the others were reported already.
pub(super) fn validate(sections: &Sections, problems: &mut Problems) {
    if let Some(kafka) = &sections.kafka {
        validate_kafka(kafka, problems);
    }
    if let Some(rocketmq) = &sections.rocketmq {
        validate_rocketmq(rocketmq, problems);
    }
    if let Some(mappings) = &sections.mappings {
        validate_mappings(mappings, problems);
    }
    if let Some(bridge) = &sections.bridge {
        validate_bridge(bridge, problems);
    }
}

/// Upper bound for the record counts in `bridge`: far above any useful
/// value, and far below what would make the queue channels panic
/// (tokio refuses more than `usize::MAX >> 3` permits).
const MAX_RECORD_COUNT: usize = 1_000_000;

fn validate_bridge(bridge: &BridgeSettings, problems: &mut Problems) {
    for (field, value) in [
        ("max_batch_records", bridge.max_batch_records),
        ("queue_buffer_records", bridge.queue_buffer_records),
    ] {
        if value == 0 {
            problems.push(&[key("bridge"), key(field)], "must be at least 1");
        } else if value > MAX_RECORD_COUNT {
            problems.push(
                &[key("bridge"), key(field)],
                format!(
                    "must be at most {MAX_RECORD_COUNT} (the in-flight cap bounds memory, not this)"
                ),
            );
        }
    }
    if bridge.exactly_once_restarts && bridge.restart_scan_window.0.is_zero() {
        problems.push(
            &[key("bridge"), key("restart_scan_window")],
            "must be more than 0 (it bounds the restart scan); to turn the scan off, set bridge.exactly_once_restarts: false",
        );
    }
    validate_rate_limit(
        &bridge.rate_limit,
        &[key("bridge"), key("rate_limit")],
        problems,
    );
    if bridge
        .daily_verify
        .as_ref()
        .is_some_and(|d| d.max_scan_rate == 0)
    {
        problems.push(
            &[key("bridge"), key("daily_verify"), key("max_scan_rate")],
            "must be at least 1: the records per second each side of the daily count-match reads",
        );
    }
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

fn validate_kafka(kafka: &KafkaConfig, problems: &mut Problems) {
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
    if let Some(id) = &kafka.group_instance_id
        && id.trim().is_empty()
    {
        problems.push(
            &[key("kafka"), key("group_instance_id")],
            "must not be empty: give each instance its own stable name (for example \"${HOSTNAME}\"), or leave the key out",
        );
    }
    for (name, hint) in BRIDGE_OWNED_PROPERTIES {
        for (section, present) in [
            ("properties", kafka.properties.contains_key(*name)),
            ("property_files", kafka.property_files.contains_key(*name)),
        ] {
            if present {
                problems.push(
                    &[key("kafka"), key(section), key(name)],
                    format!("is set by the bridge and cannot be overridden: {hint}"),
                );
            }
        }
    }
    for (name, value) in &kafka.properties {
        // An unquoted 0x1F or 1.50 would reach librdkafka as "31" or "1.5".
        if is_secret_property(name) && !matches!(value, PropertyValue::Text(_)) {
            problems.push(
                &[key("kafka"), key("properties"), key(name)],
                super::secret::NOT_TEXT,
            );
        }
    }
}

fn validate_rocketmq(rocketmq: &RocketMqConfig, problems: &mut Problems) {
    let path = [key("rocketmq"), key("name_server")];
    check_host_ports(
        &rocketmq.name_server,
        ';',
        &path,
        "127.0.0.1:9876",
        problems,
    );
    // Groups may be longer than topics (255, not 127).
    for (field, group) in [
        ("producer_group", &rocketmq.producer_group),
        ("consumer_group", &rocketmq.consumer_group),
    ] {
        if !is_legal_rocketmq_name(group, 255) {
            problems.push(
                &[key("rocketmq"), key(field)],
                "must be 1-255 characters from letters, digits, `%`, `|`, `_` and `-`",
            );
        }
    }
    let fence = &rocketmq.fence_topic;
    if !is_legal_rocketmq_topic(fence) {
        problems.push(
            &[key("rocketmq"), key("fence_topic")],
            format!(
                "`{fence}` is not a legal RocketMQ topic name (1-127 of letters, digits, `%`, `|`, `_`, `-`)"
            ),
        );
    } else if let Some(reason) = reserved_rocketmq_topic(fence) {
        problems.push(
            &[key("rocketmq"), key("fence_topic")],
            format!("`{fence}` {reason}: name a topic of the bridge's own, or leave the default"),
        );
    }
    // Each credential may come directly or from its *_file key (read later).
    let given = |value: bool, file: bool, name: &'static str| match (value, file) {
        (true, _) => Some(name),
        (false, true) => Some(if name == "access_key" {
            "access_key_file"
        } else {
            "secret_key_file"
        }),
        (false, false) => None,
    };
    let access = given(
        rocketmq.access_key.is_some(),
        rocketmq.access_key_file.is_some(),
        "access_key",
    );
    let secret = given(
        rocketmq.secret_key.is_some(),
        rocketmq.secret_key_file.is_some(),
        "secret_key",
    );
    const HINT: &str = "set both or neither (each directly or with its *_file key)";
    match (access, secret) {
        (Some(field), None) => problems.push(
            &[key("rocketmq"), key(field)],
            format!("is set but secret_key is not: {HINT}"),
        ),
        (None, Some(field)) => problems.push(
            &[key("rocketmq"), key(field)],
            format!("is set but access_key is not: {HINT}"),
        ),
        _ => {}
    }
}

fn validate_mappings(mappings: &[MappingConfig], problems: &mut Problems) {
    if mappings.is_empty() {
        problems.push(
            &[key("mappings")],
            "is empty: add at least one kafka_topic -> rocketmq_topic mapping",
        );
    }
    let mut sources: HashMap<(Direction, &str), usize> = HashMap::new();
    let mut targets: HashMap<(Direction, &str), usize> = HashMap::new();
    let mut labels: HashMap<&str, usize> = HashMap::new();
    let mapped: HashSet<&str> = mappings
        .iter()
        .filter(|m| m.kafka_topic_regex.is_none())
        .map(|m| m.kafka_topic.as_str())
        .collect();
    for (index, mapping) in mappings.iter().enumerate() {
        let at = |field: &str| [key("mappings"), Segment::Index(index), key(field)];
        validate_source(mapping, &at, problems);
        validate_target(mapping, &at, problems);
        validate_policies(mapping, &at, &mapped, problems);
        validate_direction(mapping, &at, problems);
        if let Some(name) = &mapping.name
            && (name.trim().is_empty() || name.chars().any(char::is_control))
        {
            problems.push(
                &at("name"),
                "must be non-empty text without control characters (it labels logs and metrics)",
            );
        }
        validate_rate_limit(
            &mapping.rate_limit,
            &[key("mappings"), Segment::Index(index), key("rate_limit")],
            problems,
        );
        if mapping.kafka_topic_regex.is_some() {
            // Regex mappings are checked for clashes once expanded, at start-up.
            continue;
        }
        let (source_field, target_field) = match mapping.direction {
            Direction::KafkaToRocketmq => ("kafka_topic", "rocketmq_topic"),
            Direction::RocketmqToKafka => ("rocketmq_topic", "kafka_topic"),
        };
        if let Some(first) = sources.insert((mapping.direction, mapping.source_topic()), index) {
            problems.push(
                &at(source_field),
                format!(
                    "`{}` is already mapped by mappings[{first}]: each {} may be mapped once",
                    mapping.source_topic(),
                    match mapping.direction {
                        Direction::KafkaToRocketmq => "Kafka topic",
                        Direction::RocketmqToKafka => "RocketMQ topic (copied back)",
                    }
                ),
            );
        }
        if let Some(first) = targets.insert((mapping.direction, mapping.target_topic()), index) {
            problems.push(
                &at(target_field),
                format!(
                    "`{}` is already the target of mappings[{first}]: two sources in one {} topic would break ordering and the count-match",
                    mapping.target_topic(),
                    match mapping.direction {
                        Direction::KafkaToRocketmq => "RocketMQ",
                        Direction::RocketmqToKafka => "Kafka",
                    }
                ),
            );
        }
        // A reverse mapping's default label is its RocketMQ topic, which
        // may be a forward mapping's Kafka topic name too.
        let named = mapping.name.is_some() || mapping.direction == Direction::RocketmqToKafka;
        if let Some(first) = labels.insert(mapping.label(), index).filter(|_| named) {
            problems.push(
                &at("name"),
                format!(
                    "`{}` is already the name of mappings[{first}]: give one of them a distinct `name`",
                    mapping.label()
                ),
            );
        }
    }
    validate_loops(mappings, problems);
}

/// Settings that only mean something in one direction, and what the way
/// back does not do (yet).
fn validate_direction(
    mapping: &MappingConfig,
    at: &dyn Fn(&str) -> [Segment; 3],
    problems: &mut Problems,
) {
    if mapping.direction == Direction::KafkaToRocketmq {
        return;
    }
    let forward_only = [
        ("kafka_topic_regex", mapping.kafka_topic_regex.is_some()),
        ("tag", mapping.tag.is_some()),
        ("tag_header", mapping.tag_header.is_some()),
        ("ordering", mapping.ordering == Ordering::Unordered),
        (
            "on_oversized_properties",
            mapping.on_oversized_properties != RecordPolicy::Fail,
        ),
    ];
    for (field, set) in forward_only {
        if set {
            let value = if field == "ordering" { " none" } else { "" };
            problems.push(
                &at(field),
                format!(
                    "`{field}{value}` applies to direction kafka_to_rocketmq only; \
                     a rocketmq_to_kafka mapping names one RocketMQ topic and keeps its order (partition or key_hash)"
                ),
            );
        }
    }
}

/// A topic both copied and written in opposite directions would copy the
/// bridge's own copies back, forever, unless both mappings tell copies
/// from originals.
fn validate_loops(mappings: &[MappingConfig], problems: &mut Problems) {
    let forward = |index: usize| mappings[index].direction == Direction::KafkaToRocketmq;
    for (back, reverse) in mappings.iter().enumerate().filter(|(i, _)| !forward(*i)) {
        for (there, other) in mappings.iter().enumerate().filter(|(i, _)| forward(*i)) {
            let meets = other.kafka_topic_regex.is_none()
                && (other.kafka_topic == reverse.kafka_topic
                    || other.rocketmq_topic == reverse.rocketmq_topic);
            if meets && !(other.loop_prevention && reverse.loop_prevention) {
                problems.push(
                    &[key("mappings"), Segment::Index(back), key("loop_prevention")],
                    format!(
                        "mappings[{there}] copies `{}` -> `{}` the other way: set `loop_prevention: true` on both, \
                         or every copy would be copied back",
                        other.kafka_topic, other.rocketmq_topic
                    ),
                );
            }
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
                // The user's pattern alone, so the error does not show our `^(?:...)$`.
                let error = regex::Regex::new(pattern).err().unwrap_or(error);
                problems.push(
                    &at("kafka_topic_regex"),
                    format!("`{pattern}` is not a valid regex: {}", regex_error_text(&error)),
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
        // The bridge's own commits land in __consumer_offsets: copying it
        // would feed on itself. Regex mappings skip `__*` for the same reason.
        (None, false) if mapping.kafka_topic.starts_with("__") => problems.push(
            &at("kafka_topic"),
            format!(
                "`{}` is an internal Kafka topic (`__*`): the bridge copies application topics only",
                mapping.kafka_topic
            ),
        ),
        (None, false) => {}
    }
}

/// One line from a regex error: its multi-line rendering (pattern, caret,
/// `error: ...`) would break the list of problems.
fn regex_error_text(error: &regex::Error) -> String {
    let text = error.to_string();
    text.lines()
        .find_map(|line| line.strip_prefix("error: "))
        .unwrap_or(&text)
        .replace('\n', " ")
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
    if is_legal_rocketmq_topic(&name)
        && let Some(reason) = reserved_rocketmq_topic(&name)
    {
        problems.push(
            &at("rocketmq_topic"),
            format!(
                "`{}` {reason}: choose an application topic name",
                mapping.rocketmq_topic
            ),
        );
    }
    if name.len() > 127 && is_legal_rocketmq_name(&name, usize::MAX) {
        problems.push(
            &at("rocketmq_topic"),
            format!(
                "`{}` is {} characters long; RocketMQ topic names have at most 127",
                mapping.rocketmq_topic,
                mapping.rocketmq_topic.len()
            ),
        );
    } else if !is_legal_rocketmq_topic(&name) {
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
    mapped: &HashSet<&str>,
    problems: &mut Problems,
) {
    let policies = [
        ("on_empty_value", mapping.on_empty_value),
        ("on_oversized_body", mapping.on_oversized_body),
        ("on_oversized_properties", mapping.on_oversized_properties),
        ("on_suspect_provenance", mapping.on_suspect_provenance),
    ];
    let dead_letter = policies
        .iter()
        .find(|(_, policy)| *policy == RecordPolicy::DeadLetter);
    match (&mapping.dead_letter_topic, dead_letter) {
        (None, Some((field, _))) => problems.push(
            &at(field),
            "is dead_letter but the mapping has no dead_letter_topic: add `dead_letter_topic: <kafka topic>`",
        ),
        (Some(topic), _) if !is_legal_kafka_topic(topic) || topic.starts_with("__") || *topic == mapping.kafka_topic => problems.push(
            &at("dead_letter_topic"),
            format!("`{topic}` must be a legal Kafka topic name other than the mapping's kafka_topic"),
        ),
        // A dead-lettered record would be copied again by the other mapping,
        // and with mutual dead-letter topics bounce between the two forever.
        (Some(topic), _) if mapped.contains(topic.as_str()) => problems.push(
            &at("dead_letter_topic"),
            format!("`{topic}` is copied by another mapping: a dead-letter topic must not be a mapped kafka_topic"),
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
    let other = if separator == ',' { ';' } else { ',' };
    for entry in list.split(separator).map(str::trim) {
        let valid = entry
            .rsplit_once(':')
            .is_some_and(|(host, port)| is_host(host) && port.parse::<u16>().is_ok_and(|p| p > 0));
        let message = if entry.is_empty() {
            format!(
                "has an empty entry (a stray `{separator}`): write host:port entries separated by `{separator}`"
            )
        } else if entry.contains(other) {
            format!(
                "`{entry}` is not host:port: separate several with `{separator}`, for example {example}{separator}{example}"
            )
        } else if !valid {
            format!("`{entry}` is not host:port, for example {example}")
        } else {
            continue;
        };
        problems.push(path, message);
    }
}

/// A DNS name or IPv4 address, or an IPv6 address in brackets.
fn is_host(host: &str) -> bool {
    match host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        Some(ipv6) => ipv6.parse::<std::net::Ipv6Addr>().is_ok(),
        None => {
            !host.is_empty()
                && host
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
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
    is_legal_rocketmq_name(name, 127)
}

fn is_legal_rocketmq_name(name: &str, max_len: usize) -> bool {
    (1..=max_len).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '%' | '|' | '_' | '-'))
}

/// Why `name`, although legal, is no topic to copy into: RocketMQ's system
/// topics (sends refused, or consumed by the broker itself) and the retry
/// and dead-letter topics of consumer groups.
pub(super) fn reserved_rocketmq_topic(name: &str) -> Option<&'static str> {
    if TopicValidator::is_not_allowed_send_topic(name) || TopicValidator::is_system_topic(name) {
        Some("is a RocketMQ system topic")
    } else if ["%RETRY%", "%DLQ%", "%LMQ%"]
        .iter()
        .any(|prefix| name.starts_with(prefix))
    {
        Some("is a RocketMQ retry, dead-letter or light-queue topic (`%RETRY%`, `%DLQ%`, `%LMQ%`)")
    } else {
        None
    }
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

    #[test]
    fn system_retry_and_dead_letter_topics_are_reserved() {
        for name in [
            "SCHEDULE_TOPIC_XXXX",
            "TBW102",
            "rmq_sys_x",
            "%RETRY%group",
            "%DLQ%group",
        ] {
            assert!(reserved_rocketmq_topic(name).is_some(), "{name}");
        }
        for name in ["orders", "RETRY_orders", "a%RETRY%"] {
            assert_eq!(reserved_rocketmq_topic(name), None, "{name}");
        }
    }
}
