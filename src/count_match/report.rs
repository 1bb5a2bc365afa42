//! The count-match report: one row per mapping and day, rendered as a table
//! for people or as JSON for scripts.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use chrono::NaiveDate;
use serde::Serialize;

use super::rocketmq_scan::QueuePosition;
use crate::config::Direction;
use crate::mapping::SourceRecord;

/// A source record's coordinates: a Kafka record's topic, partition and
/// offset, or (the way back) a RocketMQ message's topic, broker, queue id
/// (in `partition`) and queue offset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Coordinates {
    pub topic: String,
    /// The RocketMQ broker, for a message (the way back).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub broker: Option<String>,
    pub partition: i32,
    pub offset: i64,
}

impl Coordinates {
    pub fn of(record: &SourceRecord) -> Self {
        Coordinates {
            topic: record.topic.to_string(),
            broker: None,
            partition: record.partition,
            offset: record.offset,
        }
    }
}

impl std::fmt::Display for Coordinates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.broker {
            None => write!(f, "{}/{}@{}", self.topic, self.partition, self.offset),
            Some(broker) => write!(
                f,
                "{} {broker} queue {} offset {}",
                self.topic, self.partition, self.offset
            ),
        }
    }
}

/// Where a copy is: a RocketMQ message (forward) or a Kafka record (the way back).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum CopyAt {
    Message(QueuePosition),
    Record(Coordinates),
}

impl std::fmt::Display for CopyAt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CopyAt::Message(at) => at.fmt(f),
            CopyAt::Record(at) => write!(f, "Kafka {at}"),
        }
    }
}

/// One record that explains a MISMATCH.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Difference {
    /// In the source, copyable, not in the target.
    Missing { coordinates: Coordinates },
    /// In the target with this provenance, not in the source.
    Extra { coordinates: Coordinates },
    /// In both, with different content.
    Altered { coordinates: Coordinates },
    /// A duplicate copy whose content differs from the source record.
    AlteredDuplicate { coordinates: Coordinates },
    /// A RocketMQ message that is not a copy of this mapping's Kafka topic.
    Foreign { at: QueuePosition, why: String },
    /// The way back: a Kafka record that is not a copy of this mapping's
    /// RocketMQ topic.
    ForeignRecord { at: Coordinates, why: String },
    /// A source record under a `fail` policy: the bridge stops at it.
    Blocked {
        coordinates: Coordinates,
        why: String,
    },
}

/// A second copy of a record in RocketMQ.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DuplicateCopy {
    pub coordinates: Coordinates,
    pub at: CopyAt,
}

impl std::fmt::Display for DuplicateCopy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "duplicate: {} copied again at {}",
            self.coordinates, self.at
        )
    }
}

impl std::fmt::Display for Difference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Difference::Missing { coordinates } => write!(f, "missing copy: {coordinates}"),
            Difference::Extra { coordinates } => {
                write!(
                    f,
                    "extra copy: a copy of {coordinates}, which the source does not have"
                )
            }
            Difference::Altered { coordinates } => {
                write!(
                    f,
                    "different content: the copy of {coordinates} differs from it"
                )
            }
            Difference::AlteredDuplicate { coordinates } => write!(
                f,
                "different content: a duplicate copy of {coordinates} differs from it"
            ),
            Difference::Foreign { at, why } => write!(f, "extra in RocketMQ: {at}: {why}"),
            Difference::ForeignRecord { at, why } => write!(f, "extra in Kafka: {at}: {why}"),
            Difference::Blocked { coordinates, why } => write!(
                f,
                "not copyable under a `fail` policy (the bridge stops here): {coordinates}: {why}"
            ),
        }
    }
}

/// The verdict on one mapping and day.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Verdict {
    Match,
    Mismatch,
    /// The day is not over, is outside a side's retention, or the bridge
    /// has not copied it to its end yet.
    Incomplete,
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Verdict::Match => "MATCH",
            Verdict::Mismatch => "MISMATCH",
            Verdict::Incomplete => "INCOMPLETE",
        })
    }
}

