//! `/metrics` parses as Prometheus text and its counters match what was
//! copied; `/readyz` reports a running, assigned instance.

use std::time::Duration;

use crate::support::*;

fn sample(
    scrape: &prometheus_parse::Scrape,
    name: &str,
    label: Option<(&str, &str)>,
) -> Option<f64> {
    scrape
        .samples
        .iter()
        .filter(|s| s.metric == name)
        .find(|s| label.is_none_or(|(k, v)| s.labels.get(k) == Some(v)))
        .map(|s| match &s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => *v,
            prometheus_parse::Value::Histogram(buckets) => buckets.last().map_or(0.0, |b| b.count),
            prometheus_parse::Value::Summary(_) => f64::NAN,
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_parse_and_counters_match_the_records_copied() {
    let brokers = brokers();
    let base = unique("metrics");
    let (kafka_topic, rocketmq_topic) = (format!("{base}.in"), format!("{base}_out"));
    let port = closed_port();
    let text = config_text(
        &brokers.kafka,
        &brokers.name_server,
        &[(&kafka_topic, &rocketmq_topic)],
    )
    .replace(
        "    rocketmq_topic:",
        "    name: \"m\"\n    on_empty_value: skip\n    rocketmq_topic:",
    );
    let file = config_file(&format!("{text}metrics:\n  listen: \"127.0.0.1:{port}\"\n"));
    create_topics(file.path(), 3, 3);
    let mut records = keyed_records("m", 3_000, 30);
    records.push(TestRecord::tombstone(b"t"));
    produce(&kafka_producer(&brokers.kafka), &kafka_topic, &records).await;

    let mut bridge = BridgeProcess::start(file.path());
    let reader = Reader::new(&brokers.name_server).await;
    assert_eq!(
        reader
            .wait_for_count(&rocketmq_topic, 3_000, Duration::from_secs(120))
            .await,
        3_000,
        "{}",
        bridge.logs()
    );
    reader.close().await;
    let produced_all =
        |_: u16, body: &str| body.contains("bridge_records_produced_total{mapping=\"m\"} 3000");
    let (status, body) = wait_for_http(port, "/metrics", Duration::from_secs(30), produced_all)
        .await
        .expect("/metrics answers");
    assert_eq!(status, 200);
    let scrape = prometheus_parse::Scrape::parse(body.lines().map(|l| Ok(l.to_string())))
        .expect("Prometheus text");
    let m = Some(("mapping", "m"));
    assert_eq!(
        sample(&scrape, "bridge_records_consumed_total", m),
        Some(3_001.0)
    );
    assert_eq!(
        sample(&scrape, "bridge_records_produced_total", m),
        Some(3_000.0)
    );
    assert_eq!(
        sample(
            &scrape,
            "bridge_records_skipped_total",
            Some(("reason", "empty_value"))
        ),
        Some(1.0)
    );
    // The skipped record has no value: present, and counts no bytes.
    assert_eq!(
        sample(
            &scrape,
            "bridge_bytes_skipped_total",
            Some(("reason", "empty_value"))
        ),
        Some(0.0)
    );
    assert!(sample(&scrape, "bridge_bytes_produced_total", m).is_some_and(|b| b > 3_000.0 * 50.0));
    assert_eq!(
        sample(&scrape, "bridge_end_to_end_latency_seconds", m),
        Some(3_000.0),
        "one latency per record"
    );
    assert_eq!(
        sample(
            &scrape,
            "bridge_build_info",
            Some(("version", env!("CARGO_PKG_VERSION")))
        ),
        Some(1.0)
    );
    assert!(sample(&scrape, "bridge_uptime_seconds", None).is_some_and(|u| u > 0.0));
    assert!(
        scrape.docs.contains_key("bridge_records_produced_total"),
        "HELP text present"
    );

    let ready = wait_for_http(port, "/readyz", Duration::from_secs(10), |status, _| {
        status == 200
    })
    .await;
    let (status, body) = ready.expect("/readyz answers");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"assigned_partitions\":3"), "{body}");
    // Lag comes from librdkafka statistics every 5 s, for each partition
    // once its position is known; once reported it is 0.
    let lag_known = |_: u16, body: &str| {
        body.lines()
            .any(|l| l.starts_with("bridge_consumer_lag_records{") && l.contains("partition=\"0\""))
    };
    let (_, body) = wait_for_http(port, "/metrics", Duration::from_secs(20), lag_known)
        .await
        .expect("lag reported");
    let scrape = prometheus_parse::Scrape::parse(body.lines().map(|l| Ok(l.to_string())))
        .expect("Prometheus text");
    assert_eq!(
        sample(
            &scrape,
            "bridge_consumer_lag_records",
            Some(("partition", "0"))
        ),
        Some(0.0)
    );
    bridge.stop_gracefully(Duration::from_secs(30));
}
