//! A circuit breaker for the agent service, as a pure state machine over `now` (from
//! `state.clock`).
//!
//! Why: when the agent service is down, waiting out a timeout (and retries) on every request holds
//! a connection and a worker per caller and keeps the failing service busy. After enough evidence
//! of failure the breaker *opens*: calls fail fast with 503 and `Retry-After` for a cool-down. Then
//! it lets exactly one probe through (*half-open*): success closes it, failure opens it again.
//!
//! Evidence is either `consecutive` failures in a row, or a failure rate ≥ `rate_percent`% over at
//! least `min_calls` outcomes of the last `window` (so a slow trickle of errors among many
//! successes does not trip it, and neither do a handful of calls).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// When the breaker opens, and for how long.
#[derive(Debug, Clone, Copy)]
pub struct BreakerConfig {
    /// Consecutive failures that open the breaker.
    pub consecutive: u32,
    /// Failure rate (percent) over the window that opens the breaker...
    pub rate_percent: u32,
    /// ...once the window holds at least this many outcomes.
    pub min_calls: u32,
    /// How far back outcomes count.
    pub window: Duration,
    /// How long the breaker stays open before a probe.
    pub cool_down: Duration,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self {
            consecutive: 5,
            rate_percent: 50,
            min_calls: 10,
            window: Duration::from_secs(30),
            cool_down: Duration::from_secs(10),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Closed,
    Open {
        until: Instant,
    },
    /// One probe is allowed; `probe` is when it was let through (a probe whose result never comes
    /// back, e.g. a cancelled request, is given up on after a cool-down).
    HalfOpen {
        probe: Option<Instant>,
    },
}

/// Permission to call: an ordinary call, or the single probe of a half-open breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub enum Permit {
    Call,
    Probe,
}

/// A refusal: the breaker is open; try again after this long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Open {
    pub retry_after: Duration,
}

/// The breaker. Not thread-safe by itself: the client keeps it behind a mutex held for one call
/// of `acquire` or `record` (never across an await).
#[derive(Debug, Clone)]
pub struct CircuitBreaker {
    config: BreakerConfig,
    state: State,
    consecutive: u32,
    /// Outcomes inside the window: (when, failed).
    outcomes: VecDeque<(Instant, bool)>,
}

/// Outcomes kept at most (bounds memory under a flood of calls).
const MAX_OUTCOMES: usize = 1024;

impl CircuitBreaker {
    pub fn new(config: BreakerConfig) -> Self {
        Self {
            config,
            state: State::Closed,
            consecutive: 0,
            outcomes: VecDeque::new(),
        }
    }

    /// Whether a call may go out now.
    pub fn acquire(&mut self, now: Instant) -> Result<Permit, Open> {
        match self.state {
            State::Closed => Ok(Permit::Call),
            State::Open { until } if now < until => Err(Open {
                retry_after: until - now,
            }),
            State::Open { .. } => {
                self.state = State::HalfOpen { probe: Some(now) };
                Ok(Permit::Probe)
            }
            State::HalfOpen { probe: Some(at) }
                if now.saturating_duration_since(at) < self.config.cool_down =>
            {
                Err(Open {
                    retry_after: self.config.cool_down - now.saturating_duration_since(at),
                })
            }
            State::HalfOpen { .. } => {
                self.state = State::HalfOpen { probe: Some(now) };
                Ok(Permit::Probe)
            }
        }
    }

    /// Records the outcome of a call made under `permit`.
    pub fn record(&mut self, permit: Permit, now: Instant, ok: bool) {
        match (permit, self.state) {
            (Permit::Probe, State::HalfOpen { .. }) => {
                if ok {
                    self.close();
                } else {
                    self.open(now);
                }
            }
            (Permit::Call, State::Closed) => {
                self.push(now, !ok);
                if ok {
                    self.consecutive = 0;
                } else {
                    self.consecutive = self.consecutive.saturating_add(1);
                }
                if self.should_open() {
                    self.open(now);
                }
            }
            // A late answer to a call admitted before the state changed: it says nothing about
            // the service now.
            _ => {}
        }
    }

    /// Whether the breaker refuses calls now (open, or half-open with its probe out).
    #[cfg(test)]
    pub fn is_open(&self, now: Instant) -> bool {
        self.clone().acquire(now).is_err()
    }

    fn push(&mut self, now: Instant, failed: bool) {
        while let Some(&(at, _)) = self.outcomes.front() {
            if now.saturating_duration_since(at) >= self.config.window
                || self.outcomes.len() >= MAX_OUTCOMES
            {
                self.outcomes.pop_front();
            } else {
                break;
            }
        }
        self.outcomes.push_back((now, failed));
    }

    fn should_open(&self) -> bool {
        if self.consecutive >= self.config.consecutive {
            return true;
        }
        let total = self.outcomes.len() as u64;
        let failed = self.outcomes.iter().filter(|(_, f)| *f).count() as u64;
        total >= u64::from(self.config.min_calls)
            && failed * 100 >= total * u64::from(self.config.rate_percent)
    }

