//! The way back: one RocketMQ message becomes one Kafka record, for the
//! reverse copy (RocketMQ to Kafka). The rules are written out in
//! `docs/message-mapping.md`, "The way back"; [`unmap_record`] inverts them.
//!
//! It also tells copies from originals, in both directions, so that no
//! record crosses twice: a RocketMQ message that the bridge made from a
//! Kafka record is never copied back ([`Rejection::BridgeCopy`]), and a
//! Kafka record the bridge made from a RocketMQ message is never copied
//! forward ([`is_reverse_copy`]). Provenance that is partial, malformed or does not
//! check out is never taken for a copy in silence: it is a rejection, for
//! the mapping's policy.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::sync::Arc;

use bytes::Bytes;
use cheetah_string::CheetahString;
use sha2::{Digest, Sha256};

use super::{
    HeaderRef, KAFKA_OFFSET, KAFKA_PARTITION, KAFKA_TIMESTAMP, KAFKA_TOPIC, Rejection,
    SourceRecord, TimestampType,
};
use crate::checkpoint::PartitionId;
use crate::config::MessageIds;
use crate::message_id::deterministic_id;

/// Provenance of a reverse copy, as Kafka headers: where the message was.
pub const ROCKETMQ_TOPIC: &str = "ROCKETMQ_TOPIC";
pub const ROCKETMQ_BROKER: &str = "ROCKETMQ_BROKER";
pub const ROCKETMQ_QUEUE_ID: &str = "ROCKETMQ_QUEUE_ID";
pub const ROCKETMQ_QUEUE_OFFSET: &str = "ROCKETMQ_QUEUE_OFFSET";
/// The message's msgId (`UNIQ_KEY`), when it had one.
pub const ROCKETMQ_MSG_ID: &str = "ROCKETMQ_MSG_ID";
pub const ROCKETMQ_TAGS: &str = "ROCKETMQ_TAGS";
/// Milliseconds since the epoch, in decimal. The record's own timestamp is
/// the message's born (client) timestamp.
pub const ROCKETMQ_STORE_TIMESTAMP: &str = "ROCKETMQ_STORE_TIMESTAMP";
/// A check over the provenance and the target topic ([`copy_id`]): a record
/// whose provenance headers do not match it was not made by the bridge.
pub const ROCKETMQ_COPY_ID: &str = "ROCKETMQ_COPY_ID";
/// The bridge's own header namespace on the way back.
pub const RESERVED_PREFIX: &str = "ROCKETMQ_";
/// A user property whose name is in the bridge's namespace is carried with
/// this prefix added, so it can neither pass for provenance nor be lost.
pub const ESCAPED_PROPERTY_PREFIX: &str = "ROCKETMQ_PROPERTY_";

/// A RocketMQ message as the reverse copy reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RocketMqMessage {
    /// Shared with the other messages of its queue (and its lane's id).
    pub topic: Arc<str>,
    pub broker: Arc<str>,
    pub queue_id: i32,
    pub queue_offset: i64,
    /// `UNIQ_KEY`, what consumers call msgId.
    pub msg_id: Option<CheetahString>,
    pub keys: Option<CheetahString>,
    pub tags: Option<CheetahString>,
    pub born_timestamp_ms: i64,
    pub store_timestamp_ms: i64,
    /// Shared with the pulled message it was read from, as are the texts:
    /// reading a message allocates only its property list.
    pub body: Bytes,
    /// User properties (no system property), names unique, in any order.
    pub properties: Vec<(CheetahString, CheetahString)>,
}

/// A header as a record carries it: name and value, borrowed from the
/// message where they can be.
pub type OutgoingHeader<'a> = (Cow<'a, str>, Cow<'a, [u8]>);

/// A Kafka record ready to produce, without its topic and partition. It
/// borrows from the message it was mapped from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingRecord<'a> {
    pub key: Option<&'a [u8]>,
    pub value: &'a [u8],
    pub headers: Vec<OutgoingHeader<'a>>,
    /// The message's born timestamp, as the record's `CreateTime`.
    pub timestamp_ms: i64,
}

/// A record batch's header (format v2): 61 bytes.
const BATCH_OVERHEAD: usize = 61;
/// A record's own framing at most: length, attributes, timestamp and
/// offset deltas, key and value lengths, header count (varints).
const RECORD_OVERHEAD: usize = 36;
/// A header's name and value lengths at most (varints).
const HEADER_OVERHEAD: usize = 10;

