//! What a scan reports as it reads: a one-line progress display on stderr
//! while `verify`, `cutover-check` and `translate-offsets` read, only for a
//! person watching (never when stderr is not a terminal, under `--json`, or
//! in CI (`CI` set), so scripts and log collectors get nothing); and, when
//! the scan runs beside the copy (the daily count-match inside `run`), a
//! pace that holds it to a number of records per second.

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Records scanned so far, under a label saying what is being scanned.
#[derive(Clone)]
pub struct Progress {
    shared: Option<Arc<Shared>>,
    pace: Option<Arc<Pace>>,
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
            pace: None,
        }
    }

    pub fn hidden() -> Self {
        Progress {
            shared: None,
            pace: None,
        }
    }

    /// The same, holding the scan to `per_second` records per second: each
    /// record counted past that rate waits.
    pub fn paced(mut self, per_second: std::num::NonZeroU32) -> Self {
        self.pace = Some(Arc::new(Pace {
            per_second: f64::from(per_second.get()),
            state: Mutex::new(PaceState {
                pending: 0,
                next_free: Instant::now(),
            }),
        }));
        self
    }

    /// Starts a new phase; the rate is measured from here.
    pub fn phase(&self, label: String) {
        if let Some(shared) = &self.shared {
            let records = shared.records.load(Ordering::Relaxed);
            *shared.label.lock().unwrap_or_else(|p| p.into_inner()) =
                (label, Instant::now(), records);
        }
    }

    /// Counts `records` read, and waits if they came faster than the pace.
    pub fn add(&self, records: u64) {
        if let Some(shared) = &self.shared {
            shared.records.fetch_add(records, Ordering::Relaxed);
        }
        if let Some(pace) = &self.pace {
            pace.hold(records);
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

/// Records are charged in steps of this many, so the clock is read rarely.
const PACE_STEP: u64 = 1024;

/// A token bucket without burst: a scan that paused (between its sides, on a
/// slow pull) does not catch up at full speed afterwards.
struct Pace {
    per_second: f64,
    state: Mutex<PaceState>,
}

struct PaceState {
    pending: u64,
    /// When the records charged so far have been paid for.
    next_free: Instant,
}

impl Pace {
    fn hold(&self, records: u64) {
        let wait = {
            let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
            state.pending += records;
            if state.pending < PACE_STEP {
                return;
            }
            let now = Instant::now();
            let cost = Duration::from_secs_f64(state.pending as f64 / self.per_second);
            state.pending = 0;
            state.next_free = state.next_free.max(now) + cost;
            state.next_free.saturating_duration_since(now)
        };
        if wait >= Duration::from_millis(1) {
            sleep_off_the_runtime(wait);
        }
    }
}

/// Both scans call `add` from code that cannot await (the Kafka scan's
/// thread, the RocketMQ scan's record callback). On a worker of the
/// multi-threaded runtime (the copy's, inside `run`) the wait first hands
/// the worker's other tasks to another thread, so the copy never waits for it.
fn sleep_off_the_runtime(wait: Duration) {
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current() {
        Ok(handle) if handle.runtime_flavor() == RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(|| std::thread::sleep(wait));
        }
        _ => std::thread::sleep(wait),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_paced_scan_holds_its_rate_and_an_unpaced_one_does_not_wait() {
        let started = Instant::now();
        let unpaced = Progress::hidden();
        (0..100_000).for_each(|_| unpaced.add(1));
        assert!(
            started.elapsed() < Duration::from_millis(500),
            "{:?}",
            started.elapsed()
        );
        let rate = std::num::NonZeroU32::new(50_000).expect("non-zero");
        let paced = Progress::hidden().paced(rate);
        let started = Instant::now();
        (0..25_000).for_each(|_| paced.add(1));
        let took = started.elapsed();
        // 25,000 records at 50,000/s: half a second, less the last step unpaid.
        assert!(took >= Duration::from_millis(460), "{took:?}");
        assert!(took < Duration::from_secs(2), "{took:?}");
    }
}
