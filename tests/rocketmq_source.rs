//! The way back's source against the real RocketMQ: a consumer-group
//! member reads every queue in order with keys, tags and properties, and a
//! new member resumes from the offsets committed to the group (and only
//! those).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use kafka_rocketmq_bridge::checkpoint::PartitionId;
use kafka_rocketmq_bridge::config::RocketMqConfig;
use kafka_rocketmq_bridge::mapping::reverse::RocketMqMessage;
use kafka_rocketmq_bridge::rocketmq_sink::{RocketMqRuntime, start_producer};
use kafka_rocketmq_bridge::rocketmq_source::RocketMqSource;
use kafka_rocketmq_bridge::source::{Incoming, Source};
use rocketmq_model::common::message::message_single::Message;
use rocketmq_model::message::MessageQueue;

use crate::support::*;

const QUEUES: i32 = 4;
const PER_QUEUE: i64 = 25;

/// `PER_QUEUE` messages to each queue: message n of queue q has body
/// `q-n`, key `k<n mod 3>`, tag `t<q>` and a property `n`.
async fn produce_to_queues(config: &RocketMqConfig, topic: &str) {
    let runtime = RocketMqRuntime::start(1).expect("runtime");
    let mut producer = start_producer(runtime.client_runtime(), config)
        .await
        .expect("producer");
    for n in 0..PER_QUEUE {
        for queue in 0..QUEUES {
            let message = Message::builder()
                .topic(topic)
                .body_slice(format!("{queue}-{n}").as_bytes())
                .keys(vec![format!("k{}", n % 3)])
                .tags(format!("t{queue}"))
                .raw_property("n", n.to_string())
                .expect("a legal property")
                .build_unchecked();
            producer
                .send_to_queue(message, MessageQueue::from_parts(topic, "broker-a", queue))
                .await
                .expect("sent")
                .expect("a send result");
        }
    }
    producer.shutdown().await;
    runtime.shutdown().await;
}

/// Reads until `count` messages came, or fails after `deadline`.
async fn read(source: &RocketMqSource, count: usize, deadline: Duration) -> Vec<RocketMqMessage> {
    let mut read = Vec::new();
    let give_up = tokio::time::Instant::now() + deadline;
    while read.len() < count {
        match tokio::time::timeout_at(give_up, source.recv()).await {
            Ok(Ok(message)) => read.push(message),
            Ok(Err(error)) => panic!("{error}"),
            Err(_) => panic!(
                "only {} of {count} messages within {deadline:?}",
                read.len()
            ),
        }
    }
    read
}

fn by_queue(messages: &[RocketMqMessage]) -> BTreeMap<i32, Vec<i64>> {
    let mut queues: BTreeMap<i32, Vec<i64>> = BTreeMap::new();
    for message in messages {
        queues
            .entry(message.queue_id)
            .or_default()
            .push(message.queue_offset);
    }
    queues
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_member_reads_each_queue_in_order_and_resumes_from_its_commits() {
    let brokers = brokers();
    let topic = unique("back_src").replace(['.', '-'], "_");
    // create-topics makes the RocketMQ topic of a forward mapping.
    let file = config_file(&config_text(
        &brokers.kafka,
        &brokers.name_server,
        &[(&unique("unused"), &topic)],
    ));
    create_topics(file.path(), 1, QUEUES as u32);
    let config = parse_config(&std::fs::read_to_string(file.path()).expect("config")).rocketmq;
    produce_to_queues(&config, &topic).await;
    let group = unique("back_group").replace(['.', '-'], "_");
    let runtime = RocketMqRuntime::start(1).expect("runtime");
    let topics = [topic.clone()];

    let source = RocketMqSource::start(
        runtime.client_runtime(),
        &config,
        &group,
        "one",
        &topics,
        Arc::new(|_: &[PartitionId], _| {}),
    )
    .await
    .expect("the source starts");
    let all = (QUEUES as i64 * PER_QUEUE) as usize;
    let first = read(&source, all, Duration::from_secs(60)).await;
    let expected: Vec<i64> = (0..PER_QUEUE).collect();
    for (queue, offsets) in by_queue(&first) {
        assert_eq!(
            offsets, expected,
            "queue {queue} in order, each message once"
        );
    }
    let sample = first
        .iter()
        .find(|m| m.queue_id == 2 && m.queue_offset == 4)
        .expect("message 4 of queue 2");
    assert_eq!(*sample.topic, *topic);
    assert_eq!(&*sample.broker, "broker-a");
    assert_eq!(&sample.body[..], b"2-4");
    assert_eq!(sample.keys.as_deref(), Some("k1"));
    assert_eq!(sample.tags.as_deref(), Some("t2"));
    assert_eq!(sample.properties, vec![("n".into(), "4".into())]);
    assert!(sample.msg_id.is_some(), "the producer's msgId is kept");
    assert!(sample.store_timestamp_ms >= sample.born_timestamp_ms);
    assert_eq!(sample.lane(), PartitionId::queue(&topic, "broker-a", 2));
    let mut assigned = source.assigned();
    assigned.sort();
    assert_eq!(
        assigned.len(),
        QUEUES as usize,
        "one member owns every queue"
    );

    // Queue 0 up to offset 10 and queue 1 up to 20 are done; nothing else.
    let lane = |queue: i32| PartitionId::queue(&topic, "broker-a", queue);
    source
        .commit(&[(lane(0), 10), (lane(1), 20)], true)
        .await
        .expect("committed");
    let committed = tokio::task::block_in_place(|| {
        source.committed_offsets(&[lane(0), lane(1)], Duration::from_secs(10))
    })
    .expect("committed offsets readable");
    assert_eq!(committed, vec![(lane(0), Some(10)), (lane(1), Some(20))]);
    source.shutdown().await;

    // A new member of the group starts where the commits say, and from
    // the first message where nothing was committed.
    let again = RocketMqSource::start(
        runtime.client_runtime(),
        &config,
        &group,
        "two",
        &topics,
        Arc::new(|_: &[PartitionId], _| {}),
    )
    .await
    .expect("the source starts again");
    let left = all - 10 - 20;
    let second = by_queue(&read(&again, left, Duration::from_secs(60)).await);
    assert_eq!(second[&0], (10..PER_QUEUE).collect::<Vec<_>>());
    assert_eq!(second[&1], (20..PER_QUEUE).collect::<Vec<_>>());
    assert_eq!(second[&2], expected);
    assert_eq!(second[&3], expected);
    // Nothing more arrives.
    let extra = tokio::time::timeout(Duration::from_secs(2), again.recv()).await;
    assert!(extra.is_err(), "no message read twice: {extra:?}");
    again.shutdown().await;
    runtime.shutdown().await;
}
