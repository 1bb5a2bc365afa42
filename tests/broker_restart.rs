//! The RocketMQ broker killed with -9 and restarted mid-run: the bridge
//! holds its checkpoints, retries on the same queues, never exits, and
//! nothing is lost or reordered. Its own test binary, since it stops the
//! shared test broker.

use std::time::Duration;

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rocketmq_broker_killed_and_restarted_mid_run() {
    let brokers = brokers_exclusively();
    let base = unique("restart");
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
    let path = file.path().to_str().unwrap();
    create_topics(path, 4, 4);

    let producer = kafka_producer(&brokers.kafka);
    let total = 30_000;
    produce(&producer, &kafka_topic, &keyed_records("r", total / 2, 200)).await;
    let mut bridge = BridgeProcess::start(file.path());
    let reader = Reader::new(&brokers.name_server).await;
    assert!(
        reader
            .wait_for_count(&rocketmq_topic, 3_000, Duration::from_secs(120))
            .await
            >= 3_000,
        "{}",
        bridge.logs()
    );
    reader.close().await;

    brokers_script(&["stop", "--kill", "broker"]);
    // Traffic keeps arriving in Kafka while RocketMQ is down.
    produce(
        &producer,
        &kafka_topic,
        &keyed_records("r2", total / 2, 200),
    )
    .await;
    // /readyz says what is wrong while the broker is down...
    let down = wait_for_http(port, "/readyz", Duration::from_secs(60), |status, body| {
        status == 503 && body.contains("\"rocketmq\":\"sends failing\"")
    })
    .await;
    assert!(
        matches!(&down, Some((503, _))),
        "readyz did not report the failing sends: {down:?}"
    );
    assert!(
        bridge.wait(Duration::from_millis(10)).is_none(),
        "the bridge exited while the broker was down"
    );
    brokers_script(&["start", "broker"]);
    // ...and turns ready again once it is back.
    assert_ready_again(port, &bridge).await;

    let reader = Reader::new(&brokers.name_server).await;
    reader
        .wait_for_all(&rocketmq_topic, total, Duration::from_secs(180))
        .await;
    assert!(
        bridge.wait(Duration::from_millis(10)).is_none(),
        "the bridge exited"
    );
    let failed_sends = metric_sum(port, "bridge_send_errors_total") as usize;
    bridge.stop_gracefully(Duration::from_secs(30));
    // Read again with the bridge stopped, so late copies are counted too.
    let messages = reader.read(&rocketmq_topic).await;
    let duplicates = assert_complete_and_ordered(&messages, total, 4);
    let logs = bridge.logs();
    assert!(
        logs.contains("send to RocketMQ failed; retrying on the same queue, checkpoints held"),
        "{logs}"
    );
    // A send cut off by the kill may have been stored all the same (the
    // broker wrote it, then died before answering): at most one batch per
    // failed send comes back as a duplicate, detectable by provenance.
    let batch = 1024;
    assert!(
        duplicates <= failed_sends * batch,
        "{duplicates} duplicates, more than one batch for each of {failed_sends} failed sends"
    );
    eprintln!("broker restart: {duplicates} duplicates of {total}, {failed_sends} failed sends");
    reader.close().await;
}
