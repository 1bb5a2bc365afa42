//! `compare-results`: compares what a consumer group did on each side, day
//! by day, from the two dual-read ledgers ([`crate::dual_read`]).
//!
//! Each ledger is streamed once and folded into fixed-size tallies per
//! block of offsets ([`tally`]), so memory follows the number of blocks,
//! not of entries. The tallies give the exact read, processed and
//! one-side-only counts; blocks whose results disagree are read a second
//! time, record by record, to name the differences. A day is judged only
//! once both sides' consumers have moved past its end: for every partition,
//! the first record after the side's last entry is from a later day, or
//! there is none.

pub mod report;
pub mod tally;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use chrono::NaiveDate;

use crate::config::BridgeConfig;
use crate::count_match::days::DayRange;
use crate::count_match::{
    Condition, CutoverReport, DayVerdicts, Progress, Verdict, VerifyError, kafka_scan,
};
use crate::dual_read::entry::{self, ReadEntry, Side};
use crate::dual_read::ledger_topic;
use report::ListedBadEntry;
pub use report::{DifferenceKind, LedgerSummary, ResultDifference, ResultsReport, ResultsRow};
use tally::{BLOCK_OFFSETS, BlockComparison, BlockKey, SideTally, compare_block};

/// Blocks compared record by record, at most, over all days and topics.
const MAX_LOCATED_BLOCKS: usize = 64;

/// What to compare.
#[derive(Debug, Clone)]
pub struct CompareRequest {
    pub group: String,
    pub days: DayRange,
    /// The Kafka side's ledger topic, then the RocketMQ side's.
    pub ledgers: [String; 2],
    /// How far before the first day to start reading the ledgers.
    pub slack: Duration,
    /// At most this many differing records named per day and topic, and
    /// unusable entries per ledger.
    pub max_listed: usize,
}

/// Compares the two ledgers of `request.group` over `request.days`.
pub async fn compare(
    config: &BridgeConfig,
    request: &CompareRequest,
    progress: &Progress,
) -> Result<ResultsReport, VerifyError> {
    let config = crate::kafka_source::resolve_regex_mappings(config, Duration::from_secs(30))
        .await
        .map_err(VerifyError)?;
    let mapped: BTreeSet<String> = config
        .mappings
        .iter()
        .map(|m| m.kafka_topic.clone())
        .collect();
    tokio::task::block_in_place(|| compare_blocking(&config, &mapped, request, progress))
}

fn compare_blocking(
    config: &BridgeConfig,
    mapped: &BTreeSet<String>,
    request: &CompareRequest,
    progress: &Progress,
) -> Result<ResultsReport, VerifyError> {
    let mut tallies = [SideTally::default(), SideTally::default()];
    let mut ledgers = Vec::new();
    for (index, side) in Side::BOTH.into_iter().enumerate() {
        let reader = LedgerReader::new(side, request, mapped);
        progress.phase(format!("{side} ledger {}", reader.topic));
        let tally = &mut tallies[index];
        let summary = reader.read(config, progress, |day, entry| {
            tally.add(
                day,
                &entry.topic,
                entry.partition,
                entry.offset,
                entry.result.as_deref(),
            );
        })?;
        ledgers.push(summary);
    }
    let topics: BTreeSet<String> = tallies
        .iter()
        .flat_map(|t| t.positions.keys().map(|(topic, _)| topic.clone()))
        .collect();
    progress.phase("consumer positions".to_string());
    let mut reached = BTreeMap::new();
    for topic in &topics {
        for (index, side) in Side::BOTH.into_iter().enumerate() {
            let time = reached_time(config, topic, &tallies[index])?;
            reached.insert((topic.clone(), side), time);
        }
    }
    let comparisons = Comparisons::of(&tallies);
    let mut rows = judge(&request.days, &topics, &tallies, &comparisons, &reached);
    let wanted = blocks_to_locate(&rows, &comparisons);
    if !wanted.is_empty() {
        progress.phase("naming the differences".to_string());
        let located = locate(config, mapped, request, &wanted, progress)?;
        refine(
            &mut rows,
            &comparisons,
            &wanted,
            &located,
            request.max_listed,
        );
    }
    progress.finish();
    Ok(ResultsReport {
        group: request.group.clone(),
        time_zone: request.days.zone.name().to_string(),
        from: request.days.from.to_string(),
        to: request.days.to.to_string(),
        ledgers,
        rows,
    })
}

