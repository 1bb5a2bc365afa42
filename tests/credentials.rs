//! Wrong credentials, against brokers that require them: Tansu with SASL
//! (SCRAM) logins, and a RocketMQ broker with authentication on. `check`
//! names the cluster, what it refused and which settings to fix, exactly,
//! and never prints the secret. Each test starts brokers of its own
//! (`OwnBrokers`), so the shared test brokers stay open.

mod support;

use support::*;

const WRONG_SECRET: &str = "Wr0ng-s3cret-7f3a9c";

#[test]
fn wrong_kafka_sasl_credentials_are_named_by_check() {
    let shared = brokers();
    let own = OwnBrokers::start(&["kafka"], &[("BRIDGE_KAFKA_AUTHENTICATION", "1")]);
    let file = config_file(&format!(
        "kafka:\n  bootstrap_servers: \"{kafka}\"\n  group_id: \"{group}\"\n  properties:\n    \
         security.protocol: SASL_PLAINTEXT\n    sasl.mechanism: SCRAM-SHA-256\n    \
         sasl.username: bridge\n    sasl.password: \"{WRONG_SECRET}\"\n\
         rocketmq:\n  name_server: \"{namesrv}\"\n\
         mappings:\n  - kafka_topic: orders\n    rocketmq_topic: orders\n",
        kafka = own.kafka,
        group = unique("group"),
        namesrv = shared.name_server,
    ));
    let output = run(&[
        "check",
        "--config",
        file.path().to_str().unwrap(),
        "--timeout",
        "5s",
    ]);
    let text = format!("{}{}", stdout(&output), stderr(&output));
    assert_eq!(output.status.code(), Some(1), "{text}");
    // Tansu's memory store keeps no users, so every login is an unknown user.
    let expected = format!(
        "  - Kafka: Kafka at {} refused the credentials (SASL SCRAM authentication failed: broker \
         responded with unknown-user): check kafka.properties security.protocol, sasl.mechanism, \
         sasl.username and sasl.password (or their *_file keys)\n",
        own.kafka
    );
    assert!(
        text.contains(&expected),
        "expected:\n{expected}\ngot:\n{text}"
    );
    assert!(!text.contains(WRONG_SECRET), "the password leaked:\n{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_rocketmq_acl_credentials_are_named_by_check_and_by_run() {
    let shared = brokers();
    let own = OwnBrokers::start(
        &["namesrv", "broker"],
        &[("BRIDGE_BROKER_AUTH_USER", "bridge:Right-s3cret-1b2c")],
    );
    let base = unique("acl");
    let (kafka_topic, rocketmq_topic) = (format!("{base}.in"), format!("{base}_out"));
    let port = closed_port();
    let config = |secret: &str| {
        config_file(&format!(
            "kafka:\n  bootstrap_servers: \"{kafka}\"\n  group_id: \"{group}\"\n  properties:\n    \
             session.timeout.ms: \"6000\"\n\
             rocketmq:\n  name_server: \"{namesrv}\"\n  access_key: bridge\n  secret_key: \"{secret}\"\n\
             mappings:\n  - kafka_topic: \"{kafka_topic}\"\n    rocketmq_topic: \"{rocketmq_topic}\"\n\
             metrics:\n  listen: \"127.0.0.1:{port}\"\n",
            kafka = shared.kafka,
            group = unique("group"),
            namesrv = own.name_server,
        ))
    };
    // With the right secret the topics are made and `check` is satisfied.
    let right = config("Right-s3cret-1b2c");
    create_topics(right.path(), 2, 2);
    let ready = run(&["check", "--config", right.path().to_str().unwrap()]);
    assert_eq!(ready.status.code(), Some(0), "{}", stdout(&ready));

    let wrong = config(WRONG_SECRET);
    let output = run(&["check", "--config", wrong.path().to_str().unwrap()]);
    let text = format!("{}{}", stdout(&output), stderr(&output));
    assert_eq!(output.status.code(), Some(1), "{text}");
    let line = text
        .lines()
        .find(|l| l.starts_with("  - RocketMQ: "))
        .unwrap_or_else(|| panic!("no RocketMQ problem:\n{text}"));
    // The broker's address is whatever it registered; the rest is exact.
    let (prefix, rest) = line.split_at("  - RocketMQ: RocketMQ broker 127.0.0.1:".len());
    assert_eq!(prefix, "  - RocketMQ: RocketMQ broker 127.0.0.1:", "{text}");
    let after_port = rest.trim_start_matches(|c: char| c.is_ascii_digit());
    assert_eq!(
        after_port,
        " refused the credentials (Authentication credentials are invalid): check \
         rocketmq.access_key and rocketmq.secret_key (or their *_file keys), and the user's \
         permissions on the broker",
        "{text}"
    );
    assert!(!text.contains(WRONG_SECRET), "the secret leaked:\n{text}");

    // `run` holds the records (nothing is committed) and says why it cannot send.
    produce(
        &kafka_producer(&shared.kafka),
        &kafka_topic,
        &keyed_records("acl", 20, 5),
    )
    .await;
    // The first call to the broker is the restart scan's read of the queues.
    let mut bridge = BridgeProcess::start(wrong.path());
    let refused = "the broker refused the credentials (";
    assert!(
        bridge.wait_for_log(refused, 1, std::time::Duration::from_secs(60)),
        "{}",
        bridge.logs()
    );
    let readyz = wait_for_http(
        port,
        "/readyz",
        std::time::Duration::from_secs(30),
        |s, b| s == 503 && b.contains("\"rocketmq\":\"reads failing\""),
    )
    .await;
    let logs = bridge.logs();
    bridge.stop_gracefully(std::time::Duration::from_secs(30));
    assert!(matches!(readyz, Some((503, _))), "{readyz:?}");
    let failure = logs
        .lines()
        .find(|l| l.contains(refused))
        .expect("checked above");
    assert!(
        failure.contains(
            "): check rocketmq.access_key and rocketmq.secret_key, and the user's permissions on the topic"
        ),
        "{failure}"
    );
    assert!(!logs.contains(WRONG_SECRET), "the secret leaked:\n{logs}");
}
