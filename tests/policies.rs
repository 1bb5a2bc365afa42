//! Records RocketMQ cannot take, under each policy, and binary keys and
//! headers through the documented encoding. Against the real brokers.

use std::time::Duration;

use crate::support::*;

fn scenario(
    policy: &str,
    max_message_size: &str,
) -> (tempfile::NamedTempFile, String, String, String) {
    scenario_with(policy, max_message_size, "")
}

/// [`scenario`] with `mapping_lines` added to the mapping.
fn scenario_with(
    policy: &str,
    max_message_size: &str,
    mapping_lines: &str,
) -> (tempfile::NamedTempFile, String, String, String) {
    let brokers = brokers();
    let base = unique("policy");
    let (kafka_topic, rocketmq_topic, dlq) = (
        format!("{base}.in"),
        format!("{base}_out"),
        format!("{base}.dlq"),
    );
    let text = format!(
        "kafka:\n  bootstrap_servers: \"{}\"\n  group_id: \"{}\"\n  properties:\n    session.timeout.ms: \"6000\"\n\
         rocketmq:\n  name_server: \"{}\"\n  max_message_size: \"{max_message_size}\"\n\
         mappings:\n  - kafka_topic: \"{kafka_topic}\"\n    rocketmq_topic: \"{rocketmq_topic}\"\n\
         \x20   on_empty_value: {policy}\n    on_oversized_body: {policy}\n    on_oversized_properties: {policy}\n\
         \x20   dead_letter_topic: \"{dlq}\"\n{mapping_lines}\
         metrics:\n  listen: \"127.0.0.1:{}\"\n",
        brokers.kafka,
        unique("group"),
        brokers.name_server,
        closed_port()
    );
    let file = config_file(&text);
    let path = file.path().to_str().unwrap().to_string();
    create_topics(&path, 1, 2);
    (file, kafka_topic, rocketmq_topic, dlq)
}

