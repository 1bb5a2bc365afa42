//! The count-match (`verify`): proves, per mapping and per day, that
//! RocketMQ holds what Kafka holds, by count and by content.
//!
//! Both sides are streamed once: the RocketMQ queues first (unique copies,
//! duplicates told apart by provenance, foreign messages), then the Kafka
//! partitions (every record of the days; the mapping's policies decide which
//! ones the bridge copies and which it skips or dead-letters). Each side
//! keeps a count and an order-independent digest per day, plus one per block
//! of offsets ([`digest`]). Only when a day does not match is there a second
//! pass, limited to the first blocks that differ, to name the records.
//! Memory stays bounded by the number of blocks, not of records.
//!
//! That is the forward direction (`kafka_to_rocketmq`). The way back
//! (`rocketmq_to_kafka`: RocketMQ is the source, Kafka holds the copies) is
//! in [`way_back`]; both fill the same per-day tallies ([`SourceDay`],
//! [`CopiesDay`]) and are judged, located and reported by the same code here.

mod cutover;
pub mod days;
pub mod digest;
pub(crate) mod kafka_scan;
mod progress;
pub(crate) mod report;
pub(crate) mod rocketmq_scan;
mod way_back;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

use chrono::NaiveDate;

use crate::config::{BridgeConfig, Direction, MappingConfig, RecordPolicy};
use crate::mapping::{self, MappingRules, SourceRecord};
use crate::rocketmq_reader::{ReadError, TopicReader, with_reader};
pub use cutover::{Condition, CutoverReport, DEFAULT_MAX_LAG, cutover_check};
use days::DayRange;
use digest::{BLOCK_OFFSETS, BlockId, DayTally, content_hash};
pub use kafka_scan::group_offsets;
pub use progress::Progress;
pub use report::{
    Coordinates, CopyAt, DayRow, DayVerdicts, Difference, DuplicateCopy, PartitionSpan, ScanSpeed,
    Verdict, VerifyReport,
};
use rocketmq_scan::Seen;

/// Verify could not run: a cluster or topic could not be read. The text
/// names the broker and the topic.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct VerifyError(pub String);

impl From<ReadError> for VerifyError {
    fn from(error: ReadError) -> Self {
        VerifyError(error.to_string())
    }
}

/// What to verify.
#[derive(Debug, Clone)]
pub struct VerifyRequest {
    pub days: DayRange,
    /// Only the mapping with this label (or the regex mapping it came from).
    pub mapping: Option<String>,
    /// How far before the first day to start reading (brokers' time indexes
    /// are approximate, and a record is stored after its timestamp).
    pub slack: Duration,
    /// At most this many differences named per day.
    pub max_listed: usize,
    /// Judge as if it were this instant (ms since the epoch) instead of
    /// now: a day whose end is before it counts as over.
    pub as_of: Option<i64>,
}

impl VerifyRequest {
    fn now_millis(&self) -> i64 {
        self.as_of
            .unwrap_or_else(|| chrono::Utc::now().timestamp_millis())
    }
}

/// Duplicates whose content is checked against Kafka, at most.
const MAX_CHECKED_DUPLICATES: usize = 200_000;
/// Blocks of offsets re-read to name differences, at most, over all days.
const MAX_LOCATED_BLOCKS: usize = 8;

/// Compares Kafka and RocketMQ for every mapping (or the one asked for) and day.
pub async fn verify(
    config: &BridgeConfig,
    request: &VerifyRequest,
    progress: &Progress,
) -> Result<VerifyReport, VerifyError> {
    let config = crate::kafka_source::resolve_regex_mappings(config, Duration::from_secs(30))
        .await
        .map_err(VerifyError)?;
    let mappings: Vec<&MappingConfig> = config
        .mappings
        .iter()
        .filter(|m| {
            request
                .mapping
                .as_deref()
                .is_none_or(|wanted| is_named(m, wanted))
        })
        .collect();
    if mappings.is_empty() {
        let known: Vec<&str> = config.mappings.iter().map(|m| m.label()).collect();
        return Err(VerifyError(format!(
            "no mapping is called `{}`: the mappings are {}",
            request.mapping.as_deref().unwrap_or_default(),
            known.join(", ")
        )));
    }
    let group = format!("{}-verify", config.rocketmq.producer_group);
    let read = with_reader(&config.rocketmq, &group, async |reader| {
        let (mut rows, mut scans) = (Vec::new(), Vec::new());
        for mapping in &mappings {
            let (mut mapping_rows, mut speeds) = match mapping.direction {
                Direction::KafkaToRocketmq => {
                    verify_mapping(&config, mapping, reader, request, progress).await?
                }
                Direction::RocketmqToKafka => {
                    way_back::verify_mapping(&config, mapping, reader, request, progress).await?
                }
            };
            rows.append(&mut mapping_rows);
            scans.append(&mut speeds);
        }
        Ok::<_, VerifyError>((rows, scans))
    })
    .await;
    progress.finish();
    let (rows, scans) = read?;
    Ok(VerifyReport {
        time_zone: request.days.zone.name().to_string(),
        from: request.days.from.to_string(),
        to: request.days.to.to_string(),
        rows,
        scans,
    })
}

