//! One run of the bridge binary over a backlog, as a user runs it: the
//! process and its log, the wait for the copies, the copy's rates (from the
//! first copy readable, and from the process start), its peak RSS, and the
//! CPU it and each broker used meanwhile.

use super::*;

/// `topic`'s count once it has not changed for half a second (at most 10 s).
pub async fn settled_count(bench: &Bench, topic: &str) -> Result<i64> {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut count = bench.count(topic).await?;
    let mut since = Instant::now();
    while since.elapsed() < Duration::from_millis(500) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let now = bench.count(topic).await?;
        if now != count {
            (count, since) = (now, Instant::now());
        }
    }
    Ok(count)
}

/// A `run` of the bridge binary; the log goes to a file.
pub struct BridgeProcess {
    pub child: Child,
    pub log: PathBuf,
}

impl BridgeProcess {
    pub fn start(bench: &Bench, config: &Path) -> Result<Self> {
        Self::start_with_env(bench, config, &[])
    }

    pub fn start_with_env(bench: &Bench, config: &Path, env: &[(&str, &str)]) -> Result<Self> {
        let log = bench.work.join(format!("{}.log", unique("bridge-")));
        let child = Command::new(&bench.args.bridge)
            .args(["run", "--config"])
            .arg(config)
            .env("NO_COLOR", "1")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log)?)
            .spawn()?;
        Ok(BridgeProcess { child, log })
    }

    /// Peak resident memory so far (VmHWM), in bytes.
    pub fn peak_rss(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        status
            .lines()
            .find(|l| l.starts_with("VmHWM:"))
            .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
            .map_or(0, |kib| kib * 1024)
    }

    /// SIGKILL, as a crash would.
    pub fn kill9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn exited(&mut self) -> bool {
        self.child.try_wait().ok().flatten().is_some()
    }

    pub fn stop(mut self) -> Result<()> {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if self.child.try_wait()?.is_some() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        bail!("the bridge did not stop; log {}", self.log.display())
    }
}

