//! `verify` the way back (rocketmq_to_kafka) against the real brokers:
//! messages copied by the binary MATCH, with those the policies skip
//! accounted for; an exact re-sent copy is a duplicate and still MATCHes;
//! an altered duplicate and a copy of a message RocketMQ never had turn the
//! day into MISMATCH and are named; a day not copied to its end yet is
//! INCOMPLETE.
//!
//! RocketMQ sets a message's born timestamp itself at send, so the day is
//! today's, judged with `--as-of` once the bridge has copied everything.

use std::time::Duration;

use kafka_rocketmq_bridge::mapping::reverse::{self, RocketMqMessage};
use rocketmq_model::common::message::message_single::Message;
use serde_json::Value;

use crate::support::*;

/// A way-back mapping that skips empty bodies and suspect provenance.
fn config(brokers: &TestBrokers, rocketmq_topic: &str, kafka_topic: &str) -> String {
    let group = unique("vback").replace(['.', '-'], "_");
    let text = config_text(&brokers.kafka, &brokers.name_server, &[]).replace(
        "rocketmq:\n",
        &format!("rocketmq:\n  consumer_group: \"{group}\"\n"),
    );
    format!(
        "{text}  - direction: rocketmq_to_kafka\n    rocketmq_topic: \"{rocketmq_topic}\"\n    \
         kafka_topic: \"{kafka_topic}\"\n    on_empty_value: skip\n    on_suspect_provenance: skip\n\
         metrics:\n  listen: \"127.0.0.1:{}\"\n\
         bridge:\n  commit_interval: 1s\n",
        closed_port()
    )
}

/// `verify --json` of today, judged as if the day were over.
fn verify_today(config: &std::path::Path) -> (i32, Value, String) {
    let day = utc_day(chrono::Utc::now().timestamp_millis());
    let as_of = format!("{day}T23:59:59.999Z");
    let as_of = chrono::DateTime::parse_from_rfc3339(&as_of)
        .map(|t| (t + chrono::Duration::milliseconds(1)).to_rfc3339())
        .expect("an instant");
    let path = config.to_str().expect("UTF-8 path");
    let output = run(&[
        "verify", "--config", path, "--from", &day, "--to", &day, "--as-of", &as_of, "--json",
    ]);
    let report = serde_json::from_str(&stdout(&output)).unwrap_or_else(|e| {
        panic!(
            "verify did not print JSON ({e}): {}{}",
            stdout(&output),
            stderr(&output)
        )
    });
    (output.status.code().unwrap_or(-1), report, stderr(&output))
}

fn header<'a>(record: &'a ReadBack, name: &str) -> Option<&'a str> {
    record
        .headers
        .iter()
        .find(|(n, _)| n == name)
        .and_then(|(_, v)| v.as_deref())
        .and_then(|v| std::str::from_utf8(v).ok())
}

/// `copy` written again to Kafka, with `value` instead of its own.
fn again(copy: &ReadBack, value: &[u8]) -> TestRecord {
    TestRecord {
        key: copy.key.clone(),
        value: Some(value.to_vec()),
        headers: copy.headers.clone(),
        partition: Some(0),
        timestamp: copy.timestamp,
    }
}

/// A new topic pair with its one-queue, one-partition topics, and the
/// config of its way back; away from midnight, so that the day stays today.
async fn way_back_pair() -> (TestBrokers, String, String, tempfile::NamedTempFile) {
    away_from_midnight().await;
    let brokers = brokers();
    let base = unique("vback");
    let (rocketmq_topic, kafka_topic) = (format!("{base}_src"), format!("{base}.back"));
    let file = config_file(&config(&brokers, &rocketmq_topic, &kafka_topic));
    create_topics(file.path(), 1, 1);
    (brokers, rocketmq_topic, kafka_topic, file)
}

