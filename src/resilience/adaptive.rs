//! The adaptive part of a [`LoadShedLayer`](super::LoadShedLayer)'s limit: additive increase,
//! multiplicative decrease (AIMD) on latency, as TCP's congestion window and Netflix's
//! `concurrency-limits` do, with time from the injected clock.
//!
//! The configured limit is the ceiling. A response slower than the target latency (or a 5xx, or
//! an error) cuts the limit by a tenth — at most once per target latency, so one burst of slow
//! answers cuts it once — down to a floor; a response within the target while at least half the
//! limit is in use raises it by `1 / limit`, so by one for each limit's worth of such responses.
//! Under overload the queue inside the service lengthens, latency passes the target, the limit
//! falls and the shedder refuses earlier, which keeps the latency of what it admits near the
//! target; once the service is fast again the limit climbs back.
//!
//! Why by hand: the `concurrency-limits` family has no Rust tower layer that reads an injected
//! clock or sheds by priority; the rule itself is a dozen lines.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::clock::{SharedClock, nanos_since};

/// By how much a slow response cuts the limit (the limit keeps this share).
const BACKOFF: f64 = 0.9;

/// An AIMD estimate of the concurrency a service sustains within a target latency.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Aimd {
    limit: f64,
    min: f64,
    max: f64,
    target: u64,
    /// No cut before this time (nanoseconds on the limit's clock).
    calm_until: u64,
}

impl Aimd {
    /// Starts at `max`; `min ≤ max`, both above zero; `target` in nanoseconds.
    pub(crate) fn new(min: usize, max: usize, target: u64) -> Self {
        Self {
            limit: max as f64,
            min: min as f64,
            max: max as f64,
            target,
            calm_until: 0,
        }
    }

    /// The limit now, in whole requests.
    pub(crate) fn limit(&self) -> usize {
        self.limit as usize
    }

    /// One response, `latency` nanoseconds after its admission, at `now`, with `in_flight`
    /// requests in flight (itself included); the new limit.
    pub(crate) fn record(
        &mut self,
        now: u64,
        latency: u64,
        failed: bool,
        in_flight: usize,
    ) -> usize {
        if failed || latency > self.target {
            if now >= self.calm_until {
                self.limit = (self.limit * BACKOFF).max(self.min);
                self.calm_until = now.saturating_add(self.target);
            }
        } else if in_flight as f64 * 2.0 >= self.limit {
            self.limit = (self.limit + 1.0 / self.limit).min(self.max);
        }
        self.limit()
    }
}

/// An adaptive limit shared by a layer's clones: the estimate behind a lock, the whole limit
/// readable without it.
#[derive(Debug)]
pub(crate) struct Adaptive {
    aimd: Mutex<Aimd>,
    current: AtomicUsize,
    clock: SharedClock,
    epoch: Instant,
}

impl Adaptive {
    pub(crate) fn new(min: usize, max: usize, target: Duration, clock: SharedClock) -> Self {
        let target = u64::try_from(target.as_nanos()).unwrap_or(u64::MAX);
        Self {
            aimd: Mutex::new(Aimd::new(min, max, target)),
            current: AtomicUsize::new(max),
            epoch: clock.instant(),
            clock,
        }
    }

    /// The limit now.
    pub(crate) fn limit(&self) -> usize {
        self.current.load(Ordering::Acquire)
    }

    /// The time now, to pass back to [`record`](Self::record) with the response.
    pub(crate) fn now(&self) -> u64 {
        nanos_since(&*self.clock, self.epoch)
    }

