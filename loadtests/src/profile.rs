//! The load shapes, as goose test plans.
//!
//! goose has no "requests per second" knob: a user runs one transaction, waits, runs the next.
//! Every transaction here sends exactly one request, and every scenario waits uniformly between
//! [`WAIT_MIN_MS`] and [`WAIT_MAX_MS`] (mean 500 ms) after each, so one user sends one request per
//! `500 ms + latency`: **2 requests per second per user** while latency stays in the low
//! milliseconds. The rate of a phase is then its number of users times two, and the test plan
//! (`users,time` steps; goose ramps linearly to `users` over `time`) is the request-rate plan:
//!
//! | phase | `full` step | users | req/s | `quick` step | users | req/s |
//! |---|---|---|---|---|---|---|
//! | warm-up | `10,10s` | 0 → 10 | 0 → 20 | `10,5s` | 0 → 10 | 0 → 20 |
//! | ramp | `50,30s` | 10 → 50 | 20 → 100 | `50,5s` | 10 → 50 | 20 → 100 |
//! | sustained | `50,60s` | 50 | 100 | `50,15s` | 50 | 100 |
//! | spike | `250,10s` + `250,20s` | 50 → 250, held | 100 → 500 | `150,5s` + `150,10s` | 50 → 150, held | 100 → 300 |
//! | cool-down | `0,10s` | 250 → 0 | 500 → 0 | `0,5s` | 150 → 0 | 300 → 0 |
//!
//! `short` (3 s to 30 users, 10 s held, 2 s down: 60 req/s, ≈ 750 requests) is the short
//! multi-instance run's, in `./scripts/test`.
//!
//! `full` lasts 140 s (≈ 23,400 requests: 11,700 user-seconds × 2), `quick` 45 s (≈ 5,000), well
//! inside the 60 s CI can spend. `--throttle-requests` caps the total at 20% over the peak, so a
//! server that answers faster than planned never turns the test into an unbounded flood; it does
//! not bind while the plan holds. When latency grows the rate drops below plan (a closed model):
//! the report prints the measured rate of each phase next to the planned one.

use std::time::Duration;

/// Shortest wait after each transaction.
pub(crate) const WAIT_MIN_MS: u64 = 400;
/// Longest wait after each transaction; the mean is halfway.
pub(crate) const WAIT_MAX_MS: u64 = 600;

/// Requests per second one user sends while latency is negligible.
pub(crate) fn per_user_rate() -> f64 {
    2000.0 / (WAIT_MIN_MS + WAIT_MAX_MS) as f64
}

/// The waits a scenario is given.
pub(crate) fn wait_range() -> (Duration, Duration) {
    (
        Duration::from_millis(WAIT_MIN_MS),
        Duration::from_millis(WAIT_MAX_MS),
    )
}

/// One step of a test plan: reach `users` over `secs`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Phase {
    pub(crate) name: &'static str,
    pub(crate) users: usize,
    pub(crate) secs: u64,
}

const fn phase(name: &'static str, users: usize, secs: u64) -> Phase {
    Phase { name, users, secs }
}

const QUICK: &[Phase] = &[
    phase("warm-up", 10, 5),
    phase("ramp", 50, 5),
    phase("sustained", 50, 15),
    phase("spike ramp", 150, 5),
    phase("spike", 150, 10),
    phase("cool-down", 0, 5),
];

/// A few seconds of load, for the short multi-instance run of `./scripts/test`.
const SHORT: &[Phase] = &[
    phase("warm-up", 30, 3),
    phase("sustained", 30, 10),
    phase("cool-down", 0, 2),
];

const FULL: &[Phase] = &[
    phase("warm-up", 10, 10),
    phase("ramp", 50, 30),
    phase("sustained", 50, 60),
    phase("spike ramp", 250, 10),
    phase("spike", 250, 20),
    phase("cool-down", 0, 10),
];

/// A named load shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Profile {
    /// 45 s: warm-up, ramp to 100 req/s, sustained, spike to 300 req/s, cool-down (CI).
    Quick,
    /// 140 s: warm-up, ramp to 100 req/s, sustained 60 s, spike to 500 req/s, cool-down.
    Full,
    /// 15 s: warm-up to 60 req/s, sustained, cool-down (the short multi-instance run).
    Short,
}

impl Profile {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Quick => "quick",
            Self::Full => "full",
            Self::Short => "short",
        }
    }

    pub(crate) fn phases(self) -> &'static [Phase] {
        match self {
            Self::Quick => QUICK,
            Self::Full => FULL,
            Self::Short => SHORT,
        }
    }

    /// The plan in goose's `--test-plan` syntax.
    pub(crate) fn test_plan(self) -> String {
        plan_text(self.phases())
    }

    /// `--throttle-requests`: 20% over the planned peak.
    pub(crate) fn throttle(self) -> usize {
        let peak = self.phases().iter().map(|p| p.users).max().unwrap_or(0) as f64;
        (peak * per_user_rate() * 1.2).ceil() as usize
    }
}

pub(crate) fn plan_text(phases: &[Phase]) -> String {
    phases
        .iter()
        .map(|p| format!("{},{}s", p.users, p.secs))
        .collect::<Vec<_>>()
        .join(";")
}

/// Planned request rate at the start and end of each phase, from the users at its ends.
pub(crate) fn planned_rates(phases: &[Phase]) -> Vec<(f64, f64)> {
    let mut from = 0;
    phases
        .iter()
        .map(|p| {
            let rates = (
                from as f64 * per_user_rate(),
                p.users as f64 * per_user_rate(),
            );
            from = p.users;
            rates
        })
        .collect()
}

/// Which phase a moment (milliseconds into the run) falls in; past the end is the last phase.
pub(crate) fn phase_at(phases: &[Phase], elapsed_ms: u64) -> usize {
    let mut end = 0;
    for (i, p) in phases.iter().enumerate() {
        end += p.secs * 1000;
        if elapsed_ms < end {
            return i;
        }
    }
    phases.len().saturating_sub(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans_match_the_documented_arithmetic() {
        assert_eq!(per_user_rate(), 2.0);
        assert_eq!(
            Profile::Full.test_plan(),
            "10,10s;50,30s;50,60s;250,10s;250,20s;0,10s"
        );
        assert_eq!(
            Profile::Quick.test_plan(),
            "10,5s;50,5s;50,15s;150,5s;150,10s;0,5s"
        );
        assert_eq!(Profile::Short.test_plan(), "30,3s;30,10s;0,2s");
        let total = |p: Profile| p.phases().iter().map(|p| p.secs).sum::<u64>();
        assert_eq!(total(Profile::Full), 140);
        assert!(
            total(Profile::Quick) <= 50,
            "quick leaves room for start-up inside 60 s"
        );
        let full = planned_rates(Profile::Full.phases());
        assert_eq!(full[2], (100.0, 100.0), "sustained at 100 req/s");
        assert_eq!(full[4], (500.0, 500.0), "spike at 500 req/s");
        assert_eq!(Profile::Full.throttle(), 600);
        assert_eq!(Profile::Quick.throttle(), 360);
    }

    #[test]
    fn phases_by_time() {
        let phases = Profile::Full.phases();
        assert_eq!(phase_at(phases, 0), 0);
        assert_eq!(phase_at(phases, 9_999), 0);
        assert_eq!(phase_at(phases, 10_000), 1);
        assert_eq!(phase_at(phases, 115_000), 4);
        assert_eq!(phase_at(phases, 500_000), 5);
    }
}
