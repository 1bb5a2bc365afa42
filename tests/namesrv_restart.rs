//! The RocketMQ name server killed with -9 and restarted mid-run: the
//! bridge keeps copying on the routes it has, `/readyz` says the name
//! server is unreachable, and nothing is lost, duplicated or reordered. Its
//! own test binary, since it stops the shared test name server.

use std::time::Duration;

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn name_server_killed_and_restarted_mid_run() {
    let brokers = brokers_exclusively();
    let base = unique("nsrestart");
    let (kafka_topic, rocketmq_topic) = (format!("{base}.in"), format!("{base}_out"));
    let port = closed_port();
    // Routes re-read every second, so the outage shows at once.
    let file = config_file(&format!(
        "{}metrics:\n  listen: \"127.0.0.1:{port}\"\nbridge:\n  queue_refresh_interval: 1s\n",
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
        &keyed_records("n1", total / 2, 200),
    )
    .await;
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

    brokers_script(&["stop", "--kill", "namesrv"]);
    produce(
        &producer,
        &kafka_topic,
        &keyed_records("n2", total / 2, 200),
    )
    .await;
    let down = wait_for_http(port, "/readyz", Duration::from_secs(60), |status, body| {
        status == 503 && body.contains("\"rocketmq\":\"name server unreachable\"")
    })
    .await;
    let alive = bridge.wait(Duration::from_millis(10)).is_none();
    brokers_script(&["start", "namesrv"]);
    assert!(
        matches!(&down, Some((503, _))),
        "readyz did not report the name server: {down:?}; log:\n{}",
        bridge.logs()
    );
    assert!(alive, "the bridge exited while the name server was down");
    // The broker registers again on its next heartbeat (up to 30 s).
    assert_ready_again(port, &bridge).await;

    let reader = Reader::new(&brokers.name_server).await;
    reader
        .wait_for_all(&rocketmq_topic, total, Duration::from_secs(180))
        .await;
    bridge.stop_gracefully(Duration::from_secs(30));
    let messages = reader.read(&rocketmq_topic).await;
    let duplicates = assert_complete_and_ordered(&messages, total, 4);
    assert_eq!(duplicates, 0, "a name server outage re-sent records");
    eprintln!("name server restart: {total} records, {duplicates} duplicates");
    reader.close().await;
}
