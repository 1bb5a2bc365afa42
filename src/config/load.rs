//! The loading pipeline: substitute `${VAR}`, parse YAML, deserialize each
//! section on its own (so one bad section does not hide problems in the
//! others), then run the semantic checks in `validate`.

use std::path::Path;

use serde::de::DeserializeOwned;
use serde_yaml::Value;

use super::env_subst::{self, SubstError};
use super::locate::{self, Segment};
use super::{
    BridgeConfig, BridgeSettings, ConfigError, ConfigProblem, KafkaConfig, MappingConfig,
    MetricsConfig, RateLimit, RocketMqConfig, secret_files, validate,
};

/// Reads, substitutes and validates the config file at `path`.
pub fn load_file(path: &Path) -> Result<BridgeConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        file: path.to_path_buf(),
        source,
    })?;
    // Relative `*_file` paths are taken from the config file's folder, so a
    // config and its secrets can move together.
    let base_dir = path.parent().filter(|dir| !dir.as_os_str().is_empty());
    load_text(
        &text,
        &path.display().to_string(),
        |name| std::env::var(name).ok(),
        base_dir,
    )
}

/// Loads a config from text; `file` is only used to label problems.
/// Relative `*_file` paths are taken from the working directory.
pub fn load_str(
    text: &str,
    file: &str,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<BridgeConfig, ConfigError> {
    load_text(text, file, lookup, None)
}

fn load_text(
    text: &str,
    file: &str,
    lookup: impl Fn(&str) -> Option<String>,
    base_dir: Option<&Path>,
) -> Result<BridgeConfig, ConfigError> {
    let invalid = |problems| ConfigError::Invalid {
        file: file.to_string(),
        problems,
    };
    let substituted = env_subst::substitute(text, lookup)
        .map_err(|errors| invalid(errors.iter().map(|e| subst_problem(text, e)).collect()))?;
    let text = substituted;
    let value: Value =
        serde_yaml::from_str(&text).map_err(|e| invalid(vec![syntax_problem(&text, &e)]))?;
    let mut problems = Problems {
        text: &text,
        list: Vec::new(),
    };
    let mut sections = deserialize_root(&value, &mut problems);
    // Each section that parsed is checked even when another did not, so one
    // typo does not hide the problems of the rest of the file.
    validate::validate(&sections, &mut problems);
    secret_files::resolve(
        sections.kafka.as_mut(),
        sections.rocketmq.as_mut(),
        base_dir,
        &mut problems,
    );
    match sections.complete() {
        Some(config) if problems.list.is_empty() => Ok(config),
        _ => Err(invalid(problems.list)),
    }
}

/// The sections of a config, each `None` when it could not be deserialized.
#[derive(Default)]
pub(super) struct Sections {
    pub kafka: Option<KafkaConfig>,
    pub rocketmq: Option<RocketMqConfig>,
    pub mappings: Option<Vec<MappingConfig>>,
    pub metrics: Option<MetricsConfig>,
    pub bridge: Option<BridgeSettings>,
}

impl Sections {
    fn complete(self) -> Option<BridgeConfig> {
        Some(BridgeConfig {
            kafka: self.kafka?,
            rocketmq: self.rocketmq?,
            mappings: self.mappings?,
            metrics: self.metrics?,
            bridge: self.bridge?,
        })
    }
}

/// Problems found so far, and the text needed to give each one a line.
pub(super) struct Problems<'a> {
    text: &'a str,
    list: Vec<ConfigProblem>,
}

impl Problems<'_> {
    pub(super) fn push(&mut self, path: &[Segment], message: impl Into<String>) {
        self.list.push(ConfigProblem {
            line: locate::line_of(self.text, path),
            column: None,
            field: locate::display_path(path),
            message: message.into(),
        });
    }
}

const ROOT_KEYS: &[&str] = &["kafka", "rocketmq", "mappings", "metrics", "bridge"];

