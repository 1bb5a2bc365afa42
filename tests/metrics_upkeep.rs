//! A bridge nobody scrapes must not grow by the records it copies: the
//! metrics recorder holds each histogram sample until it is folded into
//! its buckets, and the bridge records one end-to-end latency per record.
//!
//! This is its own test binary because it counts the whole process's live
//! heap, which the other tests, running beside it, would disturb.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use kafka_rocketmq_bridge::metrics::{END_TO_END_LATENCY, Metrics, UPKEEP_EVERY};

/// The system allocator, counting the bytes allocated and not yet freed.
struct CountingAllocator;

static LIVE_BYTES: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is passed to the system allocator unchanged; only the
// count is added.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract is the system allocator's.
        let pointer = unsafe { System.alloc(layout) };
        if !pointer.is_null() {
            LIVE_BYTES.fetch_add(layout.size(), Ordering::Relaxed);
        }
        pointer
    }

    unsafe fn dealloc(&self, pointer: *mut u8, layout: Layout) {
        // SAFETY: the caller's contract is the system allocator's.
        unsafe { System.dealloc(pointer, layout) };
        LIVE_BYTES.fetch_sub(layout.size(), Ordering::Relaxed);
    }
}

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

fn live_bytes() -> usize {
    LIVE_BYTES.load(Ordering::Relaxed)
}

const SAMPLES: usize = 1_000_000;

#[tokio::test]
async fn histogram_samples_are_let_go_without_a_scrape() {
    let _metrics = Metrics::install().expect("the recorder installs once in this process");
    let latency = metrics::histogram!(END_TO_END_LATENCY, "mapping" => "orders");
    let before = live_bytes();
    for n in 0..SAMPLES {
        latency.record((n % 100) as f64 / 1000.0);
    }
    let held = live_bytes().saturating_sub(before);
    // The count must see the samples at all, or the wait below proves nothing.
    assert!(
        held >= SAMPLES * 8,
        "{SAMPLES} samples should be held until the upkeep, but the heap grew by {held} bytes"
    );

    // A running bridge keeps recording, which lets the recorder free the
    // folded samples' blocks; so does this loop.
    let deadline = Instant::now() + UPKEEP_EVERY * 4;
    loop {
        let still_held = live_bytes().saturating_sub(before);
        if still_held < held / 10 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{still_held} of the {held} bytes the samples took were still held {:?} after \
             recording: nothing folds them when nobody scrapes /metrics",
            UPKEEP_EVERY * 4
        );
        latency.record(0.001);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
