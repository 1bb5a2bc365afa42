//! What the daily count-match inside `run` costs the copy beside it: the
//! same backlog, stamped yesterday, copied three times on fresh targets:
//! alone, with `bridge.daily_verify` firing as the copy starts (paced at the
//! default `max_scan_rate`), and with it unpaced. While the copy is running
//! the day is INCOMPLETE, so the count-match retries every second and scans
//! both sides for the whole copy.

use anyhow::Result;

use kafka_rocketmq_bridge::config::DEFAULT_MAX_SCAN_RATE;

use super::{Bench, PARTITION, Variant, bridge_throughput, fresh_backlog_stamped, now_ms};

pub const PACE: u32 = DEFAULT_MAX_SCAN_RATE;
const DAY_MS: i64 = 86_400_000;

/// The copy's rates, records/s.
pub struct Beside {
    pub alone: f64,
    pub paced: f64,
    pub unpaced: f64,
    /// Count-match passes that started while the paced copy ran.
    pub passes: usize,
    /// The bridge process's CPU seconds over each copy (alone, paced,
    /// unpaced): the differences are what the count-match used, which the
    /// rates' run-to-run noise can hide.
    pub cpu: [f64; 3],
}

/// A backlog of `records` records stamped over yesterday (UTC).
pub async fn backlog(bench: &Bench, records: usize) -> Result<String> {
    let yesterday = now_ms() / DAY_MS * DAY_MS - DAY_MS;
    let (topic, _) = fresh_backlog_stamped(
        bench,
        bench.args.partitions,
        records,
        bench.args.value_size,
        Some(yesterday),
    )
    .await?;
    Ok(topic)
}

/// `bridge:` lines that make the count-match fire 3 s from now, and retry
/// each second while the day is INCOMPLETE.
fn daily_verify(rate: u32) -> &'static str {
    let at = chrono::Utc::now() + chrono::Duration::seconds(3);
    format!(
        "  daily_verify:\n    at: \"{}\"\n    retry_interval: 1s\n    max_scan_rate: {rate}\n",
        at.format("%H:%M:%S")
    )
    .leak()
}

pub async fn measure(bench: &Bench, topic: &str, records: usize) -> Result<Beside> {
    let alone = bridge_throughput(bench, topic, records, &PARTITION).await?;
    let paced = Variant {
        bridge: daily_verify(PACE),
        ..PARTITION
    };
    let paced = bridge_throughput(bench, topic, records, &paced).await?;
    let passes = paced.log.matches("daily count-match: verifying").count();
    let unpaced = Variant {
        bridge: daily_verify(u32::MAX),
        ..PARTITION
    };
    let unpaced = bridge_throughput(bench, topic, records, &unpaced).await?;
    Ok(Beside {
        alone: alone.rate,
        paced: paced.rate,
        unpaced: unpaced.rate,
        passes,
        cpu: [alone.cpu.bridge, paced.cpu.bridge, unpaced.cpu.bridge],
    })
}
