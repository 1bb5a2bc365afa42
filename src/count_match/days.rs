//! Calendar days in the operator's time zone: which day a timestamp falls
//! in, and where a day starts and ends, in milliseconds since the epoch.

use chrono::{Days, NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;

/// The days `from..=to` in `zone`.
#[derive(Debug, Clone, Copy)]
pub struct DayRange {
    pub zone: Tz,
    pub from: NaiveDate,
    pub to: NaiveDate,
}

impl DayRange {
    /// `from` and `to` as `YYYY-MM-DD`; `zone` as an IANA name. Errors say what to write.
    pub fn parse(from: Option<&str>, to: Option<&str>, zone: &str) -> Result<Self, String> {
        let zone: Tz = zone.parse().map_err(|_| {
            format!("`{zone}` is not a time zone: use an IANA name such as UTC or Asia/Shanghai")
        })?;
        let today = Utc::now().with_timezone(&zone).date_naive();
        let yesterday = today.pred_opt().unwrap_or(today);
        let parse = |text: &str, flag: &str| {
            NaiveDate::parse_from_str(text, "%Y-%m-%d")
                .map_err(|_| format!("--{flag} `{text}` is not a day: write it as YYYY-MM-DD"))
        };
        let to = to.map(|t| parse(t, "to")).transpose()?.unwrap_or(yesterday);
        let from = from.map(|f| parse(f, "from")).transpose()?.unwrap_or(to);
        if from > to {
            return Err(format!("--from {from} is after --to {to}"));
        }
        if (to - from).num_days() > 366 {
            return Err(format!(
                "--from {from} to --to {to} spans more than a year: verify at most 366 days at once"
            ));
        }
        Ok(DayRange { zone, from, to })
    }

    /// The `count` full days before today in `zone`.
    pub fn last_full_days(count: u32, zone: &str) -> Result<Self, String> {
        if count == 0 {
            return Err("--days must be at least 1".to_string());
        }
        let latest = Self::parse(None, None, zone)?;
        let from = latest
            .to
            .checked_sub_days(Days::new(u64::from(count) - 1))
            .ok_or_else(|| format!("--days {count} reaches before the calendar starts"))?;
        Self::parse(Some(&from.to_string()), Some(&latest.to.to_string()), zone)
    }

    /// Every day of the range, in order.
    pub fn days(&self) -> impl Iterator<Item = NaiveDate> + '_ {
        self.from.iter_days().take_while(|day| *day <= self.to)
    }

    /// The day `millis` falls in, if it is inside the range.
    pub fn day_of(&self, millis: i64) -> Option<NaiveDate> {
        let day = self
            .zone
            .timestamp_millis_opt(millis)
            .single()?
            .date_naive();
        (self.from..=self.to).contains(&day).then_some(day)
    }

    /// First millisecond of `day` and first millisecond of the next day.
    pub fn bounds(&self, day: NaiveDate) -> (i64, i64) {
        let next = day.checked_add_days(Days::new(1)).unwrap_or(day);
        (self.start_of(day), self.start_of(next))
    }

    /// First millisecond of the range and first millisecond after it.
    pub fn span(&self) -> (i64, i64) {
        (self.bounds(self.from).0, self.bounds(self.to).1)
    }

    /// Midnight of `day`, or the first instant after it when a clock change
    /// skips midnight in this zone.
    fn start_of(&self, day: NaiveDate) -> i64 {
        (0..24)
            .find_map(|hour| {
                let local = day.and_hms_opt(hour, 0, 0)?;
                self.zone.from_local_datetime(&local).earliest()
            })
            .map_or(i64::MAX, |start| start.timestamp_millis())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_follow_the_time_zone() {
        let range = DayRange::parse(Some("2026-03-01"), Some("2026-03-03"), "Asia/Shanghai")
            .expect("valid range");
        assert_eq!(range.days().count(), 3);
        // 2026-03-01T16:30:00Z is 2026-03-02 00:30 in Shanghai (UTC+8).
        let millis = 1_772_382_600_000;
        assert_eq!(
            range.day_of(millis),
            NaiveDate::from_ymd_opt(2026, 3, 2),
            "Shanghai day"
        );
        let utc = DayRange::parse(Some("2026-03-01"), Some("2026-03-03"), "UTC").expect("utc");
        assert_eq!(utc.day_of(millis), NaiveDate::from_ymd_opt(2026, 3, 1));
        let (start, end) = range.bounds(NaiveDate::from_ymd_opt(2026, 3, 2).expect("day"));
        assert_eq!(end - start, 86_400_000);
        assert_eq!(
            start, 1_772_380_800_000,
            "midnight in Shanghai is 16:00 UTC"
        );
        assert_eq!(range.day_of(start - 1), NaiveDate::from_ymd_opt(2026, 3, 1));
        assert_eq!(range.day_of(range.span().1), None, "after the range");
    }

    #[test]
    fn a_day_with_a_clock_change_is_23_hours() {
        let range = DayRange::parse(Some("2026-03-08"), Some("2026-03-08"), "America/New_York")
            .expect("valid range");
        let (start, end) = range.bounds(range.from);
        assert_eq!(end - start, 23 * 3_600_000);
    }

    #[test]
    fn bad_input_says_what_to_write() {
        let zone = DayRange::parse(None, None, "Mars/Olympus").expect_err("bad zone");
        assert!(zone.contains("IANA name"), "{zone}");
        let day = DayRange::parse(Some("25/11/2026"), None, "UTC").expect_err("bad day");
        assert!(day.contains("YYYY-MM-DD"), "{day}");
        let order =
            DayRange::parse(Some("2026-03-02"), Some("2026-03-01"), "UTC").expect_err("order");
        assert!(order.contains("is after"), "{order}");
    }

    #[test]
    fn last_full_days_end_yesterday() {
        let range = DayRange::last_full_days(3, "UTC").expect("range");
        assert_eq!(range.days().count(), 3);
        assert_eq!(range.to.succ_opt(), Some(Utc::now().date_naive()));
        assert!(DayRange::last_full_days(0, "UTC").is_err());
    }

    #[test]
    fn the_default_is_yesterday() {
        let range = DayRange::parse(None, None, "UTC").expect("defaults");
        assert_eq!(range.from, range.to);
        assert_eq!(
            range.to.succ_opt(),
            Some(Utc::now().date_naive()),
            "yesterday, the last full day"
        );
    }
}
