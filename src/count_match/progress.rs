//! A one-line progress display on stderr while `verify`, `cutover-check` and
//! `translate-offsets` read, only for a person watching: never when stderr
//! is not a terminal, under `--json`, or in CI (`CI` set), so scripts and
//! log collectors get nothing.

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Records scanned so far, under a label saying what is being scanned.
#[derive(Clone)]
pub struct Progress {
    shared: Option<Arc<Shared>>,
}

struct Shared {
    records: AtomicU64,
    label: Mutex<(String, Instant, u64)>,
}

impl Progress {
    /// A display that draws itself every 250 ms, if someone is watching:
    /// stderr is a terminal, the output is not `--json`, and `CI` is unset.
    pub fn on_terminal(json: bool) -> Self {
        let in_ci = std::env::var_os("CI").is_some_and(|v| !v.is_empty());
        if json || in_ci || !std::io::stderr().is_terminal() {
            return Progress::hidden();
        }
        let shared = Arc::new(Shared {
            records: AtomicU64::new(0),
            label: Mutex::new((String::new(), Instant::now(), 0)),
        });
        let drawn = Arc::downgrade(&shared);
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(Duration::from_millis(250));
            while let Some(shared) = drawn.upgrade() {
                shared.draw();
                drop(shared);
                ticker.tick().await;
            }
        });
        Progress {
            shared: Some(shared),
        }
    }

    pub fn hidden() -> Self {
        Progress { shared: None }
    }

    /// Starts a new phase; the rate is measured from here.
    pub fn phase(&self, label: String) {
        if let Some(shared) = &self.shared {
            let records = shared.records.load(Ordering::Relaxed);
            *shared.label.lock().unwrap_or_else(|p| p.into_inner()) =
                (label, Instant::now(), records);
        }
    }

    pub fn add(&self, records: u64) {
        if let Some(shared) = &self.shared {
            shared.records.fetch_add(records, Ordering::Relaxed);
        }
    }

    /// Clears the line, before the report is printed.
    pub fn finish(&self) {
        if self.shared.is_some() {
            eprint!("\r\x1b[2K");
        }
    }
}

impl Shared {
    fn draw(&self) {
        let (label, since, at_start) = self.label.lock().unwrap_or_else(|p| p.into_inner()).clone();
        if label.is_empty() {
            return;
        }
        let done = self.records.load(Ordering::Relaxed) - at_start;
        let rate = done as f64 / since.elapsed().as_secs_f64().max(0.001);
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "\r\x1b[2K{label}: {done} records, {rate:.0}/s");
        let _ = err.flush();
    }
}
