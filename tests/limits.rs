//! Rate limits and the in-flight cap against the real brokers: a limit
//! holds over a window, SIGHUP changes it live (and refuses other changes),
//! and a tiny in-flight cap keeps memory flat over a large backlog.

use std::time::{Duration, Instant};

use crate::support::*;

/// Messages stored per second in `topic` over `window`. The window is the
/// measurement itself: a rate needs elapsed time, there is nothing to await.
async fn measured_rate(reader: &Reader, topic: &str, window: Duration) -> f64 {
    let (start, before) = (Instant::now(), reader.count(topic).await);
    tokio::time::sleep(window).await;
    let (elapsed, after) = (start.elapsed(), reader.count(topic).await);
    let rate = (after - before) as f64 / elapsed.as_secs_f64();
    eprintln!("{topic}: {rate:.0} msg/s over {elapsed:.1?}");
    rate
}

/// Waits until the bridge's log contains `text`.
async fn wait_for_log(bridge: &BridgeProcess, text: &str, deadline: Duration) {
    let start = Instant::now();
    while !bridge.logs().contains(text) {
        assert!(
            start.elapsed() < deadline,
            "no `{text}` in the log within {deadline:?}:\n{}",
            bridge.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn limited_config(
    brokers: &TestBrokers,
    pair: (&str, &str),
    port: u16,
    bridge_section: &str,
) -> String {
    let text = config_text(&brokers.kafka, &brokers.name_server, &[pair]).replace(
        "    rocketmq_topic:",
        "    name: \"limited\"\n    rocketmq_topic:",
    );
    format!("{text}metrics:\n  listen: \"127.0.0.1:{port}\"\nbridge:\n{bridge_section}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_rate_limit_holds_over_ten_seconds() {
    let brokers = brokers();
    let base = unique("ratelimit");
    let (kafka_topic, rocketmq_topic) = (format!("{base}.in"), format!("{base}_out"));
    let port = closed_port();
    let text = limited_config(
        &brokers,
        (&kafka_topic, &rocketmq_topic),
        port,
        "  rate_limit:\n    messages_per_second: 1000\n",
    );
    let file = config_file(&text);
    create_topics(file.path(), 4, 4);
    produce(
        &kafka_producer(&brokers.kafka),
        &kafka_topic,
        &keyed_records("r", 20_000, 200),
    )
    .await;

    let mut bridge = BridgeProcess::start(file.path());
    let reader = Reader::new(&brokers.name_server).await;
    // Past the start and the first second's burst.
    let warm = reader
        .wait_for_count(&rocketmq_topic, 2_500, Duration::from_secs(60))
        .await;
    assert!(warm >= 2_500, "only {warm} copied; log:\n{}", bridge.logs());
    let rate = measured_rate(&reader, &rocketmq_topic, Duration::from_secs(10)).await;
    assert!(
        (850.0..=1150.0).contains(&rate),
        "limit 1000 msg/s, measured {rate:.0} msg/s"
    );

    let status = status_json(port);
    let mapping = &status["mappings"][0];
    assert_eq!(mapping["mapping"], "limited", "{status:#}");
    assert_eq!(mapping["state"], "paused-by-limit", "{status:#}");
    assert_eq!(mapping["throttled_by"], "global_messages", "{status:#}");
    assert!(
        status["limits"]
            .as_str()
            .is_some_and(|l| l.contains("global 1000 msg/s")),
        "{status:#}"
    );
    let partitions = mapping["partitions"].as_array().expect("partitions");
    assert_eq!(partitions.len(), 4, "{status:#}");
    let lag: i64 = partitions.iter().filter_map(|p| p["lag"].as_i64()).sum();
    assert!(lag > 0, "a throttled backlog shows lag: {status:#}");
    let (_, metrics) = http_get(port, "/metrics").expect("/metrics");
    let throttled = metrics
        .lines()
        .find(|l| {
            l.starts_with("bridge_throttled_seconds_sum")
                && l.contains("limiter=\"global_messages\"")
        })
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse::<f64>().ok());
    assert!(
        throttled.is_some_and(|s| s > 1.0),
        "throttle time {throttled:?}:\n{metrics}"
    );
    assert!(
        bridge.logs().contains("mapping throttled by a rate limit"),
        "{}",
        bridge.logs()
    );
    reader.close().await;
    bridge.stop_gracefully(Duration::from_secs(60));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_changes_the_limit_live_and_refuses_other_changes() {
    let brokers = brokers();
    let base = unique("sighup");
    let (kafka_topic, rocketmq_topic) = (format!("{base}.in"), format!("{base}_out"));
    let port = closed_port();
    let slow = limited_config(
        &brokers,
        (&kafka_topic, &rocketmq_topic),
        port,
        "  rate_limit:\n    messages_per_second: 200\n",
    );
    let file = config_file(&slow);
    create_topics(file.path(), 2, 2);
    produce(
        &kafka_producer(&brokers.kafka),
        &kafka_topic,
        &keyed_records("h", 15_000, 100),
    )
    .await;

    let mut bridge = BridgeProcess::start(file.path());
    let reader = Reader::new(&brokers.name_server).await;
    let warm = reader
        .wait_for_count(&rocketmq_topic, 500, Duration::from_secs(60))
        .await;
    assert!(warm >= 500, "only {warm} copied; log:\n{}", bridge.logs());
    let before = measured_rate(&reader, &rocketmq_topic, Duration::from_secs(4)).await;
    assert!(
        (150.0..=250.0).contains(&before),
        "limit 200, measured {before:.0}"
    );

    // A faster limit together with a new producer group: refused whole.
    let mixed = slow
        .replace("messages_per_second: 200", "messages_per_second: 5000")
        .replace("rocketmq:\n", "rocketmq:\n  producer_group: \"other\"\n");
    std::fs::write(file.path(), mixed).expect("rewrite config");
    bridge.signal("HUP");
    wait_for_log(&bridge, "change refused", Duration::from_secs(10)).await;
    assert!(
        bridge.logs().contains("also changes rocketmq"),
        "{}",
        bridge.logs()
    );
    let refused = measured_rate(&reader, &rocketmq_topic, Duration::from_secs(3)).await;
    assert!(
        (130.0..=270.0).contains(&refused),
        "the refused reload changed the rate to {refused:.0}"
    );

    let fast = slow.replace("messages_per_second: 200", "messages_per_second: 2000");
    std::fs::write(file.path(), fast).expect("rewrite config");
    bridge.signal("HUP");
    wait_for_log(&bridge, "new limits applied", Duration::from_secs(10)).await;
    let after = measured_rate(&reader, &rocketmq_topic, Duration::from_secs(3)).await;
    assert!(
        (1500.0..=2500.0).contains(&after),
        "limit 2000 after SIGHUP, measured {after:.0}"
    );
    let status = status_json(port);
    assert!(
        status["limits"]
            .as_str()
            .is_some_and(|l| l.contains("global 2000 msg/s")),
        "{status:#}"
    );
    // Nothing lost or reordered across the reloads.
    let copied = reader
        .wait_for_all(&rocketmq_topic, 15_000, Duration::from_secs(60))
        .await;
    assert_eq!(copied.len(), 15_000, "{}", bridge.logs());
    reader.close().await;
    bridge.stop_gracefully(Duration::from_secs(60));
}

fn rss_bytes(pid: i32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tiny_in_flight_cap_keeps_memory_flat_over_a_large_backlog() {
    const RECORDS: usize = 20_000;
    const CAP: u64 = 256 << 10;
    let brokers = brokers();
    let base = unique("capped");
    let (kafka_topic, rocketmq_topic) = (format!("{base}.in"), format!("{base}_out"));
    let port = closed_port();
    let text = limited_config(
        &brokers,
        (&kafka_topic, &rocketmq_topic),
        port,
        &format!("  max_in_flight_bytes: {CAP}\n"),
    );
    let file = config_file(&text);
    create_topics(file.path(), 4, 4);
    let records: Vec<TestRecord> = (0..RECORDS)
        .map(|i| TestRecord {
            key: Some(format!("key-{}", i % 64).into_bytes()),
            value: Some(format!("{i:08} {}", "v".repeat(4096)).into_bytes()),
            headers: vec![],
            partition: None,
            timestamp: None,
        })
        .collect();
    produce(&kafka_producer(&brokers.kafka), &kafka_topic, &records).await;

    let mut bridge = BridgeProcess::start(file.path());
    let reader = Reader::new(&brokers.name_server).await;
    // (copied so far, RSS, in-flight bytes gauge) every 250 ms until done.
    let mut samples: Vec<(i64, u64, f64)> = Vec::new();
    let start = Instant::now();
    loop {
        let copied = reader.count(&rocketmq_topic).await;
        let rss = rss_bytes(bridge.pid()).expect("bridge RSS");
        let in_flight = http_get(port, "/metrics")
            .and_then(|(_, body)| {
                body.lines()
                    .find(|l| l.starts_with("bridge_in_flight_bytes "))
                    .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            })
            .unwrap_or(0.0);
        samples.push((copied, rss, in_flight));
        if copied >= RECORDS as i64 || start.elapsed() > Duration::from_secs(300) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let copied = samples.last().map_or(0, |s| s.0);
    assert_eq!(copied, RECORDS as i64, "{}", bridge.logs());
    let peak_in = |from: f64, to: f64| {
        samples
            .iter()
            .filter(|s| (from..to).contains(&(s.0 as f64 / RECORDS as f64)))
            .map(|s| s.1)
            .max()
            .unwrap_or(0)
    };
    let early = peak_in(0.05, 0.3);
    let late = peak_in(0.3, 1.01);
    let mib = |b: u64| b as f64 / (1 << 20) as f64;
    eprintln!(
        "RSS: peak {:.1} MiB over the first 30% of the copy, {:.1} MiB over the rest",
        mib(early),
        mib(late)
    );
    assert!(early > 0, "no samples early in the copy: {samples:?}");
    assert!(
        late <= early + (16 << 20),
        "RSS grew from {:.1} MiB to {:.1} MiB while copying {RECORDS} records of 4 KiB",
        mib(early),
        mib(late)
    );
    let max_in_flight = samples.iter().map(|s| s.2).fold(0.0, f64::max);
    assert!(
        max_in_flight <= (CAP + 8192) as f64,
        "in-flight bytes reached {max_in_flight} with a cap of {CAP}"
    );
    reader.close().await;
    bridge.stop_gracefully(Duration::from_secs(60));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_larger_than_the_in_flight_cap_is_copied_alone() {
    const CAP: u64 = 64 << 10;
    const BIG: usize = 500 << 10;
    let brokers = brokers();
    let base = unique("oversize");
    let (kafka_topic, rocketmq_topic) = (format!("{base}.in"), format!("{base}_out"));
    let port = closed_port();
    let file = config_file(&limited_config(
        &brokers,
        (&kafka_topic, &rocketmq_topic),
        port,
        &format!("  max_in_flight_bytes: {CAP}\n"),
    ));
    create_topics(file.path(), 1, 1);
    // Small, big, small, big, small: in one partition, so in this order.
    let records: Vec<TestRecord> = (0..5)
        .map(|i| TestRecord {
            key: Some(format!("k{i}").into_bytes()),
            value: Some(if i % 2 == 1 {
                vec![b'a' + i as u8; BIG]
            } else {
                format!("small {i}").into_bytes()
            }),
            headers: vec![],
            partition: Some(0),
            timestamp: None,
        })
        .collect();
    produce(&kafka_producer(&brokers.kafka), &kafka_topic, &records).await;

    let mut bridge = BridgeProcess::start(file.path());
    let reader = Reader::new(&brokers.name_server).await;
    let messages = reader
        .wait_for_all(&rocketmq_topic, records.len(), Duration::from_secs(120))
        .await;
    reader.close().await;
    bridge.stop_gracefully(Duration::from_secs(30));
    let bodies: Vec<Vec<u8>> = messages.iter().map(|m| m.body.clone()).collect();
    let expected: Vec<Vec<u8>> = records.iter().filter_map(|r| r.value.clone()).collect();
    assert_eq!(
        bodies.len(),
        expected.len(),
        "copies of records over the {CAP}-byte cap are missing; log:\n{}",
        bridge.logs()
    );
    assert!(
        bodies == expected,
        "bodies differ from the records, or their order does"
    );
}