fn deserialize_root(value: &Value, problems: &mut Problems) -> Sections {
    let Value::Mapping(root) = value else {
        let message = match value {
            Value::Null => "the file is empty: see config/example.yaml for every key".to_string(),
            _ => "the top level must be a map with the sections kafka, rocketmq, mappings and metrics".to_string(),
        };
        problems.push(&[], message);
        return Sections::default();
    };
    for key in root.keys() {
        let name = key_text(key);
        if !ROOT_KEYS.contains(&name.as_str()) {
            problems.push(
                &[Segment::Key(name.clone())],
                unknown_key_message(&name, ROOT_KEYS),
            );
        }
    }
    Sections {
        kafka: required_section(root.get("kafka"), "kafka", problems),
        rocketmq: required_section(root.get("rocketmq"), "rocketmq", problems),
        mappings: mappings(root.get("mappings"), problems),
        metrics: optional_section(root.get("metrics"), "metrics", problems),
        bridge: optional_section(root.get("bridge"), "bridge", problems),
    }
}

fn optional_section<T: DeserializeOwned + Default>(
    value: Option<&Value>,
    name: &str,
    problems: &mut Problems,
) -> Option<T> {
    match value {
        None | Some(Value::Null) => Some(T::default()),
        Some(value) => section(value, vec![Segment::Key(name.to_string())], problems),
    }
}

fn required_section<T: DeserializeOwned>(
    value: Option<&Value>,
    name: &str,
    problems: &mut Problems,
) -> Option<T> {
    let path = vec![Segment::Key(name.to_string())];
    match value {
        None | Some(Value::Null) => {
            problems.push(
                &path,
                format!("the `{name}` section is missing: see config/example.yaml"),
            );
            None
        }
        Some(value) => section(value, path, problems),
    }
}

fn mappings(value: Option<&Value>, problems: &mut Problems) -> Option<Vec<MappingConfig>> {
    let path = vec![Segment::Key("mappings".into())];
    let items = match value {
        None | Some(Value::Null) => {
            problems.push(&path, "the `mappings` list is missing: add at least one kafka_topic -> rocketmq_topic mapping");
            return None;
        }
        Some(Value::Sequence(items)) => items,
        Some(_) => {
            problems.push(
                &path,
                "must be a list of mappings (each item starts with `- kafka_topic: ...`)",
            );
            return None;
        }
    };
    let parsed: Vec<Option<MappingConfig>> = items
        .iter()
        .enumerate()
        .map(|(index, item)| {
            let mut item_path = path.clone();
            item_path.push(Segment::Index(index));
            section(item, item_path, problems)
        })
        .collect();
    parsed.into_iter().collect()
}

/// Deserializes one section, reporting every unknown key and the first type
/// error inside it (serde stops at the first one).
fn section<T: DeserializeOwned>(
    value: &Value,
    base: Vec<Segment>,
    problems: &mut Problems,
) -> Option<T> {
    let mut unknown: Vec<Vec<Segment>> = Vec::new();
    let result: Result<T, _> = {
        let mut record = |path: serde_ignored::Path| unknown.push(ignored_segments(&path));
        let deserializer = serde_ignored::Deserializer::new(value.clone(), &mut record);
        serde_path_to_error::deserialize(deserializer)
    };
    let known = struct_fields::<T>();
    for relative in unknown {
        let Some(Segment::Key(name)) = relative.last() else {
            continue;
        };
        let mut full = base.clone();
        full.extend(relative.iter().cloned());
        let message = if relative.len() == 1 {
            unknown_key_message(name, known)
        } else if relative.iter().rev().nth(1) == Some(&Segment::Key("rate_limit".to_string())) {
            unknown_key_message(name, struct_fields::<RateLimit>())
        } else {
            format!("unknown key `{name}`")
        };
        problems.push(&full, message);
    }
    match result {
        Ok(parsed) => Some(parsed),
        Err(error) => {
            let mut full = base;
            full.extend(error.path().iter().filter_map(path_segment));
            problems.push(&full, type_error_message(error.inner()));
            None
        }
    }
}

