//! A three-node KRaft Kafka cluster, the source topic at replication
//! factor 3 (min.insync.replicas 2), produced with acks=all. The leader of
//! a copied partition is killed with -9 mid-copy and restarted later:
//! nothing is lost, each partition's (and key's) records stay in order, and
//! nothing is copied twice (README, "What `run` guarantees": no duplicates
//! after a crash or from failed sends with exactly-once restarts; Kafka
//! faults are waited out). Its own Kafka; RocketMQ is the shared one.

use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::producer::FutureProducer;

use crate::support::*;

const PARTITIONS: usize = 4;
const ROUND_RECORDS: usize = 100;
const ROUND: Duration = Duration::from_millis(100);
const KEYS: usize = 100;

/// Creates `topic` at replication factor 3 with min.insync.replicas 2,
/// retrying until every node has registered (until then the controller
/// refuses replication factor 3).
async fn create_replicated_topic(bootstrap: &str, topic: &str) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("Kafka admin client");
    let new_topic = NewTopic::new(topic, PARTITIONS as i32, TopicReplication::Fixed(3))
        .set("min.insync.replicas", "2");
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let result = admin.create_topics([&new_topic], &options).await;
        let outcome = match result {
            Ok(results) => results
                .into_iter()
                .next()
                .expect("one result")
                .map(|_| ())
                .map_err(|(_, code)| code.to_string()),
            Err(error) => Err(error.to_string()),
        };
        match outcome {
            Ok(()) => return,
            Err(error) => {
                assert!(
                    Instant::now() < deadline,
                    "cannot create {topic} at RF 3: {error}"
                );
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
}

/// (leader, replicas, in-sync replicas) of `partition`, if the metadata names a leader.
fn partition_state(
    producer: &FutureProducer,
    topic: &str,
    partition: i32,
) -> Option<(i32, Vec<i32>, Vec<i32>)> {
    use rdkafka::producer::Producer as _;
    let metadata = producer
        .client()
        .fetch_metadata(Some(topic), Duration::from_secs(5))
        .ok()?;
    let found = metadata
        .topics()
        .first()?
        .partitions()
        .iter()
        .find(|p| p.id() == partition)?;
    (found.error().is_none() && found.leader() >= 0).then(|| {
        (
            found.leader(),
            found.replicas().to_vec(),
            found.isr().to_vec(),
        )
    })
}

/// Polls `condition` (blocking calls) every 200 ms until it holds or `deadline` passes.
async fn wait_until(deadline: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < deadline {
        if tokio::task::block_in_place(&mut condition) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partition_leader_killed_and_restarted_in_a_three_node_cluster() {
    let started = Instant::now();
    let shared = brokers();
    let own = tokio::task::spawn_blocking(|| OwnBrokers::start_cluster(&["kafka"], 3, 1, &[]))
        .await
        .expect("brokers.sh start");
    assert_eq!(own.kafka.split(',').count(), 3, "{}", own.kafka);
    let base = unique("kcluster");
    let (kafka_topic, rocketmq_topic) = (format!("{base}.in"), format!("{base}_out"));
    // create-topics makes Kafka topics at replication factor 1: this one is made here.
    create_replicated_topic(&own.kafka, &kafka_topic).await;
    let port = closed_port();
    let file = config_file(&format!(
        "{}metrics:\n  listen: \"127.0.0.1:{port}\"\nbridge:\n  exactly_once_restarts: true\n",
        config_text(
            &own.kafka,
            &shared.name_server,
            &[(&kafka_topic, &rocketmq_topic)]
        ),
    ));
    let path = file.path().to_str().unwrap().to_string();
    let created = run(&[
        "create-topics",
        "--config",
        &path,
        "--only",
        "rocketmq",
        "--queues",
        &PARTITIONS.to_string(),
    ]);
    assert!(
        created.status.success(),
        "{}{}",
        stdout(&created),
        stderr(&created)
    );

    let producer = kafka_producer_with(&own.kafka, &[("acks", "all")]);
    let traffic = SteadyTraffic::start(producer.clone(), &kafka_topic, ROUND_RECORDS, KEYS, ROUND);

    let mut bridge = BridgeProcess::start(file.path());
    let reader = Reader::new(&shared.name_server).await;
    assert!(
        reader
            .wait_for_count(&rocketmq_topic, 3_000, Duration::from_secs(120))
            .await
            >= 3_000,
        "{}",
        bridge.logs()
    );

    let (leader, replicas, isr) =
        partition_state(&producer, &kafka_topic, 0).expect("partition 0 has a leader");
    assert_eq!(
        (replicas.len(), isr.len()),
        (3, 3),
        "replicas {replicas:?}, in sync {isr:?}"
    );
    let node = format!("kafka-{leader}");
    tokio::task::block_in_place(|| own.run("stop", &["--kill", &node]));
    let killed = Instant::now();
    let at_kill = reader.count(&rocketmq_topic).await;
    // A new leader is elected, and the copy goes on past it.
    let moved = wait_until(Duration::from_secs(90), || {
        partition_state(&producer, &kafka_topic, 0).is_some_and(|(l, _, _)| l != leader)
    })
    .await;
    assert!(
        moved,
        "partition 0 has no new leader after {node} was killed"
    );
    let elected = killed.elapsed();
    let went_on = reader
        .wait_for_count(&rocketmq_topic, at_kill + 5_000, Duration::from_secs(120))
        .await;
    assert!(
        went_on >= at_kill + 5_000,
        "the copy stopped after {node} was killed:\n{}",
        bridge.logs()
    );
    let down_for = killed.elapsed();
    assert!(
        bridge.wait(Duration::from_millis(10)).is_none(),
        "the bridge exited:\n{}",
        bridge.logs()
    );

    tokio::task::block_in_place(|| own.run("start", &[&node]));
    // Back in sync, then more traffic over the healed cluster.
    let rejoined = wait_until(Duration::from_secs(120), || {
        partition_state(&producer, &kafka_topic, 0).is_some_and(|(_, _, isr)| isr.contains(&leader))
    })
    .await;
    assert!(
        rejoined,
        "{node} did not rejoin partition 0's in-sync replicas"
    );
    let at_restart = reader.count(&rocketmq_topic).await;
    reader
        .wait_for_count(
            &rocketmq_topic,
            at_restart + 3_000,
            Duration::from_secs(120),
        )
        .await;
    let total = traffic.stop().await;

    reader
        .wait_for_all(&rocketmq_topic, total, Duration::from_secs(240))
        .await;
    assert!(
        bridge.wait(Duration::from_millis(10)).is_none(),
        "the bridge exited"
    );
    bridge.stop_gracefully(Duration::from_secs(30));
    // Read after the stop: nothing can still be on its way.
    let messages = reader.read(&rocketmq_topic).await;
    reader.close().await;
    let logs = bridge.logs();

    let copies = copy_counts(&messages);
    assert_eq!(copies.len(), total, "records missing");
    let duplicated: Vec<_> = copies.iter().filter(|(_, n)| **n > 1).take(5).collect();
    let first_copies = duplicated
        .first()
        .map(|(first, _)| copies_of(&messages, first))
        .unwrap_or_default();
    assert!(
        duplicated.is_empty(),
        "{} copies of {total} records; first duplicated: {duplicated:?}; its copies: \
         {first_copies:?}; trail:\n{}",
        messages.len(),
        ownership_trail(&logs).join("\n")
    );
    assert_eq!(assert_complete_and_ordered(&messages, total, PARTITIONS), 0);
    let keys = assert_ordered_by(&messages, |r| {
        String::from_utf8_lossy(r.key().unwrap_or_default()).into_owned()
    });
    assert_eq!(keys, KEYS);
    println!(
        "kafka-cluster: killed {node} (leader of partition 0), new leader after {:.1} s, \
         restarted after {:.1} s; {total} records, each copied once, in {:.0} s",
        elected.as_secs_f64(),
        down_for.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
}
