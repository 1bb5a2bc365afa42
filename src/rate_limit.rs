//! Rate limiting: the global and per-mapping limits in messages and bytes
//! per second (governor's GCRA limiters), and the admission of one record
//! through every limiter that applies to it.
//!
//! A record passes the limiters in a fixed order and each is charged once:
//! when one refuses, the record remembers how far it got, waits, and
//! resumes there, so a refusal never spends another limiter's capacity.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

use crate::config::{LiveLimits, RateLimit};

/// Which limiter held a record back; also the metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimiterKind {
    GlobalMessages,
    GlobalBytes,
    MappingMessages,
    MappingBytes,
    /// Not a rate: the cap on bytes handed to RocketMQ and not yet stored.
    InFlightBytes,
    /// Not a rate: a partition parked behind its queue's full buffer.
    QueueBuffer,
}

impl LimiterKind {
    pub fn label(self) -> &'static str {
        match self {
            LimiterKind::GlobalMessages => "global_messages",
            LimiterKind::GlobalBytes => "global_bytes",
            LimiterKind::MappingMessages => "mapping_messages",
            LimiterKind::MappingBytes => "mapping_bytes",
            LimiterKind::InFlightBytes => "in_flight_bytes",
            LimiterKind::QueueBuffer => "queue_buffer",
        }
    }
}

/// A refusal: which limiter, and how long until it may let the record pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Throttled {
    pub limiter: LimiterKind,
    pub wait: Duration,
}

/// How far one record got through its limiters.
#[derive(Debug, Default, Clone, Copy)]
pub struct Admission {
    passed: usize,
}

struct Limiter {
    kind: LimiterKind,
    cells: DefaultDirectRateLimiter,
    /// The most cells one check may ask for; a bigger record asks for this.
    burst: NonZeroU32,
    /// Bytes per cell; 0 for a message limiter (one cell per record).
    bytes_per_cell: u64,
}

impl Limiter {
    fn try_pass(&self, bytes: u64, clock: &DefaultClock) -> Result<(), Throttled> {
        let wanted = match self.bytes_per_cell {
            0 => 1,
            unit => bytes.div_ceil(unit),
        };
        // A record bigger than the burst takes a whole burst: it still passes,
        // at the configured average rate.
        let Some(cells) = NonZeroU32::new(wanted.min(u64::from(self.burst.get())) as u32) else {
            return Ok(());
        };
        match self.cells.check_n(cells) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(not_until)) => Err(Throttled {
                limiter: self.kind,
                wait: not_until.wait_time_from(clock.now()),
            }),
            // Unreachable: `cells` never exceeds the burst.
            Err(_) => Ok(()),
        }
    }
}

/// Every limiter of a running bridge, rebuilt whole when SIGHUP changes them.
pub struct RateLimits {
    global: Vec<Limiter>,
    per_mapping: HashMap<String, Vec<Limiter>>,
    clock: DefaultClock,
}

impl RateLimits {
    pub fn new(limits: &LiveLimits) -> Self {
        let per_mapping = limits
            .per_mapping
            .iter()
            .map(|(label, limit)| {
                let limiters = limiters(
                    limit,
                    LimiterKind::MappingMessages,
                    LimiterKind::MappingBytes,
                );
                (label.clone(), limiters)
            })
            .collect();
        RateLimits {
            global: limiters(
                &limits.global,
                LimiterKind::GlobalMessages,
                LimiterKind::GlobalBytes,
            ),
            per_mapping,
            clock: DefaultClock::default(),
        }
    }

    /// The limiters for limits reloaded by SIGHUP. Each starts with its
    /// burst already spent, as the busy limiter it replaces most likely had:
    /// a fresh one would let a whole extra burst through at the moment of
    /// the reload, above the limit just configured.
    pub fn reloaded(limits: &LiveLimits) -> Self {
        let fresh = Self::new(limits);
        for limiter in fresh
            .global
            .iter()
            .chain(fresh.per_mapping.values().flatten())
        {
            // A fresh limiter holds exactly its burst, so this always succeeds.
            let _ = limiter.cells.check_n(limiter.burst);
        }
        fresh
    }

    /// Whether any limit is configured at all (the hot path skips admission otherwise).
    pub fn is_unlimited(&self) -> bool {
        self.global.is_empty() && self.per_mapping.is_empty()
    }

    /// Lets one record of `bytes` through the global limiters and those of
    /// `mapping` (its limit label), resuming where `admission` stopped last time.
    pub fn admit(
        &self,
        mapping: &str,
        bytes: u64,
        admission: &mut Admission,
    ) -> Result<(), Throttled> {
        let own = self.per_mapping.get(mapping).map_or(&[][..], Vec::as_slice);
        let chain = self.global.iter().chain(own);
        for limiter in chain.skip(admission.passed) {
            limiter.try_pass(bytes, &self.clock)?;
            admission.passed += 1;
        }
        *admission = Admission::default();
        Ok(())
    }
}

