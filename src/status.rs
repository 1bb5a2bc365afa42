//! The `/status` snapshot: per mapping and partition, where the bridge is
//! (committed offset, high watermark, lag, throughput over the last minute)
//! and what it is doing (running, paused-by-limit, retrying, revoked).
//! Parts of the bridge report into the board; `/status` renders it.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::checkpoint::{PartitionId, PartitionProgress};
use crate::config::{Direction, LiveLimits, RateLimit};
use crate::count_match::Verdict;

/// How long a mapping must go unthrottled to count as no longer throttled.
const THROTTLE_QUIET: Duration = Duration::from_secs(5);
/// The throughput window.
const WINDOW: Duration = Duration::from_secs(60);
/// Days of daily count-match results kept for `/status`.
const VERIFIED_DAYS_KEPT: usize = 7;
/// Days that must MATCH for the console's cutover condition, as `cutover-check --days`' default.
const CUTOVER_DAYS: usize = 3;

#[derive(Debug, Default)]
pub struct StatusBoard {
    state: Mutex<BoardState>,
}

#[derive(Debug, Default)]
struct BoardState {
    mappings: BTreeMap<String, MappingState>,
    /// From librdkafka's statistics: high watermark and the group's committed offset.
    offsets: HashMap<PartitionId, (i64, Option<i64>)>,
    /// Assigned to this instance; listed even before their first record.
    assigned: BTreeSet<PartitionId>,
    revoked: BTreeSet<PartitionId>,
    /// Progress samples, oldest first, spanning about `WINDOW`.
    samples: VecDeque<(Instant, Vec<PartitionProgress>)>,
    limits: LiveLimits,
    in_flight_bytes: i64,
    /// The daily count-match's last results, by (day, mapping).
    verified: BTreeMap<(String, String), VerifiedDay>,
}

/// One mapping's day, as the daily count-match last found it.
#[derive(Debug, Clone, Serialize)]
pub struct VerifiedDay {
    pub day: String,
    pub mapping: String,
    pub direction: Direction,
    /// Kafka's count: the day's records to copy forward, or the first
    /// copies found on the way back.
    pub kafka: u64,
    /// RocketMQ's count: the first copies found forward, or the day's
    /// messages to copy on the way back.
    pub rocketmq: u64,
    pub duplicates: u64,
    pub verdict: Verdict,
    pub checked_at: String,
}

impl MappingState {
    /// Whether `lane` is one this mapping reads: a partition of its Kafka
    /// topic, or on the way back a queue of its RocketMQ topic.
    fn reads(&self, lane: &PartitionId) -> bool {
        match self.direction {
            Direction::KafkaToRocketmq => lane.broker.is_none() && *lane.topic == *self.kafka_topic,
            Direction::RocketmqToKafka => {
                lane.broker.is_some() && *lane.topic == *self.rocketmq_topic
            }
        }
    }
}

#[derive(Debug)]
struct MappingState {
    /// The label its rate limit is kept under (a regex mapping's, for its topics).
    limit_label: String,
    kafka_topic: String,
    rocketmq_topic: String,
    direction: Direction,
    failing_queues: usize,
    throttle: Option<Throttle>,
}

#[derive(Debug)]
struct Throttle {
    limiter: &'static str,
    since: Instant,
    last: Instant,
}

/// A state change worth one log line.
#[derive(Debug, PartialEq, Eq)]
pub enum ThrottleChange {
    Started { limiter: &'static str },
    Ended { lasted: Duration },
}

impl StatusBoard {
    pub fn new() -> Arc<Self> {
        Arc::new(StatusBoard::default())
    }

    fn lock(&self) -> MutexGuard<'_, BoardState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Forgets the previous run's mappings (start-up is retried in-process).
    pub fn reset(&self, limits: &LiveLimits) {
        let mut state = self.lock();
        *state = BoardState::default();
        state.limits = limits.clone();
    }

    pub fn set_limits(&self, limits: &LiveLimits) {
        self.lock().limits = limits.clone();
    }

    /// The limits in force, for `/metrics`.
    pub fn limits(&self) -> LiveLimits {
        self.lock().limits.clone()
    }