impl OutgoingRecord<'_> {
    /// Bytes of key, value and headers.
    pub fn size(&self) -> usize {
        let headers: usize = self
            .headers
            .iter()
            .map(|(name, value)| name.len() + value.len())
            .sum();
        self.key.map_or(0, <[u8]>::len) + self.value.len() + headers
    }

    /// The size of a batch holding this record alone, uncompressed, at
    /// most: what a topic's `max.message.bytes` bounds.
    pub fn batch_size(&self) -> usize {
        self.size() + BATCH_OVERHEAD + RECORD_OVERHEAD + HEADER_OVERHEAD * self.headers.len()
    }
}

/// How a mapping turns messages into records.
#[derive(Debug, Clone)]
pub struct ReverseRules {
    /// The Kafka topic written to (part of [`copy_id`]).
    pub kafka_topic: String,
    /// The Kafka topic's `max.message.bytes`: a record whose batch alone
    /// would be larger is refused (`OutgoingRecord::batch_size`).
    pub max_message_bytes: usize,
    /// How the forward copy made its msgIds: deterministic ids prove a
    /// message is the bridge's copy; with client ids, provenance that
    /// parses is taken for a copy.
    pub forward_ids: MessageIds,
}

/// Maps one message, or says why it cannot be mapped.
pub fn map_message<'a>(
    message: &'a RocketMqMessage,
    rules: &ReverseRules,
) -> Result<OutgoingRecord<'a>, Rejection> {
    if is_forward_copy(message, rules.forward_ids)? {
        return Err(Rejection::BridgeCopy);
    }
    if message.body.is_empty() {
        return Err(Rejection::EmptyValue);
    }
    let record = OutgoingRecord {
        key: message.keys.as_deref().map(str::as_bytes),
        value: &message.body,
        headers: headers(message, &rules.kafka_topic),
        timestamp_ms: message.born_timestamp_ms,
    };
    let size = record.batch_size();
    if size > rules.max_message_bytes {
        return Err(Rejection::OversizedBody {
            size,
            limit: rules.max_message_bytes,
        });
    }
    Ok(record)
}

/// Provenance first, then tags and the store time, then the user properties
/// sorted by name (a message's properties are a map).
fn headers<'a>(message: &'a RocketMqMessage, kafka_topic: &str) -> Vec<OutgoingHeader<'a>> {
    let text =
        |name: &'static str, value: String| (Cow::Borrowed(name), Cow::Owned(value.into_bytes()));
    let borrowed =
        |name: &'static str, value: &'a str| (Cow::Borrowed(name), Cow::Borrowed(value.as_bytes()));
    // The provenance (at most 8 headers) and the properties: no regrowth.
    let mut headers = Vec::with_capacity(8 + message.properties.len());
    headers.extend([
        borrowed(ROCKETMQ_TOPIC, &message.topic),
        borrowed(ROCKETMQ_BROKER, &message.broker),
        text(ROCKETMQ_QUEUE_ID, message.queue_id.to_string()),
        text(ROCKETMQ_QUEUE_OFFSET, message.queue_offset.to_string()),
    ]);
    if let Some(id) = &message.msg_id {
        headers.push(borrowed(ROCKETMQ_MSG_ID, id));
    }
    headers.push(text(ROCKETMQ_COPY_ID, copy_id(message, kafka_topic)));
    if let Some(tags) = &message.tags {
        headers.push(borrowed(ROCKETMQ_TAGS, tags));
    }
    headers.push(text(
        ROCKETMQ_STORE_TIMESTAMP,
        message.store_timestamp_ms.to_string(),
    ));
    let mut properties: Vec<(&'a str, &'a str)> = message
        .properties
        .iter()
        .map(|(name, value)| (name.as_str(), value.as_str()))
        .collect();
    // Names are unique: sorting by name orders them fully.
    properties.sort_unstable_by_key(|(name, _)| *name);
    for (name, value) in properties {
        let name: Cow<'a, str> = if name.starts_with(RESERVED_PREFIX) {
            Cow::Owned(format!("{ESCAPED_PROPERTY_PREFIX}{name}"))
        } else {
            Cow::Borrowed(name)
        };
        headers.push((name, Cow::Borrowed(value.as_bytes())));
    }
    headers
}

