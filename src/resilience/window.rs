//! The breaker's sliding window of call outcomes: the last `n` calls (count-based) or the calls
//! of the last `d` (time-based, in ten buckets of `d / 10`). Pure integer arithmetic over
//! nanoseconds, so it is exact under a manual clock and checked against a naive model by a
//! property test.

use std::time::Duration;

/// How far back the breaker looks when it computes failure and slow-call rates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Window {
    /// The last `n` calls (`n` ≥ 1).
    Count(u32),
    /// The calls of the last `d` (at least 10 ns), counted in ten buckets of `d / 10`: a call
    /// leaves the window when its bucket does, so the window is between `0.9 d` and `d` long.
    Time(Duration),
}

/// The buckets of a time-based window.
pub(crate) const BUCKETS: u64 = 10;

/// Totals over the window: calls, failures, slow calls.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Totals {
    pub(crate) calls: u64,
    pub(crate) failures: u64,
    pub(crate) slow: u64,
}

#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Bucket {
    /// The bucket's index since the epoch (`now / width`); a stale bucket is reset on use.
    index: u64,
    totals: Totals,
}

/// The outcomes inside a [`Window`].
#[derive(Debug, Clone)]
pub(crate) enum Outcomes {
    Count {
        /// One byte per call: bit 0 failed, bit 1 slow; `next` is the oldest once full.
        ring: Vec<u8>,
        size: usize,
        next: usize,
        totals: Totals,
    },
    Time {
        width: u64,
        buckets: Box<[Bucket; BUCKETS as usize]>,
    },
}

impl Outcomes {
    pub(crate) fn new(window: Window) -> Self {
        match window {
            Window::Count(n) => Self::Count {
                ring: Vec::with_capacity(n.max(1) as usize),
                size: n.max(1) as usize,
                next: 0,
                totals: Totals::default(),
            },
            Window::Time(d) => Self::Time {
                width: (u64::try_from(d.as_nanos()).unwrap_or(u64::MAX) / BUCKETS).max(1),
                buckets: Box::new([Bucket::default(); BUCKETS as usize]),
            },
        }
    }

    /// Records a call that ended at `now` (nanoseconds since the breaker's epoch).
    pub(crate) fn record(&mut self, now: u64, failed: bool, slow: bool) {
        let add = |t: &mut Totals| {
            t.calls += 1;
            t.failures += u64::from(failed);
            t.slow += u64::from(slow);
        };
        match self {
            Self::Count {
                ring,
                size,
                next,
                totals,
            } => {
                let byte = u8::from(failed) | (u8::from(slow) << 1);
                if ring.len() < *size {
                    ring.push(byte);
                } else {
                    let old = std::mem::replace(&mut ring[*next], byte);
                    totals.calls -= 1;
                    totals.failures -= u64::from(old & 1);
                    totals.slow -= u64::from(old >> 1);
                    *next = (*next + 1) % ring.len();
                }
                add(totals);
            }
            Self::Time { width, buckets } => {
                let index = now / *width;
                let b = &mut buckets[(index % BUCKETS) as usize];
                if b.index != index {
                    *b = Bucket {
                        index,
                        totals: Totals::default(),
                    };
                }
                add(&mut b.totals);
            }
        }
    }

    /// The totals of the calls still inside the window at `now`.
    pub(crate) fn totals(&self, now: u64) -> Totals {
        match self {
            Self::Count { totals, .. } => *totals,
            Self::Time { width, buckets } => {
                let current = now / *width;
                buckets
                    .iter()
                    .filter(|b| b.index <= current && b.index + BUCKETS > current)
                    .fold(Totals::default(), |mut t, b| {
                        t.calls += b.totals.calls;
                        t.failures += b.totals.failures;
                        t.slow += b.totals.slow;
                        t
                    })
            }
        }
    }

    /// Forgets every outcome (on a state change).
    pub(crate) fn clear(&mut self) {
        match self {
            Self::Count {
                ring, next, totals, ..
            } => {
                ring.clear();
                *next = 0;
                *totals = Totals::default();
            }
            Self::Time { buckets, .. } => **buckets = [Bucket::default(); BUCKETS as usize],
        }
    }
}

/// Whether `part` is at least `percent`% of `whole` (exact, in integers).
pub(crate) fn reaches(part: u64, whole: u64, percent: u8) -> bool {
    whole > 0 && u128::from(part) * 100 >= u128::from(whole) * u128::from(percent)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn a_count_window_keeps_the_last_n_calls() {
        let mut o = Outcomes::new(Window::Count(3));
        o.record(0, true, false);
        o.record(0, true, true);
        o.record(0, false, false);
        assert_eq!(
            o.totals(0),
            Totals {
                calls: 3,
                failures: 2,
                slow: 1
            }
        );
        o.record(0, false, false);
        o.record(0, false, false);
        assert_eq!(
            o.totals(9),
            Totals {
                calls: 3,
                failures: 0,
                slow: 0
            }
        );
    }

    #[test]
    fn a_time_window_forgets_buckets_that_left_it() {
        let mut o = Outcomes::new(Window::Time(Duration::from_nanos(100)));
        o.record(5, true, false);
        o.record(95, false, true);
        assert_eq!(o.totals(95).calls, 2);
        // The bucket of t=5 ([0, 10)) leaves at t=100; the one of t=95 at t=190.
        assert_eq!(o.totals(100).calls, 1);
        assert_eq!(o.totals(189).slow, 1);
        assert_eq!(o.totals(190), Totals::default());
    }

    #[test]
    fn rates_are_exact_integers() {
        assert!(reaches(1, 2, 50));
        assert!(!reaches(49, 100, 50));
        assert!(reaches(0, 5, 0));
        assert!(!reaches(0, 0, 0), "no calls is no rate");
        assert!(reaches(u64::MAX, u64::MAX, 100));
    }

    proptest! {
        /// The ring and the buckets agree with a naive list of every call.
        #[test]
        fn windows_agree_with_a_naive_model(
            count in 1u32..20,
            width in 1u64..50,
            calls in proptest::collection::vec((0u64..200, any::<bool>(), any::<bool>()), 0..200),
        ) {
            let mut by_count = Outcomes::new(Window::Count(count));
            let mut by_time = Outcomes::new(Window::Time(Duration::from_nanos(width * BUCKETS)));
            let mut now = 0;
            let mut all: Vec<(u64, bool, bool)> = Vec::new();
            for (step, failed, slow) in calls {
                now += step;
                by_count.record(now, failed, slow);
                by_time.record(now, failed, slow);
                all.push((now, failed, slow));
                let sum = |it: &mut dyn Iterator<Item = &(u64, bool, bool)>| {
                    it.fold(Totals::default(), |mut t, (_, f, s)| {
                        t.calls += 1;
                        t.failures += u64::from(*f);
                        t.slow += u64::from(*s);
                        t
                    })
                };
                let last_n = sum(&mut all.iter().rev().take(count as usize));
                prop_assert_eq!(by_count.totals(now), last_n);
                let current = now / width;
                let recent = sum(&mut all.iter().filter(|(at, _, _)| at / width + BUCKETS > current));
                prop_assert_eq!(by_time.totals(now), recent);
            }
        }
    }
}
