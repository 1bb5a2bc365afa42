//! The mapping's unit tests: forward, the inverse, and their edges.

use super::*;

#[test]
fn the_unhashed_system_names_are_rocketmqs_and_provenance_is_not() {
    for name in [
        "UNIQ_KEY",
        "KEYS",
        "TAGS",
        "WAIT",
        "MIN_OFFSET",
        "MAX_OFFSET",
        "CLUSTER",
    ] {
        assert!(
            rocketmq_model::common::message::STRING_HASH_SET.contains(name),
            "{name}"
        );
        assert!(is_system_property(name), "{name}");
    }
    assert!(is_system_property("DELAY"));
    // The bridge's own copy of the client's set holds every name of it.
    for name in rocketmq_model::common::message::STRING_HASH_SET.iter() {
        assert!(is_system_property(name), "{name}");
    }
    for name in [KAFKA_TOPIC, KAFKA_OFFSET, "trace-id", "keys"] {
        assert!(!is_system_property(name), "{name}");
    }
}

fn rules() -> MappingRules {
    MappingRules {
        tag: None,
        tag_header: None,
        max_message_size: 4 << 20,
        loop_prevention: false,
    }
}

fn record() -> RecordParts {
    RecordParts {
        topic: "orders.v1".into(),
        partition: 3,
        offset: 42,
        timestamp: Some((1_700_000_000_123, TimestampType::CreateTime)),
        key: Some(b"customer-7".to_vec()),
        value: Some(b"{\"amount\":5}".to_vec()),
        headers: vec![("source".into(), Some(b"web".to_vec()))],
    }
}

#[test]
fn ordinary_records_are_surely_mappable_and_edge_cases_are_left_to_map_record() {
    let ordinary = record();
    assert!(surely_mappable(&source(&ordinary), &rules()));
    assert!(map_record(&source(&ordinary), &rules()).is_ok());
    let mut empty = record();
    empty.value = Some(Vec::new());
    assert!(!surely_mappable(&source(&empty), &rules()));
    let tight = MappingRules {
        max_message_size: ordinary.value.as_ref().map_or(0, Vec::len) + 10,
        ..rules()
    };
    assert!(
        !surely_mappable(&source(&ordinary), &tight),
        "near the limit: ask map_record"
    );
}

fn source(record: &RecordParts) -> SourceRecord {
    record.clone().into()
}

fn roundtrip(record: &RecordParts, rules: &MappingRules) -> RecordParts {
    let record = source(record);
    let message = map_record(&record, rules).expect("mappable");
    RecordParts::from(&unmap(&message.as_stored()).expect("unmappable"))
}

#[test]
fn plain_record_maps_to_keys_properties_and_provenance() {
    let record = record();
    let record_source = source(&record);
    let message = map_record(&record_source, &rules()).unwrap();
    assert_eq!(message.body, b"{\"amount\":5}");
    assert_eq!(message.keys.as_deref(), Some("customer-7"));
    let expected: Vec<Property> = [
        ("KAFKA_TOPIC", "orders.v1"),
        ("KAFKA_PARTITION", "3"),
        ("KAFKA_OFFSET", "42"),
        ("KAFKA_TIMESTAMP", "1700000000123"),
        ("KAFKA_TIMESTAMP_TYPE", "CreateTime"),
        ("source", "web"),
    ]
    .iter()
    .map(|&(n, v)| (n.into(), v.into()))
    .collect();
    assert_eq!(message.properties, expected);
    assert_eq!(roundtrip(&record, &rules()), record);
}