/// The Kafka offsets a day spans on one partition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PartitionSpan {
    pub partition: i32,
    pub first_offset: i64,
    pub last_offset: i64,
    pub records: u64,
}

impl PartitionSpan {
    pub fn starting_at(partition: i32, offset: i64) -> Self {
        PartitionSpan {
            partition,
            first_offset: offset,
            last_offset: offset,
            records: 0,
        }
    }

    pub fn extend(&mut self, offset: i64) {
        self.first_offset = self.first_offset.min(offset);
        self.last_offset = self.last_offset.max(offset);
        self.records += 1;
    }
}

/// One mapping on one day.
#[derive(Debug, Clone, Serialize)]
pub struct DayRow {
    pub mapping: String,
    /// Which way the mapping copies: the source is Kafka for
    /// `kafka_to_rocketmq`, RocketMQ for `rocketmq_to_kafka`.
    pub direction: Direction,
    pub kafka_topic: String,
    pub rocketmq_topic: String,
    pub day: String,
    /// Every record (message) of the day in the source.
    pub source_records: u64,
    /// Those the bridge copies (the rest were skipped or dead-lettered by policy).
    pub expected: u64,
    /// First copies in the target.
    pub copies: u64,
    /// Forward only: `source_records` (Kafka's records of the day).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kafka_records: Option<u64>,
    /// Forward only: `copies` (RocketMQ's first copies).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rocketmq_unique: Option<u64>,
    /// Re-sent copies (after a crash), told apart by provenance.
    pub duplicates: u64,
    /// The first of them (up to the listing limit): which record, and
    /// where its second copy is.
    pub duplicate_copies: Vec<DuplicateCopy>,
    pub skipped: BTreeMap<String, u64>,
    pub dead_lettered: BTreeMap<String, u64>,
    /// Target records of the day that are not copies of this mapping.
    pub foreign: u64,
    /// Source records under a `fail` policy.
    pub blocked: u64,
    pub digests_match: bool,
    pub verdict: Verdict,
    pub notes: Vec<String>,
    /// The first records that explain a MISMATCH.
    pub differences: Vec<Difference>,
    pub partitions: Vec<PartitionSpan>,
}

impl DayRow {
    pub fn day_date(&self) -> NaiveDate {
        NaiveDate::parse_from_str(&self.day, "%Y-%m-%d").unwrap_or_default()
    }
}

/// How fast one side of one mapping was read.
#[derive(Debug, Clone, Serialize)]
pub struct ScanSpeed {
    pub mapping: String,
    /// `kafka` or `rocketmq`.
    pub side: &'static str,
    pub records_read: u64,
    pub seconds: f64,
}

impl ScanSpeed {
    pub fn per_second(&self) -> f64 {
        self.records_read as f64 / self.seconds.max(1e-6)
    }
}

/// The whole report.
#[derive(Debug, Clone, Serialize)]
pub struct VerifyReport {
    pub time_zone: String,
    pub from: String,
    pub to: String,
    pub rows: Vec<DayRow>,
    /// First-pass reading speed of each side, per mapping.
    pub scans: Vec<ScanSpeed>,
}

/// What `verify`'s and `compare-results`' reports share: one verdict per
/// row, a rendering for people, and JSON for scripts.
pub trait DayVerdicts: Serialize {
    fn verdicts(&self) -> impl Iterator<Item = Verdict> + '_;

    fn render(&self) -> String;

    fn has_mismatch(&self) -> bool {
        self.verdicts().any(|v| v == Verdict::Mismatch)
    }

    fn count(&self, verdict: Verdict) -> usize {
        self.verdicts().filter(|v| *v == verdict).count()
    }

    fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
    }
}

