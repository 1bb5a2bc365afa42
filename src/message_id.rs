//! Message ids (`UNIQ_KEY`, what RocketMQ consumers call msgId): one per
//! copied record, and the same one every time that record is sent, so a
//! copy re-sent after a crash carries the id of the first copy and standard
//! consumer idempotence drops it.
//!
//! The id has RocketMQ's 16-byte layout, printed as 32 uppercase hex digits:
//! bytes 0-9 and 14-15 come from SHA-256 of the record's coordinates; bytes
//! 10-13 hold a time, as RocketMQ tools expect, so that a console lookup by
//! id (which searches from the time decoded from bytes 10-13) finds it.

use rocketmq_model::common::message::message_client_id_setter::MessageClientIDSetter;
use sha2::{Digest, Sha256};

use crate::config::MessageIds;

/// The property RocketMQ keeps the client-side message id in.
pub const UNIQ_KEY: &str = "UNIQ_KEY";

/// The id for one record under the configured scheme.
pub fn message_id(
    scheme: MessageIds,
    rocketmq_topic: &str,
    kafka_topic: &str,
    partition: i32,
    offset: i64,
    timestamp_ms: Option<i64>,
) -> String {
    match scheme {
        MessageIds::Deterministic => {
            deterministic_id(rocketmq_topic, kafka_topic, partition, offset, timestamp_ms)
        }
        MessageIds::Client => MessageClientIDSetter::create_uniq_id(),
    }
}

/// One day: the embedded time is the record's timestamp minus this, so the
/// decoded time stays before the store time whatever the console's time zone.
const TIME_MARGIN_MS: i64 = 24 * 60 * 60 * 1000;

/// The id of the copy of Kafka record `kafka_topic/partition@offset` in
/// `rocketmq_topic`. `timestamp_ms` is the Kafka record timestamp, if any.
pub fn deterministic_id(
    rocketmq_topic: &str,
    kafka_topic: &str,
    partition: i32,
    offset: i64,
    timestamp_ms: Option<i64>,
) -> String {
    // Hashes "rocketmq_topic\nkafka_topic\npartition\noffset" piece by
    // piece: this runs per record, and formatting it into a String first
    // cost an allocation and the formatting machinery each time.
    let mut hasher = Sha256::new();
    for part in [
        rocketmq_topic.as_bytes(),
        b"\n",
        kafka_topic.as_bytes(),
        b"\n",
    ] {
        hasher.update(part);
    }
    let mut digits = [0u8; 20];
    hasher.update(decimal(i64::from(partition), &mut digits));
    hasher.update(b"\n");
    hasher.update(decimal(offset, &mut digits));
    let digest = hasher.finalize();
    let mut id = [0u8; 16];
    id[..10].copy_from_slice(&digest[..10]);
    id[10..14].copy_from_slice(&time_field(timestamp_ms).to_be_bytes());
    id[14..].copy_from_slice(&digest[10..12]);
    hex_upper(&id)
}

/// `value` in decimal, as `to_string` writes it, in `buffer`'s tail.
fn decimal(value: i64, buffer: &mut [u8; 20]) -> &[u8] {
    let mut rest = value.unsigned_abs();
    let mut start = buffer.len();
    loop {
        start -= 1;
        buffer[start] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    if value < 0 {
        start -= 1;
        buffer[start] = b'-';
    }
    &buffer[start..]
}

/// Upper-case hex without a formatting call per byte (this runs per record).
fn hex_upper(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789ABCDEF";
    let mut text = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        text.push(char::from(DIGITS[usize::from(byte >> 4)]));
        text.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
    }
    text
}

/// Milliseconds since the start of the (UTC) month of `timestamp - 1 day`,
/// as RocketMQ stores the time in an id; 0 without a timestamp.
fn time_field(timestamp_ms: Option<i64>) -> u32 {
    let Some(timestamp) = timestamp_ms.filter(|t| *t > TIME_MARGIN_MS) else {
        return 0;
    };
    let time = timestamp - TIME_MARGIN_MS;
    (time - month_start_utc(time)) as u32
}

/// The first millisecond of the UTC month containing `millis`.
fn month_start_utc(millis: i64) -> i64 {
    let days = millis.div_euclid(86_400_000);
    let (_, _, day) = civil_from_days(days);
    (days - (i64::from(day) - 1)) * 86_400_000
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian
/// (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_writes_what_to_string_writes() {
        let mut buffer = [0u8; 20];
        for value in [
            0,
            7,
            10,
            42,
            -1,
            -10,
            999_999,
            i64::from(i32::MAX),
            i64::MAX,
            i64::MIN,
        ] {
            assert_eq!(decimal(value, &mut buffer), value.to_string().as_bytes());
        }
    }

    #[test]
    fn ids_are_32_hex_digits_stable_and_distinct_per_record() {
        let id = deterministic_id("orders_v1", "orders.v1", 3, 42, Some(1_764_000_000_000));
        assert_eq!(id.len(), 32);
        assert!(
            id.chars()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_lowercase())
        );
        assert_eq!(
            id,
            deterministic_id("orders_v1", "orders.v1", 3, 42, Some(1_764_000_000_000))
        );
        assert_ne!(
            id,
            deterministic_id("orders_v1", "orders.v1", 3, 43, Some(1_764_000_000_000))
        );
        assert_ne!(
            id,
            deterministic_id("orders_v1", "orders.v1", 4, 42, Some(1_764_000_000_000))
        );
        assert_ne!(
            id,
            deterministic_id("other", "orders.v1", 3, 42, Some(1_764_000_000_000))
        );
        // The documented recipe: SHA-256 of "rocketmq_topic\nkafka_topic\npartition\noffset".
        let digest = Sha256::digest(b"orders_v1\norders.v1\n3\n42");
        let hex: String = digest.iter().map(|b| format!("{b:02X}")).collect();
        assert_eq!(&id[..20], &hex[..20]);
        assert_eq!(&id[28..], &hex[20..24]);
    }

    #[test]
    fn matches_the_python_snippet_in_docs_message_mapping() {
        // Printed by the snippet in docs/message-mapping.md.
        assert_eq!(
            deterministic_id("orders_v1", "orders.v1", 3, 42, Some(1_764_000_000_000)),
            "EAF821557E06732813D574BAD0001549"
        );
    }

    #[test]
    fn the_time_field_is_one_day_before_the_record_within_its_utc_month() {
        // 2025-11-24T16:00:00Z; one day earlier is 2025-11-23T16:00Z, 22 days and 16 h into November.
        let id = deterministic_id("t", "t", 0, 0, Some(1_764_000_000_000));
        let field = u32::from_str_radix(&id[20..28], 16).unwrap();
        assert_eq!(field, (22 * 24 + 16) * 3_600_000);
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(20_454), (2026, 1, 1));
        assert_eq!(month_start_utc(1_764_000_000_000), 1_761_955_200_000);
        assert_eq!(&deterministic_id("t", "t", 0, 0, None)[20..28], "00000000");
    }
}
