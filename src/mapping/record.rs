//! [`SourceRecord`]: a Kafka record, owned, as the bridge sees it.
//!
//! The dispatcher copies every record out of librdkafka's buffer once, so
//! that it can hold records back (rate limits, a parked partition) after
//! librdkafka has moved on. That copy is one allocation: key, value and
//! headers share one buffer, and the topic name is shared between the
//! records of a topic. Owning each field and header separately cost eight
//! allocations per record of the benchmark's shape, the largest single
//! share of the bridge's allocations (benches/analysis.md).

use std::fmt;
use std::sync::Arc;

use super::TimestampType;

/// A Kafka record: coordinates, timestamp, key, value and headers.
#[derive(Clone, PartialEq, Eq)]
pub struct SourceRecord {
    pub topic: Arc<str>,
    pub partition: i32,
    pub offset: i64,
    pub timestamp: Option<(i64, TimestampType)>,
    /// The key, then the value, then each header as its name's length
    /// (`u32`, little-endian), the name, its value's length (`i32`, -1 for
    /// null) and the value.
    data: Box<[u8]>,
    key_len: Option<u32>,
    value_len: Option<u32>,
    header_count: u32,
}

/// A header as read: name and nullable value.
pub type HeaderRef<'a> = (&'a str, Option<&'a [u8]>);

impl SourceRecord {
    /// A record of these parts. `headers` is walked twice (to size the
    /// buffer, then to fill it), in Kafka order; names may repeat.
    pub fn new<'h, H>(
        topic: impl Into<Arc<str>>,
        partition: i32,
        offset: i64,
        timestamp: Option<(i64, TimestampType)>,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: H,
    ) -> Self
    where
        H: IntoIterator<Item = HeaderRef<'h>>,
        H::IntoIter: Clone,
    {
        let headers = headers.into_iter();
        let header_bytes: usize = headers
            .clone()
            .map(|(name, value)| 8 + name.len() + value.map_or(0, <[u8]>::len))
            .sum();
        let key_bytes = key.map_or(0, <[u8]>::len);
        let value_bytes = value.map_or(0, <[u8]>::len);
        let mut data = Vec::with_capacity(key_bytes + value_bytes + header_bytes);
        data.extend_from_slice(key.unwrap_or_default());
        data.extend_from_slice(value.unwrap_or_default());
        let mut header_count = 0u32;
        for (name, value) in headers {
            data.extend_from_slice(&length(name.len()).to_le_bytes());
            data.extend_from_slice(name.as_bytes());
            match value {
                Some(value) => {
                    data.extend_from_slice(&(length(value.len()) as i32).to_le_bytes());
                    data.extend_from_slice(value);
                }
                None => data.extend_from_slice(&(-1i32).to_le_bytes()),
            }
            header_count += 1;
        }
        SourceRecord {
            topic: topic.into(),
            partition,
            offset,
            timestamp,
            data: data.into_boxed_slice(),
            key_len: key.map(|k| length(k.len())),
            value_len: value.map(|v| length(v.len())),
            header_count,
        }
    }

    pub fn key(&self) -> Option<&[u8]> {
        let len = self.key_len? as usize;
        Some(&self.data[..len])
    }

    pub fn value(&self) -> Option<&[u8]> {
        let start = self.key_len.unwrap_or(0) as usize;
        let len = self.value_len? as usize;
        Some(&self.data[start..start + len])
    }

    /// Bytes of key, value and header names and values.
    pub fn content_bytes(&self) -> usize {
        // Each header's two length fields are the only framing.
        self.data.len() - 8 * self.header_count as usize
    }

    /// The headers, in Kafka order.
    pub fn headers(&self) -> Headers<'_> {
        let start = self.key_len.unwrap_or(0) as usize + self.value_len.unwrap_or(0) as usize;
        Headers {
            rest: &self.data[start..],
            left: self.header_count as usize,
        }
    }

    /// This record with `key` instead of its own.
    pub fn with_key(self, key: Option<&[u8]>) -> Self {
        self.rebuilt(key, self.value(), self.headers())
    }

    /// This record with `value` instead of its own.
    pub fn with_value(self, value: Option<&[u8]>) -> Self {
        self.rebuilt(self.key(), value, self.headers())
    }

    /// This record with `headers` instead of its own.
    pub fn with_headers<'h, H>(self, headers: H) -> Self
    where
        H: IntoIterator<Item = HeaderRef<'h>>,
        H::IntoIter: Clone,
    {
        self.rebuilt(self.key(), self.value(), headers)
    }

    fn rebuilt<'h, H>(&self, key: Option<&[u8]>, value: Option<&[u8]>, headers: H) -> Self
    where
        H: IntoIterator<Item = HeaderRef<'h>>,
        H::IntoIter: Clone,
    {
        SourceRecord::new(
            Arc::clone(&self.topic),
            self.partition,
            self.offset,
            self.timestamp,
            key,
            value,
            headers,
        )
    }
}

