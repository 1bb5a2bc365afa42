//! Two bridge instances in one consumer group share the partitions; when
//! one is killed, the other takes its partitions over with no loss.

mod support;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use support::*;

/// Partition numbers in the last "partitions assigned" line of a log.
fn last_assignment(logs: &str) -> Option<BTreeSet<i32>> {
    let line = logs
        .lines()
        .rev()
        .find(|l| l.contains("partitions assigned"))?;
    let list = line.split('[').nth(1)?.split(']').next()?;
    Some(
        list.split(',')
            .filter_map(|p| p.trim().parse().ok())
            .collect(),
    )
}

fn wait_for(deadline: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < deadline {
        if condition() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_split_partitions_and_one_takes_over_when_the_other_dies() {
    let brokers = brokers();
    let base = unique("scale");
    let (kafka_topic, rocketmq_topic) = (format!("{base}.in"), format!("{base}_out"));
    let text = config_text(
        &brokers.kafka,
        &brokers.name_server,
        &[(&kafka_topic, &rocketmq_topic)],
    );
    // Each instance needs its own metrics port.
    let (file_a, file_b) = (
        config_file(&format!(
            "{text}metrics:\n  listen: \"127.0.0.1:{}\"\n",
            closed_port()
        )),
        config_file(&format!(
            "{text}metrics:\n  listen: \"127.0.0.1:{}\"\n",
            closed_port()
        )),
    );
    create_topics(file_a.path(), 8, 8);
    let producer = kafka_producer(&brokers.kafka);
    let mut total = 0;
    total += produce(&producer, &kafka_topic, &keyed_records("p1", 5_000, 300))
        .await
        .len();

    let a = BridgeProcess::start(file_a.path());
    assert!(
        wait_for(Duration::from_secs(60), || last_assignment(&a.logs())
            .is_some_and(|p| p.len() == 8)),
        "{}",
        a.logs()
    );
    let mut b = BridgeProcess::start(file_b.path());
    let split = wait_for(Duration::from_secs(90), || {
        let (pa, pb) = (last_assignment(&a.logs()), last_assignment(&b.logs()));
        matches!((pa, pb), (Some(pa), Some(pb)) if !pa.is_empty() && !pb.is_empty() && pa.len() + pb.len() == 8 && pa.is_disjoint(&pb))
    });
    assert!(split, "no split:\nA:\n{}\nB:\n{}", a.logs(), b.logs());
    total += produce(&producer, &kafka_topic, &keyed_records("p2", 10_000, 300))
        .await
        .len();

    a.kill9();
    assert!(
        wait_for(Duration::from_secs(90), || last_assignment(&b.logs())
            .is_some_and(|p| p.len() == 8)),
        "B did not take over:\n{}",
        b.logs()
    );
    total += produce(&producer, &kafka_topic, &keyed_records("p3", 5_000, 300))
        .await
        .len();

    let reader = Reader::new(&brokers.name_server).await;
    let messages = reader
        .wait_for_all(&rocketmq_topic, total, Duration::from_secs(180))
        .await;
    b.stop_gracefully(Duration::from_secs(30));
    let duplicates = assert_complete_and_ordered(&messages, total, 8);
    eprintln!("scale-out: {duplicates} duplicates of {total}");
    reader.close().await;
}
