//! The count-match the way back (`rocketmq_to_kafka`): RocketMQ is the
//! source, Kafka holds the copies. It fills the same per-day tallies as the
//! forward direction, which the count-match then judges and reports.
//!
//! A message's day is its born timestamp: the way back gives the Kafka
//! copy that timestamp, so both sides put a message and its copy on the
//! same day. (The store timestamp only picks where the queue scan starts.)
//! What is compared is what the mapping carries: body as value, `KEYS` as
//! key, `TAGS` and the user properties as headers, and the born timestamp
//! ([`carried_hash`]); provenance and the store time are not content.
//!
//! Kafka records are copies when their `ROCKETMQ_` provenance checks out
//! for this mapping's topics; a partition is written in order per queue by
//! the way back, so a copy whose queue offset is not above the highest seen
//! for its queue in the same partition is a re-sent duplicate.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use chrono::NaiveDate;
use rocketmq_model::message::MessageQueue;

use super::days::DayRange;
use super::digest::{BLOCK_OFFSETS, BlockId, content_hash};
use super::progress::Progress;
use super::report::{Coordinates, CopyAt, DayRow, Difference, DuplicateCopy, ScanSpeed};
use super::{
    Committed, CopiesDay, Located, MAX_CHECKED_DUPLICATES, Retention, SourceDay, VerifyError,
    VerifyRequest, add_located, blocks_to_locate, compare_located, judge, kafka_scan,
};
use crate::config::{BridgeConfig, Direction, MappingConfig};
use crate::mapping::reverse::{
    self, KafkaCopy, ROCKETMQ_TAGS, ReverseRules, RocketMqMessage, is_reverse_copy, map_message,
    unmap_record,
};
use crate::mapping::{SourceRecord, TimestampType};
use crate::rocketmq_reader::TopicReader;
use crate::rocketmq_sink::with_admin;
use crate::rocketmq_source::message::to_message;

/// How long looking up the Kafka topic's `max.message.bytes` may take.
const METADATA_DEADLINE: Duration = Duration::from_secs(30);

/// The source's queues, in the reader's order: a queue's place in this
/// list stands for it in the tallies' block ids.
struct Queues {
    topic: String,
    list: Vec<MessageQueue>,
    places: HashMap<(String, i32), i32>,
}

impl Queues {
    fn new(topic: &str, list: Vec<MessageQueue>) -> Self {
        let places = list
            .iter()
            .enumerate()
            .map(|(i, q)| ((q.broker_name().to_string(), q.queue_id()), i as i32))
            .collect();
        Queues {
            topic: topic.to_string(),
            list,
            places,
        }
    }

    fn place(&self, broker: &str, queue_id: i32) -> Option<i32> {
        self.places.get(&(broker.to_string(), queue_id)).copied()
    }

    /// The message at `place` and `offset`, as a report names it.
    fn coordinates(&self, place: i32, offset: i64) -> Coordinates {
        let queue = usize::try_from(place).ok().and_then(|p| self.list.get(p));
        Coordinates {
            topic: self.topic.clone(),
            broker: queue.map(|q| q.broker_name().to_string()),
            partition: queue.map_or(place, MessageQueue::queue_id),
            offset,
        }
    }
}

/// The content the way back promises to carry, as one hash: the same
/// canonical form as forward ([`content_hash`]) over key = `KEYS`, value =
/// body, headers = `ROCKETMQ_TAGS` and the user properties (with their
/// names as Kafka carries them), timestamp = born timestamp.
fn carried_hash(message: &RocketMqMessage) -> u64 {
    let mut headers: Vec<(String, Option<Vec<u8>>)> = message
        .properties
        .iter()
        .map(|(name, value)| {
            let name = if name.starts_with(reverse::RESERVED_PREFIX) {
                format!("{}{name}", reverse::ESCAPED_PROPERTY_PREFIX)
            } else {
                name.to_string()
            };
            (name, Some(value.as_bytes().to_vec()))
        })
        .collect();
    if let Some(tags) = &message.tags {
        headers.push((ROCKETMQ_TAGS.to_string(), Some(tags.as_bytes().to_vec())));
    }
    content_hash(&SourceRecord::new(
        "",
        0,
        0,
        Some((message.born_timestamp_ms, TimestampType::CreateTime)),
        message.keys.as_ref().map(|k| k.as_bytes()),
        Some(&message.body),
        headers
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_deref())),
    ))
}

