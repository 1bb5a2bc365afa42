//! Config errors with the user-facing text asserted, and good configs. The
//! bulk of the error cases is the data-driven corpus in `tests/bad-configs/`
//! (`tests/bad_configs.rs`).

use kafka_rocketmq_bridge::config::{self, BridgeConfig, ConfigError, Ordering};

const GOOD: &str = "\
kafka:
  bootstrap_servers: \"127.0.0.1:9092\"
  group_id: \"g\"
  properties:
    session.timeout.ms: 6000
rocketmq:
  name_server: \"127.0.0.1:9876;127.0.0.2:9876\"
  producer_group: \"p\"
mappings:
  - kafka_topic: \"orders.v1\"
    rocketmq_topic: \"orders_v1\"
    ordering: key_hash
  - kafka_topic: \"audit\"
    rocketmq_topic: \"audit\"
metrics:
  listen: \"127.0.0.1:9464\"
";

fn no_env(_: &str) -> Option<String> {
    None
}

fn load(text: &str) -> Result<BridgeConfig, ConfigError> {
    config::load_str(text, "bridge.yaml", no_env)
}

/// The full error text; each test asserts on its lines.
fn error_text(text: &str) -> String {
    match load(text) {
        Ok(_) => panic!("config was accepted:\n{text}"),
        Err(error) => error.to_string(),
    }
}

#[test]
fn a_good_config_loads_with_defaults() {
    let config = load(GOOD).expect("valid");
    assert_eq!(config.mappings.len(), 2);
    assert_eq!(config.mappings[0].ordering, Ordering::KeyHash);
    assert_eq!(config.mappings[1].ordering, Ordering::Partition);
    assert_eq!(
        config.kafka.properties["session.timeout.ms"].as_librdkafka_value(),
        "6000"
    );
    assert_eq!(config.metrics.listen.0.port(), 9464);
}

#[test]
fn shipped_configs_load() {
    for file in ["config/example.yaml", "config/demo.yaml"] {
        let text = std::fs::read_to_string(file).expect("shipped config");
        let config = config::load_str(&text, file, no_env).unwrap_or_else(|e| panic!("{e}"));
        assert!(!config.mappings.is_empty());
    }
}

#[test]
fn yaml_syntax_error_names_file_line_and_column() {
    let text = GOOD.replace("  group_id: \"g\"", "  group_id: [\"g\"");
    let message = error_text(&text);
    assert!(
        message.starts_with("bridge.yaml: 1 problem in the configuration"),
        "{message}"
    );
    assert!(message.contains("bridge.yaml:4:"), "{message}");
    assert!(message.contains("YAML syntax error"), "{message}");
}

#[test]
fn unknown_keys_are_rejected_with_the_nearest_valid_key() {
    let text = GOOD
        .replace("bootstrap_servers:", "bootstrap_server:")
        .replace("    ordering: key_hash", "    orderin: key_hash")
        .replace("metrics:", "metricz:");
    let message = error_text(&text);
    assert!(
        message.contains("bridge.yaml:2: kafka.bootstrap_server: unknown key `bootstrap_server`: did you mean `bootstrap_servers`?"),
        "{message}"
    );
    assert!(
        message.contains(
            "bridge.yaml:12: mappings[0].orderin: unknown key `orderin`: did you mean `ordering`?"
        ),
        "{message}"
    );
    assert!(
        message.contains("bridge.yaml:15: metricz: unknown key `metricz`: did you mean `metrics`?"),
        "{message}"
    );
    // The missing required key is reported too, in the same run.
    assert!(
        message.contains("kafka: required key `bootstrap_servers` is missing"),
        "{message}"
    );
}

#[test]
fn illegal_rocketmq_topic_is_refused_with_a_legal_suggestion() {
    let text = GOOD.replace(
        "rocketmq_topic: \"orders_v1\"",
        "rocketmq_topic: \"orders.v1\"",
    );
    let message = error_text(&text);
    assert!(
        message.contains(
            "bridge.yaml:11: mappings[0].rocketmq_topic: `orders.v1` is not a legal RocketMQ topic name \
             (1-127 of letters, digits, `%`, `|`, `_`, `-`): use `orders_v1`"
        ),
        "{message}"
    );
}