fn is_named(mapping: &MappingConfig, wanted: &str) -> bool {
    mapping.label() == wanted || mapping.expanded_from.as_deref() == Some(wanted)
}

/// One mapping, every day of the range.
async fn verify_mapping(
    config: &BridgeConfig,
    mapping: &MappingConfig,
    reader: &TopicReader,
    request: &VerifyRequest,
    progress: &Progress,
) -> Result<(Vec<DayRow>, Vec<ScanSpeed>), VerifyError> {
    let range = request.days;
    let started = Instant::now();
    let since = range.span().0 - request.slack.as_millis() as i64;
    progress.phase(format!("RocketMQ {}", mapping.rocketmq_topic));
    let mut rocketmq = RocketMqSide::default();
    let queue_scans = rocketmq_scan::scan(
        reader,
        &mapping.rocketmq_topic,
        &mapping.kafka_topic,
        &range,
        since,
        progress,
        |seen| rocketmq.add(seen, request.max_listed),
    )
    .await?;
    let speed = |side, records_read, since: Instant| ScanSpeed {
        mapping: mapping.label().to_string(),
        side,
        records_read,
        seconds: since.elapsed().as_secs_f64(),
    };
    let mut speeds = vec![speed(
        "rocketmq",
        queue_scans.iter().map(|q| q.read).sum(),
        started,
    )];
    let started = Instant::now();
    progress.phase(format!("Kafka {}", mapping.kafka_topic));
    let rules = MappingRules::of(mapping, &config.rocketmq);
    let mut kafka = KafkaSide {
        days: BTreeMap::new(),
        duplicates: &rocketmq.duplicate_hashes,
        altered_duplicates: BTreeMap::new(),
    };
    let partition_scans = tokio::task::block_in_place(|| {
        kafka_scan::scan(
            &config.kafka,
            &mapping.kafka_topic,
            since,
            progress,
            |record| kafka.add(record, mapping, &rules, &range, request.max_listed),
        )
    })?;
    speeds.push(speed(
        "kafka",
        partition_scans.values().map(|p| p.read).sum(),
        started,
    ));
    let KafkaSide {
        days: kafka_days,
        altered_duplicates,
        ..
    } = kafka;
    let mut retention: Vec<Retention> = partition_scans
        .iter()
        .map(|(partition, scan)| Retention {
            truncated: scan.truncated,
            first_timestamp: scan.first_timestamp,
            what: format!(
                "Kafka partition {partition} starts at offset {}: older records were deleted by retention",
                scan.start
            ),
        })
        .collect();
    retention.extend(
        queue_scans
            .iter()
            .enumerate()
            .map(|(queue, scan)| Retention {
                truncated: scan.truncated,
                first_timestamp: scan.first_timestamp,
                what: format!(
                    "RocketMQ queue {queue} was truncated: older messages were deleted by retention"
                ),
            }),
    );
    let committed: Committed = partition_scans
        .iter()
        .map(|(partition, scan)| {
            let lane = format!("partition {partition}");
            (*partition, (lane, scan.committed))
        })
        .collect();
    let mut rows = judge(
        mapping,
        request,
        &kafka_days,
        &rocketmq.days,
        &altered_duplicates,
        &retention,
        &committed,
    );
    let wanted = blocks_to_locate(&rows, &kafka_days, &rocketmq.days, request.max_listed);
    if !wanted.is_empty() {
        progress.phase(format!("locating differences in {}", mapping.label()));
        let located = locate(config, mapping, &rules, reader, request, &wanted, progress).await?;
        add_located(&mut rows, &located, request.max_listed);
    }
    Ok((rows, speeds))
}

