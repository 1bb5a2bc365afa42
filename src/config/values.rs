//! The configuration's scalar values, each parsed from YAML with an error
//! that says what to write instead: durations (`500ms`), byte sizes
//! (`4MiB`), listen addresses and librdkafka property values.

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use serde::Deserialize;
use serde::de::{self, Visitor};

use super::Secret;

/// A duration written as `500ms`, `10s`, `5m` or `1h`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HumanDuration(pub Duration);

impl HumanDuration {
    pub fn parse(text: &str) -> Option<Duration> {
        let text = text.trim();
        let split = text.find(|c: char| !c.is_ascii_digit())?;
        let (number, unit) = text.split_at(split);
        let value: u64 = number.parse().ok()?;
        let millis = match unit.trim() {
            "ms" => value,
            "s" => value.checked_mul(1000)?,
            "m" => value.checked_mul(60_000)?,
            "h" => value.checked_mul(3_600_000)?,
            _ => return None,
        };
        Some(Duration::from_millis(millis))
    }
}

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = deserializer.deserialize_any(ScalarText("a duration such as 500ms or 30s"))?;
        if text.parse::<u64>().is_ok_and(|n| n > 0) {
            return Err(de::Error::custom(format!(
                "`{text}` has no unit: write {text}s, {text}ms, {text}m or {text}h"
            )));
        }
        match HumanDuration::parse(&text) {
            Some(duration) if !duration.is_zero() => Ok(HumanDuration(duration)),
            _ => Err(de::Error::custom(format!(
                "`{text}` is not a positive duration: write a whole number with ms, s, m or h, for example 500ms or 30s"
            ))),
        }
    }
}

/// A YAML scalar as text: strings as they are, numbers and booleans in
/// Rust's spelling (`1.50` becomes `1.5`). Lists and maps are refused with
/// `expected`.
pub(super) struct ScalarText(pub(super) &'static str);

impl Visitor<'_> for ScalarText {
    type Value = String;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<String, E> {
        Ok(value.to_string())
    }

    fn visit_string<E: de::Error>(self, value: String) -> Result<String, E> {
        Ok(value)
    }

    fn visit_i64<E: de::Error>(self, value: i64) -> Result<String, E> {
        Ok(value.to_string())
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<String, E> {
        Ok(value.to_string())
    }

    fn visit_f64<E: de::Error>(self, value: f64) -> Result<String, E> {
        Ok(value.to_string())
    }

    fn visit_bool<E: de::Error>(self, value: bool) -> Result<String, E> {
        Ok(value.to_string())
    }
}

/// A size written as `4MiB`, `512KiB`, `100kB` or a plain number of bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteSize(pub u64);

impl ByteSize {
    pub fn parse(text: &str) -> Option<u64> {
        let text = text.trim();
        let split = text
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len());
        let (number, unit) = text.split_at(split);
        let value: u64 = number.parse().ok()?;
        let factor: u64 = match unit.trim() {
            "" | "B" => 1,
            "kB" | "KB" => 1_000,
            "MB" => 1_000_000,
            "GB" => 1_000_000_000,
            "KiB" => 1 << 10,
            "MiB" => 1 << 20,
            "GiB" => 1 << 30,
            _ => return None,
        };
        value.checked_mul(factor)
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // Not an untagged enum: its "did not match any variant" says nothing useful.
        let text = deserializer.deserialize_any(ScalarText("a size such as 4MiB"))?;
        match ByteSize::parse(&text) {
            Some(bytes) if bytes > 0 => Ok(ByteSize(bytes)),
            _ => Err(de::Error::custom(format!(
                "`{text}` is not a positive size: write a whole number of bytes, or one with B, kB, MB, GB, KiB, \
                 MiB or GiB, for example 4MiB"
            ))),
        }
    }
}

/// A `host:port` socket address to listen on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListenAddr(pub SocketAddr);

impl<'de> Deserialize<'de> for ListenAddr {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = deserializer.deserialize_any(ScalarText("IP:port, for example 0.0.0.0:9464"))?;
        text.parse().map(ListenAddr).map_err(|_| {
            serde::de::Error::custom(format!(
                "`{text}` is not a listen address: write IP:port, for example 0.0.0.0:9464"
            ))
        })
    }
}

/// A librdkafka property value. YAML numbers and booleans are accepted and
/// passed on as their text, since librdkafka takes every value as a string.
#[derive(Debug, Clone, PartialEq)]
pub enum PropertyValue {
    Text(String),
    Integer(i64),
    Float(f64),
    Bool(bool),
    /// Read from a `kafka.property_files` entry; never deserialized or shown.
    Secret(Secret),
}

impl PropertyValue {
    pub fn as_librdkafka_value(&self) -> String {
        match self {
            PropertyValue::Text(text) => text.clone(),
            PropertyValue::Integer(n) => n.to_string(),
            PropertyValue::Float(x) => x.to_string(),
            PropertyValue::Bool(b) => b.to_string(),
            PropertyValue::Secret(secret) => secret.expose().to_string(),
        }
    }
}

impl<'de> Deserialize<'de> for PropertyValue {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(PropertyValueVisitor)
    }
}

/// By hand rather than `untagged`, whose error ("data did not match any
/// variant") names neither the problem nor the fix.
struct PropertyValueVisitor;

impl Visitor<'_> for PropertyValueVisitor {
    type Value = PropertyValue;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("text, a number or true/false (librdkafka takes every value as text)")
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<PropertyValue, E> {
        Ok(PropertyValue::Text(value.to_string()))
    }

    fn visit_string<E: de::Error>(self, value: String) -> Result<PropertyValue, E> {
        Ok(PropertyValue::Text(value))
    }

    fn visit_i64<E: de::Error>(self, value: i64) -> Result<PropertyValue, E> {
        Ok(PropertyValue::Integer(value))
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<PropertyValue, E> {
        Ok(i64::try_from(value).map_or_else(
            |_| PropertyValue::Text(value.to_string()),
            PropertyValue::Integer,
        ))
    }

    fn visit_f64<E: de::Error>(self, value: f64) -> Result<PropertyValue, E> {
        Ok(PropertyValue::Float(value))
    }

    fn visit_bool<E: de::Error>(self, value: bool) -> Result<PropertyValue, E> {
        Ok(PropertyValue::Bool(value))
    }
}