/// What a Kafka record of the range is to the way back.
enum Classified {
    /// A copy of the message at this queue place, recovered.
    Copy(i32, RocketMqMessage),
    /// An original Kafka record of a topic also mapped forward to this
    /// RocketMQ topic: not a copy, and not a stranger either.
    Original,
    Foreign(String),
}

struct Classifier<'a> {
    mapping: &'a MappingConfig,
    queues: &'a Queues,
    /// The Kafka topic is also copied forward into this RocketMQ topic.
    both_ways: bool,
}

impl Classifier<'_> {
    fn classify(&self, record: &SourceRecord) -> Classified {
        match is_reverse_copy(&self.mapping.kafka_topic, record.headers()) {
            Ok(true) => {}
            Ok(false) if self.both_ways => return Classified::Original,
            Ok(false) => return Classified::Foreign("no RocketMQ provenance".into()),
            Err(rejection) => return Classified::Foreign(rejection.to_string()),
        }
        let copy = KafkaCopy {
            key: record.key().map(<[u8]>::to_vec),
            value: record.value().unwrap_or_default().to_vec(),
            timestamp_ms: record.timestamp.map_or(-1, |(ms, _)| ms),
            headers: record
                .headers()
                .map(|(name, value)| (name.to_string(), value.map(<[u8]>::to_vec)))
                .collect(),
        };
        let message = match unmap_record(&copy) {
            Ok(message) => message,
            Err(error) => return Classified::Foreign(error.to_string()),
        };
        if *message.topic != *self.mapping.rocketmq_topic {
            return Classified::Foreign(format!(
                "a copy from RocketMQ topic `{}`, not `{}`",
                message.topic, self.mapping.rocketmq_topic
            ));
        }
        match self.queues.place(&message.broker, message.queue_id) {
            Some(place) => Classified::Copy(place, message),
            None => Classified::Foreign(format!(
                "a copy from {} queue {}, which topic `{}` does not have",
                message.broker, message.queue_id, message.topic
            )),
        }
    }
}

/// The Kafka side: copies, duplicates and foreign records per day.
#[derive(Default)]
struct KafkaCopies {
    days: BTreeMap<NaiveDate, CopiesDay>,
    /// Highest queue offset seen per Kafka partition and queue place.
    highest: HashMap<(i32, i32), i64>,
    /// Content hash and day of each duplicate, by queue place and offset.
    duplicate_hashes: HashMap<(i32, i64), Vec<(u64, NaiveDate)>>,
}

impl KafkaCopies {
    fn add(
        &mut self,
        record: &SourceRecord,
        day: NaiveDate,
        classified: Classified,
        queues: &Queues,
        max_listed: usize,
    ) {
        let entry = self.days.entry(day).or_default();
        let (place, message) = match classified {
            Classified::Copy(place, message) => (place, message),
            Classified::Original => return,
            Classified::Foreign(why) => {
                entry.foreign += 1;
                if entry.listed.len() < max_listed {
                    let at = Coordinates::of(record);
                    entry.listed.push(Difference::ForeignRecord { at, why });
                }
                return;
            }
        };
        let hash = carried_hash(&message);
        let highest = self.highest.entry((record.partition, place)).or_insert(-1);
        let duplicate = message.queue_offset <= *highest;
        *highest = (*highest).max(message.queue_offset);
        if !duplicate {
            entry.unique.add(place, message.queue_offset, hash);
            return;
        }
        entry.duplicates += 1;
        if entry.listed_duplicates.len() < max_listed {
            entry.listed_duplicates.push(DuplicateCopy {
                coordinates: queues.coordinates(place, message.queue_offset),
                at: CopyAt::Record(Coordinates::of(record)),
            });
        }
        if self.duplicate_hashes.len() < MAX_CHECKED_DUPLICATES {
            let copies = self.duplicate_hashes.entry((place, message.queue_offset));
            copies.or_default().push((hash, day));
        }
    }
}

/// One queue's retention, as the source scan found it.
#[derive(Default)]
struct QueueRead {
    truncated: bool,
    first_timestamp: Option<i64>,
    read: u64,
}

