//! The way back's sink against the real Kafka: a partition lane under the
//! shared sender stores every record once, in order, with its headers,
//! across a Kafka killed with -9 and restarted, and reads back what a
//! partition holds by the provenance each copy carries. A Kafka of the
//! test's own (it is killed).

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use kafka_rocketmq_bridge::already_stored::Wanted;
use kafka_rocketmq_bridge::checkpoint::{Checkpoints, PartitionId};
use kafka_rocketmq_bridge::config::{Direction, MessageIds};
use kafka_rocketmq_bridge::health::Readiness;
use kafka_rocketmq_bridge::in_flight::{InFlight, InFlightBudget};
use kafka_rocketmq_bridge::kafka_sink::{KafkaEntry, KafkaRecord, PartitionLanes, read_back};
use kafka_rocketmq_bridge::mapping::reverse::{self, ReverseRules, RocketMqMessage};
use kafka_rocketmq_bridge::sink::sender::{self, SendCounters, SenderSettings, SenderShared};
use kafka_rocketmq_bridge::sink::{Lane, Record};
use kafka_rocketmq_bridge::status::StatusBoard;
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;

use crate::support::*;

const RECORDS: i64 = 300;

fn admin(bootstrap: &str) -> AdminClient<DefaultClientContext> {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("admin client")
}

fn admin_options() -> AdminOptions {
    AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)))
}

async fn create_topic(bootstrap: &str, topic: &str) {
    let new_topic = NewTopic::new(topic, 1, TopicReplication::Fixed(1));
    for result in admin(bootstrap)
        .create_topics([&new_topic], &admin_options())
        .await
        .expect("CreateTopics")
    {
        result.unwrap_or_else(|(name, code)| panic!("creating {name}: {code}"));
    }
}

/// Messages of two queues, interleaved as a partition fed by both gets them.
fn messages() -> Vec<RocketMqMessage> {
    (0..RECORDS)
        .map(|n| RocketMqMessage {
            topic: "orders".into(),
            broker: "broker-a".into(),
            queue_id: (n % 2) as i32,
            queue_offset: n / 2,
            msg_id: Some(format!("ID{n:08}").into()),
            keys: Some(format!("key-{}", n % 7).into()),
            tags: (n % 3 == 0).then(|| "eu".into()),
            born_timestamp_ms: 1_764_900_000_000 + n,
            store_timestamp_ms: 1_764_900_000_500 + n,
            body: format!("body {n}").into_bytes().into(),
            properties: vec![("n".into(), n.to_string().into())],
        })
        .collect()
}

