//! The service in-process, through the library (`service`), against the real
//! brokers: start-up retries until a missing target topic exists, then the
//! copy, and a stop request that drains and commits.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use kafka_rocketmq_bridge::health::Readiness;
use kafka_rocketmq_bridge::service::{self, Reloader, ServiceExit, StartRetry};
use kafka_rocketmq_bridge::status::StatusBoard;
use tokio::sync::watch;

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_up_retries_until_the_target_topic_exists_then_copies_and_stops() {
    const RECORDS: usize = 500;
    let brokers = brokers();
    let (kafka_topic, rocketmq_topic) = (unique("service.in"), unique("service_out"));
    let text = config_text(
        &brokers.kafka,
        &brokers.name_server,
        &[(&kafka_topic, &rocketmq_topic)],
    );
    let file = config_file(&text);
    let path = file.path().to_str().expect("utf-8 path").to_string();
    let created = run(&[
        "create-topics",
        "--config",
        &path,
        "--only",
        "kafka",
        "--partitions",
        "4",
    ]);
    assert!(created.status.success(), "{}", printed(&created));
    let producer = kafka_producer(&brokers.kafka);
    produce(&producer, &kafka_topic, &keyed_records("svc", RECORDS, 16)).await;

    let config = parse_config(&text);
    let group = config.kafka.group_id.clone();
    let (_reloader, limits) = Reloader::new(file.path().to_path_buf(), config.clone());
    let (stop, stopping) = watch::channel(false);
    let readiness = Readiness::new();
    let service = tokio::spawn(service::run_until_stopped(
        config,
        stopping,
        limits,
        Arc::clone(&readiness),
        StatusBoard::new(),
        StartRetry {
            first: Duration::from_millis(200),
            max: Duration::from_secs(1),
        },
    ));

    // The RocketMQ topic is missing: starts fail and are retried.
    let deadline = Instant::now() + Duration::from_secs(90);
    while readiness.failed_starts.load(Ordering::Relaxed) < 2 {
        assert!(Instant::now() < deadline, "no failed start within 90 s");
        assert!(
            !service.is_finished(),
            "the service gave up instead of retrying"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(!readiness.running.load(Ordering::Relaxed));

    let created = run(&[
        "create-topics",
        "--config",
        &path,
        "--only",
        "rocketmq",
        "--queues",
        "4",
    ]);
    assert!(created.status.success(), "{}", printed(&created));
    let reader = Reader::new(&brokers.name_server).await;
    let copied = reader
        .wait_for_count(&rocketmq_topic, RECORDS as i64, Duration::from_secs(120))
        .await;
    assert_eq!(copied, RECORDS as i64, "copied once the topic existed");
    assert!(readiness.running.load(Ordering::Relaxed));

    stop.send_replace(true);
    let exit = tokio::time::timeout(Duration::from_secs(60), service)
        .await
        .expect("the service stops within 60 s of the request")
        .expect("no panic");
    let ServiceExit::Stopped(Some(summary)) = exit else {
        panic!("stopped after running, not {exit:?}");
    };
    assert_eq!(summary.produced, RECORDS as u64, "{summary:?}");
    assert!(summary.drained, "{summary:?}");
    let committed: i64 = group_committed(&brokers.kafka, &group, &kafka_topic, 4)
        .into_iter()
        .flatten()
        .sum();
    assert_eq!(committed, RECORDS as i64, "every copied record committed");
    reader.close().await;
}
