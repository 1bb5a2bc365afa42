//! What a kill -9 costs: the bridge killed halfway through the backlog, then
//! restarted on the same group. Exactly-once restarts with dynamic and with
//! static group membership (`kafka.group_instance_id`), and at-least-once
//! restarts, each on a fresh target topic.
//!
//! With dynamic membership the group coordinator keeps the killed member
//! until its session times out and only then hands its partitions to the
//! restarted one; a static member takes its old place at once.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};

use super::{
    Bench, BridgeProcess, PARTITION, Target, Variant, settled_count, unique, wait_for_copy,
};

/// At-least-once restarts, for the comparison.
const AT_LEAST_ONCE: Variant = Variant {
    bridge: "  exactly_once_restarts: false\n",
    ..PARTITION
};

/// Static membership: the restarted process keeps the killed one's id.
const STATIC_MEMBER: Variant = Variant {
    kafka_keys: "  group_instance_id: \"bench-bridge-1\"\n",
    ..PARTITION
};

/// The target of issue 18: copying again within this long of the restart.
const RESUME_TARGET_MS: f64 = 1000.0;

/// The three restarts, one run each.
#[derive(Debug, Clone, Copy)]
pub struct Restarts {
    pub dynamic: RestartCost,
    pub static_member: RestartCost,
    pub at_least_once: RestartCost,
}

pub async fn measure(bench: &mut Bench, backlog: &str, records: usize) -> Result<Restarts> {
    let restarts = Restarts {
        dynamic: restart_cost(bench, backlog, records, &PARTITION).await?,
        static_member: restart_cost(bench, backlog, records, &STATIC_MEMBER).await?,
        at_least_once: restart_cost(bench, backlog, records, &AT_LEAST_ONCE).await?,
    };
    for (name, cost) in restarts.rows() {
        bench.say(format!(
            "kill -9 halfway, restart ({name}): copying again after {:.0} ms (partitions assigned after {:.0} ms, scan {:.0} ms, {:.0} records found stored and skipped), {:.0} duplicates at the end",
            cost.resume_ms, cost.assigned_ms, cost.scan_ms, cost.skipped, cost.duplicates
        ));
    }
    Ok(restarts)
}

