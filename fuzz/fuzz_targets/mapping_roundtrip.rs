//! Fuzz target: `mapping::unmap` inverts `mapping::map_record` (the property
//! of tests/mapping_roundtrip.rs, driven by libFuzzer's coverage instead of
//! random generation).

#![no_main]

use kafka_rocketmq_bridge::mapping::{self, MappingRules, Rejection, SourceRecord, TimestampType};
use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;

type Header = (String, Option<Vec<u8>>);

/// Names the mapping treats specially, so the fuzzer reaches them often.
const NAMES: &[&str] = &[
    "a",
    "b",
    "",
    "KAFKA_",
    "KAFKA_OFFSET",
    "KAFKA_KEY_B64",
    "KAFKA_HEADERS_B64",
    "KEYS",
    "TAGS",
    "UNIQ_KEY",
    "WAIT",
    "with space",
    "x\u{1}y",
    "é",
];

fn header(u: &mut Unstructured) -> Result<Header> {
    let name = if u.arbitrary::<bool>()? {
        (*u.choose(NAMES)?).to_string()
    } else {
        u.arbitrary()?
    };
    Ok((name, u.arbitrary()?))
}

fn record(u: &mut Unstructured) -> Result<(SourceRecord, MappingRules)> {
    const TOPIC_CHARS: &[u8] = b"abcXYZ019._-";
    let topic_len = u.int_in_range(1..=20)?;
    let topic = (0..topic_len)
        .map(|_| u.choose(TOPIC_CHARS).map(|c| char::from(*c)))
        .collect::<Result<String>>()?;
    let timestamp = if u.arbitrary()? {
        let kind = if u.arbitrary()? {
            TimestampType::LogAppendTime
        } else {
            TimestampType::CreateTime
        };
        Some((u.arbitrary()?, kind))
    } else {
        None
    };
    let mut value: Vec<u8> = u.arbitrary()?;
    if value.is_empty() {
        value.push(0);
    }
    let count = u.int_in_range(0..=12)?;
    let headers = (0..count).map(|_| header(u)).collect::<Result<Vec<_>>>()?;
    let rules = MappingRules {
        tag: None,
        tag_header: if u.arbitrary()? {
            Some((*u.choose(NAMES)?).to_string())
        } else {
            None
        },
        max_message_size: 4 << 20,
    };
    let record = SourceRecord {
        topic,
        partition: u.int_in_range(0..=i32::MAX)?,
        offset: u.int_in_range(0..=i64::MAX)?,
        timestamp,
        key: u.arbitrary()?,
        value: Some(value),
        headers,
    };
    Ok((record, rules))
}

fn sorted_by_name(headers: &[Header]) -> Vec<Header> {
    let mut sorted = headers.to_vec();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    sorted
}

fuzz_target!(|data: &[u8]| {
    let Ok((record, rules)) = record(&mut Unstructured::new(data)) else {
        return;
    };
    match mapping::map_record(&record, &rules) {
        Ok(message) => {
            let back = mapping::unmap(&message.as_stored()).expect("a mapped message unmaps");
            assert_eq!(back.key, record.key);
            assert_eq!(back.value, record.value);
            assert_eq!(
                sorted_by_name(&back.headers),
                sorted_by_name(&record.headers)
            );
            assert_eq!(
                (back.topic, back.partition, back.offset, back.timestamp),
                (
                    record.topic,
                    record.partition,
                    record.offset,
                    record.timestamp
                )
            );
        }
        Err(Rejection::OversizedBody { size, limit })
        | Err(Rejection::OversizedProperties { size, limit }) => assert!(size > limit),
        Err(Rejection::EmptyValue) => panic!("a non-empty value was rejected as empty"),
    }
});