/// Reads every queue of the source topic from `since` (store time) to its
/// end, handing each message of the range's days to `visit` with its queue
/// place and day.
async fn scan_source(
    reader: &TopicReader,
    queues: &Queues,
    range: &DayRange,
    since: i64,
    progress: &Progress,
    visit: impl FnMut(i32, NaiveDate, &RocketMqMessage) + Send,
) -> Result<Vec<QueueRead>, VerifyError> {
    let visit = Mutex::new(visit);
    let failed = |e: crate::rocketmq_reader::ReadError| VerifyError(e.to_string());
    let reads = queues.list.iter().enumerate().map(|(place, queue)| {
        let visit = &visit;
        async move {
            let (min, max) = reader.offsets(queue).await.map_err(failed)?;
            let start = reader
                .offset_at(queue, since)
                .await
                .map_err(failed)?
                .clamp(min, max.max(min));
            let mut read = QueueRead {
                truncated: start == min && min > 0,
                ..QueueRead::default()
            };
            reader
                .scan_queue_with(queue, start, max, |message| {
                    progress.add(1);
                    read.read += 1;
                    let message = to_message(message);
                    let born = message.born_timestamp_ms;
                    read.first_timestamp = read.first_timestamp.or(Some(born));
                    if let Some(day) = range.day_of(born) {
                        (visit.lock().unwrap_or_else(|p| p.into_inner()))(
                            place as i32,
                            day,
                            &message,
                        );
                    }
                })
                .await
                .map_err(failed)?;
            Ok::<_, VerifyError>(read)
        }
    });
    futures::future::try_join_all(reads).await
}

/// The way back's rules for this mapping (the Kafka topic's size limit).
async fn reverse_rules(
    config: &BridgeConfig,
    mapping: &MappingConfig,
) -> Result<ReverseRules, VerifyError> {
    let topic = mapping.kafka_topic.clone();
    let limits = crate::kafka_source::max_message_bytes(
        &config.kafka,
        std::slice::from_ref(&topic),
        METADATA_DEADLINE,
    )
    .await
    .map_err(|e| VerifyError(e.to_string()))?;
    let max_message_bytes = limits.get(&topic).copied().ok_or_else(|| {
        VerifyError(format!(
            "Kafka topic `{topic}` has no max.message.bytes: check that the topic exists"
        ))
    })?;
    Ok(ReverseRules {
        kafka_topic: topic,
        max_message_bytes,
        forward_ids: config.rocketmq.message_ids,
    })
}