impl Drop for BridgeProcess {
    /// A run abandoned on an error must not outlive the harness.
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits until `target` holds `expected` records; returns when the first and
/// the last arrived, or fails at `deadline` or when the bridge exits.
pub async fn wait_for_copy(
    bench: &Bench,
    target: Target<'_>,
    expected: i64,
    deadline: Duration,
    bridge: &mut BridgeProcess,
) -> Result<(Instant, Instant)> {
    wait_until_readable(bench, target, expected, deadline, || bridge.exited())
        .await
        .with_context(|| format!("the bridge's log: {}", bridge.log.display()))
}

/// Waits until `target` holds `expected` records a consumer can read: in a
/// RocketMQ topic, once the broker has dispatched them to its consume
/// queues (after acknowledging them); in a Kafka topic, once they are below
/// the high watermark. Returns when the first and the last became
/// readable. Fails at `deadline`, or once `gave_up` says the writer stopped.
pub async fn wait_until_readable(
    bench: &Bench,
    target: Target<'_>,
    expected: i64,
    deadline: Duration,
    mut gave_up: impl FnMut() -> bool,
) -> Result<(Instant, Instant)> {
    let begin = Instant::now();
    let mut first = None;
    loop {
        let count = bench.count_in(target).await.unwrap_or(0);
        let now = Instant::now();
        if count > 0 && first.is_none() {
            first = Some(now);
        }
        if count >= expected {
            return Ok((first.unwrap_or(now), now));
        }
        if begin.elapsed() > deadline || gave_up() {
            bail!(
                "only {count} of {expected} readable in {target} (within {deadline:?}, or the writer stopped)"
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The bridge over the whole backlog: (records per second, peak RSS bytes).
pub async fn bridge_throughput(
    bench: &Bench,
    kafka_topic: &str,
    records: usize,
    variant: &Variant,
) -> Result<Copy> {
    let rocketmq_topic = unique("bench_out_");
    let config = bench.config(kafka_topic, &rocketmq_topic, variant)?;
    bench.create_topics(&config, bench.args.partitions, bench.args.queues)?;
    timed_copy(
        bench,
        config,
        Target::RocketMq(&rocketmq_topic),
        records,
        variant,
    )
    .await
}

/// Runs the bridge with `config` until `target` holds `records` copies,
/// timed from the first copy readable to the last.
pub async fn timed_copy(
    bench: &Bench,
    config: PathBuf,
    target: Target<'_>,
    records: usize,
    variant: &Variant,
) -> Result<Copy> {
    let spawned = Instant::now();
    let mut bridge = BridgeProcess::start_with_env(bench, &config, variant.env)?;
    let before = CpuUse::now(bridge.child.id());
    let (first, last) = wait_for_copy(
        bench,
        target,
        records as i64,
        Duration::from_secs(900),
        &mut bridge,
    )
    .await?;
    let rss = bridge.peak_rss();
    let cpu = CpuUse::now(bridge.child.id()).minus(&before);
    let log = bridge.log.clone();
    bridge.stop()?;
    let log = std::fs::read_to_string(log).unwrap_or_default();
    let per_second =
        |from: Instant| records as f64 / last.duration_since(from).as_secs_f64().max(0.001);
    Ok(Copy {
        rate: per_second(first),
        from_start: per_second(spawned),
        rss,
        cpu,
        mean_batch: mean_batch(&log),
        config,
        log,
    })
}

/// Records per batch over the run, from the `stopped` line's summary
/// (`produced: N, ... batches: M`); 0 when the line is missing.
pub fn mean_batch(log: &str) -> f64 {
    let field = |line: &str, name: &str| -> Option<f64> {
        let rest = &line[line.find(&format!("{name}: "))? + name.len() + 2..];
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        digits.parse().ok()
    };
    log.lines()
        .rev()
        .find(|line| line.contains("batches: "))
        .and_then(|line| Some(field(line, "produced")? / field(line, "batches")?.max(1.0)))
        .unwrap_or(0.0)
}

/// One bridge run over a backlog.
pub struct Copy {
    /// Records per second from the first copy readable to the last: the
    /// steady rate, without start-up and the group join.
    pub rate: f64,
    /// The same from the process start, as a user's run is timed.
    pub from_start: f64,
    pub rss: u64,
    pub cpu: CpuUse,
    /// Records per batch sent, from the bridge's last log line.
    pub mean_batch: f64,
    /// The config it ran with, for `verify` afterwards.
    pub config: PathBuf,
    /// The bridge's log.
    pub log: String,
}

/// CPU seconds (user + system) used by the bridge and each broker.
#[derive(Debug, Clone, Copy, Default)]
pub struct CpuUse {
    pub bridge: f64,
    pub kafka: f64,
    pub rocketmq: f64,
}

impl CpuUse {
    pub fn now(bridge: u32) -> Self {
        CpuUse {
            bridge: cpu_seconds(bridge),
            kafka: broker_pids(&["kafka-"]).into_iter().map(cpu_seconds).sum(),
            rocketmq: rocketmq_cpu_seconds(),
        }
    }

    pub fn minus(&self, earlier: &CpuUse) -> CpuUse {
        CpuUse {
            bridge: self.bridge - earlier.bridge,
            kafka: self.kafka - earlier.kafka,
            rocketmq: self.rocketmq - earlier.rocketmq,
        }
    }
}

/// CPU seconds used so far by the RocketMQ name server and broker.
pub fn rocketmq_cpu_seconds() -> f64 {
    broker_pids(&["namesrv@", "broker-"])
        .into_iter()
        .map(cpu_seconds)
        .sum()
}

/// utime + stime of a process, in seconds (Linux: 100 ticks per second).
pub fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or(vec![], |(_, rest)| rest.split_whitespace().collect());
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

/// The broker JVMs that `scripts/brokers.sh` started whose component name
/// starts with one of `components`: it marks each java command line with
/// `-Dbridge.component=NAME@STATE_DIR`. With `BRIDGE_BROKERS_DIR` set (as
/// bench.sh does for its own brokers), only that state directory's.
pub fn broker_pids(components: &[&str]) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return vec![];
    };
    let state_dir = std::env::var("BRIDGE_BROKERS_DIR").ok();
    let is_wanted = |arg: &str| {
        let Some(marker) = arg.strip_prefix("-Dbridge.component=") else {
            return false;
        };
        let (name, dir) = marker.split_once('@').unwrap_or((marker, ""));
        let name_matches = components
            .iter()
            .any(|c| name.starts_with(c.trim_end_matches('@')));
        name_matches && state_dir.as_deref().is_none_or(|d| d == dir)
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|line| {
                line.split(|b| *b == 0)
                    .any(|arg| std::str::from_utf8(arg).is_ok_and(is_wanted))
            })
        })
        .collect()
}