/// `cutover-check --results-group`: one more condition per group, that its
/// results MATCH on every one of `days` (default ledger topics).
pub async fn add_results_conditions(
    config: &BridgeConfig,
    mut report: CutoverReport,
    days: DayRange,
    groups: &[String],
    progress: &Progress,
) -> Result<CutoverReport, VerifyError> {
    for group in groups {
        let request = CompareRequest {
            group: group.clone(),
            days,
            ledgers: Side::BOTH.map(|side| ledger_topic(group, side)),
            slack: Duration::from_secs(3600),
            max_listed: 0,
        };
        let results = compare(config, &request, progress).await?;
        let matched = results.count(Verdict::Match);
        let value = if results.rows.is_empty() {
            "its ledgers hold no entry for a mapped topic".to_string()
        } else {
            format!(
                "{matched} of {} day-topics MATCH, {} MISMATCH, {} INCOMPLETE",
                results.rows.len(),
                results.count(Verdict::Mismatch),
                results.count(Verdict::Incomplete)
            )
        };
        report.conditions.push(Condition {
            condition: format!(
                "consumer group {group}'s results MATCH from {} to {}",
                results.from, results.to
            ),
            value,
            ok: !results.rows.is_empty() && matched == results.rows.len(),
        });
    }
    report.safe = report.conditions.iter().all(|c| c.ok);
    Ok(report)
}

/// Reads one side's ledger and hands over every usable entry with its day.
struct LedgerReader<'a> {
    side: Side,
    topic: &'a str,
    group: &'a str,
    mapped: &'a BTreeSet<String>,
    days: DayRange,
    since: i64,
    max_listed: usize,
}

impl<'a> LedgerReader<'a> {
    fn new(side: Side, request: &'a CompareRequest, mapped: &'a BTreeSet<String>) -> Self {
        let index = usize::from(side == Side::Rocketmq);
        LedgerReader {
            side,
            topic: &request.ledgers[index],
            group: &request.group,
            mapped,
            days: request.days,
            since: request.days.span().0 - request.slack.as_millis() as i64,
            max_listed: request.max_listed,
        }
    }

    fn read(
        &self,
        config: &BridgeConfig,
        progress: &Progress,
        mut visit: impl FnMut(Option<NaiveDate>, &ReadEntry<'_>),
    ) -> Result<LedgerSummary, VerifyError> {
        let started = Instant::now();
        let mut summary = LedgerSummary {
            side: self.side.name().to_string(),
            topic: self.topic.to_string(),
            records: 0,
            entries: 0,
            unused: BTreeMap::new(),
            listed_unused: Vec::new(),
            seconds: 0.0,
        };
        kafka_scan::scan(&config.kafka, self.topic, self.since, progress, |record| {
            summary.records += 1;
            let value = record.value().unwrap_or_default();
            for (line_number, line) in entry::lines(value).enumerate() {
                summary.entries += 1;
                match self.usable(entry::decode(line)) {
                    Ok(entry) => visit(self.days.day_of(entry.timestamp), &entry),
                    Err((kind, why)) => {
                        *summary.unused.entry(kind.to_string()).or_default() += 1;
                        if summary.listed_unused.len() < self.max_listed {
                            summary.listed_unused.push(ListedBadEntry {
                                at: format!(
                                    "{}/{}@{} line {}",
                                    self.topic,
                                    record.partition,
                                    record.offset,
                                    line_number + 1
                                ),
                                why,
                            });
                        }
                    }
                }
            }
        })
        .map_err(|error| self.explain(error))?;
        summary.seconds = started.elapsed().as_secs_f64();
        Ok(summary)
    }

    /// The entry, or the kind of unusable entry it is and why.
    fn usable<'e>(
        &self,
        decoded: Result<ReadEntry<'e>, entry::BadEntry>,
    ) -> Result<ReadEntry<'e>, (&'static str, String)> {
        let entry = decoded.map_err(|bad| (bad.kind(), bad.to_string()))?;
        if entry.side != self.side {
            return Err((
                "wrong_side",
                format!("a {} entry in the {} ledger", entry.side, self.side),
            ));
        }
        if entry.group != self.group {
            return Err(("other_group", format!("group `{}`", entry.group)));
        }
        if !self.mapped.contains(&*entry.topic) {
            return Err((
                "unmapped_topic",
                format!("topic `{}` is not mapped in the config", entry.topic),
            ));
        }
        Ok(entry)
    }

    fn explain(&self, error: VerifyError) -> VerifyError {
        let flag = match self.side {
            Side::Kafka => "--kafka-ledger",
            Side::Rocketmq => "--rocketmq-ledger",
        };
        VerifyError(format!(
            "cannot read the {} side's ledger `{}` of group `{}`: {}. \
             `create-topics --dual-read-group {}` creates the ledger topics; a ledger under another name goes in {flag}",
            self.side, self.topic, self.group, error.0, self.group
        ))
    }
}