/// One way-back mapping, every day of the range.
pub(super) async fn verify_mapping(
    config: &BridgeConfig,
    mapping: &MappingConfig,
    reader: &TopicReader,
    request: &VerifyRequest,
    progress: &Progress,
) -> Result<(Vec<DayRow>, Vec<ScanSpeed>), VerifyError> {
    let range = request.days;
    let since = range.span().0 - request.slack.as_millis() as i64;
    let rules = reverse_rules(config, mapping).await?;
    let queue_list = reader
        .queues(&mapping.rocketmq_topic)
        .await
        .map_err(|e| VerifyError(e.to_string()))?;
    if queue_list.is_empty() {
        return Err(VerifyError(format!(
            "RocketMQ topic `{}` has no queues: check rocketmq.name_server and that the topic exists",
            mapping.rocketmq_topic
        )));
    }
    let queues = Queues::new(&mapping.rocketmq_topic, queue_list);
    let classifier = Classifier {
        mapping,
        queues: &queues,
        both_ways: config.mappings.iter().any(|m| {
            m.direction == Direction::KafkaToRocketmq
                && m.kafka_topic == mapping.kafka_topic
                && m.rocketmq_topic == mapping.rocketmq_topic
        }),
    };
    let speed = |side, records_read, since: Instant| ScanSpeed {
        mapping: mapping.label().to_string(),
        side,
        records_read,
        seconds: since.elapsed().as_secs_f64(),
    };

    // The copies first, as forward: duplicates' content is then checked
    // against the source as it streams by.
    let started = Instant::now();
    progress.phase(format!("Kafka {}", mapping.kafka_topic));
    let mut kafka = KafkaCopies::default();
    let partition_scans = tokio::task::block_in_place(|| {
        kafka_scan::scan(
            &config.kafka,
            &mapping.kafka_topic,
            since,
            progress,
            |record| {
                let Some(day) = record.timestamp.and_then(|(ms, _)| range.day_of(ms)) else {
                    return;
                };
                let classified = classifier.classify(record);
                kafka.add(record, day, classified, &queues, request.max_listed);
            },
        )
    })?;
    let mut speeds = vec![speed(
        "kafka",
        partition_scans.values().map(|p| p.read).sum(),
        started,
    )];

    let started = Instant::now();
    progress.phase(format!("RocketMQ {}", mapping.rocketmq_topic));
    let mut source: BTreeMap<NaiveDate, SourceDay> = BTreeMap::new();
    let mut altered_duplicates: BTreeMap<NaiveDate, Vec<Coordinates>> = BTreeMap::new();
    let queue_reads = scan_source(
        reader,
        &queues,
        &range,
        since,
        progress,
        |place, day, message| {
            let hash = carried_hash(message);
            let mapped = map_message(message, &rules)
                .map(drop)
                .map_err(|rejection| (rejection, mapping.policy_for(rejection)));
            let coordinates = || queues.coordinates(place, message.queue_offset);
            source.entry(day).or_default().add(
                place,
                message.queue_offset,
                hash,
                mapped,
                coordinates,
                request.max_listed,
            );
            let copies = kafka.duplicate_hashes.get(&(place, message.queue_offset));
            for (copy_hash, copy_day) in copies.into_iter().flatten() {
                if *copy_hash != hash || *copy_day != day {
                    altered_duplicates
                        .entry(*copy_day)
                        .or_default()
                        .push(coordinates());
                }
            }
        },
    )
    .await?;
    speeds.push(speed(
        "rocketmq",
        queue_reads.iter().map(|q| q.read).sum(),
        started,
    ));

    let mut retention: Vec<Retention> = queue_reads
        .iter()
        .enumerate()
        .map(|(place, read)| {
            let queue = queues.coordinates(place as i32, 0);
            Retention {
                truncated: read.truncated,
                first_timestamp: read.first_timestamp,
                what: format!(
                    "RocketMQ {} queue {} was truncated: older messages were deleted by retention",
                    queue.broker.unwrap_or_default(),
                    queue.partition
                ),
            }
        })
        .collect();
    retention.extend(partition_scans.iter().map(|(partition, scan)| Retention {
        truncated: scan.truncated,
        first_timestamp: scan.first_timestamp,
        what: format!(
            "Kafka partition {partition} starts at offset {}: older records were deleted by retention",
            scan.start
        ),
    }));
    // A day whose copies fall short is INCOMPLETE while the way back has
    // not committed past the day's last message of a queue.
    let committed = group_offsets(config, &queues).await?;
    let mut rows = judge(
        mapping,
        request,
        &source,
        &kafka.days,
        &altered_duplicates,
        &retention,
        &committed,
    );
    let wanted = blocks_to_locate(&rows, &source, &kafka.days, request.max_listed);
    if !wanted.is_empty() {
        progress.phase(format!("locating differences in {}", mapping.label()));
        let located = Locating {
            config,
            mapping,
            rules: &rules,
            classifier: &classifier,
            reader,
            request,
            wanted: &wanted,
            progress,
        }
        .locate()
        .await?;
        add_located(&mut rows, &located, request.max_listed);
    }
    Ok((rows, speeds))
}

/// The way back's consumer offsets (`rocketmq.consumer_group`) of the
/// source topic's queues, by place; read without joining the group. A
/// queue the group never committed has none.
async fn group_offsets(config: &BridgeConfig, queues: &Queues) -> Result<Committed, VerifyError> {
    let group = config.rocketmq.consumer_group.as_str();
    let offsets = with_admin(&config.rocketmq, METADATA_DEADLINE, async |admin| {
        let listed = admin.topic_queues(&queues.topic).await?;
        let offsets = admin.consumer_offsets(group, &listed).await?;
        Ok(listed
            .into_iter()
            .map(|(queue, _)| queue)
            .zip(offsets)
            .collect::<Vec<_>>())
    })
    .await
    .map_err(|e| VerifyError(format!("cannot read the way back's consumer offsets: {e}")))?;
    Ok(offsets
        .into_iter()
        .filter_map(|(queue, offset)| {
            let place = queues.place(queue.broker_name().as_str(), queue.queue_id())?;
            let lane = format!(
                "queue {}#{} (group `{group}`)",
                queue.broker_name(),
                queue.queue_id()
            );
            Some((place, (lane, offset)))
        })
        .collect())
}

