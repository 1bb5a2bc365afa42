//! What a Kafka partition holds of a batch whose send failed: the records
//! from where the lane's copies can start to the partition's end, matched
//! by the RocketMQ coordinates each copy carries in its headers.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

use crate::checkpoint::PartitionId;
use crate::mapping::reverse;
use crate::sink::Stored;

/// The records of `wanted` that partition `topic/partition` holds at or
/// after offset `from`. Blocking: run it off the async workers.
pub fn stored_since(
    client: &ClientConfig,
    topic: &str,
    partition: i32,
    from: i64,
    wanted: &HashSet<(PartitionId, i64)>,
    deadline: Duration,
) -> Result<Stored, String> {
    let lane = format!("Kafka partition {topic}/{partition}");
    let consumer: BaseConsumer = client
        .clone()
        .set("enable.partition.eof", "false")
        .create()
        .map_err(|error| format!("cannot create a reader for {lane}: {error}"))?;
    let (low, high) = consumer
        .fetch_watermarks(topic, partition, deadline)
        .map_err(|error| format!("cannot read the offsets of {lane}: {error}"))?;
    let start = from.max(low);
    let mut found = HashSet::new();
    if start >= high {
        return Ok(Stored { found, end: high });
    }
    let mut assignment = TopicPartitionList::new();
    assignment
        .add_partition_offset(topic, partition, Offset::Offset(start))
        .and_then(|()| consumer.assign(&assignment))
        .map_err(|error| format!("cannot read {lane} from offset {start}: {error}"))?;
    let give_up = Instant::now() + deadline;
    let mut next = start;
    while next < high {
        if Instant::now() >= give_up {
            return Err(format!(
                "{lane}: read up to offset {next} of {high} within {}s",
                deadline.as_secs()
            ));
        }
        let Some(message) = consumer.poll(Duration::from_millis(100)) else {
            // Transaction markers take offsets no message is read at: the
            // fetch position tells when they end the partition.
            next = next.max(fetch_position(&consumer, topic, partition).unwrap_or(next));
            continue;
        };
        let message = message.map_err(|error| format!("cannot read {lane}: {error}"))?;
        next = message.offset() + 1;
        let Some(headers) = message.headers() else {
            continue;
        };
        let coordinates = reverse::provenance(headers.iter().map(|h| (h.key, h.value)));
        if let Some(coordinates) = coordinates.filter(|c| wanted.contains(c)) {
            found.insert(coordinates);
        }
    }
    Ok(Stored { found, end: high })
}

fn fetch_position(consumer: &BaseConsumer, topic: &str, partition: i32) -> Option<i64> {
    let positions = consumer.position().ok()?;
    match positions.find_partition(topic, partition)?.offset() {
        Offset::Offset(offset) => Some(offset),
        _ => None,
    }
}
