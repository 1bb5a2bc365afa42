//! Property: `mapping::unmap` inverts `mapping::map_record` for any record
//! RocketMQ can take: any key (none, empty, text with spaces and `%`,
//! arbitrary bytes), any non-empty value, any headers (repeated names, null
//! and empty values, the bridge's `KAFKA_` prefix, RocketMQ's reserved names,
//! the property separators \x01 and \x02).
//!
//! Headers are compared after a stable sort by name: RocketMQ properties are a
//! map, so `unmap` documents that the order of different names is not kept,
//! while headers of one name must keep theirs.

use kafka_rocketmq_bridge::mapping::{
    self, HeaderRef, MappingRules, RecordParts, Rejection, SourceRecord, TimestampType,
};
use proptest::prelude::*;

type Header = (String, Option<Vec<u8>>);

/// Text built from the characters that matter to the mapping.
fn tricky_text(max: usize) -> impl Strategy<Value = String> {
    let chars = prop::sample::select(vec![
        'a', 'Z', '0', '9', ' ', '%', '2', '5', '_', '.', '|', 'é', '€', '\u{1}', '\u{2}', '\0',
        '\n', '\t',
    ]);
    prop::collection::vec(chars, 0..max).prop_map(|chars| chars.into_iter().collect())
}

fn key() -> impl Strategy<Value = Option<Vec<u8>>> {
    prop_oneof![
        Just(None),
        Just(Some(Vec::new())),
        tricky_text(24).prop_map(|text| Some(text.into_bytes())),
        any::<String>().prop_map(|text| Some(text.into_bytes())),
        prop::collection::vec(any::<u8>(), 0..24).prop_map(Some),
    ]
}

fn header_name() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "a",
            "b",
            "trace-id",
            "with space",
            "",
            "KAFKA_",
            "KAFKA_OFFSET",
            "KAFKA_KEY_B64",
            "KAFKA_HEADERS_B64",
            "KAFKA_custom",
            "KEYS",
            "TAGS",
            "UNIQ_KEY",
            "WAIT",
            "DELAY",
            "x\u{1}y",
            "x\u{2}",
            "é",
        ])
        .prop_map(str::to_string),
        tricky_text(12),
        any::<String>(),
    ]
}

fn header_value() -> impl Strategy<Value = Option<Vec<u8>>> {
    prop_oneof![
        Just(None),
        Just(Some(Vec::new())),
        tricky_text(16).prop_map(|text| Some(text.into_bytes())),
        prop::collection::vec(any::<u8>(), 0..16).prop_map(Some),
    ]
}

fn headers() -> impl Strategy<Value = Vec<Header>> {
    // Past 16 headers the mapping finds repeated names another way: both ways are covered.
    prop::collection::vec((header_name(), header_value()), 0..24)
}

fn record() -> impl Strategy<Value = SourceRecord> {
    let timestamp = prop_oneof![
        Just(None),
        (any::<i64>(), any::<bool>()).prop_map(|(millis, appended)| {
            let kind = if appended {
                TimestampType::LogAppendTime
            } else {
                TimestampType::CreateTime
            };
            Some((millis, kind))
        }),
    ];
    (
        "[a-zA-Z0-9._-]{1,40}",
        0..i32::MAX,
        0..i64::MAX,
        timestamp,
        key(),
        prop::collection::vec(any::<u8>(), 1..64),
        headers(),
    )
        .prop_map(
            |(topic, partition, offset, timestamp, key, value, headers)| {
                SourceRecord::from(RecordParts {
                    topic,
                    partition,
                    offset,
                    timestamp,
                    key,
                    value: Some(value),
                    headers,
                })
            },
        )
}

fn rules() -> impl Strategy<Value = MappingRules> {
    (
        prop::option::of(Just("tagged".to_string())),
        prop::option::of(header_name()),
    )
        .prop_map(|(tag, tag_header)| MappingRules {
            tag,
            tag_header,
            max_message_size: 4 << 20,
            loop_prevention: false,
        })
}

fn sorted_by_name(record: &SourceRecord) -> Vec<HeaderRef<'_>> {
    let mut sorted: Vec<_> = record.headers().collect();
    sorted.sort_by(|a, b| a.0.cmp(b.0));
    sorted
}

/// Limits small enough that records of the strategy above cross them.
fn tight_rules() -> impl Strategy<Value = MappingRules> {
    (rules(), 16usize..2048).prop_map(|(rules, max_message_size)| MappingRules {
        max_message_size,
        ..rules
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// The count-match's shortcut never says yes to a record the bridge rejects.
    #[test]
    fn surely_mappable_records_are_mapped(record in record(), rules in tight_rules()) {
        if mapping::surely_mappable(&record, &rules) {
            prop_assert!(mapping::map_record(&record, &rules).is_ok());
        }
    }

    #[test]
    fn unmap_inverts_map_record(record in record(), rules in rules()) {
        match mapping::map_record(&record, &rules) {
            Ok(message) => {
                // RocketMQ drops properties with empty values and splits on
                // its separators: none may reach it.
                for (name, value) in &message.properties {
                    prop_assert!(!name.is_empty() && !value.is_empty(), "empty in {:?}={:?}", name, value);
                    let separators = ['\u{1}', '\u{2}'];
                    prop_assert!(
                        !name.contains(separators) && !value.contains(separators),
                        "separator in {:?}={:?}", name, value
                    );
                }
                if let Some(keys) = &message.keys {
                    let forbidden = [' ', '\u{1}', '\u{2}'];
                    prop_assert!(!keys.is_empty() && !keys.contains(forbidden), "KEYS {:?}", keys);
                }
                let back = mapping::unmap(&message.as_stored())
                    .map_err(|e| TestCaseError::fail(e.to_string()))?;
                prop_assert_eq!(back.key(), record.key());
                prop_assert_eq!(back.value(), record.value());
                prop_assert_eq!(sorted_by_name(&back), sorted_by_name(&record));
                prop_assert_eq!(&back.topic, &record.topic);
                prop_assert_eq!(back.partition, record.partition);
                prop_assert_eq!(back.offset, record.offset);
                prop_assert_eq!(back.timestamp, record.timestamp);
            }
            // The documented reasons only, and only when the sizes say so;
            // values here are never empty.
            Err(Rejection::OversizedBody { size, limit })
            | Err(Rejection::OversizedProperties { size, limit }) => prop_assert!(size > limit),
            Err(rejection) => prop_assert!(false, "rejected for no reason: {rejection}"),
        }
    }
}

#[test]
fn a_null_header_before_a_plain_one_of_the_same_name_keeps_its_place() {
    // Found by the property above: the first *carriable* header of a name
    // became the plain property, so a null header before it moved behind it.
    let record = SourceRecord::new(
        "t",
        0,
        0,
        None,
        None,
        Some(b"v"),
        [("a", None), ("a", Some(&b"x"[..]))],
    );
    let rules = MappingRules {
        tag: None,
        tag_header: None,
        max_message_size: 4 << 20,
        loop_prevention: false,
    };
    let message = mapping::map_record(&record, &rules).expect("mappable");
    assert!(
        message.properties.iter().all(|(name, _)| name != "a"),
        "{:?}",
        message.properties
    );
    let back = mapping::unmap(&message.as_stored()).expect("unmappable");
    assert!(back.headers().eq(record.headers()));
}
