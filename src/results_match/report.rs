//! The `compare-results` report: per day and topic, what each side's
//! consumers read and processed, how their results compare, and a verdict;
//! rendered for people or as JSON.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use super::tally::SideCounts;
use crate::count_match::Verdict;
use crate::count_match::report::{DayVerdicts, align};

/// One record whose handling differs between the sides.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ResultDifference {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub timestamp: i64,
    #[serde(flatten)]
    pub kind: DifferenceKind,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum DifferenceKind {
    /// Handled by the Kafka side's consumers only.
    OnlyKafka,
    /// Handled by the RocketMQ side's consumers only.
    OnlyRocketmq,
    /// Processed on both sides, with different results.
    ResultsDiffer { kafka: String, rocketmq: String },
    /// Processed on one side, failed on the other.
    FailedOn { side: String, reason: String },
}

impl std::fmt::Display for ResultDifference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}@{}: ", self.topic, self.partition, self.offset)?;
        match &self.kind {
            DifferenceKind::OnlyKafka => f.write_str("handled on the Kafka side only"),
            DifferenceKind::OnlyRocketmq => f.write_str("handled on the RocketMQ side only"),
            DifferenceKind::ResultsDiffer { kafka, rocketmq } => {
                write!(f, "results differ (kafka {kafka}, rocketmq {rocketmq})")
            }
            DifferenceKind::FailedOn { side, reason } => {
                write!(f, "failed on the {side} side only: {reason}")
            }
        }
    }
}

/// One day and topic.
#[derive(Debug, Clone, Serialize)]
pub struct ResultsRow {
    pub day: String,
    pub topic: String,
    pub kafka: SideCounts,
    pub rocketmq: SideCounts,
    /// Handled on both sides with the same outcome.
    pub same: u64,
    /// Handled on both sides with different outcomes.
    pub differ: u64,
    pub only_kafka: u64,
    pub only_rocketmq: u64,
    /// Processed on both sides in blocks beyond those compared record by
    /// record: their results were not compared one by one.
    pub not_compared: u64,
    pub verdict: Verdict,
    pub notes: Vec<String>,
    pub differences: Vec<ResultDifference>,
}

/// An entry that could not be used, where it is in the ledger.
#[derive(Debug, Clone, Serialize)]
pub struct ListedBadEntry {
    pub at: String,
    pub why: String,
}

/// What reading one side's ledger found.
#[derive(Debug, Clone, Serialize)]
pub struct LedgerSummary {
    pub side: String,
    pub topic: String,
    /// Ledger records read (each holds one or more entries).
    pub records: u64,
    pub entries: u64,
    /// Entries not used, by kind: malformed, future_version, unmapped_topic,
    /// wrong_side, other_group.
    pub unused: BTreeMap<String, u64>,
    pub listed_unused: Vec<ListedBadEntry>,
    pub seconds: f64,
}

impl LedgerSummary {
    pub fn entries_per_second(&self) -> f64 {
        self.entries as f64 / self.seconds.max(1e-6)
    }
}

/// The whole report.
#[derive(Debug, Clone, Serialize)]
pub struct ResultsReport {
    pub group: String,
    pub time_zone: String,
    pub from: String,
    pub to: String,
    pub ledgers: Vec<LedgerSummary>,
    pub rows: Vec<ResultsRow>,
}

impl DayVerdicts for ResultsReport {
    fn verdicts(&self) -> impl Iterator<Item = Verdict> + '_ {
        self.rows.iter().map(|r| r.verdict)
    }

    fn render(&self) -> String {
        let mut out = format!(
            "Group {}, days {} to {} ({}). READ and PROCESSED count records; TWICE, records processed more than once.\n\n",
            self.group, self.from, self.to, self.time_zone
        );
        out.push_str(&align(&self.table()));
        for row in self.rows.iter().filter(|r| r.verdict != Verdict::Match) {
            let _ = writeln!(out, "\n{} {}: {}", row.topic, row.day, row.verdict);
            for note in &row.notes {
                let _ = writeln!(out, "  {note}");
            }
            for difference in &row.differences {
                let _ = writeln!(out, "  - {difference}");
            }
        }
        for ledger in &self.ledgers {
            let unused: u64 = ledger.unused.values().sum();
            let _ = write!(
                out,
                "\n{} ledger `{}`: {} entries in {} records, read in {:.1}s",
                ledger.side, ledger.topic, ledger.entries, ledger.records, ledger.seconds
            );
            if unused > 0 {
                let kinds: Vec<String> = ledger
                    .unused
                    .iter()
                    .map(|(k, n)| format!("{n} {k}"))
                    .collect();
                let _ = write!(out, "; {unused} not used ({})", kinds.join(", "));
                for bad in &ledger.listed_unused {
                    let _ = write!(out, "\n  - {}: {}", bad.at, bad.why);
                }
            }
        }
        let _ = writeln!(
            out,
            "\n\n{} MATCH, {} MISMATCH, {} INCOMPLETE",
            self.count(Verdict::Match),
            self.count(Verdict::Mismatch),
            self.count(Verdict::Incomplete)
        );
        out
    }
}

impl ResultsReport {
    fn table(&self) -> Vec<Vec<String>> {
        let header = [
            "DAY",
            "TOPIC",
            "K-READ",
            "K-PROCESSED",
            "K-TWICE",
            "R-READ",
            "R-PROCESSED",
            "R-TWICE",
            "SAME",
            "DIFFER",
            "ONLY-K",
            "ONLY-R",
            "VERDICT",
        ];
        let mut table: Vec<Vec<String>> = vec![header.iter().map(|h| h.to_string()).collect()];
        for row in &self.rows {
            let numbers = [
                row.kafka.read,
                row.kafka.processed,
                row.kafka.processed_more_than_once,
                row.rocketmq.read,
                row.rocketmq.processed,
                row.rocketmq.processed_more_than_once,
                row.same,
                row.differ,
                row.only_kafka,
                row.only_rocketmq,
            ];
            let mut cells = vec![row.day.clone(), row.topic.clone()];
            cells.extend(numbers.iter().map(u64::to_string));
            cells.push(row.verdict.to_string());
            table.push(cells);
        }
        table
    }
}