    pub fn add_mapping(
        &self,
        label: &str,
        limit_label: &str,
        kafka_topic: &str,
        rocketmq_topic: &str,
        direction: Direction,
    ) {
        self.lock().mappings.insert(
            label.to_string(),
            MappingState {
                limit_label: limit_label.to_string(),
                kafka_topic: kafka_topic.to_string(),
                rocketmq_topic: rocketmq_topic.to_string(),
                direction,
                failing_queues: 0,
                throttle: None,
            },
        );
    }

    /// A queue of `mapping` started (`true`) or stopped (`false`) failing.
    pub fn queue_failing(&self, mapping: &str, failing: bool) {
        if let Some(state) = self.lock().mappings.get_mut(mapping) {
            state.failing_queues = if failing {
                state.failing_queues + 1
            } else {
                state.failing_queues.saturating_sub(1)
            };
        }
    }

    /// A limiter held a record of `mapping` back. Returns a change when the
    /// mapping was not throttled before.
    pub fn throttled(&self, mapping: &str, limiter: &'static str) -> Option<ThrottleChange> {
        let mut state = self.lock();
        let mapping = state.mappings.get_mut(mapping)?;
        let now = Instant::now();
        match &mut mapping.throttle {
            Some(throttle) => {
                throttle.last = now;
                throttle.limiter = limiter;
                None
            }
            None => {
                mapping.throttle = Some(Throttle {
                    limiter,
                    since: now,
                    last: now,
                });
                Some(ThrottleChange::Started { limiter })
            }
        }
    }

    /// `orders(global_messages) payments(mapping_bytes)`, or `none`.
    pub fn throttled_summary(&self) -> String {
        let state = self.lock();
        let throttled: Vec<String> = state
            .mappings
            .iter()
            .filter_map(|(label, m)| {
                m.throttle
                    .as_ref()
                    .map(|t| format!("{label}({})", t.limiter))
            })
            .collect();
        if throttled.is_empty() {
            "none".to_string()
        } else {
            throttled.join(" ")
        }
    }

    /// Ends throttles not renewed for a while; returns them for logging.
    pub fn expire_throttles(&self) -> Vec<(String, ThrottleChange)> {
        let mut state = self.lock();
        let mut ended = Vec::new();
        for (label, mapping) in &mut state.mappings {
            if let Some(throttle) = mapping
                .throttle
                .take_if(|t| t.last.elapsed() >= THROTTLE_QUIET)
            {
                let lasted = throttle.last.duration_since(throttle.since);
                ended.push((label.clone(), ThrottleChange::Ended { lasted }));
            }
        }
        ended
    }

    pub fn offsets(&self, partition: PartitionId, high_watermark: i64, committed: Option<i64>) {
        self.lock()
            .offsets
            .insert(partition, (high_watermark, committed));
    }

    pub fn assigned(&self, partitions: &[PartitionId]) {
        let mut state = self.lock();
        for partition in partitions {
            state.revoked.remove(partition);
            state.assigned.insert(partition.clone());
        }
    }

    pub fn revoked(&self, partitions: &[PartitionId]) {
        let mut state = self.lock();
        for partition in partitions {
            state.assigned.remove(partition);
            state.revoked.insert(partition.clone());
        }
    }

    /// A day verified by the daily count-match; only the last days are kept.
    pub fn day_verified(&self, result: VerifiedDay) {
        let mut state = self.lock();
        state
            .verified
            .insert((result.day.clone(), result.mapping.clone()), result);
        let days: BTreeSet<String> = state.verified.keys().map(|(day, _)| day.clone()).collect();
        if let Some(oldest_kept) = days.iter().rev().nth(VERIFIED_DAYS_KEPT - 1) {
            let oldest_kept = oldest_kept.clone();
            state.verified.retain(|(day, _), _| *day >= oldest_kept);
        }
    }

    /// Takes a progress sample; called every few seconds.
    pub fn sample(&self, progress: Vec<PartitionProgress>, in_flight_bytes: i64) {
        let mut state = self.lock();
        let now = Instant::now();
        state.samples.push_back((now, progress));
        state.in_flight_bytes = in_flight_bytes;
        while state
            .samples
            .front()
            .is_some_and(|(at, _)| now.duration_since(*at) > WINDOW)
        {
            state.samples.pop_front();
        }
    }

