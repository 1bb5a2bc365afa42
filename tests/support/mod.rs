//! Shared helpers for the integration tests: where the real test brokers
//! are, unique topic names, config files, and running the binary.

#![allow(dead_code)]

pub mod browser;
pub mod fault_proxy;
pub mod http;

use std::io::Write;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// The brokers `scripts/test.sh` started, shared by every test of the binary.
/// Holding it keeps tests that stop or kill those brokers from running at
/// the same time (`brokers_exclusively`).
pub struct TestBrokers {
    pub kafka: String,
    pub name_server: String,
    _shared: SharedUse,
}

/// Tests run in parallel within the one test binary; this is what the
/// separate binaries gave before: a test that faults a shared broker runs
/// alone. Readers never wait for a waiting writer, so a test may hold two.
struct SharedUse {
    exclusive: bool,
}

struct Users {
    readers: usize,
    writer: bool,
}

static USERS: std::sync::Mutex<Users> = std::sync::Mutex::new(Users {
    readers: 0,
    writer: false,
});
static USERS_CHANGED: std::sync::Condvar = std::sync::Condvar::new();

impl SharedUse {
    fn take(exclusive: bool) -> Self {
        // A test that panicked while holding the lock leaves the count right.
        let mut users = USERS.lock().unwrap_or_else(|e| e.into_inner());
        while users.writer || (exclusive && users.readers > 0) {
            users = USERS_CHANGED.wait(users).unwrap_or_else(|e| e.into_inner());
        }
        if exclusive {
            users.writer = true;
        } else {
            users.readers += 1;
        }
        SharedUse { exclusive }
    }
}

impl Drop for SharedUse {
    fn drop(&mut self) {
        let mut users = USERS.lock().unwrap_or_else(|e| e.into_inner());
        if self.exclusive {
            users.writer = false;
        } else {
            users.readers -= 1;
        }
        USERS_CHANGED.notify_all();
    }
}

pub fn brokers() -> TestBrokers {
    test_brokers(SharedUse::take(false))
}

/// The shared brokers, for a test that stops, kills or restarts them: it waits
/// until no other test uses them, and keeps the others waiting until it is done.
pub fn brokers_exclusively() -> TestBrokers {
    test_brokers(SharedUse::take(true))
}

fn test_brokers(shared: SharedUse) -> TestBrokers {
    let var = |name: &str| {
        std::env::var(name).unwrap_or_else(|_| {
            panic!("{name} is not set: run the integration tests with scripts/test.sh, which starts the brokers")
        })
    };
    TestBrokers {
        kafka: var("BRIDGE_TEST_KAFKA"),
        name_server: var("BRIDGE_TEST_NAMESRV"),
        _shared: shared,
    }
}

/// A name no other test or earlier run uses.
pub fn unique(prefix: &str) -> String {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!(
        "{prefix}-{}-{}-{}",
        std::process::id(),
        nanos % 1_000_000_000,
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// A 127.0.0.1 port nothing listens on.
pub fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    listener.local_addr().expect("local addr").port()
}

/// A free 127.0.0.1 port for a one-node Kafka whose KRaft controller takes
/// the port after it, free too.
pub fn closed_kafka_port() -> u16 {
    (0..100)
        .map(|_| closed_port())
        .find(|p| *p < u16::MAX && TcpListener::bind(("127.0.0.1", p + 1)).is_ok())
        .expect("a free Kafka port with a free port after it")
}

/// Writes `text` to a fresh temporary config file.
pub fn config_file(text: &str) -> tempfile::NamedTempFile {
    let mut file = tempfile::Builder::new()
        .suffix(".yaml")
        .tempfile()
        .expect("temp file");
    file.write_all(text.as_bytes()).expect("write config");
    file
}

/// A config with one mapping per (kafka, rocketmq) pair.
///
/// `session.timeout.ms` is Apache Kafka's minimum (group.min.session.timeout.ms),
/// not librdkafka's 45 s: a bridge killed with -9 stays a group member until
/// its session times out, and the tests restart or replace killed bridges.
pub fn config_text(kafka: &str, name_server: &str, pairs: &[(&str, &str)]) -> String {
    let mut text = format!(
        "kafka:\n  bootstrap_servers: \"{kafka}\"\n  group_id: \"{}\"\n  properties:\n    session.timeout.ms: \"6000\"\n\
         rocketmq:\n  name_server: \"{name_server}\"\nmappings:\n",
        unique("group")
    );
    for (kafka_topic, rocketmq_topic) in pairs {
        text.push_str(&format!(
            "  - kafka_topic: \"{kafka_topic}\"\n    rocketmq_topic: \"{rocketmq_topic}\"\n"
        ));
    }
    text
}

pub fn binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_kafka-rocketmq-bridge"))
}

/// `create-topics` for the config at `config`, which must succeed.
pub fn create_topics(config: impl AsRef<std::path::Path>, partitions: u32, queues: u32) {
    create_topics_and_ledgers(config, partitions, queues, &[]);
}

/// `create-topics`, with the ledger topics of the dual-read `groups`, which
/// must succeed; returns what it printed.
pub fn create_topics_and_ledgers(
    config: impl AsRef<std::path::Path>,
    partitions: u32,
    queues: u32,
    groups: &[String],
) -> String {
    let path = config
        .as_ref()
        .to_str()
        .expect("UTF-8 temp path")
        .to_string();
    let (partitions, queues) = (partitions.to_string(), queues.to_string());
    let mut args = vec![
        "create-topics",
        "--config",
        &path,
        "--partitions",
        &partitions,
        "--queues",
        &queues,
    ];
    for group in groups {
        args.extend(["--dual-read-group", group.as_str()]);
    }
    let output = run(&args);
    assert!(
        output.status.success(),
        "create-topics failed: {}{}",
        stdout(&output),
        stderr(&output)
    );
    stdout(&output)
}

/// `compare-results --json` for `group` over the UTC days `from` to `to`:
/// its exit code and report.
pub fn compare_results(
    config: &std::path::Path,
    group: &str,
    from: &str,
    to: &str,
) -> (Option<i32>, serde_json::Value) {
    let path = config.to_str().expect("UTF-8 path");
    let output = run(&[
        "compare-results",
        "--config",
        path,
        "--group",
        group,
        "--from",
        from,
        "--to",
        to,
        "--json",
    ]);
    let report = serde_json::from_str(&stdout(&output)).unwrap_or_else(|e| {
        panic!(
            "compare-results printed no JSON ({e}):\n{}",
            printed(&output)
        )
    });
    (output.status.code(), report)
}