/// The time up to which `side`'s consumers have handled `topic`: the
/// earliest timestamp, over its partitions, of the first record after the
/// side's last entry. `i64::MAX` when they have handled everything.
fn reached_time(config: &BridgeConfig, topic: &str, side: &SideTally) -> Result<i64, VerifyError> {
    let partitions = kafka_scan::topic_partitions(&config.kafka, topic)?;
    let at: BTreeMap<i32, i64> = partitions
        .iter()
        .map(|p| {
            (
                *p,
                side.positions
                    .get(&(topic.to_string(), *p))
                    .copied()
                    .unwrap_or(0),
            )
        })
        .collect();
    let next = kafka_scan::timestamps_at(&config.kafka, topic, &at)?;
    Ok(next
        .values()
        .map(|t| t.unwrap_or(i64::MAX))
        .min()
        .unwrap_or(i64::MAX))
}

/// Every day and topic, judged from the tallies alone.
fn judge(
    days: &DayRange,
    topics: &BTreeSet<String>,
    tallies: &[SideTally; 2],
    comparisons: &Comparisons,
    reached: &BTreeMap<(String, Side), i64>,
) -> Vec<ResultsRow> {
    let counts = [tallies[0].counts(), tallies[1].counts()];
    let now = chrono::Utc::now().timestamp_millis();
    let mut rows = Vec::new();
    for day in days.days() {
        for topic in topics {
            let key = (day, topic.clone());
            let mut row = ResultsRow {
                day: day.to_string(),
                topic: topic.clone(),
                kafka: counts[0].get(&key).copied().unwrap_or_default(),
                rocketmq: counts[1].get(&key).copied().unwrap_or_default(),
                same: 0,
                differ: 0,
                only_kafka: 0,
                only_rocketmq: 0,
                not_compared: 0,
                verdict: Verdict::Match,
                notes: Vec::new(),
                differences: Vec::new(),
            };
            let mut disagree = false;
            for (_, comparison) in comparisons.of_day(day, topic) {
                row.only_kafka += comparison.only_kafka;
                row.only_rocketmq += comparison.only_rocketmq;
                row.differ += comparison.status_differs;
                row.same += comparison.both_failed;
                if comparison.results_agree {
                    row.same += comparison.both_processed;
                } else {
                    row.not_compared += comparison.both_processed;
                    disagree = true;
                }
            }
            let end = days.bounds(day).1;
            let mut behind = Vec::new();
            if end > now {
                behind.push("the day is not over yet".to_string());
            }
            for side in Side::BOTH {
                let time = reached
                    .get(&(topic.clone(), side))
                    .copied()
                    .unwrap_or(i64::MIN);
                if time < end {
                    behind.push(format!(
                        "the {side} side's consumers have not moved past the day's end: \
                         their next record is from {}",
                        millis_text(time)
                    ));
                }
            }
            let differs = disagree || row.only_kafka + row.only_rocketmq + row.differ > 0;
            row.verdict = if !behind.is_empty() {
                row.notes = behind;
                Verdict::Incomplete
            } else if differs {
                Verdict::Mismatch
            } else {
                Verdict::Match
            };
            rows.push(row);
        }
    }
    rows
}