    /// A response to a request admitted at `admitted` (from [`now`](Self::now)).
    pub(crate) fn record(&self, admitted: u64, failed: bool, in_flight: usize) {
        let now = self.now();
        let limit = self
            .aimd
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .record(now, now.saturating_sub(admitted), failed, in_flight);
        if self.current.swap(limit, Ordering::AcqRel) != limit {
            metrics::gauge!("protothrive_shed_limit").set(limit as f64);
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const MS: u64 = 1_000_000;

    #[test]
    fn slow_answers_cut_once_per_target_and_fast_ones_climb_back() {
        let mut a = Aimd::new(2, 20, 100 * MS);
        assert_eq!(a.record(0, 150 * MS, false, 20), 18, "20 × 0.9");
        assert_eq!(
            a.record(50 * MS, 150 * MS, false, 20),
            18,
            "one cut per target"
        );
        assert_eq!(
            a.record(100 * MS, 150 * MS, false, 20),
            16,
            "18 × 0.9 = 16.2"
        );
        assert_eq!(
            a.record(200 * MS, 10 * MS, true, 20),
            14,
            "a failure cuts too"
        );
        // 14.58, plus about 1/14.6 per fast answer with the limit in use: 15 after six of them.
        let mut limit = a.limit();
        for _ in 0..15 {
            limit = a.record(300 * MS, 10 * MS, false, 10);
        }
        assert_eq!(limit, 15);
        // An idle service earns nothing: fewer than half the limit in flight.
        for _ in 0..100 {
            limit = a.record(300 * MS, 10 * MS, false, 3);
        }
        assert_eq!(limit, 15);
    }

    #[test]
    fn the_limit_stays_between_its_floor_and_ceiling() {
        let mut a = Aimd::new(3, 5, MS);
        for t in 0..100 {
            a.record(t * MS, 2 * MS, false, 5);
        }
        assert_eq!(a.limit(), 3);
        for _ in 0..100 {
            a.record(200 * MS, 0, false, 5);
        }
        assert_eq!(a.limit(), 5);
    }

    /// Through the layer, on a manual clock: slow answers lower the limit, so anonymous callers
    /// are shed sooner; fast answers under load raise it back to its ceiling.
    #[tokio::test]
    async fn the_layer_sheds_sooner_while_slow_and_recovers() {
        use std::convert::Infallible;
        use std::sync::Arc;
        use std::sync::atomic::AtomicU64;

        use http::{Request, Response};
        use tower::{Layer, Service, ServiceExt, service_fn};

        use crate::clock::ManualClock;
        use crate::identity::Principal;
        use crate::resilience::LoadShedLayer;

        let clock = ManualClock::default();
        let layer = LoadShedLayer::builder(10)
            .adaptive(Duration::from_millis(50), 2)
            .clock(Arc::new(clock.clone()))
            .build()
            .unwrap();
        let delay = Arc::new(AtomicU64::new(80));
        let (open, gate) = tokio::sync::watch::channel(true);
        let (c, d) = (clock.clone(), delay.clone());
        let mut svc = layer.layer(service_fn(move |_req: Request<()>| {
            c.advance(Duration::from_millis(d.load(Ordering::SeqCst)));
            let mut gate = gate.clone();
            async move {
                let _ = gate.wait_for(|open| *open).await;
                Ok::<_, Infallible>(Response::new(String::new()))
            }
        }));
        for _ in 0..7 {
            assert_eq!(
                svc.clone()
                    .oneshot(Request::new(()))
                    .await
                    .unwrap()
                    .status(),
                200
            );
        }
        assert_eq!(layer.limit(), 4, "10 × 0.9⁷ = 4.78");
        // Anonymous callers may fill half of it now: 2, not 5.
        open.send_replace(false);
        let held = [svc.call(Request::new(())), svc.call(Request::new(()))];
        assert_eq!(svc.call(Request::new(())).await.unwrap().status(), 503);
        open.send_replace(true);
        for h in held {
            h.await.unwrap();
        }
        // Fast answers, as many at a time as the limit admits, climb back to the ceiling.
        delay.store(1, Ordering::SeqCst);
        let admin = || {
            let mut r = Request::new(());
            r.extensions_mut()
                .insert(Principal::builder("a").roles(["admin"]).build());
            r
        };
        for _ in 0..100 {
            let batch: Vec<_> = (0..layer.limit()).map(|_| svc.call(admin())).collect();
            for f in batch {
                assert_eq!(f.await.unwrap().status(), 200);
            }
        }
        assert_eq!(layer.limit(), 10);
    }

    proptest! {
        /// Whatever the responses, the limit stays within its bounds; a slow answer never raises
        /// it and a fast one never lowers it.
        #[test]
        fn bounded_and_monotone_per_answer(
            min in 1usize..50,
            extra in 0usize..200,
            answers in proptest::collection::vec((0u64..50, 0u64..300, any::<bool>(), 0usize..300), 0..300),
        ) {
            let max = min + extra;
            let mut a = Aimd::new(min, max, 100 * MS);
            let mut now = 0;
            for (step, latency, failed, in_flight) in answers {
                now += step * MS;
                let before = a.limit;
                let after = a.record(now, latency * MS, failed, in_flight);
                prop_assert!((min..=max).contains(&after));
                if failed || latency > 100 {
                    prop_assert!(a.limit <= before);
                } else {
                    prop_assert!(a.limit >= before);
                }
            }
        }
    }
}
