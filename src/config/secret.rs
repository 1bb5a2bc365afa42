//! A string that never shows itself: Debug and Display print a placeholder,
//! so a secret cannot reach logs, metrics or error messages by accident.
//!
//! Deserializing refuses anything but text without quoting the value: serde's
//! usual "invalid type: integer `12345`" would print an unquoted numeric
//! password straight into the config error.

use std::fmt;

use serde::Deserialize;
use serde::de::{self, Visitor};

#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret itself, for handing to a client library only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// The message for a secret YAML did not read as text; it never holds the value.
pub(super) const NOT_TEXT: &str = "must be quoted text: YAML read the unquoted value as a number or \
                                   boolean, which could change it (for example 0x1F or 1.50); write it \
                                   in quotes, or use the matching *_file key";

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // `any`, not `str`: serde_yaml answers `str` on a number with an error that quotes it.
        deserializer.deserialize_any(SecretVisitor)
    }
}

struct SecretVisitor;

impl Visitor<'_> for SecretVisitor {
    type Value = Secret;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("quoted text")
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<Secret, E> {
        Ok(Secret::new(value))
    }

    fn visit_string<E: de::Error>(self, value: String) -> Result<Secret, E> {
        Ok(Secret(value))
    }

    // The defaults of these would quote the value in the error.
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Secret, E> {
        Err(E::custom(NOT_TEXT))
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Secret, E> {
        Err(E::custom(NOT_TEXT))
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Secret, E> {
        Err(E::custom(NOT_TEXT))
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Secret, E> {
        Err(E::custom(NOT_TEXT))
    }

    fn visit_char<E: de::Error>(self, value: char) -> Result<Secret, E> {
        Ok(Secret(value.to_string()))
    }

    fn visit_bytes<E: de::Error>(self, _: &[u8]) -> Result<Secret, E> {
        Err(E::custom(NOT_TEXT))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_prints_the_value() {
        let secret = Secret::new("hunter2");
        assert_eq!(format!("{secret} {secret:?}"), "*** Secret(***)");
        assert_eq!(secret.expose(), "hunter2");
    }

    #[test]
    fn refuses_non_text_without_quoting_it() {
        let parsed: Secret = serde_yaml::from_str("\"0x1F\"").expect("quoted text");
        assert_eq!(parsed.expose(), "0x1F");
        for unquoted in ["31415926", "-747", "2.718", "true", "[zq9]"] {
            let error = serde_yaml::from_str::<Secret>(unquoted)
                .expect_err(unquoted)
                .to_string();
            let shown = unquoted.trim_matches(['[', ']']);
            assert!(!error.contains(shown), "{unquoted}: {error}");
        }
    }
}
