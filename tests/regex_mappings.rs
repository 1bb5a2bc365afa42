//! `kafka_topic_regex` against the real brokers: expansion in `check`,
//! illegal derived names refused, and `run` copying every matched topic.

use std::time::Duration;

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn regex_mappings_expand_check_and_copy() {
    let brokers = brokers();
    let base = unique("rx").replace('-', "x");
    let (eu, us) = (format!("{base}.eu"), format!("{base}.us"));
    let (eu_target, us_target) = (format!("m_{base}_eu"), format!("m_{base}_us"));
    // Create the Kafka topics and RocketMQ targets with a plain config first.
    let plain = config_file(&config_text(
        &brokers.kafka,
        &brokers.name_server,
        &[(&eu, &eu_target), (&us, &us_target)],
    ));
    create_topics(plain.path(), 2, 2);

    let regex_config = |extra: &str| {
        let text = config_text(&brokers.kafka, &brokers.name_server, &[]);
        config_file(&format!(
            "{text}  - kafka_topic_regex: \"{base}\\\\..*\"\n    rocketmq_topic: \"m_{{topic}}\"\n{extra}\
             metrics:\n  listen: \"127.0.0.1:{}\"\n",
            closed_port()
        ))
    };

    // Without a replacement, `eu.x` style names are illegal in RocketMQ: refused with a hint.
    let strict = regex_config("");
    let output = run(&["check", "--config", strict.path().to_str().unwrap()]);
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(1), "{text}");
    assert!(text.contains(&format!("Kafka topic `{eu}` (matched by `{base}\\..*`) gives RocketMQ topic `m_{eu}`, which is not a legal name")), "{text}");
    assert!(
        text.contains("set `replace_illegal_chars: \"_\"`"),
        "{text}"
    );

    let lenient = regex_config("    replace_illegal_chars: \"_\"\n");
    let output = run(&["check", "--config", lenient.path().to_str().unwrap()]);
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(0), "{text}");
    assert!(
        text.contains(&eu) && text.contains(&eu_target) && text.contains(&us_target),
        "{text}"
    );

    let producer = kafka_producer(&brokers.kafka);
    produce(&producer, &eu, &keyed_records("eu", 300, 5)).await;
    produce(&producer, &us, &keyed_records("us", 200, 5)).await;
    let mut bridge = BridgeProcess::start(lenient.path());
    let reader = Reader::new(&brokers.name_server).await;
    assert_eq!(
        reader
            .wait_for_count(&eu_target, 300, Duration::from_secs(120))
            .await,
        300,
        "{}",
        bridge.logs()
    );
    assert_eq!(
        reader
            .wait_for_count(&us_target, 200, Duration::from_secs(60))
            .await,
        200,
        "{}",
        bridge.logs()
    );
    bridge.stop_gracefully(Duration::from_secs(30));
    assert!(
        reader
            .read(&us_target)
            .await
            .iter()
            .all(|m| coordinates(m).0 == us)
    );
    reader.close().await;
}