/// Runs the binary to completion and returns its output.
pub fn run(args: &[&str]) -> Output {
    Command::new(binary())
        .args(args)
        .env("NO_COLOR", "1")
        .output()
        .expect("run kafka-rocketmq-bridge")
}

/// Everything a command printed: its stdout, then its stderr.
pub fn printed(output: &Output) -> String {
    format!("{}{}", stdout(output), stderr(output))
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

// ---- Kafka side ---------------------------------------------------------

use std::collections::BTreeMap;
use std::process::{Child, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use kafka_rocketmq_bridge::config::{BridgeConfig, RocketMqConfig};
use kafka_rocketmq_bridge::mapping::{SourceRecord, TimestampType};
use kafka_rocketmq_bridge::rocketmq_reader::{ReadMessage, TopicReader};
use kafka_rocketmq_bridge::rocketmq_sink::RocketMqRuntime;
use rdkafka::ClientConfig;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};

/// A record to produce; the test keeps what Kafka assigned.
#[derive(Debug, Clone)]
pub struct TestRecord {
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: Vec<(String, Option<Vec<u8>>)>,
    pub partition: Option<i32>,
    /// CreateTime in ms since the epoch; Kafka's clock when `None`.
    pub timestamp: Option<i64>,
}

impl TestRecord {
    /// A record with `key` and no value (a tombstone), nothing else set.
    pub fn tombstone(key: &[u8]) -> Self {
        TestRecord {
            key: Some(key.to_vec()),
            value: None,
            headers: vec![],
            partition: None,
            timestamp: None,
        }
    }
}

/// Keyed records with two headers, spread by key over the partitions.
pub fn keyed_records(topic_tag: &str, count: usize, keys: usize) -> Vec<TestRecord> {
    (0..count)
        .map(|i| TestRecord {
            key: Some(format!("key-{:04}", i % keys).into_bytes()),
            value: Some(format!("{topic_tag} record {i} {}", "x".repeat(i % 50)).into_bytes()),
            headers: vec![
                ("seq".to_string(), Some(i.to_string().into_bytes())),
                ("origin".to_string(), Some(topic_tag.as_bytes().to_vec())),
            ],
            partition: None,
            timestamp: None,
        })
        .collect()
}

pub fn kafka_producer(bootstrap: &str) -> FutureProducer {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("linger.ms", "5")
        .set("enable.idempotence", "true")
        .set("queue.buffering.max.messages", "1000000")
        .create()
        .expect("Kafka test producer")
}

/// Produces `records` to `topic` and returns them as Kafka stored them.
pub async fn produce(
    producer: &FutureProducer,
    topic: &str,
    records: &[TestRecord],
) -> Vec<SourceRecord> {
    let mut deliveries = Vec::with_capacity(records.len());
    for record in records {
        let mut headers = OwnedHeaders::new();
        for (name, value) in &record.headers {
            headers = headers.insert(Header {
                key: name,
                value: value.as_deref(),
            });
        }
        let mut message: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(topic).headers(headers);
        if let Some(key) = &record.key {
            message = message.key(key.as_slice());
        }
        if let Some(value) = &record.value {
            message = message.payload(value.as_slice());
        }
        if let Some(partition) = record.partition {
            message = message.partition(partition);
        }
        if let Some(millis) = record.timestamp {
            message = message.timestamp(millis);
        }
        loop {
            match producer.send_result(message) {
                Ok(delivery) => break deliveries.push(delivery),
                Err((_, back)) => {
                    message = back;
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            }
        }
    }
    let mut stored = Vec::with_capacity(records.len());
    for (record, delivery) in records.iter().zip(deliveries) {
        let delivered = delivery
            .await
            .expect("delivery future")
            .expect("Kafka stored the record");
        stored.push(SourceRecord::new(
            topic,
            delivered.partition,
            delivered.offset,
            delivered
                .timestamp
                .to_millis()
                .map(|ms| (ms, TimestampType::CreateTime)),
            record.key.as_deref(),
            record.value.as_deref(),
            record
                .headers
                .iter()
                .map(|(name, value)| (name.as_str(), value.as_deref())),
        ));
    }
    stored
}

// ---- the bridge process -------------------------------------------------

/// A running `kafka-rocketmq-bridge run`, its logs in a file.
pub struct BridgeProcess {
    child: Child,
    pub log: PathBuf,
}

impl BridgeProcess {
    pub fn start(config: &std::path::Path) -> Self {
        let log = std::env::temp_dir().join(format!("{}.log", unique("bridge")));
        let file = std::fs::File::create(&log).expect("bridge log file");
        let child = Command::new(binary())
            .args(["run", "--config", config.to_str().unwrap()])
            .env("NO_COLOR", "1")
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .expect("start the bridge");
        BridgeProcess { child, log }
    }

    /// Like `start`, with extra environment variables, and stdout kept in
    /// the log file too (for tests that check everything it prints).
    pub fn start_with_env(config: &std::path::Path, env: &[(&str, &str)]) -> Self {
        let log = std::env::temp_dir().join(format!("{}.log", unique("bridge")));
        let file = std::fs::File::create(&log).expect("bridge log file");
        let stdout = file.try_clone().expect("log file handle");
        let child = Command::new(binary())
            .args(["run", "--config", config.to_str().unwrap()])
            .env("NO_COLOR", "1")
            .envs(env.iter().copied())
            .stdout(stdout)
            .stderr(file)
            .spawn()
            .expect("start the bridge");
        BridgeProcess { child, log }
    }

    /// Waits until the log holds `count` lines containing `text`, up to `deadline`.
    pub fn wait_for_log(&self, text: &str, count: usize, deadline: Duration) -> bool {
        let start = Instant::now();
        while start.elapsed() < deadline {
            if self.logs().matches(text).count() >= count {
                return true;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        false
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &self.pid().to_string()])
            .status()
            .expect("kill");
        assert!(status.success(), "kill -{signal} failed");
    }

    /// Waits for the process to exit, up to `deadline`.
    pub fn wait(&mut self, deadline: Duration) -> Option<ExitStatus> {
        let start = Instant::now();
        while start.elapsed() < deadline {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// SIGTERM, then the process must exit 0 within `deadline`.
    pub fn stop_gracefully(&mut self, deadline: Duration) {
        self.signal("TERM");
        let status = self
            .wait(deadline)
            .unwrap_or_else(|| panic!("no exit within {deadline:?}; log:\n{}", self.logs()));
        assert!(status.success(), "exit {status:?}; log:\n{}", self.logs());
    }

    /// Kills the process with SIGKILL and returns its whole log.
    pub fn kill9(mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.logs()
    }

    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// Polls `count` every 200 ms until it reaches `at_least`; fails after
/// `within` with the last count, what was counted, and `bridge`'s log.
pub async fn wait_for_count(
    what: &str,
    at_least: i64,
    within: Duration,
    bridge: &BridgeProcess,
    mut count: impl AsyncFnMut() -> i64,
) {
    let deadline = Instant::now() + within;
    loop {
        let counted = count().await;
        if counted >= at_least {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{counted} of {at_least} {what} after {} s: {}",
            within.as_secs(),
            bridge.logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// How many records `topic`'s partitions `0..partitions` hold in all.
pub fn kafka_record_count(bootstrap: &str, topic: &str, partitions: i32) -> i64 {
    high_watermarks(bootstrap, topic, partitions).iter().sum()
}

/// Waits until `topic`'s partitions hold at least `at_least` records in
/// all (the way back's copies), for up to 300 s.
pub async fn wait_for_kafka_copies(
    bootstrap: &str,
    topic: &str,
    partitions: i32,
    at_least: i64,
    bridge: &BridgeProcess,
) {
    let copied = async || kafka_record_count(bootstrap, topic, partitions);
    wait_for_count("copies", at_least, Duration::from_secs(300), bridge, copied).await;
}

impl Drop for BridgeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---- RocketMQ side ------------------------------------------------------

/// Reads what RocketMQ holds.
pub struct Reader {
    runtime: Option<RocketMqRuntime>,
    reader: Option<TopicReader>,
}

impl Reader {
    pub async fn new(name_server: &str) -> Self {
        let runtime = RocketMqRuntime::start(1).expect("client runtime");
        let config: RocketMqConfig =
            serde_yaml::from_str(&format!("name_server: \"{name_server}\"")).unwrap();
        let reader = TopicReader::start(runtime.client_runtime(), &config, &unique("reader"))
            .await
            .expect("reader");
        Reader {
            runtime: Some(runtime),
            reader: Some(reader),
        }
    }

    fn reader(&self) -> &TopicReader {
        self.reader.as_ref().expect("reader")
    }

    /// Messages stored in `topic` (sum over queues).
    pub async fn count(&self, topic: &str) -> i64 {
        let mut total = 0;
        for queue in self.reader().queues(topic).await.expect("queues") {
            let (min, max) = self.reader().offsets(&queue).await.expect("offsets");
            total += max - min;
        }
        total
    }

    /// Waits until `topic` holds at least `expected` messages.
    pub async fn wait_for_count(&self, topic: &str, expected: i64, deadline: Duration) -> i64 {
        let start = Instant::now();
        loop {
            let count = self.count(topic).await;
            if count >= expected || start.elapsed() > deadline {
                return count;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Re-reads `topic` until it holds `records` distinct Kafka records (copies
    /// of one record count once) or `deadline` passes; returns every copy.
    pub async fn wait_for_all(
        &self,
        topic: &str,
        records: usize,
        deadline: Duration,
    ) -> Vec<ReadMessage> {
        let start = Instant::now();
        loop {
            let messages = self.read(topic).await;
            let distinct: std::collections::BTreeSet<_> =
                messages.iter().map(coordinates).collect();
            if distinct.len() >= records || start.elapsed() > deadline {
                return messages;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    pub async fn read(&self, topic: &str) -> Vec<ReadMessage> {
        self.reader().read_topic(topic).await.expect("read topic")
    }

    pub async fn close(mut self) {
        if let Some(reader) = self.reader.take() {
            reader.shutdown().await;
        }
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown().await;
        }
    }
}

/// Kafka coordinates of a message, from its provenance.
pub fn coordinates(message: &ReadMessage) -> (String, i32, i64) {
    let record = message.kafka_record().expect("bridge message");
    (record.topic.to_string(), record.partition, record.offset)
}

/// Checks that each queue holds each Kafka partition's (or key's) records
/// in increasing offset order. Returns the number of order groups checked.
pub fn assert_ordered_by(
    messages: &[ReadMessage],
    group_of: impl Fn(&SourceRecord) -> String,
) -> usize {
    let mut last: BTreeMap<String, (i32, i64)> = BTreeMap::new();
    let mut sorted: Vec<&ReadMessage> = messages.iter().collect();
    sorted.sort_by_key(|m| (m.queue_id, m.queue_offset));
    for message in sorted {
        let record = message.kafka_record().expect("bridge message");
        let group = group_of(&record);
        if let Some((queue, offset)) = last.get(&group) {
            assert_eq!(
                *queue, message.queue_id,
                "group {group} spans queues {queue} and {}",
                message.queue_id
            );
            assert!(
                record.offset > *offset,
                "group {group}: offset {} after {offset} in queue {queue}",
                record.offset
            );
        }
        last.insert(group, (message.queue_id, record.offset));
    }
    last.len()
}

/// Loads a config the way the binary does, for tests that need its values.
pub fn parse_config(text: &str) -> BridgeConfig {
    kafka_rocketmq_bridge::config::load_str(text, "test.yaml", |_| None).expect("valid test config")
}

/// Runs `scripts/brokers.sh` with the test brokers' settings (set by scripts/test.sh).
pub fn brokers_script(args: &[&str]) {
    let script = std::env::var("BRIDGE_TEST_BROKERS_SCRIPT")
        .expect("BRIDGE_TEST_BROKERS_SCRIPT is not set: run the tests with scripts/test.sh");
    let status = Command::new(script)
        .args(args)
        .status()
        .expect("run brokers.sh");
    assert!(status.success(), "brokers.sh {args:?} failed");
}

/// Every record of `expected_total` present once at least; returns the
/// duplicate count, after checking per-partition order of first copies.
pub fn assert_complete_and_ordered(
    messages: &[ReadMessage],
    expected_total: usize,
    partitions: usize,
) -> usize {
    let mut seen = std::collections::BTreeSet::new();
    let mut sorted: Vec<&ReadMessage> = messages.iter().collect();
    sorted.sort_by_key(|m| (m.queue_id, m.queue_offset));
    let mut firsts = Vec::new();
    for message in sorted {
        if seen.insert(coordinates(message)) {
            firsts.push(message.clone());
        }
    }
    assert_eq!(seen.len(), expected_total, "records missing");
    assert_eq!(
        assert_ordered_by(&firsts, |r| r.partition.to_string()),
        partitions
    );
    messages.len() - expected_total
}

/// GET `path` on 127.0.0.1:`port`: (status code, body), or None if nothing answers.
pub fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    http::request(port, "GET", path, None)
}

/// `/status` of the bridge whose metrics port is `port`, parsed.
pub fn status_json(port: u16) -> serde_json::Value {
    let (code, body) = http_get(port, "/status").expect("/status answers");
    assert_eq!(code, 200, "{body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("/status is not JSON ({e}): {body}"))
}

/// Polls `path` until `done` holds for (status, body), or `deadline` passes.
pub async fn wait_for_http(
    port: u16,
    path: &str,
    deadline: Duration,
    done: impl Fn(u16, &str) -> bool,
) -> Option<(u16, String)> {
    let start = Instant::now();
    let mut last = None;
    while start.elapsed() < deadline {
        last = http_get(port, path);
        if let Some((status, body)) = &last
            && done(*status, body)
        {
            return last;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    last
}

/// The sum of every series of counter or gauge `name` on `/metrics`, parsed
/// as Prometheus text; 0 if nothing answers.
/// The sum of `name`'s series whose labels include all of `labels`.
pub fn metric_sum_where(port: u16, name: &str, labels: &[(&str, &str)]) -> f64 {
    let Some((_, body)) = http_get(port, "/metrics") else {
        return 0.0;
    };
    let scrape = prometheus_parse::Scrape::parse(body.lines().map(|l| Ok(l.to_string())))
        .expect("/metrics is Prometheus text");
    scrape
        .samples
        .iter()
        .filter(|s| s.metric == name)
        .filter(|s| labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .map(|s| match &s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => *v,
            _ => 0.0,
        })
        .sum()
}

pub fn metric_sum(port: u16, name: &str) -> f64 {
    let Some((_, body)) = http_get(port, "/metrics") else {
        return 0.0;
    };
    let scrape = prometheus_parse::Scrape::parse(body.lines().map(|l| Ok(l.to_string())))
        .expect("/metrics is Prometheus text");
    scrape
        .samples
        .iter()
        .filter(|s| s.metric == name)
        .map(|s| match &s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => *v,
            _ => 0.0,
        })
        .sum()
}

/// How often a test's own brokers start again on new ports when one chosen
/// free was bound by another process first.
pub const START_ATTEMPTS: usize = 3;

/// Whether `brokers.sh start` refused because a port it was given is
/// listened on by another process.
pub fn port_taken(stderr: &str) -> bool {
    stderr.contains("already in use by another process")
}

/// Brokers of a test's own, started by `scripts/brokers.sh` on ports and
/// with a state directory of their own, for tests that need brokers set up
/// differently from the shared ones (or that fault them). Dropping it stops
/// them and deletes their data; a watchdog does the same if the test
/// process dies first.
pub struct OwnBrokers {
    /// Direct addresses, whatever the brokers advertise.
    pub kafka: String,
    pub name_server: String,
    dir: PathBuf,
    env: Vec<(String, String)>,
}

impl OwnBrokers {
    /// Starts `components` (`kafka`, `namesrv`, `broker`; none means all)
    /// on free ports, with `settings` (brokers.sh environment) added.
    pub fn start(components: &[&str], settings: &[(&str, &str)]) -> Self {
        // Every port is chosen again on each attempt. The broker also binds
        // its port - 2 and + 1.
        Self::start_placed(components, || {
            let broker_port = free_base(&[-2, 0, 1]);
            Self::on_ports(closed_kafka_port(), closed_port(), broker_port, settings)
        })
    }

    /// Starts `components` of the brokers `place` puts on free ports, and
    /// places them again when one of those ports was bound by another
    /// process before the brokers bound it (tests run in parallel).
    fn start_placed(components: &[&str], place: impl Fn() -> Self) -> Self {
        for attempt in 1..=START_ATTEMPTS {
            let brokers = place();
            let (started, stderr) = brokers.try_run("start", components);
            if started {
                return brokers;
            }
            assert!(
                port_taken(&stderr),
                "brokers.sh start {components:?} failed: {stderr}"
            );
            eprintln!("attempt {attempt} of {START_ATTEMPTS}: {stderr}");
        }
        panic!("a port of the brokers was taken in each of {START_ATTEMPTS} attempts")
    }

    /// Not started yet: the caller chose the ports (to put proxies in front).
    pub fn on_ports(
        kafka_port: u16,
        namesrv_port: u16,
        broker_port: u16,
        settings: &[(&str, &str)],
    ) -> Self {
        let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(unique("own-brokers"));
        let mut env: Vec<(String, String)> = vec![
            ("BRIDGE_KAFKA_PORT".into(), kafka_port.to_string()),
            ("BRIDGE_NAMESRV_PORT".into(), namesrv_port.to_string()),
            ("BRIDGE_BROKER_PORT".into(), broker_port.to_string()),
            ("BRIDGE_BROKERS_DIR".into(), dir.display().to_string()),
            // Several tests run brokers at once: small store files keep them
            // from filling the disk, where the broker refuses every write.
            ("BRIDGE_BROKER_FILE_MB".into(), "64".into()),
        ];
        env.extend(settings.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let brokers = OwnBrokers {
            kafka: format!("127.0.0.1:{kafka_port}"),
            name_server: format!("127.0.0.1:{namesrv_port}"),
            dir,
            env,
        };
        brokers.watchdog();
        brokers
    }

    /// `brokers.sh ACTION COMPONENTS...`; panics if it fails.
    pub fn run(&self, action: &str, components: &[&str]) {
        let output = self
            .script()
            .arg(action)
            .args(components)
            .output()
            .expect("run brokers.sh");
        assert!(
            output.status.success(),
            "brokers.sh {action} {components:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    fn script(&self) -> Command {
        let mut command = Command::new(brokers_script_path());
        command.envs(self.env.iter().map(|(k, v)| (k, v)));
        command
    }

    /// A detached shell that runs `brokers.sh clean` once this test process
    /// is gone, in case it dies without running `Drop`.
    fn watchdog(&self) {
        let script = r#"while kill -0 "$1" 2>/dev/null && [ -d "$2" ]; do sleep 1; done; [ -d "$2" ] && exec "$3" clean"#;
        let _ = Command::new("setsid")
            .args(["sh", "-c", script, "watchdog"])
            .arg(std::process::id().to_string())
            .arg(&self.dir)
            .arg(brokers_script_path())
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn();
    }
}

fn brokers_script_path() -> PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/brokers.sh")
}

impl Drop for OwnBrokers {
    fn drop(&mut self) {
        // Stops the brokers and deletes the RocketMQ store.
        let _ = self.script().arg("clean").output();
    }
}

/// The lines of a bridge log that say who owned what and what it found or
/// re-sent: partitions assigned, revoked or lost, restart scans, re-sends.
/// What a duplicate needs to be traced.
pub fn ownership_trail(logs: &str) -> Vec<String> {
    const MARKS: [&str; 6] = [
        "partitions assigned",
        "partitions revoked",
        "lost",
        "restart scan: read the targets' tails",
        "already stored in the target",
        "sending it again",
    ];
    logs.lines()
        .filter(|line| MARKS.iter().any(|mark| line.contains(mark)))
        .map(str::to_string)
        .collect()
}

/// Where each copy of the record at `record` is: queue, offset, store time.
pub fn copies_of(messages: &[ReadMessage], record: &(String, i32, i64)) -> Vec<String> {
    messages
        .iter()
        .filter(|m| coordinates(m) == *record)
        .map(|m| {
            format!(
                "queue {} offset {} stored at {} ms",
                m.queue_id, m.queue_offset, m.store_timestamp
            )
        })
        .collect()
}

/// `config_text` with the bridge's fence topic set to `topic`.
pub fn with_fence_topic(config_text: &str, topic: &str) -> String {
    config_text.replace(
        "rocketmq:\n",
        &format!("rocketmq:\n  fence_topic: \"{topic}\"\n"),
    )
}

// ---- Kafka offsets, plain reads and `verify` by day ----------------------
// (for the Apache-Kafka-only tests: kafka_restart, transactions, compacted)

/// Midnight UTC of yesterday, in ms: records stamped in a day that is over
/// get a real `verify` verdict (today's day is always INCOMPLETE).
pub fn yesterday_start_ms() -> i64 {
    const DAY_MS: i64 = 86_400_000;
    chrono::Utc::now().timestamp_millis() / DAY_MS * DAY_MS - DAY_MS
}

/// Waits out the last two minutes of a UTC day: the run the test schedules
/// must fall on the same day as the records it counts as "yesterday".
pub async fn away_from_midnight() {
    let now = chrono::Utc::now();
    let soon = now + chrono::Duration::minutes(2);
    if soon.date_naive() != now.date_naive() {
        let midnight = soon
            .date_naive()
            .and_hms_opt(0, 0, 1)
            .expect("a time")
            .and_utc();
        tokio::time::sleep((midnight - now).to_std().unwrap_or_default()).await;
    }
}

/// The UTC day (YYYY-MM-DD) holding `millis`.
pub fn utc_day(millis: i64) -> String {
    chrono::DateTime::from_timestamp_millis(millis)
        .map(|t| t.date_naive().to_string())
        .unwrap_or_default()
}

/// Runs `verify --json` for one UTC day; returns its exit code and report.
pub fn verify_day(config: &std::path::Path, day: &str) -> (i32, serde_json::Value) {
    let path = config.to_str().expect("UTF-8 path");
    let output = run(&[
        "verify", "--config", path, "--from", day, "--to", day, "--json",
    ]);
    let report = serde_json::from_str(&stdout(&output)).unwrap_or_else(|e| {
        panic!(
            "verify did not print JSON ({e}): {}{}",
            stdout(&output),
            stderr(&output)
        )
    });
    (output.status.code().unwrap_or(-1), report)
}

/// A plain Kafka client (no group joined) with `properties` added.
fn plain_consumer(bootstrap: &str, group: &str) -> rdkafka::consumer::BaseConsumer {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false")
        .create()
        .expect("Kafka test consumer")
}

/// The high watermark of each partition `0..partitions` of `topic`.
pub fn high_watermarks(bootstrap: &str, topic: &str, partitions: i32) -> Vec<i64> {
    let consumer = plain_consumer(bootstrap, &unique("watermarks"));
    (0..partitions)
        .map(|p| {
            rdkafka::consumer::Consumer::fetch_watermarks(
                &consumer,
                topic,
                p,
                Duration::from_secs(30),
            )
            .expect("watermarks")
            .1
        })
        .collect()
}

/// `group`'s committed offset of each partition `0..partitions` of
/// `topic` (None: nothing committed), read without joining the group.
pub fn group_committed(
    bootstrap: &str,
    group: &str,
    topic: &str,
    partitions: i32,
) -> Vec<Option<i64>> {
    use rdkafka::consumer::Consumer;
    let consumer = plain_consumer(bootstrap, group);
    let mut list = rdkafka::TopicPartitionList::new();
    for p in 0..partitions {
        list.add_partition(topic, p);
    }
    let committed = consumer
        .committed_offsets(list, Duration::from_secs(30))
        .expect("committed offsets");
    (0..partitions)
        .map(
            |p| match committed.find_partition(topic, p).map(|e| e.offset()) {
                Some(rdkafka::Offset::Offset(offset)) => Some(offset),
                _ => None,
            },
        )
        .collect()
}

/// A record as a plain (read_committed) consumer reads it back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadBack {
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub timestamp: Option<i64>,
    pub headers: Vec<(String, Option<Vec<u8>>)>,
}

/// Everything partition `partition` of `topic` holds now, from its log
/// start up to its high watermark, as a read_committed consumer sees it.
/// For partitions whose last offset holds a record, not a transaction
/// marker (reading stops at the record just below the high watermark).
pub fn read_partition(bootstrap: &str, topic: &str, partition: i32) -> Vec<ReadBack> {
    use rdkafka::Message;
    use rdkafka::consumer::Consumer;
    let consumer = plain_consumer(bootstrap, &unique("read-back"));
    let (_, high) = consumer
        .fetch_watermarks(topic, partition, Duration::from_secs(30))
        .expect("watermarks");
    let mut list = rdkafka::TopicPartitionList::new();
    list.add_partition_offset(topic, partition, rdkafka::Offset::Beginning)
        .expect("partition");
    consumer.assign(&list).expect("assign");
    let mut records: Vec<ReadBack> = Vec::new();
    let start = Instant::now();
    while records.last().map_or(high > 0, |r| r.offset < high - 1) {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "reading {topic}/{partition} back stalled after {:?} of {high}",
            records.last().map(|r| r.offset)
        );
        if let Some(message) = consumer.poll(Duration::from_millis(200)) {
            use rdkafka::message::Headers;
            let message = message.expect("read back");
            let headers = message.headers().map_or_else(Vec::new, |headers| {
                headers
                    .iter()
                    .map(|h| (h.key.to_string(), h.value.map(<[u8]>::to_vec)))
                    .collect()
            });
            records.push(ReadBack {
                partition,
                offset: message.offset(),
                key: message.key().map(<[u8]>::to_vec),
                value: message.payload().map(<[u8]>::to_vec),
                timestamp: message.timestamp().to_millis(),
                headers,
            });
        }
    }
    records
}

// ---- clusters and credentials: several Kafka nodes or RocketMQ masters, -----
// ---- SASL and ACL (tests/kafka_cluster.rs, rocketmq_cluster.rs, credentials.rs)

/// Whether every one of `ports` can be bound on 127.0.0.1 now.
fn ports_free(ports: &[u16]) -> bool {
    ports
        .iter()
        .all(|p| TcpListener::bind(("127.0.0.1", *p)).is_ok())
}

/// A base port `b` (from the ephemeral range) where every `b + offset` is free.
fn free_base(offsets: &[i32]) -> u16 {
    (0..200)
        .map(|_| closed_port())
        .find(|base| {
            let ports: Option<Vec<u16>> = offsets
                .iter()
                .map(|o| {
                    u16::try_from(i32::from(*base) + o)
                        .ok()
                        .filter(|p| *p > 1024)
                })
                .collect();
            ports.is_some_and(|ports| ports_free(&ports))
        })
        .expect("a free range of ports")
}

impl OwnBrokers {
    /// Like `start`, with `kafka_nodes` KRaft nodes (`BRIDGE_KAFKA_NODES`)
    /// and `broker_masters` RocketMQ masters (`BRIDGE_BROKER_MASTERS`), on
    /// base ports where every port they bind is free: Kafka node N uses
    /// base + 2(N-1) and the port after it; master K (from 0) uses broker
    /// base + 4K, and that - 2 and + 1. `kafka` lists every node.
    pub fn start_cluster(
        components: &[&str],
        kafka_nodes: usize,
        broker_masters: usize,
        settings: &[(&str, &str)],
    ) -> Self {
        Self::start_placed(components, || {
            Self::cluster_on_free_ports(kafka_nodes, broker_masters, settings)
        })
    }

    /// `start_cluster`, not started yet.
    pub fn cluster_on_free_ports(
        kafka_nodes: usize,
        broker_masters: usize,
        settings: &[(&str, &str)],
    ) -> Self {
        let kafka_offsets: Vec<i32> = (0..2 * kafka_nodes as i32).collect();
        let broker_offsets: Vec<i32> = (0..broker_masters as i32)
            .flat_map(|k| [4 * k - 2, 4 * k, 4 * k + 1])
            .collect();
        let kafka_port = free_base(&kafka_offsets);
        let mut broker_port = free_base(&broker_offsets);
        let mut namesrv_port = closed_port();
        // The ranges must not overlap each other either.
        let taken = |base: u16, offsets: &[i32], port: u16| {
            offsets
                .iter()
                .any(|o| i32::from(base) + o == i32::from(port))
        };
        while broker_offsets.iter().any(|o| {
            taken(
                kafka_port,
                &kafka_offsets,
                (i32::from(broker_port) + o) as u16,
            )
        }) {
            broker_port = free_base(&broker_offsets);
        }
        while taken(kafka_port, &kafka_offsets, namesrv_port)
            || taken(broker_port, &broker_offsets, namesrv_port)
        {
            namesrv_port = closed_port();
        }
        let (nodes, masters) = (kafka_nodes.to_string(), broker_masters.to_string());
        let mut all: Vec<(&str, &str)> = vec![
            ("BRIDGE_KAFKA_NODES", nodes.as_str()),
            ("BRIDGE_BROKER_MASTERS", masters.as_str()),
        ];
        all.extend_from_slice(settings);
        let mut brokers = Self::on_ports(kafka_port, namesrv_port, broker_port, &all);
        brokers.kafka = (0..kafka_nodes)
            .map(|n| format!("127.0.0.1:{}", kafka_port as usize + 2 * n))
            .collect::<Vec<_>>()
            .join(",");
        brokers
    }

    /// `brokers.sh ACTION COMPONENTS...`, returning whether it succeeded and
    /// its stderr (for a restart that may need a second try).
    pub fn try_run(&self, action: &str, components: &[&str]) -> (bool, String) {
        let output = self
            .script()
            .arg(action)
            .args(components)
            .output()
            .expect("run brokers.sh");
        (
            output.status.success(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    }

    /// Where the brokers keep their logs and data.
    pub fn dir(&self) -> &std::path::Path {
        &self.dir
    }
}

/// A Kafka producer with `properties` added (`acks`, SASL settings...).
pub fn kafka_producer_with(bootstrap: &str, properties: &[(&str, &str)]) -> FutureProducer {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", bootstrap)
        .set("linger.ms", "5")
        .set("enable.idempotence", "true")
        .set("queue.buffering.max.messages", "1000000");
    for (key, value) in properties {
        config.set(*key, *value);
    }
    config.create().expect("Kafka test producer")
}

/// The end (one past the last offset) of one RocketMQ queue, or why it is unknown.
#[derive(Debug, Clone)]
pub struct QueueEnd {
    pub broker: String,
    pub queue_id: i32,
    pub end: Result<i64, String>,
}

/// The messages of one RocketMQ queue, named by broker and queue id.
#[derive(Debug, Clone)]
pub struct QueueMessages {
    pub broker: String,
    pub queue_id: i32,
    pub messages: Vec<ReadMessage>,
}

impl Reader {
    /// A reader that logs in with RocketMQ ACL credentials.
    pub async fn with_credentials(name_server: &str, access_key: &str, secret_key: &str) -> Self {
        let runtime = RocketMqRuntime::start(1).expect("client runtime");
        let config: RocketMqConfig = serde_yaml::from_str(&format!(
            "name_server: \"{name_server}\"\naccess_key: \"{access_key}\"\nsecret_key: \"{secret_key}\""
        ))
        .unwrap();
        let reader = TopicReader::start(runtime.client_runtime(), &config, &unique("reader"))
            .await
            .expect("reader");
        Reader {
            runtime: Some(runtime),
            reader: Some(reader),
        }
    }

    /// `topic`'s queues as (broker name, queue id), sorted.
    pub async fn queue_names(&self, topic: &str) -> Vec<(String, i32)> {
        self.reader()
            .queues(topic)
            .await
            .expect("queues")
            .iter()
            .map(|q| (q.broker_name().to_string(), q.queue_id()))
            .collect()
    }

    /// The end of each queue of `topic` on `broker` (every broker when `None`).
    pub async fn queue_ends(&self, topic: &str, broker: Option<&str>) -> Vec<QueueEnd> {
        let mut ends = Vec::new();
        for queue in self.reader().queues(topic).await.expect("queues") {
            if broker.is_some_and(|b| b != queue.broker_name().as_str()) {
                continue;
            }
            ends.push(QueueEnd {
                broker: queue.broker_name().to_string(),
                queue_id: queue.queue_id(),
                end: self
                    .reader()
                    .offsets(&queue)
                    .await
                    .map(|(_, max)| max)
                    .map_err(|e| e.to_string()),
            });
        }
        ends
    }

    /// Every message of `topic`, queue by queue, each queue named by its broker.
    pub async fn read_queues(&self, topic: &str) -> Vec<QueueMessages> {
        let mut all = Vec::new();
        for queue in self.reader().queues(topic).await.expect("queues") {
            all.push(QueueMessages {
                broker: queue.broker_name().to_string(),
                queue_id: queue.queue_id(),
                messages: self.reader().read_queue(&queue).await.expect("read queue"),
            });
        }
        all
    }
}

/// Across queues on several brokers (queue ids repeat per broker): each
/// group's (partition's, key's) messages are in one queue, in increasing
/// Kafka offset order. Returns the number of groups.
pub fn assert_ordered_across_brokers(
    queues: &[QueueMessages],
    group_of: impl Fn(&SourceRecord) -> String,
) -> usize {
    let mut last: BTreeMap<String, (String, i32, i64)> = BTreeMap::new();
    for queue in queues {
        let mut sorted: Vec<&ReadMessage> = queue.messages.iter().collect();
        sorted.sort_by_key(|m| m.queue_offset);
        for message in sorted {
            let record = message.kafka_record().expect("bridge message");
            let group = group_of(&record);
            if let Some((broker, queue_id, offset)) = last.get(&group) {
                assert!(
                    (broker.as_str(), *queue_id) == (queue.broker.as_str(), queue.queue_id),
                    "group {group} spans queues {broker}/{queue_id} and {}/{}",
                    queue.broker,
                    queue.queue_id
                );
                assert!(
                    record.offset > *offset,
                    "group {group}: offset {} after {offset} in queue {broker}/{queue_id}",
                    record.offset
                );
            }
            last.insert(group, (queue.broker.clone(), queue.queue_id, record.offset));
        }
    }
    last.len()
}

/// How many copies each Kafka record has.
pub fn copy_counts(messages: &[ReadMessage]) -> BTreeMap<(String, i32, i64), usize> {
    let mut copies = BTreeMap::new();
    for message in messages {
        *copies.entry(coordinates(message)).or_default() += 1;
    }
    copies
}

// ---- shared scenario steps ---------------------------------------------------

/// `verify` of the (closed) day holding `clock`, which must be yesterday, for
/// the config's one mapping: MATCH, `total` records on each side, no
/// duplicates, digests equal.
pub fn assert_day_matches(config: &std::path::Path, clock: i64, total: usize) {
    let day = utc_day(clock);
    assert_eq!(
        day,
        utc_day(yesterday_start_ms()),
        "the records stay in one day"
    );
    let (code, report) = verify_day(config, &day);
    let row = &report["rows"][0];
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(row["verdict"], "MATCH", "{row:#}");
    assert_eq!(row["kafka_records"], total, "{row:#}");
    assert_eq!(row["rocketmq_unique"], total, "{row:#}");
    assert_eq!(row["duplicates"], 0, "{row:#}");
    assert_eq!(row["digests_match"], true, "{row:#}");
}

/// Keyed records produced in rounds until stopped: `per_round` records over
/// `keys` keys every `every`, each round tagged `r<round>`.
pub struct SteadyTraffic {
    producing: std::sync::Arc<std::sync::atomic::AtomicBool>,
    task: tokio::task::JoinHandle<usize>,
}

impl SteadyTraffic {
    pub fn start(
        producer: FutureProducer,
        topic: &str,
        per_round: usize,
        keys: usize,
        every: Duration,
    ) -> Self {
        use std::sync::atomic::Ordering as AtomicOrdering;
        let producing = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
        let still = std::sync::Arc::clone(&producing);
        let topic = topic.to_string();
        let task = tokio::spawn(async move {
            let (mut total, mut round) = (0, 0);
            let mut next = tokio::time::Instant::now();
            while still.load(AtomicOrdering::SeqCst) {
                let records = keyed_records(&format!("r{round}"), per_round, keys);
                total += produce(&producer, &topic, &records).await.len();
                round += 1;
                // Pacing, not synchronisation.
                next += every;
                tokio::time::sleep_until(next).await;
            }
            total
        });
        SteadyTraffic { producing, task }
    }

    /// Stops after the round in progress; how many records Kafka stored.
    pub async fn stop(self) -> usize {
        self.producing
            .store(false, std::sync::atomic::Ordering::SeqCst);
        self.task.await.expect("the traffic task")
    }
}

/// `/readyz` on `port` turns 200 again within 2 minutes, after a fault.
pub async fn assert_ready_again(port: u16, bridge: &BridgeProcess) {
    let up = wait_for_http(port, "/readyz", Duration::from_secs(120), |status, _| {
        status == 200
    })
    .await;
    assert!(
        matches!(&up, Some((200, _))),
        "readyz did not recover: {up:?}; log:\n{}",
        bridge.logs()
    );
}

/// Sends `record`, mapped as the bridge would, straight into `queue` of `topic`.
pub async fn write_straight(name_server: &str, topic: &str, queue: usize, record: &SourceRecord) {
    use kafka_rocketmq_bridge::mapping::{self, MappingRules};
    use kafka_rocketmq_bridge::rocketmq_sink::encode::to_message;
    use kafka_rocketmq_bridge::rocketmq_sink::{fetch_queues, start_producer};
    let runtime = RocketMqRuntime::start(1).expect("runtime");
    let config: RocketMqConfig =
        serde_yaml::from_str(&format!("name_server: \"{name_server}\"")).expect("config");
    let mut producer = start_producer(runtime.client_runtime(), &config)
        .await
        .expect("producer");
    let queues = fetch_queues(&mut producer, topic, name_server, Duration::from_secs(30))
        .await
        .expect("queues");
    let rules = MappingRules {
        tag: None,
        tag_header: None,
        max_message_size: 4 << 20,
        loop_prevention: false,
    };
    let outgoing = mapping::map_record(record, &rules).expect("mappable");
    producer
        .send_to_queue(to_message(topic, &outgoing), queues[queue].clone())
        .await
        .expect("RocketMQ stored the message");
    producer.shutdown().await;
    runtime.shutdown().await;
}

pub async fn read_dead_letters(kafka: &str, topic: &str, expected: usize) -> Vec<(String, i64)> {
    use rdkafka::Message;
    use rdkafka::consumer::{Consumer, StreamConsumer};
    use rdkafka::message::Headers;
    let consumer: StreamConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", kafka)
        .set("group.id", unique("dlq-reader"))
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", "6000")
        .create()
        .expect("dlq consumer");
    consumer.subscribe(&[topic]).expect("subscribe");
    let mut found = Vec::new();
    while found.len() < expected {
        let message = tokio::time::timeout(Duration::from_secs(60), consumer.recv())
            .await
            .expect("dead letter")
            .expect("recv");
        let header = |name: &str| {
            message.headers().and_then(|h| {
                h.iter()
                    .find(|h| h.key == name)
                    .and_then(|h| h.value.map(|v| String::from_utf8_lossy(v).into_owned()))
            })
        };
        let offset: i64 = header(kafka_rocketmq_bridge::dead_letter::ORIGIN_OFFSET_HEADER)
            .expect("origin offset")
            .parse()
            .expect("number");
        found.push((
            header(kafka_rocketmq_bridge::dead_letter::REASON_HEADER).expect("reason"),
            offset,
        ));
    }
    found
}

/// Sends `messages` to queue `queue_id` of `topic` on broker-a, each stored.
/// With `born_from`, the producer back-dates them: the first is born then
/// and each next one a second later, as a producer on that day would have
/// sent them (RocketMQ's clients take the born timestamp from the clock).
pub async fn send_to_queue(
    name_server: &str,
    topic: &str,
    queue_id: i32,
    messages: Vec<rocketmq_model::common::message::message_single::Message>,
    born_from: Option<i64>,
) {
    use rocketmq_client_rust::DefaultMQProducer;
    use rocketmq_model::message::MessageQueue;
    let runtime = RocketMqRuntime::start(1).expect("runtime");
    let mut builder = DefaultMQProducer::builder(runtime.client_runtime())
        .producer_group(unique("test_producer").replace('.', "_").as_str())
        .name_server_addr(name_server);
    if let Some(first) = born_from {
        builder = builder.rpc_hook(std::sync::Arc::new(BornAt(
            std::sync::atomic::AtomicI64::new(first),
        )));
    }
    let mut producer = builder.build();
    producer.start().await.expect("producer started");
    for message in messages {
        producer
            .send_to_queue(
                message,
                MessageQueue::from_parts(topic, "broker-a", queue_id),
            )
            .await
            .expect("RocketMQ stored the message");
    }
    producer.shutdown().await;
    runtime.shutdown().await;
}

/// Sets the born timestamp of each message sent, a second apart from the
/// one before; the broker stores the request's born timestamp as it is.
struct BornAt(std::sync::atomic::AtomicI64);

impl rocketmq_transport::api::RPCHook for BornAt {
    fn do_before_request(
        &self,
        _remote_addr: std::net::SocketAddr,
        request: &mut rocketmq_protocol::protocol::remoting_command::RemotingCommand,
    ) -> Result<(), rocketmq_error::SharedError> {
        use rocketmq_protocol::protocol::header::message_operation_header::send_message_request_header::SendMessageRequestHeader;
        use rocketmq_protocol::protocol::header::message_operation_header::send_message_request_header_v2::SendMessageRequestHeaderV2;
        let born = || self.0.fetch_add(1_000, Ordering::Relaxed);
        if let Some(header) = request.read_custom_header_mut::<SendMessageRequestHeaderV2>() {
            header.g = born();
        } else if let Some(header) = request.read_custom_header_mut::<SendMessageRequestHeader>() {
            header.born_timestamp = born();
        }
        Ok(())
    }

    fn do_after_response(
        &self,
        _remote_addr: std::net::SocketAddr,
        _request: &rocketmq_protocol::protocol::remoting_command::RemotingCommand,
        _response: &mut rocketmq_protocol::protocol::remoting_command::RemotingCommand,
    ) -> Result<(), rocketmq_error::SharedError> {
        Ok(())
    }
}
