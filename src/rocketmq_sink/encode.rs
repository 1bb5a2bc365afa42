//! Encoding a mapped record for RocketMQ, once, at the hand-over: each
//! record becomes its entry of a batch body (the layout of Java's
//! `MessageDecoder.encodeMessage`) with its own msgId, and a batch is those
//! entries back to back under a wrapper. A retried batch is not encoded again.

use bytes::{BufMut, Bytes};
use cheetah_string::CheetahString;
use rocketmq_model::common::message::message_batch::MessageBatch;
use rocketmq_model::common::message::message_single::Message;
use rocketmq_model::common::message::{MessageConst, MessageTrait};

use crate::checkpoint::PartitionId;
use crate::mapping::OutgoingMessage;
use crate::message_id::UNIQ_KEY;
use crate::sink::{Entry, Record};

/// A record's entry of a RocketMQ batch body ([`encode_batch_entry`]'s
/// output), with its UNIQ_KEY fixed at encoding, so every retry carries the
/// same id: one allocation per record.
#[derive(Debug)]
pub struct BatchEntry(Box<[u8]>);

impl Entry for BatchEntry {
    fn size(&self) -> usize {
        self.0.len()
    }

    /// The entry with the allocator's overhead, and its copy in the batch
    /// body while that is sent.
    fn footprint(&self) -> usize {
        const PER_ALLOCATION: usize = 16;
        PER_ALLOCATION + 2 * self.0.len()
    }
}

/// A mapped record on its way to one RocketMQ queue.
pub type Envelope = Record<BatchEntry>;

impl Record<BatchEntry> {
    pub fn new(
        partition: PartitionId,
        offset: i64,
        message: &OutgoingMessage,
        message_id: &str,
        timestamp_ms: Option<i64>,
    ) -> Self {
        Record {
            partition,
            offset,
            timestamp_ms,
            entry: BatchEntry(encode_batch_entry(message, message_id)),
        }
    }
}

/// Builds the batch the way `send_batch_to_queue` would, except for ids:
/// each message carries its own UNIQ_KEY and the wrapper none. Brokers that
/// copy the wrapper's properties onto every message (all before the fix for
/// apache/rocketmq#9416, and rocketmq-rust 1.0.0) would otherwise give the
/// whole batch one id. The client adds no id to a batch it is handed.
///
/// The body is the records' encoded entries back to back, with no client
/// `Message` per record: those cost a property map and a dozen allocations
/// each, on every send attempt. The client reads only the wrapper to send;
/// its list of messages would serve only to join their ids into the send
/// result, which the bridge does not use.
pub fn build_batch<'a>(
    topic: &str,
    batch: impl IntoIterator<Item = &'a Envelope>,
) -> Result<MessageBatch, String> {
    let entries: Vec<&[u8]> = batch.into_iter().map(|e| &*e.entry.0).collect();
    if entries.is_empty() {
        return Err("cannot build an empty batch".to_string());
    }
    let body = Bytes::from(entries.concat());
    let mut wrapper = Message::default();
    wrapper.set_topic(CheetahString::from(topic));
    wrapper.set_wait_store_msg_ok(true);
    wrapper.set_body(Some(body));
    Ok(MessageBatch {
        final_message: wrapper,
        messages: Vec::new(),
    })
}

/// Separators of RocketMQ's property string: `name\x01value\x02...`.
const NAME_VALUE_SEPARATOR: u8 = 1;
const PROPERTY_SEPARATOR: u8 = 2;

/// One message in the layout of RocketMQ's batch body (Java's
/// `MessageDecoder.encodeMessage`): total size, magic code and body CRC
/// (both 0; the broker fills them), flag, body length and body, properties
/// length (16 bits) and properties. The properties are those [`to_message`]
/// would set, with `message_id` as UNIQ_KEY. The mapping keeps them under
/// 32 KiB, so the length fits.
fn encode_batch_entry(outgoing: &OutgoingMessage, message_id: &str) -> Box<[u8]> {
    const HEADER: usize = 4 + 4 + 4 + 4 + 4 + 2;
    let named = |name: &str, value: &str| name.len() + value.len() + 2;
    let properties_len = outgoing.properties_size()
        + named(MessageConst::PROPERTY_WAIT_STORE_MSG_OK, "true")
        + named(UNIQ_KEY, message_id);
    let body = outgoing.body;
    let total = HEADER + body.len() + properties_len;
    let mut out = Vec::with_capacity(total);
    out.put_i32(total as i32);
    out.put_i32(0);
    out.put_i32(0);
    out.put_i32(0);
    out.put_i32(body.len() as i32);
    out.put_slice(body);
    out.put_i16(properties_len as i16);
    let mut property = |name: &str, value: &str| {
        out.put_slice(name.as_bytes());
        out.put_u8(NAME_VALUE_SEPARATOR);
        out.put_slice(value.as_bytes());
        out.put_u8(PROPERTY_SEPARATOR);
    };
    if let Some(keys) = &outgoing.keys {
        property(MessageConst::PROPERTY_KEYS, keys);
    }
    if let Some(tag) = &outgoing.tag {
        property(MessageConst::PROPERTY_TAGS, tag);
    }
    property(MessageConst::PROPERTY_WAIT_STORE_MSG_OK, "true");
    for (name, value) in &outgoing.properties {
        property(name, value);
    }
    property(UNIQ_KEY, message_id);
    debug_assert_eq!(out.len(), total);
    out.into_boxed_slice()
}

