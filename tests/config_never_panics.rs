//! Property: `config::load_str` answers every input with a config or an
//! error, never a panic: arbitrary text, YAML-shaped noise, and the shipped
//! example config mutated (cut, spliced, lines swapped, hostile tokens put in).

use kafka_rocketmq_bridge::config;
use proptest::prelude::*;

const EXAMPLE: &str = include_str!("../config/example.yaml");

fn lookup(name: &str) -> Option<String> {
    match name {
        "KAFKA_BOOTSTRAP_SERVERS" => Some("kafka-1:9092".to_string()),
        "EMPTY" => Some(String::new()),
        "NEWLINE" => Some("a\nb".to_string()),
        "QUOTE" => Some("x\", group.id: \"y".to_string()),
        _ => None,
    }
}

/// Pieces of YAML and of the bridge's own syntax, to build and splice with.
const TOKENS: &[&str] = &[
    ":",
    ": ",
    "- ",
    "-",
    "[",
    "]",
    "{",
    "}",
    ",",
    "\n",
    "\n  ",
    "\t",
    "#",
    "'",
    "\"",
    "&a ",
    "*a",
    "<<: *a",
    "!!binary ",
    "!tag ",
    "? ",
    "|",
    ">",
    "~",
    "null",
    "true",
    "0",
    "-1",
    "1.5",
    "18446744073709551616",
    "0x1F",
    "1e400",
    ".nan",
    "${",
    "${KAFKA_BOOTSTRAP_SERVERS}",
    "${EMPTY:-d}",
    "${NEWLINE}",
    "${QUOTE}",
    "${UNSET}",
    "$${",
    "{topic}",
    "kafka",
    "rocketmq",
    "mappings",
    "bridge",
    "metrics",
    "kafka_topic",
    "kafka_topic_regex",
    "rocketmq_topic",
    "properties",
    "property_files",
    "secret_key_file",
    "rate_limit",
    "0ms",
    "4GiB",
    "99999999999h",
    "\u{1}",
    "\u{feff}",
    "é",
    "%",
    "---\n",
    "...\n",
];

fn yaml_noise() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(TOKENS), 0..60).prop_map(|tokens| tokens.concat())
}

/// One edit of a text; positions are taken modulo its length.
#[derive(Debug, Clone)]
enum Mutation {
    Cut { at: usize, len: usize },
    Insert { at: usize, token: &'static str },
    SwapLines { a: usize, b: usize },
    DuplicateLine { at: usize },
    Indent { at: usize, by: usize },
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), 1..40usize).prop_map(|(at, len)| Mutation::Cut { at, len }),
        (any::<usize>(), prop::sample::select(TOKENS))
            .prop_map(|(at, token)| Mutation::Insert { at, token }),
        (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Mutation::SwapLines { a, b }),
        any::<usize>().prop_map(|at| Mutation::DuplicateLine { at }),
        (any::<usize>(), 1..5usize).prop_map(|(at, by)| Mutation::Indent { at, by }),
    ]
}

/// The nearest char boundary at or before `at`.
fn boundary(text: &str, at: usize) -> usize {
    let mut at = at.min(text.len());
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    at
}

fn apply(text: &str, mutation: &Mutation) -> String {
    let n = text.len().max(1);
    match *mutation {
        Mutation::Cut { at, len } => {
            let start = boundary(text, at % n);
            let end = boundary(text, start + len);
            format!("{}{}", &text[..start], &text[end..])
        }
        Mutation::Insert { at, token } => {
            let at = boundary(text, at % (text.len() + 1));
            format!("{}{token}{}", &text[..at], &text[at..])
        }
        Mutation::SwapLines { a, b } => {
            let mut lines: Vec<&str> = text.split('\n').collect();
            let count = lines.len();
            lines.swap(a % count, b % count);
            lines.join("\n")
        }
        Mutation::DuplicateLine { at } => {
            let mut lines: Vec<&str> = text.split('\n').collect();
            let at = at % lines.len();
            lines.insert(at, lines[at]);
            lines.join("\n")
        }
        Mutation::Indent { at, by } => {
            let mut lines: Vec<String> = text.split('\n').map(str::to_string).collect();
            let at = at % lines.len();
            lines[at] = format!("{}{}", " ".repeat(by), lines[at]);
            lines.join("\n")
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn arbitrary_text_never_panics(text in any::<String>()) {
        let _ = config::load_str(&text, "fuzz.yaml", lookup);
    }

    #[test]
    fn yaml_noise_never_panics(text in yaml_noise()) {
        let _ = config::load_str(&text, "fuzz.yaml", lookup);
    }

    #[test]
    fn mutated_example_never_panics(mutations in prop::collection::vec(mutation(), 1..8)) {
        let text = mutations.iter().fold(EXAMPLE.to_string(), |text, m| apply(&text, m));
        if let Err(error) = config::load_str(&text, "fuzz.yaml", lookup) {
            // Every problem names the file.
            let shown = error.to_string();
            prop_assert!(shown.starts_with("fuzz.yaml"), "{shown}");
        }
    }
}

#[test]
fn the_unmutated_example_loads() {
    config::load_str(EXAMPLE, "example.yaml", lookup).unwrap_or_else(|e| panic!("{e}"));
}
