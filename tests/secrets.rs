//! Secrets never leak: the real binary, given a SASL password and RocketMQ
//! keys by environment substitution or by `*_file` keys, fails to reach
//! clusters on closed ports for a while; neither its output, nor `/metrics`,
//! `/status` and `/readyz`, nor `check`'s output may show a secret.
//! No brokers needed.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::support::*;

/// Distinctive values, so a match can only be a leak.
const SASL_PASSWORD: &str = "sasl-pw-Qx7Lz93kV";
const ROCKETMQ_ACCESS_KEY: &str = "rmq-ak-Jd4Wc61pN";
const ROCKETMQ_SECRET_KEY: &str = "rmq-sk-Hv2Tn58gR";
const SECRETS: [&str; 3] = [SASL_PASSWORD, ROCKETMQ_ACCESS_KEY, ROCKETMQ_SECRET_KEY];

/// How the secrets reach the bridge.
#[derive(Clone, Copy)]
enum Source {
    Environment,
    Files,
}

/// A config for clusters on closed ports, and the environment it needs.
fn config(
    source: Source,
    dir: &Path,
    metrics_port: u16,
) -> (String, Vec<(&'static str, &'static str)>) {
    let kafka = format!("127.0.0.1:{}", closed_port());
    let name_server = format!("127.0.0.1:{}", closed_port());
    let group = unique("group");
    let common_kafka = format!(
        "kafka:\n  bootstrap_servers: \"{kafka}\"\n  group_id: \"{group}\"\n  properties:\n    \
         security.protocol: SASL_PLAINTEXT\n    sasl.mechanism: PLAIN\n    sasl.username: bridge\n"
    );
    let tail = format!(
        "mappings:\n  - kafka_topic: orders\n    rocketmq_topic: orders\n\
         metrics:\n  listen: \"127.0.0.1:{metrics_port}\"\n"
    );
    match source {
        Source::Environment => (
            format!(
                "{common_kafka}    sasl.password: \"${{KRB_LEAK_SASL_PASSWORD}}\"\n\
                 rocketmq:\n  name_server: \"{name_server}\"\n  access_key: \"${{KRB_LEAK_RMQ_ACCESS}}\"\n  \
                 secret_key: \"${{KRB_LEAK_RMQ_SECRET}}\"\n{tail}"
            ),
            vec![
                ("KRB_LEAK_SASL_PASSWORD", SASL_PASSWORD),
                ("KRB_LEAK_RMQ_ACCESS", ROCKETMQ_ACCESS_KEY),
                ("KRB_LEAK_RMQ_SECRET", ROCKETMQ_SECRET_KEY),
            ],
        ),
        Source::Files => {
            // The way Docker and Kubernetes mount them: one file each, newline-terminated.
            for (name, value) in [
                ("kafka-password", SASL_PASSWORD),
                ("rocketmq-access-key", ROCKETMQ_ACCESS_KEY),
                ("rocketmq-secret-key", ROCKETMQ_SECRET_KEY),
            ] {
                std::fs::write(dir.join(name), format!("{value}\n")).expect("write secret file");
            }
            let at = |name: &str| dir.join(name).display().to_string();
            (
                format!(
                    "{common_kafka}  property_files:\n    sasl.password: \"{}\"\n\
                     rocketmq:\n  name_server: \"{name_server}\"\n  access_key_file: \"{}\"\n  \
                     secret_key_file: \"{}\"\n{tail}",
                    at("kafka-password"),
                    at("rocketmq-access-key"),
                    at("rocketmq-secret-key")
                ),
                Vec::new(),
            )
        }
    }
}

fn assert_no_secret(what: &str, text: &str) {
    for secret in SECRETS {
        assert!(
            !text.contains(secret),
            "{what} shows the secret `{secret}`:\n{text}"
        );
    }
}

fn secrets_never_leak(source: Source) {
    let dir = tempfile::tempdir().expect("temp dir");
    let port = closed_port();
    let (text, env) = config(source, dir.path(), port);
    let file = config_file(&text);
    let config_path = file.path().to_str().expect("UTF-8 temp path");
    // Debug logging on purpose: more is printed, so more could leak.
    let mut run_env = env.clone();
    run_env.push(("BRIDGE_LOG", "debug"));

    let mut bridge = BridgeProcess::start_with_env(file.path(), &run_env);
    // Two failed start-ups: the clients were built with the credentials and
    // tried to connect, twice.
    assert!(
        bridge.wait_for_log(
            "cannot start the bridge; retrying",
            2,
            Duration::from_secs(90)
        ),
        "the bridge did not report two failed start-ups; log:\n{}",
        bridge.logs()
    );
    let mut bodies = Vec::new();
    for (path, expected_status) in [
        ("/", 200),
        ("/metrics", 200),
        ("/status", 200),
        ("/readyz", 503),
    ] {
        let (status, body) = http_get(port, path)
            .unwrap_or_else(|| panic!("no answer on {path}; log:\n{}", bridge.logs()));
        assert_eq!(status, expected_status, "{path}: {body}");
        assert!(!body.is_empty(), "{path} answered an empty body");
        bodies.push((path, body));
    }
    bridge.stop_gracefully(Duration::from_secs(30));
    let logs = bridge.logs();
    assert!(logs.contains("cannot start the bridge"), "{logs}");
    assert_no_secret("the bridge's stdout/stderr", &logs);
    for (path, body) in &bodies {
        assert_no_secret(path, body);
    }
    let readyz = &bodies[3];
    assert_eq!(readyz.0, "/readyz");
    assert!(readyz.1.contains("\"ready\":false"), "{}", readyz.1);

    let output = Command::new(binary())
        .args(["check", "--config", config_path, "--timeout", "2s"])
        .env("NO_COLOR", "1")
        .env("BRIDGE_LOG", "debug")
        .envs(env.iter().copied())
        .output()
        .expect("run check");
    let printed = format!("{}{}", stdout(&output), stderr(&output));
    assert_eq!(output.status.code(), Some(1), "{printed}");
    assert!(printed.contains("NOT ready"), "{printed}");
    assert_no_secret("check", &printed);
}

#[test]
fn secrets_from_the_environment_never_leak() {
    secrets_never_leak(Source::Environment);
}

#[test]
fn secrets_from_files_never_leak() {
    secrets_never_leak(Source::Files);
}