/// good, tombstone, empty, oversized body, oversized properties, good:
/// all in partition 0, so offsets are 0..=5.
fn bad_records() -> Vec<TestRecord> {
    let record = |value: Option<Vec<u8>>, headers: Vec<(String, Option<Vec<u8>>)>| TestRecord {
        key: Some(b"k".to_vec()),
        value,
        headers,
        partition: Some(0),
        timestamp: None,
    };
    vec![
        record(Some(b"first".to_vec()), vec![]),
        record(None, vec![]),
        record(Some(vec![]), vec![]),
        record(Some(vec![b'b'; 20_000]), vec![]),
        record(
            Some(b"v".to_vec()),
            vec![("big".into(), Some(vec![b'h'; 40_000]))],
        ),
        record(Some(b"last".to_vec()), vec![]),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skip_copies_the_rest_and_logs_every_skipped_record() {
    let (file, kafka_topic, rocketmq_topic, _) = scenario("skip", "16KiB");
    let brokers = brokers();
    produce(
        &kafka_producer(&brokers.kafka),
        &kafka_topic,
        &bad_records(),
    )
    .await;
    let mut bridge = BridgeProcess::start(file.path());
    let reader = Reader::new(&brokers.name_server).await;
    assert_eq!(
        reader
            .wait_for_count(&rocketmq_topic, 2, Duration::from_secs(120))
            .await,
        2,
        "{}",
        bridge.logs()
    );
    bridge.stop_gracefully(Duration::from_secs(30));
    let offsets: Vec<i64> = reader
        .read(&rocketmq_topic)
        .await
        .iter()
        .map(|m| coordinates(m).2)
        .collect();
    assert_eq!(
        offsets
            .iter()
            .copied()
            .collect::<std::collections::BTreeSet<_>>(),
        [0, 5].into()
    );
    let logs = bridge.logs();
    for (offset, reason) in [
        (1, "empty_value"),
        (2, "empty_value"),
        (3, "oversized_body"),
        (4, "oversized_properties"),
    ] {
        let line = format!("record={kafka_topic}/0@{offset} reason=\"{reason}\"");
        let alt = format!("record={kafka_topic}/0@{offset} reason={reason}");
        assert!(
            logs.contains(&line) || logs.contains(&alt),
            "no skip line for offset {offset}:\n{logs}"
        );
    }
    assert!(logs.contains("skipped: 4"), "{logs}");
    reader.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letter_writes_each_bad_record_to_kafka_with_its_reason() {
    let (file, kafka_topic, rocketmq_topic, dlq) = scenario("dead_letter", "16KiB");
    let brokers = brokers();
    produce(
        &kafka_producer(&brokers.kafka),
        &kafka_topic,
        &bad_records(),
    )
    .await;
    let mut bridge = BridgeProcess::start(file.path());
    let reader = Reader::new(&brokers.name_server).await;
    assert_eq!(
        reader
            .wait_for_count(&rocketmq_topic, 2, Duration::from_secs(120))
            .await,
        2,
        "{}",
        bridge.logs()
    );
    let mut letters = read_dead_letters(&brokers.kafka, &dlq, 4).await;
    letters.sort_by_key(|(_, offset)| *offset);
    let expected = [
        ("empty_value", 1),
        ("empty_value", 2),
        ("oversized_body", 3),
        ("oversized_properties", 4),
    ];
    assert_eq!(letters, expected.map(|(r, o)| (r.to_string(), o)).to_vec());
    bridge.stop_gracefully(Duration::from_secs(30));
    assert!(
        bridge.logs().contains("dead_lettered: 4"),
        "{}",
        bridge.logs()
    );
    reader.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fail_stops_before_the_bad_record_and_commits_only_what_precedes_it() {
    let (file, kafka_topic, rocketmq_topic, _) = scenario("fail", "16KiB");
    let brokers = brokers();
    produce(
        &kafka_producer(&brokers.kafka),
        &kafka_topic,
        &bad_records(),
    )
    .await;
    let mut bridge = BridgeProcess::start(file.path());
    let status = bridge
        .wait(Duration::from_secs(120))
        .expect("the bridge stops on its own");
    assert_eq!(status.code(), Some(3), "{}", bridge.logs());
    let logs = bridge.logs();
    assert!(
        logs.contains(&format!(
            "record {kafka_topic}/0@1 of mapping {kafka_topic} cannot be copied"
        )),
        "{logs}"
    );
    assert!(
        logs.contains("Set mappings[].on_empty_value to skip or dead_letter"),
        "{logs}"
    );
    assert!(
        logs.contains(&format!("final commit done offsets={kafka_topic}/0=1")),
        "{logs}"
    );
    let reader = Reader::new(&brokers.name_server).await;
    assert_eq!(reader.count(&rocketmq_topic).await, 1);
    reader.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_keys_and_headers_round_trip_through_the_encoding() {
    let (file, kafka_topic, rocketmq_topic, _) = scenario("fail", "4MiB");
    let brokers = brokers();
    let records = vec![
        TestRecord {
            key: Some(vec![0xff, 0x00, 0xfe]),
            value: Some(vec![0, 1, 2, 255]),
            headers: vec![
                ("bin".into(), Some(vec![0xc3, 0x28])),
                ("null".into(), None),
                ("KEYS".into(), Some(b"reserved name".to_vec())),
                ("dup".into(), Some(b"1".to_vec())),
                ("dup".into(), Some(b"2".to_vec())),
                ("sep".into(), Some(b"a\x01b".to_vec())),
            ],
            partition: Some(0),
            timestamp: None,
        },
        TestRecord {
            key: Some(vec![]),
            value: Some(b"empty key".to_vec()),
            headers: vec![],
            partition: Some(0),
            timestamp: None,
        },
        TestRecord {
            key: None,
            value: Some(b"null key".to_vec()),
            headers: vec![],
            partition: Some(0),
            timestamp: None,
        },
    ];
    let stored = produce(&kafka_producer(&brokers.kafka), &kafka_topic, &records).await;
    let mut bridge = BridgeProcess::start(file.path());
    let reader = Reader::new(&brokers.name_server).await;
    assert_eq!(
        reader
            .wait_for_count(&rocketmq_topic, 3, Duration::from_secs(120))
            .await,
        3,
        "{}",
        bridge.logs()
    );
    bridge.stop_gracefully(Duration::from_secs(30));
    let mut back: Vec<_> = reader
        .read(&rocketmq_topic)
        .await
        .iter()
        .map(|m| m.kafka_record().expect("unmap"))
        .collect();
    back.sort_by_key(|r| r.offset);
    for (got, want) in back.iter().zip(&stored) {
        assert_eq!(got.key(), want.key());
        assert_eq!(got.value(), want.value());
        // Plain properties come back sorted by name, the escaped list in Kafka order.
        let mut got_headers: Vec<_> = got.headers().collect();
        let mut want_headers: Vec<_> = want.headers().collect();
        got_headers.sort();
        want_headers.sort();
        assert_eq!(got_headers, want_headers, "offset {}", want.offset);
    }
    assert_eq!(back.len(), 3);
    reader.close().await;
}

/// The headers the way back gives a copy of `queue_offset` in `kafka_topic`.
fn reverse_copy_headers(kafka_topic: &str, queue_offset: i64) -> Vec<(String, Option<Vec<u8>>)> {
    use kafka_rocketmq_bridge::config::MessageIds;
    use kafka_rocketmq_bridge::mapping::reverse::{self, ReverseRules, RocketMqMessage};
    let message = RocketMqMessage {
        topic: "orders".into(),
        broker: "broker-a".into(),
        queue_id: 0,
        queue_offset,
        msg_id: None,
        keys: None,
        tags: None,
        born_timestamp_ms: 1,
        store_timestamp_ms: 2,
        body: b"copied back".to_vec().into(),
        properties: vec![],
    };
    let rules = ReverseRules {
        kafka_topic: kafka_topic.to_string(),
        max_message_bytes: 1 << 20,
        forward_ids: MessageIds::Deterministic,
    };
    let record = reverse::map_message(&message, &rules).expect("a plain message is copied");
    record
        .headers
        .iter()
        .map(|(name, value)| (name.to_string(), Some(value.to_vec())))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loop_prevention_keeps_the_bridges_copies_back_and_dead_letters_forged_provenance() {
    use kafka_rocketmq_bridge::mapping::reverse::ROCKETMQ_QUEUE_OFFSET;
    let (file, kafka_topic, rocketmq_topic, dlq) = scenario_with(
        "fail",
        "4MiB",
        "    loop_prevention: true\n    on_suspect_provenance: dead_letter\n",
    );
    let brokers = brokers();
    let copy = reverse_copy_headers(&kafka_topic, 9);
    // The same provenance with another offset: its copy id no longer matches.
    let forged: Vec<_> = copy
        .iter()
        .map(|(name, value)| match name.as_str() {
            ROCKETMQ_QUEUE_OFFSET => (name.clone(), Some(b"10".to_vec())),
            _ => (name.clone(), value.clone()),
        })
        .collect();
    let clock = yesterday_start_ms() + 3_600_000;
    let record = |value: &[u8], headers: Vec<(String, Option<Vec<u8>>)>| TestRecord {
        key: Some(b"k".to_vec()),
        value: Some(value.to_vec()),
        headers,
        partition: Some(0),
        timestamp: Some(clock),
    };
    let records = vec![
        record(b"first", vec![]),
        record(b"copied back", copy),
        record(b"forged", forged),
        record(b"last", vec![]),
    ];
    produce(&kafka_producer(&brokers.kafka), &kafka_topic, &records).await;
    let mut bridge = BridgeProcess::start(file.path());
    let reader = Reader::new(&brokers.name_server).await;
    assert_eq!(
        reader
            .wait_for_count(&rocketmq_topic, 2, Duration::from_secs(120))
            .await,
        2,
        "{}",
        bridge.logs()
    );
    let letters = read_dead_letters(&brokers.kafka, &dlq, 1).await;
    assert_eq!(letters, vec![("suspect_provenance".to_string(), 2)]);
    bridge.stop_gracefully(Duration::from_secs(30));
    let logs = bridge.logs();
    assert!(logs.contains("skipped: 1"), "{logs}");
    assert!(logs.contains("dead_lettered: 1"), "{logs}");
    assert!(
        logs.contains(&format!("record={kafka_topic}/0@2")) && logs.contains("ROCKETMQ_COPY_ID"),
        "the forged record is logged with its coordinates and why:\n{logs}"
    );
    let offsets: std::collections::BTreeSet<i64> = reader
        .read(&rocketmq_topic)
        .await
        .iter()
        .map(|m| coordinates(m).2)
        .collect();
    assert_eq!(offsets, [0, 3].into());
    reader.close().await;

    let (code, report) = verify_day(file.path(), &utc_day(clock));
    let row = &report["rows"][0];
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(row["verdict"], "MATCH", "{row:#}");
    assert_eq!(row["skipped"]["bridge_copy"], 1, "{row:#}");
    assert_eq!(row["dead_lettered"]["suspect_provenance"], 1, "{row:#}");
}