    /// The `/status` JSON document.
    pub fn render(&self, uptime: Duration) -> String {
        let state = self.lock();
        let mappings: Vec<MappingStatus> = state
            .mappings
            .iter()
            .map(|(label, mapping)| state.mapping_status(label, mapping))
            .collect();
        let failing_queues = state.mappings.values().map(|m| m.failing_queues).sum();
        // Newest day first, mappings in order.
        let mut daily_verify: Vec<&VerifiedDay> = state.verified.values().collect();
        daily_verify.sort_by(|a, b| b.day.cmp(&a.day).then_with(|| a.mapping.cmp(&b.mapping)));
        let document = StatusDocument {
            uptime_seconds: uptime.as_secs(),
            limits: state.limits.describe(),
            global_rate_limit: LimitView::of(&state.limits.global),
            in_flight_bytes: state.in_flight_bytes.max(0),
            max_in_flight_bytes: state.limits.max_in_flight_bytes,
            cutover: cutover_conditions(&mappings, failing_queues, &daily_verify),
            mappings,
            daily_verify,
        };
        serde_json::to_string_pretty(&document)
            .map(|mut text| {
                text.push('\n');
                text
            })
            .unwrap_or_else(|error| format!("{{\"error\":\"{error}\"}}\n"))
    }
}

impl BoardState {
    fn mapping_status<'a>(
        &'a self,
        label: &'a str,
        mapping: &'a MappingState,
    ) -> MappingStatus<'a> {
        let state = if mapping.failing_queues > 0 {
            "retrying"
        } else if mapping.throttle.is_some() {
            "paused-by-limit"
        } else {
            "running"
        };
        let latest = self.samples.back();
        let oldest = self.samples.front();
        let mut partitions: Vec<PartitionStatus> = latest
            .map(|(_, rows)| rows.as_slice())
            .unwrap_or_default()
            .iter()
            .filter(|row| mapping.reads(&row.partition))
            .map(|row| {
                let (high_watermark, group_committed) = self
                    .offsets
                    .get(&row.partition)
                    .map_or((None, None), |(high, committed)| (Some(*high), *committed));
                // This process's last commit is fresher than the statistics.
                let committed = row.committed.max(group_committed);
                PartitionStatus {
                    partition: row.partition.partition,
                    broker: row.partition.broker.as_deref().map(str::to_string),
                    state,
                    committed,
                    high_watermark,
                    lag: high_watermark
                        .zip(committed)
                        .map(|(high, committed)| (high - committed).max(0)),
                    in_flight: row.in_flight,
                    records_per_second_1m: rate(oldest, latest, &row.partition),
                    checkpoint_age_seconds: row.checkpoint_age.as_secs(),
                }
            })
            .collect();
        // Assigned partitions that have not dispatched a record yet.
        let listed: BTreeSet<i32> = partitions.iter().map(|p| p.partition).collect();
        partitions.extend(
            self.assigned
                .iter()
                .filter(|id| mapping.reads(id) && !listed.contains(&id.partition))
                .map(|id| self.waiting_partition(id, state)),
        );
        partitions.extend(
            self.revoked
                .iter()
                .filter(|id| mapping.reads(id))
                .map(PartitionStatus::revoked),
        );
        partitions.sort_by_key(|p| p.partition);
        MappingStatus {
            mapping: label,
            kafka_topic: &mapping.kafka_topic,
            rocketmq_topic: &mapping.rocketmq_topic,
            direction: mapping.direction.label(),
            state,
            throttled_by: mapping.throttle.as_ref().map(|t| t.limiter),
            rate_limit: self
                .limits
                .per_mapping
                .get(&mapping.limit_label)
                .and_then(LimitView::of),
            partitions,
        }
    }
}

impl BoardState {
    /// A partition with no progress yet: its offsets from the statistics only.
    fn waiting_partition(&self, id: &PartitionId, state: &'static str) -> PartitionStatus {
        let (high_watermark, committed) = self
            .offsets
            .get(id)
            .map_or((None, None), |(high, committed)| (Some(*high), *committed));
        PartitionStatus {
            partition: id.partition,
            broker: id.broker.as_deref().map(str::to_string),
            state,
            committed,
            high_watermark,
            lag: high_watermark
                .zip(committed)
                .map(|(high, committed)| (high - committed).max(0)),
            in_flight: 0,
            records_per_second_1m: 0.0,
            checkpoint_age_seconds: 0,
        }
    }
}