fn ignored_segments(path: &serde_ignored::Path) -> Vec<Segment> {
    use serde_ignored::Path;
    match path {
        Path::Root => Vec::new(),
        Path::Seq { parent, index } => {
            let mut out = ignored_segments(parent);
            out.push(Segment::Index(*index));
            out
        }
        Path::Map { parent, key } => {
            let mut out = ignored_segments(parent);
            out.push(Segment::Key(key.clone()));
            out
        }
        Path::Some { parent }
        | Path::NewtypeStruct { parent }
        | Path::NewtypeVariant { parent } => ignored_segments(parent),
    }
}

fn path_segment(segment: &serde_path_to_error::Segment) -> Option<Segment> {
    match segment {
        serde_path_to_error::Segment::Seq { index } => Some(Segment::Index(*index)),
        serde_path_to_error::Segment::Map { key } => Some(Segment::Key(key.clone())),
        serde_path_to_error::Segment::Enum { .. } | serde_path_to_error::Segment::Unknown => None,
    }
}

fn type_error_message(error: &serde_yaml::Error) -> String {
    let text = error.to_string();
    // serde's wording for a bad enum value is good; for a missing field we add what to do.
    if let Some(field) = text
        .strip_prefix("missing field `")
        .and_then(|t| t.strip_suffix('`'))
    {
        return format!("required key `{field}` is missing");
    }
    plain_type_names(&text)
}

/// serde names Rust types ("expected struct KafkaConfig", "expected u32",
/// "unit value"); users wrote YAML, so say it in YAML's terms.
fn plain_type_names(text: &str) -> String {
    let mut out = text.replace("unit value", "empty value");
    if let Some(start) = out.find("expected struct ") {
        out.replace_range(start.., "expected a map of keys (see config/example.yaml)");
    }
    for (rust, plain) in [
        ("expected usize", "expected a whole number"),
        ("expected u64", "expected a whole number"),
        ("expected u32", "expected a whole number up to 4294967295"),
        ("expected i64", "expected a whole number"),
    ] {
        if let Some(stripped) = out.strip_suffix(rust) {
            out = format!("{stripped}{plain}");
        }
    }
    out
}

fn key_text(key: &Value) -> String {
    match key {
        Value::String(s) => s.clone(),
        other => serde_yaml::to_string(other)
            .map(|s| s.trim().to_string())
            .unwrap_or_default(),
    }
}

fn unknown_key_message(name: &str, known: &[&str]) -> String {
    match nearest(name, known) {
        Some(suggestion) => format!("unknown key `{name}`: did you mean `{suggestion}`?"),
        None => format!(
            "unknown key `{name}`: valid keys here are {}",
            known.join(", ")
        ),
    }
}

/// The known key closest to `name` by edit distance, if it is close enough
/// to be a plausible typo.
fn nearest<'a>(name: &str, known: &[&'a str]) -> Option<&'a str> {
    let (best, distance) = known
        .iter()
        .map(|candidate| (*candidate, edit_distance(name, candidate)))
        .min_by_key(|(_, distance)| *distance)?;
    let limit = (name.chars().count() / 3).max(2);
    (distance <= limit).then_some(best)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut current = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != *cb);
            current[j + 1] = substitution.min(previous[j + 1] + 1).min(current[j] + 1);
        }
        previous = current;
    }
    previous[b.len()]
}

/// The field names serde derives for `T`, read by asking `T` to deserialize
/// itself from a deserializer that only records them.
fn struct_fields<T: DeserializeOwned>() -> &'static [&'static str] {
    let mut fields: &'static [&'static str] = &[];
    let _ = T::deserialize(FieldRecorder {
        fields: &mut fields,
    });
    fields
}

struct FieldRecorder<'a> {
    fields: &'a mut &'static [&'static str],
}

#[derive(Debug)]
struct Recorded;

impl std::fmt::Display for Recorded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("field names recorded")
    }
}

impl std::error::Error for Recorded {}

impl serde::de::Error for Recorded {
    fn custom<M: std::fmt::Display>(_: M) -> Self {
        Recorded
    }
}

