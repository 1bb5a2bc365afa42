//! The HTTP endpoint on `metrics.listen`: `/` (the migration console page),
//! `/healthz` (the process runs and
//! its loops keep turning), `/readyz` (both clusters reachable and partitions assigned), `/status`
//! (a JSON snapshot per mapping and partition) and `/metrics` (Prometheus
//! text). The container `HEALTHCHECK` uses `/healthz`.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use crate::metrics::Metrics;
use crate::status::StatusBoard;

/// What `/readyz` reports, updated by the parts of the bridge that know.
#[derive(Debug, Default)]
pub struct Readiness {
    /// The bridge got past start-up (clusters answered, producer started).
    pub running: AtomicBool,
    /// Partitions currently assigned to this instance.
    pub assigned_partitions: AtomicUsize,
    /// The run consumes Kafka (it has `kafka_to_rocketmq` mappings).
    pub consumes_kafka: AtomicBool,
    /// The run reads RocketMQ (it has `rocketmq_to_kafka` mappings).
    pub reads_rocketmq: AtomicBool,
    /// RocketMQ queues the way back's consumer group assigned to this instance.
    pub assigned_queues: AtomicUsize,
    /// librdkafka reports at least one Kafka broker connection up.
    pub kafka_up: AtomicBool,
    /// A Kafka broker refused the credentials since a connection was last up.
    pub kafka_credentials_refused: AtomicBool,
    /// Queues whose current batch is failing.
    pub failing_queues: AtomicUsize,
    /// The last queue-route lookup at the name server failed.
    pub route_failing: AtomicBool,
    /// Reading target queues back (exactly-once restarts) is failing.
    pub reads_failing: AtomicBool,
    /// Start-up attempts that failed (a cluster down, a topic missing); the
    /// service retries them.
    pub failed_starts: AtomicUsize,
    /// The loops `/healthz` watches.
    loops: Mutex<Vec<Arc<Heartbeat>>>,
}

/// How long a loop that turns every `interval` may stay quiet before
/// `/healthz` calls it stuck: three turns, and never under a minute, so a
/// busy machine does not get a healthy process restarted.
pub fn stuck_after(interval: Duration) -> Duration {
    interval.saturating_mul(3).max(Duration::from_secs(60))
}

/// A loop that must keep turning: it beats as it turns, and `/healthz`
/// fails once it has not beaten for `stuck_after`. Waiting is not stuck: a
/// loop that waits on a broker still turns (it keeps polling), so only a
/// loop that stopped or blocks its thread goes quiet.
#[derive(Debug)]
pub struct Heartbeat {
    name: &'static str,
    stuck_after: Duration,
    origin: Instant,
    /// Milliseconds from `origin` to the last beat.
    last_ms: AtomicU64,
}

impl Heartbeat {
    pub fn beat(&self) {
        let now = u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.store(now, Ordering::Relaxed);
    }

    /// How long since the last beat, if that is longer than `stuck_after`.
    fn quiet_for(&self, now: Instant) -> Option<Duration> {
        let last = self.origin + Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
        let quiet = now.saturating_duration_since(last);
        (quiet > self.stuck_after).then_some(quiet)
    }
}

impl Readiness {
    pub fn new() -> Arc<Self> {
        Arc::new(Readiness::default())
    }

    /// Registers a loop for `/healthz`; it counts as just beaten.
    pub fn heartbeat(&self, name: &'static str, stuck_after: Duration) -> Arc<Heartbeat> {
        let heartbeat = Arc::new(Heartbeat {
            name,
            stuck_after,
            origin: Instant::now(),
            last_ms: AtomicU64::new(0),
        });
        self.loops_mut().push(Arc::clone(&heartbeat));
        heartbeat
    }

    /// Stops watching every loop (the bridge is stopping).
    pub fn forget_loops(&self) {
        self.loops_mut().clear();
    }

    fn loops_mut(&self) -> std::sync::MutexGuard<'_, Vec<Arc<Heartbeat>>> {
        self.loops.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether every watched loop turns, and a one-line explanation.
    pub fn liveness(&self) -> (bool, String) {
        let now = Instant::now();
        let stuck: Vec<String> = self
            .loops_mut()
            .iter()
            .filter_map(|h| {
                h.quiet_for(now)
                    .map(|quiet| format!("{} has not turned for {} s", h.name, quiet.as_secs()))
            })
            .collect();
        if stuck.is_empty() {
            (true, "ok\n".to_string())
        } else {
            (false, format!("stuck: {}\n", stuck.join("; ")))
        }
    }

