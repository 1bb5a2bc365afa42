//! Prometheus metrics: every metric's name, type and help text in one place,
//! and the recorder that renders them for `/metrics`.
//!
//! Names follow Prometheus conventions (base units, `_total`, `_seconds`,
//! `_bytes`). Labels are the mapping, or topic and partition; their
//! cardinality is bounded by the configuration.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use metrics::{Label, Unit, describe_counter, describe_gauge, describe_histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::config::{Direction, LiveLimits, RateLimit};
use crate::mapping::Rejection;
use crate::rocketmq_sink::send::SendErrorKind;

pub const RECORDS_CONSUMED: &str = "bridge_records_consumed_total";
pub const BYTES_CONSUMED: &str = "bridge_bytes_consumed_total";
pub const RECORDS_PRODUCED: &str = "bridge_records_produced_total";
pub const BYTES_PRODUCED: &str = "bridge_bytes_produced_total";
pub const RECORDS_SKIPPED: &str = "bridge_records_skipped_total";
pub const RECORDS_DEAD_LETTERED: &str = "bridge_records_dead_lettered_total";
pub const BYTES_SKIPPED: &str = "bridge_bytes_skipped_total";
pub const BYTES_DEAD_LETTERED: &str = "bridge_bytes_dead_lettered_total";
pub const RECORDS_ALREADY_STORED: &str = "bridge_records_already_stored_total";
pub const RECORDS_STORED_DESPITE_FAILURE: &str = "bridge_records_stored_despite_failure_total";
pub const RESTART_SCAN: &str = "bridge_restart_scan_seconds";
pub const SEND_ERRORS: &str = "bridge_send_errors_total";
pub const SEND_RETRIES: &str = "bridge_send_retries_total";
pub const IN_FLIGHT_RECORDS: &str = "bridge_in_flight_records";
pub const IN_FLIGHT_BYTES: &str = "bridge_in_flight_bytes";
pub const CONSUMER_LAG: &str = "bridge_consumer_lag_records";
pub const CHECKPOINT_AGE: &str = "bridge_checkpoint_age_seconds";
pub const END_TO_END_LATENCY: &str = "bridge_end_to_end_latency_seconds";
pub const SEND_LATENCY: &str = "bridge_send_latency_seconds";
pub const THROTTLED: &str = "bridge_throttled_seconds";
pub const BUILD_INFO: &str = "bridge_build_info";
pub const UPTIME: &str = "bridge_uptime_seconds";
pub const VERIFY_VERDICT: &str = "bridge_verify_verdict";
pub const VERIFY_RECORDS: &str = "bridge_verify_records";
pub const VERIFY_LAST_RUN: &str = "bridge_verify_last_run_timestamp_seconds";
pub const RATE_LIMIT_RECORDS: &str = "bridge_rate_limit_records_per_second";
pub const RATE_LIMIT_BYTES: &str = "bridge_rate_limit_bytes_per_second";
pub const IN_FLIGHT_BYTES_LIMIT: &str = "bridge_in_flight_bytes_limit";

const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// How often recorded histogram samples are folded into their buckets.
/// The recorder keeps each sample (16 bytes, one per copied record for the
/// end-to-end latency) until a scrape or an upkeep folds it, so without
/// this a bridge nobody scrapes grows by the records it copies. The
/// exporter's own upkeep task uses 5 s too; this recorder is installed
/// without it because the bridge serves `/metrics` on its own listener.
pub const UPKEEP_EVERY: Duration = Duration::from_secs(5);

/// The installed recorder, and when the process started.
#[derive(Clone)]
pub struct Metrics {
    handle: PrometheusHandle,
    started: Instant,
}

impl Metrics {
    /// Installs the process-wide recorder and starts its upkeep. Call once,
    /// before recording, inside the Tokio runtime.
    pub fn install() -> Result<Self, String> {
        let handle = PrometheusBuilder::new()
            .set_buckets_for_metric(
                Matcher::Suffix("_latency_seconds".to_string()),
                LATENCY_BUCKETS,
            )
            .map_err(|e| format!("invalid histogram buckets: {e}"))?
            .set_buckets_for_metric(Matcher::Full(THROTTLED.to_string()), LATENCY_BUCKETS)
            .map_err(|e| format!("invalid histogram buckets: {e}"))?
            .set_buckets_for_metric(Matcher::Full(RESTART_SCAN.to_string()), LATENCY_BUCKETS)
            .map_err(|e| format!("invalid histogram buckets: {e}"))?
            .install_recorder()
            .map_err(|e| format!("cannot install the metrics recorder: {e}"))?;
        describe();
        metrics::gauge!(BUILD_INFO, "version" => env!("CARGO_PKG_VERSION")).set(1.0);
        tokio::spawn(keep_up(handle.clone()));
        Ok(Metrics {
            handle,
            started: Instant::now(),
        })
    }

