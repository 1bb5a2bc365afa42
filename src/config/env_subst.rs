//! `${VAR}` and `${VAR:-default}` substitution on the raw config text, so
//! secrets and per-environment values stay out of the file.
//!
//! Comments are left alone, so a file can document the syntax in them.
//! Substitution happens before YAML parsing and never adds or removes a line
//! (a value containing a newline is refused), so YAML error positions still
//! point at the user's file. `$${` is an escape for a literal `${`.

/// A `${VAR}` with no default whose variable is not set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MissingVar {
    pub name: String,
    pub line: usize,
    pub column: usize,
}

/// A problem found while substituting: the variable and where it was used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubstError {
    Missing(MissingVar),
    Unterminated {
        line: usize,
        column: usize,
    },
    BadName {
        name: String,
        line: usize,
        column: usize,
    },
    Multiline {
        name: String,
        line: usize,
        column: usize,
    },
}

/// Replaces every reference in `text`, looking variables up with `lookup`.
/// Returns the new text or every problem found, not just the first.
pub fn substitute(
    text: &str,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<String, Vec<SubstError>> {
    let mut out = String::with_capacity(text.len());
    let mut errors = Vec::new();
    for (index, line) in text.split_inclusive('\n').enumerate() {
        let (content, comment) = line.split_at(comment_start(line));
        substitute_line(content, index + 1, &lookup, &mut out, &mut errors);
        out.push_str(comment);
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

fn substitute_line(
    line: &str,
    line_no: usize,
    lookup: &impl Fn(&str) -> Option<String>,
    out: &mut String,
    errors: &mut Vec<SubstError>,
) {
    let mut rest = line;
    let mut consumed = 0usize;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos..];
        let column = consumed + pos + 1;
        if after.starts_with("$${") {
            out.push_str("${");
            advance(&mut rest, &mut consumed, pos + 3);
            continue;
        }
        if !after.starts_with("${") {
            out.push('$');
            advance(&mut rest, &mut consumed, pos + 1);
            continue;
        }
        let Some(close) = after.find('}') else {
            errors.push(SubstError::Unterminated {
                line: line_no,
                column,
            });
            out.push_str(after);
            return;
        };
        let expr = &after[2..close];
        match resolve(expr, lookup) {
            Ok(value) if value.contains('\n') => errors.push(SubstError::Multiline {
                name: var_name(expr).to_string(),
                line: line_no,
                column,
            }),
            Ok(value) => out.push_str(&value),
            Err(err) => errors.push(err.at(line_no, column)),
        }
        advance(&mut rest, &mut consumed, pos + close + 1);
    }
    out.push_str(rest);
}

/// Byte index where a YAML comment starts on `line` (its length if none): a
/// `#` at the start or after whitespace, outside quotes.
fn comment_start(line: &str) -> usize {
    let mut quote = None;
    let mut previous = ' ';
    for (index, c) in line.char_indices() {
        match (quote, c) {
            (None, '#') if previous.is_whitespace() => return index,
            (None, '"' | '\'') => quote = Some(c),
            (Some(open), _) if c == open => quote = None,
            _ => {}
        }
        previous = c;
    }
    line.len()
}

fn advance(rest: &mut &str, consumed: &mut usize, by: usize) {
    *consumed += by;
    *rest = &rest[by..];
}

fn var_name(expr: &str) -> &str {
    expr.split_once(":-").map_or(expr, |(name, _)| name)
}

enum ResolveError {
    Missing(String),
    BadName(String),
}

impl ResolveError {
    fn at(self, line: usize, column: usize) -> SubstError {
        match self {
            ResolveError::Missing(name) => SubstError::Missing(MissingVar { name, line, column }),
            ResolveError::BadName(name) => SubstError::BadName { name, line, column },
        }
    }
}

fn resolve(expr: &str, lookup: &impl Fn(&str) -> Option<String>) -> Result<String, ResolveError> {
    let (name, default) = match expr.split_once(":-") {
        Some((name, default)) => (name, Some(default)),
        None => (expr, None),
    };
    if !is_valid_name(name) {
        return Err(ResolveError::BadName(name.to_string()));
    }
    // Like POSIX `${VAR:-default}`: an empty variable also takes the default.
    match (
        lookup(name).filter(|v| !v.is_empty() || default.is_none()),
        default,
    ) {
        (Some(value), _) => Ok(value),
        (None, Some(default)) => Ok(default.to_string()),
        (None, None) => Err(ResolveError::Missing(name.to_string())),
    }
}

fn is_valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c == '_' || c.is_ascii_alphabetic())
        && chars.all(|c| c == '_' || c.is_ascii_alphanumeric())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "HOST" => Some("kafka-1".into()),
            "EMPTY" => Some(String::new()),
            "NL" => Some("a\nb".into()),
            _ => None,
        }
    }

    #[test]
    fn replaces_set_variables_and_defaults() {
        let text = "a: ${HOST}:9092\nb: ${PORT:-9876}\nc: ${EMPTY:-fallback}\nd: ${EMPTY}\n";
        let out = substitute(text, env).unwrap();
        assert_eq!(out, "a: kafka-1:9092\nb: 9876\nc: fallback\nd: \n");
    }

    #[test]
    fn keeps_plain_dollars_and_unescapes_double_dollar() {
        let out = substitute("p: pa$$word $x $${NOT_A_VAR}", env).unwrap();
        assert_eq!(out, "p: pa$$word $x ${NOT_A_VAR}");
    }

    #[test]
    fn leaves_comments_alone() {
        let text = "# use ${UNSET} here\na: ${HOST} # or ${UNSET:-x\nb: \"#${HOST}\"\n";
        let out = substitute(text, env).unwrap();
        assert_eq!(
            out,
            "# use ${UNSET} here\na: kafka-1 # or ${UNSET:-x\nb: \"#kafka-1\"\n"
        );
    }

    #[test]
    fn reports_every_missing_variable_with_position() {
        let errors = substitute("a: ${ONE}\nbb: x ${TWO}\n", env).unwrap_err();
        assert_eq!(
            errors,
            vec![
                SubstError::Missing(MissingVar {
                    name: "ONE".into(),
                    line: 1,
                    column: 4
                }),
                SubstError::Missing(MissingVar {
                    name: "TWO".into(),
                    line: 2,
                    column: 7
                }),
            ]
        );
    }

    #[test]
    fn refuses_bad_names_unterminated_and_multiline_values() {
        let errors = substitute("a: ${1X}\nb: ${NL}\nc: ${HOST\n", env).unwrap_err();
        assert_eq!(errors.len(), 3);
        assert!(matches!(&errors[0], SubstError::BadName { name, .. } if name == "1X"));
        assert!(matches!(&errors[1], SubstError::Multiline { name, .. } if name == "NL"));
        assert!(matches!(
            errors[2],
            SubstError::Unterminated { line: 3, column: 4 }
        ));
    }
}