/// One row per day of the range, from both sides' tallies.
fn judge(
    mapping: &MappingConfig,
    request: &VerifyRequest,
    source: &BTreeMap<NaiveDate, SourceDay>,
    copies: &BTreeMap<NaiveDate, CopiesDay>,
    altered_duplicates: &BTreeMap<NaiveDate, Vec<Coordinates>>,
    retention: &[Retention],
    committed: &Committed,
) -> Vec<DayRow> {
    request
        .days
        .days()
        .map(|day| {
            let evidence = Evidence {
                source: source.get(&day),
                copies: copies.get(&day),
                altered_duplicates: altered_duplicates.get(&day),
                retention,
                committed,
                now: request.now_millis(),
            };
            evidence.row(mapping, &request.days, day)
        })
        .collect()
}

/// Adds the differences the second pass named to their days' rows.
fn add_located(
    rows: &mut [DayRow],
    located: &BTreeMap<NaiveDate, Vec<Difference>>,
    max_listed: usize,
) {
    for row in rows {
        if let Some(differences) = located.get(&row.day_date()) {
            row.differences
                .extend(differences.iter().take(max_listed).cloned());
        }
    }
}

/// What a scan learnt about one partition or queue's retention.
struct Retention {
    /// Its first retained offset was above 0 and the scan began there.
    truncated: bool,
    /// Timestamp of the first record read there, if any.
    first_timestamp: Option<i64>,
    /// The note for a day that may have lost records to it.
    what: String,
}

/// What the target holds for one day: the copies.
#[derive(Default)]
struct CopiesDay {
    unique: DayTally,
    duplicates: u64,
    /// The first duplicates, for the report.
    listed_duplicates: Vec<DuplicateCopy>,
    foreign: u64,
    listed: Vec<Difference>,
}

#[derive(Default)]
struct RocketMqSide {
    days: BTreeMap<NaiveDate, CopiesDay>,
    /// Content hash of each duplicate copy, by Kafka partition and offset.
    duplicate_hashes: HashMap<(i32, i64), Vec<(u64, NaiveDate)>>,
    unchecked_duplicates: u64,
}

impl RocketMqSide {
    fn add(&mut self, seen: Seen<'_>, max_listed: usize) {
        match seen {
            Seen::Copy {
                day,
                record,
                duplicate_at: None,
            } => {
                let hash = content_hash(record);
                let tally = &mut self.days.entry(day).or_default().unique;
                tally.add(record.partition, record.offset, hash);
            }
            Seen::Copy {
                day,
                record,
                duplicate_at: Some(at),
            } => {
                let entry = self.days.entry(day).or_default();
                entry.duplicates += 1;
                if entry.listed_duplicates.len() < max_listed {
                    entry.listed_duplicates.push(DuplicateCopy {
                        coordinates: Coordinates::of(record),
                        at: CopyAt::Message(at),
                    });
                }
                if self.duplicate_hashes.len() < MAX_CHECKED_DUPLICATES {
                    let copies = self
                        .duplicate_hashes
                        .entry((record.partition, record.offset));
                    copies.or_default().push((content_hash(record), day));
                } else {
                    self.unchecked_duplicates += 1;
                }
            }
            Seen::Foreign { day, at, why } => {
                let entry = self.days.entry(day).or_default();
                entry.foreign += 1;
                if entry.listed.len() < max_listed {
                    entry.listed.push(Difference::Foreign { at, why });
                }
            }
        }
    }
}

/// What the source holds for one day.
#[derive(Default)]
struct SourceDay {
    records: u64,
    /// The records the bridge copies (those its policies let through).
    expected: DayTally,
    skipped: BTreeMap<String, u64>,
    dead_lettered: BTreeMap<String, u64>,
    /// Records under a `fail` policy: the bridge stops at them.
    blocked: u64,
    listed: Vec<Difference>,
    /// The offsets the day spans per partition (per queue, the way back:
    /// keyed by the queue's place in the topic's sorted queue list).
    partitions: BTreeMap<i32, PartitionSpan>,
}

