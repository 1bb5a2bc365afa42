//! One ledger entry: what a dual-read consumer did with one Kafka record,
//! in the format `docs/dual-read.md` specifies, written and read back.
//!
//! A ledger record's value holds one or more entries, one JSON object per
//! line. Reading never fails as a whole: each line is either an entry or a
//! [`BadEntry`] saying what is wrong with it.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The format version this crate writes and reads.
pub const FORMAT_VERSION: u32 = 1;

/// Which system a consumer read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    Kafka,
    Rocketmq,
}

impl Side {
    pub const BOTH: [Side; 2] = [Side::Kafka, Side::Rocketmq];

    pub fn name(self) -> &'static str {
        match self {
            Side::Kafka => "kafka",
            Side::Rocketmq => "rocketmq",
        }
    }
}

impl std::fmt::Display for Side {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A Kafka record's identity, the same on both sides: on RocketMQ it comes
/// from the provenance properties the bridge stamped on the copy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RecordId {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    /// The Kafka record's timestamp, milliseconds since the epoch: its day.
    pub timestamp: i64,
}

/// What the consumer's logic made of the record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Processed; the digest of the result (see [`Outcome::processed`]).
    Processed { result: String },
    /// Not processed, and why.
    Failed { reason: String },
}

impl Outcome {
    /// Processed with this result: the ledger keeps the lowercase hex
    /// SHA-256 of the bytes, so both sides must serialise results the same way.
    pub fn processed(result: &[u8]) -> Self {
        Outcome::Processed {
            result: result_digest(result),
        }
    }

    pub fn failed(reason: impl Into<String>) -> Self {
        Outcome::Failed {
            reason: reason.into(),
        }
    }
}

/// The digest the helpers write for a result: lowercase hex SHA-256.
pub fn result_digest(result: &[u8]) -> String {
    Sha256::digest(result)
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// One entry as written: one line of a ledger record.
#[derive(Debug, Serialize, Deserialize)]
struct WireEntry<'a> {
    v: u32,
    #[serde(borrow)]
    side: Cow<'a, str>,
    #[serde(borrow)]
    group: Cow<'a, str>,
    #[serde(borrow)]
    topic: Cow<'a, str>,
    partition: i32,
    offset: i64,
    timestamp: i64,
    #[serde(borrow)]
    status: Cow<'a, str>,
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    result: Option<Cow<'a, str>>,
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    reason: Option<Cow<'a, str>>,
}

/// Appends one entry, as one line, to `out`.
pub fn encode(side: Side, group: &str, id: &RecordId, outcome: &Outcome, out: &mut Vec<u8>) {
    let (status, result, reason) = match outcome {
        Outcome::Processed { result } => ("processed", Some(result.as_str()), None),
        Outcome::Failed { reason } => ("failed", None, Some(reason.as_str())),
    };
    let wire = WireEntry {
        v: FORMAT_VERSION,
        side: side.name().into(),
        group: group.into(),
        topic: id.topic.as_str().into(),
        partition: id.partition,
        offset: id.offset,
        timestamp: id.timestamp,
        status: status.into(),
        result: result.map(Cow::Borrowed),
        reason: reason.map(Cow::Borrowed),
    };
    // Serialising plain strings and numbers into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, &wire);
    out.push(b'\n');
}

/// An entry as read back, borrowing from the ledger record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadEntry<'a> {
    pub side: Side,
    pub group: Cow<'a, str>,
    pub topic: Cow<'a, str>,
    pub partition: i32,
    pub offset: i64,
    pub timestamp: i64,
    /// `None` when the record failed.
    pub result: Option<Cow<'a, str>>,
    /// Why it failed, when it did.
    pub reason: Option<Cow<'a, str>>,
}

/// Why a line is not an entry this reader can use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BadEntry {
    /// Not JSON, or a field missing or of the wrong type.
    Malformed(String),
    /// Written by a newer format than [`FORMAT_VERSION`].
    FutureVersion(u64),
}

impl BadEntry {
    /// The counter this falls under in reports.
    pub fn kind(&self) -> &'static str {
        match self {
            BadEntry::Malformed(_) => "malformed",
            BadEntry::FutureVersion(_) => "future_version",
        }
    }
}

impl std::fmt::Display for BadEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BadEntry::Malformed(why) => write!(f, "malformed: {why}"),
            BadEntry::FutureVersion(v) => write!(
                f,
                "format version {v} is newer than this tool reads ({FORMAT_VERSION}): upgrade kafka-rocketmq-bridge"
            ),
        }
    }
}

/// Only the version, read first so a newer format is told apart from a
/// malformed one whatever else changed.
#[derive(Deserialize)]
struct VersionOnly {
    v: Option<u64>,
}

