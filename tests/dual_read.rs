//! Dual read against the real brokers: two consumers run the same logic on
//! each side and record it with the crate's `dual_read` API, the bridge
//! copies three days of records, and `compare-results` compares the two
//! ledgers. Same logic: MATCH every day. A RocketMQ consumer that drops one
//! record and alters one result: MISMATCH naming exactly those two, on
//! exactly their day. A restart that processes records twice: counted, not
//! a mismatch. Unusable ledger entries: counted and listed, never a crash.

use std::collections::BTreeMap;
use std::time::Duration;

use kafka_rocketmq_bridge::dual_read::{LedgerError, LedgerWriter, Outcome, RecordId, Side};
use kafka_rocketmq_bridge::rocketmq_reader::ReadMessage;
use rdkafka::ClientConfig;
use rdkafka::Message as _;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::FutureRecord;
use serde_json::Value;

use crate::support::*;

const DAY_MS: i64 = 86_400_000;
const PER_DAY: usize = 60;

/// The toy logic both sides run: what a consumer would store per record.
fn logic(key: Option<&[u8]>, value: Option<&[u8]>, seq: Option<&[u8]>) -> Vec<u8> {
    let text =
        |bytes: Option<&[u8]>| String::from_utf8_lossy(bytes.unwrap_or_default()).into_owned();
    format!(
        "{}|{}|{}",
        text(key),
        value.map_or(0, <[u8]>::len),
        text(seq)
    )
    .into_bytes()
}

/// One handled record: its identity and the result the logic gave.
struct Handled {
    id: RecordId,
    result: Vec<u8>,
}

/// Everything the Kafka topic holds, as a Kafka consumer hands it over.
fn consume_kafka(bootstrap: &str, topic: &str, partitions: i32, total: usize) -> Vec<Handled> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", unique("dual-read-kafka"))
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .create()
        .expect("consumer");
    let mut list = rdkafka::TopicPartitionList::new();
    for partition in 0..partitions {
        list.add_partition_offset(topic, partition, rdkafka::Offset::Beginning)
            .expect("partition");
    }
    consumer.assign(&list).expect("assign");
    let mut handled = Vec::new();
    let started = std::time::Instant::now();
    while handled.len() < total {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "read {} of {total}",
            handled.len()
        );
        let Some(message) = consumer.poll(Duration::from_millis(200)) else {
            continue;
        };
        let message = message.expect("message");
        let seq = message.headers().and_then(|h| {
            use rdkafka::message::Headers as _;
            h.iter().find(|h| h.key == "seq").and_then(|h| h.value)
        });
        handled.push(Handled {
            id: RecordId::of_kafka(&message),
            result: logic(message.key(), message.payload(), seq),
        });
    }
    handled
}

/// The same logic on RocketMQ's copies; `header` is the header it reads `seq` from.
fn on_rocketmq(messages: &[ReadMessage], header: &str) -> Vec<Handled> {
    messages
        .iter()
        .map(|message| {
            let property = |name: &str| {
                message
                    .properties
                    .iter()
                    .find(|(n, _)| n == name)
                    .map(|(_, v)| v.as_str())
            };
            let record = message.kafka_record().expect("a copy");
            let seq = record
                .headers()
                .find(|(n, _)| *n == header)
                .and_then(|(_, v)| v);
            Handled {
                id: RecordId::of_rocketmq(property).expect("provenance"),
                result: logic(record.key(), record.value(), seq),
            }
        })
        .collect()
}

fn write_ledger(bootstrap: &str, group: &str, side: Side, handled: &[Handled]) {
    let client = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .clone();
    let mut ledger = LedgerWriter::new(&client, group, side).expect("ledger writer");
    for record in handled {
        ledger
            .record(&record.id, &Outcome::processed(&record.result))
            .expect("record");
    }
    ledger.flush(Duration::from_secs(30)).expect("flush");
}

