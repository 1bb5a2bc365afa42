//! Record mapping: one Kafka record becomes one RocketMQ message, and back.
//!
//! The rules are written out in `docs/message-mapping.md`; this module is
//! their only implementation. Mapping is reversible: [`unmap`] recovers the
//! key, value, headers and coordinates from what RocketMQ stores, which is
//! what `verify` and the tests rely on. Records RocketMQ cannot take come
//! back as a [`Rejection`] for the mapping's policy to handle. The way
//! back (RocketMQ to Kafka) is in [`reverse`].

use std::borrow::Cow;
use std::collections::HashSet;
use std::sync::LazyLock;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

mod record;
pub mod reverse;

pub use record::{HeaderRef, Headers, RecordParts, SourceRecord};

/// Provenance: the Kafka topic the record came from.
pub const KAFKA_TOPIC: &str = "KAFKA_TOPIC";
pub const KAFKA_PARTITION: &str = "KAFKA_PARTITION";
pub const KAFKA_OFFSET: &str = "KAFKA_OFFSET";
/// Record timestamp in milliseconds since the epoch; absent when Kafka had none.
pub const KAFKA_TIMESTAMP: &str = "KAFKA_TIMESTAMP";
/// `CreateTime` or `LogAppendTime`.
pub const KAFKA_TIMESTAMP_TYPE: &str = "KAFKA_TIMESTAMP_TYPE";
/// The key, as `b64:` + base64, when `KEYS` cannot carry it verbatim. The
/// prefix keeps the value non-empty for an empty key: RocketMQ drops
/// properties with empty values.
pub const KAFKA_KEY_B64: &str = "KAFKA_KEY_B64";
const B64_PREFIX: &str = "b64:";
/// Set to `percent` when `KEYS` holds a key with spaces, percent-encoded.
pub const KAFKA_KEY_ESCAPED: &str = "KAFKA_KEY_ESCAPED";
/// Headers that cannot be user properties, as an ordered list (see [`encode_header_list`]).
pub const KAFKA_HEADERS_B64: &str = "KAFKA_HEADERS_B64";
/// Prefix reserved for the bridge's own properties; a Kafka header using it is escaped.
pub const RESERVED_PREFIX: &str = "KAFKA_";

/// RocketMQ's limit on all properties of one message, serialized.
pub const MAX_PROPERTIES_BYTES: usize = 32_767;
/// Room kept for properties the client and broker add (UNIQ_KEY, WAIT, ...).
pub const SYSTEM_PROPERTIES_HEADROOM: usize = 512;

/// Kafka's timestamp kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimestampType {
    CreateTime,
    LogAppendTime,
}

/// How a mapping turns records into messages.
#[derive(Debug, Clone)]
pub struct MappingRules {
    pub tag: Option<String>,
    pub tag_header: Option<String>,
    pub max_message_size: usize,
    /// Records the bridge copied from RocketMQ (the way back) are not
    /// copied forward again, and forged provenance is a rejection.
    pub loop_prevention: bool,
}

impl MappingRules {
    /// The rules `mapping` copies by, under the cluster-wide `rocketmq` settings.
    pub fn of(
        mapping: &crate::config::MappingConfig,
        rocketmq: &crate::config::RocketMqConfig,
    ) -> Self {
        MappingRules {
            tag: mapping.tag.clone(),
            tag_header: mapping.tag_header.clone(),
            max_message_size: rocketmq.max_message_size.0 as usize,
            loop_prevention: mapping.loop_prevention,
        }
    }
}

/// A user property: name and value, borrowed from the record where they
/// can be (this is built for every record copied).
pub type Property<'a> = (Cow<'a, str>, Cow<'a, str>);

/// A RocketMQ message ready to send, without its topic and queue. It
/// borrows from the record it was mapped from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingMessage<'a> {
    pub body: &'a [u8],
    pub keys: Option<Cow<'a, str>>,
    pub tag: Option<Cow<'a, str>>,
    /// User properties, provenance included.
    pub properties: Vec<Property<'a>>,
}