impl SourceDay {
    /// Counts a record at `unit` (partition or queue) and `offset` with
    /// `hash`, whose copy the mapping's policies either expect (`Ok`) or
    /// do not (`Err`: the rejection and the policy it falls under).
    fn add(
        &mut self,
        unit: i32,
        offset: i64,
        hash: u64,
        mapped: Result<(), (mapping::Rejection, RecordPolicy)>,
        coordinates: impl FnOnce() -> Coordinates,
        max_listed: usize,
    ) {
        self.records += 1;
        self.partitions
            .entry(unit)
            .or_insert_with(|| PartitionSpan::starting_at(unit, offset))
            .extend(offset);
        let (rejection, policy) = match mapped {
            Ok(()) => return self.expected.add(unit, offset, hash),
            Err(rejected) => rejected,
        };
        let reason = rejection.reason().to_string();
        match policy {
            RecordPolicy::Skip => *self.skipped.entry(reason).or_default() += 1,
            RecordPolicy::DeadLetter => *self.dead_lettered.entry(reason).or_default() += 1,
            RecordPolicy::Fail => {
                self.blocked += 1;
                if self.listed.len() < max_listed {
                    self.listed.push(Difference::Blocked {
                        coordinates: coordinates(),
                        why: rejection.to_string(),
                    });
                }
            }
        }
    }
}

struct KafkaSide<'a> {
    days: BTreeMap<NaiveDate, SourceDay>,
    duplicates: &'a HashMap<(i32, i64), Vec<(u64, NaiveDate)>>,
    altered_duplicates: BTreeMap<NaiveDate, Vec<Coordinates>>,
}

impl KafkaSide<'_> {
    fn add(
        &mut self,
        record: &SourceRecord,
        mapping: &MappingConfig,
        rules: &MappingRules,
        range: &DayRange,
        max_listed: usize,
    ) {
        let Some(day) = record.timestamp.and_then(|(ms, _)| range.day_of(ms)) else {
            return;
        };
        let hash = content_hash(record);
        let mapped = if mapping::surely_mappable(record, rules) {
            Ok(())
        } else {
            mapping::map_record(record, rules).map(drop)
        };
        self.days.entry(day).or_default().add(
            record.partition,
            record.offset,
            hash,
            mapped.map_err(|rejection| (rejection, mapping.policy_for(rejection))),
            || Coordinates::of(record),
            max_listed,
        );
        let copies = self.duplicates.get(&(record.partition, record.offset));
        for (copy_hash, copy_day) in copies.into_iter().flatten() {
            if *copy_hash != hash || *copy_day != day {
                self.altered_duplicates
                    .entry(*copy_day)
                    .or_default()
                    .push(Coordinates::of(record));
            }
        }
    }
}

/// The bridge's committed offset (next to copy) per source lane, by the
/// number the tallies know it by (a Kafka partition, or a RocketMQ queue's
/// place), with the lane's name for the report.
type Committed = BTreeMap<i32, (String, Option<i64>)>;

/// A day's verdict. A day not over yet is never judged; a difference that
/// nothing explains is a MISMATCH even if a side lost records to retention,
/// since retention only removes records, it does not add or alter any.
fn decide(day_over: bool, counts_match: bool, unexplained: u64, incomplete: bool) -> Verdict {
    if !day_over {
        Verdict::Incomplete
    } else if counts_match && unexplained == 0 {
        Verdict::Match
    } else if unexplained == 0 && incomplete {
        Verdict::Incomplete
    } else {
        Verdict::Mismatch
    }
}

/// Everything known about one day, from both sides.
struct Evidence<'a> {
    source: Option<&'a SourceDay>,
    copies: Option<&'a CopiesDay>,
    altered_duplicates: Option<&'a Vec<Coordinates>>,
    retention: &'a [Retention],
    /// The bridge's committed offsets.
    committed: &'a Committed,
    now: i64,
}

