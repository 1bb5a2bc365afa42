//! A fault-injecting TCP proxy for the network-fault tests: it listens on
//! one address, forwards every connection to an upstream, and can be
//! switched at run time to delay, blackhole or cut the traffic, then
//! restored. It runs on the caller's tokio runtime and stops with it (or
//! when the `FaultProxy` is dropped).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// What the proxy does with the traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Forward everything at once.
    Pass,
    /// Forward each chunk this long after it arrived (both directions).
    Delay(Duration),
    /// Accept connections and keep them open, but forward nothing either
    /// way and never answer: a network partition. What was read is held and
    /// forwarded on restore, as TCP retransmission would after the partition
    /// heals.
    Blackhole,
    /// Close every connection at once, mid-request, and close each new one
    /// as soon as it is accepted.
    Cut,
}

/// Counters that show the traffic really went through the proxy.
#[derive(Debug, Default)]
pub struct Traffic {
    pub connections: AtomicU64,
    /// Bytes forwarded, both directions together.
    pub bytes: AtomicU64,
}

pub struct FaultProxy {
    pub listen: SocketAddr,
    pub upstream: SocketAddr,
    mode: watch::Sender<Mode>,
    pub traffic: Arc<Traffic>,
    acceptor: JoinHandle<()>,
}

impl FaultProxy {
    /// Listens on `listen` (port 0 picks one) and forwards to `upstream`.
    pub async fn start(listen: SocketAddr, upstream: SocketAddr) -> std::io::Result<Self> {
        let listener = TcpListener::bind(listen).await?;
        let listen = listener.local_addr()?;
        let (mode, _) = watch::channel(Mode::Pass);
        let traffic = Arc::new(Traffic::default());
        let acceptor = tokio::spawn(accept_loop(
            listener,
            upstream,
            mode.subscribe(),
            traffic.clone(),
        ));
        Ok(FaultProxy {
            listen,
            upstream,
            mode,
            traffic,
            acceptor,
        })
    }

    pub fn set(&self, mode: Mode) {
        self.mode.send_replace(mode);
    }

    pub fn restore(&self) {
        self.set(Mode::Pass);
    }

    pub fn mode(&self) -> Mode {
        *self.mode.borrow()
    }

    pub fn bytes(&self) -> u64 {
        self.traffic.bytes.load(Ordering::Relaxed)
    }

    pub fn connections(&self) -> u64 {
        self.traffic.connections.load(Ordering::Relaxed)
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        // Stops accepting; open connections end when `Cut` reaches them.
        self.mode.send_replace(Mode::Cut);
        self.acceptor.abort();
    }
}

async fn accept_loop(
    listener: TcpListener,
    upstream: SocketAddr,
    mode: watch::Receiver<Mode>,
    traffic: Arc<Traffic>,
) {
    loop {
        let Ok((client, _)) = listener.accept().await else {
            continue;
        };
        if *mode.borrow() == Mode::Cut {
            drop(client);
            continue;
        }
        traffic.connections.fetch_add(1, Ordering::Relaxed);
        tokio::spawn(connection(client, upstream, mode.clone(), traffic.clone()));
    }
}

/// One proxied connection, until either side closes or the mode turns `Cut`.
async fn connection(
    client: TcpStream,
    upstream: SocketAddr,
    mut mode: watch::Receiver<Mode>,
    traffic: Arc<Traffic>,
) {
    let _ = client.set_nodelay(true);
    // A blackholed network lets the client connect (here) but the upstream
    // sees nothing until it heals.
    if !flowing(&mut mode).await {
        return;
    }
    let Ok(server) = TcpStream::connect(upstream).await else {
        return;
    };
    let _ = server.set_nodelay(true);
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    let both = futures::future::join(
        pump(client_read, server_write, mode.clone(), traffic.clone()),
        pump(server_read, client_write, mode.clone(), traffic),
    );
    tokio::select! {
        _ = both => {}
        // Dropping the halves closes both sockets, whatever was in flight.
        _ = mode.wait_for(|m| *m == Mode::Cut) => {}
    }
}

/// Waits while the mode is `Blackhole`; false if it is (or turns) `Cut`.
async fn flowing(mode: &mut watch::Receiver<Mode>) -> bool {
    match mode.wait_for(|m| *m != Mode::Blackhole).await {
        Ok(current) => *current != Mode::Cut,
        Err(_) => false,
    }
}

/// Copies one direction: a reader stamps each chunk with the time it may
/// leave, a writer sends it then. Both stop while blackholed.
async fn pump(
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    mode: watch::Receiver<Mode>,
    traffic: Arc<Traffic>,
) {
    let (chunks, mut pending) = mpsc::channel::<(Instant, Vec<u8>)>(64);
    let mut read_mode = mode.clone();
    let reader = async move {
        let mut buffer = vec![0u8; 64 * 1024];
        while flowing(&mut read_mode).await {
            let n = match from.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            let delay = match *read_mode.borrow() {
                Mode::Delay(delay) => delay,
                _ => Duration::ZERO,
            };
            if chunks
                .send((Instant::now() + delay, buffer[..n].to_vec()))
                .await
                .is_err()
            {
                break;
            }
        }
        // Dropping `chunks` lets the writer finish what is queued.
    };
    let mut write_mode = mode;
    let writer = async move {
        while let Some((due, chunk)) = pending.recv().await {
            tokio::time::sleep_until(due).await;
            if !flowing(&mut write_mode).await || to.write_all(&chunk).await.is_err() {
                return;
            }
            traffic
                .bytes
                .fetch_add(chunk.len() as u64, Ordering::Relaxed);
        }
        let _ = to.shutdown().await;
    };
    tokio::join!(reader, writer);
}
