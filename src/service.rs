//! `run` as a long-running service around [`crate::bridge::run`]: start-up
//! retries while a cluster is down, stop requests (the first drains and
//! commits, the second ends the process at once), and config reloads on
//! SIGHUP that apply new limits live.
//!
//! The signal handlers only turn signals into requests; everything they
//! trigger is here as plain functions over channels, so tests drive it
//! in-process.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::sync::{mpsc, watch};

use crate::bridge::{self, Controls, RunOutcome};
use crate::config::{self, BridgeConfig, LiveLimits};
use crate::health::Readiness;
use crate::status::StatusBoard;

/// How a service run ended.
#[derive(Debug)]
pub enum ServiceExit {
    /// The bridge ran and stopped on request (or stopped before it could start).
    Stopped(Option<bridge::RunSummary>),
    /// A record hit a `fail` policy.
    RecordFailed {
        summary: bridge::RunSummary,
        reason: String,
    },
}

/// Start-up retries: the first after 1 s, doubling up to 30 s.
#[derive(Debug, Clone, Copy)]
pub struct StartRetry {
    pub first: Duration,
    pub max: Duration,
}

impl Default for StartRetry {
    fn default() -> Self {
        StartRetry {
            first: Duration::from_secs(1),
            max: Duration::from_secs(30),
        }
    }
}

/// Runs the bridge until `stop` turns true or a record fails. A start that
/// fails (a cluster down, a topic missing) is retried with backoff, since
/// clusters can be down at start-up too; each failure is one log line.
pub async fn run_until_stopped(
    config: BridgeConfig,
    mut stop: watch::Receiver<bool>,
    limits: watch::Receiver<LiveLimits>,
    readiness: Arc<Readiness>,
    status: Arc<StatusBoard>,
    retry: StartRetry,
) -> ServiceExit {
    let mut backoff = retry.first;
    loop {
        let controls = Controls {
            shutdown: stop.clone(),
            limits: limits.clone(),
            readiness: Arc::clone(&readiness),
            status: Arc::clone(&status),
        };
        match bridge::run(config.clone(), controls).await {
            Ok(RunOutcome::Stopped(summary)) => return ServiceExit::Stopped(Some(summary)),
            Ok(RunOutcome::RecordFailed { summary, reason }) => {
                return ServiceExit::RecordFailed { summary, reason };
            }
            Err(error) => {
                readiness.failed_starts.fetch_add(1, Ordering::Relaxed);
                tracing::error!(%error, retry_in_s = backoff.as_secs_f64(), "cannot start the bridge; retrying");
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = stop.wait_for(|stopping| *stopping) => return ServiceExit::Stopped(None),
                }
                backoff = (backoff * 2).min(retry.max);
            }
        }
    }
}

/// Turns stop requests into the stop flag. Returns at the second request:
/// the caller then ends the process without committing more.
pub async fn stop_on_requests(mut requests: mpsc::Receiver<()>, stop: watch::Sender<bool>) {
    if requests.recv().await.is_none() {
        return;
    }
    tracing::info!("signal received: draining and committing (send another to exit at once)");
    stop.send_replace(true);
    if requests.recv().await.is_some() {
        tracing::warn!("second signal: exiting now without committing unacknowledged records");
    } else {
        std::future::pending::<()>().await;
    }
}

/// What a reload did.
#[derive(Debug, Clone, PartialEq)]
pub enum Reload {
    /// New limits, in force from now on.
    Applied(LiveLimits),
    /// The file loads and its limits are those in force.
    Unchanged,
    /// The file does not load, or changes more than the limits; the running
    /// config stays. The text says why and what to do.
    Refused(String),
}

/// Re-reads the config file on request and hands new limits to the running
/// bridge.
pub struct Reloader {
    path: PathBuf,
    running: BridgeConfig,
    limits: watch::Sender<LiveLimits>,
}

impl Reloader {
    /// `running` is the config as loaded from `path` at start.
    pub fn new(path: PathBuf, running: BridgeConfig) -> (Self, watch::Receiver<LiveLimits>) {
        let (limits, receiver) = watch::channel(LiveLimits::of(&running));
        (
            Reloader {
                path,
                running,
                limits,
            },
            receiver,
        )
    }

