//! `verify` against the real brokers: a replicated multi-day dataset
//! MATCHes; tampering straight in RocketMQ turns a day into MISMATCH and
//! names the record; a record skipped by policy is an accounted difference;
//! duplicates after a kill -9 still MATCH and are counted as duplicates.

use std::time::Duration;

use crate::support::*;
use chrono::{NaiveDate, Utc};
use serde_json::Value;

const DAY_MS: i64 = 86_400_000;

/// A mapping with `extra_mapping` keys, committing every `commit_interval`,
/// its topics created with 4 partitions and 4 queues.
/// `bridge` is the body of the config's `bridge:` section.
fn scenario(extra_mapping: &str, bridge: &str) -> (tempfile::NamedTempFile, String, String) {
    let brokers = brokers();
    let base = unique("verify");
    let (kafka_topic, rocketmq_topic) = (format!("{base}.in"), format!("{base}_out"));
    let text = config_text(
        &brokers.kafka,
        &brokers.name_server,
        &[(&kafka_topic, &rocketmq_topic)],
    );
    let file = config_file(&format!(
        "{text}{extra_mapping}metrics:\n  listen: \"127.0.0.1:{}\"\nbridge:\n{bridge}",
        closed_port()
    ));
    create_topics(file.path(), 4, 4);
    (file, kafka_topic, rocketmq_topic)
}

/// Midnight UTC `days_ago` days before today.
fn day_start(days_ago: i64) -> i64 {
    let today = Utc::now().timestamp_millis() / DAY_MS * DAY_MS;
    today - days_ago * DAY_MS
}

fn day_name(millis: i64) -> String {
    chrono::DateTime::from_timestamp_millis(millis)
        .map(|t| t.date_naive())
        .unwrap_or(NaiveDate::MIN)
        .to_string()
}

/// `per_day` keyed records on each of the three days before today.
fn three_days(per_day: usize) -> Vec<TestRecord> {
    (1..=3)
        .flat_map(|days_ago| {
            keyed_records(&format!("d{days_ago}"), per_day, 20)
                .into_iter()
                .enumerate()
                .map(move |(i, mut record)| {
                    record.timestamp =
                        Some(day_start(days_ago) + i as i64 * (DAY_MS / per_day as i64));
                    record
                })
        })
        .collect()
}

/// Runs `verify --json` over the three days; returns its exit code and report.
fn verify(config: &std::path::Path) -> (i32, Value) {
    let (from, to) = (day_name(day_start(3)), day_name(day_start(1)));
    let path = config.to_str().expect("UTF-8 path");
    let output = run(&[
        "verify", "--config", path, "--from", &from, "--to", &to, "--json",
    ]);
    let report: Value = serde_json::from_str(&stdout(&output)).unwrap_or_else(|e| {
        panic!(
            "verify did not print JSON ({e}): {}{}",
            stdout(&output),
            stderr(&output)
        )
    });
    (output.status.code().unwrap_or(-1), report)
}

fn rows(report: &Value) -> Vec<Value> {
    report["rows"].as_array().cloned().unwrap_or_default()
}

