//! Exactly-once restarts against the real brokers: after kill -9 restarts,
//! every record is in RocketMQ exactly once, in order, in `partition` and
//! `key_hash` modes; the restarted instances report what they skipped.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::support::*;

/// The `already_stored` and `took_ms` of each restart-scan log line.
fn restart_scans(logs: &str) -> Vec<(u64, u64)> {
    let field = |line: &str, name: &str| -> Option<u64> {
        let start = line.find(&format!("{name}="))? + name.len() + 1;
        line[start..]
            .split(|c: char| !c.is_ascii_digit())
            .next()?
            .parse()
            .ok()
    };
    logs.lines()
        .filter(|line| line.contains("restart scan: read the targets' tails"))
        .filter_map(|line| Some((field(line, "already_stored")?, field(line, "took_ms")?)))
        .collect()
}

fn now_ms() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or_default()
}

async fn kill_restarts_leave_exactly_one_copy(ordering: &str) {
    let total: i64 = 100_000;
    let brokers = brokers();
    let base = unique("eos");
    let (kafka_topic, rocketmq_topic) = (format!("{base}.in"), format!("{base}_out"));
    let text = config_text(
        &brokers.kafka,
        &brokers.name_server,
        &[(&kafka_topic, &rocketmq_topic)],
    );
    // Commits every 5 s: each kill leaves seconds of copies uncommitted.
    let file = config_file(&format!(
        "{text}    ordering: {ordering}\nmetrics:\n  listen: \"127.0.0.1:{}\"\n\
         bridge:\n  commit_interval: 5s\n  queue_buffer_records: 512\n  max_batch_records: 128\n",
        closed_port()
    ));
    create_topics(file.path(), 8, 8);
    produce(
        &kafka_producer(&brokers.kafka),
        &kafka_topic,
        &keyed_records("eos", total as usize, 1000),
    )
    .await;

    let reader = Reader::new(&brokers.name_server).await;
    let seed = i64::from(std::process::id());
    let kills: Vec<i64> = (1..=3)
        .map(|k| total * (k * 20 + (seed * 7 * k) % 15) / 100)
        .collect();
    let mut scans = Vec::new();
    // What a failure needs to be traced: each instance's restart-scan and
    // re-send lines, and when each kill happened.
    let mut trail = Vec::new();
    for point in &kills {
        let bridge = BridgeProcess::start(file.path());
        let seen = reader
            .wait_for_count(&rocketmq_topic, *point, Duration::from_secs(300))
            .await;
        assert!(seen >= *point, "stalled before {point}: {}", bridge.logs());
        scans.extend(restart_scans(&bridge.logs()));
        trail.extend(ownership_trail(&bridge.logs()));
        trail.push(format!("kill -9 at {} ms", now_ms()));
        bridge.kill9();
    }
    let mut bridge = BridgeProcess::start(file.path());
    let messages = reader
        .wait_for_all(&rocketmq_topic, total as usize, Duration::from_secs(300))
        .await;
    bridge.stop_gracefully(Duration::from_secs(30));
    // Read again after the stop: copies may still have been on their way.
    let messages = match reader.read(&rocketmq_topic).await {
        after if after.len() >= messages.len() => after,
        _ => messages,
    };
    scans.extend(restart_scans(&bridge.logs()));
    trail.extend(ownership_trail(&bridge.logs()));
    reader.close().await;

    let mut copies: BTreeMap<(String, i32, i64), usize> = BTreeMap::new();
    for message in &messages {
        *copies.entry(coordinates(message)).or_default() += 1;
    }
    let extra: Vec<_> = copies.iter().filter(|(_, n)| **n > 1).take(5).collect();
    assert_eq!(copies.len() as i64, total, "records missing");
    let first_copies = extra
        .first()
        .map(|(first, _)| copies_of(&messages, first))
        .unwrap_or_default();
    assert!(
        extra.is_empty(),
        "{} copies of {total} records after {} kills; first duplicated: {extra:?}; \
         its copies: {first_copies:?}; trail:\n{}",
        messages.len(),
        kills.len(),
        trail.join("\n")
    );
    let groups = match ordering {
        "key_hash" => assert_ordered_by(&messages, |r| {
            String::from_utf8_lossy(r.key().unwrap_or_default()).into_owned()
        }),
        _ => assert_ordered_by(&messages, |r| r.partition.to_string()),
    };
    assert_eq!(groups, if ordering == "key_hash" { 1000 } else { 8 });
    // The restarts found copies past the commit and skipped them: without
    // the scan, these would be the duplicates.
    assert!(scans.len() > kills.len(), "a scan on each start: {scans:?}");
    let skipped: u64 = scans.iter().map(|(n, _)| n).sum();
    assert!(skipped > 0, "no restart found anything to skip: {scans:?}");
    eprintln!(
        "{ordering}: kills at {kills:?}; restart scans (already stored, ms): {scans:?}; \
         {} copies of {total} records",
        messages.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_restarts_leave_one_copy_per_record_in_partition_mode() {
    kill_restarts_leave_exactly_one_copy("partition").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_restarts_leave_one_copy_per_record_in_key_hash_mode() {
    kill_restarts_leave_exactly_one_copy("key_hash").await;
}

/// Without its fence topic the bridge still copies everything (the restart
/// scan reads without a fence) and says once what is missing and what to do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_fence_topic_is_reported_once_and_the_copy_goes_on() {
    let brokers = brokers();
    let base = unique("nofence");
    let (kafka_topic, rocketmq_topic) = (format!("{base}.in"), format!("{base}_out"));
    let fence_topic = format!("{base}_fence");
    let text = with_fence_topic(
        &config_text(
            &brokers.kafka,
            &brokers.name_server,
            &[(&kafka_topic, &rocketmq_topic)],
        ),
        &fence_topic,
    );
    let file = config_file(&format!(
        "{text}metrics:\n  listen: \"127.0.0.1:{}\"\n",
        closed_port()
    ));
    create_topics(file.path(), 2, 2);
    // create-topics made the fence topic too: this test needs it gone, so
    // it points the bridge at a name nobody created.
    let missing = fence_topic.replace("_fence", "_never_created");
    let contents = std::fs::read_to_string(file.path()).expect("config");
    std::fs::write(file.path(), contents.replace(&fence_topic, &missing)).expect("config");
    let total = 500;
    produce(
        &kafka_producer(&brokers.kafka),
        &kafka_topic,
        &keyed_records("f", total, 50),
    )
    .await;

    let mut bridge = BridgeProcess::start(file.path());
    let reader = Reader::new(&brokers.name_server).await;
    let messages = reader
        .wait_for_all(&rocketmq_topic, total, Duration::from_secs(120))
        .await;
    reader.close().await;
    bridge.stop_gracefully(Duration::from_secs(30));
    let logs = bridge.logs();
    assert_eq!(messages.len(), total, "{logs}");
    let warnings = logs
        .lines()
        .filter(|line| line.contains("the fence topic has no queue on this broker"))
        .collect::<Vec<_>>();
    assert_eq!(warnings.len(), 1, "{logs}");
    assert!(warnings[0].contains(&missing), "{}", warnings[0]);
    assert!(
        warnings[0].contains("run `create-topics`"),
        "{}",
        warnings[0]
    );
}

/// A static member (`kafka.group_instance_id`) killed with -9 and started
/// again takes its partitions back at once. With dynamic membership the
/// coordinator would wait for the killed member's 45 s session to time out
/// before assigning anything, so the deadline below could not be met.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_static_member_killed_and_restarted_resumes_before_its_session_times_out() {
    let brokers = brokers();
    let base = unique("static");
    let (kafka_topic, rocketmq_topic) = (format!("{base}.in"), format!("{base}_out"));
    let file = config_file(&format!(
        "kafka:\n  bootstrap_servers: \"{}\"\n  group_id: \"{base}-group\"\n  group_instance_id: \"{base}-1\"\n  \
         properties:\n    session.timeout.ms: \"45000\"\n\
         rocketmq:\n  name_server: \"{}\"\nmetrics:\n  listen: \"127.0.0.1:{}\"\n\
         bridge:\n  commit_interval: 5s\n\
         mappings:\n  - kafka_topic: \"{kafka_topic}\"\n    rocketmq_topic: \"{rocketmq_topic}\"\n",
        brokers.kafka,
        brokers.name_server,
        closed_port()
    ));
    create_topics(file.path(), 4, 4);
    let producer = kafka_producer(&brokers.kafka);
    let records = keyed_records("s", 20_000, 100);
    let (before, after) = records.split_at(10_000);
    produce(&producer, &kafka_topic, before).await;
    let reader = Reader::new(&brokers.name_server).await;
    let first = BridgeProcess::start(file.path());
    let seen = reader
        .wait_for_count(&rocketmq_topic, 5_000, Duration::from_secs(120))
        .await;
    assert!(seen >= 5_000, "the first run stalled: {}", first.logs());
    first.kill9();
    // Records only the restarted instance can copy.
    produce(&producer, &kafka_topic, after).await;

    let restarted = std::time::Instant::now();
    let mut second = BridgeProcess::start(file.path());
    let messages = reader
        .wait_for_all(&rocketmq_topic, records.len(), Duration::from_secs(30))
        .await;
    let took = restarted.elapsed();
    second.stop_gracefully(Duration::from_secs(30));
    let logs = second.logs();
    assert!(
        messages.len() >= records.len(),
        "{} of {} copies within {took:?} of the restart, under the 45 s session timeout: {logs}",
        messages.len(),
        records.len()
    );
    let messages = match reader.read(&rocketmq_topic).await {
        later if later.len() >= messages.len() => later,
        _ => messages,
    };
    reader.close().await;
    let distinct: std::collections::BTreeSet<_> = messages.iter().map(coordinates).collect();
    assert_eq!(distinct.len(), records.len(), "records missing: {logs}");
    assert_eq!(messages.len(), records.len(), "duplicates: {logs}");
    assert_ordered_by(&messages, |r| r.partition.to_string());
}