/// Second pass: both sides again, only the wanted blocks.
struct Locating<'a> {
    config: &'a BridgeConfig,
    mapping: &'a MappingConfig,
    rules: &'a ReverseRules,
    classifier: &'a Classifier<'a>,
    reader: &'a TopicReader,
    request: &'a VerifyRequest,
    wanted: &'a BTreeSet<(NaiveDate, BlockId)>,
    progress: &'a Progress,
}

impl Locating<'_> {
    async fn locate(self) -> Result<BTreeMap<NaiveDate, Vec<Difference>>, VerifyError> {
        let range = self.request.days;
        let since = range.span().0 - self.request.slack.as_millis() as i64;
        let queues = self.classifier.queues;
        let in_wanted = |day: NaiveDate, place: i32, offset: i64| {
            self.wanted
                .contains(&(day, (place, offset / BLOCK_OFFSETS)))
        };
        let mut in_kafka: Located = BTreeMap::new();
        let mut highest: HashMap<(i32, i32), i64> = HashMap::new();
        tokio::task::block_in_place(|| {
            kafka_scan::scan(
                &self.config.kafka,
                &self.mapping.kafka_topic,
                since,
                self.progress,
                |record| {
                    let Some(day) = record.timestamp.and_then(|(ms, _)| range.day_of(ms)) else {
                        return;
                    };
                    let Classified::Copy(place, message) = self.classifier.classify(record) else {
                        return;
                    };
                    let seen = highest.entry((record.partition, place)).or_insert(-1);
                    let duplicate = message.queue_offset <= *seen;
                    *seen = (*seen).max(message.queue_offset);
                    if !duplicate && in_wanted(day, place, message.queue_offset) {
                        let key = (day, place, message.queue_offset);
                        in_kafka
                            .entry(key)
                            .or_default()
                            .push(carried_hash(&message));
                    }
                },
            )
        })?;
        let mut in_rocketmq: Located = BTreeMap::new();
        scan_source(
            self.reader,
            queues,
            &range,
            since,
            self.progress,
            |place, day, message| {
                if in_wanted(day, place, message.queue_offset)
                    && map_message(message, self.rules).is_ok()
                {
                    let key = (day, place, message.queue_offset);
                    in_rocketmq
                        .entry(key)
                        .or_default()
                        .push(carried_hash(message));
                }
            },
        )
        .await?;
        Ok(compare_located(&in_rocketmq, &in_kafka, |place, offset| {
            queues.coordinates(place, offset)
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message() -> RocketMqMessage {
        RocketMqMessage {
            topic: "src".into(),
            broker: "broker-a".into(),
            queue_id: 2,
            queue_offset: 7,
            msg_id: Some("ID".into()),
            keys: Some("k".into()),
            tags: Some("t".into()),
            born_timestamp_ms: 1_764_900_000_000,
            store_timestamp_ms: 1_764_900_000_005,
            body: b"body".to_vec().into(),
            properties: vec![("a".into(), "1".into()), ("ROCKETMQ_X".into(), "2".into())],
        }
    }

    #[test]
    fn a_copy_read_back_hashes_like_its_message() {
        let rules = ReverseRules {
            kafka_topic: "dst".into(),
            max_message_bytes: 1 << 20,
            forward_ids: crate::config::MessageIds::default(),
        };
        let original = message();
        let record = map_message(&original, &rules).expect("mappable");
        let copy = KafkaCopy {
            key: record.key.map(<[u8]>::to_vec),
            value: record.value.to_vec(),
            timestamp_ms: record.timestamp_ms,
            headers: record
                .headers
                .iter()
                .map(|(n, v)| (n.to_string(), Some(v.to_vec())))
                .collect(),
        };
        let back = unmap_record(&copy).expect("a copy");
        assert_eq!(carried_hash(&back), carried_hash(&original));
        let mut altered = original.clone();
        altered.properties[0].1 = "changed".into();
        assert_ne!(carried_hash(&altered), carried_hash(&original));
        let mut later = original.clone();
        later.store_timestamp_ms += 1;
        assert_eq!(
            carried_hash(&later),
            carried_hash(&original),
            "the store time is not content"
        );
    }
}