impl<'de> serde::Deserializer<'de> for FieldRecorder<'_> {
    type Error = Recorded;

    fn deserialize_any<V: serde::de::Visitor<'de>>(self, _: V) -> Result<V::Value, Recorded> {
        Err(Recorded)
    }

    fn deserialize_struct<V: serde::de::Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        _visitor: V,
    ) -> Result<V::Value, Recorded> {
        *self.fields = fields;
        Err(Recorded)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier
        ignored_any
    }
}

fn subst_problem(text: &str, error: &SubstError) -> ConfigProblem {
    let (line, column, message) = match error {
        SubstError::Missing(missing) => (
            missing.line,
            missing.column,
            format!(
                "environment variable `{}` is not set: export it, or write `${{{}:-default}}`",
                missing.name, missing.name
            ),
        ),
        SubstError::Unterminated { line, column } => (
            *line,
            *column,
            "`${` without a closing `}` (write `$${` for a literal `${`)".to_string(),
        ),
        SubstError::BadName { name, line, column } => (
            *line,
            *column,
            format!("`{name}` is not a valid environment variable name (letters, digits, `_`)"),
        ),
        SubstError::Multiline { name, line, column } => (
            *line,
            *column,
            format!("environment variable `{name}` contains a newline"),
        ),
    };
    ConfigProblem {
        line: Some(line),
        column: Some(column),
        // Found before parsing, so only the line is known: name the key written there.
        field: locate::display_path(&locate::path_at(text, line)),
        message,
    }
}

fn syntax_problem(text: &str, error: &serde_yaml::Error) -> ConfigProblem {
    let full = error.to_string();
    let mut location = error
        .location()
        .map(|l| (Some(l.line()), Some(l.column())))
        .unwrap_or((None, None));
    // The position goes in front; libyaml's context ("while parsing a flow
    // sequence at line 3 column 13") often points at the real mistake, so it stays.
    let mut message = match (full.find(" at line "), location.0) {
        (Some(cut), Some(_)) => {
            let rest = &full[cut + " at line ".len()..];
            let after_position = rest
                .find(|c: char| !(c.is_ascii_digit() || c == ' ' || c.is_ascii_alphabetic()))
                .map_or("", |end| &rest[end..]);
            format!("{}{after_position}", &full[..cut])
        }
        _ => full.clone(),
    };
    let line_text = |line: usize| text.lines().nth(line.saturating_sub(1)).unwrap_or("");
    if let (Some(line), _) = location
        && line_text(line).starts_with('\t')
    {
        message.push_str(": YAML does not allow tabs for indentation, use spaces");
    }
    if message.contains("repetition limit exceeded") {
        message = "the `*alias` references expand to too many values (repetition limit exceeded): \
                   write the values out"
            .to_string();
    } else if message.contains("recursion limit exceeded") {
        message = "the document nests too deep (recursion limit exceeded)".to_string();
    } else if message.contains("more than one document") {
        // serde_yaml gives no position here; the second `---` is the place.
        let mut content = false;
        for (index, line) in text.lines().enumerate() {
            if line.starts_with("---") && content {
                location = (Some(index + 1), None);
                break;
            }
            content |= !line.trim().is_empty() && !line.trim_start().starts_with('#');
        }
        message =
            "a second YAML document starts here: the config is one document; remove the `---` \
                   and merge or delete what follows"
                .to_string();
    }
    ConfigProblem {
        line: location.0,
        column: location.1,
        field: String::new(),
        message: format!("YAML syntax error: {message}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_close_keys_only() {
        assert_eq!(
            nearest("bootstrap_server", &["bootstrap_servers", "group_id"]),
            Some("bootstrap_servers")
        );
        assert_eq!(
            nearest("grop_id", &["bootstrap_servers", "group_id"]),
            Some("group_id")
        );
        assert_eq!(nearest("zzzzzz", &["bootstrap_servers", "group_id"]), None);
    }

    #[test]
    fn records_struct_fields() {
        let fields = struct_fields::<MappingConfig>();
        assert!(
            fields.contains(&"kafka_topic") && fields.contains(&"ordering"),
            "{fields:?}"
        );
    }
}
