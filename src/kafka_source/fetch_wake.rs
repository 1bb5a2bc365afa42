//! Waking librdkafka's fetchers after a resume.
//!
//! librdkafka serves a resume on its main thread and does not wake the
//! broker thread that fetches the partition. With no fetch in flight (every
//! partition it leads was paused) that thread sleeps until its next timer,
//! up to a second, before it fetches again: the bridge measured 0.9 s with
//! nothing copied after the restart scan's pause (benches/analysis.md), and
//! confluent-kafka-go#630 shows the same gap in librdkafka's own debug log.
//! A rate limit or a full queue buffer pauses and resumes partitions many
//! times a second, so each such sleep shows in the rate.
//!
//! Any request to a broker wakes its thread, which then sees the resumed
//! partitions and fetches. One ListOffsets per leader (librdkafka groups
//! `offsets_for_times` by leader) is the cheapest request that reaches each.
//! The query blocks, so it runs on a blocking thread, one at a time;
//! resumes that arrive meanwhile are served by one more query after it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use rdkafka::consumer::Consumer;
use rdkafka::{Offset, TopicPartitionList};

use super::consumer::BridgeConsumer;

/// How long one wake-up query may take. librdkafka's own timer wakes the
/// fetchers within a second, so waiting longer gains nothing, and a shorter
/// wait lets a stopping bridge close its consumer sooner.
const QUERY_TIMEOUT: Duration = Duration::from_secs(1);

/// Whether a wake-up is wanted and whether a thread is serving them.
#[derive(Debug, Default)]
pub struct FetchWake {
    wanted: AtomicBool,
    running: AtomicBool,
}

impl FetchWake {
    /// Asks for a wake-up; `true` when the caller must start the thread
    /// that serves it (none is running).
    pub fn request(&self) -> bool {
        self.wanted.store(true, Ordering::SeqCst);
        !self.running.swap(true, Ordering::SeqCst)
    }

    /// For the serving thread: whether to query again. `false` means it
    /// has stopped, and a later [`request`](Self::request) starts another.
    fn next(&self) -> bool {
        if self.wanted.swap(false, Ordering::SeqCst) {
            return true;
        }
        self.running.store(false, Ordering::SeqCst);
        // A request between the swap and the store found the thread
        // running and started none: serve it here, unless another did.
        self.wanted.load(Ordering::SeqCst) && !self.running.swap(true, Ordering::SeqCst)
    }
}

/// Serves wake-up requests until none is left. Blocks: run it on a
/// blocking thread.
pub fn serve(consumer: &BridgeConsumer) {
    let wake = &consumer.context().fetch_wake;
    while wake.next() {
        query_leaders(consumer);
    }
}

/// One ListOffsets request to each leader of an assigned partition.
fn query_leaders(consumer: &BridgeConsumer) {
    let Ok(assignment) = consumer.assignment() else {
        return;
    };
    let mut latest = TopicPartitionList::new();
    for element in assignment.elements() {
        // -1: the latest offset, which the broker answers from memory.
        let added = latest.add_partition_offset(element.topic(), element.partition(), Offset::End);
        if added.is_err() {
            return;
        }
    }
    if latest.count() == 0 {
        return;
    }
    if let Err(error) = consumer.offsets_for_times(latest, QUERY_TIMEOUT) {
        tracing::debug!(%error, "the query that wakes Kafka's fetchers after a resume failed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_request_starts_the_thread_and_later_ones_join_it() {
        let wake = FetchWake::default();
        assert!(wake.request());
        assert!(!wake.request());
        // Both requests are served by one query.
        assert!(wake.next());
        assert!(!wake.next());
        // Stopped: the next request starts a thread again.
        assert!(wake.request());
    }

    #[test]
    fn a_request_while_the_thread_queries_gets_a_query_of_its_own() {
        let wake = FetchWake::default();
        assert!(wake.request());
        assert!(wake.next());
        // Arrives while that query runs.
        assert!(!wake.request());
        assert!(wake.next());
        assert!(!wake.next());
    }
}
