//! The RocketMQ broker refusing writes mid-run (its write permission taken
//! away with `updateBrokerConfig brokerPermission=4`, as operators do to
//! drain a broker): the bridge backs off, holds its checkpoints, says so on
//! `/readyz`, and recovers when writes are accepted again, with nothing lost
//! or reordered. Its own test binary, since it changes the shared broker.

use std::collections::HashMap;
use std::time::Duration;

use crate::support::*;
use cheetah_string::CheetahString;
use kafka_rocketmq_bridge::rocketmq_sink::RocketMqRuntime;
use rocketmq_client_rust::{BrokerAdmin, DefaultMQAdminExt};

/// Sets the shared test broker's permission: 6 read-write, 4 read-only.
async fn set_broker_permission(name_server: &str, permission: &str) {
    let runtime = RocketMqRuntime::start(1).expect("client runtime");
    let mut admin =
        DefaultMQAdminExt::with_timeout(runtime.client_runtime(), Duration::from_secs(10));
    admin.set_namesrv_addr(name_server);
    admin.start().await.expect("start the admin client");
    let port = std::env::var("BRIDGE_BROKER_PORT").unwrap_or_else(|_| "30911".to_string());
    let properties = HashMap::from([(
        CheetahString::from("brokerPermission"),
        CheetahString::from(permission),
    )]);
    admin
        .update_broker_config(CheetahString::from(format!("127.0.0.1:{port}")), properties)
        .await
        .expect("update the broker's permission");
    admin.shutdown().await;
    runtime.shutdown().await;
}

/// The sum of committed offsets `/status` shows, over all partitions.
fn committed_total(status: &serde_json::Value) -> i64 {
    status["mappings"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|m| m["partitions"].as_array().into_iter().flatten())
        .filter_map(|p| p["committed"].as_i64())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_refusing_writes_holds_checkpoints_and_recovers() {
    let brokers = brokers();
    let base = unique("refuse");
    let (kafka_topic, rocketmq_topic) = (format!("{base}.in"), format!("{base}_out"));
    let port = closed_port();
    let file = config_file(&format!(
        "{}metrics:\n  listen: \"127.0.0.1:{port}\"\nbridge:\n  max_retry_backoff: \"2s\"\n",
        config_text(
            &brokers.kafka,
            &brokers.name_server,
            &[(&kafka_topic, &rocketmq_topic)]
        ),
    ));
    create_topics(file.path(), 4, 4);
    let producer = kafka_producer(&brokers.kafka);
    let total = 20_000;
    produce(
        &producer,
        &kafka_topic,
        &keyed_records("w1", total / 2, 200),
    )
    .await;
    let mut bridge = BridgeProcess::start(file.path());
    let reader = Reader::new(&brokers.name_server).await;
    let first = reader
        .wait_for_all(&rocketmq_topic, total / 2, Duration::from_secs(120))
        .await;
    assert_eq!(first.len(), total / 2, "{}", bridge.logs());

    set_broker_permission(&brokers.name_server, "4").await;
    produce(
        &producer,
        &kafka_topic,
        &keyed_records("w2", total / 2, 200),
    )
    .await;
    let refused = wait_for_http(port, "/readyz", Duration::from_secs(60), |status, body| {
        status == 503 && body.contains("\"rocketmq\":\"sends failing\"")
    })
    .await;
    let stored_while_refused = reader.count(&rocketmq_topic).await;
    let status = wait_for_http(port, "/status", Duration::from_secs(5), |status, _| {
        status == 200
    })
    .await;
    // Restore before asserting, so a failure cannot leave the shared
    // broker read-only for the tests after this one.
    set_broker_permission(&brokers.name_server, "6").await;
    assert!(
        matches!(&refused, Some((503, _))),
        "readyz did not report the refused sends: {refused:?}; log:\n{}",
        bridge.logs()
    );
    let status: serde_json::Value =
        serde_json::from_str(&status.expect("/status answers").1).expect("status JSON");
    assert!(
        committed_total(&status) <= stored_while_refused,
        "committed past what RocketMQ stored ({stored_while_refused}): {status:#}"
    );
    assert!(
        bridge.wait(Duration::from_millis(10)).is_none(),
        "the bridge exited while writes were refused"
    );

    let up = wait_for_http(port, "/readyz", Duration::from_secs(120), |status, _| {
        status == 200
    })
    .await;
    assert!(
        matches!(&up, Some((200, _))),
        "readyz did not recover: {up:?}"
    );
    reader
        .wait_for_all(&rocketmq_topic, total, Duration::from_secs(180))
        .await;
    bridge.stop_gracefully(Duration::from_secs(30));
    let messages = reader.read(&rocketmq_topic).await;
    let duplicates = assert_complete_and_ordered(&messages, total, 4);
    // A refused write is not stored, so retrying it copies nothing twice.
    assert_eq!(duplicates, 0, "refused writes came back as duplicates");
    let logs = bridge.logs();
    assert!(
        logs.contains("send to RocketMQ failed; retrying on the same queue, checkpoints held"),
        "{logs}"
    );
    eprintln!(
        "writes refused: {stored_while_refused} stored when refused, then {total} records, {duplicates} duplicates"
    );
    reader.close().await;
}
