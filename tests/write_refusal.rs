//! The RocketMQ broker made read-only mid-run (its write permission taken
//! away with `updateBrokerConfig brokerPermission=4`, as operators do to
//! drain a broker). An Apache RocketMQ broker refuses sends to a read-only
//! broker only for order topics (`AbstractSendMessageProcessor.msgCheck`);
//! for the others it marks its route read-only and leaves it to producers to
//! pick other queues. The bridge sends to the queue its ordering names, so
//! the copy goes on there, with nothing lost, reordered or copied twice.
//! (The stand-in broker used before, rocketmq-rust, refused every send; the
//! bridge's refused-send path, retrying on the same queue with checkpoints
//! held, is exercised by the network fault tests.) It changes the shared
//! broker, so it runs alone.

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
async fn a_read_only_broker_still_takes_the_copy_and_nothing_is_lost() {
    let brokers = brokers_exclusively();
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
    let copied = reader
        .wait_for_all(&rocketmq_topic, total, Duration::from_secs(120))
        .await
        .len();
    let status = wait_for_http(port, "/status", Duration::from_secs(5), |status, _| {
        status == 200
    })
    .await;
    // Restore before asserting, so a failure cannot leave the shared
    // broker read-only for the tests after this one.
    set_broker_permission(&brokers.name_server, "6").await;
    assert_eq!(copied, total, "{}", bridge.logs());
    let status: serde_json::Value =
        serde_json::from_str(&status.expect("/status answers").1).expect("status JSON");
    assert!(
        committed_total(&status) <= total as i64,
        "committed past what Kafka holds ({total}): {status:#}"
    );
    bridge.stop_gracefully(Duration::from_secs(30));
    let messages = reader.read(&rocketmq_topic).await;
    let duplicates = assert_complete_and_ordered(&messages, total, 4);
    assert_eq!(duplicates, 0, "{}", bridge.logs());
    reader.close().await;
}
