//! Fuzz target: `config::load_str` answers any text with a config or an
//! error naming the file, and never panics.

#![no_main]

use kafka_rocketmq_bridge::config;
use libfuzzer_sys::fuzz_target;

fn lookup(name: &str) -> Option<String> {
    match name {
        "SET" => Some("kafka-1:9092".to_string()),
        "EMPTY" => Some(String::new()),
        "NEWLINE" => Some("a\nb".to_string()),
        _ => None,
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Err(error) = config::load_str(text, "fuzz.yaml", lookup) {
        let shown = error.to_string();
        assert!(shown.starts_with("fuzz.yaml"), "{shown}");
    }
});