/// Messages the way back has not copied yet make the day INCOMPLETE, not
/// MISMATCH: its group has committed nothing past the day's messages, and
/// the note names the queue. Once the bridge has copied and committed them, the day MATCHes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_day_the_way_back_has_not_copied_yet_is_incomplete() {
    let (brokers, rocketmq_topic, kafka_topic, file) = way_back_pair().await;
    let total = 20;
    let messages = (0..total)
        .map(|n| {
            Message::builder()
                .topic(&rocketmq_topic)
                .body_slice(format!("body-{n}").as_bytes())
                .build_unchecked()
        })
        .collect();
    send_to_queue(&brokers.name_server, &rocketmq_topic, 0, messages, None).await;

    let (code, report, _) = verify_today(file.path());
    let row = &report["rows"][0];
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(row["verdict"], "INCOMPLETE", "{row:#}");
    assert_eq!(row["copies"], 0, "{row:#}");
    // The broker answers 0 (or nothing) for a group that never committed.
    let notes = row["notes"].to_string();
    assert!(
        notes.contains("queue broker-a#0 (group")
            && notes.contains(&format!("last record is at offset {}", total - 1)),
        "{row:#}"
    );

    let mut bridge = BridgeProcess::start(file.path());
    wait_for_kafka_copies(&brokers.kafka, &kafka_topic, 1, total, &bridge).await;
    // The graceful stop commits what was copied.
    bridge.stop_gracefully(Duration::from_secs(30));
    let (code, report, _) = verify_today(file.path());
    let row = &report["rows"][0];
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(row["verdict"], "MATCH", "{row:#}");
    assert_eq!(row["copies"], total, "{row:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copied_messages_match_and_a_tampered_copy_is_named() {
    let (brokers, rocketmq_topic, kafka_topic, file) = way_back_pair().await;

    let total = 50;
    let mut messages: Vec<Message> = (0..total)
        .map(|n| {
            Message::builder()
                .topic(&rocketmq_topic)
                .body_slice(format!("body-{n}").as_bytes())
                .keys(vec![format!("k{}", n % 7)])
                .tags(format!("t{}", n % 3))
                .raw_property("n", n.to_string())
                .expect("a legal property")
                .build_unchecked()
        })
        .collect();
    // A forward copy's properties set by a producer: skipped as suspect.
    messages.push(
        Message::builder()
            .topic(&rocketmq_topic)
            .body_slice(b"forged")
            .raw_property("KAFKA_TOPIC", "orders")
            .and_then(|b| b.raw_property("KAFKA_PARTITION", "0"))
            .expect("legal properties")
            .build_unchecked(),
    );
    send_to_queue(&brokers.name_server, &rocketmq_topic, 0, messages, None).await;

    let mut bridge = BridgeProcess::start(file.path());
    wait_for_kafka_copies(&brokers.kafka, &kafka_topic, 1, total as i64, &bridge).await;
    bridge.stop_gracefully(Duration::from_secs(30));

    let (code, report, errors) = verify_today(file.path());
    assert!(!errors.contains("leaves out"), "{errors}");
    let row = &report["rows"][0];
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(row["direction"], "rocketmq_to_kafka", "{row:#}");
    assert_eq!(row["verdict"], "MATCH", "{row:#}");
    assert_eq!(row["source_records"], total + 1, "{row:#}");
    assert_eq!(row["expected"], total, "{row:#}");
    assert_eq!(row["copies"], total, "{row:#}");
    assert_eq!(row["skipped"]["suspect_provenance"], 1, "{row:#}");
    assert_eq!(row["duplicates"], 0, "{row:#}");
    assert_eq!(row["foreign"], 0, "{row:#}");
    assert_eq!(row["digests_match"], true, "{row:#}");

    // The copy of message 10 written again as it is: a duplicate, told
    // apart by its provenance, and the day still MATCHes.
    let copies = read_partition(&brokers.kafka, &kafka_topic, 0);
    let copy = copies
        .iter()
        .find(|c| c.value.as_deref() == Some(&b"body-10"[..]))
        .expect("the copy of message 10");
    let queue_offset: i64 = header(copy, reverse::ROCKETMQ_QUEUE_OFFSET)
        .and_then(|o| o.parse().ok())
        .expect("provenance");
    let producer = kafka_producer(&brokers.kafka);
    produce(&producer, &kafka_topic, &[again(copy, b"body-10")]).await;
    let (code, report, _) = verify_today(file.path());
    let row = &report["rows"][0];
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(row["verdict"], "MATCH", "{row:#}");
    assert_eq!(row["duplicates"], 1, "{row:#}");
    assert_eq!(row["copies"], total, "{row:#}");
    let listed = &row["duplicate_copies"][0];
    assert_eq!(listed["coordinates"]["offset"], queue_offset, "{row:#}");
    assert_eq!(listed["coordinates"]["broker"], "broker-a", "{row:#}");

    // Again with another value: a duplicate whose content differs.
    produce(
        &producer,
        &kafka_topic,
        &[again(copy, b"not what RocketMQ holds")],
    )
    .await;
    // And a copy, checked out, of a message RocketMQ never had.
    let phantom = RocketMqMessage {
        topic: rocketmq_topic.as_str().into(),
        broker: "broker-a".into(),
        queue_id: 0,
        queue_offset: 1_000_000,
        msg_id: None,
        keys: None,
        tags: None,
        born_timestamp_ms: copy.timestamp.expect("a timestamp"),
        store_timestamp_ms: copy.timestamp.expect("a timestamp"),
        body: b"phantom".to_vec().into(),
        properties: Vec::new(),
    };
    let headers = [
        (reverse::ROCKETMQ_TOPIC, rocketmq_topic.clone()),
        (reverse::ROCKETMQ_BROKER, "broker-a".to_string()),
        (reverse::ROCKETMQ_QUEUE_ID, "0".to_string()),
        (reverse::ROCKETMQ_QUEUE_OFFSET, "1000000".to_string()),
        (
            reverse::ROCKETMQ_COPY_ID,
            reverse::copy_id(&phantom, &kafka_topic),
        ),
    ];
    let forged = TestRecord {
        key: None,
        value: Some(b"phantom".to_vec()),
        headers: headers
            .iter()
            .map(|(n, v)| (n.to_string(), Some(v.as_bytes().to_vec())))
            .collect(),
        partition: Some(0),
        timestamp: copy.timestamp,
    };
    produce(&producer, &kafka_topic, &[forged]).await;

    let (code, report, _) = verify_today(file.path());
    let row = &report["rows"][0];
    assert_eq!(code, 1, "{report:#}");
    assert_eq!(row["verdict"], "MISMATCH", "{row:#}");
    assert_eq!(row["copies"], total + 1, "{row:#}");
    let differences = row["differences"].as_array().cloned().unwrap_or_default();
    let named = |kind: &str| {
        differences
            .iter()
            .find(|d| d["kind"] == kind)
            .cloned()
            .unwrap_or_else(|| panic!("no {kind} difference: {row:#}"))
    };
    let altered = named("altered_duplicate");
    assert_eq!(altered["coordinates"]["topic"], rocketmq_topic.as_str());
    assert_eq!(altered["coordinates"]["offset"], queue_offset);
    let extra = named("extra");
    assert_eq!(extra["coordinates"]["offset"], 1_000_000, "{row:#}");
    assert_eq!(extra["coordinates"]["broker"], "broker-a", "{row:#}");

    // The table for people says the direction and names the record.
    let path = file.path().to_str().expect("UTF-8 path");
    let day = utc_day(chrono::Utc::now().timestamp_millis());
    let output = run(&[
        "verify",
        "--config",
        path,
        "--from",
        &day,
        "--to",
        &day,
        "--as-of",
        "2100-01-01T00:00:00Z",
    ]);
    assert_eq!(output.status.code(), Some(1));
    let table = stdout(&output);
    assert!(
        table.contains("rocketmq_to_kafka")
            && table.contains("MISMATCH")
            && table.contains(&format!("{rocketmq_topic} broker-a queue 0 offset 1000000")),
        "{table}"
    );
}