/// `message` as a Kafka record for a dead-letter topic: the reverse copy's
/// key, value, timestamp and headers, but no `ROCKETMQ_COPY_ID`, so a dead
/// letter never passes for a copy. Its coordinates are the message's topic,
/// queue id and queue offset (the broker is in `ROCKETMQ_BROKER`).
pub fn as_dead_letter(message: &RocketMqMessage) -> SourceRecord {
    let headers = headers(message, "");
    let kept = headers
        .iter()
        .filter(|(name, _)| name != ROCKETMQ_COPY_ID)
        .map(|(name, value)| (name.as_ref(), Some(value.as_ref())));
    SourceRecord::new(
        &*message.topic,
        message.queue_id,
        message.queue_offset,
        Some((message.born_timestamp_ms, TimestampType::CreateTime)),
        message.keys.as_ref().map(|keys| keys.as_bytes()),
        Some(&message.body),
        kept,
    )
}

/// The check a reverse copy carries: 32 hex digits of SHA-256 over the
/// message's coordinates and the Kafka topic it is copied to.
pub fn copy_id(message: &RocketMqMessage, kafka_topic: &str) -> String {
    copy_id_of(
        &message.topic,
        &message.broker,
        message.queue_id,
        message.queue_offset,
        kafka_topic,
    )
}

fn copy_id_of(topic: &str, broker: &str, queue_id: i32, offset: i64, kafka_topic: &str) -> String {
    let mut hasher = Sha256::new();
    // Written straight into the hash: no text is built per message.
    let written = write!(
        Hashing(&mut hasher),
        "{topic}\n{broker}\n{queue_id}\n{offset}\n{kafka_topic}"
    );
    debug_assert!(written.is_ok(), "a hasher takes every byte");
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut id = String::with_capacity(32);
    for byte in &hasher.finalize()[..16] {
        id.push(char::from(HEX[usize::from(byte >> 4)]));
        id.push(char::from(HEX[usize::from(byte & 0xF)]));
    }
    id
}

/// Text written into a hash.
struct Hashing<'a>(&'a mut Sha256);

impl std::fmt::Write for Hashing<'_> {
    fn write_str(&mut self, text: &str) -> std::fmt::Result {
        self.0.update(text.as_bytes());
        Ok(())
    }
}

/// Whether the bridge made `message` from a Kafka record. Provenance that
/// is partial, malformed, or not matched by the msgId the forward copy
/// gives that record (with deterministic ids) is a rejection.
fn is_forward_copy(message: &RocketMqMessage, ids: MessageIds) -> Result<bool, Rejection> {
    let property = |name: &str| {
        message
            .properties
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    };
    let suspect = |reason| Err(Rejection::SuspectProvenance { reason });
    let found = [KAFKA_TOPIC, KAFKA_PARTITION, KAFKA_OFFSET].map(property);
    let [topic, partition, offset] = match found {
        [None, None, None] => return Ok(false),
        [Some(topic), Some(partition), Some(offset)] => [topic, partition, offset],
        _ => return suspect("KAFKA_TOPIC, KAFKA_PARTITION and KAFKA_OFFSET are not all set"),
    };
    let (Ok(partition), Ok(offset)) = (partition.parse::<i32>(), offset.parse::<i64>()) else {
        return suspect("KAFKA_PARTITION or KAFKA_OFFSET is not a number");
    };
    let timestamp = match property(KAFKA_TIMESTAMP).map(str::parse::<i64>) {
        None => None,
        Some(Ok(ms)) => Some(ms),
        Some(Err(_)) => return suspect("KAFKA_TIMESTAMP is not a number"),
    };
    if topic.is_empty() || partition < 0 || offset < 0 {
        return suspect("the Kafka coordinates are out of range");
    }
    if ids == MessageIds::Client {
        return Ok(true);
    }
    let expected = deterministic_id(&message.topic, topic, partition, offset, timestamp);
    if message.msg_id.as_deref() == Some(expected.as_str()) {
        Ok(true)
    } else {
        suspect("its msgId is not the one the bridge gives that record")
    }
}

