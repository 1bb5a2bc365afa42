//! One RocketMQ master down in a two-master cluster: broker-a's rate while
//! broker-b is killed with -9 and kept down, and whether anything was lost,
//! copied twice or reordered once it is back. The harness's model of
//! `tests/rocketmq_cluster.rs`, as a figure for the targets table.
//!
//! It owns its RocketMQ cluster (a name server and two masters started by
//! `scripts/brokers.sh` in a state directory of their own, stopped and
//! deleted at the end, also on an error) and the steady producer; Kafka is
//! the bench's. An 8-partition Kafka topic is copied in `partition` order to
//! a topic with 4 queues on each master; broker-b's partitions wait out the
//! outage while broker-a's keep flowing.

use std::collections::HashMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use rdkafka::ClientConfig;
use rdkafka::producer::{FutureProducer, FutureRecord};
use tokio::task::JoinHandle;

use kafka_rocketmq_bridge::config::RocketMqConfig;
use kafka_rocketmq_bridge::rocketmq_reader::TopicReader;
use kafka_rocketmq_bridge::rocketmq_sink::RocketMqRuntime;
use rocketmq_model::message::MessageQueue;

use super::{Bench, BridgeProcess, enqueue, record_parts, unique};

/// The master that stays up, whose rate is the figure.
const KEPT: &str = "broker-a";
/// The master killed with -9 and restarted.
const KILLED: &str = "broker-b";
const PARTITIONS: u32 = 8;
/// Queues per master: 2 x 4 = 8 queues, one per partition.
const QUEUES_PER_MASTER: u32 = 4;
/// The steady load, records/s over all partitions: twice the test's, and
/// far below what the bridge copies. At 250 records/s per partition the
/// killed master's queue buffers (2,048 records by default) fill within
/// the full run's outage, so broker-b's parked partitions are measured too.
const PRODUCE_RATE: usize = 2_000;
/// The producer sends a round of records this often.
const ROUND: Duration = Duration::from_millis(100);
const ROUND_RECORDS: usize = PRODUCE_RATE / 10;
/// The copy counts as caught up while it lags the producer by less than
/// half a second's records.
const CAUGHT_UP_LAG: usize = PRODUCE_RATE / 2;
/// broker-b counts as copying again once it holds this many more records
/// than just before the kill: sends in flight at the kill may still have
/// been stored.
const RESUMED_MARGIN: i64 = ROUND_RECORDS as i64;
/// The target: broker-a keeps this share of its rate while broker-b is down.
const KEPT_SHARE: f64 = 0.8;
/// Written into the bridge's config; with it, a duplicate misses the target.
const EXACTLY_ONCE_RESTARTS: bool = true;
/// Limits of the waits that are not measured.
const WARM_UP_DEADLINE: Duration = Duration::from_secs(120);
const CATCH_UP_DEADLINE: Duration = Duration::from_secs(240);

/// How long each phase lasts.
struct Windows {
    /// broker-a's rate before the kill is measured over this.
    before: Duration,
    /// broker-b stays down this long.
    outage: Duration,
    /// broker-a's rate during the outage is also sampled per slice.
    slice: Duration,
}

const FULL: Windows = Windows {
    before: Duration::from_secs(10),
    outage: Duration::from_secs(20),
    slice: Duration::from_secs(5),
};
/// `--smoke`: every phase still runs, in seconds.
const SMOKE: Windows = Windows {
    before: Duration::from_secs(3),
    outage: Duration::from_secs(4),
    slice: Duration::from_secs(2),
};