fn to_records(topic: &str, messages: &[RocketMqMessage]) -> Vec<KafkaRecord> {
    let rules = ReverseRules {
        kafka_topic: topic.to_string(),
        max_message_bytes: 1 << 20,
        forward_ids: MessageIds::Deterministic,
    };
    messages
        .iter()
        .map(|message| {
            let record = reverse::map_message(message, &rules).expect("mapped");
            Record {
                partition: PartitionId::queue(&message.topic, &message.broker, message.queue_id),
                offset: message.queue_offset,
                timestamp_ms: Some(message.born_timestamp_ms),
                entry: KafkaEntry::new(&record),
            }
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partition_lane_stores_each_record_once_in_order_across_a_kafka_restart() {
    let shared_brokers = brokers();
    let own = OwnBrokers::start(&["kafka"], &[]);
    let topic = unique("way-back");
    create_topic(&own.kafka, &topic).await;
    let config = parse_config(&config_text(
        &own.kafka,
        &shared_brokers.name_server,
        &[(&topic, "unused")],
    ));
    let lanes = PartitionLanes::new(&config.kafka, Duration::from_secs(1), true)
        .expect("the producer starts");
    let checkpoints = Checkpoints::new();
    let counters = Arc::new(SendCounters::default());
    let shared = SenderShared {
        readiness: Readiness::new(),
        status: StatusBoard::new(),
        checkpoints: Arc::clone(&checkpoints),
        counters: Arc::clone(&counters),
        settings: SenderSettings {
            max_batch_records: 64,
            max_batch_bytes: 1 << 20,
            max_backoff: Duration::from_millis(500),
        },
    };
    let messages = messages();
    let budget = InFlightBudget::new();
    let (tx, rx) = tokio::sync::mpsc::channel(1024);
    let sender = sender::spawn(
        shared.for_mapping("way-back", Direction::RocketmqToKafka),
        lanes.lane(&topic, 0),
        rx,
    );
    let mut records = to_records(&topic, &messages).into_iter();
    let mut hand_over = async |count: usize| {
        for record in records.by_ref().take(count) {
            checkpoints.dispatch(&record.partition, record.offset);
            let permit = budget.take(record.footprint());
            tx.send(InFlight { record, permit })
                .await
                .expect("sender runs");
        }
    };

    let first = RECORDS as usize / 3;
    hand_over(first).await;
    let stored = wait_until(Duration::from_secs(60), || {
        counters.records.load(Ordering::Relaxed) == first as u64
    })
    .await;
    assert!(stored, "the first records were not stored");

    // Kafka down: the sends are not acknowledged, and retried.
    own.run("stop", &["--kill", "kafka"]);
    hand_over(RECORDS as usize - first).await;
    let refused = wait_until(Duration::from_secs(60), || {
        counters.failed_attempts.load(Ordering::Relaxed) >= 2
    })
    .await;
    assert!(
        refused,
        "the lane never reported an unacknowledged send; stored: {}",
        counters.records.load(Ordering::Relaxed)
    );
    own.run("start", &["kafka"]);
    drop(tx);
    tokio::time::timeout(Duration::from_secs(180), sender)
        .await
        .expect("the sender ends once every record is stored")
        .expect("the sender does not panic");
    assert_eq!(budget.used(), 0, "every record's bytes are given back");
    assert_eq!(counters.records.load(Ordering::Relaxed), RECORDS as u64);

    let stored = read_partition(&own.kafka, &topic, 0);
    assert_eq!(stored.len(), RECORDS as usize, "each record once");
    let rules_topic = topic.clone();
    for (read, message) in stored.iter().zip(&messages) {
        let copy = reverse::unmap_record(&reverse::KafkaCopy {
            key: read.key.clone(),
            value: read.value.clone().unwrap_or_default(),
            timestamp_ms: read.timestamp.unwrap_or(-1),
            headers: read.headers.clone(),
        })
        .expect("a reverse copy");
        assert_eq!(&copy, message, "in order, exactly as sent");
        assert_eq!(
            reverse::is_reverse_copy(
                &rules_topic,
                read.headers.iter().map(|(n, v)| (n.as_str(), v.as_deref()))
            ),
            Ok(true)
        );
    }
    // Both queues' checkpoints moved past their last message.
    let mut commits = checkpoints.pending_commits();
    commits.sort();
    let queue = |id: i32| PartitionId::queue("orders", "broker-a", id);
    assert_eq!(
        commits,
        vec![(queue(0), RECORDS / 2), (queue(1), RECORDS / 2)]
    );

    // A lane that has sent nothing reads the whole partition back.
    let fresh = lanes.lane(&topic, 0);
    let records = to_records(&topic, &messages);
    let mut wanted: Vec<&KafkaRecord> = records.iter().collect();
    let unsent = to_records(
        &topic,
        &[RocketMqMessage {
            queue_offset: 10_000,
            ..messages[0].clone()
        }],
    );
    wanted.push(&unsent[0]);
    let found = fresh.read_back(&wanted).await.expect("readable");
    let expected: HashSet<(PartitionId, i64)> = records
        .iter()
        .map(|r| (r.partition.clone(), r.offset))
        .collect();
    assert_eq!(found.found, expected, "all sent, and not the unsent one");
    assert_eq!(found.end, RECORDS);

    // The restart scan: queue 0 committed up to 100, queue 1 never
    // committed, queue 2 never copied here.
    let wanted = [
        Wanted {
            partition: queue(0),
            committed: Some(100),
        },
        Wanted {
            partition: queue(1),
            committed: None,
        },
        Wanted {
            partition: queue(2),
            committed: Some(5),
        },
    ];
    let client = kafka_rocketmq_bridge::kafka_source::client_config(&config.kafka);
    let mut tail = tokio::task::spawn_blocking(move || {
        read_back::scan_partition_tail(
            &client,
            &topic,
            0,
            &wanted,
            Duration::from_secs(600),
            Duration::from_secs(30),
        )
    })
    .await
    .expect("the scan runs")
    .expect("the partition is readable");
    tail.sort();
    let mut expected: Vec<(usize, i64)> = (100..RECORDS / 2).map(|o| (0, o)).collect();
    expected.extend((0..RECORDS / 2).map(|o| (1, o)));
    assert_eq!(
        tail, expected,
        "past each commit, and everything uncommitted"
    );
}

/// Polls `condition` until it holds or `deadline` passes.
async fn wait_until(deadline: Duration, condition: impl Fn() -> bool) -> bool {
    let give_up = tokio::time::Instant::now() + deadline;
    while tokio::time::Instant::now() < give_up {
        if condition() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    condition()
}
