//! A minimal liveness endpoint on `metrics.listen`: `GET /healthz` answers
//! 200 while the process runs, so the container `HEALTHCHECK` tells the
//! truth. The metrics and readiness endpoints will share this listener.

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// Binds `addr` and serves `/healthz` until the task is aborted.
pub async fn serve(addr: SocketAddr) -> Result<JoinHandle<()>, String> {
    let listener = TcpListener::bind(addr).await.map_err(|e| {
        format!("cannot listen on metrics.listen {addr}: {e} (is another process using it? change metrics.listen)")
    })?;
    tracing::info!(%addr, "health endpoint listening on /healthz");
    Ok(tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(answer(stream));
        }
    }))
}

async fn answer(mut stream: TcpStream) {
    let mut request = [0u8; 1024];
    let Ok(read) = stream.read(&mut request).await else {
        return;
    };
    let head = String::from_utf8_lossy(&request[..read]);
    let path = head.split_whitespace().nth(1).unwrap_or("");
    let response: &[u8] = if path == "/healthz" {
        b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 3\r\nconnection: close\r\n\r\nok\n"
    } else {
        b"HTTP/1.1 404 Not Found\r\ncontent-type: text/plain\r\ncontent-length: 10\r\nconnection: close\r\n\r\nnot found\n"
    };
    let _ = stream.write_all(response).await;
}
