//! `bridge.daily_verify` against the real brokers: at a time of day a test
//! can reach (seconds ahead), `run` verifies the day before by itself, and
//! its verdict and counts show on `/metrics` and `/status`; after a record
//! is written straight into RocketMQ, the next run says MISMATCH for that day.

use std::time::Duration;

use chrono::Utc;
use serde_json::Value;

use crate::support::*;

/// A time of day `seconds` from now, in UTC, as the config writes it.
fn seconds_from_now(seconds: i64) -> String {
    (Utc::now() + chrono::Duration::seconds(seconds))
        .format("%H:%M:%S")
        .to_string()
}

fn config(base: &str, port: u16, at: &str) -> String {
    let brokers = brokers();
    let text = config_text(
        &brokers.kafka,
        &brokers.name_server,
        &[(&format!("{base}.in"), &format!("{base}_out"))],
    )
    .replace(
        "    rocketmq_topic:",
        "    name: \"m\"\n    rocketmq_topic:",
    );
    format!(
        "{text}metrics:\n  listen: \"127.0.0.1:{port}\"\n\
         bridge:\n  commit_interval: 1s\n  daily_verify:\n    at: \"{at}\"\n    time_zone: UTC\n    retry_interval: 5s\n"
    )
}

/// The value of `name` for mapping `m`, `day` and the `extra` label, from `/metrics`.
fn verify_gauge(port: u16, name: &str, day: &str, extra: (&str, &str)) -> Option<f64> {
    let (_, body) = http_get(port, "/metrics")?;
    let scrape = prometheus_parse::Scrape::parse(body.lines().map(|l| Ok(l.to_string()))).ok()?;
    scrape
        .samples
        .iter()
        .filter(|s| s.metric == name)
        .filter(|s| s.labels.get("mapping") == Some("m") && s.labels.get("day") == Some(day))
        .find(|s| s.labels.get(extra.0) == Some(extra.1))
        .and_then(|s| match s.value {
            prometheus_parse::Value::Gauge(v) | prometheus_parse::Value::Untyped(v) => Some(v),
            _ => None,
        })
}