fn row_for(report: &Value, day: &str) -> Value {
    rows(report)
        .into_iter()
        .find(|row| row["day"] == day)
        .unwrap_or_else(|| panic!("no row for {day}: {report:#}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_days_match_and_tampering_names_the_record() {
    let brokers = brokers();
    let (file, kafka_topic, rocketmq_topic) =
        scenario("    on_empty_value: skip\n", "  commit_interval: 1s\n");
    let mut records = three_days(300);
    // One tombstone on the middle day: skipped by policy, so accounted for.
    records[450].value = None;
    let stored = produce(&kafka_producer(&brokers.kafka), &kafka_topic, &records).await;

    let mut bridge = BridgeProcess::start(file.path());
    let reader = Reader::new(&brokers.name_server).await;
    let copied = reader
        .wait_for_count(&rocketmq_topic, 899, Duration::from_secs(120))
        .await;
    assert_eq!(copied, 899, "{}", bridge.logs());
    bridge.stop_gracefully(Duration::from_secs(30));
    reader.close().await;

    let (code, report) = verify(file.path());
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(rows(&report).len(), 3, "{report:#}");
    for row in rows(&report) {
        assert_eq!(row["verdict"], "MATCH", "{row:#}");
        assert_eq!(row["kafka_records"], 300, "{row:#}");
        assert_eq!(row["duplicates"], 0, "{row:#}");
        assert_eq!(row["digests_match"], true, "{row:#}");
    }
    let middle = row_for(&report, &day_name(day_start(2)));
    assert_eq!(middle["skipped"]["empty_value"], 1, "{middle:#}");
    assert_eq!(middle["rocketmq_unique"], 299, "{middle:#}");

    // The bridge stopped caught up, so the cutover conditions hold.
    let path = file.path().to_str().expect("path");
    let check = run(&["cutover-check", "--config", path, "--days", "3"]);
    assert_eq!(
        check.status.code(),
        Some(0),
        "{}{}",
        stdout(&check),
        stderr(&check)
    );
    assert!(
        stdout(&check).contains("SAFE to cut over"),
        "{}",
        stdout(&check)
    );

    // An extra record claiming an offset Kafka never had, and an altered
    // copy of a real record, on two different days.
    let mut forged = stored[700].clone();
    forged.partition = 0;
    forged.offset = 1_000_000;
    write_straight(&brokers.name_server, &rocketmq_topic, 0, &forged).await;
    let altered = stored[10].clone().with_value(Some(b"not what Kafka holds"));
    let queue = altered.partition as usize % 4;
    write_straight(&brokers.name_server, &rocketmq_topic, queue, &altered).await;

    let (code, report) = verify(file.path());
    assert_eq!(code, 1, "{report:#}");
    let altered_day = day_name(stored[10].timestamp.expect("timestamp").0);
    let row = row_for(&report, &altered_day);
    assert_eq!(row["verdict"], "MISMATCH", "{row:#}");
    let named = &row["differences"][0];
    assert_eq!(named["kind"], "altered_duplicate", "{row:#}");
    assert_eq!(named["coordinates"]["partition"], stored[10].partition);
    assert_eq!(named["coordinates"]["offset"], stored[10].offset);
    let forged_day = day_name(stored[700].timestamp.expect("timestamp").0);
    assert_ne!(forged_day, altered_day);
    let row = row_for(&report, &forged_day);
    assert_eq!(row["verdict"], "MISMATCH", "{row:#}");
    assert_eq!(row["rocketmq_unique"], 301, "{row:#}");
    let named = &row["differences"][0];
    assert_eq!(named["kind"], "extra", "{row:#}");
    assert_eq!(named["coordinates"]["topic"], kafka_topic);
    assert_eq!(named["coordinates"]["partition"], 0);
    assert_eq!(named["coordinates"]["offset"], 1_000_000);
    let middle = row_for(&report, &day_name(day_start(2)));
    assert_eq!(middle["verdict"], "MATCH", "untouched day: {middle:#}");

    let check = run(&["cutover-check", "--config", path, "--days", "3"]);
    assert_eq!(check.status.code(), Some(1), "{}", stdout(&check));
    assert!(
        stdout(&check).contains("1 of 3 MATCH"),
        "{}",
        stdout(&check)
    );

    // The table for people says the same.
    let output = run(&[
        "verify",
        "--config",
        path,
        "--from",
        &altered_day,
        "--to",
        &altered_day,
    ]);
    assert_eq!(output.status.code(), Some(1));
    let table = stdout(&output);
    let coordinates = format!(
        "{kafka_topic}/{}@{}",
        stored[10].partition, stored[10].offset
    );
    assert!(
        table.contains("MISMATCH") && table.contains(&coordinates),
        "{table}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicates_after_a_kill_still_match_and_are_counted() {
    let brokers = brokers();
    // Commits are rare, so the kill leaves everything copied uncommitted,
    // and the restart re-sends it (at-least-once: the restart scan is off).
    let (file, kafka_topic, rocketmq_topic) = scenario(
        "",
        "  commit_interval: 1h\n  exactly_once_restarts: false\n",
    );
    let total = 3 * 2000;
    let produced = produce(
        &kafka_producer(&brokers.kafka),
        &kafka_topic,
        &three_days(2000),
    )
    .await;
    assert_eq!(produced.len(), total);

    let reader = Reader::new(&brokers.name_server).await;
    let first = BridgeProcess::start(file.path());
    let before_kill = reader
        .wait_for_count(&rocketmq_topic, 1000, Duration::from_secs(120))
        .await;
    assert!(before_kill >= 1000, "{}", first.logs());
    first.kill9();
    let mut second = BridgeProcess::start(file.path());
    reader
        .wait_for_all(&rocketmq_topic, total, Duration::from_secs(180))
        .await;
    // The first instance may have copied everything before it died, and
    // nothing was committed: the second re-sends all of it, so at least
    // `before_kill` more than `total` must arrive before it is stopped.
    let with_resent = reader
        .wait_for_count(
            &rocketmq_topic,
            total as i64 + before_kill,
            Duration::from_secs(180),
        )
        .await;
    assert!(
        with_resent >= total as i64 + before_kill,
        "the second instance did not re-send what the first copied; log:\n{}",
        second.logs()
    );
    second.stop_gracefully(Duration::from_secs(30));
    // Counted after the stop: a queue can be complete while re-sends of
    // its records are still on their way.
    let messages = reader.read(&rocketmq_topic).await;
    reader.close().await;
    let resent = messages.len() - total;
    assert!(resent > 0, "the kill left copies to re-send");

    let (code, report) = verify(file.path());
    assert_eq!(code, 0, "{report:#}");
    let mut duplicates = 0;
    for row in rows(&report) {
        assert_eq!(row["verdict"], "MATCH", "{row:#}");
        assert_eq!(row["rocketmq_unique"], 2000, "{row:#}");
        let count = row["duplicates"].as_u64().unwrap_or(0);
        duplicates += count;
        // The first ones are named: a record of this topic, and a second
        // copy past the first one in its queue.
        let listed = row["duplicate_copies"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        assert_eq!(listed.len() as u64, count.min(20), "{row:#}");
        for copy in &listed {
            assert_eq!(
                copy["coordinates"]["topic"],
                kafka_topic.as_str(),
                "{copy:#}"
            );
            assert!(copy["at"]["queue_offset"].as_i64().is_some(), "{copy:#}");
            // Stored by this test's restart, not at the epoch.
            let stored = copy["at"]["store_timestamp_ms"].as_i64().unwrap_or(0);
            assert!(stored > 1_700_000_000_000, "{copy:#}");
        }
    }
    assert_eq!(
        duplicates as usize, resent,
        "every re-sent copy is a duplicate"
    );
}
