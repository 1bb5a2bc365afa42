//! The Markdown report (`docs/benchmarks.md`) and the CSV behind its chart,
//! rendered from one run's results: every figure, and every target with its
//! verdict.

use super::*;

pub fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .map_or("unknown CPU".to_string(), |s| s.trim().to_string());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let memory = std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .next()
        .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |kib| kib / 1024 / 1024);
    format!("{cores} cores ({cpu}), {memory} GiB memory, Linux; brokers and bridge share the cores")
}

pub fn row(out: &mut String, name: &str, figure: &Figure, unit: &str, value_size: usize) {
    let median = figure.median();
    let _ = writeln!(
        out,
        "| {name} | {median:.0} {unit} | {:.1} MB/s | ±{:.0}% ({} runs) |",
        median * value_size as f64 / 1e6,
        figure.spread() / 2.0,
        figure.samples.len()
    );
}

pub fn verdict(ok: bool) -> &'static str {
    if ok { "met" } else { "**missed**" }
}

pub fn render(bench: &Bench, r: &Results) -> String {
    let args = &bench.args;
    let mut out = String::new();
    let ceiling = r.source.median().min(r.sink.median());
    let _ = writeln!(out, "# Benchmarks\n");
    let _ = writeln!(
        out,
        "Written by `{}` (the numbers below are the ones it printed; do not edit by hand).\n",
        args.command
    );
    let _ = writeln!(out, "- Machine: {}.", machine());
    let _ = writeln!(
        out,
        "- Data: {} records, {} B values, 16 B keys, 2 headers, {} partitions, {} queues; each figure is the median of {} runs, ± half the spread.",
        args.records, args.value_size, args.partitions, args.queues, args.repeat
    );
    let _ = writeln!(
        out,
        "- Brokers: Apache Kafka {} (KRaft, one node) and Apache RocketMQ {} (name server and one broker) on 127.0.0.1, started by `scripts/brokers.sh`.\n",
        std::env::var("BRIDGE_KAFKA_VERSION").unwrap_or_else(|_| "(version unknown)".into()),
        std::env::var("BRIDGE_ROCKETMQ_VERSION").unwrap_or_else(|_| "(version unknown)".into())
    );
    let chart = args.report.with_extension("png");
    let chart = chart.file_name().map_or("".into(), |n| n.to_string_lossy());
    let _ = writeln!(
        out,
        "## Throughput\n\n![throughput against the ceilings]({chart})\n"
    );
    let _ = writeln!(
        out,
        "| what | records/s | payload | spread |\n| --- | --- | --- | --- |"
    );
    row(
        &mut out,
        "source ceiling: raw rdkafka consume",
        &r.source,
        "/s",
        args.value_size,
    );
    row(
        &mut out,
        "sink ceiling: raw RocketMQ batched produce, until readable",
        &r.sink,
        "/s",
        args.value_size,
    );
    row(
        &mut out,
        "(the same, until the last acknowledgement)",
        &r.sink_acknowledged,
        "/s",
        args.value_size,
    );
    row(
        &mut out,
        "**the bridge, `partition` mode**",
        &r.partition,
        "/s",
        args.value_size,
    );
    row(
        &mut out,
        "**the bridge, `key_hash` mode**",
        &r.key_hash,
        "/s",
        args.value_size,
    );
    row(
        &mut out,
        "the bridge, `partition`, `message_ids: client`",
        &r.client_ids,
        "/s",
        args.value_size,
    );
    row(
        &mut out,
        "naive bridge: sync send + commit per record",
        &r.naive,
        "/s",
        args.value_size,
    );
    row(
        &mut out,
        "(Kafka pre-load, for reference)",
        &r.preload,
        "/s",
        args.value_size,
    );
    let mib = |f: &Figure| f.median() / (1 << 20) as f64;
    let _ = writeln!(
        out,
        "\nPeak RSS of the bridge (VmHWM): {:.0} MiB in `partition` mode, {:.0} MiB in `key_hash` mode (in-flight cap 64 MiB). \
         With `MALLOC_ARENA_MAX=2` (glibc keeps freed memory per arena, and makes up to 8 arenas per core): {:.0} MiB in `partition` mode, at {:.0} records/s against {:.0}.\n",
        mib(&r.rss_partition),
        mib(&r.rss_key_hash),
        mib(&r.rss_arenas),
        r.arenas.median(),
        r.partition.median()
    );
    let per_record = |seconds: f64| seconds / args.records as f64 * 1e6;
    let cpu = r.cpu;
    let _ = writeln!(
        out,
        "CPU used during the last `partition` copy of the {} records: bridge {:.1} s ({:.1} µs/record), Kafka broker {:.1} s ({:.1} µs/record), RocketMQ name server and broker {:.1} s ({:.1} µs/record). The three share {} cores. \
         The bridge sent {:.0} records per batch on average in `partition` mode and {:.0} in `key_hash` mode (at most {}). \
         During the last sink ceiling run, with no Kafka and no bridge, RocketMQ used {:.1} s ({:.1} µs/record) until the last record was readable.\n\n\
         Both the bridge and the sink ceiling are timed from the first to the last record readable in RocketMQ, that is in a consume queue: \
         the broker acknowledges a batch as soon as it is in the commit log, and dispatches it to the consume queues and the index afterwards, one message after another (the broker's ReputMessageService thread). \
         Timed to the last acknowledgement instead, the ceiling measures a rate the broker cannot sustain: its dispatch backlog grows for as long as the run lasts.\n",
        args.records,
        cpu.bridge,
        per_record(cpu.bridge),
        cpu.kafka,
        per_record(cpu.kafka),
        cpu.rocketmq,
        per_record(cpu.rocketmq),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        r.batch_partition.median(),
        r.batch_key_hash.median(),
        kafka_rocketmq_bridge::config::BridgeSettings::default().max_batch_records,
        r.sink_broker_cpu,
        per_record(r.sink_broker_cpu),
    );
    sizes::render(&r.sized, &mut out);
    r.way_back.render(&mut out, args.records, args.value_size);
    let _ = writeln!(
        out,
        "## Targets\n\n| target | measured | verdict |\n| --- | --- | --- |"
    );
    let ratio = r.partition.median() / ceiling;
    let _ = writeln!(
        out,
        "| bridge ≥ 90% of min(source, sink ceiling) | {:.0}% (`partition`), {:.0}% (`key_hash`) | {} |",
        ratio * 100.0,
        r.key_hash.median() / ceiling * 100.0,
        verdict(ratio >= 0.9)
    );
    let _ = writeln!(out, "{}", sizes::target_row(&r.sized));
    let (steady, from_start) = (r.partition.median(), r.partition_from_start.median());
    let _ = writeln!(
        out,
        "| from the process start, the bridge's rate within 10% of its steady rate ({} records, `partition`) | {from_start:.0}/s from the process start to the last copy readable, against {steady:.0}/s from the first copy to the last ({:.0}%) | {} |",
        args.records,
        from_start / steady * 100.0,
        verdict(from_start >= 0.9 * steady)
    );
    let _ = writeln!(out, "{}", r.way_back.target_row(verdict));
    let naive_ratio = r.partition.median() / r.naive.median();
    let _ = writeln!(
        out,
        "| bridge ≥ 20x the naive bridge | {naive_ratio:.0}x | {} |",
        verdict(naive_ratio >= 20.0)
    );
    if let (Some((rate, p50, p99, p999)), Some((k50, k99, k999))) = (r.latency, r.kafka_latency) {
        let _ = writeln!(
            out,
            "| p99 end-to-end latency at 50% load ≤ 50 ms, and ≤ Kafka alone's p99 + 10 ms | p50 {p50:.0} ms, p99 {p99:.0} ms, p999 {p999:.0} ms at {rate:.0} records/s; Kafka alone (produce to an rdkafka consumer, same load): p50 {k50:.0} ms, p99 {k99:.0} ms, p999 {k999:.0} ms | {} |",
            verdict(p99 <= 50.0 && p99 <= k99 + 10.0)
        );
    }
    if let Some((rate, p50, p99, p999)) = r.light_latency {
        let _ = writeln!(
            out,
            "| p99 end-to-end latency at 10% load ≤ 50 ms | p50 {p50:.0} ms, p99 {p99:.0} ms, p999 {p999:.0} ms at {rate:.0} records/s | {} |",
            verdict(p99 <= 50.0)
        );
    }
    let cpu_us = r.cpu.bridge / args.records as f64 * 1e6;
    let _ = writeln!(
        out,
        "| bridge CPU ≤ 2 µs per record | {cpu_us:.1} µs (the last `partition` copy: {:.1} s for {} records) | {} |",
        r.cpu.bridge,
        args.records,
        verdict(cpu_us <= 2.0)
    );
    if let Some(restarts) = &r.restart {
        let _ = writeln!(out, "{}", restarts.target_row(args.records, verdict));
    }
    if let Some(down) = &r.master_down {
        let _ = writeln!(out, "{}", down.target_row(verdict));
    }
    let peak = mib(&r.rss_partition).max(mib(&r.rss_key_hash));
    let _ = writeln!(
        out,
        "| peak RSS ≤ 64 MiB + in-flight cap (128 MiB) | {peak:.0} MiB | {} |",
        verdict(peak <= 128.0)
    );
    if let Some((limit, achieved)) = r.limit {
        let error = (achieved - f64::from(limit)) / f64::from(limit) * 100.0;
        let _ = writeln!(
            out,
            "| achieved rate within 5% of a limit | {achieved:.0}/s for {limit}/s ({error:+.1}%) | {} |",
            verdict(error.abs() <= 5.0)
        );
    }
    // Throughput pairs run one after the other in each round; the CPU per
    // id is timed in one process. Both must stay within 5%.
    let cost = r.id_cost_paired.median() * 100.0;
    let (deterministic, client) = r.id_cost;
    let bridge_ns = r.cpu.bridge / args.records as f64 * 1e9;
    let id_share = (deterministic - client) / bridge_ns * 100.0;
    let paired: Vec<String> = r
        .id_cost_paired
        .samples
        .iter()
        .map(|c| format!("{:+.1}%", c * 100.0))
        .collect();
    let _ = writeln!(
        out,
        "| deterministic msgIds cost ≤ 5% against client ids | throughput: a cost of {cost:+.1}% (median of the rounds' pairs {}, each `partition` copy against a `message_ids: client` copy run right after it; negative means faster; medians {:.0}/s against {:.0}/s); CPU: {deterministic:.0} ns against {client:.0} ns per id, {id_share:+.1}% of the bridge's {bridge_ns:.0} ns per record | {} |",
        paired.join(", "),
        r.partition.median(),
        r.client_ids.median(),
        verdict(cost <= 5.0 && id_share <= 5.0)
    );
    let (kafka_scan, rocketmq_scan) = (r.verify_kafka.median(), r.verify_rocketmq.median());
    let _ = writeln!(
        out,
        "| `verify` scans ≥ 200,000 records/s per side | Kafka {kafka_scan:.0}/s ±{:.0}%, RocketMQ {rocketmq_scan:.0}/s ±{:.0}% | {} |",
        r.verify_kafka.spread() / 2.0,
        r.verify_rocketmq.spread() / 2.0,
        verdict(kafka_scan.min(rocketmq_scan) >= 200_000.0)
    );
    let (kafka_ledger, rocketmq_ledger) = (r.results_kafka.median(), r.results_rocketmq.median());
    let _ = writeln!(
        out,
        "| `compare-results` scans ≥ 200,000 ledger entries/s per side | Kafka side's ledger {kafka_ledger:.0}/s ±{:.0}%, RocketMQ side's {rocketmq_ledger:.0}/s ±{:.0}% ({} entries each, 500 per ledger record) | {} |",
        r.results_kafka.spread() / 2.0,
        r.results_rocketmq.spread() / 2.0,
        r.results_entries,
        verdict(kafka_ledger.min(rocketmq_ledger) >= 200_000.0)
    );
    let (paced, unpaced) = (
        r.verify_beside_paced.median(),
        r.verify_beside_unpaced.median(),
    );
    let _ = writeln!(
        out,
        "| the daily count-match costs the copy ≤ 10% of its rate | {:.0}% of the rate alone with the scan paced at {}/s per side (the default `max_scan_rate`), ±{:.0}%, count-match passes started during each paced copy: {:?}; unpaced, {:.0}%. Bridge CPU over the copy: {:.1} s alone, {:.1} s paced, {:.1} s unpaced | {} |",
        paced * 100.0,
        daily_verify_cost::PACE,
        r.verify_beside_paced.spread() / 2.0,
        r.verify_beside_passes,
        unpaced * 100.0,
        r.verify_beside_cpu[0].median(),
        r.verify_beside_cpu[1].median(),
        r.verify_beside_cpu[2].median(),
        verdict(paced >= 0.9 && r.verify_beside_passes.iter().all(|p| *p > 0))
    );
    if let Some(restarts) = &r.restart {
        restarts.render(&mut out);
    }
    let _ = writeln!(
        out,
        "\n## Scaling (one run each)\n\n| backlog | records/s | MiB/s |\n| --- | --- | --- |"
    );
    for (name, rate) in &r.scaling {
        let size: f64 = name
            .rsplit(", ")
            .next()
            .and_then(|s| s.trim_end_matches(" B").parse().ok())
            .unwrap_or(0.0);
        let _ = writeln!(
            out,
            "| {name} | {rate:.0} | {:.1} |",
            rate * size / (1 << 20) as f64
        );
    }
    // Where the time goes: hand-written from profiles, kept next to the harness.
    if let Ok(analysis) = std::fs::read_to_string("benches/analysis.md") {
        let _ = writeln!(out, "\n{analysis}");
    }
    let _ = writeln!(out, "\n## Log of this run\n\n```\n{}```", bench.log);
    out
}

pub fn write_csv(bench: &Bench, r: &Results) -> Result<()> {
    if let Some(parent) = bench.args.csv.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let mut csv = String::from("what,records_per_second\n");
    let forward = [
        ("source ceiling", &r.source),
        ("sink ceiling", &r.sink),
        ("bridge partition", &r.partition),
        ("bridge key_hash", &r.key_hash),
        ("bridge client ids", &r.client_ids),
        ("naive bridge", &r.naive),
    ];
    for (name, figure) in forward.into_iter().chain(r.way_back.csv_rows()) {
        let _ = writeln!(csv, "{name},{:.0}", figure.median());
    }
    std::fs::write(&bench.args.csv, csv)?;
    Ok(())
}