/// What one master down cost.
#[derive(Debug, Clone)]
pub struct MasterDown {
    /// broker-a's stored records/s over the window before the kill.
    pub rate_before: f64,
    /// broker-a's stored records/s over broker-b's outage.
    pub rate_during: f64,
    /// The same per slice of the outage, in order.
    pub slices: Vec<f64>,
    pub slice: Duration,
    /// How long broker-b was down (from the kill to its restart command).
    pub outage: Duration,
    /// From broker-b's restart (ready) to its first new copy; None if
    /// none came within the deadline.
    pub resumed_after: Option<Duration>,
    /// From broker-b's restart to the copy lagging the producer by less
    /// than half a second again; None if not within the deadline.
    pub caught_up_after: Option<Duration>,
    /// Records Kafka stored over the whole run.
    pub produced: usize,
    /// Produced records with no copy in RocketMQ.
    pub missing: usize,
    /// Copies beyond the first of each record.
    pub duplicates: usize,
    /// Copies outside their partition's queue, or behind a later offset of
    /// their partition in it.
    pub out_of_order: usize,
    /// Queues that could not be read back to their end, with why: their
    /// unread copies count as missing.
    pub unread: Vec<String>,
    /// Whether the bridge ran with exactly-once restarts.
    pub exactly_once: bool,
    /// Whether the bridge's log says it re-planned the mapping onto the
    /// remaining queues (the outage should keep the plan).
    pub replanned: bool,
}

impl MasterDown {
    /// broker-a's rate during the outage as a share of its rate before.
    pub fn ratio(&self) -> f64 {
        if self.rate_before > 0.0 {
            self.rate_during / self.rate_before
        } else {
            0.0
        }
    }

    pub fn met(&self) -> bool {
        self.ratio() >= KEPT_SHARE
            && self.missing == 0
            && self.out_of_order == 0
            && self.unread.is_empty()
            && (!self.exactly_once || self.duplicates == 0)
    }

    /// The target's row, for the targets table.
    pub fn target_row(&self, verdict: fn(bool) -> &'static str) -> String {
        let unread = match self.unread.len() {
            0 => String::new(),
            n => format!(" ({n} queues could not be read back to their end)"),
        };
        format!(
            "| one RocketMQ master down (two masters): {KEPT}'s queues keep ≥ {:.0}% of their rate; nothing lost or reordered | \
             {KEPT} {}/s during {KILLED}'s {:.0} s outage against {}/s before ({:.0}%); {} records, {} missing{unread}, {} duplicates, {} out of order | {} |",
            KEPT_SHARE * 100.0,
            thousands(self.rate_during),
            self.outage.as_secs_f64(),
            thousands(self.rate_before),
            self.ratio() * 100.0,
            thousands(self.produced as f64),
            thousands(self.missing as f64),
            thousands(self.duplicates as f64),
            thousands(self.out_of_order as f64),
            verdict(self.met())
        )
    }

    /// The line the harness prints.
    fn summary(&self) -> String {
        let seconds = |after: Option<Duration>| {
            after.map_or("not within the deadline".to_string(), |d| {
                format!("{:.1} s", d.as_secs_f64())
            })
        };
        format!(
            "one RocketMQ master down: {KEPT} stored {:.0}/s before {KILLED}'s kill -9, {:.0}/s during its {:.1} s outage ({:.0}%; per {} s: {}); \
             {KILLED} copying again {} after its restart, caught up {}; {} records produced at {PRODUCE_RATE}/s, {} missing, {} duplicates, {} out of order; \
             the bridge {}{}",
            self.rate_before,
            self.rate_during,
            self.outage.as_secs_f64(),
            self.ratio() * 100.0,
            self.slice.as_secs(),
            self.slices
                .iter()
                .map(|r| format!("{r:.0}"))
                .collect::<Vec<_>>()
                .join(", "),
            seconds(self.resumed_after),
            seconds(self.caught_up_after),
            self.produced,
            self.missing,
            self.duplicates,
            self.out_of_order,
            if self.replanned {
                "re-planned the mapping"
            } else {
                "kept its plan"
            },
            if self.unread.is_empty() {
                String::new()
            } else {
                format!("; not read back to their end: {}", self.unread.join("; "))
            }
        )
    }
}

/// `1234567.8` as `1,234,568`.
fn thousands(value: f64) -> String {
    let digits = format!("{value:.0}");
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return digits;
    }
    let mut grouped = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(digit);
    }
    grouped
}