/// The cutover conditions as this instance can tell them: the daily
/// count-match's last days, its own lag and its sends.
fn cutover_conditions(
    mappings: &[MappingStatus],
    failing_queues: usize,
    verified: &[&VerifiedDay],
) -> Vec<LiveCondition> {
    let max_lag = crate::count_match::DEFAULT_MAX_LAG;
    // The cutover is about the dual-write direction's lag.
    let forward = Direction::KafkaToRocketmq.label();
    let partitions = || {
        mappings
            .iter()
            .filter(|m| m.direction == forward)
            .flat_map(|m| {
                m.partitions
                    .iter()
                    .filter(|p| p.state != "revoked")
                    .map(move |p| (m.kafka_topic, p))
            })
    };
    let total: Option<i64> = partitions().map(|(_, p)| p.lag).sum();
    let worst = partitions()
        .filter_map(|(topic, p)| Some((p.lag?, topic, p.partition)))
        .max()
        .filter(|(lag, _, _)| *lag > 0);
    let lag = match total {
        Some(total) => LiveCondition {
            condition: format!("the bridge is less than {max_lag} records behind"),
            value: match worst {
                Some((lag, topic, partition)) => {
                    format!("{total} records behind (most behind: {topic}/{partition} with {lag})")
                }
                None => format!("{total} records behind"),
            },
            ok: Some(total.unsigned_abs() < max_lag),
        },
        None => LiveCondition {
            condition: format!("the bridge is less than {max_lag} records behind"),
            value: format!(
                "not known yet for {} partition(s): no committed offset, or no statistics from librdkafka yet",
                partitions().filter(|(_, p)| p.lag.is_none()).count()
            ),
            ok: None,
        },
    };
    vec![
        days_condition(verified),
        lag,
        LiveCondition {
            condition: "RocketMQ takes every send".to_string(),
            value: format!("{failing_queues} queues failing"),
            ok: Some(failing_queues == 0),
        },
    ]
}

/// Whether the last days the daily count-match verified all MATCH.
fn days_condition(verified: &[&VerifiedDay]) -> LiveCondition {
    let condition = format!("the last {CUTOVER_DAYS} full days all MATCH");
    // As in `cutover-check`: the days that decide the cutover are the
    // dual-write direction's; the way back's days stay listed beside them.
    let verified: Vec<&VerifiedDay> = verified
        .iter()
        .copied()
        .filter(|v| v.direction == Direction::KafkaToRocketmq)
        .collect();
    let days: BTreeSet<&str> = verified.iter().map(|v| v.day.as_str()).collect();
    let recent: Vec<&str> = days.into_iter().rev().take(CUTOVER_DAYS).collect();
    if recent.is_empty() {
        return LiveCondition {
            condition,
            value: "no daily count-match in this process (bridge.daily_verify): run `kafka-rocketmq-bridge cutover-check`"
                .to_string(),
            ok: None,
        };
    }
    let rows = || verified.iter().filter(|v| recent.contains(&v.day.as_str()));
    let count = |verdict| rows().filter(|v| v.verdict == verdict).count();
    let (matched, mismatched) = (count(Verdict::Match), count(Verdict::Mismatch));
    let value = format!(
        "{} of {CUTOVER_DAYS} days verified since start ({} to {}); per mapping and day: \
         {matched} MATCH, {mismatched} MISMATCH, {} INCOMPLETE",
        recent.len(),
        recent.last().unwrap_or(&""),
        recent.first().unwrap_or(&""),
        count(Verdict::Incomplete)
    );
    let ok = if mismatched > 0 {
        Some(false)
    } else if recent.len() == CUTOVER_DAYS && matched == rows().count() {
        Some(true)
    } else {
        None
    };
    LiveCondition {
        condition,
        value,
        ok,
    }
}

/// A cutover condition; `ok` is absent when this instance cannot tell.
#[derive(Serialize)]
struct LiveCondition {
    condition: String,
    value: String,
    ok: Option<bool>,
}