fn millis_text(millis: i64) -> String {
    chrono::DateTime::from_timestamp_millis(millis).map_or_else(
        || millis.to_string(),
        |t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
    )
}

/// Every block either side has, compared once. Kept in key order, so one
/// day and topic's blocks are one range of it.
struct Comparisons(BTreeMap<BlockKey, BlockComparison>);

impl Comparisons {
    fn of(tallies: &[SideTally; 2]) -> Self {
        let keys: BTreeSet<&BlockKey> = tallies.iter().flat_map(|t| t.blocks.keys()).collect();
        let compared = keys.into_iter().map(|key| {
            let comparison = compare_block(tallies[0].blocks.get(key), tallies[1].blocks.get(key));
            (key.clone(), comparison)
        });
        Comparisons(compared.collect())
    }

    /// The blocks of `day` and `topic`.
    fn of_day<'a>(
        &'a self,
        day: NaiveDate,
        topic: &str,
    ) -> impl Iterator<Item = (&'a BlockKey, &'a BlockComparison)> + 'a {
        let first = (day, topic.to_string(), i32::MIN, i64::MIN);
        let last = (day, topic.to_string(), i32::MAX, i64::MAX);
        self.0.range(first..=last)
    }
}

/// The first blocks of the mismatched rows that differ in any way.
fn blocks_to_locate(rows: &[ResultsRow], comparisons: &Comparisons) -> BTreeSet<BlockKey> {
    rows.iter()
        .filter(|row| row.verdict == Verdict::Mismatch)
        .filter_map(|row| Some((row.day.parse::<NaiveDate>().ok()?, row.topic.as_str())))
        .flat_map(|(day, topic)| {
            comparisons
                .of_day(day, topic)
                .filter(|(_, c)| {
                    !c.results_agree || c.only_kafka + c.only_rocketmq + c.status_differs > 0
                })
                .map(|(key, _)| key.clone())
        })
        .take(MAX_LOCATED_BLOCKS)
        .collect()
}

/// One record's handling on one side, as the second pass saw it.
#[derive(Debug, Clone, Default)]
struct Handled {
    timestamp: i64,
    /// The first processed result.
    result: Option<String>,
    /// The first failure reason.
    failure: Option<String>,
}

/// Records of the located blocks by day, topic, partition and offset:
/// what each side did with them.
type Located = BTreeMap<(NaiveDate, String, i32, i64), [Option<Handled>; 2]>;

/// Second pass: every entry of the wanted blocks, by record.
fn locate(
    config: &BridgeConfig,
    mapped: &BTreeSet<String>,
    request: &CompareRequest,
    wanted: &BTreeSet<BlockKey>,
    progress: &Progress,
) -> Result<Located, VerifyError> {
    let mut located = Located::new();
    for (index, side) in Side::BOTH.into_iter().enumerate() {
        let reader = LedgerReader::new(side, request, mapped);
        reader.read(config, progress, |day, entry| {
            let Some(day) = day else { return };
            let block_number = entry.offset.div_euclid(BLOCK_OFFSETS);
            if !wanted.contains(&(day, entry.topic.to_string(), entry.partition, block_number)) {
                return;
            }
            let key = (day, entry.topic.to_string(), entry.partition, entry.offset);
            let handled = located.entry(key).or_default()[index].get_or_insert_with(|| Handled {
                timestamp: entry.timestamp,
                ..Handled::default()
            });
            if handled.result.is_none() {
                handled.result = entry.result.as_deref().map(str::to_string);
            }
            if handled.failure.is_none() {
                handled.failure = entry.reason.as_deref().map(str::to_string);
            }
        })?;
    }
    Ok(located)
}

