//! The dual-read helpers of other languages against the real brokers. The
//! Java helper (clients/java), built with Maven, runs as its example
//! consumer on each side: the same toy logic gives MATCH; the example's
//! `--bug` (the `amount` header read from the RocketMQ property instead of
//! through `KafkaView`) gives MISMATCH naming exactly the record whose header
//! was repeated. The Python example (clients/python) writes the Kafka side of
//! a third group, whose RocketMQ side the Java example writes: the two
//! languages' ledgers MATCH.

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use rdkafka::Message as _;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Headers as _;

use crate::support::*;

const RECORDS: usize = 200;

/// What a setup script in `scripts/` printed: a classpath, an interpreter.
fn prepared_by(script: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("scripts")
        .join(script);
    let output = Command::new(&path)
        .output()
        .unwrap_or_else(|e| panic!("{} does not run: {e}", path.display()));
    assert!(output.status.success(), "{script}: {}", printed(&output));
    stdout(&output).trim().to_string()
}

fn example(classpath: &str, args: &[&str]) -> Output {
    let output = Command::new("java")
        .args([
            "-Xmx256m",
            "-cp",
            classpath,
            "org.kafkarocketmqbridge.dualread.example.DualReadExample",
        ])
        .args(args)
        .output()
        .expect("java runs");
    assert!(
        output.status.success(),
        "DualReadExample {args:?}: {}",
        printed(&output)
    );
    output
}

/// How many `amount` headers the Kafka record at `partition`/`offset` has.
fn amount_headers(bootstrap: &str, topic: &str, partition: i32, offset: i64) -> usize {
    let consumer: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", unique("amount-headers"))
        .create()
        .expect("consumer");
    let mut list = rdkafka::TopicPartitionList::new();
    list.add_partition_offset(topic, partition, rdkafka::Offset::Offset(offset))
        .expect("partition");
    consumer.assign(&list).expect("assign");
    let started = std::time::Instant::now();
    loop {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no record at {partition}/{offset}"
        );
        if let Some(message) = consumer.poll(Duration::from_millis(200)) {
            let message = message.expect("record");
            return message
                .headers()
                .map_or(0, |h| h.iter().filter(|h| h.key == "amount").count());
        }
    }
}

/// Which example consumer writes the Kafka side's ledger.
#[derive(Clone, Copy, PartialEq)]
enum KafkaSide {
    Java,
    Python,
}

/// Everything a consumer run needs to know about where the records are.
struct Setup<'a> {
    classpath: &'a str,
    brokers: &'a TestBrokers,
    kafka_topic: &'a str,
    rocketmq_topic: &'a str,
    records: String,
}

impl Setup<'_> {
    fn consume_kafka(&self, group: &str, with: KafkaSide) {
        let common = [
            "--bootstrap",
            &self.brokers.kafka,
            "--topic",
            self.kafka_topic,
            "--group",
            group,
            "--records",
            &self.records,
        ];
        if with == KafkaSide::Java {
            let mut args = vec!["consume", "--side", "kafka"];
            args.extend(common);
            example(self.classpath, &args);
            return;
        }
        let script =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("clients/python/example_consumer.py");
        let output = Command::new(prepared_by("python-client.sh"))
            .arg(script)
            .args(common)
            .output()
            .expect("python runs");
        assert!(output.status.success(), "{}", printed(&output));
    }

    fn consume_rocketmq(&self, group: &str, bug: bool) {
        let mut args = vec![
            "consume",
            "--side",
            "rocketmq",
            "--bootstrap",
            &self.brokers.kafka,
            "--name-server",
            &self.brokers.name_server,
            "--rocketmq-topic",
            self.rocketmq_topic,
            "--group",
            group,
            "--records",
            &self.records,
        ];
        if bug {
            args.push("--bug");
        }
        let output = example(self.classpath, &args);
        assert!(
            stdout(&output).contains(&format!("handled {RECORDS} records")),
            "{}",
            printed(&output)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn java_and_python_helpers_record_both_sides_and_a_misread_header_is_named() {
    away_from_midnight().await;
    let classpath = prepared_by("java-client.sh");
    let brokers = brokers();
    let base = unique("clientsdr");
    let (kafka_topic, rocketmq_topic) = (format!("{base}.in"), format!("{base}_out"));
    let groups = ["java", "buggy", "python"].map(|g| format!("{base}-{g}"));
    // A metrics port of its own: other tests' bridges run at the same time.
    let text = config_text(
        &brokers.kafka,
        &brokers.name_server,
        &[(&kafka_topic, &rocketmq_topic)],
    );
    let file = config_file(&format!(
        "{text}metrics:\n  listen: \"127.0.0.1:{}\"\n",
        closed_port()
    ));
    create_topics_and_ledgers(file.path(), 3, 3, &groups);
    let setup = Setup {
        classpath: &classpath,
        brokers: &brokers,
        kafka_topic: &kafka_topic,
        rocketmq_topic: &rocketmq_topic,
        records: RECORDS.to_string(),
    };
    example(
        &classpath,
        &[
            "produce",
            "--bootstrap",
            &brokers.kafka,
            "--topic",
            &kafka_topic,
            "--records",
            &setup.records,
            "--days-ago",
            "1",
        ],
    );
    let mut bridge = BridgeProcess::start(file.path());
    let reader = Reader::new(&brokers.name_server).await;
    let copied = reader
        .wait_for_all(&rocketmq_topic, RECORDS, Duration::from_secs(120))
        .await;
    reader.close().await;
    bridge.stop_gracefully(Duration::from_secs(30));
    assert_eq!(copied.len(), RECORDS, "the bridge copied every record");

    for (group, with, bug) in [
        (&groups[0], KafkaSide::Java, false),
        (&groups[1], KafkaSide::Java, true),
        (&groups[2], KafkaSide::Python, false),
    ] {
        setup.consume_kafka(group, with);
        setup.consume_rocketmq(group, bug);
    }

    let day = utc_day(yesterday_start_ms());
    let compare = |group: &str| compare_results(file.path(), group, &day, &day);
    for group in [&groups[0], &groups[2]] {
        let (code, report) = compare(group);
        assert_eq!(
            (code, report["rows"][0]["verdict"].as_str()),
            (Some(0), Some("MATCH")),
            "{report:#}"
        );
        assert_eq!(
            report["rows"][0]["same"].as_u64(),
            Some(RECORDS as u64),
            "{report:#}"
        );
        assert_eq!(
            report["rows"][0]["rocketmq"]["read"].as_u64(),
            Some(RECORDS as u64),
            "{report:#}"
        );
    }

    let (code, report) = compare(&groups[1]);
    assert_eq!(
        (code, report["rows"][0]["verdict"].as_str()),
        (Some(1), Some("MISMATCH")),
        "{report:#}"
    );
    let differences = report["rows"][0]["differences"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(differences.len(), 1, "{report:#}");
    assert_eq!(differences[0]["kind"], "results_differ", "{report:#}");
    let (partition, offset) = (
        differences[0]["partition"].as_i64().expect("partition") as i32,
        differences[0]["offset"].as_i64().expect("offset"),
    );
    assert_eq!(
        amount_headers(&brokers.kafka, &kafka_topic, partition, offset),
        2,
        "the named record is the one with two amount headers"
    );
}
