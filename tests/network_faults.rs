//! Network faults between the bridge and each broker (issue "Resilience"):
//! a fault-injecting TCP proxy sits in front of Kafka, the RocketMQ name
//! server and the RocketMQ broker. Each test delays, cuts or blackholes one
//! of them mid-stream, checks that `/readyz` says so, restores it, and then
//! checks that nothing was lost, the order of first copies per partition
//! held, the process never exited, and how many duplicates there were.
//!
//! Each test starts its own brokers (`scripts/brokers.sh` with its own
//! ports and state directory) so that the faults of parallel tests do not
//! meet, and so that the shared test brokers are never touched. Both
//! protocols hand out addresses, so each broker advertises its proxy:
//! - Tansu listens on one port and advertises the Kafka proxy's port
//!   (`BRIDGE_KAFKA_ADVERTISED_PORT`);
//! - the RocketMQ broker binds 127.0.0.1:P but registers 127.0.0.2:P at the
//!   name server (`BRIDGE_BROKER_IP`), where the broker proxy listens;
//! - the name server's address is configured, so the bridge is simply
//!   given the name server proxy's.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener as StdListener};
use std::time::{Duration, Instant};

use crate::support::fault_proxy::{FaultProxy, Mode};
use crate::support::*;

const PARTITIONS: usize = 4;
const QUEUES: usize = 4;
const BATCH: usize = 100;
/// The bridge's rate limit: keeps the copy going for the whole fault.
const RATE: usize = 1500;
const BEFORE: usize = 15_000;
const AFTER: usize = 3_000;

fn localhost(ip: [u8; 4], port: u16) -> SocketAddr {
    SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::from(ip), port))
}

fn port_free(ip: [u8; 4], port: u16) -> bool {
    StdListener::bind(localhost(ip, port)).is_ok()
}

/// Kafka, a name server and a broker of this test's own, each behind a proxy.
struct FaultBrokers {
    /// Direct addresses (`name_server` for the test's reader).
    own: OwnBrokers,
    kafka: FaultProxy,
    namesrv: FaultProxy,
    broker: FaultProxy,
}

impl FaultBrokers {
    async fn start() -> Self {
        for attempt in 1..=START_ATTEMPTS {
            match Self::try_start().await {
                Ok(brokers) => return brokers,
                Err(failure) if port_taken(&failure) => {
                    eprintln!("attempt {attempt} of {START_ATTEMPTS}: {failure}");
                }
                Err(failure) => panic!("{failure}"),
            }
        }
        panic!("the brokers found a port taken in each of {START_ATTEMPTS} attempts")
    }

    /// Dropping what was made on failure stops and removes it.
    async fn try_start() -> Result<Self, String> {
        let kafka_port = closed_kafka_port();
        let kafka = FaultProxy::start(
            localhost([127, 0, 0, 1], 0),
            localhost([127, 0, 0, 1], kafka_port),
        )
        .await
        .expect("Kafka proxy");
        let namesrv_port = closed_port();
        let namesrv = FaultProxy::start(
            localhost([127, 0, 0, 1], 0),
            localhost([127, 0, 0, 1], namesrv_port),
        )
        .await
        .expect("name server proxy");
        let broker = broker_proxy().await;
        let own = OwnBrokers::on_ports(
            kafka_port,
            namesrv_port,
            broker.listen.port(),
            &[
                (
                    "BRIDGE_KAFKA_ADVERTISED_PORT",
                    &kafka.listen.port().to_string(),
                ),
                ("BRIDGE_BROKER_IP", "127.0.0.2"),
            ],
        );
        // Blocking, while this runtime serves the proxies the start-up
        // probes go through.
        let (own, started) = tokio::task::spawn_blocking(move || {
            let (started, stderr) = own.try_run("start", &[]);
            let started = if started {
                Ok(())
            } else {
                Err(format!("brokers.sh start failed: {stderr}"))
            };
            (own, started)
        })
        .await
        .expect("brokers.sh start");
        started?;
        Ok(FaultBrokers {
            own,
            kafka,
            namesrv,
            broker,
        })
    }

    fn proxy(&self, target: Target) -> &FaultProxy {
        match target {
            Target::Kafka => &self.kafka,
            Target::NameServer => &self.namesrv,
            Target::Broker => &self.broker,
        }
    }
}