/// Starts the cluster, measures, and stops and deletes the cluster.
pub async fn measure(bench: &mut Bench) -> Result<MasterDown> {
    let windows = if bench.args.smoke { &SMOKE } else { &FULL };
    bench.say("one RocketMQ master down: starting a name server and two masters of its own".into());
    let cluster = tokio::task::block_in_place(|| Cluster::start(&bench.work))?;
    let runtime = RocketMqRuntime::start(1).map_err(anyhow::Error::msg)?;
    let config: RocketMqConfig =
        serde_yaml::from_str(&format!("name_server: \"{}\"", cluster.name_server))?;
    let reader = TopicReader::start(
        runtime.client_runtime(),
        &config,
        &unique("bench-master-down-reader-"),
    )
    .await?;
    let measured = run(bench, &cluster, &reader, windows).await;
    reader.shutdown().await;
    runtime.shutdown().await;
    tokio::task::block_in_place(|| drop(cluster));
    let measured = measured?;
    bench.say(measured.summary());
    Ok(measured)
}

async fn run(
    bench: &Bench,
    cluster: &Cluster,
    reader: &TopicReader,
    windows: &Windows,
) -> Result<MasterDown> {
    let kafka_topic = unique("bench.master_down.");
    let rocketmq_topic = unique("bench_master_down_");
    let config = write_config(bench, &cluster.name_server, &kafka_topic, &rocketmq_topic)?;
    bench.create_topics(&config, PARTITIONS, QUEUES_PER_MASTER)?;
    check_layout(reader, &rocketmq_topic).await?;

    let traffic = Traffic::start(&bench.args.kafka, &kafka_topic, bench.args.value_size)?;
    let mut bridge = BridgeProcess::start(bench, &config)?;
    // Measured from a steady state: copying to both masters, and the
    // backlog produced while the bridge joined its group copied.
    let warm_up = Instant::now();
    loop {
        let (kept, killed) = (
            stored(reader, &rocketmq_topic, Some(KEPT)).await?,
            stored(reader, &rocketmq_topic, Some(KILLED)).await?,
        );
        if kept > 0 && killed > 0 && caught_up(kept + killed, &traffic) {
            break;
        }
        if warm_up.elapsed() > WARM_UP_DEADLINE || bridge.exited() {
            bail!(
                "not copying to both masters within {WARM_UP_DEADLINE:?} ({KEPT} {kept}, {KILLED} {killed} of {} produced); log {}",
                traffic.delivered(),
                bridge.log.display()
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let (start, base) = (
        Instant::now(),
        stored(reader, &rocketmq_topic, Some(KEPT)).await?,
    );
    tokio::time::sleep(windows.before).await;
    let (end, count) = (
        Instant::now(),
        stored(reader, &rocketmq_topic, Some(KEPT)).await?,
    );
    let rate_before = (count - base) as f64 / (end - start).as_secs_f64();

    let killed_before = stored(reader, &rocketmq_topic, Some(KILLED)).await?;
    tokio::task::block_in_place(|| cluster.run("stop", &["--kill", KILLED]))?;
    let killed = Instant::now();
    let outage_base = stored(reader, &rocketmq_topic, Some(KEPT)).await?;
    let (mut slice_start, mut slice_base) = (killed, outage_base);
    let mut slices = Vec::new();
    loop {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let over = killed.elapsed() >= windows.outage;
        if over || slice_start.elapsed() >= windows.slice {
            let (at, count) = (
                Instant::now(),
                stored(reader, &rocketmq_topic, Some(KEPT)).await?,
            );
            slices.push((count - slice_base) as f64 / (at - slice_start).as_secs_f64());
            (slice_start, slice_base) = (at, count);
        }
        if over {
            break;
        }
    }
    let outage = killed.elapsed();
    // The last slice ended at the outage's last sample.
    let rate_during = (slice_base - outage_base) as f64 / (slice_start - killed).as_secs_f64();
    if bridge.exited() {
        bail!(
            "the bridge exited while {KILLED} was down; log {}",
            bridge.log.display()
        );
    }

    tokio::task::block_in_place(|| cluster.run("start", &[KILLED]))?;
    let restarted = Instant::now();
    let (mut resumed_after, mut caught_up_after) = (None, None);
    while caught_up_after.is_none() && restarted.elapsed() < CATCH_UP_DEADLINE {
        tokio::time::sleep(Duration::from_millis(200)).await;
        // Until the reader sees broker-b in the route again, its queues
        // cannot be asked: a failed sample is taken again.
        let (Ok(kept), Ok(killed_now)) = (
            stored(reader, &rocketmq_topic, Some(KEPT)).await,
            stored(reader, &rocketmq_topic, Some(KILLED)).await,
        ) else {
            continue;
        };
        if resumed_after.is_none() && killed_now > killed_before + RESUMED_MARGIN {
            resumed_after = Some(restarted.elapsed());
        }
        if resumed_after.is_some() && caught_up(kept + killed_now, &traffic) {
            caught_up_after = Some(restarted.elapsed());
        }
        if bridge.exited() {
            bail!(
                "the bridge exited after {KILLED}'s restart; log {}",
                bridge.log.display()
            );
        }
    }
    let produced = traffic.stop().await?;

    // Everything copied (or the deadline passed: what is missing is then
    // counted), and the count settled: re-sent copies would still grow it.
    // A failed sample (broker-b not back in the reader's route) is none.
    let copied = Instant::now();
    let (mut last, mut still_since) = (None, Instant::now());
    loop {
        let now = stored(reader, &rocketmq_topic, None).await.ok();
        if now != last {
            (last, still_since) = (now, Instant::now());
        }
        let complete = last.is_some_and(|count| count >= produced.len() as i64);
        if (complete || copied.elapsed() >= CATCH_UP_DEADLINE)
            && still_since.elapsed() >= Duration::from_secs(2)
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let log = bridge.log.clone();
    // Read after the stop: nothing can still be on its way.
    bridge.stop()?;
    let replanned = std::fs::read_to_string(&log)
        .unwrap_or_default()
        .contains("re-planning");
    let (queues, unread) = read_back(reader, &rocketmq_topic).await?;
    let tally = tally(&produced, &queues);
    Ok(MasterDown {
        rate_before,
        rate_during,
        slices,
        slice: windows.slice,
        outage,
        resumed_after,
        caught_up_after,
        produced: produced.len(),
        missing: tally.missing,
        duplicates: tally.duplicates,
        out_of_order: tally.out_of_order,
        unread,
        exactly_once: EXACTLY_ONCE_RESTARTS,
        replanned,
    })
}

/// The bridge's config: the bench's Kafka, the cluster's name server, one
/// `partition` mapping.
fn write_config(
    bench: &Bench,
    name_server: &str,
    kafka_topic: &str,
    rocketmq_topic: &str,
) -> Result<PathBuf> {
    let path = bench
        .work
        .join(format!("{}.yaml", unique("config-master-down-")));
    // The queue watcher re-reads the route every 5 s (30 s by default), so
    // that it surely sees the route while broker-b is gone, as the test
    // does. A short retry backoff only speeds up the catch-up after the
    // restart, which is not measured.
    let text = format!(
        "kafka:\n  bootstrap_servers: \"{}\"\n  group_id: \"{}\"\n  properties:\n    session.timeout.ms: 6000\n\
         metrics:\n  listen: \"127.0.0.1:0\"\n\
         rocketmq:\n  name_server: \"{name_server}\"\n\
         bridge:\n  commit_interval: 1s\n  exactly_once_restarts: {EXACTLY_ONCE_RESTARTS}\n  \
         queue_refresh_interval: 5s\n  max_retry_backoff: 2s\n\
         mappings:\n  - kafka_topic: \"{kafka_topic}\"\n    rocketmq_topic: \"{rocketmq_topic}\"\n    ordering: partition\n",
        bench.args.kafka,
        unique("bench-group-"),
    );
    std::fs::write(&path, text)?;
    Ok(path)
}

/// create-topics made the topic on both masters, 4 queues each.
async fn check_layout(reader: &TopicReader, topic: &str) -> Result<()> {
    let mut per_master: HashMap<String, u32> = HashMap::new();
    for queue in reader.queues(topic).await? {
        *per_master
            .entry(queue.broker_name().to_string())
            .or_default() += 1;
    }
    let expected = HashMap::from([
        (KEPT.to_string(), QUEUES_PER_MASTER),
        (KILLED.to_string(), QUEUES_PER_MASTER),
    ]);
    if per_master != expected {
        bail!(
            "create-topics did not make {topic} on both masters: queues per master {per_master:?}"
        );
    }
    Ok(())
}

/// Messages stored so far in `topic`'s queues on `broker` (on every broker
/// when None); a fresh topic's queues start at offset 0.
async fn stored(reader: &TopicReader, topic: &str, broker: Option<&str>) -> Result<i64> {
    let mut total = 0;
    for queue in reader.queues(topic).await? {
        if broker.is_some_and(|b| b != queue.broker_name().as_str()) {
            continue;
        }
        total += reader.offsets(&queue).await?.1;
    }
    Ok(total)
}

fn caught_up(stored: i64, traffic: &Traffic) -> bool {
    stored + CAUGHT_UP_LAG as i64 >= traffic.delivered() as i64
}

/// Where Kafka stored a record: (partition, offset).
type Coordinates = (i32, i64);

/// One queue's copies as (Kafka partition, offset), in queue order.
struct QueueCopies {
    records: Vec<Coordinates>,
}

/// Reads of one queue before [`read_back`] gives up.
const READ_ATTEMPTS: u32 = 3;
const READ_RETRY_PAUSE: Duration = Duration::from_secs(2);

/// Every copy in `topic`, queue by queue, and why each queue that could
/// not be read to its end could not. Such a queue's copies up to the
/// failure are kept, so that the rest count as missing rather than the
/// whole run failing. A failed read is tried again first: the reader may
/// still be reconnecting to the restarted broker-b.
async fn read_back(reader: &TopicReader, topic: &str) -> Result<(Vec<QueueCopies>, Vec<String>)> {
    let (mut queues, mut unread) = (Vec::new(), Vec::new());
    for queue in reader.queues(topic).await? {
        let name = format!("{}/{}", queue.broker_name(), queue.queue_id());
        let mut records = Vec::new();
        for attempt in 1..=READ_ATTEMPTS {
            records.clear();
            match read_queue(reader, &queue, &mut records).await {
                Ok(()) => break,
                Err(error) if attempt < READ_ATTEMPTS => {
                    eprintln!(
                        "reading {topic} {name} back failed, again in {READ_RETRY_PAUSE:?}: {error:#}"
                    );
                    tokio::time::sleep(READ_RETRY_PAUSE).await;
                }
                Err(error) => unread.push(format!(
                    "{name} after {} of its copies: {error:#}",
                    records.len()
                )),
            }
        }
        queues.push(QueueCopies { records });
    }
    Ok((queues, unread))
}

/// Appends `queue`'s copies to `records`, as (Kafka partition, offset) in
/// queue order.
async fn read_queue(
    reader: &TopicReader,
    queue: &MessageQueue,
    records: &mut Vec<Coordinates>,
) -> Result<()> {
    let (min, max) = reader.offsets(queue).await?;
    let mut unreadable = None;
    reader
        .scan_queue(queue, min, max, |message| match message.kafka_record() {
            Ok(record) => records.push((record.partition, record.offset)),
            Err(error) => {
                unreadable.get_or_insert((message.queue_offset, error.to_string()));
            }
        })
        .await?;
    // Only the bridge writes to this fresh topic.
    if let Some((offset, error)) = unreadable {
        bail!("a message that is no bridge copy at offset {offset}: {error}");
    }
    Ok(())
}

/// What the read-back shows against what was produced.
struct Tally {
    missing: usize,
    duplicates: usize,
    out_of_order: usize,
}

/// Counts the produced records with no copy, the copies beyond the first,
/// and the copies out of order: outside their partition's queue (the one
/// holding most of its copies), or below a higher offset of their
/// partition before them in it. A copy of the highest offset so far again
/// is a duplicate, not out of order.
fn tally(produced: &[Coordinates], queues: &[QueueCopies]) -> Tally {
    let mut copies: HashMap<Coordinates, usize> = HashMap::new();
    let mut per_queue: HashMap<i32, HashMap<usize, usize>> = HashMap::new();
    for (index, queue) in queues.iter().enumerate() {
        for &(partition, offset) in &queue.records {
            *copies.entry((partition, offset)).or_default() += 1;
            *per_queue
                .entry(partition)
                .or_default()
                .entry(index)
                .or_default() += 1;
        }
    }
    let home: HashMap<i32, usize> = per_queue
        .into_iter()
        .filter_map(|(partition, counts)| {
            let (queue, _) = counts.into_iter().max_by_key(|&(_, n)| n)?;
            Some((partition, queue))
        })
        .collect();
    let mut out_of_order = 0;
    for (index, queue) in queues.iter().enumerate() {
        let mut highest: HashMap<i32, i64> = HashMap::new();
        for &(partition, offset) in &queue.records {
            if home.get(&partition) != Some(&index) {
                out_of_order += 1;
                continue;
            }
            let top = highest.entry(partition).or_insert(i64::MIN);
            if offset < *top {
                out_of_order += 1;
            } else {
                *top = offset;
            }
        }
    }
    Tally {
        missing: produced
            .iter()
            .filter(|record| !copies.contains_key(record))
            .count(),
        duplicates: copies.values().map(|n| n - 1).sum(),
        out_of_order,
    }
}

/// Records of the benchmark's shape produced at `PRODUCE_RATE` in rounds
/// until stopped; keeps where Kafka stored each one.
struct Traffic {
    producing: Arc<AtomicBool>,
    delivered: Arc<AtomicUsize>,
    task: Option<JoinHandle<Result<Vec<Coordinates>>>>,
}

impl Traffic {
    fn start(bootstrap: &str, topic: &str, value_size: usize) -> Result<Self> {
        // Idempotent: a retried produce neither duplicates nor reorders in
        // Kafka, so every copy stands for one produced record.
        let producer: FutureProducer = ClientConfig::new()
            .set("bootstrap.servers", bootstrap)
            .set("linger.ms", "5")
            .set("enable.idempotence", "true")
            .create()
            .context("the master-down producer")?;
        let producing = Arc::new(AtomicBool::new(true));
        let delivered = Arc::new(AtomicUsize::new(0));
        let (still, counted, topic) = (
            Arc::clone(&producing),
            Arc::clone(&delivered),
            topic.to_string(),
        );
        let task = tokio::spawn(async move {
            let mut stored = Vec::new();
            let mut next = tokio::time::Instant::now();
            while still.load(Ordering::SeqCst) {
                let mut deliveries = Vec::with_capacity(ROUND_RECORDS);
                for _ in 0..ROUND_RECORDS {
                    let (key, value, headers) =
                        record_parts(stored.len() + deliveries.len(), value_size);
                    let record = FutureRecord::<[u8], [u8]>::to(&topic)
                        .key(key.as_slice())
                        .payload(value.as_slice())
                        .headers(headers);
                    deliveries.push(enqueue(&producer, record).await);
                }
                for delivery in deliveries {
                    let delivered = delivery.await?.map_err(|(e, _)| e)?;
                    stored.push((delivered.partition, delivered.offset));
                }
                counted.store(stored.len(), Ordering::SeqCst);
                // Pacing: a late round is made up at once.
                next += ROUND;
                tokio::time::sleep_until(next).await;
            }
            anyhow::Ok(stored)
        });
        Ok(Traffic {
            producing,
            delivered,
            task: Some(task),
        })
    }

    /// Records Kafka stored so far.
    fn delivered(&self) -> usize {
        self.delivered.load(Ordering::SeqCst)
    }

    /// Stops after the round in progress; where Kafka stored each record.
    async fn stop(mut self) -> Result<Vec<Coordinates>> {
        self.producing.store(false, Ordering::SeqCst);
        let task = self.task.take().context("the producer task")?;
        task.await.context("the producer task")?
    }
}

impl Drop for Traffic {
    /// A run abandoned on an error stops producing.
    fn drop(&mut self) {
        self.producing.store(false, Ordering::SeqCst);
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// Where the search for free ports starts: below Linux's ephemeral range
/// (32768 up), so that no client's outgoing connection takes broker-b's
/// port while it is down, and away from the bench's (39xxx-40xxx) and the
/// tests' (29xxx-30xxx) shared brokers.
const NAMESRV_PORT_FROM: u16 = 24_876;
const BROKER_PORT_FROM: u16 = 25_911;
/// Candidates tried, 10 ports apart.
const PORT_CANDIDATES: u16 = 200;
/// Ports master K binds around the base port: its own at base + 4K, that
/// - 2, and its HA port + 1.
const BROKER_PORT_OFFSETS: [i16; 6] = [-2, 0, 1, 2, 4, 5];

fn port_free(port: u16) -> bool {
    TcpListener::bind(("127.0.0.1", port)).is_ok()
}

/// A free name server port and a broker base port with every port of
/// both masters free.
fn free_ports() -> Result<(u16, u16)> {
    let namesrv = (0..PORT_CANDIDATES)
        .map(|i| NAMESRV_PORT_FROM + 10 * i)
        .find(|p| port_free(*p))
        .context("no free name server port")?;
    let broker = (0..PORT_CANDIDATES)
        .map(|i| BROKER_PORT_FROM + 10 * i)
        .find(|base| {
            BROKER_PORT_OFFSETS.iter().all(|offset| {
                base.checked_add_signed(*offset)
                    .is_some_and(|p| p != namesrv && port_free(p))
            })
        })
        .context("no free range of broker ports")?;
    Ok((namesrv, broker))
}

fn brokers_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/brokers.sh")
}

/// The measurement's own RocketMQ name server and two masters. Dropping it
/// stops them and deletes their data; a watchdog does the same if the
/// harness dies first.
struct Cluster {
    name_server: String,
    dir: PathBuf,
    /// brokers.sh settings, over the bench's own (bench.sh exports those).
    env: Vec<(&'static str, String)>,
}

impl Cluster {
    fn start(work: &Path) -> Result<Self> {
        let (namesrv_port, broker_port) = free_ports()?;
        let dir = std::fs::canonicalize(work)?.join(unique("master-down-brokers-"));
        let cluster = Cluster {
            name_server: format!("127.0.0.1:{namesrv_port}"),
            env: vec![
                ("BRIDGE_NAMESRV_PORT", namesrv_port.to_string()),
                ("BRIDGE_BROKER_PORT", broker_port.to_string()),
                ("BRIDGE_BROKER_HA_PORT", (broker_port + 1).to_string()),
                ("BRIDGE_BROKER_MASTERS", "2".into()),
                ("BRIDGE_BROKERS_DIR", dir.display().to_string()),
                ("BRIDGE_BROKER_FILE_MB", "64".into()),
            ],
            dir,
        };
        // The watchdog runs while the directory exists.
        std::fs::create_dir_all(&cluster.dir)?;
        cluster.watchdog();
        cluster.run("start", &["namesrv", "broker"])?;
        Ok(cluster)
    }

    fn script(&self) -> Command {
        let mut command = Command::new(brokers_script());
        // Settings of the bench's brokers that would change these.
        command
            .env_remove("BRIDGE_BROKER_IP")
            .env_remove("BRIDGE_BROKER_AUTH_USER")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null());
        command
    }

    /// `brokers.sh ACTION COMPONENTS...`, which must succeed.
    fn run(&self, action: &str, components: &[&str]) -> Result<()> {
        let output = self
            .script()
            .arg(action)
            .args(components)
            .output()
            .context("running scripts/brokers.sh")?;
        if !output.status.success() {
            bail!(
                "brokers.sh {action} {} failed (state in {}): {}",
                components.join(" "),
                self.dir.display(),
                String::from_utf8_lossy(&output.stderr)
            );
        }
        Ok(())
    }

    /// A detached shell that runs `brokers.sh clean` once the harness is
    /// gone, in case it dies without dropping the cluster.
    fn watchdog(&self) {
        let script = r#"while kill -0 "$1" 2>/dev/null && [ -d "$2" ]; do sleep 1; done; [ -d "$2" ] && exec "$3" clean"#;
        let _ = Command::new("setsid")
            .args(["sh", "-c", script, "watchdog"])
            .arg(std::process::id().to_string())
            .arg(&self.dir)
            .arg(brokers_script())
            .env_remove("BRIDGE_BROKER_IP")
            .env_remove("BRIDGE_BROKER_AUTH_USER")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = self.script().arg("clean").output();
    }
}