impl OutgoingMessage<'_> {
    /// Bytes this message takes in a batch: body plus serialized properties.
    pub fn size(&self) -> usize {
        self.body.len() + properties_size(self)
    }

    /// Bytes the properties the mapping set (`KEYS`, `TAGS` and the user
    /// properties) take serialized, `name\u{1}value\u{2}` each.
    pub fn properties_size(&self) -> usize {
        properties_size(self)
    }

    /// What a consumer reads back once RocketMQ stored this message:
    /// `KEYS` and the user properties as sent.
    pub fn as_stored(&self) -> StoredMessage<'_> {
        StoredMessage {
            body: self.body,
            keys: self.keys.as_deref(),
            properties: self
                .properties
                .iter()
                .map(|(name, value)| (name.as_ref(), value.as_ref()))
                .collect(),
        }
    }
}

/// Why a record cannot be copied as it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    /// Null or empty value: RocketMQ has no empty messages.
    EmptyValue,
    OversizedBody {
        size: usize,
        limit: usize,
    },
    OversizedProperties {
        size: usize,
        limit: usize,
    },
    /// Provenance (Kafka properties forward, `ROCKETMQ_` headers back) that
    /// is partial, malformed or does not check out: a producer set it, and
    /// it is not taken for a bridge copy.
    SuspectProvenance {
        reason: &'static str,
    },
    /// The bridge made this record from the other system: copying it back
    /// would make a loop. Always skipped.
    BridgeCopy,
}

impl Rejection {
    /// Every [`Rejection::reason`].
    pub const REASONS: [&str; 5] = [
        "empty_value",
        "oversized_body",
        "oversized_properties",
        "suspect_provenance",
        "bridge_copy",
    ];

    /// Stable label for logs, metrics and dead-letter headers.
    pub fn reason(&self) -> &'static str {
        match self {
            Rejection::EmptyValue => "empty_value",
            Rejection::OversizedBody { .. } => "oversized_body",
            Rejection::OversizedProperties { .. } => "oversized_properties",
            Rejection::SuspectProvenance { .. } => "suspect_provenance",
            Rejection::BridgeCopy => "bridge_copy",
        }
    }
}

impl std::fmt::Display for Rejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Rejection::EmptyValue => {
                f.write_str("the value or body is null or empty (RocketMQ's producers refuse an empty message; the bridge copies none in either direction)")
            }
            Rejection::OversizedBody { size, limit } => {
                write!(
                    f,
                    "the message is {size} bytes, over the target's limit of {limit} bytes \
                     (rocketmq.max_message_size, or the Kafka topic's max.message.bytes on the way back)"
                )
            }
            Rejection::OversizedProperties { size, limit } => {
                write!(
                    f,
                    "the properties take {size} bytes, over RocketMQ's limit of {limit} bytes"
                )
            }
            Rejection::SuspectProvenance { reason } => write!(
                f,
                "it carries provenance that the bridge did not write ({reason}); it is not taken for a copy"
            ),
            Rejection::BridgeCopy => {
                f.write_str("the bridge copied it from the other system; it is never copied back")
            }
        }
    }
}

/// Maps one record, or says why it cannot be mapped.
pub fn map_record<'a>(
    record: &'a SourceRecord,
    rules: &MappingRules,
) -> Result<OutgoingMessage<'a>, Rejection> {
    if rules.loop_prevention && reverse::is_reverse_copy(&record.topic, record.headers())? {
        return Err(Rejection::BridgeCopy);
    }
    let body = match record.value() {
        Some(value) if !value.is_empty() => value,
        _ => return Err(Rejection::EmptyValue),
    };
    let mut properties = provenance(record);
    let keys = match record.key() {
        None => None,
        Some(key) => match carriable_text(key) {
            // RocketMQ's key index splits KEYS on spaces; encoded, the key
            // stays one token that a key query finds whole.
            Some(text) if text.contains(' ') => {
                properties.push((KAFKA_KEY_ESCAPED.into(), "percent".into()));
                Some(text.replace('%', "%25").replace(' ', "%20").into())
            }
            Some(text) => Some(text.into()),
            None => {
                properties.push((
                    KAFKA_KEY_B64.into(),
                    format!("{B64_PREFIX}{}", BASE64.encode(key)).into(),
                ));
                None
            }
        },
    };
    let escaped = carry_headers(record.headers(), &mut properties);
    if !escaped.is_empty() {
        properties.push((
            KAFKA_HEADERS_B64.into(),
            BASE64.encode(encode_header_list(escaped)).into(),
        ));
    }
    let tag = tag_for(record, rules);
    let message = OutgoingMessage {
        body,
        keys,
        tag,
        properties,
    };
    let props = properties_size(&message) + SYSTEM_PROPERTIES_HEADROOM;
    if props > MAX_PROPERTIES_BYTES {
        return Err(Rejection::OversizedProperties {
            size: props,
            limit: MAX_PROPERTIES_BYTES,
        });
    }
    if message.size() > rules.max_message_size {
        return Err(Rejection::OversizedBody {
            size: message.size(),
            limit: rules.max_message_size,
        });
    }
    Ok(message)
}

