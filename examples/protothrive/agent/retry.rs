//! Retries of agent calls: a retry budget and jittered exponential backoff, as pure functions of
//! `now` (from `state.clock`) and a random number.
//!
//! Why a budget and not just "3 attempts": when the agent service degrades, every caller retrying
//! 3 times multiplies its load by 3 exactly when it can least take it (a retry storm). Like tower's
//! `retry::budget`, retries may add at most `percent`% to the calls of the last [`WINDOW_SECS`]
//! seconds, plus a small floor (`min_per_sec`) so that a quiet service can still retry at all.
//! The window is a ring of one-second buckets, so the sums are integer arithmetic over
//! [`WINDOW_SECS`] slots, with no allocation, lock-free of I/O and deterministic under a manual clock.

use std::time::{Duration, Instant};

/// The length of the sliding window, in one-second buckets.
pub const WINDOW_SECS: usize = 10;

#[derive(Debug, Clone, Copy, Default)]
struct Bucket {
    /// Seconds since the budget's origin this bucket counts (a stale bucket is reset on use).
    second: u64,
    deposits: u32,
    withdrawals: u32,
}

/// Retries ≤ `percent`% of calls over the window, plus `min_per_sec` per second of window.
#[derive(Debug, Clone)]
pub struct RetryBudget {
    percent: u32,
    min_per_sec: u32,
    origin: Option<Instant>,
    buckets: [Bucket; WINDOW_SECS],
}

impl RetryBudget {
    /// A budget allowing retries of `percent`% of calls, and at least `min_per_sec` per second.
    pub const fn new(percent: u32, min_per_sec: u32) -> Self {
        Self {
            percent,
            min_per_sec,
            origin: None,
            buckets: [Bucket {
                second: 0,
                deposits: 0,
                withdrawals: 0,
            }; WINDOW_SECS],
        }
    }

    fn second(&mut self, now: Instant) -> u64 {
        let origin = *self.origin.get_or_insert(now);
        now.saturating_duration_since(origin).as_secs()
    }

    fn bucket(&mut self, now: Instant) -> &mut Bucket {
        let second = self.second(now);
        let slot = usize::try_from(second % WINDOW_SECS as u64).unwrap_or(0);
        let b = &mut self.buckets[slot];
        if b.second != second {
            *b = Bucket {
                second,
                deposits: 0,
                withdrawals: 0,
            };
        }
        b
    }

    /// Deposits and withdrawals of the buckets still inside the window at `second`.
    fn totals(&self, second: u64) -> (u64, u64) {
        self.buckets
            .iter()
            .filter(|b| b.second + WINDOW_SECS as u64 > second && b.second <= second)
            .fold((0, 0), |(d, w), b| {
                (d + u64::from(b.deposits), w + u64::from(b.withdrawals))
            })
    }

    /// Records a first attempt (a call that may later earn retries).
    pub fn deposit(&mut self, now: Instant) {
        let b = self.bucket(now);
        b.deposits = b.deposits.saturating_add(1);
    }

    /// Takes one retry out of the budget; `false` when the budget is spent.
    pub fn try_withdraw(&mut self, now: Instant) -> bool {
        let second = self.second(now);
        let _ = self.bucket(now);
        let (deposits, withdrawals) = self.totals(second);
        let allowance = u64::from(self.min_per_sec) * WINDOW_SECS as u64
            + deposits * u64::from(self.percent) / 100;
        if withdrawals >= allowance {
            return false;
        }
        let b = self.bucket(now);
        b.withdrawals = b.withdrawals.saturating_add(1);
        true
    }
}

/// "Full jitter" exponential backoff: a uniform wait in `[0, min(cap, base · 2^retry)]`, where
/// `random` is any random `u64` (callers pass fresh randomness; tests pass fixed values).
///
/// Jitter spreads the retries of many callers that failed together instead of having them hit the
/// recovering service in lock-step.
pub fn backoff(retry: u32, base: Duration, cap: Duration, random: u64) -> Duration {
    let ceiling = base
        .saturating_mul(1u32.checked_shl(retry.min(16)).unwrap_or(u32::MAX))
        .min(cap);
    let millis = u64::try_from(ceiling.as_millis()).unwrap_or(u64::MAX);
    Duration::from_millis(random % (millis + 1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use protothrive::clock::{Clock, ManualClock};

    #[test]
    fn the_floor_allows_min_per_sec_retries_per_window_without_calls() {
        let clock = ManualClock::default();
        let mut budget = RetryBudget::new(20, 3);
        let granted = (0..100)
            .filter(|_| budget.try_withdraw(clock.instant()))
            .count();
        assert_eq!(granted, 3 * WINDOW_SECS);
    }

    #[test]
    fn retries_are_bounded_by_the_percentage_of_calls() {
        let clock = ManualClock::default();
        let mut budget = RetryBudget::new(20, 0);
        for _ in 0..100 {
            budget.deposit(clock.instant());
        }
        let granted = (0..100)
            .filter(|_| budget.try_withdraw(clock.instant()))
            .count();
        assert_eq!(granted, 20);
    }

    #[test]
    fn the_window_slides_and_old_withdrawals_expire() {
        let clock = ManualClock::default();
        let mut budget = RetryBudget::new(20, 1);
        let first = (0..100)
            .filter(|_| budget.try_withdraw(clock.instant()))
            .count();
        assert_eq!(first, WINDOW_SECS);
        assert!(!budget.try_withdraw(clock.instant()));
        clock.advance(Duration::from_secs(5));
        assert!(
            !budget.try_withdraw(clock.instant()),
            "still inside the window"
        );
        clock.advance(Duration::from_secs(5));
        assert!(
            budget.try_withdraw(clock.instant()),
            "the spent second left the window"
        );
    }

    #[test]
    fn deposits_older_than_the_window_stop_counting() {
        let clock = ManualClock::default();
        let mut budget = RetryBudget::new(50, 0);
        for _ in 0..10 {
            budget.deposit(clock.instant());
        }
        clock.advance(Duration::from_secs(WINDOW_SECS as u64 + 1));
        assert!(!budget.try_withdraw(clock.instant()));
    }

    #[test]
    fn backoff_grows_exponentially_is_capped_and_jittered() {
        let base = Duration::from_millis(100);
        let cap = Duration::from_secs(1);
        assert_eq!(
            backoff(0, base, cap, u64::MAX - 1),
            Duration::from_millis((u64::MAX - 1) % 101)
        );
        assert!(backoff(0, base, cap, 12_345) <= base);
        assert!(backoff(3, base, cap, 799) == Duration::from_millis(799));
        assert!(backoff(3, base, cap, 801) == Duration::from_millis(0));
        assert!(backoff(40, base, cap, u64::MAX) <= cap);
        assert_eq!(backoff(2, base, cap, 400), Duration::from_millis(400));
        assert_eq!(backoff(2, base, cap, 0), Duration::ZERO);
    }
}