impl Evidence<'_> {
    fn row(&self, mapping: &MappingConfig, range: &DayRange, day: NaiveDate) -> DayRow {
        let empty_source = SourceDay::default();
        let empty_copies = CopiesDay::default();
        let kafka = self.source.unwrap_or(&empty_source);
        let rocketmq = self.copies.unwrap_or(&empty_copies);
        let altered = self.altered_duplicates.map_or(&[][..], Vec::as_slice);
        let (start, end) = range.bounds(day);
        let mut notes = Vec::new();
        let day_over = end <= self.now;
        if !day_over {
            notes.push("the day is not over yet".to_string());
        }
        let counts_match = kafka.expected.total == rocketmq.unique.total;
        let unexplained = kafka.blocked + rocketmq.foreign + altered.len() as u64;
        let incomplete = self.incomplete_reasons(kafka, start);
        let verdict = decide(day_over, counts_match, unexplained, !incomplete.is_empty());
        if day_over && verdict == Verdict::Incomplete {
            notes.extend(incomplete);
        }
        let mut differences: Vec<Difference> = kafka.listed.clone();
        differences.extend(rocketmq.listed.iter().cloned());
        differences.extend(altered.iter().map(|c| Difference::AlteredDuplicate {
            coordinates: c.clone(),
        }));
        let forward = mapping.direction == Direction::KafkaToRocketmq;
        DayRow {
            mapping: mapping.label().to_string(),
            direction: mapping.direction,
            kafka_topic: mapping.kafka_topic.clone(),
            rocketmq_topic: mapping.rocketmq_topic.clone(),
            day: day.to_string(),
            source_records: kafka.records,
            expected: kafka.expected.total.count,
            copies: rocketmq.unique.total.count,
            kafka_records: forward.then_some(kafka.records),
            rocketmq_unique: forward.then_some(rocketmq.unique.total.count),
            duplicates: rocketmq.duplicates,
            duplicate_copies: rocketmq.listed_duplicates.clone(),
            skipped: kafka.skipped.clone(),
            dead_lettered: kafka.dead_lettered.clone(),
            foreign: rocketmq.foreign,
            blocked: kafka.blocked,
            digests_match: kafka.expected.total.digest == rocketmq.unique.total.digest,
            verdict,
            notes,
            differences,
            partitions: kafka.partitions.values().cloned().collect(),
        }
    }

    /// Why a day that does not match may simply not be copied or kept whole.
    fn incomplete_reasons(&self, kafka: &SourceDay, day_start: i64) -> Vec<String> {
        let mut reasons = Vec::new();
        for scan in self.retention {
            if scan.truncated && scan.first_timestamp.is_none_or(|first| day_start < first) {
                reasons.push(scan.what.clone());
            }
        }
        for span in kafka.partitions.values() {
            let (lane, committed) = match self.committed.get(&span.partition) {
                Some((lane, committed)) => (lane.clone(), *committed),
                None => (format!("source lane {}", span.partition), None),
            };
            if committed.is_none_or(|next| next <= span.last_offset) {
                let committed = committed.map_or("nothing".to_string(), |c| format!("offset {c}"));
                reasons.push(format!(
                    "the bridge has not copied this day to its end: {lane} has committed {committed}, \
                     the day's last record is at offset {}",
                    span.last_offset
                ));
            }
        }
        reasons
    }
}

/// The first differing blocks of the mismatched days, at most
/// [`MAX_LOCATED_BLOCKS`]. None when no difference is to be listed: naming
/// them costs a second pass over both sides.
fn blocks_to_locate(
    rows: &[DayRow],
    kafka: &BTreeMap<NaiveDate, SourceDay>,
    rocketmq: &BTreeMap<NaiveDate, CopiesDay>,
    max_listed: usize,
) -> BTreeSet<(NaiveDate, BlockId)> {
    if max_listed == 0 {
        return BTreeSet::new();
    }
    let empty = DayTally::default();
    rows.iter()
        .filter(|row| row.verdict == Verdict::Mismatch)
        .flat_map(|row| {
            let day = row.day_date();
            let expected = kafka.get(&day).map_or(&empty, |k| &k.expected);
            let unique = rocketmq.get(&day).map_or(&empty, |r| &r.unique);
            expected
                .differing_blocks(unique)
                .into_iter()
                .map(move |block| (day, block))
        })
        .take(MAX_LOCATED_BLOCKS)
        .collect()
}