/// Whether [`map_record`] surely accepts `record`, from a cheap upper bound
/// on its message and property sizes: callers that only need the verdict
/// (the count-match reads millions of records) skip building the message.
/// `false` decides nothing: ask [`map_record`].
pub fn surely_mappable(record: &SourceRecord, rules: &MappingRules) -> bool {
    let Some(value) = record.value().filter(|value| !value.is_empty()) else {
        return false;
    };
    let provenance_header = |(name, _): HeaderRef| name.starts_with(reverse::RESERVED_PREFIX);
    if rules.loop_prevention && record.headers().any(provenance_header) {
        return false;
    }
    // The five provenance properties: names, separators, three numbers of
    // at most 20 digits and the timestamp type come to 147 bytes and the topic.
    let provenance = 160 + record.topic.len();
    // Percent-encoding at most triples a key; base64 and the marker
    // properties fit in the same bound.
    let key = record.key().map_or(0, |key| 3 * key.len() + 40);
    // A header is a property (name, value, 2 separators) or an entry of the
    // escaped list (8 bytes of lengths, then base64: 4/3).
    let header_bytes = |(name, value): HeaderRef| name.len() + value.map_or(0, <[u8]>::len) + 8;
    let headers = record.headers().map(header_bytes).sum::<usize>() * 2 + 40;
    let longest_header = record.headers().map(header_bytes).max().unwrap_or(0);
    let tag = rules
        .tag
        .as_ref()
        .map_or(0, String::len)
        .max(longest_header)
        + 8;
    let properties = provenance + key + headers + tag;
    properties + SYSTEM_PROPERTIES_HEADROOM <= MAX_PROPERTIES_BYTES
        && value.len() + properties <= rules.max_message_size
}

fn provenance(record: &SourceRecord) -> Vec<Property<'_>> {
    // Room for the timestamp pair, a key marker and two headers without growing.
    let mut properties = Vec::with_capacity(8);
    properties.extend([
        (KAFKA_TOPIC.into(), (*record.topic).into()),
        (KAFKA_PARTITION.into(), record.partition.to_string().into()),
        (KAFKA_OFFSET.into(), record.offset.to_string().into()),
    ]);
    if let Some((millis, kind)) = record.timestamp {
        properties.push((KAFKA_TIMESTAMP.into(), millis.to_string().into()));
        let kind = match kind {
            TimestampType::CreateTime => "CreateTime",
            TimestampType::LogAppendTime => "LogAppendTime",
        };
        properties.push((KAFKA_TIMESTAMP_TYPE.into(), kind.into()));
    }
    properties
}

/// `bytes` as text a property can carry verbatim: valid UTF-8, non-empty,
/// without RocketMQ's property separators `\u{1}` and `\u{2}`.
fn carriable_text(bytes: &[u8]) -> Option<&str> {
    let text = std::str::from_utf8(bytes).ok()?;
    (!text.is_empty() && !text.contains(['\u{1}', '\u{2}'])).then_some(text)
}

fn is_carriable_name(name: &str) -> bool {
    carriable_text(name.as_bytes()).is_some()
        && !name.starts_with(RESERVED_PREFIX)
        && !is_system_property(name)
}

