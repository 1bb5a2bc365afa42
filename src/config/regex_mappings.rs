//! Regex mappings: `kafka_topic_regex` expands, at start-up, into one plain
//! mapping per matching Kafka topic, with the RocketMQ name derived from the
//! `rocketmq_topic` template. Derived names are checked like hand-written
//! ones; an illegal or colliding name stops the start-up.

use std::collections::HashMap;

use regex::Regex;

use super::{BridgeConfig, MappingConfig, is_legal_rocketmq_topic, suggest_rocketmq_topic};

/// Stands for the Kafka topic name in a regex mapping's `rocketmq_topic`.
pub const TOPIC_PLACEHOLDER: &str = "{topic}";

/// The whole-name form of a user regex.
pub(super) fn anchored(pattern: &str) -> Result<Regex, regex::Error> {
    Regex::new(&format!("^(?:{pattern})$"))
}

/// Replaces each regex mapping with one mapping per matching topic of
/// `kafka_topics`. Topics mapped by name, internal topics (`__*`) and
/// dead-letter topics are never matched. Returns every problem found.
pub fn expand_regex_mappings(
    config: &BridgeConfig,
    kafka_topics: &[String],
) -> Result<BridgeConfig, Vec<String>> {
    if config
        .mappings
        .iter()
        .all(|m| m.kafka_topic_regex.is_none())
    {
        return Ok(config.clone());
    }
    let taken: Vec<&str> = config
        .mappings
        .iter()
        .filter(|m| m.kafka_topic_regex.is_none())
        .map(|m| m.kafka_topic.as_str())
        .chain(
            config
                .mappings
                .iter()
                .filter_map(|m| m.dead_letter_topic.as_deref()),
        )
        .collect();
    let mut problems = Vec::new();
    let mut expanded = Vec::new();
    for mapping in &config.mappings {
        let Some(pattern) = &mapping.kafka_topic_regex else {
            expanded.push(mapping.clone());
            continue;
        };
        let regex = match anchored(pattern) {
            Ok(regex) => regex,
            Err(error) => {
                problems.push(format!(
                    "kafka_topic_regex `{pattern}` is not a valid regex: {error}"
                ));
                continue;
            }
        };
        let mut sorted: Vec<&String> = kafka_topics.iter().collect();
        sorted.sort();
        let matched: Vec<&String> = sorted
            .into_iter()
            .filter(|t| regex.is_match(t) && !t.starts_with("__") && !taken.contains(&t.as_str()))
            .collect();
        if matched.is_empty() {
            problems.push(format!(
                "kafka_topic_regex `{pattern}` matches no Kafka topic; it must match whole names (for example `orders\\..*`)"
            ));
        }
        for topic in matched {
            match derive_name(mapping, topic) {
                Ok(target) => {
                    let mut concrete = mapping.clone();
                    concrete.name = Some(format!("{}:{topic}", mapping.label()));
                    concrete.kafka_topic = topic.clone();
                    concrete.kafka_topic_regex = None;
                    concrete.expanded_from = Some(mapping.label().to_string());
                    concrete.rocketmq_topic = target;
                    expanded.push(concrete);
                }
                Err(problem) => problems.push(problem),
            }
        }
    }
    let mut targets: HashMap<&str, &str> = HashMap::new();
    for mapping in &expanded {
        if let Some(other) = targets.insert(&mapping.rocketmq_topic, &mapping.kafka_topic) {
            problems.push(format!(
                "Kafka topics `{other}` and `{}` would both be copied into RocketMQ topic `{}`: change the \
                 rocketmq_topic template or narrow kafka_topic_regex",
                mapping.kafka_topic, mapping.rocketmq_topic
            ));
        }
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(BridgeConfig {
        mappings: expanded,
        ..config.clone()
    })
}

fn derive_name(mapping: &MappingConfig, topic: &str) -> Result<String, String> {
    let inserted = match &mapping.replace_illegal_chars {
        Some(replacement) => replace_illegal(topic, replacement),
        None => topic.to_string(),
    };
    let name = mapping.rocketmq_topic.replace(TOPIC_PLACEHOLDER, &inserted);
    if is_legal_rocketmq_topic(&name) {
        return match super::validate::reserved_rocketmq_topic(&name) {
            None => Ok(name),
            Some(reason) => Err(format!(
                "Kafka topic `{topic}` (matched by `{}`) gives RocketMQ topic `{name}`, which {reason}: change the \
                 rocketmq_topic template or narrow kafka_topic_regex",
                mapping.kafka_topic_regex.as_deref().unwrap_or_default()
            )),
        };
    }
    let hint = if mapping.replace_illegal_chars.is_none() {
        " set `replace_illegal_chars: \"_\"` on the mapping, or change the template".to_string()
    } else {
        format!(
            " shorten the template (the result must be 1-127 characters); for example `{}`",
            suggest_rocketmq_topic(&name)
        )
    };
    Err(format!(
        "Kafka topic `{topic}` (matched by `{}`) gives RocketMQ topic `{name}`, which is not a legal name \
         (1-127 of letters, digits, `%`, `|`, `_`, `-`):{hint}",
        mapping.kafka_topic_regex.as_deref().unwrap_or_default()
    ))
}

fn replace_illegal(topic: &str, replacement: &str) -> String {
    topic
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '%' | '|' | '_' | '-') {
                c.to_string()
            } else {
                replacement.to_string()
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::load_str;

    fn config_with(mappings: &str) -> BridgeConfig {
        let text = format!(
            "kafka:\n  bootstrap_servers: \"k:1\"\nrocketmq:\n  name_server: \"n:2\"\nmappings:\n{mappings}"
        );
        load_str(&text, "t.yaml", |_| None).unwrap_or_else(|e| panic!("{e}"))
    }

    fn topics(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn expands_matching_topics_with_derived_names() {
        let config = config_with(
            "  - kafka_topic_regex: \"orders\\\\..*\"\n    rocketmq_topic: \"mirror_{topic}\"\n    replace_illegal_chars: \"_\"\n\
             \x20 - kafka_topic: \"orders.special\"\n    rocketmq_topic: \"special\"\n",
        );
        let expanded = expand_regex_mappings(
            &config,
            &topics(&[
                "orders.eu",
                "orders.us",
                "orders.special",
                "payments",
                "__consumer_offsets",
                "xorders.eu",
            ]),
        )
        .unwrap();
        let pairs: Vec<(&str, &str)> = expanded
            .mappings
            .iter()
            .map(|m| (m.kafka_topic.as_str(), m.rocketmq_topic.as_str()))
            .collect();
        assert_eq!(
            pairs,
            [
                ("orders.eu", "mirror_orders_eu"),
                ("orders.us", "mirror_orders_us"),
                ("orders.special", "special")
            ]
        );
        assert_eq!(expanded.mappings[0].label(), "orders\\..*:orders.eu");
    }

    #[test]
    fn illegal_derived_names_regexes_matching_nothing_and_collisions_are_errors() {
        let config =
            config_with("  - kafka_topic_regex: \"a\\\\..*\"\n    rocketmq_topic: \"{topic}\"\n");
        let problems = expand_regex_mappings(&config, &topics(&["a.b"])).unwrap_err();
        assert_eq!(problems.len(), 1);
        assert!(problems[0].contains("Kafka topic `a.b` (matched by `a\\..*`) gives RocketMQ topic `a.b`, which is not a legal name"), "{problems:?}");
        assert!(
            problems[0].contains("set `replace_illegal_chars: \"_\"`"),
            "{problems:?}"
        );

        let problems = expand_regex_mappings(&config, &topics(&["b.c"])).unwrap_err();
        assert!(
            problems[0].contains("matches no Kafka topic"),
            "{problems:?}"
        );

        let colliding = config_with(
            "  - kafka_topic_regex: \"a.b|a_b\"\n    rocketmq_topic: \"x{topic}\"\n    replace_illegal_chars: \"_\"\n",
        );
        let problems = expand_regex_mappings(&colliding, &topics(&["a.b", "a_b"])).unwrap_err();
        assert!(
            problems[0].contains("would both be copied into RocketMQ topic `xa_b`"),
            "{problems:?}"
        );
    }
}