/// Builds the RocketMQ message. Properties go into the map directly: the
/// mapping already escaped every name the client would refuse.
pub fn to_message(topic: &str, outgoing: &OutgoingMessage) -> Message {
    let mut builder = Message::builder()
        .topic(topic)
        .body(Bytes::copy_from_slice(outgoing.body));
    if let Some(keys) = &outgoing.keys {
        builder = builder.key(keys.as_ref());
    }
    if let Some(tag) = &outgoing.tag {
        builder = builder.tags(tag.as_ref());
    }
    // Building only fails without a topic, and the topic is always set.
    let mut message = builder.build_unchecked();
    let map = message.properties_mut().as_map_mut();
    for (name, value) in &outgoing.properties {
        map.insert(
            CheetahString::from(name.as_ref()),
            CheetahString::from(value.as_ref()),
        );
    }
    message
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use rocketmq_protocol::common::message::message_decoder::{decode_messages, encode_messages};

    use super::*;

    /// A message with `body`, as mapped from the record at `offset`.
    fn outgoing<'a>(
        body: &'a str,
        offset: i64,
        keys: Option<&'a str>,
        tag: Option<&'a str>,
    ) -> OutgoingMessage<'a> {
        OutgoingMessage {
            body: body.as_bytes(),
            keys: keys.map(Into::into),
            tag: tag.map(Into::into),
            properties: vec![
                ("KAFKA_OFFSET".into(), offset.to_string().into()),
                ("h\u{e9}ader".into(), "v\u{e4}lue".into()),
            ],
        }
    }

    fn id(offset: i64) -> String {
        format!("{offset:032X}")
    }

    fn properties(message: &Message) -> HashMap<String, String> {
        message
            .properties()
            .as_map()
            .iter()
            .map(|(name, value)| (name.to_string(), value.to_string()))
            .collect()
    }

    /// The direct encoding decodes, with the client's own decoder, to what
    /// the client would have encoded from `to_message` plus the id, in order.
    #[test]
    fn batch_body_decodes_to_the_client_messages() {
        let messages = [
            (
                7,
                outgoing("value of record 7", 7, Some("k1 k2"), Some("tag")),
            ),
            (8, outgoing("value of record 8", 8, None, None)),
            (9, outgoing("value of record 9", 9, Some("k"), None)),
        ];
        let envelopes: Vec<Envelope> = messages
            .iter()
            .map(|(offset, m)| {
                Envelope::new(
                    PartitionId::new("orders", 3),
                    *offset,
                    m,
                    &id(*offset),
                    None,
                )
            })
            .collect();
        let batch = build_batch("target", envelopes.iter()).expect("batch");
        assert_eq!(batch.final_message.topic().as_str(), "target");
        assert!(
            batch
                .final_message
                .properties()
                .as_map()
                .get(UNIQ_KEY)
                .is_none()
        );
        let mut body = batch.final_message.get_body().expect("body").clone();
        let expected: Vec<Message> = messages
            .iter()
            .map(|(offset, m)| {
                let mut message = to_message("target", m);
                message.properties_mut().as_map_mut().insert(
                    CheetahString::from_static_str(UNIQ_KEY),
                    CheetahString::from(id(*offset)),
                );
                message
            })
            .collect();
        assert_eq!(body.len(), encode_messages(&expected).len());
        assert_eq!(
            body.len(),
            envelopes.iter().map(Envelope::size).sum::<usize>()
        );
        let decoded = decode_messages(&mut body);
        assert_eq!(decoded.len(), expected.len());
        for (got, want) in decoded.iter().zip(&expected) {
            assert_eq!(got.get_body(), want.get_body());
            assert_eq!(properties(got), properties(want));
            assert_eq!(got.flag(), want.flag());
        }
    }

    #[test]
    fn empty_batch_is_refused() {
        assert!(build_batch("target", std::iter::empty()).is_err());
    }
}