#[test]
fn keys_with_spaces_are_one_percent_encoded_token() {
    for (key, keys) in [
        ("order 42 eu", "order%2042%20eu"),
        ("50% off now", "50%25%20off%20now"),
    ] {
        let mut r = record();
        r.key = Some(key.as_bytes().to_vec());
        let r_source = source(&r);
        let message = map_record(&r_source, &rules()).unwrap();
        assert_eq!(message.keys.as_deref(), Some(keys));
        assert!(
            message
                .properties
                .contains(&(KAFKA_KEY_ESCAPED.into(), "percent".into()))
        );
        assert_eq!(roundtrip(&r, &rules()), r);
    }
    // Without a space, even a `%` stays verbatim and unmarked.
    let mut r = record();
    r.key = Some(b"100%20".to_vec());
    let r_source = source(&r);
    let message = map_record(&r_source, &rules()).unwrap();
    assert_eq!(message.keys.as_deref(), Some("100%20"));
    assert!(
        message
            .properties
            .iter()
            .all(|(n, _)| n != KAFKA_KEY_ESCAPED)
    );
    assert_eq!(roundtrip(&r, &rules()), r);
}

#[test]
fn binary_empty_and_separator_keys_go_to_base64() {
    for key in [vec![0xff, 0x00, 0x41], vec![], b"a\x01b".to_vec()] {
        let mut r = record();
        r.key = Some(key.clone());
        let r_source = source(&r);
        let message = map_record(&r_source, &rules()).unwrap();
        assert_eq!(message.keys, None);
        let b64 = message
            .properties
            .iter()
            .find(|(n, _)| n == KAFKA_KEY_B64)
            .unwrap();
        let encoded = b64.1.strip_prefix("b64:").unwrap();
        assert_eq!(BASE64.decode(encoded).unwrap(), key);
        // RocketMQ drops properties with empty values, so none may be empty.
        assert!(
            message
                .properties
                .iter()
                .all(|(n, v)| !n.is_empty() && !v.is_empty())
        );
        assert_eq!(roundtrip(&r, &rules()), r);
    }
    let mut r = record();
    r.key = None;
    assert_eq!(roundtrip(&r, &rules()), r);
}

#[test]
fn headers_that_properties_cannot_carry_are_escaped_in_order() {
    let mut r = record();
    r.headers = vec![
        ("b".into(), Some(b"1".to_vec())),
        ("KEYS".into(), Some(b"reserved".to_vec())),
        ("b".into(), Some(b"2".to_vec())),
        ("bin".into(), Some(vec![0xc3, 0x28])),
        ("null".into(), None),
        ("empty".into(), Some(vec![])),
        ("sep".into(), Some(b"x\x02y".to_vec())),
        ("KAFKA_OFFSET".into(), Some(b"spoof".to_vec())),
        ("a".into(), Some(b"0".to_vec())),
    ];
    let r_source = source(&r);
    let message = map_record(&r_source, &rules()).unwrap();
    let names: Vec<&str> = message
        .properties
        .iter()
        .map(|(n, _)| n.as_ref())
        .skip(5)
        .collect();
    assert_eq!(names, ["b", "a", KAFKA_HEADERS_B64]);
    let back = roundtrip(&r, &rules());
    // Direct headers come back sorted by name, then the escaped ones in Kafka order.
    let expected: Vec<Header> = vec![
        ("a".into(), Some(b"0".to_vec())),
        ("b".into(), Some(b"1".to_vec())),
        ("KEYS".into(), Some(b"reserved".to_vec())),
        ("b".into(), Some(b"2".to_vec())),
        ("bin".into(), Some(vec![0xc3, 0x28])),
        ("null".into(), None),
        ("empty".into(), Some(vec![])),
        ("sep".into(), Some(b"x\x02y".to_vec())),
        ("KAFKA_OFFSET".into(), Some(b"spoof".to_vec())),
    ];
    assert_eq!(back.headers, expected);
    assert_eq!(back.offset, 42);
}

#[test]
fn tag_comes_from_the_header_or_the_constant() {
    let mut rules = rules();
    rules.tag = Some("orders".into());
    rules.tag_header = Some("type".into());
    let mut r = record();
    assert_eq!(
        map_record(&source(&r), &rules).unwrap().tag.as_deref(),
        Some("orders")
    );
    r.headers.push(("type".into(), Some(b"refund".to_vec())));
    assert_eq!(
        map_record(&source(&r), &rules).unwrap().tag.as_deref(),
        Some("refund")
    );
    assert_eq!(roundtrip(&r, &rules).headers.len(), 2);
}