/// Second pass: reads both sides again, keeping only the records of the
/// wanted blocks, and names what is missing, extra or different.
async fn locate(
    config: &BridgeConfig,
    mapping: &MappingConfig,
    rules: &MappingRules,
    reader: &TopicReader,
    request: &VerifyRequest,
    wanted: &BTreeSet<(NaiveDate, BlockId)>,
    progress: &Progress,
) -> Result<BTreeMap<NaiveDate, Vec<Difference>>, VerifyError> {
    let range = request.days;
    let since = range.span().0 - request.slack.as_millis() as i64;
    let in_wanted = |day: NaiveDate, record: &SourceRecord| {
        wanted.contains(&(day, (record.partition, record.offset / BLOCK_OFFSETS)))
    };
    let mut in_rocketmq: Located = BTreeMap::new();
    rocketmq_scan::scan(
        reader,
        &mapping.rocketmq_topic,
        &mapping.kafka_topic,
        &range,
        since,
        progress,
        |seen| {
            if let Seen::Copy {
                day,
                record,
                duplicate_at: None,
            } = seen
                && in_wanted(day, record)
            {
                let key = (day, record.partition, record.offset);
                in_rocketmq
                    .entry(key)
                    .or_default()
                    .push(content_hash(record));
            }
        },
    )
    .await?;
    let mut in_kafka: Located = BTreeMap::new();
    tokio::task::block_in_place(|| {
        kafka_scan::scan(
            &config.kafka,
            &mapping.kafka_topic,
            since,
            progress,
            |record| {
                let Some(day) = record.timestamp.and_then(|(ms, _)| range.day_of(ms)) else {
                    return;
                };
                let copyable = || {
                    mapping::surely_mappable(record, rules)
                        || mapping::map_record(record, rules).is_ok()
                };
                if in_wanted(day, record) && copyable() {
                    let key = (day, record.partition, record.offset);
                    in_kafka.entry(key).or_default().push(content_hash(record));
                }
            },
        )
    })?;
    let topic = &mapping.kafka_topic;
    Ok(compare_located(
        &in_kafka,
        &in_rocketmq,
        |partition, offset| Coordinates {
            topic: topic.clone(),
            broker: None,
            partition,
            offset,
        },
    ))
}

/// Content hashes by day, source partition (or queue) and offset.
type Located = BTreeMap<(NaiveDate, i32, i64), Vec<u64>>;

/// Names what the source has and the copies do not, and the reverse.
fn compare_located(
    source: &Located,
    copies: &Located,
    coordinates_of: impl Fn(i32, i64) -> Coordinates,
) -> BTreeMap<NaiveDate, Vec<Difference>> {
    let mut keys: Vec<_> = source.keys().chain(copies.keys()).collect();
    keys.sort();
    keys.dedup();
    let mut found: BTreeMap<NaiveDate, Vec<Difference>> = BTreeMap::new();
    for key in keys {
        let (day, partition, offset) = *key;
        let coordinates = coordinates_of(partition, offset);
        let difference = match (source.get(key), copies.get(key)) {
            (Some(_), None) => Difference::Missing { coordinates },
            (None, Some(_)) => Difference::Extra { coordinates },
            (Some(k), Some(r)) if k != r => Difference::Altered { coordinates },
            _ => continue,
        };
        found.entry(day).or_default().push(difference);
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdicts() {
        use Verdict::*;
        // (day over, counts match, unexplained, incomplete) -> verdict
        let cases = [
            ((false, true, 0, false), Incomplete),
            ((false, false, 3, false), Incomplete),
            ((true, true, 0, false), Match),
            ((true, true, 0, true), Match),
            ((true, false, 0, false), Mismatch),
            ((true, false, 0, true), Incomplete),
            ((true, false, 1, true), Mismatch),
            ((true, true, 1, false), Mismatch),
        ];
        for ((over, counts, unexplained, incomplete), want) in cases {
            assert_eq!(
                decide(over, counts, unexplained, incomplete),
                want,
                "day over {over}, counts match {counts}, unexplained {unexplained}, incomplete {incomplete}"
            );
        }
    }

    #[test]
    fn located_differences_are_named_by_kind() {
        let day = NaiveDate::from_ymd_opt(2026, 11, 24).expect("day");
        let kafka = BTreeMap::from([
            ((day, 0, 1), vec![11]),
            ((day, 0, 2), vec![12]),
            ((day, 0, 3), vec![13]),
        ]);
        let rocketmq = BTreeMap::from([
            ((day, 0, 1), vec![11]),
            ((day, 0, 3), vec![99]),
            ((day, 0, 4), vec![14]),
        ]);
        let at = |offset| Coordinates {
            topic: "t".into(),
            broker: None,
            partition: 0,
            offset,
        };
        let found = compare_located(&kafka, &rocketmq, |_, offset| at(offset));
        assert_eq!(
            found.get(&day).cloned().unwrap_or_default(),
            vec![
                Difference::Missing { coordinates: at(2) },
                Difference::Altered { coordinates: at(3) },
                Difference::Extra { coordinates: at(4) },
            ]
        );
    }
}