/// Whether `name` is one of RocketMQ's own properties rather than the
/// user's or the bridge's. The bridge's provenance and the names every
/// pulled message carries are told without hashing: readers call this for
/// each property of millions of messages, and the forward mapping for each
/// header of every record.
pub fn is_system_property(name: &str) -> bool {
    match name {
        _ if name.starts_with(RESERVED_PREFIX) => false,
        "UNIQ_KEY" | "KEYS" | "TAGS" | "WAIT" | "MIN_OFFSET" | "MAX_OFFSET" | "CLUSTER" => true,
        _ => SYSTEM_PROPERTIES.contains(name),
    }
}

/// The client's set of system property names, hashed with foldhash: its
/// own set uses SipHash, which was 1.6% of a forward copy's samples.
static SYSTEM_PROPERTIES: LazyLock<foldhash::HashSet<&'static str>> = LazyLock::new(|| {
    rocketmq_model::common::message::STRING_HASH_SET
        .iter()
        .copied()
        .collect()
});

/// A Kafka header: name and nullable value.
type Header = (String, Option<Vec<u8>>);

/// Up to this many headers, [`carry_headers`] finds repeated names without a set.
const FEW_HEADERS: usize = 16;

/// Adds to `properties` the headers properties can carry (the first header
/// of each name, when name and value are carriable), and returns the rest,
/// in Kafka order.
fn carry_headers<'a>(
    headers: Headers<'a>,
    properties: &mut Vec<Property<'a>>,
) -> Vec<HeaderRef<'a>> {
    let mut escaped = Vec::new();
    // Records carry a few headers as a rule: looking through the earlier
    // names is cheaper for them than hashing every name.
    let mut seen = (headers.len() > FEW_HEADERS).then(HashSet::new);
    let all = headers.clone();
    for (i, (name, value)) in headers.enumerate() {
        // Every name counts, carried or not: only a name's first header
        // may become a property, or a later one would be read back ahead of
        // an earlier escaped one (`a: null, a: "x"` came back as `a: "x", a: null`).
        let first = match seen.as_mut() {
            Some(seen) => seen.insert(name),
            None => !all.clone().take(i).any(|(earlier, _)| earlier == name),
        };
        match value.and_then(carriable_text) {
            Some(text) if first && is_carriable_name(name) => {
                properties.push((name.into(), text.into()));
            }
            _ => escaped.push((name, value)),
        }
    }
    escaped
}

fn tag_for<'a>(record: &'a SourceRecord, rules: &MappingRules) -> Option<Cow<'a, str>> {
    let from_header = rules.tag_header.as_ref().and_then(|wanted| {
        let (_, value) = record.headers().filter(|(name, _)| name == wanted).last()?;
        let text = carriable_text(value?)?;
        (!text.contains("||")).then_some(Cow::Borrowed(text))
    });
    from_header.or_else(|| rules.tag.clone().map(Cow::Owned))
}

/// Serialized size of the properties the bridge sets: `name\u{1}value\u{2}` each.
fn properties_size(message: &OutgoingMessage) -> usize {
    let entry = |name: &str, value: &str| name.len() + value.len() + 2;
    let user: usize = message.properties.iter().map(|(n, v)| entry(n, v)).sum();
    user + message.keys.as_deref().map_or(0, |k| entry("KEYS", k))
        + message.tag.as_deref().map_or(0, |t| entry("TAGS", t))
}

/// The escaped-header list: for each header, a 4-byte big-endian name
/// length, the name, a 4-byte big-endian value length (-1 for null), the value.
pub fn encode_header_list<'h>(headers: impl IntoIterator<Item = HeaderRef<'h>>) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, value) in headers {
        out.extend_from_slice(&(name.len() as u32).to_be_bytes());
        out.extend_from_slice(name.as_bytes());
        match value {
            None => out.extend_from_slice(&(-1i32).to_be_bytes()),
            Some(value) => {
                out.extend_from_slice(&(value.len() as i32).to_be_bytes());
                out.extend_from_slice(value);
            }
        }
    }
    out
}