#[test]
fn duplicate_targets_and_sources_are_errors() {
    let text = GOOD
        .replace("rocketmq_topic: \"audit\"", "rocketmq_topic: \"orders_v1\"")
        .replace(
            "  - kafka_topic: \"audit\"",
            "  - kafka_topic: \"orders.v1\"",
        );
    let message = error_text(&text);
    assert!(
        message.contains("bridge.yaml:14: mappings[1].rocketmq_topic: `orders_v1` is already the target of mappings[0]"),
        "{message}"
    );
    assert!(
        message.contains(
            "bridge.yaml:13: mappings[1].kafka_topic: `orders.v1` is already mapped by mappings[0]"
        ),
        "{message}"
    );
}

#[test]
fn empty_or_missing_mapping_list_is_an_error() {
    let cut = GOOD.find("mappings:").unwrap();
    let end = GOOD.find("metrics:").unwrap();
    let empty = format!("{}mappings: []\n{}", &GOOD[..cut], &GOOD[end..]);
    assert!(
        error_text(&empty).contains("bridge.yaml:9: mappings: is empty: add at least one"),
        "{}",
        error_text(&empty)
    );
    let missing = format!("{}{}", &GOOD[..cut], &GOOD[end..]);
    assert!(error_text(&missing).contains("the `mappings` list is missing"));
}

#[test]
fn bad_listen_address_is_an_error() {
    let text = GOOD.replace("127.0.0.1:9464", "localhost-9464");
    let message = error_text(&text);
    assert!(
        message.contains(
            "bridge.yaml:16: metrics.listen: `localhost-9464` is not a listen address: write IP:port, for example 0.0.0.0:9464"
        ),
        "{message}"
    );
}

#[test]
fn wrong_types_name_the_field() {
    let text = GOOD.replace("group_id: \"g\"", "group_id: [1, 2]");
    let message = error_text(&text);
    assert!(
        message
            .contains("bridge.yaml:3: kafka.group_id: invalid type: sequence, expected a string"),
        "{message}"
    );
}

#[test]
fn bridge_owned_kafka_properties_are_refused() {
    let text = GOOD.replace(
        "    session.timeout.ms: 6000",
        "    enable.auto.commit: true\n    group.id: x",
    );
    let message = error_text(&text);
    assert!(
        message.contains("bridge.yaml:5: kafka.properties.enable.auto.commit: is set by the bridge and cannot be overridden: the bridge commits only acknowledged offsets"),
        "{message}"
    );
    assert!(message.contains("kafka.properties.group.id: is set by the bridge and cannot be overridden: use kafka.group_id"), "{message}");
}

#[test]
fn half_of_the_rocketmq_credentials_is_an_error_that_hides_the_value() {
    let text = GOOD.replace(
        "  producer_group: \"p\"",
        "  producer_group: \"p\"\n  access_key: \"AK-SECRET-VALUE\"",
    );
    let message = error_text(&text);
    assert!(
        message.contains("rocketmq.access_key: is set but secret_key is not: set both or neither"),
        "{message}"
    );
    assert!(!message.contains("AK-SECRET-VALUE"), "{message}");
}

#[test]
fn env_substitution_with_defaults() {
    let text = GOOD
        .replace(
            "\"127.0.0.1:9092\"",
            "\"${KAFKA_HOST}:${KAFKA_PORT:-9092}\"",
        )
        .replace("group_id: \"g\"", "group_id: \"${GROUP:-fallback}\"");
    let env = |name: &str| (name == "KAFKA_HOST").then(|| "kafka-1.internal".to_string());
    let config = config::load_str(&text, "bridge.yaml", env).expect("valid");
    assert_eq!(config.kafka.bootstrap_servers, "kafka-1.internal:9092");
    assert_eq!(config.kafka.group_id, "fallback");
}