/// A record's parts, each owned on its own: for building and editing
/// records field by field (tests, tools), not for the copy path.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RecordParts {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub timestamp: Option<(i64, TimestampType)>,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    /// In Kafka order; names may repeat and values may be null.
    pub headers: Vec<(String, Option<Vec<u8>>)>,
}

impl From<RecordParts> for SourceRecord {
    fn from(parts: RecordParts) -> Self {
        SourceRecord::new(
            parts.topic,
            parts.partition,
            parts.offset,
            parts.timestamp,
            parts.key.as_deref(),
            parts.value.as_deref(),
            parts
                .headers
                .iter()
                .map(|(name, value)| (name.as_str(), value.as_deref())),
        )
    }
}

impl From<&SourceRecord> for RecordParts {
    fn from(record: &SourceRecord) -> Self {
        RecordParts {
            topic: record.topic.to_string(),
            partition: record.partition,
            offset: record.offset,
            timestamp: record.timestamp,
            key: record.key().map(<[u8]>::to_vec),
            value: record.value().map(<[u8]>::to_vec),
            headers: record
                .headers()
                .map(|(name, value)| (name.to_string(), value.map(<[u8]>::to_vec)))
                .collect(),
        }
    }
}

/// Kafka bounds a record far below 4 GiB; a larger part is cut to fit the
/// length field rather than wrapping (it cannot come from Kafka).
fn length(len: usize) -> u32 {
    u32::try_from(len).unwrap_or(u32::MAX)
}

/// A record's headers, in Kafka order.
#[derive(Clone)]
pub struct Headers<'a> {
    rest: &'a [u8],
    left: usize,
}

impl<'a> Iterator for Headers<'a> {
    type Item = HeaderRef<'a>;

    fn next(&mut self) -> Option<HeaderRef<'a>> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        let name_len = u32::from_le_bytes(self.take(4)?.try_into().ok()?) as usize;
        // Written from a `&str` in `new`, so always UTF-8.
        let name = std::str::from_utf8(self.take(name_len)?).unwrap_or_default();
        let value_len = i32::from_le_bytes(self.take(4)?.try_into().ok()?);
        let value = match usize::try_from(value_len) {
            Ok(len) => Some(self.take(len)?),
            Err(_) => None,
        };
        Some((name, value))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }
}

impl ExactSizeIterator for Headers<'_> {}

impl<'a> Headers<'a> {
    fn take(&mut self, len: usize) -> Option<&'a [u8]> {
        if len > self.rest.len() {
            self.left = 0;
            return None;
        }
        let (taken, rest) = self.rest.split_at(len);
        self.rest = rest;
        Some(taken)
    }
}

impl fmt::Debug for SourceRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let headers: Vec<_> = self.headers().collect();
        f.debug_struct("SourceRecord")
            .field("topic", &self.topic)
            .field("partition", &self.partition)
            .field("offset", &self.offset)
            .field("timestamp", &self.timestamp)
            .field("key", &self.key())
            .field("value", &self.value())
            .field("headers", &headers)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_part_reads_back_as_given() {
        let headers = [
            ("trace", Some(&b"abc"[..])),
            ("empty", Some(&b""[..])),
            ("null", None),
            ("trace", Some(&b"again"[..])),
        ];
        let record = SourceRecord::new(
            "orders",
            3,
            42,
            Some((7, TimestampType::CreateTime)),
            Some(b"k"),
            Some(b"value"),
            headers,
        );
        assert_eq!(&*record.topic, "orders");
        assert_eq!(record.key(), Some(&b"k"[..]));
        assert_eq!(record.value(), Some(&b"value"[..]));
        assert_eq!(record.headers().collect::<Vec<_>>(), headers);
        assert_eq!(record.headers().len(), 4);
    }

    #[test]
    fn absent_and_empty_parts_stay_apart() {
        let none = SourceRecord::new("t", 0, 0, None, None, None, []);
        let empty = SourceRecord::new("t", 0, 0, None, Some(b""), Some(b""), []);
        assert_eq!((none.key(), none.value()), (None, None));
        assert_eq!(
            (empty.key(), empty.value()),
            (Some(&b""[..]), Some(&b""[..]))
        );
        assert_ne!(none, empty);
        assert_eq!(none.headers().count(), 0);
    }

    #[test]
    fn a_part_replaced_leaves_the_others() {
        let record = SourceRecord::new("t", 1, 2, None, Some(b"k"), Some(b"v"), [("h", None)]);
        let changed = record.clone().with_value(Some(b"other"));
        assert_eq!(changed.key(), Some(&b"k"[..]));
        assert_eq!(changed.value(), Some(&b"other"[..]));
        assert_eq!(changed.headers().collect::<Vec<_>>(), [("h", None)]);
        let bare = record.with_key(None).with_headers([]);
        assert_eq!(bare.key(), None);
        assert_eq!(bare.value(), Some(&b"v"[..]));
        assert_eq!(bare.headers().count(), 0);
    }
}