#[test]
fn every_reason_is_listed() {
    let rejections = [
        Rejection::EmptyValue,
        Rejection::OversizedBody { size: 2, limit: 1 },
        Rejection::OversizedProperties { size: 2, limit: 1 },
        Rejection::SuspectProvenance { reason: "test" },
        Rejection::BridgeCopy,
    ];
    let reasons: Vec<&str> = rejections.iter().map(Rejection::reason).collect();
    assert_eq!(reasons, Rejection::REASONS);
}

#[test]
fn records_rocketmq_cannot_take_are_rejected_with_a_reason() {
    let mut r = record();
    r.value = None;
    assert_eq!(
        map_record(&source(&r), &rules()),
        Err(Rejection::EmptyValue)
    );
    r.value = Some(vec![]);
    assert_eq!(
        map_record(&source(&r), &rules()),
        Err(Rejection::EmptyValue)
    );

    let mut small = rules();
    small.max_message_size = 100;
    r.value = Some(vec![b'x'; 100]);
    let Err(Rejection::OversizedBody { size, limit: 100 }) = map_record(&source(&r), &small) else {
        panic!()
    };
    assert!(size > 100);

    r.value = Some(b"v".to_vec());
    r.headers = vec![("big".into(), Some(vec![b'h'; 33_000]))];
    let Err(rejection @ Rejection::OversizedProperties { .. }) = map_record(&source(&r), &rules())
    else {
        panic!()
    };
    assert_eq!(rejection.reason(), "oversized_properties");
}

#[test]
fn with_loop_prevention_reverse_copies_stay_and_forgeries_are_rejected() {
    let message = reverse::RocketMqMessage {
        topic: "orders".into(),
        broker: "broker-a".into(),
        queue_id: 1,
        queue_offset: 7,
        msg_id: None,
        keys: None,
        tags: None,
        born_timestamp_ms: 1,
        store_timestamp_ms: 2,
        body: b"v".to_vec().into(),
        properties: vec![],
    };
    let back = reverse::ReverseRules {
        kafka_topic: "t".into(),
        max_message_bytes: 1 << 20,
        forward_ids: crate::config::MessageIds::Deterministic,
    };
    let copy = reverse::map_message(&message, &back).expect("copied back");
    let mut r = record();
    r.topic = "t".into();
    r.headers = copy
        .headers
        .iter()
        .map(|(n, v)| (n.to_string(), Some(v.to_vec())))
        .collect();
    let mut guarded = rules();
    guarded.loop_prevention = true;
    assert_eq!(
        map_record(&source(&r), &guarded),
        Err(Rejection::BridgeCopy)
    );
    assert!(
        !surely_mappable(&source(&r), &guarded),
        "a copy is never surely mappable"
    );
    // Without loop prevention the headers are ordinary headers.
    assert!(map_record(&source(&r), &rules()).is_ok());
    r.headers
        .retain(|(name, _)| name != reverse::ROCKETMQ_COPY_ID);
    let Err(rejection) = map_record(&source(&r), &guarded) else {
        panic!("partial provenance is not a copy")
    };
    assert_eq!(rejection.reason(), "suspect_provenance");
    r.headers.clear();
    assert!(map_record(&source(&r), &guarded).is_ok());
}

#[test]
fn header_list_encoding_roundtrips_and_rejects_truncation() {
    let headers: Vec<Header> = vec![
        ("a".into(), None),
        ("".into(), Some(vec![])),
        ("é".into(), Some(vec![1, 2])),
    ];
    let bytes = encode_header_list(headers.iter().map(|(n, v)| (n.as_str(), v.as_deref())));
    assert_eq!(decode_header_list(&bytes), Some(headers));
    assert_eq!(decode_header_list(&bytes[..bytes.len() - 1]), None);
}
