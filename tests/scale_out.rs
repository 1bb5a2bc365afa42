//! Two bridge instances in one consumer group share the partitions; when
//! one is killed, the other takes its partitions over with no loss.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use crate::support::*;

/// The partitions an instance owns, from its "partitions assigned" and
/// "partitions revoked" lines (with cooperative rebalancing each names only
/// what moved).
fn owned(logs: &str) -> BTreeSet<i32> {
    let mut owned = BTreeSet::new();
    for line in logs.lines() {
        let assigned = line.contains("partitions assigned");
        if !assigned && !line.contains("partitions revoked") {
            continue;
        }
        let Some(list) = line.split('[').nth(1).and_then(|l| l.split(']').next()) else {
            continue;
        };
        for partition in list.split(',').filter_map(|p| p.trim().parse::<i32>().ok()) {
            if assigned {
                owned.insert(partition);
            } else {
                owned.remove(&partition);
            }
        }
    }
    owned
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
        wait_for(Duration::from_secs(60), || owned(&a.logs()).len() == 8),
        "{}",
        a.logs()
    );
    let mut b = BridgeProcess::start(file_b.path());
    let split = wait_for(Duration::from_secs(90), || {
        let (pa, pb) = (owned(&a.logs()), owned(&b.logs()));
        !pa.is_empty() && !pb.is_empty() && pa.len() + pb.len() == 8 && pa.is_disjoint(&pb)
    });
    assert!(split, "no split:\nA:\n{}\nB:\n{}", a.logs(), b.logs());
    total += produce(&producer, &kafka_topic, &keyed_records("p2", 10_000, 300))
        .await
        .len();

    a.kill9();
    assert!(
        wait_for(Duration::from_secs(90), || owned(&b.logs()).len() == 8),
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

/// Three instances, then one killed, one added and one stopped, all while
/// traffic flows: with exactly-once restarts each record is copied once,
/// and each key's records stay in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_added_and_removed_mid_run_copy_each_record_once_in_key_order() {
    let brokers = brokers();
    let base = unique("scale3");
    let (kafka_topic, rocketmq_topic) = (format!("{base}.in"), format!("{base}_out"));
    let text = format!(
        "{}    ordering: key_hash\n",
        config_text(
            &brokers.kafka,
            &brokers.name_server,
            &[(&kafka_topic, &rocketmq_topic)],
        )
    );
    let instance_config = || {
        config_file(&format!(
            "{text}metrics:\n  listen: \"127.0.0.1:{}\"\n",
            closed_port()
        ))
    };
    let files: Vec<_> = (0..4).map(|_| instance_config()).collect();
    create_topics(files[0].path(), 8, 8);

    // Traffic all along: a batch of keyed records every 200 ms.
    let producing = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let traffic = {
        let producing = std::sync::Arc::clone(&producing);
        let (bootstrap, topic) = (brokers.kafka.clone(), kafka_topic.clone());
        tokio::spawn(async move {
            let producer = kafka_producer(&bootstrap);
            let mut total = 0;
            let mut round = 0;
            while producing.load(std::sync::atomic::Ordering::SeqCst) {
                let records = keyed_records(&format!("r{round}"), 1_000, 300);
                total += produce(&producer, &topic, &records).await.len();
                round += 1;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            total
        })
    };

    let a = BridgeProcess::start(files[0].path());
    assert!(
        wait_for(Duration::from_secs(60), || owned(&a.logs()).len() == 8),
        "{}",
        a.logs()
    );
    let b = BridgeProcess::start(files[1].path());
    let mut c = BridgeProcess::start(files[2].path());
    let shared = |instances: &[&BridgeProcess]| {
        let sets: Vec<BTreeSet<i32>> = instances.iter().map(|i| owned(&i.logs())).collect();
        let all: BTreeSet<i32> = sets.iter().flatten().copied().collect();
        sets.iter().all(|s| !s.is_empty())
            && all.len() == 8
            && sets.iter().map(BTreeSet::len).sum::<usize>() == 8
    };
    assert!(
        wait_for(Duration::from_secs(120), || shared(&[&a, &b, &c])),
        "no three-way split:\nA: {:?}\nB: {:?}\nC: {:?}",
        owned(&a.logs()),
        owned(&b.logs()),
        owned(&c.logs())
    );
    let b_logs = b.kill9();
    assert!(
        wait_for(Duration::from_secs(120), || shared(&[&a, &c])),
        "A and C did not take over B's partitions:\nA:\n{}\nC:\n{}",
        a.logs(),
        c.logs()
    );
    let mut d = BridgeProcess::start(files[3].path());
    assert!(
        wait_for(Duration::from_secs(120), || shared(&[&a, &c, &d])),
        "D got no partitions:\n{}",
        d.logs()
    );
    c.stop_gracefully(Duration::from_secs(30));
    assert!(
        wait_for(Duration::from_secs(120), || shared(&[&a, &d])),
        "A and D did not take over C's partitions"
    );
    producing.store(false, std::sync::atomic::Ordering::SeqCst);
    let total = traffic.await.expect("producer task");

    let reader = Reader::new(&brokers.name_server).await;
    reader
        .wait_for_all(&rocketmq_topic, total, Duration::from_secs(240))
        .await;
    let mut a = a;
    a.stop_gracefully(Duration::from_secs(30));
    d.stop_gracefully(Duration::from_secs(30));
    // Read after the stops: nothing can still be on its way.
    let messages = reader.read(&rocketmq_topic).await;
    reader.close().await;
    let mut copies: std::collections::BTreeMap<(String, i32, i64), usize> = Default::default();
    for message in &messages {
        *copies.entry(coordinates(message)).or_default() += 1;
    }
    assert_eq!(copies.len(), total, "records missing");
    let duplicated: Vec<_> = copies.iter().filter(|(_, n)| **n > 1).take(5).collect();
    let first_copies = duplicated
        .first()
        .map(|(first, _)| copies_of(&messages, first))
        .unwrap_or_default();
    let trail: Vec<String> = [
        ("A", a.logs()),
        ("B", b_logs),
        ("C", c.logs()),
        ("D", d.logs()),
    ]
    .iter()
    .flat_map(|(name, logs)| {
        ownership_trail(logs)
            .into_iter()
            .map(move |line| format!("{name}: {line}"))
    })
    .collect();
    assert!(
        duplicated.is_empty(),
        "{} copies of {total} records; first duplicated: {duplicated:?}; its copies: {first_copies:?}; \
         trail:\n{}",
        messages.len(),
        trail.join("\n")
    );
    let keys = assert_ordered_by(&messages, |r| {
        String::from_utf8_lossy(r.key().unwrap_or_default()).into_owned()
    });
    assert_eq!(keys, 300);
    eprintln!("scale-out with instances added and removed: {total} records, each copied once");
}
