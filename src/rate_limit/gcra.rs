//! GCRA (the generic cell rate algorithm) as a pure function: no I/O, no locks, no clock.
//!
//! The state of one key is one number, its *theoretical arrival time* (TAT) in nanoseconds: the
//! instant at which the key would be back to a full burst. A request at `now` is allowed when,
//! after adding one emission interval `T = period / count`, the TAT is at most `burst × T` ahead of
//! `now`. A TAT in the past carries no information (the key is idle, its burst is full), which is
//! what lets a store drop it.

use super::Quota;

/// What one check decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// The request is allowed; store `tat`.
    Allow {
        /// The new theoretical arrival time to store.
        tat: u64,
        /// Requests still allowed at once after this one.
        remaining: u64,
        /// Nanoseconds until the burst is full again.
        reset: u64,
    },
    /// The request is refused; the stored TAT is unchanged.
    Deny {
        /// Nanoseconds until one request would be allowed.
        retry_after: u64,
        /// Nanoseconds until the burst is full again.
        reset: u64,
    },
}

impl Decision {
    /// Whether the request is allowed.
    #[must_use]
    pub fn is_allowed(&self) -> bool {
        matches!(self, Self::Allow { .. })
    }

    /// Requests still allowed at once (0 on a denial).
    #[must_use]
    pub fn remaining(&self) -> u64 {
        match self {
            Self::Allow { remaining, .. } => *remaining,
            Self::Deny { .. } => 0,
        }
    }

    /// Nanoseconds until the burst is full again.
    #[must_use]
    pub fn reset(&self) -> u64 {
        match self {
            Self::Allow { reset, .. } | Self::Deny { reset, .. } => *reset,
        }
    }

    /// Nanoseconds until a request would be allowed (0 when allowed).
    #[must_use]
    pub fn retry_after(&self) -> u64 {
        match self {
            Self::Allow { .. } => 0,
            Self::Deny { retry_after, .. } => *retry_after,
        }
    }
}