#[test]
fn empty_file_and_unreadable_file() {
    assert!(error_text("").contains("the file is empty: see config/example.yaml"));
    let missing = config::load_file(std::path::Path::new("/nonexistent/bridge.yaml")).unwrap_err();
    assert!(
        missing
            .to_string()
            .starts_with("cannot read config file /nonexistent/bridge.yaml: "),
        "{missing}"
    );
}

#[test]
fn debug_output_never_shows_secrets() {
    let text = GOOD
        .replace(
            "    session.timeout.ms: 6000",
            "    session.timeout.ms: 6000\n    sasl.password: \"${KAFKA_PASSWORD}\"",
        )
        .replace(
            "  producer_group: \"p\"",
            "  producer_group: \"p\"\n  access_key: \"AK\"\n  secret_key: \"${RMQ_SECRET}\"",
        );
    let env = |name: &str| match name {
        "KAFKA_PASSWORD" => Some("kafka-hunter2".to_string()),
        "RMQ_SECRET" => Some("rocketmq-hunter2".to_string()),
        _ => None,
    };
    let config = config::load_str(&text, "bridge.yaml", env).expect("valid");
    let shown = format!("{config:?}");
    assert!(!shown.contains("hunter2"), "{shown}");
    assert!(shown.contains("\"sasl.password\": \"***\""), "{shown}");
    assert!(shown.contains("session.timeout.ms"), "{shown}");
}

#[test]
fn rate_limits_parse_units_and_refuse_zero_and_orphan_bursts() {
    let limited = format!(
        "{GOOD}bridge:\n  max_in_flight_bytes: 8MiB\n  rate_limit:\n    messages_per_second: 1000\n    bytes_per_second: 10MiB\n"
    );
    let config = load(&limited).expect("valid limits");
    assert_eq!(config.bridge.max_in_flight_bytes.0, 8 << 20);
    assert_eq!(config.bridge.rate_limit.messages_per_second, Some(1000));
    assert_eq!(
        config.bridge.rate_limit.bytes_per_second.map(|b| b.0),
        Some(10 << 20)
    );
    assert_eq!(
        load(GOOD).expect("valid").bridge.max_in_flight_bytes.0,
        64 << 20
    );

    let bad = GOOD.replace(
        "    ordering: key_hash\n",
        "    ordering: key_hash\n    rate_limit:\n      messages_per_second: 0\n      burst_bytes: 1MiB\n      bytes_per_secnd: 5\n",
    );
    let text = error_text(&bad);
    assert!(
        text.contains("bridge.yaml:14: mappings[0].rate_limit.messages_per_second: must be at least 1 (leave it out for no limit)"),
        "{text}"
    );
    assert!(
        text.contains("bridge.yaml:15: mappings[0].rate_limit.burst_bytes: has no effect without bytes_per_second"),
        "{text}"
    );
    assert!(
        text.contains("bridge.yaml:16: mappings[0].rate_limit.bytes_per_secnd: unknown key `bytes_per_secnd`: did you mean `bytes_per_second`?"),
        "{text}"
    );
    let negative = format!("{GOOD}bridge:\n  rate_limit:\n    messages_per_second: -5\n");
    let text = error_text(&negative);
    assert!(
        text.contains("bridge.rate_limit.messages_per_second"),
        "{text}"
    );
}

#[test]
fn unquoted_numbers_are_read_where_they_make_sense() {
    // A timestamp and a byte count are naturally written unquoted; YAML reads
    // them as numbers, which used to be refused ("expected a string").
    let text = GOOD.replace(
        "  group_id: \"g\"",
        "  group_id: \"g\"\n  start_from: 1700000000000",
    );
    let text = format!("{text}bridge:\n  max_batch_bytes: 65536\n");
    let config = load(&text).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        config.kafka.start_from,
        config::StartFrom::Timestamp(1_700_000_000_000)
    );
    assert_eq!(config.bridge.max_batch_bytes.0, 65536);
}