/// Records stored per second between the oldest and latest samples.
fn rate(
    oldest: Option<&(Instant, Vec<PartitionProgress>)>,
    latest: Option<&(Instant, Vec<PartitionProgress>)>,
    partition: &PartitionId,
) -> f64 {
    let (Some((from, old)), Some((to, new))) = (oldest, latest) else {
        return 0.0;
    };
    let seconds = to.duration_since(*from).as_secs_f64();
    let count = |rows: &[PartitionProgress]| {
        rows.iter()
            .find(|r| r.partition == *partition)
            .map_or(0, |r| r.acknowledged)
    };
    if seconds <= 0.0 {
        return 0.0;
    }
    let per_second = count(new).saturating_sub(count(old)) as f64 / seconds;
    (per_second * 10.0).round() / 10.0
}

#[derive(Serialize)]
struct StatusDocument<'a> {
    uptime_seconds: u64,
    /// One line, as the log prints it.
    limits: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    global_rate_limit: Option<LimitView>,
    in_flight_bytes: i64,
    max_in_flight_bytes: u64,
    mappings: Vec<MappingStatus<'a>>,
    /// The daily count-match's last results, newest day first.
    daily_verify: Vec<&'a VerifiedDay>,
    cutover: Vec<LiveCondition>,
}

/// A rate limit as numbers, for the console; absent when nothing is set.
#[derive(Serialize)]
struct LimitView {
    #[serde(skip_serializing_if = "Option::is_none")]
    messages_per_second: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    bytes_per_second: Option<u64>,
}

impl LimitView {
    fn of(limit: &RateLimit) -> Option<Self> {
        (!limit.is_unlimited()).then(|| LimitView {
            messages_per_second: limit.messages_per_second,
            bytes_per_second: limit.bytes_per_second.map(|b| b.0),
        })
    }
}

#[derive(Serialize)]
struct MappingStatus<'a> {
    mapping: &'a str,
    kafka_topic: &'a str,
    rocketmq_topic: &'a str,
    direction: &'static str,
    state: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    throttled_by: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    rate_limit: Option<LimitView>,
    partitions: Vec<PartitionStatus>,
}

#[derive(Serialize)]
struct PartitionStatus {
    /// A Kafka partition, or a RocketMQ queue id (with its `broker`) on
    /// the way back.
    partition: i32,
    #[serde(skip_serializing_if = "Option::is_none")]
    broker: Option<String>,
    state: &'static str,
    committed: Option<i64>,
    high_watermark: Option<i64>,
    lag: Option<i64>,
    in_flight: usize,
    records_per_second_1m: f64,
    checkpoint_age_seconds: u64,
}

