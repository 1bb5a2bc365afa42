//! `bridge.daily_verify`: when `run` verifies each closed day by itself. A
//! time of day in an IANA time zone, written as the operator would
//! (`"01:30"` in `"Europe/Paris"`), checked when the file is loaded.

use std::fmt;
use std::num::NonZeroU32;

use chrono::NaiveTime;
use chrono_tz::Tz;
use serde::Deserialize;
use serde::de;

use super::{HumanDuration, ScalarText};

/// The schedule of the daily count-match.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct DailyVerify {
    /// When, each day, to verify the day before.
    pub at: TimeOfDay,
    /// The zone both the time and the days are counted in.
    #[serde(default)]
    pub time_zone: TimeZone,
    /// How long to wait before verifying a day again while it is INCOMPLETE
    /// (the copy has not reached its end yet), until the next day's run.
    #[serde(default = "default_retry_interval")]
    pub retry_interval: HumanDuration,
    /// Records per second each side's scan reads, at most, so that the
    /// copy keeps its rate while the day is verified.
    /// Checked to be at least 1 when the file is loaded.
    #[serde(default = "default_max_scan_rate")]
    pub max_scan_rate: u32,
}

impl DailyVerify {
    pub fn scan_rate(&self) -> NonZeroU32 {
        NonZeroU32::new(self.max_scan_rate).unwrap_or(NonZeroU32::MIN)
    }
}

/// The copy's cost of it is measured by `scripts/bench.sh`.
pub const DEFAULT_MAX_SCAN_RATE: u32 = 50_000;

fn default_max_scan_rate() -> u32 {
    DEFAULT_MAX_SCAN_RATE
}

fn default_retry_interval() -> HumanDuration {
    HumanDuration(std::time::Duration::from_secs(600))
}

/// `HH:MM` or `HH:MM:SS`, 24-hour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeOfDay(pub NaiveTime);

impl<'de> Deserialize<'de> for TimeOfDay {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = deserializer.deserialize_any(ScalarText("a time of day such as \"01:30\""))?;
        NaiveTime::parse_from_str(&text, "%H:%M:%S")
            .or_else(|_| NaiveTime::parse_from_str(&text, "%H:%M"))
            .map(TimeOfDay)
            .map_err(|_| {
                de::Error::custom(format!(
                    "`{text}` is not a time of day: write HH:MM or HH:MM:SS in 24-hour time, in quotes, for example \"01:30\""
                ))
            })
    }
}

/// An IANA time zone, UTC by default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TimeZone(pub Tz);

impl fmt::Display for TimeZone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.name())
    }
}

impl<'de> Deserialize<'de> for TimeZone {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = deserializer.deserialize_any(ScalarText("an IANA time zone such as UTC"))?;
        text.parse::<Tz>().map(TimeZone).map_err(|_| {
            de::Error::custom(format!(
                "`{text}` is not a time zone: use an IANA name such as UTC or Asia/Shanghai"
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_and_zones_parse_as_written_and_refuse_what_is_not() {
        let parsed: DailyVerify =
            serde_yaml::from_str("at: \"01:30\"\ntime_zone: Europe/Paris\n").unwrap();
        assert_eq!(parsed.at.0, NaiveTime::from_hms_opt(1, 30, 0).unwrap());
        assert_eq!(parsed.time_zone.to_string(), "Europe/Paris");
        assert_eq!(parsed.retry_interval.0.as_secs(), 600);
        let parsed: DailyVerify = serde_yaml::from_str("at: \"23:59:30\"\n").unwrap();
        assert_eq!(parsed.at.0, NaiveTime::from_hms_opt(23, 59, 30).unwrap());
        assert_eq!(parsed.time_zone.to_string(), "UTC");
        let error = serde_yaml::from_str::<DailyVerify>("at: \"25:00\"\n").unwrap_err();
        assert!(
            error.to_string().contains("`25:00` is not a time of day"),
            "{error}"
        );
        let error = serde_yaml::from_str::<DailyVerify>("at: \"01:00\"\ntime_zone: Mars/Olympus\n")
            .unwrap_err();
        assert!(
            error
                .to_string()
                .contains("`Mars/Olympus` is not a time zone"),
            "{error}"
        );
    }
}