    pub fn uptime(&self) -> std::time::Duration {
        self.started.elapsed()
    }

    /// The exposition text for `/metrics`, with the limits in force.
    pub fn render(&self, limits: &LiveLimits) -> String {
        metrics::gauge!(UPTIME).set(self.started.elapsed().as_secs_f64());
        let mut text = self.handle.render();
        text.push_str(&render_limits(limits));
        text
    }
}

/// Folds the recorded histogram samples into their buckets every
/// [`UPKEEP_EVERY`], for as long as the process runs.
async fn keep_up(handle: PrometheusHandle) {
    let mut every = tokio::time::interval(UPKEEP_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        handle.run_upkeep();
    }
}

/// The limits as gauges. Rendered from the limits in force rather than
/// recorded: a limit that SIGHUP removed must disappear, not keep its last
/// value, and the recorder cannot forget a series.
fn render_limits(limits: &LiveLimits) -> String {
    let scoped: Vec<(String, &RateLimit)> =
        std::iter::once((r#"scope="global""#.to_string(), &limits.global))
            .chain(limits.per_mapping.iter().map(|(label, limit)| {
                let labels = format!(r#"scope="mapping",mapping="{}""#, escape_label(label));
                (labels, limit)
            }))
            .collect();
    let mut text = String::new();
    gauge_family(
        &mut text,
        RATE_LIMIT_RECORDS,
        "The records-per-second limit in force, global or per mapping; absent when none is set.",
        scoped
            .iter()
            .filter_map(|(labels, l)| Some((labels.as_str(), u64::from(l.messages_per_second?)))),
    );
    gauge_family(
        &mut text,
        RATE_LIMIT_BYTES,
        "The bytes-per-second limit in force, global or per mapping; absent when none is set.",
        scoped
            .iter()
            .filter_map(|(labels, l)| Some((labels.as_str(), l.bytes_per_second?.0))),
    );
    gauge_family(
        &mut text,
        IN_FLIGHT_BYTES_LIMIT,
        "bridge.max_in_flight_bytes, the cap on bridge_in_flight_bytes.",
        std::iter::once(("", limits.max_in_flight_bytes)),
    );
    text
}

/// One gauge family in the exposition format; `labels` are already escaped.
fn gauge_family<'a>(
    text: &mut String,
    name: &str,
    help: &str,
    samples: impl Iterator<Item = (&'a str, u64)>,
) {
    let _ = writeln!(text, "# HELP {name} {help}\n# TYPE {name} gauge");
    for (labels, value) in samples {
        if labels.is_empty() {
            let _ = writeln!(text, "{name} {value}");
        } else {
            let _ = writeln!(text, "{name}{{{labels}}} {value}");
        }
    }
    text.push('\n');
}

/// A label value as the exposition format wants it.
fn escape_label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn describe() {
    describe_counter!(RECORDS_CONSUMED, "Kafka records read, per mapping.");
    describe_counter!(
        BYTES_CONSUMED,
        Unit::Bytes,
        "Kafka value bytes read, per mapping."
    );
    describe_counter!(
        RECORDS_PRODUCED,
        "Records stored in RocketMQ (SEND_OK), per mapping."
    );
    describe_counter!(
        BYTES_PRODUCED,
        Unit::Bytes,
        "Message bytes (body and properties) stored in RocketMQ, per mapping."
    );
    describe_counter!(
        RECORDS_SKIPPED,
        "Records not copied by a skip policy, per mapping and reason."
    );
    describe_counter!(
        RECORDS_DEAD_LETTERED,
        "Records written to the dead-letter topic, per mapping and reason."
    );
    describe_counter!(
        BYTES_SKIPPED,
        Unit::Bytes,
        "Kafka value bytes of records not copied by a skip policy, per mapping and reason."
    );
    describe_counter!(
        BYTES_DEAD_LETTERED,
        Unit::Bytes,
        "Kafka value bytes of records written to the dead-letter topic, per mapping and reason."
    );
    describe_counter!(
        RECORDS_ALREADY_STORED,
        "Records not sent because a previous owner of their partition had stored them (exactly-once restarts), per mapping."
    );
    describe_counter!(
        RECORDS_STORED_DESPITE_FAILURE,
        "Records of a failed send found stored when the queue was read back, and not sent again (exactly-once), per mapping."
    );
    describe_histogram!(
        RESTART_SCAN,
        Unit::Seconds,
        "Time spent reading target queue tails for newly owned partitions (exactly-once restarts)."
    );
    describe_counter!(
        SEND_ERRORS,
        "Failed batch sends, per mapping and error kind."
    );
    describe_counter!(SEND_RETRIES, "Batch sends retried, per mapping.");
    describe_gauge!(
        IN_FLIGHT_RECORDS,
        "Records handed to senders and not yet acknowledged."
    );
    describe_gauge!(
        IN_FLIGHT_BYTES,
        Unit::Bytes,
        "Bytes of records handed to senders and not yet acknowledged."
    );
    describe_gauge!(
        CONSUMER_LAG,
        "High watermark minus committed offset, per topic and partition."
    );
    describe_gauge!(
        CHECKPOINT_AGE,
        Unit::Seconds,
        "Time since the partition's commit point last advanced."
    );
    describe_histogram!(
        END_TO_END_LATENCY,
        Unit::Seconds,
        "Kafka record timestamp to RocketMQ acknowledgement."
    );
    describe_histogram!(
        SEND_LATENCY,
        Unit::Seconds,
        "Duration of one successful batch send."
    );
    describe_histogram!(
        THROTTLED,
        Unit::Seconds,
        "Waits imposed by a limiter, per mapping and limiter; the _sum is the time spent throttled."
    );
    describe_gauge!(
        VERIFY_VERDICT,
        "Daily count-match (bridge.daily_verify): 1 for the verdict of the mapping's day, 0 for the others."
    );
    describe_gauge!(
        VERIFY_RECORDS,
        "Daily count-match: records of the mapping's day the bridge copies (side kafka) and first copies found (side rocketmq)."
    );
    describe_gauge!(
        VERIFY_LAST_RUN,
        Unit::Seconds,
        "Unix time of the last daily count-match report."
    );
    describe_gauge!(BUILD_INFO, "Always 1; the version is a label.");
    describe_gauge!(UPTIME, Unit::Seconds, "Seconds since the process started.");
}

/// Creates a mapping's counters at zero. A series born at its first
/// increment has no earlier sample, so Prometheus's `rate()` and
/// `increase()` would miss that first send error or skipped record, and a
/// dashboard would have nothing to draw for a healthy bridge.
/// The labels of one of a mapping's series: `mapping`, the `direction` it
/// copies in, and `extra`.
pub fn mapping_labels(
    mapping: &str,
    direction: Direction,
    extra: &[(&'static str, &'static str)],
) -> Vec<Label> {
    let mut labels = vec![
        Label::new("mapping", mapping.to_string()),
        Label::new("direction", direction.label()),
    ];
    labels.extend(extra.iter().map(|(key, value)| Label::new(*key, *value)));
    labels
}

pub fn register_mapping(mapping: &str, direction: Direction) {
    let labels = |extra: &[(&'static str, &'static str)]| mapping_labels(mapping, direction, extra);
    for name in [
        RECORDS_PRODUCED,
        BYTES_PRODUCED,
        SEND_RETRIES,
        RECORDS_ALREADY_STORED,
        RECORDS_STORED_DESPITE_FAILURE,
    ] {
        metrics::counter!(name, labels(&[])).increment(0);
    }
    for kind in SendErrorKind::ALL {
        metrics::counter!(SEND_ERRORS, labels(&[("kind", kind.label())])).increment(0);
    }
    for reason in Rejection::REASONS {
        for name in [
            RECORDS_SKIPPED,
            BYTES_SKIPPED,
            RECORDS_DEAD_LETTERED,
            BYTES_DEAD_LETTERED,
        ] {
            metrics::counter!(name, labels(&[("reason", reason)])).increment(0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_render_as_gauges_only_where_set() {
        let mut limits = LiveLimits {
            global: RateLimit {
                messages_per_second: Some(5000),
                ..RateLimit::default()
            },
            max_in_flight_bytes: 1 << 20,
            per_mapping: Default::default(),
        };
        limits.per_mapping.insert(
            "orders".to_string(),
            RateLimit {
                bytes_per_second: Some(crate::config::ByteSize(2048)),
                ..RateLimit::default()
            },
        );
        let text = render_limits(&limits);
        let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string())))
            .expect("exposition text");
        let mut samples: Vec<String> = scrape
            .samples
            .iter()
            .map(|s| format!("{} {:?} {:?}", s.metric, s.labels.get("mapping"), s.value))
            .collect();
        samples.sort();
        assert_eq!(
            samples,
            [
                "bridge_in_flight_bytes_limit None Gauge(1048576.0)",
                "bridge_rate_limit_bytes_per_second Some(\"orders\") Gauge(2048.0)",
                "bridge_rate_limit_records_per_second None Gauge(5000.0)",
            ]
        );
        assert_eq!(escape_label("a\"b\\c\nd"), r#"a\"b\\c\nd"#);
    }
}