async fn wait_for_verdict(port: u16, day: &str, verdict: &str, bridge: &BridgeProcess) {
    let line = |_: u16, body: &str| {
        body.lines().any(|l| {
            l.starts_with("bridge_verify_verdict{")
                && l.contains(&format!("day=\"{day}\""))
                && l.contains(&format!("verdict=\"{verdict}\""))
                && l.ends_with(" 1")
        })
    };
    let found = wait_for_http(port, "/metrics", Duration::from_secs(120), line).await;
    assert!(
        found.is_some_and(|(status, body)| line(status, &body)),
        "no {verdict} for {day} on /metrics; log:\n{}",
        bridge.logs()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daily_count_match_runs_by_itself_and_turns_to_mismatch_after_tampering() {
    away_from_midnight().await;
    let brokers = brokers();
    let base = unique("daily");
    let port = closed_port();
    let yesterday = yesterday_start_ms();
    let day = utc_day(yesterday);
    let mut records = keyed_records("dv", 300, 20);
    for (i, record) in records.iter_mut().enumerate() {
        record.timestamp = Some(yesterday + i as i64 * 1_000);
    }
    let file = config_file(&config(&base, port, &seconds_from_now(15)));
    create_topics(file.path(), 3, 3);
    let stored = produce(
        &kafka_producer(&brokers.kafka),
        &format!("{base}.in"),
        &records,
    )
    .await;

    let mut bridge = BridgeProcess::start(file.path());
    wait_for_verdict(port, &day, "MATCH", &bridge).await;
    let gauge = |name, extra| verify_gauge(port, name, &day, extra);
    assert_eq!(
        gauge("bridge_verify_verdict", ("verdict", "MISMATCH")),
        Some(0.0)
    );
    assert_eq!(
        gauge("bridge_verify_records", ("side", "kafka")),
        Some(300.0)
    );
    assert_eq!(
        gauge("bridge_verify_records", ("side", "rocketmq")),
        Some(300.0)
    );
    let status = status_json(port);
    let row = &status["daily_verify"][0];
    assert_eq!(
        (&row["day"], &row["verdict"]),
        (&Value::from(day.clone()), &Value::from("MATCH")),
        "{status:#}"
    );
    assert_eq!(row["kafka"], 300, "{status:#}");
    assert!(
        status["cutover"][0]["value"]
            .as_str()
            .is_some_and(|v| v.contains("1 MATCH, 0 MISMATCH")),
        "{status:#}"
    );
    assert!(
        bridge.logs().contains("daily count-match done"),
        "{}",
        bridge.logs()
    );
    bridge.stop_gracefully(Duration::from_secs(30));

    // A record Kafka never had, written straight into RocketMQ on that day.
    let mut forged = stored[100].clone();
    forged.partition = 0;
    forged.offset = 1_000_000;
    write_straight(&brokers.name_server, &format!("{base}_out"), 0, &forged).await;
    std::fs::write(file.path(), config(&base, port, &seconds_from_now(8))).expect("rewrite config");
    let bridge = BridgeProcess::start(file.path());
    wait_for_verdict(port, &day, "MISMATCH", &bridge).await;
    assert_eq!(
        verify_gauge(port, "bridge_verify_verdict", &day, ("verdict", "MATCH")),
        Some(0.0)
    );
    assert_eq!(
        verify_gauge(port, "bridge_verify_records", &day, ("side", "rocketmq")),
        Some(301.0)
    );
    let status = status_json(port);
    assert_eq!(
        status["daily_verify"][0]["verdict"], "MISMATCH",
        "{status:#}"
    );
    assert_eq!(status["cutover"][0]["ok"], false, "{status:#}");
    let logs = bridge.logs();
    assert!(logs.contains("daily count-match: MISMATCH"), "{logs}");
    assert!(
        logs.contains("1000000"),
        "the log's report names the forged offset:\n{logs}"
    );
}

/// The way back's days are verified too: messages born yesterday in
/// RocketMQ (back-dated by the test's producer) and copied to Kafka MATCH,
/// with each side's count under its own label, while today's messages are
/// left out. The cutover condition on `/status` stays the dual-write
/// direction's, as in `cutover-check`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daily_count_match_verifies_the_way_back_too() {
    use rocketmq_model::common::message::message_single::Message;
    away_from_midnight().await;
    let brokers = brokers();
    let base = unique("daily");
    let (rocketmq_topic, kafka_topic) = (format!("{base}_src"), format!("{base}.back"));
    let port = closed_port();
    let group = base.replace(['.', '-'], "_");
    let text = config_text(&brokers.kafka, &brokers.name_server, &[]).replace(
        "rocketmq:\n",
        &format!("rocketmq:\n  consumer_group: \"{group}\"\n"),
    );
    let file = config_file(&format!(
        "{text}  - name: \"m\"\n    direction: rocketmq_to_kafka\n    rocketmq_topic: \"{rocketmq_topic}\"\n    \
         kafka_topic: \"{kafka_topic}\"\n\
         metrics:\n  listen: \"127.0.0.1:{port}\"\n\
         bridge:\n  commit_interval: 1s\n  daily_verify:\n    at: \"{}\"\n    time_zone: UTC\n    retry_interval: 5s\n",
        seconds_from_now(20)
    ));
    create_topics(file.path(), 1, 1);
    let messages = |count: usize, label: &str| {
        (0..count)
            .map(|n| {
                Message::builder()
                    .topic(&rocketmq_topic)
                    .body_slice(format!("{label}-{n}").as_bytes())
                    .keys(vec![format!("k{}", n % 5)])
                    .build_unchecked()
            })
            .collect::<Vec<_>>()
    };
    let yesterday = yesterday_start_ms() + 3_600_000;
    let day = utc_day(yesterday);
    let ns = &brokers.name_server;
    send_to_queue(
        ns,
        &rocketmq_topic,
        0,
        messages(40, "yesterday"),
        Some(yesterday),
    )
    .await;
    send_to_queue(ns, &rocketmq_topic, 0, messages(10, "today"), None).await;

    let mut bridge = BridgeProcess::start(file.path());
    wait_for_verdict(port, &day, "MATCH", &bridge).await;
    let gauge = |extra| verify_gauge(port, "bridge_verify_records", &day, extra);
    assert_eq!(gauge(("side", "rocketmq")), Some(40.0), "{}", bridge.logs());
    assert_eq!(gauge(("side", "kafka")), Some(40.0), "{}", bridge.logs());
    let status = status_json(port);
    let row = &status["daily_verify"][0];
    assert_eq!(row["direction"], "rocketmq_to_kafka", "{status:#}");
    assert_eq!(row["day"], Value::from(day.clone()), "{status:#}");
    assert_eq!(
        (&row["kafka"], &row["rocketmq"]),
        (&Value::from(40), &Value::from(40)),
        "{status:#}"
    );
    assert!(
        status["cutover"][0]["value"]
            .as_str()
            .is_some_and(|v| v.contains("no daily count-match")),
        "the cutover's days are the dual-write direction's: {status:#}"
    );
    // All 50 were copied: today's messages are only left out of the day.
    let copied = kafka_record_count(&brokers.kafka, &kafka_topic, 1);
    assert_eq!(copied, 50, "{}", bridge.logs());
    bridge.stop_gracefully(Duration::from_secs(30));
}