/// Whether a Kafka record in `kafka_topic` with these headers is a copy the
/// bridge made from RocketMQ: never copied forward. Headers in the
/// bridge's namespace that do not add up to a checked copy are a rejection.
pub fn is_reverse_copy<'h>(
    kafka_topic: &str,
    headers: impl Iterator<Item = HeaderRef<'h>> + Clone,
) -> Result<bool, Rejection> {
    let header = |name: &str| {
        headers
            .clone()
            .find(|(n, _)| *n == name)
            .and_then(|(_, v)| v)
            .and_then(|v| std::str::from_utf8(v).ok())
    };
    let suspect = |reason| Err(Rejection::SuspectProvenance { reason });
    let names = [
        ROCKETMQ_TOPIC,
        ROCKETMQ_BROKER,
        ROCKETMQ_QUEUE_ID,
        ROCKETMQ_QUEUE_OFFSET,
        ROCKETMQ_COPY_ID,
    ];
    let found = names.map(header);
    if found.iter().all(Option::is_none) {
        return Ok(false);
    }
    let [
        Some(topic),
        Some(broker),
        Some(queue_id),
        Some(offset),
        Some(check),
    ] = found
    else {
        return suspect("the ROCKETMQ_ provenance headers are not all set");
    };
    let (Ok(queue_id), Ok(offset)) = (queue_id.parse::<i32>(), offset.parse::<i64>()) else {
        return suspect("ROCKETMQ_QUEUE_ID or ROCKETMQ_QUEUE_OFFSET is not a number");
    };
    if copy_id_of(topic, broker, queue_id, offset, kafka_topic) == check {
        Ok(true)
    } else {
        suspect("ROCKETMQ_COPY_ID does not match the provenance")
    }
}

/// The RocketMQ queue and queue offset a copy was made from, read from its
/// headers as a Kafka consumer hands them over; `None` for a record
/// without (or with unreadable) provenance. It does not check the copy id:
/// the read-backs that use it only look for coordinates they sent.
pub fn provenance<'h>(
    headers: impl IntoIterator<Item = (&'h str, Option<&'h [u8]>)>,
) -> Option<(PartitionId, i64)> {
    let (mut topic, mut broker, mut queue_id, mut offset) = (None, None, None, None);
    for (name, value) in headers {
        let text = || value.and_then(|v| std::str::from_utf8(v).ok());
        match name {
            ROCKETMQ_TOPIC => topic = text(),
            ROCKETMQ_BROKER => broker = text(),
            ROCKETMQ_QUEUE_ID => queue_id = text().and_then(|v| v.parse::<i32>().ok()),
            ROCKETMQ_QUEUE_OFFSET => offset = text().and_then(|v| v.parse::<i64>().ok()),
            _ => {}
        }
    }
    Some((PartitionId::queue(topic?, broker?, queue_id?), offset?))
}

/// A reverse copy could not be read back as a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a reverse copy: {0}")]
pub struct UnmapRecordError(pub String);

/// A Kafka record as read back: key, value, timestamp and headers in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KafkaCopy {
    pub key: Option<Vec<u8>>,
    pub value: Vec<u8>,
    pub timestamp_ms: i64,
    pub headers: Vec<(String, Option<Vec<u8>>)>,
}

