//! Maps a field path such as `mappings[1].rocketmq_topic` back to a line of
//! the user's YAML file, so every config error can name file and line.
//!
//! serde_yaml keeps no positions once a document is parsed, so this reads the
//! block-style text users write by hand. For flow style (`{a: 1}`) it falls
//! back to the nearest enclosing key it can find.

/// One step of a path into the document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    Key(String),
    Index(usize),
}

/// Formats a path the way error messages show it: `mappings[0].kafka_topic`.
pub fn display_path(path: &[Segment]) -> String {
    let mut out = String::new();
    for segment in path {
        match segment {
            Segment::Key(key) if out.is_empty() => out.push_str(key),
            Segment::Key(key) => {
                out.push('.');
                out.push_str(key);
            }
            Segment::Index(index) => out.push_str(&format!("[{index}]")),
        }
    }
    out
}

/// A key or a sequence dash, at its column, on its 1-based line.
#[derive(Debug)]
struct Entry {
    line: usize,
    indent: usize,
    key: Option<String>,
}

/// Line (1-based) where `path` is written, or the closest ancestor found.
pub fn line_of(text: &str, path: &[Segment]) -> Option<usize> {
    let entries = entries(text);
    let mut scope = 0..entries.len();
    let mut found = None;
    for segment in path {
        let Some(first) = entries.get(scope.start).filter(|_| !scope.is_empty()) else {
            break;
        };
        let indent = first.indent;
        let candidates = entries[scope.clone()]
            .iter()
            .enumerate()
            .filter(|(_, e)| e.indent == indent);
        let hit = match segment {
            Segment::Key(key) => candidates
                .filter(|(_, e)| e.key.as_deref() == Some(key))
                .map(|(i, _)| i)
                .next(),
            Segment::Index(n) => candidates
                .filter(|(_, e)| e.key.is_none())
                .map(|(i, _)| i)
                .nth(*n),
        };
        let Some(offset) = hit else { break };
        let index = scope.start + offset;
        found = Some(entries[index].line);
        let end = entries[index + 1..scope.end]
            .iter()
            .position(|e| e.indent <= indent)
            .map_or(scope.end, |p| index + 1 + p);
        scope = index + 1..end;
    }
    found
}

/// The path of the innermost key or list item written on `line` (1-based),
/// or on the nearest line above it that holds one; empty before the first.
/// Used for problems found before parsing (`${VAR}`), which know only a line.
pub fn path_at(text: &str, line: usize) -> Vec<Segment> {
    /// A key or list item that is open at the current line.
    struct Frame {
        indent: usize,
        segment: Segment,
        /// List items seen directly under it so far.
        items: usize,
    }
    let mut stack: Vec<Frame> = Vec::new();
    let mut top_level_items = 0;
    let mut found = Vec::new();
    for entry in entries(text) {
        if entry.line > line {
            break;
        }
        while stack.last().is_some_and(|top| top.indent >= entry.indent) {
            stack.pop();
        }
        let segment = match entry.key {
            Some(key) => Segment::Key(key),
            None => {
                let counter = stack
                    .last_mut()
                    .map_or(&mut top_level_items, |parent| &mut parent.items);
                *counter += 1;
                Segment::Index(*counter - 1)
            }
        };
        stack.push(Frame {
            indent: entry.indent,
            segment,
            items: 0,
        });
        found = stack.iter().map(|frame| frame.segment.clone()).collect();
    }
    found
}

fn entries(text: &str) -> Vec<Entry> {
    let mut out = Vec::new();
    for (number, raw) in text.lines().enumerate() {
        let trimmed = raw.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') || trimmed.starts_with("---") {
            continue;
        }
        let mut indent = raw.len() - trimmed.len();
        let mut rest = trimmed;
        // `- key: v` holds a dash and, two columns further in, a key.
        while let Some(after) =
            rest.strip_prefix("- ")
                .or(if rest == "-" { Some("") } else { None })
        {
            out.push(Entry {
                line: number + 1,
                indent,
                key: None,
            });
            let inner = after.trim_start();
            indent += rest.len() - inner.len();
            rest = inner;
            if rest.is_empty() {
                break;
            }
        }
        if let Some(key) = key_of(rest) {
            out.push(Entry {
                line: number + 1,
                indent,
                key: Some(key),
            });
        }
    }
    out
}

fn key_of(content: &str) -> Option<String> {
    let end = content
        .find(": ")
        .or_else(|| content.strip_suffix(':').map(str::len))?;
    let key = content[..end].trim();
    let unquoted = key
        .strip_prefix('"')
        .and_then(|k| k.strip_suffix('"'))
        .or_else(|| key.strip_prefix('\'').and_then(|k| k.strip_suffix('\'')))
        .unwrap_or(key);
    Some(unquoted.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = "\
# comment
kafka:
  bootstrap_servers: \"x\"
  properties:
    session.timeout.ms: \"6000\"
mappings:
  - kafka_topic: a
    rocketmq_topic: a
  -
    kafka_topic: b
    rocketmq_topic: \"b.c\"
metrics: {listen: \"x\"}
";

    fn key(k: &str) -> Segment {
        Segment::Key(k.into())
    }

    #[test]
    fn finds_nested_keys_and_sequence_items() {
        assert_eq!(
            line_of(DOC, &[key("kafka"), key("bootstrap_servers")]),
            Some(3)
        );
        assert_eq!(
            line_of(
                DOC,
                &[key("kafka"), key("properties"), key("session.timeout.ms")]
            ),
            Some(5)
        );
        assert_eq!(
            line_of(
                DOC,
                &[key("mappings"), Segment::Index(0), key("kafka_topic")]
            ),
            Some(7)
        );
        assert_eq!(
            line_of(
                DOC,
                &[key("mappings"), Segment::Index(0), key("rocketmq_topic")]
            ),
            Some(8)
        );
        assert_eq!(
            line_of(
                DOC,
                &[key("mappings"), Segment::Index(1), key("rocketmq_topic")]
            ),
            Some(11)
        );
    }

    #[test]
    fn falls_back_to_the_nearest_ancestor() {
        assert_eq!(line_of(DOC, &[key("metrics"), key("listen")]), Some(12));
        assert_eq!(
            line_of(DOC, &[key("mappings"), Segment::Index(1), key("ordering")]),
            Some(9)
        );
        assert_eq!(line_of(DOC, &[key("nope")]), None);
    }

    #[test]
    fn finds_the_path_written_on_a_line() {
        let at = |line| display_path(&path_at(DOC, line));
        assert_eq!(at(1), "");
        assert_eq!(at(3), "kafka.bootstrap_servers");
        assert_eq!(at(5), "kafka.properties.session.timeout.ms");
        assert_eq!(at(7), "mappings[0].kafka_topic");
        assert_eq!(at(8), "mappings[0].rocketmq_topic");
        assert_eq!(at(9), "mappings[1]");
        assert_eq!(at(11), "mappings[1].rocketmq_topic");
        assert_eq!(at(12), "metrics");
        assert_eq!(at(99), "metrics");
    }

    #[test]
    fn displays_paths_like_the_error_messages() {
        let path = [key("mappings"), Segment::Index(2), key("kafka_topic")];
        assert_eq!(display_path(&path), "mappings[2].kafka_topic");
    }
}
