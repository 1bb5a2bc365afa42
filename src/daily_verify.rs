//! The daily count-match inside `run` (`bridge.daily_verify`): at a set time
//! of day it verifies the day before, as `verify` would, in both directions, and again every
//! `retry_interval` while that day is INCOMPLETE (the copy has not reached
//! its end yet), until the next day's run. Each report is logged, its
//! verdicts and counts become `bridge_verify_*` metrics, and the last days
//! are kept for `/status` and the console. The scan is paced
//! (`max_scan_rate`) so that the copy it runs beside keeps its rate.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Days, NaiveDate, TimeZone as _, Utc};
use tokio::task::JoinHandle;

use crate::config::{BridgeConfig, DailyVerify, Direction};
use crate::count_match::days::DayRange;
use crate::count_match::{
    DayRow, DayVerdicts, Progress, Verdict, VerifyReport, VerifyRequest, verify,
};
use crate::metrics::{VERIFY_LAST_RUN, VERIFY_RECORDS, VERIFY_VERDICT};
use crate::status::{StatusBoard, VerifiedDay};

/// How far before the day `verify` starts reading (as `cutover-check` does).
const SLACK: Duration = Duration::from_secs(3600);
/// Differences named in the log for a MISMATCH.
const MAX_LISTED: usize = 10;

/// Starts the schedule; abort the task to stop it.
pub fn spawn(
    config: BridgeConfig,
    schedule: DailyVerify,
    status: Arc<StatusBoard>,
) -> JoinHandle<()> {
    tracing::info!(
        at = %schedule.at.0, time_zone = %schedule.time_zone,
        "daily count-match scheduled: each day at this time, the day before is verified"
    );
    tokio::spawn(async move {
        loop {
            let run_at = next_run(Utc::now(), &schedule);
            sleep_until(run_at).await;
            let day = day_before(run_at, &schedule);
            let next = next_run(run_at + chrono::Duration::seconds(1), &schedule);
            verify_until_decided(&config, &schedule, day, next, &status).await;
        }
    })
}

/// The first time after `now` that the schedule fires.
pub fn next_run(now: DateTime<Utc>, schedule: &DailyVerify) -> DateTime<Utc> {
    let zone = schedule.time_zone.0;
    let today = now.with_timezone(&zone).date_naive();
    [today, today + Days::new(1), today + Days::new(2)]
        .into_iter()
        .filter_map(|day| {
            // A time skipped by a daylight-saving change fires an hour later.
            let local = day.and_time(schedule.at.0);
            zone.from_local_datetime(&local).earliest().or_else(|| {
                zone.from_local_datetime(&(local + chrono::Duration::hours(1)))
                    .earliest()
            })
        })
        .map(|at| at.with_timezone(&Utc))
        .find(|at| *at > now)
        .unwrap_or(now + chrono::Duration::days(1))
}

/// The day before the one `run_at` falls on, in the schedule's zone.
pub fn day_before(run_at: DateTime<Utc>, schedule: &DailyVerify) -> NaiveDate {
    let local = run_at.with_timezone(&schedule.time_zone.0).date_naive();
    local.pred_opt().unwrap_or(local)
}

async fn sleep_until(at: DateTime<Utc>) {
    let wait = (at - Utc::now()).to_std().unwrap_or(Duration::ZERO);
    tokio::time::sleep(wait).await;
}

/// Verifies `day`, again every retry interval while it is INCOMPLETE or
/// `verify` could not run, but not past `next` (the next day's run).
async fn verify_until_decided(
    config: &BridgeConfig,
    schedule: &DailyVerify,
    day: NaiveDate,
    next: DateTime<Utc>,
    status: &StatusBoard,
) {
    loop {
        let decided = match verify_day(config, schedule, day).await {
            Ok(report) => {
                publish(&report, status);
                !report.rows.iter().any(|r| r.verdict == Verdict::Incomplete)
            }
            Err(error) => {
                tracing::warn!(%day, %error, "daily count-match could not run; it will be tried again");
                false
            }
        };
        let retry_at = Utc::now() + schedule.retry_interval.0;
        if decided || retry_at >= next {
            return;
        }
        sleep_until(retry_at).await;
    }
}