    fn open(&mut self, now: Instant) {
        self.state = State::Open {
            until: now + self.config.cool_down,
        };
        self.consecutive = 0;
        self.outcomes.clear();
    }

    fn close(&mut self) {
        self.state = State::Closed;
        self.consecutive = 0;
        self.outcomes.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use protothrive::clock::{Clock, ManualClock};

    fn breaker() -> CircuitBreaker {
        CircuitBreaker::new(BreakerConfig::default())
    }

    fn call(b: &mut CircuitBreaker, clock: &ManualClock, ok: bool) -> Result<(), Open> {
        let permit = b.acquire(clock.instant())?;
        b.record(permit, clock.instant(), ok);
        Ok(())
    }

    #[test]
    fn opens_after_consecutive_failures_and_fails_fast() {
        let clock = ManualClock::default();
        let mut b = breaker();
        for _ in 0..4 {
            assert!(call(&mut b, &clock, false).is_ok());
        }
        assert!(!b.is_open(clock.instant()));
        assert!(call(&mut b, &clock, false).is_ok());
        let refused = b.acquire(clock.instant()).unwrap_err();
        assert_eq!(refused.retry_after, Duration::from_secs(10));
        clock.advance(Duration::from_secs(4));
        assert_eq!(
            b.acquire(clock.instant()).unwrap_err().retry_after,
            Duration::from_secs(6)
        );
    }

    #[test]
    fn a_success_resets_the_consecutive_count() {
        let clock = ManualClock::default();
        let mut b = breaker();
        for _ in 0..3 {
            for _ in 0..4 {
                call(&mut b, &clock, false).unwrap();
            }
            call(&mut b, &clock, true).unwrap();
            // 4 of 5 failed but the window is below min_calls until the 2nd round.
            clock.advance(Duration::from_secs(31));
        }
        assert!(!b.is_open(clock.instant()));
    }

    #[test]
    fn opens_on_failure_rate_over_enough_calls() {
        let clock = ManualClock::default();
        let mut b = breaker();
        // Alternate: never 5 in a row, but 50% over 10 calls.
        for i in 0..9 {
            call(&mut b, &clock, i % 2 == 0).unwrap();
        }
        assert!(
            !b.is_open(clock.instant()),
            "9 calls are fewer than min_calls"
        );
        call(&mut b, &clock, false).unwrap();
        assert!(b.is_open(clock.instant()));
    }

    #[test]
    fn outcomes_older_than_the_window_do_not_count() {
        let clock = ManualClock::default();
        let mut b = breaker();
        for _ in 0..4 {
            call(&mut b, &clock, false).unwrap();
            call(&mut b, &clock, true).unwrap();
        }
        clock.advance(Duration::from_secs(31));
        call(&mut b, &clock, false).unwrap();
        call(&mut b, &clock, true).unwrap();
        assert!(!b.is_open(clock.instant()));
    }

    #[test]
    fn half_open_lets_one_probe_and_closes_on_success() {
        let clock = ManualClock::default();
        let mut b = breaker();
        for _ in 0..5 {
            call(&mut b, &clock, false).unwrap();
        }
        clock.advance(Duration::from_secs(10));
        let probe = b.acquire(clock.instant()).unwrap();
        assert_eq!(probe, Permit::Probe);
        assert!(
            b.acquire(clock.instant()).is_err(),
            "only one probe at a time"
        );
        b.record(probe, clock.instant(), true);
        assert_eq!(b.acquire(clock.instant()), Ok(Permit::Call));
    }

    #[test]
    fn a_failed_probe_opens_again_for_a_full_cool_down() {
        let clock = ManualClock::default();
        let mut b = breaker();
        for _ in 0..5 {
            call(&mut b, &clock, false).unwrap();
        }
        clock.advance(Duration::from_secs(10));
        let probe = b.acquire(clock.instant()).unwrap();
        clock.advance(Duration::from_secs(2));
        b.record(probe, clock.instant(), false);
        assert_eq!(
            b.acquire(clock.instant()).unwrap_err().retry_after,
            Duration::from_secs(10)
        );
    }

    #[test]
    fn a_lost_probe_is_replaced_after_a_cool_down() {
        let clock = ManualClock::default();
        let mut b = breaker();
        for _ in 0..5 {
            call(&mut b, &clock, false).unwrap();
        }
        clock.advance(Duration::from_secs(10));
        let _lost = b.acquire(clock.instant()).unwrap();
        clock.advance(Duration::from_secs(10));
        assert_eq!(b.acquire(clock.instant()), Ok(Permit::Probe));
    }

    #[test]
    fn late_results_of_calls_admitted_before_opening_are_ignored() {
        let clock = ManualClock::default();
        let mut b = breaker();
        let late = b.acquire(clock.instant()).unwrap();
        for _ in 0..5 {
            call(&mut b, &clock, false).unwrap();
        }
        b.record(late, clock.instant(), true);
        assert!(b.is_open(clock.instant()));
    }
}
