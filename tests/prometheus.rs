//! The shipped alert rules and Grafana dashboard against Debian's real
//! Prometheus: `promtool` checks and unit-tests the rules (and every alert's
//! unit test must fail when its expression is broken), and a real server
//! scrapes a running bridge, evaluates every rule, and answers every alert's
//! and dashboard's query with the series it should.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use regex::Regex;
use serde_json::Value;

use crate::support::*;

fn deploy(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("deploy")
        .join(path)
}

fn tool(name: &str) -> PathBuf {
    let path = PathBuf::from("/usr/bin").join(name);
    assert!(
        path.exists(),
        "{} is missing: run scripts/test.sh, which installs Debian's prometheus package",
        path.display()
    );
    path
}

/// Runs promtool; (success, everything it printed).
fn promtool(args: &[&str], dir: &Path) -> (bool, String) {
    let output = Command::new(tool("promtool"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run promtool");
    (output.status.success(), printed(&output))
}

/// The alerting rules, as (name, expression).
fn alert_rules() -> Vec<(String, String)> {
    let text = std::fs::read_to_string(deploy("prometheus/alerts.yaml")).expect("alerts.yaml");
    let rules: serde_yaml::Value = serde_yaml::from_str(&text).expect("alerts.yaml parses");
    rules["groups"]
        .as_sequence()
        .into_iter()
        .flatten()
        .flat_map(|group| group["rules"].as_sequence().into_iter().flatten())
        .map(|rule| {
            (
                rule["alert"].as_str().expect("an alert name").to_string(),
                rule["expr"].as_str().expect("an expression").to_string(),
            )
        })
        .collect()
}

#[test]
fn the_alert_rules_pass_promtool_and_each_alert_has_a_unit_test_that_can_fail() {
    let dir = deploy("prometheus");
    let (ok, text) = promtool(&["check", "rules", "alerts.yaml"], &dir);
    assert!(ok, "{text}");
    let (ok, text) = promtool(&["check", "config", "prometheus.yml"], &dir);
    assert!(ok, "{text}");
    let (ok, text) = promtool(&["test", "rules", "alerts.test.yaml"], &dir);
    assert!(ok, "{text}");

    // Break each alert's expression in turn (a typo in its metric names):
    // its unit test must catch it.
    let original = std::fs::read_to_string(dir.join("alerts.yaml")).expect("alerts.yaml");
    let tests = std::fs::read_to_string(dir.join("alerts.test.yaml")).expect("alerts.test.yaml");
    let rules = alert_rules();
    assert!(rules.len() >= 6, "{rules:?}");
    for (alert, _) in &rules {
        let broken = break_alert(&original, alert);
        assert_ne!(broken, original, "{alert}: nothing to break");
        let scratch = tempfile::tempdir().expect("temp dir");
        std::fs::write(scratch.path().join("alerts.yaml"), &broken).expect("write");
        std::fs::write(scratch.path().join("alerts.test.yaml"), &tests).expect("write");
        let (ok, text) = promtool(&["test", "rules", "alerts.test.yaml"], scratch.path());
        assert!(
            !ok && text.contains(&format!("alertname: {alert}")),
            "a typo in {alert}'s expression went unnoticed by alerts.test.yaml:\n{text}"
        );
    }
}

/// `rules_text` with the metric names in `alert`'s expression misspelt.
fn break_alert(rules_text: &str, alert: &str) -> String {
    let start = rules_text
        .find(&format!("alert: {alert}\n"))
        .unwrap_or_else(|| panic!("no alert {alert}"));
    let end = rules_text[start + 1..]
        .find("- alert:")
        .map_or(rules_text.len(), |i| start + 1 + i);
    let rule = &rules_text[start..end];
    let expr_start = rule.find("expr:").expect("an expr");
    let expr_end = rule[expr_start..]
        .find("\n        for:")
        .or_else(|| rule[expr_start..].find("\n        labels:"))
        .map_or(rule.len(), |i| expr_start + i);
    let typo = Regex::new(r"\b(bridge_\w+|up)\b").expect("regex");
    let broken_expr = typo.replace_all(&rule[expr_start..expr_end], "${1}_typo");
    format!(
        "{}{}{}{}",
        &rules_text[..start],
        &rule[..expr_start],
        broken_expr,
        &rules_text[start + expr_end..]
    )
}

// ---- a real server ---------------------------------------------------------

/// A Prometheus server of the test's own, on loopback, with the shipped rules.
struct PrometheusServer {
    child: Child,
    port: u16,
    _data: tempfile::TempDir,
}

impl PrometheusServer {
    fn start(bridge_port: u16) -> Self {
        let data = tempfile::tempdir().expect("temp dir");
        let config = data.path().join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
                 rule_files:\n  - {}\n\
                 scrape_configs:\n  - job_name: kafka-rocketmq-bridge\n    static_configs:\n      - targets: [\"127.0.0.1:{bridge_port}\"]\n",
                deploy("prometheus/alerts.yaml").display()
            ),
        )
        .expect("write prometheus.yml");
        let port = closed_port();
        let child = Command::new(tool("prometheus"))
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                data.path().join("tsdb").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--log.level=warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start prometheus");
        let server = PrometheusServer {
            child,
            port,
            _data: data,
        };
        let start = Instant::now();
        while http_get(port, "/-/ready").is_none_or(|(status, _)| status != 200) {
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "Prometheus never became ready"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        server
    }

    /// `/api/v1/<path>`'s `data`.
    fn api(&self, path: &str) -> Value {
        let (status, body) =
            http_get(self.port, &format!("/api/v1/{path}")).expect("Prometheus answers");
        let answer: Value =
            serde_json::from_str(&body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"));
        assert_eq!(status, 200, "{path}: {body}");
        answer["data"].clone()
    }

    /// The series an instant query returns.
    fn query(&self, promql: &str) -> Vec<Value> {
        let data = self.api(&format!("query?query={}", encode(promql)));
        data["result"].as_array().cloned().unwrap_or_default()
    }

    /// Waits until `promql` returns at least one series.
    fn wait_for_series(&self, promql: &str, deadline: Duration) -> Vec<Value> {
        let start = Instant::now();
        loop {
            let result = self.query(promql);
            if !result.is_empty() || start.elapsed() > deadline {
                return result;
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    /// Waits up to 30 s for alert `name` to be in `state`; returns those
    /// alerts. `context` goes into the failure message.
    fn wait_for_alert(&self, name: &str, state: &str, context: &str) -> Vec<Value> {
        let start = Instant::now();
        loop {
            let alerts = self.alerts(name, state);
            if !alerts.is_empty() {
                return alerts;
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "no {state} {name}: {}\n{context}",
                self.api("alerts")
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    /// Waits for `promql` to return series; fails with `what` and `context`
    /// (a log, say) if it does not within `deadline`.
    fn expect_series(&self, promql: &str, deadline: Duration, what: &str, context: &str) {
        let series = self.wait_for_series(promql, deadline);
        assert!(!series.is_empty(), "{what} (`{promql}`)\n{context}");
    }

    /// The alerts in `state` (pending or firing) called `name`.
    fn alerts(&self, name: &str, state: &str) -> Vec<Value> {
        self.api("alerts")["alerts"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|a| a["labels"]["alertname"] == name && a["state"] == state)
            .cloned()
            .collect()
    }
}

impl Drop for PrometheusServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The series selectors of a PromQL expression (`name{matchers}`).
fn selectors(expr: &str) -> Vec<String> {
    let selector = Regex::new(r"\b(bridge_\w+|up)(\{[^}]*\})?").expect("regex");
    selector
        .find_iter(expr)
        .map(|m| m.as_str().to_string())
        .collect()
}

/// The labels an expression groups or matches by.
fn grouping_labels(expr: &str) -> BTreeSet<String> {
    let clause = Regex::new(r"\b(?:by|on)\s*\(([^)]*)\)").expect("regex");
    clause
        .captures_iter(expr)
        .flat_map(|c| {
            c[1].split(',')
                .map(|l| l.trim().to_string())
                .filter(|l| !l.is_empty())
                .collect::<Vec<_>>()
        })
        .collect()
}

/// What is wrong with an alert's expression against what Prometheus
/// scraped: a selector with no series, or a grouping label no series has.
fn alert_problems(server: &PrometheusServer, alert: &str, expr: &str) -> Vec<String> {
    let mut problems = Vec::new();
    let mut labels_seen = BTreeSet::new();
    for selector in selectors(expr) {
        let series = server.query(&selector);
        if series.is_empty() {
            problems.push(format!("{alert}: `{selector}` has no series"));
        }
        for s in &series {
            if let Some(labels) = s["metric"].as_object() {
                labels_seen.extend(labels.keys().cloned());
            }
        }
    }
    for label in grouping_labels(expr) {
        if !labels_seen.contains(&label) {
            problems.push(format!(
                "{alert}: no series has the label `{label}` it groups by"
            ));
        }
    }
    problems
}

/// What is wrong with a dashboard query: no series, or a legend label missing.
fn dashboard_problems(
    server: &PrometheusServer,
    title: &str,
    expr: &str,
    legend: &str,
) -> Vec<String> {
    let promql = expr
        .replace("$instance", ".*")
        .replace("$mapping", ".*")
        .replace("$__rate_interval", "1m");
    let series = server.query(&promql);
    if series.is_empty() {
        return vec![format!("\"{title}\": `{promql}` returns no series")];
    }
    let placeholder = Regex::new(r"\{\{\s*(\w+)\s*\}\}").expect("regex");
    placeholder
        .captures_iter(legend)
        .filter(|c| {
            series
                .iter()
                .any(|s| s["metric"][&c[1]].as_str().is_none_or(str::is_empty))
        })
        .map(|c| {
            format!(
                "\"{title}\": `{promql}` has series without `{}` (legend {legend})",
                &c[1]
            )
        })
        .collect()
}

/// Every (panel title, expression, legend) of the shipped dashboard.
fn dashboard_queries() -> Vec<(String, String, String)> {
    let text = std::fs::read_to_string(deploy("grafana/kafka-rocketmq-bridge.json"))
        .expect("the dashboard");
    let dashboard: Value = serde_json::from_str(&text).expect("the dashboard is JSON");
    dashboard["panels"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|panel| {
            let title = panel["title"].as_str().unwrap_or_default().to_string();
            panel["targets"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .map(move |t| {
                    (
                        title.clone(),
                        t["expr"].as_str().unwrap_or_default().to_string(),
                        t["legendFormat"].as_str().unwrap_or_default().to_string(),
                    )
                })
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_prometheus_scrapes_the_bridge_and_every_alert_and_dashboard_query_has_its_series() {
    let brokers = brokers();
    let base = unique("prom");
    let (kafka_topic, rocketmq_topic) = (format!("{base}.in"), format!("{base}_out"));
    let port = closed_port();
    // Limits on both scopes and both units, so that every limit series
    // exists; the mapping's 1,000 msg/s throttles the 3,000-record backlog.
    let text = config_text(&brokers.kafka, &brokers.name_server, &[(&kafka_topic, &rocketmq_topic)])
        .replace(
            "    rocketmq_topic:",
            "    name: \"m\"\n    on_empty_value: skip\n    rate_limit:\n      messages_per_second: 1000\n      bytes_per_second: 10MiB\n    rocketmq_topic:",
        );
    let file = config_file(&format!(
        "{text}metrics:\n  listen: \"127.0.0.1:{port}\"\n\
         bridge:\n  rate_limit:\n    messages_per_second: 100000\n    bytes_per_second: 100MiB\n\
         \x20 daily_verify:\n    at: \"{}\"\n",
        (chrono::Utc::now() + chrono::Duration::seconds(20)).format("%H:%M:%S")
    ));
    create_topics(file.path(), 3, 3);
    let mut records = keyed_records("p", 3_000, 30);
    records.push(TestRecord::tombstone(b"empty"));
    let bridge = BridgeProcess::start(file.path());
    let server = PrometheusServer::start(port);
    // Records only once Prometheus has scraped the counters at zero: an
    // increase needs a sample from before it.
    server.expect_series(
        r#"bridge_records_skipped_total{mapping="m", reason="empty_value"} == 0"#,
        Duration::from_secs(60),
        "the counters were never scraped at 0",
        &bridge.logs(),
    );
    produce(&kafka_producer(&brokers.kafka), &kafka_topic, &records).await;

    server.expect_series(
        r#"bridge_records_produced_total{mapping="m"} == 3000"#,
        Duration::from_secs(120),
        "Prometheus never saw the 3,000 records copied",
        &bridge.logs(),
    );
    // Lag arrives with librdkafka's statistics; rate() needs a few scrapes.
    server.expect_series(
        "bridge_consumer_lag_records",
        Duration::from_secs(30),
        "no lag series",
        "",
    );
    // The daily count-match ran (yesterday: no records, MATCH).
    server.expect_series(
        r#"bridge_verify_verdict{verdict="MATCH"} == 1"#,
        Duration::from_secs(90),
        "no daily count-match",
        &bridge.logs(),
    );
    server.expect_series(
        r#"count_over_time(up{job="kafka-rocketmq-bridge"}[1m]) >= 10"#,
        Duration::from_secs(30),
        "fewer than 10 scrapes",
        "",
    );

    // Every rule evaluates without error against the real series.
    let groups = server.api("rules")["groups"].clone();
    let rules: Vec<&Value> = groups
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|g| g["rules"].as_array().into_iter().flatten())
        .collect();
    assert_eq!(rules.len(), alert_rules().len(), "{groups}");
    for rule in &rules {
        assert_eq!(rule["health"], "ok", "{rule}");
    }

    let mut problems = Vec::new();
    for (alert, expr) in alert_rules() {
        problems.extend(alert_problems(&server, &alert, &expr));
    }
    let queries = dashboard_queries();
    assert!(queries.len() >= 20, "{queries:?}");
    for (title, expr, legend) in &queries {
        problems.extend(dashboard_problems(&server, title, expr, legend));
    }
    let instances = server.api("label/instance/values?match[]=bridge_build_info");
    assert_eq!(instances, serde_json::json!([format!("127.0.0.1:{port}")]));
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    // The checks can fail: a misspelt metric is reported.
    assert_eq!(
        alert_problems(
            &server,
            "Typo",
            "sum by (mapping) (bridge_records_producd_total) > 0"
        )
        .len(),
        2
    );
    assert_eq!(
        dashboard_problems(
            &server,
            "Typo",
            "rate(bridge_records_producd_total[1m])",
            ""
        )
        .len(),
        1
    );

    // Alerts for real: the skipped record fires BridgeRecordsNotCopied ...
    let firing = server.wait_for_alert("BridgeRecordsNotCopied", "firing", "");
    assert_eq!(firing[0]["labels"]["mapping"], "m", "{firing:?}");
    assert_eq!(firing[0]["labels"]["reason"], "empty_value", "{firing:?}");
    // ... and a killed bridge makes BridgeInstanceDown pending (it fires after 5 minutes).
    let logs = bridge.kill9();
    let pending = server.wait_for_alert("BridgeInstanceDown", "pending", &logs);
    assert_eq!(
        pending[0]["labels"]["instance"],
        format!("127.0.0.1:{port}")
    );
}