impl PartitionStatus {
    fn revoked(id: &PartitionId) -> Self {
        PartitionStatus {
            partition: id.partition,
            broker: id.broker.as_deref().map(str::to_string),
            state: "revoked",
            committed: None,
            high_watermark: None,
            lag: None,
            in_flight: 0,
            records_per_second_1m: 0.0,
            checkpoint_age_seconds: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn progress(partition: i32, committed: i64, acknowledged: u64) -> PartitionProgress {
        PartitionProgress {
            partition: PartitionId::new("orders", partition),
            committed: Some(committed),
            in_flight: 0,
            checkpoint_age: Duration::ZERO,
            acknowledged,
        }
    }

    #[test]
    fn renders_lag_state_and_revoked_partitions() {
        let board = StatusBoard::new();
        let mut limits = LiveLimits {
            global: RateLimit {
                messages_per_second: Some(10),
                ..RateLimit::default()
            },
            max_in_flight_bytes: 1024,
            per_mapping: Default::default(),
        };
        limits.per_mapping.insert(
            "orders".to_string(),
            RateLimit {
                bytes_per_second: Some(crate::config::ByteSize(4096)),
                ..RateLimit::default()
            },
        );
        board.reset(&limits);
        board.add_mapping(
            "orders",
            "orders",
            "orders",
            "orders_rmq",
            Direction::KafkaToRocketmq,
        );
        board.offsets(PartitionId::new("orders", 0), 150, Some(90));
        board.sample(vec![progress(0, 100, 100)], 0);
        board.assigned(&[
            PartitionId::new("orders", 0),
            PartitionId::new("orders", 1),
            PartitionId::new("orders", 2),
        ]);
        board.revoked(&[PartitionId::new("orders", 1)]);
        assert_eq!(
            board.throttled("orders", "global_messages"),
            Some(ThrottleChange::Started {
                limiter: "global_messages"
            })
        );
        assert_eq!(board.throttled("orders", "global_messages"), None);
        let json: serde_json::Value =
            serde_json::from_str(&board.render(Duration::from_secs(3))).unwrap();
        assert_eq!(
            json["limits"],
            "global 10 msg/s; orders 4096 B/s; in-flight cap 1024 B"
        );
        assert_eq!(json["global_rate_limit"]["messages_per_second"], 10);
        assert_eq!(json["max_in_flight_bytes"], 1024);
        let mapping = &json["mappings"][0];
        assert_eq!(mapping["rate_limit"]["bytes_per_second"], 4096);
        assert!(mapping["rate_limit"].get("messages_per_second").is_none());
        assert_eq!(mapping["state"], "paused-by-limit");
        assert_eq!(mapping["throttled_by"], "global_messages");
        assert_eq!(mapping["partitions"][0]["lag"], 50);
        assert_eq!(mapping["partitions"][0]["committed"], 100);
        assert_eq!(mapping["partitions"][1]["state"], "revoked");
        // Assigned, nothing dispatched yet: listed all the same.
        assert_eq!(mapping["partitions"][2]["partition"], 2);
        assert_eq!(mapping["partitions"][2]["in_flight"], 0);
        assert_eq!(mapping["partitions"].as_array().map(Vec::len), Some(3));
        // Partition 2 has no lag figure yet: the total is not known.
        assert_eq!(json["cutover"][1]["ok"], serde_json::Value::Null);
        board.offsets(PartitionId::new("orders", 2), 1500, Some(300));
        board.queue_failing("orders", true);
        let json: serde_json::Value =
            serde_json::from_str(&board.render(Duration::from_secs(3))).unwrap();
        assert_eq!(json["mappings"][0]["state"], "retrying");
        let cutover = &json["cutover"];
        assert_eq!(cutover[0]["ok"], serde_json::Value::Null);
        assert_eq!(
            cutover[1]["value"],
            "1250 records behind (most behind: orders/2 with 1200)"
        );
        assert_eq!(cutover[1]["ok"], false);
        assert_eq!(cutover[2]["value"], "1 queues failing");
        assert_eq!(cutover[2]["ok"], false);
    }

    fn verified(day: &str, verdict: Verdict) -> VerifiedDay {
        VerifiedDay {
            day: day.to_string(),
            mapping: "orders".to_string(),
            direction: Direction::KafkaToRocketmq,
            kafka: 10,
            rocketmq: 10,
            duplicates: 0,
            verdict,
            checked_at: "2026-12-02T01:30:00Z".to_string(),
        }
    }

    #[test]
    fn daily_results_keep_the_last_days_and_decide_the_days_condition() {
        let board = StatusBoard::new();
        let render = |board: &StatusBoard| -> serde_json::Value {
            serde_json::from_str(&board.render(Duration::from_secs(1))).unwrap()
        };
        assert_eq!(render(&board)["cutover"][0]["ok"], serde_json::Value::Null);
        for day in 1..=9 {
            board.day_verified(verified(&format!("2026-11-{day:02}"), Verdict::Match));
        }
        let json = render(&board);
        let days: Vec<&str> = json["daily_verify"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["day"].as_str().unwrap())
            .collect();
        assert_eq!(days.len(), VERIFIED_DAYS_KEPT);
        assert_eq!((days[0], days[6]), ("2026-11-09", "2026-11-03"));
        assert_eq!(json["daily_verify"][0]["verdict"], "MATCH");
        assert_eq!(json["cutover"][0]["ok"], true);
        assert_eq!(
            json["cutover"][0]["value"],
            "3 of 3 days verified since start (2026-11-07 to 2026-11-09); per mapping and day: \
             3 MATCH, 0 MISMATCH, 0 INCOMPLETE"
        );
        // Verified again (after a record appeared): the new verdict replaces the old.
        board.day_verified(verified("2026-11-08", Verdict::Mismatch));
        let json = render(&board);
        assert_eq!(json["cutover"][0]["ok"], false);
        assert_eq!(json["daily_verify"][1]["verdict"], "MISMATCH");
    }
}
