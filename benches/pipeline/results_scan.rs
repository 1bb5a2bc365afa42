//! `compare-results`' reading speed: two ledgers of `entries` matching
//! entries each, written once with the crate's `LedgerWriter`, then read by
//! the real binary, whose report times each side's scan.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use rdkafka::ClientConfig;

use kafka_rocketmq_bridge::dual_read::{LedgerWriter, Outcome, RecordId, Side};

use super::{Bench, PARTITION, unique};

const DAY_MS: i64 = 86_400_000;

/// Two filled ledgers and what `compare-results` needs to read them.
pub struct Ledgers {
    config: PathBuf,
    group: String,
    day: String,
    pub entries: usize,
}

/// Writes `entries` entries per side, spread over the partitions of a
/// mapped (empty) topic, all stamped yesterday so the day is judged.
pub fn fill(bench: &Bench, entries: usize) -> Result<Ledgers> {
    let source = unique("bench_results_");
    let config = bench.config(&source, &unique("bench_results_out_"), &PARTITION)?;
    let group = unique("bench-dual-read-");
    let created = Command::new(&bench.args.bridge)
        .args(["create-topics", "--config"])
        .arg(&config)
        .args(["--partitions", &bench.args.partitions.to_string()])
        .args(["--dual-read-group", &group])
        .output()?;
    if !created.status.success() {
        bail!(
            "create-topics failed: {}",
            String::from_utf8_lossy(&created.stderr)
        );
    }
    let yesterday = super::now_ms() / DAY_MS * DAY_MS - DAY_MS;
    let partitions = bench.args.partitions.max(1) as usize;
    let client = ClientConfig::new()
        .set("bootstrap.servers", &bench.args.kafka)
        .clone();
    for side in Side::BOTH {
        let mut ledger = LedgerWriter::new(&client, &group, side)?;
        for i in 0..entries {
            let id = RecordId {
                topic: source.clone(),
                partition: (i % partitions) as i32,
                offset: (i / partitions) as i64,
                timestamp: yesterday + (i as i64 * 7) % DAY_MS,
            };
            ledger.record(&id, &Outcome::processed(&i.to_le_bytes()))?;
        }
        ledger.flush(Duration::from_secs(120))?;
    }
    let day = chrono::DateTime::from_timestamp_millis(yesterday)
        .map(|t| t.date_naive().to_string())
        .context("yesterday")?;
    Ok(Ledgers {
        config,
        group,
        day,
        entries,
    })
}

/// Ledger entries per second `compare-results` read on each side (Kafka's
/// ledger, RocketMQ's), from its own report; an error unless it said MATCH.
pub fn speed(bench: &Bench, ledgers: &Ledgers) -> Result<(f64, f64)> {
    let output = Command::new(&bench.args.bridge)
        .args(["compare-results", "--config"])
        .arg(&ledgers.config)
        .args([
            "--group",
            &ledgers.group,
            "--from",
            &ledgers.day,
            "--to",
            &ledgers.day,
        ])
        .arg("--json")
        .output()?;
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).with_context(|| {
        format!(
            "compare-results printed no report: {}",
            String::from_utf8_lossy(&output.stderr)
        )
    })?;
    let verdicts: Vec<&str> = report["rows"]
        .as_array()
        .map(|rows| rows.iter().filter_map(|r| r["verdict"].as_str()).collect())
        .unwrap_or_default();
    if verdicts != ["MATCH"] {
        bail!("compare-results said {verdicts:?} on two identical ledgers: {report}");
    }
    let rate = |index: usize| {
        let ledger = &report["ledgers"][index];
        let entries = ledger["entries"].as_f64().unwrap_or(0.0);
        if entries as usize != ledgers.entries {
            return Err(anyhow::anyhow!(
                "{} ledger: read {entries} entries of {}",
                index,
                ledgers.entries
            ));
        }
        Ok(entries
            / ledger["seconds"]
                .as_f64()
                .unwrap_or(f64::INFINITY)
                .max(1e-6))
    };
    Ok((rate(0)?, rate(1)?))
}
