//! `cutover-check`: is it safe to switch producers to RocketMQ? Yes only if
//! the last full days all MATCH, the bridge is caught up, and every record
//! it did not copy is accounted for by a policy.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use super::days::DayRange;
use super::{DayVerdicts, Progress, Verdict, VerifyError, VerifyRequest, kafka_scan, verify};
use crate::config::BridgeConfig;

/// `cutover-check --max-lag`'s default, which the console's conditions use too.
pub const DEFAULT_MAX_LAG: u64 = 1000;

/// One condition, with what was measured.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Condition {
    pub condition: String,
    pub value: String,
    pub ok: bool,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct CutoverReport {
    pub safe: bool,
    pub conditions: Vec<Condition>,
}

impl CutoverReport {
    pub fn render(&self) -> String {
        let width = self
            .conditions
            .iter()
            .map(|c| c.condition.len())
            .max()
            .unwrap_or(0);
        let mut out = String::new();
        for c in &self.conditions {
            let mark = if c.ok { "yes" } else { "NO " };
            let _ = writeln!(out, "{mark}  {:<width$}  {}", c.condition, c.value);
        }
        out.push_str(if self.safe {
            "\nSAFE to cut over: switch the producers, then drain the bridge\n"
        } else {
            "\nNOT safe to cut over yet\n"
        });
        out
    }
}

/// Checks the three conditions over the last `days` full days.
pub async fn cutover_check(
    config: &BridgeConfig,
    days: DayRange,
    max_lag: u64,
    progress: &Progress,
) -> Result<CutoverReport, VerifyError> {
    let request = VerifyRequest {
        days,
        mapping: None,
        slack: std::time::Duration::from_secs(3600),
        max_listed: 0,
        as_of: None,
    };
    let report = verify(config, &request, progress).await?;
    let matched = report.count(Verdict::Match);
    let mut conditions = vec![Condition {
        condition: format!("the days {} to {} all MATCH", report.from, report.to),
        value: format!(
            "{matched} of {} MATCH, {} MISMATCH, {} INCOMPLETE",
            report.rows.len(),
            report.count(Verdict::Mismatch),
            report.count(Verdict::Incomplete)
        ),
        ok: matched == report.rows.len(),
    }];
    // The report's rows name every mapping's Kafka topic, regex mappings
    // already expanded.
    let topics: BTreeSet<&str> = report.rows.iter().map(|r| r.kafka_topic.as_str()).collect();
    let mut total_lag = 0i64;
    let mut worst = (0i64, String::new());
    for topic in topics {
        let lags = tokio::task::block_in_place(|| kafka_scan::lag(&config.kafka, topic))?;
        for (partition, lag) in lags {
            total_lag += lag;
            if lag > worst.0 {
                worst = (lag, format!("{topic}/{partition}"));
            }
        }
    }
    let worst_text = if worst.0 > 0 {
        format!(" (most behind: {} with {})", worst.1, worst.0)
    } else {
        String::new()
    };
    conditions.push(Condition {
        condition: format!("the bridge is less than {max_lag} records behind"),
        value: format!("{total_lag} records behind{worst_text}"),
        ok: (total_lag as u64) < max_lag,
    });
    let sum = |pick: fn(&super::DayRow) -> u64| report.rows.iter().map(pick).sum::<u64>();
    let skipped = sum(|r| r.skipped.values().sum());
    let dead_lettered = sum(|r| r.dead_lettered.values().sum());
    let unaccounted = sum(|r| r.blocked + r.foreign);
    conditions.push(Condition {
        condition: "every record not copied is accounted for".to_string(),
        value: format!(
            "{skipped} skipped and {dead_lettered} dead-lettered by policy; {unaccounted} unaccounted \
             (under a fail policy, or foreign messages in RocketMQ)"
        ),
        ok: unaccounted == 0,
    });
    Ok(CutoverReport {
        safe: conditions.iter().all(|c| c.ok),
        conditions,
    })
}