/// Exact counts and named differences for the located blocks.
fn refine(
    rows: &mut [ResultsRow],
    comparisons: &Comparisons,
    wanted: &BTreeSet<BlockKey>,
    located: &Located,
    max_listed: usize,
) {
    for row in rows.iter_mut().filter(|r| r.verdict == Verdict::Mismatch) {
        let Ok(day) = row.day.parse::<NaiveDate>() else {
            continue;
        };
        let in_row = |key: &&(NaiveDate, String, i32, i64)| key.0 == day && key.1 == row.topic;
        // Only these blocks' records processed on both sides are counted
        // here: `judge` already counted those of the blocks that agree.
        let mut recount = BTreeSet::new();
        for (block, comparison) in comparisons.of_day(day, &row.topic) {
            if wanted.contains(block) && !comparison.results_agree {
                row.not_compared -= comparison.both_processed;
                recount.insert((block.2, block.3));
            }
        }
        let records = located.iter().filter(|(key, _)| in_row(key));
        let recounted = records.clone().filter(|((_, _, partition, offset), _)| {
            recount.contains(&(*partition, offset.div_euclid(BLOCK_OFFSETS)))
        });
        for (_, sides) in recounted {
            if let [Some(kafka), Some(rocketmq)] = sides
                && let (Some(k), Some(r)) = (&kafka.result, &rocketmq.result)
            {
                if k == r {
                    row.same += 1;
                } else {
                    row.differ += 1;
                }
            }
        }
        row.differences = records
            .filter_map(|((_, topic, partition, offset), sides)| {
                Some(ResultDifference {
                    topic: topic.clone(),
                    partition: *partition,
                    offset: *offset,
                    timestamp: sides.iter().flatten().map(|h| h.timestamp).next()?,
                    kind: difference(sides)?,
                })
            })
            .take(max_listed)
            .collect();
        if row.not_compared > 0 {
            row.notes.push(format!(
                "{} records processed on both sides were not compared one by one: \
                 only the first {MAX_LOCATED_BLOCKS} blocks of {BLOCK_OFFSETS} offsets that differ are",
                row.not_compared
            ));
        }
    }
}