/// The broker's proxy on 127.0.0.2:P; the broker will bind 127.0.0.1:P,
/// P-2 and P+1, which must be free too.
async fn broker_proxy() -> FaultProxy {
    for _ in 0..50 {
        let Ok(port) = StdListener::bind(localhost([127, 0, 0, 2], 0))
            .and_then(|listener| listener.local_addr())
            .map(|addr| addr.port())
        else {
            continue;
        };
        if port > 1100
            && [port, port - 2, port + 1]
                .iter()
                .all(|p| port_free([127, 0, 0, 1], *p))
            && let Ok(proxy) = FaultProxy::start(
                localhost([127, 0, 0, 2], port),
                localhost([127, 0, 0, 1], port),
            )
            .await
        {
            return proxy;
        }
    }
    panic!("no free broker port on 127.0.0.1 and 127.0.0.2")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    Kafka,
    NameServer,
    Broker,
}

/// What `/readyz` must say while the fault lasts.
#[derive(Debug, Clone, Copy)]
enum Expect {
    /// 200 throughout (slow is not broken), and the copy goes on.
    Ready,
    /// 503 with this component (`kafka` or `rocketmq`) in this state.
    Failing(&'static str, &'static str),
}

async fn wait_for_metric(port: u16, name: &str, at_least: f64, deadline: Duration) -> f64 {
    let start = Instant::now();
    loop {
        let value = metric_sum(port, name);
        if value >= at_least || start.elapsed() > deadline {
            return value;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// One fault on one broker, `hold` long at least, mid-stream.
async fn fault_test(name: &str, target: Target, mode: Mode, hold: Duration, expect: Expect) {
    let started = Instant::now();
    let set = FaultBrokers::start().await;
    let base = unique(name);
    let (kafka_topic, rocketmq_topic) = (format!("{base}.in"), format!("{base}_out"));
    let port = closed_port();
    let file = config_file(&format!(
        "kafka:\n  bootstrap_servers: \"{kafka}\"\n  group_id: \"{group}\"\n  properties:\n    \
         session.timeout.ms: \"6000\"\n    queued.max.messages.kbytes: \"64\"\n    \
         max.partition.fetch.bytes: \"16384\"\n\
         rocketmq:\n  name_server: \"{namesrv}\"\n\
         mappings:\n  - kafka_topic: \"{kafka_topic}\"\n    rocketmq_topic: \"{rocketmq_topic}\"\n\
         metrics:\n  listen: \"127.0.0.1:{port}\"\n\
         bridge:\n  max_retry_backoff: \"1s\"\n  max_batch_records: {BATCH}\n  \
         queue_refresh_interval: \"2s\"\n  rate_limit:\n    messages_per_second: {RATE}\n",
        kafka = set.kafka.listen,
        group = unique("group"),
        namesrv = set.namesrv.listen,
    ));
    create_topics(file.path(), PARTITIONS as u32, QUEUES as u32);
    let producer = kafka_producer(&set.kafka.listen.to_string());
    produce(&producer, &kafka_topic, &keyed_records("a", BEFORE, 200)).await;

    let mut bridge = BridgeProcess::start(file.path());
    let copied = wait_for_metric(
        port,
        "bridge_records_produced_total",
        2_000.0,
        Duration::from_secs(60),
    )
    .await;
    assert!(
        copied >= 2_000.0,
        "the copy did not start; log:\n{}",
        bridge.logs()
    );
    let ready = wait_for_http(port, "/readyz", Duration::from_secs(30), |s, _| s == 200).await;
    assert!(
        matches!(ready, Some((200, _))),
        "not ready before the fault: {ready:?}"
    );

    // The fault, mid-stream.
    let proxy = set.proxy(target);
    let bytes_before = proxy.bytes();
    assert!(
        bytes_before > 0,
        "no traffic went through the {target:?} proxy"
    );
    let produced_at_fault = metric_sum(port, "bridge_records_produced_total");
    let fault_at = Instant::now();
    proxy.set(mode);
    let mut seen: Vec<String> = Vec::new();
    let mut detected = None;
    while fault_at.elapsed() < hold
        || (detected.is_none() && fault_at.elapsed() < hold + Duration::from_secs(60))
    {
        let answer = http_get(port, "/readyz");
        let text = match &answer {
            Some((status, body)) => format!("{status} {}", body.trim()),
            None => "no answer".to_string(),
        };
        if seen.last() != Some(&text) {
            eprintln!(
                "[{name}] +{:.1}s readyz {text}",
                fault_at.elapsed().as_secs_f64()
            );
            seen.push(text);
        }
        if let (Expect::Failing(component, state), Some((503, body))) = (expect, &answer)
            && body.contains(&format!("\"{component}\":\"{state}\""))
            && detected.is_none()
        {
            detected = Some(fault_at.elapsed());
        }
        assert!(
            bridge.wait(Duration::ZERO).is_none(),
            "the bridge exited during the fault; log:\n{}",
            bridge.logs()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let produced_during =
        (metric_sum(port, "bridge_records_produced_total") - produced_at_fault) as i64;
    let held = fault_at.elapsed();
    match expect {
        Expect::Ready => {
            assert!(
                seen.iter().all(|s| s.starts_with("200 ")),
                "readyz left 200 during {name}: {seen:?}"
            );
            assert!(produced_during > 0, "nothing copied during {name}");
        }
        Expect::Failing(component, state) => assert!(
            detected.is_some(),
            "readyz never said \"{component}\":\"{state}\" during {name} ({:.0}s): {seen:?}; log:\n{}",
            held.as_secs_f64(),
            bridge.logs()
        ),
    }

    proxy.restore();
    let restored_at = Instant::now();
    let recovered = wait_for_http(port, "/readyz", Duration::from_secs(120), |s, _| s == 200).await;
    let recovery = restored_at.elapsed();
    assert!(
        matches!(recovered, Some((200, _))),
        "readyz did not recover after {name}: {recovered:?}; log:\n{}",
        bridge.logs()
    );
    // More traffic after the fault (for a Kafka fault, the test's producer
    // goes through the same proxy, so only now).
    produce(&producer, &kafka_topic, &keyed_records("b", AFTER, 200)).await;
    let total = BEFORE + AFTER;
    let reader = Reader::new(&set.own.name_server).await;
    let messages = reader
        .wait_for_all(&rocketmq_topic, total, Duration::from_secs(120))
        .await;
    reader.close().await;
    assert!(
        bridge.wait(Duration::ZERO).is_none(),
        "the bridge exited after {name}; log:\n{}",
        bridge.logs()
    );
    let send_errors = metric_sum(port, "bridge_send_errors_total") as u64;
    let already_stored = metric_sum(port, "bridge_records_already_stored_total") as u64;
    let not_resent = metric_sum(port, "bridge_records_stored_despite_failure_total") as u64;
    bridge.stop_gracefully(Duration::from_secs(30));
    let duplicates = assert_complete_and_ordered(&messages, total, PARTITIONS);
    eprintln!(
        "RESULT {name}: {total} records, {duplicates} duplicates, {send_errors} failed sends, \
         {already_stored} already stored, {not_resent} of failed sends found stored, {produced_during} copied during the fault, \
         readyz detected after {detected:?}, fault held {:.1}s, ready {:.1}s after restore, \
         proxy {} connections {} bytes, test {:.0}s; readyz: {seen:?}",
        held.as_secs_f64(),
        recovery.as_secs_f64(),
        proxy.connections(),
        proxy.bytes(),
        started.elapsed().as_secs_f64(),
    );
    // A failed send may still have been stored (it timed out, or the
    // connection broke after the broker got it): at most one batch each.
    let bound = send_errors as usize * BATCH;
    assert!(
        duplicates <= bound,
        "{duplicates} duplicates after {name}, more than one batch per failed send ({bound})"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_delay() {
    fault_test(
        "kafka-delay",
        Target::Kafka,
        Mode::Delay(Duration::from_millis(500)),
        Duration::from_secs(8),
        Expect::Ready,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_cut() {
    fault_test(
        "kafka-cut",
        Target::Kafka,
        Mode::Cut,
        Duration::from_secs(10),
        Expect::Failing("kafka", "unreachable"),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_blackhole() {
    fault_test(
        "kafka-blackhole",
        Target::Kafka,
        Mode::Blackhole,
        Duration::from_secs(40),
        Expect::Failing("kafka", "unreachable"),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn name_server_cut() {
    fault_test(
        "namesrv-cut",
        Target::NameServer,
        Mode::Cut,
        Duration::from_secs(8),
        Expect::Failing("rocketmq", "name server unreachable"),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn name_server_blackhole() {
    fault_test(
        "namesrv-blackhole",
        Target::NameServer,
        Mode::Blackhole,
        Duration::from_secs(8),
        Expect::Failing("rocketmq", "name server unreachable"),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_delay() {
    // 3 s each way: every send outlives the 5 s send timeout, and is stored anyway.
    fault_test(
        "broker-delay",
        Target::Broker,
        Mode::Delay(Duration::from_secs(3)),
        Duration::from_secs(10),
        Expect::Failing("rocketmq", "sends failing"),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_cut() {
    fault_test(
        "broker-cut",
        Target::Broker,
        Mode::Cut,
        Duration::from_secs(8),
        Expect::Failing("rocketmq", "sends failing"),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_blackhole() {
    fault_test(
        "broker-blackhole",
        Target::Broker,
        Mode::Blackhole,
        Duration::from_secs(10),
        Expect::Failing("rocketmq", "sends failing"),
    )
    .await;
}