fn limiters(limit: &RateLimit, messages: LimiterKind, bytes: LimiterKind) -> Vec<Limiter> {
    let mut built = Vec::new();
    if let Some(rate) = limit.messages_per_second.and_then(NonZeroU32::new) {
        let burst = limit
            .burst_messages
            .and_then(NonZeroU32::new)
            .unwrap_or(rate);
        built.push(limiter(messages, rate, burst, 0));
    }
    if let Some(rate) = limit.bytes_per_second {
        // The GCRA period is whole nanoseconds: above 10^7 cells/s its
        // rounding would exceed 1%, so a cell then stands for several bytes.
        let unit = (rate.0 / 10_000_000).max(1);
        let burst = limit.burst_bytes.unwrap_or(rate);
        if let (Some(rate), Some(burst)) = (cells(rate.0 / unit), cells(burst.0 / unit)) {
            built.push(limiter(bytes, rate, burst, unit));
        }
    }
    built
}

/// Validation keeps rates within 1..=u32::MAX; clamp rather than trust it.
fn cells(value: u64) -> Option<NonZeroU32> {
    NonZeroU32::new(value.clamp(1, u64::from(u32::MAX)) as u32)
}

fn limiter(kind: LimiterKind, rate: NonZeroU32, burst: NonZeroU32, bytes_per_cell: u64) -> Limiter {
    // One cell every 1/rate seconds, at most `burst` saved up.
    let period = Duration::from_secs(1) / rate.get();
    let quota = Quota::with_period(period.max(Duration::from_nanos(1)))
        .unwrap_or_else(|| Quota::per_second(rate))
        .allow_burst(burst);
    Limiter {
        kind,
        cells: RateLimiter::direct(quota),
        burst,
        bytes_per_cell,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ByteSize;
    use std::collections::BTreeMap;

    fn limits(global: RateLimit, orders: RateLimit) -> LiveLimits {
        LiveLimits {
            global,
            max_in_flight_bytes: 1 << 20,
            per_mapping: BTreeMap::from([("orders".to_string(), orders)]),
        }
    }

    #[test]
    fn a_burst_passes_then_the_limiter_asks_to_wait() {
        let global = RateLimit {
            messages_per_second: Some(1),
            burst_messages: Some(10),
            ..RateLimit::default()
        };
        let limits = RateLimits::new(&limits(global, RateLimit::default()));
        let mut admission = Admission::default();
        for _ in 0..10 {
            assert_eq!(limits.admit("orders", 1, &mut admission), Ok(()));
        }
        let refused = limits.admit("orders", 1, &mut admission).unwrap_err();
        assert_eq!(refused.limiter, LimiterKind::GlobalMessages);
        assert!(refused.wait > Duration::ZERO && refused.wait <= Duration::from_secs(1));
    }

    #[test]
    fn reloaded_limiters_grant_no_extra_burst() {
        let global = RateLimit {
            messages_per_second: Some(1),
            burst_messages: Some(10),
            ..RateLimit::default()
        };
        let limits = RateLimits::reloaded(&limits(global, RateLimit::default()));
        let mut admission = Admission::default();
        let refused = limits.admit("orders", 1, &mut admission).unwrap_err();
        assert_eq!(refused.limiter, LimiterKind::GlobalMessages);
        assert!(refused.wait > Duration::ZERO && refused.wait <= Duration::from_secs(1));
    }

    #[test]
    fn a_refusal_does_not_charge_the_limiters_already_passed_again() {
        let global = RateLimit {
            messages_per_second: Some(1),
            burst_messages: Some(3),
            ..RateLimit::default()
        };
        let orders = RateLimit {
            bytes_per_second: Some(ByteSize(100)),
            burst_bytes: Some(ByteSize(100)),
            ..RateLimit::default()
        };
        let limits = RateLimits::new(&limits(global, orders));
        let mut admission = Admission::default();
        assert_eq!(limits.admit("orders", 100, &mut admission), Ok(()));
        // The byte limiter is empty: retried three times, the record must not
        // use up the global message burst (3) on the way.
        for _ in 0..3 {
            let refused = limits.admit("orders", 100, &mut admission).unwrap_err();
            assert_eq!(refused.limiter, LimiterKind::MappingBytes);
        }
        // Two of the three global messages went to the two orders records;
        // had the retries been charged, none would be left for another mapping.
        let mut other = Admission::default();
        assert_eq!(limits.admit("payments", 1, &mut other), Ok(()));
        let refused = limits.admit("payments", 1, &mut other).unwrap_err();
        assert_eq!(refused.limiter, LimiterKind::GlobalMessages);
    }

    #[test]
    fn a_record_bigger_than_the_burst_still_passes() {
        let orders = RateLimit {
            bytes_per_second: Some(ByteSize(10)),
            ..RateLimit::default()
        };
        let limits = RateLimits::new(&limits(RateLimit::default(), orders));
        let mut admission = Admission::default();
        assert_eq!(limits.admit("orders", 1_000_000, &mut admission), Ok(()));
        assert!(limits.admit("orders", 1, &mut admission).is_err());
        assert!(!limits.is_unlimited());
        assert!(RateLimits::new(&LiveLimits::default()).is_unlimited());
    }
}
