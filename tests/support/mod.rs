//! Shared helpers for the integration tests: where the real test brokers
//! are, unique topic names, config files, and running the binary.

#![allow(dead_code)]

use std::io::Write;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// The brokers `scripts/test.sh` started.
pub struct TestBrokers {
    pub kafka: String,
    pub name_server: String,
}

pub fn brokers() -> TestBrokers {
    let var = |name: &str| {
        std::env::var(name).unwrap_or_else(|_| {
            panic!("{name} is not set: run the integration tests with scripts/test.sh, which starts the brokers")
        })
    };
    TestBrokers {
        kafka: var("BRIDGE_TEST_KAFKA"),
        name_server: var("BRIDGE_TEST_NAMESRV"),
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

/// Runs the binary to completion and returns its output.
pub fn run(args: &[&str]) -> Output {
    Command::new(binary())
        .args(args)
        .env("NO_COLOR", "1")
        .output()
        .expect("run kafka-rocketmq-bridge")
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}
