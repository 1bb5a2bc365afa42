//! The in-flight byte budget: memory held by records handed to a sink and
//! not yet stored (`bridge.max_in_flight_bytes`).
//!
//! The dispatcher takes a permit for each record it hands over; the permit
//! travels with the record and gives its bytes back when it is dropped,
//! whatever happens to the record: stored, left to a partition's next owner,
//! or dropped at shutdown. No code path has to remember to give bytes back.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use tokio::sync::Notify;

/// The bytes held by all permits of one pipeline.
#[derive(Debug, Default)]
pub struct InFlightBudget {
    used: AtomicI64,
    freed: Notify,
}

impl InFlightBudget {
    pub fn new() -> Arc<Self> {
        Arc::new(InFlightBudget::default())
    }

    /// Bytes held now.
    pub fn used(&self) -> i64 {
        self.used.load(Ordering::Relaxed).max(0)
    }

    /// Counts `bytes` as held until the permit is dropped. It never waits:
    /// the caller decides whether there is room first ([`Self::used`]).
    pub fn take(self: &Arc<Self>, bytes: usize) -> InFlightPermit {
        let bytes = i64::try_from(bytes).unwrap_or(i64::MAX);
        self.used.fetch_add(bytes, Ordering::Relaxed);
        InFlightPermit {
            budget: Some(Arc::clone(self)),
            bytes,
        }
    }

    /// Resolves once a permit has been dropped since the last call returned
    /// (or now, if one was dropped since): a waiter that checked
    /// [`Self::used`] before calling it does not miss the release.
    pub async fn freed(&self) {
        self.freed.notified().await;
    }

    fn release(&self, bytes: i64) {
        self.used.fetch_sub(bytes, Ordering::Relaxed);
        self.freed.notify_one();
    }
}

/// Bytes of one record, or of a batch, counted against the budget until dropped.
#[derive(Debug, Default)]
#[must_use = "dropping a permit gives its bytes back at once"]
pub struct InFlightPermit {
    budget: Option<Arc<InFlightBudget>>,
    bytes: i64,
}

impl InFlightPermit {
    /// Bytes this permit holds.
    pub fn bytes(&self) -> i64 {
        self.bytes
    }

    /// Takes over `other`'s bytes, so that a batch gives back all of its
    /// records' bytes at once, with one wake-up.
    pub fn absorb(&mut self, mut other: InFlightPermit) {
        match (&self.budget, &other.budget) {
            (_, None) => {}
            (None, Some(_)) => std::mem::swap(self, &mut other),
            (Some(mine), Some(theirs)) if Arc::ptr_eq(mine, theirs) => {
                self.bytes += std::mem::take(&mut other.bytes);
            }
            // Another budget's bytes go back to it when `other` drops.
            (Some(_), Some(_)) => {}
        }
    }
}

impl Drop for InFlightPermit {
    fn drop(&mut self) {
        if let Some(budget) = self.budget.take()
            && self.bytes != 0
        {
            budget.release(self.bytes);
        }
    }
}

/// A record in flight, with the permit that counts it.
#[derive(Debug)]
pub struct InFlight<T> {
    pub record: T,
    pub permit: InFlightPermit,
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn dropping_a_permit_gives_its_bytes_back() {
        let budget = InFlightBudget::new();
        let first = budget.take(100);
        let second = budget.take(50);
        assert_eq!(budget.used(), 150);
        drop(first);
        assert_eq!(budget.used(), 50);
        drop(second);
        assert_eq!(budget.used(), 0);
    }

    #[test]
    fn an_absorbed_permit_is_given_back_with_its_batch() {
        let budget = InFlightBudget::new();
        let mut batch = InFlightPermit::default();
        for bytes in [10, 20, 30] {
            batch.absorb(budget.take(bytes));
        }
        assert_eq!(batch.bytes(), 60);
        assert_eq!(budget.used(), 60);
        drop(batch);
        assert_eq!(budget.used(), 0);
    }

    #[test]
    fn a_permit_of_another_budget_goes_back_to_its_own() {
        let (one, other) = (InFlightBudget::new(), InFlightBudget::new());
        let mut batch = one.take(10);
        batch.absorb(other.take(5));
        assert_eq!((one.used(), other.used()), (10, 0));
        drop(batch);
        assert_eq!(one.used(), 0);
    }

    #[tokio::test]
    async fn a_release_wakes_a_waiter_that_checked_before_it() {
        let budget = InFlightBudget::new();
        let permit = budget.take(10);
        assert_eq!(budget.used(), 10);
        // Released between the waiter's check and its wait: not missed.
        drop(permit);
        tokio::time::timeout(Duration::from_secs(5), budget.freed())
            .await
            .expect("the release is remembered for the next waiter");
    }
}