/// How one record's handling differs between the sides, if it does.
fn difference(sides: &[Option<Handled>; 2]) -> Option<DifferenceKind> {
    match sides {
        [Some(_), None] => Some(DifferenceKind::OnlyKafka),
        [None, Some(_)] => Some(DifferenceKind::OnlyRocketmq),
        [Some(kafka), Some(rocketmq)] => match (&kafka.result, &rocketmq.result) {
            (Some(k), Some(r)) if k != r => Some(DifferenceKind::ResultsDiffer {
                kafka: k.clone(),
                rocketmq: r.clone(),
            }),
            (Some(_), None) => Some(DifferenceKind::FailedOn {
                side: "rocketmq".into(),
                reason: rocketmq.failure.clone().unwrap_or_default(),
            }),
            (None, Some(_)) => Some(DifferenceKind::FailedOn {
                side: "kafka".into(),
                reason: kafka.failure.clone().unwrap_or_default(),
            }),
            _ => None,
        },
        [None, None] => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tallies(kafka: &[i64], rocketmq: &[i64], day: NaiveDate) -> [SideTally; 2] {
        let mut sides = [SideTally::default(), SideTally::default()];
        for (side, offsets) in sides.iter_mut().zip([kafka, rocketmq]) {
            for offset in offsets {
                side.add(Some(day), "t", 0, *offset, Some("r"));
            }
        }
        sides
    }

    #[test]
    fn a_day_is_judged_only_once_both_sides_moved_past_its_end() {
        let days = DayRange::parse(Some("2026-11-28"), Some("2026-11-28"), "UTC").expect("days");
        let end = days.bounds(days.from).1;
        let topics = BTreeSet::from(["t".to_string()]);
        let sides = tallies(&[1, 2, 3], &[1, 2, 3], days.from);
        let compared = Comparisons::of(&sides);
        let reached = |kafka: i64, rocketmq: i64| {
            BTreeMap::from([
                (("t".to_string(), Side::Kafka), kafka),
                (("t".to_string(), Side::Rocketmq), rocketmq),
            ])
        };
        let verdict = |kafka, rocketmq| {
            judge(&days, &topics, &sides, &compared, &reached(kafka, rocketmq))[0].verdict
        };
        assert_eq!(verdict(i64::MAX, i64::MAX), Verdict::Match);
        assert_eq!(
            verdict(end, end),
            Verdict::Match,
            "the next record is the next day's first"
        );
        assert_eq!(
            verdict(i64::MAX, end - 1),
            Verdict::Incomplete,
            "RocketMQ side behind"
        );
        assert_eq!(
            verdict(end - 1, i64::MAX),
            Verdict::Incomplete,
            "Kafka side behind"
        );
        let rows = judge(
            &days,
            &topics,
            &sides,
            &compared,
            &reached(end - 1, i64::MAX),
        );
        assert!(
            rows[0].notes[0].contains("kafka side's consumers"),
            "{:?}",
            rows[0].notes
        );
    }

    #[test]
    fn a_record_on_one_side_only_is_a_mismatch_once_complete() {
        let days = DayRange::parse(Some("2026-11-28"), Some("2026-11-28"), "UTC").expect("days");
        let topics = BTreeSet::from(["t".to_string()]);
        let sides = tallies(&[1, 2, 3], &[1, 3], days.from);
        let reached = BTreeMap::from([
            (("t".to_string(), Side::Kafka), i64::MAX),
            (("t".to_string(), Side::Rocketmq), i64::MAX),
        ]);
        let compared = Comparisons::of(&sides);
        let row = &judge(&days, &topics, &sides, &compared, &reached)[0];
        // The tallies alone cannot tell whether the two records on both
        // sides agree: the second pass (refine) compares them one by one.
        assert_eq!(
            (row.verdict, row.only_kafka, row.same, row.not_compared),
            (Verdict::Mismatch, 1, 0, 2)
        );
    }

    #[test]
    fn records_of_an_agreeing_block_are_not_counted_twice() {
        let days = DayRange::parse(Some("2026-11-28"), Some("2026-11-28"), "UTC").expect("days");
        let topics = BTreeSet::from(["t".to_string()]);
        let mut sides = tallies(&[1, 2], &[1, 2], days.from);
        // Failed on the Kafka side only: the processed sets still agree.
        sides[0].add(Some(days.from), "t", 0, 3, None);
        let reached = BTreeMap::from([
            (("t".to_string(), Side::Kafka), i64::MAX),
            (("t".to_string(), Side::Rocketmq), i64::MAX),
        ]);
        let compared = Comparisons::of(&sides);
        let mut rows = judge(&days, &topics, &sides, &compared, &reached);
        let wanted = blocks_to_locate(&rows, &compared);
        assert_eq!(wanted.len(), 1);
        let handled = |result: Option<&str>| {
            Some(Handled {
                timestamp: days.span().0,
                result: result.map(str::to_string),
                failure: result.is_none().then(|| "bad header".to_string()),
            })
        };
        let at = |offset| (days.from, "t".to_string(), 0, offset);
        let located = Located::from([
            (at(1), [handled(Some("r")), handled(Some("r"))]),
            (at(2), [handled(Some("r")), handled(Some("r"))]),
            (at(3), [handled(None), None]),
        ]);
        refine(&mut rows, &compared, &wanted, &located, 10);
        let row = &rows[0];
        assert_eq!(
            (row.verdict, row.same, row.only_kafka, row.differ),
            (Verdict::Mismatch, 2, 1, 0)
        );
        assert_eq!(row.differences.len(), 1);
        assert_eq!(
            (row.differences[0].offset, &row.differences[0].kind),
            (3, &DifferenceKind::OnlyKafka)
        );
    }
}
