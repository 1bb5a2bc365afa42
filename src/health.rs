//! The HTTP endpoint on `metrics.listen`: `/healthz` (the process runs),
//! `/readyz` (both clusters reachable and partitions assigned), `/status`
//! (a JSON snapshot per mapping and partition) and `/metrics` (Prometheus
//! text). The container `HEALTHCHECK` uses `/healthz`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

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
    /// librdkafka reports at least one Kafka broker connection up.
    pub kafka_up: AtomicBool,
    /// Queues whose current batch is failing.
    pub failing_queues: AtomicUsize,
    /// The last queue-route lookup at the name server failed.
    pub route_failing: AtomicBool,
}

impl Readiness {
    pub fn new() -> Arc<Self> {
        Arc::new(Readiness::default())
    }

    /// Whether the instance is ready, and a one-line JSON explanation.
    pub fn report(&self) -> (bool, String) {
        let running = self.running.load(Ordering::Relaxed);
        let assigned = self.assigned_partitions.load(Ordering::Relaxed);
        let kafka_up = self.kafka_up.load(Ordering::Relaxed);
        let failing = self.failing_queues.load(Ordering::Relaxed);
        let route_failing = self.route_failing.load(Ordering::Relaxed);
        let kafka = if !running {
            "starting"
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
        } else if route_failing {
            "name server unreachable"
        } else {
            "ok"
        };
        let ready = kafka == "ok" && rocketmq == "ok";
        let body = format!(
            "{{\"ready\":{ready},\"kafka\":\"{kafka}\",\"rocketmq\":\"{rocketmq}\",\"assigned_partitions\":{assigned},\"failing_queues\":{failing}}}\n"
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
    tracing::info!(%addr, "serving /healthz, /readyz, /status and /metrics");
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
        "/healthz" => ("200 OK", "text/plain", "ok\n".to_string()),
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
            endpoints.metrics.render(),
        ),
        _ => ("404 Not Found", "text/plain", "not found\n".to_string()),
    };
    let response = format!(
        "HTTP/1.1 {status}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(response.as_bytes()).await;
}
