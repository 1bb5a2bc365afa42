//! The migration console (`/` on the metrics port) in a real browser against
//! a running bridge: it loads with no console message, shows the figures
//! `/status` has, keeps them fresh without a reload, says when a mapping is
//! paused by its rate limit, and says when its figures have gone stale.

use std::time::Duration;

use serde_json::Value;

use crate::support::browser::Browser;
use crate::support::*;

/// What the page shows, read from its tables.
const PAGE_FIGURES: &str = r#"
const mappings = {};
for (const tr of document.querySelectorAll('#mappings tbody tr[data-mapping]')) {
  const cells = tr.querySelectorAll('td');
  mappings[tr.dataset.mapping] = {
    state: tr.querySelector('[data-field=state]').textContent,
    limit: cells[cells.length - 1].textContent,
  };
}
const committed = {};
for (const table of document.querySelectorAll('#partitions table[data-mapping]')) {
  let sum = 0;
  for (const td of table.querySelectorAll('[data-field=committed]')) sum += Number(td.dataset.value || 0);
  committed[table.dataset.mapping] = sum;
}
return {
  mappings, committed,
  cutover: [...document.querySelectorAll('#cutover tbody tr')].map(tr => tr.textContent),
  daily: [...document.querySelectorAll('#daily tbody tr')].map(tr => tr.textContent),
  inFlight: document.getElementById('in-flight').textContent,
  ready: document.getElementById('ready').textContent,
  connection: document.getElementById('connection').textContent,
  stale: document.body.dataset.stale === 'true',
};
"#;

/// `mapping`'s entry in `/status`.
fn mapping_in_status<'a>(status: &'a Value, mapping: &str) -> Option<&'a Value> {
    status["mappings"]
        .as_array()?
        .iter()
        .find(|m| m["mapping"] == mapping)
}

/// The committed offsets of `mapping`'s partitions in `/status`, summed.
fn committed_in_status(status: &Value, mapping: &str) -> i64 {
    mapping_in_status(status, mapping)
        .and_then(|m| m["partitions"].as_array())
        .into_iter()
        .flatten()
        .filter_map(|p| p["committed"].as_i64())
        .sum()
}