async fn verify_day(
    config: &BridgeConfig,
    schedule: &DailyVerify,
    day: NaiveDate,
) -> Result<VerifyReport, String> {
    let text = day.to_string();
    tracing::info!(%day, rate = schedule.max_scan_rate, "daily count-match: verifying (records per second per side, at most)");
    let days = DayRange::parse(Some(&text), Some(&text), schedule.time_zone.0.name())?;
    let request = VerifyRequest {
        days,
        mapping: None,
        slack: SLACK,
        max_listed: MAX_LISTED,
        as_of: None,
    };
    let paced = Progress::hidden().paced(schedule.scan_rate());
    verify(config, &request, &paced)
        .await
        .map_err(|e| e.to_string())
}

/// A row's counts as (Kafka's, RocketMQ's): the source's records to copy
/// and the target's first copies, Kafka being the source forward and the
/// target on the way back.
fn per_side(row: &DayRow) -> (u64, u64) {
    match row.direction {
        Direction::KafkaToRocketmq => (row.expected, row.copies),
        Direction::RocketmqToKafka => (row.copies, row.expected),
    }
}

/// Logs the report, sets the metrics and keeps the rows for `/status`.
fn publish(report: &VerifyReport, status: &StatusBoard) {
    let checked_at = Utc::now();
    for row in &report.rows {
        for verdict in [Verdict::Match, Verdict::Mismatch, Verdict::Incomplete] {
            let value = if row.verdict == verdict { 1.0 } else { 0.0 };
            metrics::gauge!(VERIFY_VERDICT, "mapping" => row.mapping.clone(), "day" => row.day.clone(), "verdict" => verdict.to_string())
                .set(value);
        }
        let (kafka, rocketmq) = per_side(row);
        for (side, count) in [("kafka", kafka), ("rocketmq", rocketmq)] {
            metrics::gauge!(VERIFY_RECORDS, "mapping" => row.mapping.clone(), "day" => row.day.clone(), "side" => side)
                .set(count as f64);
        }
        status.day_verified(VerifiedDay {
            day: row.day.clone(),
            mapping: row.mapping.clone(),
            direction: row.direction,
            kafka,
            rocketmq,
            duplicates: row.duplicates,
            verdict: row.verdict,
            checked_at: checked_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        });
    }
    metrics::gauge!(VERIFY_LAST_RUN).set(checked_at.timestamp() as f64);
    let rendered = report.render();
    if report.has_mismatch() {
        tracing::warn!(day = %report.from, "daily count-match: MISMATCH\n{rendered}");
    } else {
        tracing::info!(day = %report.from, "daily count-match done\n{rendered}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{TimeOfDay, TimeZone};

    fn schedule(at: &str, zone: &str) -> DailyVerify {
        DailyVerify {
            at: TimeOfDay(chrono::NaiveTime::parse_from_str(at, "%H:%M").unwrap()),
            time_zone: TimeZone(zone.parse().unwrap()),
            retry_interval: crate::config::HumanDuration(Duration::from_secs(600)),
            max_scan_rate: 1,
        }
    }

    fn utc(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn the_next_run_is_the_next_time_of_day_in_the_zone_and_verifies_the_day_before() {
        let s = schedule("01:30", "UTC");
        assert_eq!(
            next_run(utc("2026-12-02T00:00:00Z"), &s),
            utc("2026-12-02T01:30:00Z")
        );
        assert_eq!(
            next_run(utc("2026-12-02T01:30:00Z"), &s),
            utc("2026-12-03T01:30:00Z")
        );
        assert_eq!(
            day_before(utc("2026-12-02T01:30:00Z"), &s).to_string(),
            "2026-12-01"
        );
        // Shanghai is UTC+8: 01:30 there is 17:30 UTC the day before.
        let s = schedule("01:30", "Asia/Shanghai");
        let run = next_run(utc("2026-12-02T12:00:00Z"), &s);
        assert_eq!(run, utc("2026-12-02T17:30:00Z"));
        assert_eq!(day_before(run, &s).to_string(), "2026-12-02");
        // 02:30 does not exist in Paris on 2027-03-28: it fires at 03:30 local.
        let s = schedule("02:30", "Europe/Paris");
        assert_eq!(
            next_run(utc("2027-03-27T12:00:00Z"), &s),
            utc("2027-03-28T01:30:00Z")
        );
    }
}