/// Checks one request at `now` (nanoseconds) against the stored `tat` (0 for an unknown key).
///
/// ```
/// use protothrive::rate_limit::{check, Quota};
/// let q: Quota = "2/s burst 2".parse().unwrap();
/// let a = check(0, 0, &q);
/// assert!(a.is_allowed());
/// assert_eq!(a.remaining(), 1);
/// ```
#[must_use]
pub fn check(tat: u64, now: u64, quota: &Quota) -> Decision {
    let t = quota.interval_nanos();
    let tau = quota.tolerance_nanos();
    let base = tat.max(now);
    let new_tat = base.saturating_add(t);
    let limit = now.saturating_add(tau);
    if new_tat <= limit {
        Decision::Allow {
            tat: new_tat,
            remaining: (limit - new_tat) / t,
            reset: new_tat - now,
        }
    } else {
        Decision::Deny {
            retry_after: new_tat - limit,
            reset: base - now,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn q(s: &str) -> Quota {
        s.parse().unwrap()
    }

    #[test]
    fn burst_then_deny_then_refill() {
        let quota = q("60/min burst 3");
        let sec = 1_000_000_000;
        let mut tat = 0;
        let now = 10 * sec;
        for expect in [2, 1, 0] {
            match check(tat, now, &quota) {
                Decision::Allow {
                    tat: t,
                    remaining,
                    reset,
                } => {
                    assert_eq!(remaining, expect);
                    assert_eq!(reset, (3 - expect) * sec);
                    tat = t;
                }
                d @ Decision::Deny { .. } => panic!("{d:?}"),
            }
        }
        let d = check(tat, now, &quota);
        assert_eq!(
            d,
            Decision::Deny {
                retry_after: sec,
                reset: 3 * sec
            }
        );
        assert!(!check(tat, now + sec - 1, &quota).is_allowed());
        assert!(check(tat, now + sec, &quota).is_allowed());
        // Idle long enough: a full burst again.
        assert_eq!(check(tat, now + 100 * sec, &quota).remaining(), 2);
    }

    #[test]
    fn burst_of_one_spaces_requests() {
        let quota = q("1/s burst 1");
        let Decision::Allow {
            tat, remaining: 0, ..
        } = check(0, 5, &quota)
        else {
            panic!()
        };
        assert_eq!(check(tat, 5, &quota).retry_after(), 1_000_000_000);
    }

    #[test]
    fn saturates_instead_of_overflowing() {
        let quota = q("1/s burst 1");
        // 584 years of nanoseconds: only required not to panic.
        let _ = check(u64::MAX, u64::MAX - 1, &quota);
        assert!(!check(u64::MAX - 1, 0, &quota).is_allowed());
        assert!(check(0, u64::MAX - 10, &quota).reset() > 0);
    }

    /// A sliding log of allowed requests, the naive model GCRA equals for integral intervals:
    /// at most `burst` requests in any window of `burst × T`.
    fn reference(times: &[u64], t: u64, burst: u64) -> Vec<bool> {
        // GCRA in real arithmetic with explicit "virtual scheduling" of each allowed request.
        let mut tat: Option<u128> = None;
        let (t, tau) = (u128::from(t), u128::from(t) * u128::from(burst));
        times
            .iter()
            .map(|&now| {
                let now = u128::from(now);
                let base = tat.map_or(now, |x| x.max(now));
                if base + t <= now + tau {
                    tat = Some(base + t);
                    true
                } else {
                    false
                }
            })
            .collect()
    }

    proptest! {
        #[test]
        fn equals_reference_model(
            count in 1u32..50,
            period_s in 1u64..120,
            burst in 1u32..20,
            gaps in proptest::collection::vec(0u64..3_000_000_000, 1..60),
        ) {
            let quota = Quota::new(count, std::time::Duration::from_secs(period_s), burst).unwrap();
            let mut now = 0;
            let times: Vec<u64> = gaps.iter().map(|g| { now += g; now }).collect();
            let expected = reference(&times, quota.interval_nanos(), u64::from(burst));
            let mut tat = 0;
            let mut allowed_in_window = Vec::new();
            for (i, &now) in times.iter().enumerate() {
                let d = check(tat, now, &quota);
                prop_assert_eq!(d.is_allowed(), expected[i]);
                if let Decision::Allow { tat: t, remaining, .. } = d {
                    prop_assert!(remaining < u64::from(burst));
                    tat = t;
                    allowed_in_window.push(now);
                } else {
                    prop_assert!(d.retry_after() > 0);
                    prop_assert!(check(tat, now + d.retry_after(), &quota).is_allowed());
                    prop_assert!(!check(tat, now + d.retry_after() - 1, &quota).is_allowed());
                }
            }
            // Never more than burst + elapsed / T allowed.
            if let (Some(first), Some(last)) = (allowed_in_window.first(), allowed_in_window.last()) {
                let bound = u64::from(burst) + (last - first) / quota.interval_nanos();
                prop_assert!(allowed_in_window.len() as u64 <= bound);
            }
        }
    }

    /// governor 0.10's GCRA in the same terms: `tau = T × (burst − 1)`, a request allowed when
    /// `now ≥ TAT − tau`, the new TAT `max(TAT, now) + T`. Ours allows when
    /// `max(TAT, now) + T ≤ now + T × burst`, which is the same inequality, so every decision,
    /// remaining count and wait agrees exactly on the same emission interval (`period / count`,
    /// floored to whole nanoseconds on both sides). The only divergence is past `u64`
    /// nanoseconds (~584 years of uptime), where ours saturates; the ranges below stay clear of it.
    fn governor_limiter(
        quota: &Quota,
    ) -> (
        governor::RateLimiter<
            governor::state::NotKeyed,
            governor::state::InMemoryState,
            governor::clock::FakeRelativeClock,
            governor::middleware::StateInformationMiddleware,
        >,
        governor::clock::FakeRelativeClock,
    ) {
        let interval = quota.period() / quota.count();
        assert_eq!(
            u64::try_from(interval.as_nanos()).unwrap(),
            quota.interval_nanos()
        );
        let g = governor::Quota::with_period(interval)
            .unwrap()
            .allow_burst(std::num::NonZeroU32::new(quota.burst()).unwrap());
        let clock = governor::clock::FakeRelativeClock::default();
        let limiter = governor::RateLimiter::direct_with_clock(g, clock.clone())
            .with_middleware::<governor::middleware::StateInformationMiddleware>();
        (limiter, clock)
    }

    proptest! {
        #[test]
        fn equals_governor(
            count in 1u32..10_000,
            period_ms in 1u64..3_600_000,
            burst in 1u32..100,
            // Each step: a time advance in thousandths of the emission interval, then 1-4
            // requests at that instant.
            steps in proptest::collection::vec((0u64..4_000, 1usize..5), 1..120),
        ) {
            use governor::clock::Clock as _;
            let quota = Quota::new(count, std::time::Duration::from_millis(period_ms), burst).unwrap();
            let (limiter, clock) = governor_limiter(&quota);
            let t = quota.interval_nanos();
            let (mut tat, mut now) = (0, 0);
            for (thousandths, requests) in steps {
                let gap = t / 1000 * thousandths + thousandths % 7;
                clock.advance(std::time::Duration::from_nanos(gap));
                now += gap;
                for _ in 0..requests {
                    let ours = check(tat, now, &quota);
                    match (ours, limiter.check()) {
                        (Decision::Allow { tat: new, remaining, .. }, Ok(snapshot)) => {
                            prop_assert_eq!(remaining, u64::from(snapshot.remaining_burst_capacity()));
                            tat = new;
                        }
                        (Decision::Deny { retry_after, .. }, Err(not_until)) => {
                            let wait = not_until.wait_time_from(clock.now());
                            prop_assert_eq!(u128::from(retry_after), wait.as_nanos());
                        }
                        (ours, theirs) => prop_assert!(
                            false, "at {now} ns ours {ours:?}, governor {:?}", theirs.is_ok()
                        ),
                    }
                }
            }
        }
    }
}