impl DayVerdicts for VerifyReport {
    fn verdicts(&self) -> impl Iterator<Item = Verdict> + '_ {
        self.rows.iter().map(|r| r.verdict)
    }

    /// The table, then the notes and differences of each row that has any.
    fn render(&self) -> String {
        let header = [
            "MAPPING",
            "DAY",
            "DIRECTION",
            "SOURCE",
            "SKIPPED",
            "DEAD-LETTERED",
            "COPIES",
            "DUPLICATES",
            "DIGEST",
            "VERDICT",
        ];
        let mut table: Vec<Vec<String>> = vec![header.iter().map(|h| h.to_string()).collect()];
        for row in &self.rows {
            table.push(vec![
                row.mapping.clone(),
                row.day.clone(),
                row.direction.to_string(),
                row.source_records.to_string(),
                sum(&row.skipped).to_string(),
                sum(&row.dead_lettered).to_string(),
                row.copies.to_string(),
                row.duplicates.to_string(),
                if row.digests_match { "same" } else { "differs" }.to_string(),
                row.verdict.to_string(),
            ]);
        }
        let mut out = format!(
            "Days {} to {} ({}); SOURCE counts every record of the day (Kafka for kafka_to_rocketmq, \
             RocketMQ for rocketmq_to_kafka), COPIES the first copies in the other system.\n\n",
            self.from, self.to, self.time_zone
        );
        out.push_str(&align(&table));
        for row in self.rows.iter().filter(|r| r.verdict != Verdict::Match) {
            let _ = writeln!(out, "\n{} {}: {}", row.mapping, row.day, row.verdict);
            for (policy, counts) in [
                ("skipped", &row.skipped),
                ("dead-lettered", &row.dead_lettered),
            ] {
                for (reason, n) in counts {
                    let _ = writeln!(out, "  {n} {policy} by policy ({reason})");
                }
            }
            for note in &row.notes {
                let _ = writeln!(out, "  {note}");
            }
            if row.verdict == Verdict::Mismatch {
                let _ = writeln!(
                    out,
                    "  the bridge copies {} of the source's {} records; the target holds {} first copies",
                    row.expected, row.source_records, row.copies
                );
            }
            for difference in &row.differences {
                let _ = writeln!(out, "  - {difference}");
            }
        }
        for row in self.rows.iter().filter(|r| !r.duplicate_copies.is_empty()) {
            let _ = writeln!(
                out,
                "\n{} {}: {} duplicates",
                row.mapping, row.day, row.duplicates
            );
            for copy in &row.duplicate_copies {
                let _ = writeln!(out, "  - {copy}");
            }
        }
        for side in ["kafka", "rocketmq"] {
            let scans = self.scans.iter().filter(|s| s.side == side);
            let (read, seconds) =
                scans.fold((0, 0.0), |(r, t), s| (r + s.records_read, t + s.seconds));
            let _ = write!(
                out,
                "{}read {read} {side} records in {seconds:.1}s",
                if side == "kafka" { "\n" } else { "; " }
            );
        }
        let _ = writeln!(
            out,
            "\n{} MATCH, {} MISMATCH, {} INCOMPLETE",
            self.count(Verdict::Match),
            self.count(Verdict::Mismatch),
            self.count(Verdict::Incomplete)
        );
        out
    }
}

fn sum(counts: &BTreeMap<String, u64>) -> u64 {
    counts.values().sum()
}

/// Right-aligns the numbers after the first two columns, left-aligns the rest.
pub(crate) fn align(rows: &[Vec<String>]) -> String {
    let columns = rows.first().map_or(0, Vec::len);
    let widths: Vec<usize> = (0..columns)
        .map(|c| rows.iter().map(|r| r[c].len()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for row in rows {
        let cells: Vec<String> = row
            .iter()
            .enumerate()
            .map(|(c, cell)| {
                let number = c >= 2 && cell.parse::<f64>().is_ok();
                if number {
                    format!("{cell:>width$}", width = widths[c])
                } else {
                    format!("{cell:<width$}", width = widths[c])
                }
            })
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}