/// The message a reverse copy was made from: the inverse of [`map_message`].
pub fn unmap_record(record: &KafkaCopy) -> Result<RocketMqMessage, UnmapRecordError> {
    let missing = |name: &str| UnmapRecordError(format!("no {name} header"));
    let mut message = RocketMqMessage {
        topic: "".into(),
        broker: "".into(),
        queue_id: -1,
        queue_offset: -1,
        msg_id: None,
        keys: None,
        tags: None,
        born_timestamp_ms: record.timestamp_ms,
        store_timestamp_ms: -1,
        body: Bytes::from(record.value.clone()),
        properties: Vec::new(),
    };
    if let Some(key) = &record.key {
        let keys = String::from_utf8(key.clone())
            .map_err(|_| UnmapRecordError("the key is not UTF-8".to_string()))?;
        message.keys = Some(keys.into());
    }
    for (name, value) in &record.headers {
        let value = value
            .as_deref()
            .map(|v| String::from_utf8(v.to_vec()))
            .transpose()
            .map_err(|_| UnmapRecordError(format!("header {name} is not UTF-8")))?
            .ok_or_else(|| UnmapRecordError(format!("header {name} is null")))?;
        let number = |v: &str| {
            v.parse::<i64>()
                .map_err(|_| UnmapRecordError(format!("header {name} is not a number")))
        };
        match name.as_str() {
            ROCKETMQ_TOPIC => message.topic = value.into(),
            ROCKETMQ_BROKER => message.broker = value.into(),
            ROCKETMQ_QUEUE_ID => {
                message.queue_id = i32::try_from(number(&value)?)
                    .map_err(|_| UnmapRecordError("ROCKETMQ_QUEUE_ID is out of range".into()))?;
            }
            ROCKETMQ_QUEUE_OFFSET => message.queue_offset = number(&value)?,
            ROCKETMQ_MSG_ID => message.msg_id = Some(value.into()),
            ROCKETMQ_TAGS => message.tags = Some(value.into()),
            ROCKETMQ_STORE_TIMESTAMP => message.store_timestamp_ms = number(&value)?,
            ROCKETMQ_COPY_ID => {}
            _ => {
                let name = name
                    .strip_prefix(ESCAPED_PROPERTY_PREFIX)
                    .unwrap_or(name)
                    .to_string();
                message.properties.push((name.into(), value.into()));
            }
        }
    }
    if message.topic.is_empty() {
        return Err(missing(ROCKETMQ_TOPIC));
    }
    if message.queue_id < 0 || message.queue_offset < 0 {
        return Err(missing("ROCKETMQ_QUEUE_ID or ROCKETMQ_QUEUE_OFFSET"));
    }
    Ok(message)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Owned headers as `is_reverse_copy` reads them.
    fn refs(headers: &[(String, Option<Vec<u8>>)]) -> impl Iterator<Item = HeaderRef<'_>> + Clone {
        headers.iter().map(|(n, v)| (n.as_str(), v.as_deref()))
    }

    /// The id is SHA-256 over the documented text, so any reader can check
    /// it: pinned to a value computed outside Rust (Python's hashlib).
    #[test]
    fn the_copy_id_is_the_documented_hash() {
        assert_eq!(
            copy_id(&message(), "orders.back"),
            "773FA486474E89B1674C0E129FE06193"
        );
    }

    fn message() -> RocketMqMessage {
        RocketMqMessage {
            topic: "orders".into(),
            broker: "broker-a".into(),
            queue_id: 3,
            queue_offset: 42,
            msg_id: Some("7F0000010001".into()),
            keys: Some("order-9 customer-2".into()),
            tags: Some("eu".into()),
            born_timestamp_ms: 1_764_900_000_000,
            store_timestamp_ms: 1_764_900_000_123,
            body: b"{\"total\":12}".to_vec().into(),
            properties: vec![
                ("zone".into(), "eu-west".into()),
                ("ROCKETMQ_TOPIC".into(), "set by a producer".into()),
                ("channel".into(), "web".into()),
            ],
        }
    }

    fn rules(max_message_bytes: usize) -> ReverseRules {
        ReverseRules {
            kafka_topic: "orders-back".into(),
            max_message_bytes,
            forward_ids: MessageIds::Deterministic,
        }
    }

    fn copy<'a>(message: &'a RocketMqMessage, rules: &ReverseRules) -> OutgoingRecord<'a> {
        match map_message(message, rules) {
            Ok(record) => record,
            Err(rejection) => panic!("a plain message is copied, not rejected: {rejection}"),
        }
    }

    fn as_read_back(record: &OutgoingRecord) -> KafkaCopy {
        KafkaCopy {
            key: record.key.map(<[u8]>::to_vec),
            value: record.value.to_vec(),
            timestamp_ms: record.timestamp_ms,
            headers: record
                .headers
                .iter()
                .map(|(n, v)| (n.to_string(), Some(v.to_vec())))
                .collect(),
        }
    }

    #[test]
    fn a_message_round_trips_through_its_copy() {
        let original = message();
        let rules = rules(1 << 20);
        let record = copy(&original, &rules);
        assert_eq!(record.value, &original.body[..]);
        assert_eq!(record.key, Some(&b"order-9 customer-2"[..]));
        assert_eq!(record.timestamp_ms, original.born_timestamp_ms);
        let names: Vec<&str> = record.headers.iter().map(|(n, _)| n.as_ref()).collect();
        assert_eq!(
            names,
            [
                ROCKETMQ_TOPIC,
                ROCKETMQ_BROKER,
                ROCKETMQ_QUEUE_ID,
                ROCKETMQ_QUEUE_OFFSET,
                ROCKETMQ_MSG_ID,
                ROCKETMQ_COPY_ID,
                ROCKETMQ_TAGS,
                ROCKETMQ_STORE_TIMESTAMP,
                "ROCKETMQ_PROPERTY_ROCKETMQ_TOPIC",
                "channel",
                "zone",
            ]
        );
        let read = as_read_back(&record);
        let headers = read.headers.iter().map(|(n, v)| (n.as_str(), v.as_deref()));
        assert_eq!(
            provenance(headers),
            Some((PartitionId::queue("orders", "broker-a", 3), 42))
        );
        assert_eq!(provenance([("zone", Some(&b"eu"[..]))]), None);
        let mut back = unmap_record(&read).expect("a reverse copy");
        let mut expected = original.clone();
        back.properties.sort();
        expected.properties.sort();
        assert_eq!(back, expected);
    }

    #[test]
    fn a_copy_is_recognised_going_forward_and_a_forged_one_is_not() {
        let original = message();
        let rules = rules(1 << 20);
        let read = as_read_back(&copy(&original, &rules));
        assert_eq!(
            is_reverse_copy("orders-back", refs(&read.headers)),
            Ok(true)
        );
        // The same headers in another topic were not written there by the bridge.
        assert!(is_reverse_copy("elsewhere", refs(&read.headers)).is_err());
        let mut forged = read.headers.clone();
        for (name, value) in &mut forged {
            if name == ROCKETMQ_QUEUE_OFFSET {
                *value = Some(b"43".to_vec());
            }
        }
        let rejection = is_reverse_copy("orders-back", refs(&forged)).unwrap_err();
        assert_eq!(rejection.reason(), "suspect_provenance");
        let partial = vec![(ROCKETMQ_TOPIC.to_string(), Some(b"orders".to_vec()))];
        assert!(is_reverse_copy("orders-back", refs(&partial)).is_err());
        let plain = vec![("zone".to_string(), Some(b"eu".to_vec()))];
        assert_eq!(is_reverse_copy("orders-back", refs(&plain)), Ok(false));
    }

    #[test]
    fn a_forward_copy_is_never_copied_back_and_forged_provenance_is_refused() {
        let mut forward = message();
        forward.properties = vec![
            (KAFKA_TOPIC.into(), "orders".into()),
            (KAFKA_PARTITION.into(), "2".into()),
            (KAFKA_OFFSET.into(), "17".into()),
            (KAFKA_TIMESTAMP.into(), "1764900000000".into()),
        ];
        forward.msg_id =
            Some(deterministic_id(&forward.topic, "orders", 2, 17, Some(1_764_900_000_000)).into());
        let rules = rules(1 << 20);
        assert_eq!(map_message(&forward, &rules), Err(Rejection::BridgeCopy));

        let mut forged = forward.clone();
        forged.msg_id = Some("0A0B0C".into());
        let rejection = map_message(&forged, &rules).unwrap_err();
        assert_eq!(rejection.reason(), "suspect_provenance");
        assert!(rejection.to_string().contains("msgId"), "{rejection}");
        let client_ids = ReverseRules {
            forward_ids: MessageIds::Client,
            ..rules.clone()
        };
        assert_eq!(
            map_message(&forged, &client_ids),
            Err(Rejection::BridgeCopy)
        );

        let mut malformed = forward.clone();
        malformed.properties[1].1 = "two".into();
        assert!(map_message(&malformed, &client_ids).is_err());
        let mut partial = forward;
        partial.properties.remove(2);
        assert!(map_message(&partial, &client_ids).is_err());
    }

    #[test]
    fn empty_and_oversized_messages_are_rejections() {
        let mut empty = message();
        empty.body.clear();
        assert_eq!(
            map_message(&empty, &rules(1 << 20)),
            Err(Rejection::EmptyValue)
        );
        let original = message();
        let size = copy(&original, &rules(1 << 20)).batch_size();
        assert_eq!(
            map_message(&original, &rules(size - 1)),
            Err(Rejection::OversizedBody {
                size,
                limit: size - 1
            })
        );
        assert!(map_message(&original, &rules(size)).is_ok());
    }
}