fn mapping_state(status: &Value, mapping: &str) -> String {
    mapping_in_status(status, mapping)
        .and_then(|m| m["state"].as_str())
        .unwrap_or("")
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_shows_the_live_figures_and_a_mapping_paused_by_its_limit() {
    away_from_midnight().await;
    let brokers = brokers();
    let base = unique("console");
    let fast = (format!("{base}.fast"), format!("{base}_fast"));
    let slow = (format!("{base}.slow"), format!("{base}_slow"));
    let port = closed_port();
    let text = config_text(
        &brokers.kafka,
        &brokers.name_server,
        &[(&fast.0, &fast.1), (&slow.0, &slow.1)],
    )
    .replacen(
        "    rocketmq_topic:",
        "    name: \"fast\"\n    rocketmq_topic:",
        1,
    )
    .replace(
        &format!("    rocketmq_topic: \"{}\"\n", slow.1),
        &format!(
            "    name: \"slow\"\n    rocketmq_topic: \"{}\"\n    rate_limit:\n      messages_per_second: 20\n",
            slow.1
        ),
    );
    // The daily count-match, a few seconds ahead: its verdicts show on the page.
    let at = (chrono::Utc::now() + chrono::Duration::seconds(5)).format("%H:%M:%S");
    let file = config_file(&format!(
        "{text}metrics:\n  listen: \"127.0.0.1:{port}\"\nbridge:\n  daily_verify:\n    at: \"{at}\"\n"
    ));
    create_topics(file.path(), 3, 3);
    let producer = kafka_producer(&brokers.kafka);
    produce(&producer, &fast.0, &keyed_records("f", 500, 20)).await;
    // 2,000 records at 20/s: the slow mapping stays paused by its limit.
    produce(&producer, &slow.0, &keyed_records("s", 2_000, 20)).await;

    let bridge = BridgeProcess::start(file.path());
    let settled = |_: u16, body: &str| {
        serde_json::from_str::<Value>(body).is_ok_and(|status| {
            committed_in_status(&status, "fast") == 500
                && mapping_state(&status, "slow") == "paused-by-limit"
                && status["daily_verify"]
                    .as_array()
                    .is_some_and(|days| days.len() == 2)
        })
    };
    wait_for_http(port, "/status", Duration::from_secs(120), settled)
        .await
        .unwrap_or_else(|| panic!("/status never answered; log:\n{}", bridge.logs()));
    assert!(
        settled(
            200,
            &http_get(port, "/status")
                .map(|(_, b)| b)
                .unwrap_or_default()
        ),
        "the fast mapping never committed 500 records, the slow one was never paused, \
         or the daily count-match never ran; log:\n{}",
        bridge.logs()
    );

    let browser = Browser::start();
    browser.navigate(&format!("http://127.0.0.1:{port}/"));
    let shown = browser.wait_for(PAGE_FIGURES, Duration::from_secs(30), |page| {
        page["committed"]["fast"] == 500 && page["mappings"]["slow"]["state"] == "paused-by-limit"
    });
    assert_eq!(shown["committed"]["fast"], 500, "{shown}");
    assert_eq!(shown["mappings"]["fast"]["state"], "running", "{shown}");
    assert_eq!(
        shown["mappings"]["slow"]["state"], "paused-by-limit",
        "{shown}"
    );
    assert_eq!(shown["mappings"]["slow"]["limit"], "20 msg/s", "{shown}");
    assert_eq!(shown["mappings"]["fast"]["limit"], "none", "{shown}");
    assert!(
        shown["inFlight"]
            .as_str()
            .is_some_and(|t| t.ends_with("/ 64.0 MiB")),
        "the in-flight cap (64 MiB by default): {shown}"
    );
    assert_eq!(shown["ready"], "ready", "{shown}");
    // Yesterday, for both mappings: no records, so MATCH with 0 on each side.
    let yesterday = utc_day(yesterday_start_ms());
    let daily: Vec<&str> = shown["daily"]
        .as_array()
        .map(|rows| rows.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    assert_eq!(
        daily,
        [
            format!("{yesterday}fast00MATCH"),
            format!("{yesterday}slow00MATCH")
        ],
        "{shown}"
    );
    let cutover: Vec<&str> = shown["cutover"]
        .as_array()
        .map(|rows| rows.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    assert_eq!(cutover.len(), 3, "{shown}");
    assert!(
        cutover[2].starts_with("yesRocketMQ takes every send0 queues failing"),
        "{cutover:?}"
    );

    if let Ok(path) = std::env::var("BRIDGE_CONSOLE_SCREENSHOT") {
        std::fs::write(&path, browser.screenshot()).expect("write the screenshot");
    }

    // Fresh figures without a reload: 300 more records show up on the page.
    produce(&producer, &fast.0, &keyed_records("g", 300, 20)).await;
    let shown = browser.wait_for(PAGE_FIGURES, Duration::from_secs(60), |page| {
        page["committed"]["fast"] == 800
    });
    assert_eq!(
        shown["committed"]["fast"],
        committed_in_status(&status_json(port), "fast"),
        "the page lags /status: {shown}"
    );
    assert_eq!(shown["committed"]["fast"], 800, "{shown}");

    let messages = browser.console_messages();
    assert!(
        messages.is_empty(),
        "the page wrote to the browser console: {messages:?}"
    );

    // The bridge goes away: the page keeps its figures but says they are stale.
    let logs = bridge.kill9();
    let shown = browser.wait_for(PAGE_FIGURES, Duration::from_secs(30), |page| {
        page["stale"] == true
    });
    assert_eq!(shown["stale"], true, "{shown}; log:\n{logs}");
    assert!(
        shown["connection"]
            .as_str()
            .is_some_and(|t| t.contains("figures below are stale")),
        "{shown}"
    );
    assert_eq!(shown["committed"]["fast"], 800, "{shown}");
}