fn verdicts(report: &Value) -> Vec<(String, String)> {
    report["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .map(|r| {
            (
                r["day"].as_str().unwrap_or("").to_string(),
                r["verdict"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compare_results_matches_names_differences_and_counts_what_it_cannot_use() {
    away_from_midnight().await;
    let brokers = brokers();
    let base = unique("dualread");
    let (kafka_topic, rocketmq_topic) = (format!("{base}.in"), format!("{base}_out"));
    let yesterday = yesterday_start_ms();
    let first = yesterday - 2 * DAY_MS;
    let days: Vec<String> = (0..3).map(|d| utc_day(first + d * DAY_MS)).collect();
    let mut records = keyed_records("dr", 3 * PER_DAY, 7);
    for (i, record) in records.iter_mut().enumerate() {
        let day = (i / PER_DAY) as i64;
        record.timestamp = Some(first + day * DAY_MS + (i % PER_DAY) as i64 * 60_000);
    }
    let groups = ["same", "buggy", "twice"].map(|g| format!("{base}-{g}"));
    // A metrics port of its own: other tests' bridges run at the same time.
    let text = config_text(
        &brokers.kafka,
        &brokers.name_server,
        &[(&kafka_topic, &rocketmq_topic)],
    );
    let file = config_file(&format!(
        "{text}metrics:\n  listen: \"127.0.0.1:{}\"\n",
        closed_port()
    ));
    let path = file.path().to_str().expect("UTF-8 path");
    let created = create_topics_and_ledgers(file.path(), 3, 3, &groups);
    assert!(created.contains("(a dual-read ledger)"), "{created}");
    produce(&kafka_producer(&brokers.kafka), &kafka_topic, &records).await;
    let mut bridge = BridgeProcess::start(file.path());
    let reader = Reader::new(&brokers.name_server).await;
    let copies = reader
        .wait_for_all(&rocketmq_topic, records.len(), Duration::from_secs(120))
        .await;
    reader.close().await;
    bridge.stop_gracefully(Duration::from_secs(30));
    assert_eq!(
        copies.len(),
        records.len(),
        "the bridge copied every record once"
    );

    let kafka_side = consume_kafka(&brokers.kafka, &kafka_topic, 3, records.len());
    let rocketmq_side = on_rocketmq(&copies, "seq");
    let buggy_side = on_rocketmq(&copies, "origin");

    // Same logic on both sides: MATCH every day.
    write_ledger(&brokers.kafka, &groups[0], Side::Kafka, &kafka_side);
    write_ledger(&brokers.kafka, &groups[0], Side::Rocketmq, &rocketmq_side);
    let (code, report) = compare_results(file.path(), &groups[0], &days[0], &days[2]);
    let matched: Vec<_> = days
        .iter()
        .map(|d| (d.clone(), "MATCH".to_string()))
        .collect();
    assert_eq!(
        (code, verdicts(&report)),
        (Some(0), matched.clone()),
        "{report:#}"
    );
    let row = &report["rows"][1];
    assert_eq!(
        (
            row["kafka"]["processed"].as_u64(),
            row["rocketmq"]["read"].as_u64()
        ),
        (Some(PER_DAY as u64), Some(PER_DAY as u64)),
        "{report:#}"
    );
    assert_eq!(row["same"].as_u64(), Some(PER_DAY as u64), "{report:#}");

    // The RocketMQ side drops one record of the middle day and alters one result.
    let middle: Vec<usize> = (0..rocketmq_side.len())
        .filter(|i| rocketmq_side[*i].id.timestamp / DAY_MS == (first + DAY_MS) / DAY_MS)
        .collect();
    let (dropped, altered) = (middle[5], middle[17]);
    let buggy: Vec<Handled> = rocketmq_side
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != dropped)
        .map(|(i, h)| Handled {
            id: h.id.clone(),
            result: if i == altered {
                buggy_side[i].result.clone()
            } else {
                h.result.clone()
            },
        })
        .collect();
    write_ledger(&brokers.kafka, &groups[1], Side::Kafka, &kafka_side);
    write_ledger(&brokers.kafka, &groups[1], Side::Rocketmq, &buggy);
    let (code, report) = compare_results(file.path(), &groups[1], &days[0], &days[2]);
    let expected = vec![
        (days[0].clone(), "MATCH".to_string()),
        (days[1].clone(), "MISMATCH".to_string()),
        (days[2].clone(), "MATCH".to_string()),
    ];
    assert_eq!((code, verdicts(&report)), (Some(1), expected), "{report:#}");
    let row = &report["rows"][1];
    let named: BTreeMap<i64, String> = row["differences"]
        .as_array()
        .expect("differences")
        .iter()
        .map(|d| {
            (
                d["offset"].as_i64().unwrap_or(-1),
                d["kind"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    let at = |i: usize| rocketmq_side[i].id.offset;
    assert_eq!(
        named,
        BTreeMap::from([
            (at(dropped), "only_kafka".to_string()),
            (at(altered), "results_differ".to_string())
        ]),
        "{report:#}"
    );
    let partitions: Vec<i64> = row["differences"]
        .as_array()
        .expect("differences")
        .iter()
        .map(|d| d["partition"].as_i64().unwrap_or(-1))
        .collect();
    let mut want = vec![
        i64::from(rocketmq_side[dropped].id.partition),
        i64::from(rocketmq_side[altered].id.partition),
    ];
    let mut got = partitions.clone();
    want.sort();
    got.sort();
    assert_eq!(got, want, "{report:#}");
    assert_eq!(
        (
            row["only_kafka"].as_u64(),
            row["differ"].as_u64(),
            row["same"].as_u64()
        ),
        (Some(1), Some(1), Some(PER_DAY as u64 - 2)),
        "{report:#}"
    );
    let text = run(&[
        "compare-results",
        "--config",
        path,
        "--group",
        &groups[1],
        "--from",
        &days[0],
        "--to",
        &days[2],
    ]);
    let (dropped_at, altered_at) = (&rocketmq_side[dropped].id, &rocketmq_side[altered].id);
    for line in [
        format!(
            "{kafka_topic}/{}@{}: handled on the Kafka side only",
            dropped_at.partition, dropped_at.offset
        ),
        format!(
            "{kafka_topic}/{}@{}: results differ",
            altered_at.partition, altered_at.offset
        ),
        "2 MATCH, 1 MISMATCH, 0 INCOMPLETE".to_string(),
    ] {
        assert!(
            stdout(&text).contains(&line),
            "no `{line}` in:\n{}",
            printed(&text)
        );
    }

    // A consumer restart: the first 25 records of the last day processed twice.
    let last_day: Vec<&Handled> = kafka_side
        .iter()
        .filter(|h| h.id.timestamp >= yesterday)
        .take(25)
        .collect();
    let mut restarted: Vec<Handled> = kafka_side
        .iter()
        .map(|h| Handled {
            id: h.id.clone(),
            result: h.result.clone(),
        })
        .collect();
    restarted.extend(last_day.iter().map(|h| Handled {
        id: h.id.clone(),
        result: h.result.clone(),
    }));
    write_ledger(&brokers.kafka, &groups[2], Side::Kafka, &restarted);
    write_ledger(&brokers.kafka, &groups[2], Side::Rocketmq, &rocketmq_side);
    // Unusable entries in its RocketMQ ledger: malformed, a newer format, an unmapped topic.
    let ledger = format!("dual-read.{}.rocketmq", groups[2]);
    let unmapped = format!(
        "{{\"v\":1,\"side\":\"rocketmq\",\"group\":\"{}\",\"topic\":\"not-mapped\",\"partition\":0,\"offset\":1,\"timestamp\":{yesterday},\"status\":\"processed\",\"result\":\"ab\"}}",
        groups[2]
    );
    let bad_value =
        format!("{{not json\n{{\"v\":9,\"side\":\"rocketmq\",\"shape\":\"new\"}}\n{unmapped}\n");
    kafka_producer(&brokers.kafka)
        .send(
            FutureRecord::<(), _>::to(&ledger).payload(bad_value.as_str()),
            Duration::from_secs(10),
        )
        .await
        .expect("bad entries written");
    let (code, report) = compare_results(file.path(), &groups[2], &days[0], &days[2]);
    assert_eq!((code, verdicts(&report)), (Some(0), matched), "{report:#}");
    let row = &report["rows"][2];
    assert_eq!(
        row["kafka"]["processed_more_than_once"].as_u64(),
        Some(25),
        "{report:#}"
    );
    assert_eq!(
        row["rocketmq"]["processed_more_than_once"].as_u64(),
        Some(0),
        "{report:#}"
    );
    let unused = &report["ledgers"][1]["unused"];
    assert_eq!(
        (
            unused["malformed"].as_u64(),
            unused["future_version"].as_u64(),
            unused["unmapped_topic"].as_u64()
        ),
        (Some(1), Some(1), Some(1)),
        "{report:#}"
    );
    assert_eq!(
        report["ledgers"][1]["listed_unused"]
            .as_array()
            .map(Vec::len),
        Some(3),
        "{report:#}"
    );

    // cutover-check gains one condition per results group.
    let output = run(&[
        "cutover-check",
        "--config",
        path,
        "--days",
        "3",
        "--results-group",
        &groups[0],
        "--results-group",
        &groups[1],
        "--json",
    ]);
    let cutover: Value = serde_json::from_str(&stdout(&output))
        .unwrap_or_else(|e| panic!("{e}: {}", printed(&output)));
    let condition = |group: &str| {
        cutover["conditions"]
            .as_array()
            .and_then(|c| {
                c.iter()
                    .find(|c| c["condition"].as_str().is_some_and(|t| t.contains(group)))
            })
            .map(|c| c["ok"].clone())
    };
    assert_eq!(
        condition(&groups[0]),
        Some(Value::Bool(true)),
        "{cutover:#}"
    );
    assert_eq!(
        condition(&groups[1]),
        Some(Value::Bool(false)),
        "{cutover:#}"
    );
    assert_eq!(cutover["safe"], Value::Bool(false), "{cutover:#}");
    assert_eq!(output.status.code(), Some(1), "{}", printed(&output));
}

/// With Kafka unreachable, recording never holds the consumer up: entries
/// are buffered and handed to librdkafka, and `flush` reports the failure
/// within its timeout, telling the consumer not to commit.
#[test]
fn an_unreachable_ledger_does_not_block_the_consumer_and_flush_says_so() {
    let bootstrap = format!("127.0.0.1:{}", closed_port());
    let client = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("message.timeout.ms", "2000")
        .clone();
    let mut ledger = LedgerWriter::new(&client, "unreachable", Side::Kafka).expect("writer");
    let started = std::time::Instant::now();
    for offset in 0..5_000 {
        let id = RecordId {
            topic: "orders".into(),
            partition: (offset % 4) as i32,
            offset,
            timestamp: 1_764_633_600_000,
        };
        ledger
            .record(&id, &Outcome::processed(b"r"))
            .expect("record never fails while the queue has room");
    }
    let recording = started.elapsed();
    assert!(
        recording < Duration::from_secs(2),
        "5,000 entries took {recording:?} to record"
    );
    let started = std::time::Instant::now();
    let error = ledger
        .flush(Duration::from_secs(10))
        .expect_err("nothing can be delivered");
    assert!(
        started.elapsed() < Duration::from_secs(11),
        "flush took {:?}",
        started.elapsed()
    );
    // Every batch timed out after message.timeout.ms, well within flush's 10 s.
    assert!(
        matches!(error, LedgerError::Delivery { failed, .. } if failed > 0),
        "{error}"
    );
    assert!(error.to_string().contains("do not commit"), "{error}");
}