/// Inverse of [`encode_header_list`]; `None` if the bytes are malformed.
pub fn decode_header_list(mut bytes: &[u8]) -> Option<Vec<Header>> {
    let mut headers = Vec::new();
    while !bytes.is_empty() {
        let name_len = u32::from_be_bytes(bytes.get(..4)?.try_into().ok()?) as usize;
        let name = String::from_utf8(bytes.get(4..4 + name_len)?.to_vec()).ok()?;
        bytes = &bytes[4 + name_len..];
        let value_len = i32::from_be_bytes(bytes.get(..4)?.try_into().ok()?);
        bytes = &bytes[4..];
        let value = if value_len < 0 {
            None
        } else {
            let value = bytes.get(..value_len as usize)?.to_vec();
            bytes = &bytes[value_len as usize..];
            Some(value)
        };
        headers.push((name, value));
    }
    Some(headers)
}

/// What a consumer reads back from RocketMQ, as the mapping needs it.
pub struct StoredMessage<'a> {
    pub body: &'a [u8],
    pub keys: Option<&'a str>,
    /// User properties only (system properties such as KEYS removed).
    pub properties: Vec<(&'a str, &'a str)>,
}

/// Why a stored message cannot be turned back into its Kafka record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a message written by the bridge: {0}")]
pub struct UnmapError(pub String);

/// Recovers the Kafka record from a message the bridge wrote. Header order
/// is: user properties sorted by name, then the escaped list in Kafka order
/// (RocketMQ properties are unordered, so the relative order of different
/// names is not kept; repeated names keep their order).
pub fn unmap(message: &StoredMessage) -> Result<SourceRecord, UnmapError> {
    let get = |name: &str| {
        message
            .properties
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| *v)
    };
    let require = |name: &str| get(name).ok_or_else(|| UnmapError(format!("no {name} property")));
    let number = |name: &str| {
        require(name)?
            .parse::<i64>()
            .map_err(|_| UnmapError(format!("{name} is not a number")))
    };
    let timestamp = match get(KAFKA_TIMESTAMP) {
        None => None,
        Some(_) => {
            let kind = match get(KAFKA_TIMESTAMP_TYPE) {
                Some("LogAppendTime") => TimestampType::LogAppendTime,
                _ => TimestampType::CreateTime,
            };
            Some((number(KAFKA_TIMESTAMP)?, kind))
        }
    };
    // Borrowed where the stored form is the record's, as `verify` unmaps
    // millions of messages.
    let key: Option<Cow<[u8]>> = match (get(KAFKA_KEY_B64), message.keys) {
        (Some(encoded), _) => {
            let bad = || UnmapError("KAFKA_KEY_B64 is not b64:<base64>".into());
            let payload = encoded.strip_prefix(B64_PREFIX).ok_or_else(bad)?;
            Some(Cow::Owned(BASE64.decode(payload).map_err(|_| bad())?))
        }
        (None, Some(keys)) if get(KAFKA_KEY_ESCAPED) == Some("percent") => Some(Cow::Owned(
            keys.replace("%20", " ").replace("%25", "%").into_bytes(),
        )),
        (None, Some(keys)) => Some(Cow::Borrowed(keys.as_bytes())),
        (None, None) => None,
    };
    let escaped = match get(KAFKA_HEADERS_B64) {
        None => Vec::new(),
        Some(encoded) => {
            let bytes = BASE64
                .decode(encoded)
                .map_err(|_| UnmapError("KAFKA_HEADERS_B64 is not base64".into()))?;
            decode_header_list(&bytes)
                .ok_or_else(|| UnmapError("KAFKA_HEADERS_B64 is malformed".into()))?
        }
    };
    let mut headers: Vec<HeaderRef> = message
        .properties
        .iter()
        .filter(|(name, _)| !name.starts_with(RESERVED_PREFIX))
        .map(|(name, value)| (*name, Some(value.as_bytes())))
        .collect();
    headers.sort_by(|a, b| a.0.cmp(b.0));
    headers.extend(
        escaped
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_deref())),
    );
    let partition = i32::try_from(number(KAFKA_PARTITION)?)
        .map_err(|_| UnmapError("KAFKA_PARTITION out of range".into()))?;
    Ok(SourceRecord::new(
        require(KAFKA_TOPIC)?,
        partition,
        number(KAFKA_OFFSET)?,
        timestamp,
        key.as_deref(),
        Some(message.body),
        headers.iter().copied(),
    ))
}

#[cfg(test)]
mod tests;