    /// Reads the file again: a file that does not load, or that changes
    /// anything but the limits, is refused whole with one log line.
    pub fn reload(&mut self) -> Reload {
        let file = self.path.display().to_string();
        let reloaded = match config::load_file(&self.path) {
            Ok(reloaded) => reloaded,
            Err(error) => {
                let error = error.to_string().replace('\n', "; ");
                tracing::error!(%file, %error, "SIGHUP: the config file does not load; keeping the running config");
                return Reload::Refused(format!("{file} does not load: {error}"));
            }
        };
        match config::reload_limits(&self.running, &reloaded) {
            Ok(new) if new == *self.limits.borrow() => {
                tracing::info!(%file, "SIGHUP: config reloaded; the limits did not change");
                Reload::Unchanged
            }
            Ok(new) => {
                tracing::info!(%file, limits = %new.describe(), "SIGHUP: config reloaded; applying the new limits");
                self.running = reloaded;
                self.limits.send_replace(new.clone());
                Reload::Applied(new)
            }
            Err(refusal) => {
                tracing::error!(%file, "SIGHUP: change refused, keeping the running config: {refusal}");
                Reload::Refused(refusal)
            }
        }
    }

    /// Reloads once per request, until the requests end.
    pub async fn reload_on_requests(mut self, mut requests: mpsc::Receiver<()>) {
        while requests.recv().await.is_some() {
            self.reload();
        }
    }
}

/// Forwards SIGTERM and SIGINT as stop requests, SIGHUP as reload requests.
pub fn forward_signals(stop: mpsc::Sender<()>, reload: mpsc::Sender<()>) {
    use tokio::signal::unix::{SignalKind, signal};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::spawn(async move {
                loop {
                    tokio::select! {
                        _ = term.recv() => {}
                        _ = int.recv() => {}
                    }
                    if stop.send(()).await.is_err() {
                        return;
                    }
                }
            });
        }
        _ => tracing::error!("cannot install signal handlers; stop the bridge with SIGKILL"),
    }
    match signal(SignalKind::hangup()) {
        Ok(mut hangups) => {
            tokio::spawn(async move {
                while hangups.recv().await.is_some() {
                    if reload.send(()).await.is_err() {
                        return;
                    }
                }
            });
        }
        Err(_) => tracing::error!("cannot install the SIGHUP handler; limits cannot be reloaded"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = "kafka:\n  bootstrap_servers: \"127.0.0.1:1\"\nrocketmq:\n  name_server: \"127.0.0.1:2\"\n\
         mappings:\n  - kafka_topic: orders\n    rocketmq_topic: orders\n";

    fn write(path: &std::path::Path, text: &str) {
        std::fs::write(path, text).expect("temp file writable");
    }

    #[test]
    fn a_reload_applies_new_limits_and_refuses_anything_else() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("bridge.yaml");
        write(&path, BASE);
        let running = config::load_file(&path).expect("valid config");
        let (mut reloader, limits) = Reloader::new(path.clone(), running);

        assert_eq!(reloader.reload(), Reload::Unchanged);

        write(
            &path,
            &format!("{BASE}bridge:\n  rate_limit:\n    messages_per_second: 250\n"),
        );
        let Reload::Applied(applied) = reloader.reload() else {
            panic!("a new limit is applied");
        };
        assert_eq!(applied.global.messages_per_second, Some(250));
        assert_eq!(limits.borrow().global.messages_per_second, Some(250));

        write(
            &path,
            &BASE.replace("rocketmq_topic: orders", "rocketmq_topic: other"),
        );
        let Reload::Refused(why) = reloader.reload() else {
            panic!("a changed mapping is refused");
        };
        assert!(why.contains("mappings"), "{why}");
        assert_eq!(limits.borrow().global.messages_per_second, Some(250));

        write(&path, "kafka: [");
        let Reload::Refused(why) = reloader.reload() else {
            panic!("a file that does not load is refused");
        };
        assert!(why.contains("bridge.yaml"), "{why}");
        assert_eq!(limits.borrow().global.messages_per_second, Some(250));
    }

    #[tokio::test]
    async fn the_first_request_stops_and_the_second_returns() {
        let (requests, received) = mpsc::channel(4);
        let (stop, mut stopping) = watch::channel(false);
        let watcher = tokio::spawn(stop_on_requests(received, stop));
        requests.send(()).await.expect("watcher listening");
        tokio::time::timeout(Duration::from_secs(5), stopping.wait_for(|s| *s))
            .await
            .expect("stop flag set within 5 s")
            .expect("sender alive");
        assert!(!watcher.is_finished());
        requests.send(()).await.expect("watcher listening");
        tokio::time::timeout(Duration::from_secs(5), watcher)
            .await
            .expect("the second request ends the watcher")
            .expect("no panic");
    }
}