    /// Whether the instance is ready, and a one-line JSON explanation.
    pub fn report(&self) -> (bool, String) {
        let running = self.running.load(Ordering::Relaxed);
        let assigned = self.assigned_partitions.load(Ordering::Relaxed);
        let kafka_up = self.kafka_up.load(Ordering::Relaxed);
        let failing = self.failing_queues.load(Ordering::Relaxed);
        let route_failing = self.route_failing.load(Ordering::Relaxed);
        let queues = self.assigned_queues.load(Ordering::Relaxed);
        let kafka = if !running {
            "starting"
        } else if !self.consumes_kafka.load(Ordering::Relaxed) {
            // The way back only produces to Kafka; its failing sends are
            // counted with the others (`failing_queues`).
            "ok"
        } else if self.kafka_credentials_refused.load(Ordering::Relaxed) {
            "credentials refused"
        } else if !kafka_up {
            "unreachable"
        } else if assigned == 0 {
            "no partitions assigned"
        } else {
            "ok"
        };
        let rocketmq = if !running {
            "starting"
        } else if failing > 0 {
            "sends failing"
        } else if self.reads_failing.load(Ordering::Relaxed) {
            "reads failing"
        } else if route_failing {
            "name server unreachable"
        } else if self.reads_rocketmq.load(Ordering::Relaxed) && queues == 0 {
            "no queues assigned"
        } else {
            "ok"
        };
        let ready = kafka == "ok" && rocketmq == "ok";
        let body = format!(
            "{{\"ready\":{ready},\"kafka\":\"{kafka}\",\"rocketmq\":\"{rocketmq}\",\"assigned_partitions\":{assigned},\"assigned_queues\":{queues},\"failing_queues\":{failing}}}\n"
        );
        (ready, body)
    }
}

/// Binds `addr` and serves until the task is aborted.
pub async fn serve(
    addr: SocketAddr,
    metrics: Metrics,
    readiness: Arc<Readiness>,
    status: Arc<StatusBoard>,
) -> Result<JoinHandle<()>, String> {
    let listener = TcpListener::bind(addr).await.map_err(|e| {
        format!("cannot listen on metrics.listen {addr}: {e} (is another process using it? change metrics.listen)")
    })?;
    tracing::info!(%addr, "serving the console at /, and /healthz, /readyz, /status and /metrics");
    Ok(tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let endpoints = Endpoints {
                metrics: metrics.clone(),
                readiness: Arc::clone(&readiness),
                status: Arc::clone(&status),
            };
            tokio::spawn(answer(stream, endpoints));
        }
    }))
}

/// What the endpoints read from.
struct Endpoints {
    metrics: Metrics,
    readiness: Arc<Readiness>,
    status: Arc<StatusBoard>,
}

/// The request head, read whole: closing a socket with unread request
/// bytes makes the kernel reset the connection, and the client loses the
/// answer. Clients may send a request in several segments.
async fn read_head(stream: &mut TcpStream) -> Option<Vec<u8>> {
    const LIMIT: usize = 8192;
    let mut head = Vec::with_capacity(256);
    let mut chunk = [0u8; 1024];
    let read_all = async {
        while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < LIMIT {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => head.extend_from_slice(&chunk[..n]),
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(5), read_all)
        .await
        .ok()?;
    Some(head)
}

async fn answer(mut stream: TcpStream, endpoints: Endpoints) {
    let Some(request) = read_head(&mut stream).await else {
        return;
    };
    let head = String::from_utf8_lossy(&request);
    let path = head.split_whitespace().nth(1).unwrap_or("");
    let (status, content_type, body) = match path {
        "/" | "/index.html" => (
            "200 OK",
            "text/html; charset=utf-8",
            crate::console::PAGE.to_string(),
        ),
        "/healthz" => {
            let (alive, body) = endpoints.readiness.liveness();
            let status = if alive {
                "200 OK"
            } else {
                "503 Service Unavailable"
            };
            (status, "text/plain", body)
        }
        "/readyz" => {
            let (ready, body) = endpoints.readiness.report();
            (
                if ready {
                    "200 OK"
                } else {
                    "503 Service Unavailable"
                },
                "application/json",
                body,
            )
        }
        "/status" => (
            "200 OK",
            "application/json",
            endpoints.status.render(endpoints.metrics.uptime()),
        ),
        "/metrics" => (
            "200 OK",
            "text/plain; version=0.0.4",
            endpoints.metrics.render(&endpoints.status.limits()),
        ),
        _ => ("404 Not Found", "text/plain", "not found\n".to_string()),
    };
    let response = format!(
        "HTTP/1.1 {status}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(response.as_bytes()).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_loop_that_stops_beating_fails_healthz_and_recovers_when_it_beats() {
        let readiness = Readiness::new();
        assert_eq!(readiness.liveness(), (true, "ok\n".to_string()));
        let turning = readiness.heartbeat("committer", Duration::from_secs(60));
        let stopped = readiness.heartbeat("dispatcher", Duration::from_millis(20));
        std::thread::sleep(Duration::from_millis(60));
        turning.beat();
        let (alive, body) = readiness.liveness();
        assert!(!alive);
        assert!(
            body.starts_with("stuck: dispatcher has not turned for"),
            "{body}"
        );
        assert!(!body.contains("committer"), "{body}");
        stopped.beat();
        assert!(readiness.liveness().0);
        stopped.last_ms.store(0, Ordering::Relaxed);
        readiness.forget_loops();
        assert!(readiness.liveness().0, "forgotten loops are not watched");
    }
}
