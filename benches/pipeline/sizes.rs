//! The bridge at larger values (2 KiB and 64 KiB) against the sink ceiling
//! at the same size, in every round beside the 200-byte figures: the
//! backlog of each size is pre-loaded once, then each round runs the raw
//! RocketMQ produce of copies that size and the bridge over the backlog.
//! Each size gets the same bytes (256 MiB; 4 MiB with `--smoke`), so fewer
//! records.

use std::fmt::Write as _;

use anyhow::Result;

use super::{Bench, Figure, PARTITION, bench_envelope, bridge_throughput, fresh_backlog, unique};
use super::{sink_ceiling, verdict};

pub const SIZES: [usize; 2] = [2048, 65536];

/// One size's backlog and figures.
pub struct Sized {
    pub value_size: usize,
    topic: String,
    pub records: usize,
    pub sink: Figure,
    pub bridge: Figure,
}

impl Sized {
    fn ratio(&self) -> f64 {
        self.bridge.median() / self.sink.median()
    }
}

/// Pre-loads a backlog of each size.
pub async fn backlogs(bench: &mut Bench) -> Result<Vec<Sized>> {
    let budget_bytes = if bench.args.smoke { 4 << 20 } else { 256 << 20 };
    let mut sized = Vec::new();
    for value_size in SIZES {
        let records = (budget_bytes / value_size).min(bench.args.records);
        let (topic, took) =
            fresh_backlog(bench, bench.args.partitions, records, value_size).await?;
        bench.say(format!(
            "pre-loaded {records} records of {value_size} B at {:.0} records/s",
            records as f64 / took.as_secs_f64()
        ));
        sized.push(Sized {
            value_size,
            topic,
            records,
            sink: Figure::default(),
            bridge: Figure::default(),
        });
    }
    Ok(sized)
}

/// One round: the sink ceiling, then the bridge, at each size.
pub async fn round(bench: &mut Bench, round: usize, sized: &mut [Sized]) -> Result<()> {
    for size in sized.iter_mut() {
        let sink_topic = unique("bench_sink_sized_");
        let config = bench.config(&size.topic, &sink_topic, &PARTITION)?;
        bench.create_topics(&config, bench.args.partitions, bench.args.queues)?;
        let sink = sink_ceiling(
            bench,
            &sink_topic,
            size.records,
            size.value_size,
            bench_envelope,
        )
        .await?
        .readable;
        let bridge = bridge_throughput(bench, &size.topic, size.records, &PARTITION)
            .await?
            .rate;
        size.sink.push(sink);
        size.bridge.push(bridge);
        bench.say(format!(
            "round {round}: {} B values ({} records): sink ceiling {sink:.0}/s, bridge {bridge:.0}/s ({:.0}%)",
            size.value_size,
            size.records,
            bridge / sink * 100.0
        ));
    }
    Ok(())
}

/// Throughput table rows: each size's ceiling and bridge.
pub fn render(sized: &[Sized], out: &mut String) {
    let _ = writeln!(
        out,
        "\n## Larger values\n\nThe same partitions and queues, with as many records of each size as make its bytes; \
         the sink ceiling sends copies of that size in the bridge's default batches (at most 1,024 records and 1 MiB). \
         Both are timed from the first to the last record readable in RocketMQ.\n\n\
         | values | records | sink ceiling | the bridge, `partition` | ratio |\n| --- | --- | --- | --- | --- |"
    );
    for size in sized {
        let mib = |f: &Figure| f.median() * size.value_size as f64 / (1 << 20) as f64;
        let _ = writeln!(
            out,
            "| {} B | {} | {:.0}/s ({:.1} MiB/s) ±{:.0}% | {:.0}/s ({:.1} MiB/s) ±{:.0}% | {:.0}% |",
            size.value_size,
            size.records,
            size.sink.median(),
            mib(&size.sink),
            size.sink.spread() / 2.0,
            size.bridge.median(),
            mib(&size.bridge),
            size.bridge.spread() / 2.0,
            size.ratio() * 100.0
        );
    }
}

/// The target row: the bridge ≥ 90% of the sink ceiling at each size.
pub fn target_row(sized: &[Sized]) -> String {
    let measured: Vec<String> = sized
        .iter()
        .map(|s| {
            format!(
                "{:.0}% at {} B ({:.0}/s against {:.0}/s)",
                s.ratio() * 100.0,
                s.value_size,
                s.bridge.median(),
                s.sink.median()
            )
        })
        .collect();
    format!(
        "| bridge ≥ 90% of the sink ceiling with 2 KiB and 64 KiB values | {} | {} |",
        measured.join("; "),
        verdict(sized.iter().all(|s| s.ratio() >= 0.9))
    )
}