impl Restarts {
    fn rows(&self) -> [(&'static str, RestartCost); 3] {
        [
            (
                "exactly-once, dynamic membership (the default)",
                self.dynamic,
            ),
            (
                "exactly-once, static membership (`kafka.group_instance_id`)",
                self.static_member,
            ),
            (
                "at-least-once (`exactly_once_restarts: false`)",
                self.at_least_once,
            ),
        ]
    }

    /// The target's row: the best exactly-once restart a user can configure.
    pub fn target_row(&self, records: usize, verdict: fn(bool) -> &'static str) -> String {
        let (dynamic, fixed) = (self.dynamic, self.static_member);
        format!(
            "| exactly-once restart: copying again ≤ {RESUME_TARGET_MS:.0} ms after the start on a {records}-record backlog, 0 duplicates | \
             {:.0} ms with `kafka.group_instance_id`, {:.0} duplicates ({:.0} ms and {:.0} without it) | {} |",
            fixed.resume_ms,
            fixed.duplicates,
            dynamic.resume_ms,
            dynamic.duplicates,
            verdict(fixed.resume_ms <= RESUME_TARGET_MS && fixed.duplicates == 0.0)
        )
    }

    /// The section of the report.
    pub fn render(&self, out: &mut String) {
        let _ = writeln!(
            out,
            "\n## Restart after kill -9 (one run each)\n\n\
             The bridge killed with -9 halfway through the backlog, then restarted on the same group \
             (`commit_interval: {}ms`, the default; `session.timeout.ms: 6000`).\n\n\
             | restarts | copying again after | partitions assigned after | restart scan | records found stored, skipped | duplicates at the end |\n\
             | --- | --- | --- | --- | --- | --- |",
            crate::default_commit_interval().as_millis()
        );
        for (name, cost) in self.rows() {
            let _ = writeln!(
                out,
                "| {name} | {:.0} ms | {:.0} ms | {:.0} ms | {:.0} | {:.0} |",
                cost.resume_ms, cost.assigned_ms, cost.scan_ms, cost.skipped, cost.duplicates
            );
        }
    }
}

/// A kill -9 halfway through a backlog, and the restart.
#[derive(Debug, Clone, Copy, Default)]
pub struct RestartCost {
    /// From the restart to the first record stored after it.
    resume_ms: f64,
    /// From the restart to the group's first assignment, from its log line.
    assigned_ms: f64,
    /// The restart scan's own time, from its log lines.
    scan_ms: f64,
    /// Records the scan found already stored, and skipped.
    skipped: f64,
    /// Copies beyond one per record once the backlog is copied.
    duplicates: f64,
}

/// Attempts of [`restart_attempt`] before giving up.
const RESTART_ATTEMPTS: usize = 3;

async fn restart_cost(
    bench: &Bench,
    kafka_topic: &str,
    records: usize,
    variant: &Variant,
) -> Result<RestartCost> {
    for _ in 0..RESTART_ATTEMPTS {
        if let Some(cost) = restart_attempt(bench, kafka_topic, records, variant).await? {
            return Ok(cost);
        }
        eprintln!(
            "the killed bridge had stored the whole backlog before the kill took effect: \
             nothing was left for the restart to copy; measuring again on a new target topic"
        );
    }
    bail!(
        "in {RESTART_ATTEMPTS} attempts the killed bridge always stored the whole backlog: use more records"
    )
}

/// One kill -9 halfway and restart; None when the killed bridge had stored
/// the whole backlog (readable lags acknowledged, so a kill at half readable
/// can come after the last send), leaving the restart nothing to copy.
async fn restart_attempt(
    bench: &Bench,
    kafka_topic: &str,
    records: usize,
    variant: &Variant,
) -> Result<Option<RestartCost>> {
    let rocketmq_topic = unique("bench_restart_");
    let config = bench.config(kafka_topic, &rocketmq_topic, variant)?;
    bench.create_topics(&config, bench.args.partitions, bench.args.queues)?;
    let deadline = Duration::from_secs(900);
    let mut first = BridgeProcess::start(bench, &config)?;
    wait_for_copy(
        bench,
        Target::RocketMq(&rocketmq_topic),
        records as i64 / 2,
        deadline,
        &mut first,
    )
    .await?;
    first.kill9();
    // The killed bridge's last sends may still become readable (stored,
    // not yet dispatched to the consume queues): wait until the count
    // settles, so that only the restarted bridge's copies stop the clock.
    let stored = settled_count(bench, &rocketmq_topic).await?;
    if stored >= records as i64 {
        return Ok(None);
    }
    let restarted = Instant::now();
    let spawned_at = chrono::Utc::now();
    let mut second = BridgeProcess::start(bench, &config)?;
    while bench.count(&rocketmq_topic).await? <= stored {
        if restarted.elapsed() > deadline || second.exited() {
            bail!(
                "the restarted bridge copied nothing; log {}",
                second.log.display()
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let resume_ms = restarted.elapsed().as_secs_f64() * 1000.0;
    wait_for_copy(
        bench,
        Target::RocketMq(&rocketmq_topic),
        records as i64,
        deadline,
        &mut second,
    )
    .await?;
    // Re-sent copies count too, so the count reaches `records` early
    // without the scan: wait until it stops growing.
    let mut last = bench.count(&rocketmq_topic).await?;
    let mut still_since = Instant::now();
    while still_since.elapsed() < Duration::from_secs(2) {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let now = bench.count(&rocketmq_topic).await?;
        if now != last {
            (last, still_since) = (now, Instant::now());
        }
    }
    let log = std::fs::read_to_string(&second.log).unwrap_or_default();
    second.stop()?;
    let (skipped, scan_ms) = restart_scans(&log);
    Ok(Some(RestartCost {
        resume_ms,
        assigned_ms: first_assignment(&log)
            .map_or(f64::NAN, |at| (at - spawned_at).num_milliseconds() as f64),
        scan_ms,
        skipped,
        duplicates: (last - records as i64) as f64,
    }))
}

/// Records skipped and milliseconds spent, summed over a log's restart scans.
fn restart_scans(log: &str) -> (f64, f64) {
    let field = |line: &str, name: &str| -> f64 {
        line.split_whitespace()
            .find_map(|pair| pair.strip_prefix(name)?.strip_prefix('=')?.parse().ok())
            .unwrap_or(0.0)
    };
    log.lines()
        .filter(|line| line.contains("restart scan: read the targets' tails"))
        .fold((0.0, 0.0), |(skipped, ms), line| {
            (
                skipped + field(line, "already_stored"),
                ms + field(line, "took_ms"),
            )
        })
}

/// When the log says the group first assigned partitions.
fn first_assignment(log: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    let line = log.lines().find(|l| l.contains("partitions assigned"))?;
    let stamp = line.split_whitespace().next()?;
    chrono::DateTime::parse_from_rfc3339(stamp)
        .ok()
        .map(|t| t.with_timezone(&chrono::Utc))
}