/// Reads one line.
pub fn decode(line: &[u8]) -> Result<ReadEntry<'_>, BadEntry> {
    let wire: WireEntry = match serde_json::from_slice(line) {
        Ok(wire) => wire,
        Err(error) => return Err(version_or(line, error.to_string())),
    };
    if u64::from(wire.v) != u64::from(FORMAT_VERSION) {
        return Err(version_or(line, format!("unknown version {}", wire.v)));
    }
    let side = match &*wire.side {
        "kafka" => Side::Kafka,
        "rocketmq" => Side::Rocketmq,
        other => {
            return Err(BadEntry::Malformed(format!(
                "side `{other}` is neither kafka nor rocketmq"
            )));
        }
    };
    let (result, reason) = match (&*wire.status, wire.result, wire.reason) {
        ("processed", Some(result), _) => (Some(result), None),
        ("processed", None, _) => {
            return Err(BadEntry::Malformed("processed without a result".into()));
        }
        ("failed", _, reason) => (None, Some(reason.unwrap_or_default())),
        (other, _, _) => {
            return Err(BadEntry::Malformed(format!(
                "status `{other}` is neither processed nor failed"
            )));
        }
    };
    Ok(ReadEntry {
        side,
        group: wire.group,
        topic: wire.topic,
        partition: wire.partition,
        offset: wire.offset,
        timestamp: wire.timestamp,
        result,
        reason,
    })
}

fn version_or(line: &[u8], why: String) -> BadEntry {
    match serde_json::from_slice::<VersionOnly>(line) {
        Ok(VersionOnly { v: Some(v) }) if v > u64::from(FORMAT_VERSION) => {
            BadEntry::FutureVersion(v)
        }
        _ => BadEntry::Malformed(why),
    }
}

/// The lines of a ledger record's value, blank ones left out.
pub fn lines(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value
        .split(|byte| *byte == b'\n')
        .map(|line| line.strip_suffix(b"\r").unwrap_or(line))
        .filter(|line| !line.iter().all(u8::is_ascii_whitespace))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id() -> RecordId {
        RecordId {
            topic: "orders".into(),
            partition: 3,
            offset: 41,
            timestamp: 1_764_633_600_000,
        }
    }

    #[test]
    fn an_entry_reads_back_as_written() {
        let mut out = Vec::new();
        encode(
            Side::Rocketmq,
            "billing",
            &id(),
            &Outcome::processed(b"total=7"),
            &mut out,
        );
        encode(
            Side::Rocketmq,
            "billing",
            &id(),
            &Outcome::failed("bad \"header\""),
            &mut out,
        );
        let read: Vec<_> = lines(&out).map(decode).collect();
        assert_eq!(read.len(), 2);
        let processed = read[0].as_ref().expect("first entry");
        assert_eq!(processed.side, Side::Rocketmq);
        assert_eq!(
            (&*processed.topic, processed.partition, processed.offset),
            ("orders", 3, 41)
        );
        assert_eq!(
            processed.result.as_deref(),
            Some(result_digest(b"total=7").as_str())
        );
        let failed = read[1].as_ref().expect("second entry");
        assert_eq!(failed.result, None);
    }

    #[test]
    fn the_digest_is_hex_sha256() {
        // echo -n abc | sha256sum
        assert_eq!(
            result_digest(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn bad_lines_say_what_is_wrong() {
        let cases: [(&str, &str); 6] = [
            ("not json", "malformed"),
            (r#"{"v":1,"side":"kafka"}"#, "malformed"),
            (
                r#"{"v":2,"side":"kafka","whatever":true}"#,
                "future_version",
            ),
            (
                r#"{"v":1,"side":"pulsar","group":"g","topic":"t","partition":0,"offset":1,"timestamp":1,"status":"failed"}"#,
                "malformed",
            ),
            (
                r#"{"v":1,"side":"kafka","group":"g","topic":"t","partition":0,"offset":1,"timestamp":1,"status":"processed"}"#,
                "malformed",
            ),
            (
                r#"{"v":1,"side":"kafka","group":"g","topic":"t","partition":0,"offset":1,"timestamp":1,"status":"done","result":"x"}"#,
                "malformed",
            ),
        ];
        for (line, kind) in cases {
            let bad = decode(line.as_bytes()).expect_err(line);
            assert_eq!(bad.kind(), kind, "{line}: {bad}");
        }
    }

    #[test]
    fn unknown_fields_are_ignored_and_blank_lines_skipped() {
        let value = b"{\"v\":1,\"side\":\"kafka\",\"group\":\"g\",\"topic\":\"t\",\"partition\":0,\"offset\":1,\"timestamp\":1,\"status\":\"failed\",\"reason\":\"x\",\"host\":\"a\"}\r\n\n  \n";
        let read: Vec<_> = lines(value).map(decode).collect();
        assert_eq!(read.len(), 1);
        assert!(read[0].is_ok(), "{:?}", read[0]);
    }
}
