//! `cutover-check`: is it safe to switch producers to RocketMQ? Yes only if
//! the last full days all MATCH, the bridge is caught up, and every record
//! it did not copy is accounted for by a policy; and, where the config has
//! a way back (`rocketmq_to_kafka` mappings), it is caught up too, so that
//! consumers still on Kafka and a rollback get what RocketMQ receives.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use std::time::Duration;

use super::days::DayRange;
use super::{DayVerdicts, Progress, Verdict, VerifyError, VerifyRequest, kafka_scan, verify};
use crate::config::{BridgeConfig, Direction};
use crate::rocketmq_reader::{TopicReader, with_reader};
use crate::rocketmq_sink::with_admin;

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
    /// What the operator should know that is no condition.
    pub notes: Vec<String>,
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
        for note in &self.notes {
            let _ = writeln!(out, "note: {note}");
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
    let full = config;
    let (forward, way_back) = config.forward_part();
    let config = &forward;
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
    let mut notes = Vec::new();
    if way_back.is_empty() {
        notes.push(
            "no rocketmq_to_kafka mapping: once the producers switch, consumers still on Kafka get \
             nothing new, and a rollback to Kafka lacks what RocketMQ received; start the way back \
             first (docs/migration-runbook.md, \"Rollback\")"
                .to_string(),
        );
    } else {
        progress.phase("reading the way back's consumer offsets".to_string());
        conditions.push(way_back_condition(full, max_lag).await?);
    }
    Ok(CutoverReport {
        safe: conditions.iter().all(|c| c.ok),
        conditions,
        notes,
    })
}

/// How long each RocketMQ call of the way-back check may take.
const CALL_DEADLINE: Duration = Duration::from_secs(30);

/// The way back's lag: over the queues of every `rocketmq_to_kafka`
/// mapping's topic, the messages past the consumer offsets of
/// `rocketmq.consumer_group` (read without joining the group).
async fn way_back_condition(config: &BridgeConfig, max_lag: u64) -> Result<Condition, VerifyError> {
    let mut topics: Vec<&str> = config
        .mappings
        .iter()
        .filter(|m| m.direction == Direction::RocketmqToKafka)
        .map(|m| m.rocketmq_topic.as_str())
        .collect();
    topics.sort();
    topics.dedup();
    let group = config.rocketmq.consumer_group.as_str();
    let committed = with_admin(&config.rocketmq, CALL_DEADLINE, async |admin| {
        let mut committed = Vec::new();
        for topic in &topics {
            let queues = admin.topic_queues(topic).await?;
            let offsets = admin.consumer_offsets(group, &queues).await?;
            committed.extend(queues.into_iter().map(|(queue, _)| queue).zip(offsets));
        }
        Ok(committed)
    })
    .await
    .map_err(|e| VerifyError(e.to_string()))?;
    let reader_group = format!("{}-cutover-check", config.rocketmq.producer_group);
    let lags = with_reader(
        &config.rocketmq,
        &reader_group,
        async |reader: &TopicReader| {
            for topic in &topics {
                // The reader learns each topic's route by listing its queues.
                reader.queues(topic).await?;
            }
            let mut lags = Vec::with_capacity(committed.len());
            for (queue, offset) in &committed {
                let (first, end) = reader.offsets(queue).await?;
                let lag = end - offset.unwrap_or(first).max(first);
                lags.push((
                    format!(
                        "{}@{}#{}",
                        queue.topic_str(),
                        queue.broker_name(),
                        queue.queue_id()
                    ),
                    lag.max(0),
                ));
            }
            Ok::<_, VerifyError>(lags)
        },
    )
    .await?;
    let total: i64 = lags.iter().map(|(_, lag)| lag).sum();
    let worst = lags
        .iter()
        .max_by_key(|(_, lag)| *lag)
        .filter(|(_, lag)| *lag > 0)
        .map(|(queue, lag)| format!(" (most behind: {queue} with {lag})"))
        .unwrap_or_default();
    Ok(Condition {
        condition: format!("the way back (group {group}) is less than {max_lag} messages behind"),
        value: format!("{total} messages behind{worst}"),
        ok: (total as u64) < max_lag,
    })
}
