//! `check` and `create-topics` against the real local brokers.

use std::time::{Duration, Instant};

use crate::support::*;

#[test]
fn check_is_ready_once_create_topics_made_both_sides() {
    let brokers = brokers();
    let kafka_topic = format!("{}.orders", unique("check"));
    let rocketmq_topic = kafka_topic.replace('.', "_");
    // A fence topic of its own: the shared broker has the default one.
    let fence_topic = format!("{}_fence", unique("check"));
    let file = config_file(&with_fence_topic(
        &config_text(
            &brokers.kafka,
            &brokers.name_server,
            &[(&kafka_topic, &rocketmq_topic)],
        ),
        &fence_topic,
    ));
    let path = file.path().to_str().unwrap();

    let before = run(&["check", "--config", path]);
    assert_eq!(before.status.code(), Some(1), "{}", stdout(&before));
    let text = stdout(&before);
    assert!(
        text.contains(&format!(
            "Kafka topic `{kafka_topic}` does not exist at {}",
            brokers.kafka
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "RocketMQ topic `{rocketmq_topic}` does not exist at {}",
            brokers.name_server
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "or run `kafka-rocketmq-bridge create-topics --config {path}`"
        )),
        "{text}"
    );
    assert!(text.contains("NOT ready"), "{text}");
    assert!(
        text.contains(&format!(
            "RocketMQ fence topic `{fence_topic}` does not exist: the bridge runs without write fences"
        )),
        "{text}"
    );

    let created = run(&[
        "create-topics",
        "--config",
        path,
        "--partitions",
        "3",
        "--queues",
        "5",
    ]);
    assert!(
        created.status.success(),
        "{}{}",
        stdout(&created),
        stderr(&created)
    );
    let text = stdout(&created);
    assert!(
        text.contains(&format!(
            "kafka     {kafka_topic}: created with 3 partitions"
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "rocketmq  {rocketmq_topic}: created with 5 queues"
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "rocketmq  {fence_topic}: created with 1 queue on cluster DefaultCluster (the bridge's fence topic)"
        )),
        "{text}"
    );

    // Creating again leaves both alone.
    let again = stdout(&run(&["create-topics", "--config", path]));
    assert!(
        again.contains(&format!(
            "kafka     {kafka_topic}: exists with 3 partitions, left as is"
        )),
        "{again}"
    );
    assert!(
        again.contains(&format!(
            "rocketmq  {rocketmq_topic}: exists with 5 queues, left as is"
        )),
        "{again}"
    );

    let after = run(&["check", "--config", path]);
    let text = stdout(&after);
    assert_eq!(after.status.code(), Some(0), "{text}");
    assert!(!text.contains("fence topic"), "{text}");
    let row = text
        .lines()
        .find(|l| l.starts_with(&kafka_topic))
        .unwrap_or_else(|| panic!("no plan row:\n{text}"));
    let cells: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(
        cells,
        [
            kafka_topic.as_str(),
            kafka_topic.as_str(),
            "3",
            rocketmq_topic.as_str(),
            "5",
            "partition"
        ]
    );
    // 3 partitions over 5 queues: the operator is told two queues stay idle.
    assert!(
        text.contains("only 3 of the 5 queues will receive messages"),
        "{text}"
    );
    assert!(text.contains("ready: the bridge can start"), "{text}");
}

#[test]
fn check_reports_clusters_that_are_down_within_the_deadline() {
    let (kafka, name_server) = (
        format!("127.0.0.1:{}", closed_port()),
        format!("127.0.0.1:{}", closed_port()),
    );
    let file = config_file(&config_text(&kafka, &name_server, &[("a", "a")]));
    let started = Instant::now();
    let output = run(&[
        "check",
        "--config",
        file.path().to_str().unwrap(),
        "--timeout",
        "2s",
    ]);
    let elapsed = started.elapsed();
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(1), "{text}");
    assert!(elapsed < Duration::from_secs(10), "check took {elapsed:?}");
    assert!(
        text.contains(&format!("Kafka     {kafka:<24} NOT reachable")),
        "{text}"
    );
    assert!(
        text.contains(&format!("RocketMQ  {name_server:<24} NOT reachable")),
        "{text}"
    );
    assert!(
        text.contains(&format!("cannot reach Kafka at {kafka} within 2s")),
        "{text}"
    );
    assert!(
        text.contains(&format!("RocketMQ name server {name_server}: ")),
        "{text}"
    );
    assert!(text.contains("Check rocketmq.name_server"), "{text}");
    // Unknown counts are shown as such, not as missing topics.
    assert!(!text.contains("does not exist"), "{text}");
}

#[test]
fn check_reports_only_the_cluster_that_is_down() {
    let brokers = brokers();
    let name_server = format!("127.0.0.1:{}", closed_port());
    let file = config_file(&config_text(
        &brokers.kafka,
        &name_server,
        &[("never-created-topic", "x")],
    ));
    let output = run(&[
        "check",
        "--config",
        file.path().to_str().unwrap(),
        "--timeout",
        "2s",
    ]);
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(1), "{text}");
    assert!(
        text.contains(&format!("Kafka     {:<24} reachable", brokers.kafka)),
        "{text}"
    );
    assert!(
        text.contains("Kafka topic `never-created-topic` does not exist"),
        "{text}"
    );
    assert!(text.contains("NOT reachable"), "{text}");
}

#[test]
fn check_exits_1_with_located_problems_for_a_bad_config() {
    let file = config_file(
        "kafka:\n  bootstrap_servers: \"x:1\"\nrocketmq:\n  name_server: \"y:2\"\nmappings:\n  - kafka_topic: a.b\n    rocketmq_topic: a.b\n",
    );
    let path = file.path().to_str().unwrap();
    let output = run(&["check", "--config", path]);
    assert_eq!(output.status.code(), Some(1));
    let text = stderr(&output);
    assert!(
        text.contains(&format!(
            "{path}:7: mappings[0].rocketmq_topic: `a.b` is not a legal RocketMQ topic name"
        )),
        "{text}"
    );
    assert!(stdout(&output).is_empty());
}

#[test]
fn config_path_can_come_from_bridge_config() {
    let file = config_file("kafka: [");
    let output = std::process::Command::new(binary())
        .args(["check"])
        .env("BRIDGE_CONFIG", file.path())
        .output()
        .expect("run");
    assert_eq!(output.status.code(), Some(1));
    let expected = format!("{}:2:1: YAML syntax error", file.path().display());
    assert!(stderr(&output).contains(&expected), "{}", stderr(&output));
}
