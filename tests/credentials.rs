//! Credentials, against brokers that require them: Apache Kafka taking only
//! SASL/SCRAM logins (SASL_PLAINTEXT), and Apache RocketMQ with
//! authentication (ACL 2.0) on. With wrong ones, `check` names the cluster,
//! what it refused and which settings to fix, exactly; with the right ones
//! it passes and `run` copies. No secret is ever printed or served. Each
//! test starts brokers of its own (`OwnBrokers`), so the shared test
//! brokers stay open.

use std::time::Duration;

use crate::support::*;

const WRONG_SECRET: &str = "Wr0ng-s3cret-7f3a9c";

/// `check` until it exits 0 or 30 s pass; its last output. Apache Kafka
/// answers metadata requests from a cache its controller updates shortly
/// after CreateTopics returns, so a `check` right after `create-topics`
/// may still find the new Kafka topic missing.
fn check_until_ready(config: &str) -> std::process::Output {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let output = run(&["check", "--config", config]);
        if output.status.code() == Some(0) || std::time::Instant::now() > deadline {
            return output;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

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
    // Apache Kafka's answer to a wrong SCRAM password, as librdkafka reports it.
    let expected = format!(
        "  - Kafka: Kafka at {} refused the credentials (Authentication failed during \
         authentication due to invalid credentials with SASL mechanism SCRAM-SHA-256): check \
         kafka.properties security.protocol, sasl.mechanism, sasl.username and sasl.password \
         (or their *_file keys)\n",
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
    let ready = check_until_ready(right.path().to_str().unwrap());
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
        // Apache RocketMQ's answer to a wrong secret key.
        " refused the credentials (check signature failed.): check \
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

/// The right credentials on both sides: Kafka with SASL_PLAINTEXT and
/// SCRAM-SHA-256 only, RocketMQ with authentication (ACL 2.0) on. `check`
/// passes, `run` copies every record once and in order, and neither secret
/// shows in `check`'s output, the bridge's logs, `/metrics` or `/status`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn right_credentials_pass_check_and_copy_without_showing_the_secrets() {
    const KAFKA_SECRET: &str = "Kafka-r1ght-s3cret-5e8d";
    const ROCKETMQ_SECRET: &str = "Rmq-r1ght-s3cret-2c4f";
    let kafka_user = format!("bridge:{KAFKA_SECRET}");
    let rocketmq_user = format!("bridge:{ROCKETMQ_SECRET}");
    let own = {
        let settings = [
            ("BRIDGE_KAFKA_AUTH_USER", kafka_user.clone()),
            ("BRIDGE_BROKER_AUTH_USER", rocketmq_user.clone()),
        ];
        tokio::task::spawn_blocking(move || {
            let settings: Vec<(&str, &str)> =
                settings.iter().map(|(k, v)| (*k, v.as_str())).collect();
            OwnBrokers::start_cluster(&[], 1, 1, &settings)
        })
        .await
        .expect("brokers.sh start")
    };
    let base = unique("auth");
    let (kafka_topic, rocketmq_topic) = (format!("{base}.in"), format!("{base}_out"));
    let port = closed_port();
    let file = config_file(&format!(
        "kafka:\n  bootstrap_servers: \"{kafka}\"\n  group_id: \"{group}\"\n  properties:\n    \
         session.timeout.ms: \"6000\"\n    security.protocol: SASL_PLAINTEXT\n    \
         sasl.mechanism: SCRAM-SHA-256\n    sasl.username: bridge\n    sasl.password: \"{KAFKA_SECRET}\"\n\
         rocketmq:\n  name_server: \"{namesrv}\"\n  access_key: bridge\n  secret_key: \"{ROCKETMQ_SECRET}\"\n\
         mappings:\n  - kafka_topic: \"{kafka_topic}\"\n    rocketmq_topic: \"{rocketmq_topic}\"\n\
         metrics:\n  listen: \"127.0.0.1:{port}\"\n",
        kafka = own.kafka,
        group = unique("group"),
        namesrv = own.name_server,
    ));
    let path = file.path().to_str().unwrap();
    let secret_in = |text: &str| {
        [KAFKA_SECRET, ROCKETMQ_SECRET]
            .into_iter()
            .find(|s| text.contains(s))
    };

    let created = run(&[
        "create-topics",
        "--config",
        path,
        "--partitions",
        "4",
        "--queues",
        "4",
    ]);
    let text = format!("{}{}", stdout(&created), stderr(&created));
    assert!(created.status.success(), "create-topics failed:\n{text}");
    assert_eq!(secret_in(&text), None, "a secret leaked:\n{text}");
    let checked = check_until_ready(path);
    let text = format!("{}{}", stdout(&checked), stderr(&checked));
    assert_eq!(checked.status.code(), Some(0), "{text}");
    assert_eq!(secret_in(&text), None, "a secret leaked:\n{text}");

    let producer = kafka_producer_with(
        &own.kafka,
        &[
            ("security.protocol", "SASL_PLAINTEXT"),
            ("sasl.mechanism", "SCRAM-SHA-256"),
            ("sasl.username", "bridge"),
            ("sasl.password", KAFKA_SECRET),
        ],
    );
    let total = produce(&producer, &kafka_topic, &keyed_records("auth", 5_000, 100))
        .await
        .len();
    let mut bridge = BridgeProcess::start_with_env(file.path(), &[]);
    let reader = Reader::with_credentials(&own.name_server, "bridge", ROCKETMQ_SECRET).await;
    reader
        .wait_for_all(&rocketmq_topic, total, Duration::from_secs(120))
        .await;
    let ready = wait_for_http(port, "/readyz", Duration::from_secs(30), |s, _| s == 200).await;
    let metrics = http_get(port, "/metrics")
        .map(|(_, body)| body)
        .unwrap_or_default();
    let status = http_get(port, "/status")
        .map(|(_, body)| body)
        .unwrap_or_default();
    bridge.stop_gracefully(Duration::from_secs(30));
    let messages = reader.read(&rocketmq_topic).await;
    reader.close().await;
    let logs = bridge.logs();

    assert!(matches!(ready, Some((200, _))), "{ready:?}\n{logs}");
    assert_eq!(
        assert_complete_and_ordered(&messages, total, 4),
        0,
        "duplicates"
    );
    assert!(metrics.contains("bridge_"), "no metrics:\n{metrics}");
    assert!(status.contains(&kafka_topic), "no status:\n{status}");
    for (what, text) in [
        ("logs", &logs),
        ("/metrics", &metrics),
        ("/status", &status),
    ] {
        assert_eq!(
            secret_in(text),
            None,
            "a secret leaked in the {what}:\n{text}"
        );
    }
}
