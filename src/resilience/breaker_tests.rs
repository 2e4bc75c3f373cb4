//! The breaker's state machine on a manual clock: windows, rates, probes, waits.

use std::time::Duration;

use super::tests::{breaker, call};
use super::*;
use crate::clock::ManualClock;

#[test]
fn opens_on_the_failure_rate_once_min_calls_are_in() {
    let clock = ManualClock::default();
    let b = breaker(&clock).build().unwrap();
    call(&b, Outcome::Failure).unwrap();
    call(&b, Outcome::Failure).unwrap();
    call(&b, Outcome::Failure).unwrap();
    assert_eq!(
        b.state(),
        BreakerState::Closed,
        "3 calls are fewer than min_calls"
    );
    call(&b, Outcome::Success).unwrap();
    assert_eq!(b.state(), BreakerState::Open);
    assert_eq!(
        b.try_acquire().unwrap_err().retry_after,
        Duration::from_secs(2)
    );
}

#[test]
fn ignored_calls_and_successes_do_not_open_it() {
    let clock = ManualClock::default();
    let b = breaker(&clock).build().unwrap();
    for _ in 0..20 {
        call(&b, Outcome::Ignored).unwrap();
        call(&b, Outcome::Success).unwrap();
    }
    call(&b, Outcome::Failure).unwrap();
    assert_eq!(b.state(), BreakerState::Closed);
}

#[test]
fn opens_on_the_slow_call_rate() {
    let clock = ManualClock::default();
    let b = breaker(&clock)
        .slow_calls(Duration::from_millis(500), 75)
        .build()
        .unwrap();
    for _ in 0..3 {
        let p = b.try_acquire().unwrap();
        clock.advance(Duration::from_millis(600));
        p.record(Outcome::Success);
    }
    assert_eq!(b.state(), BreakerState::Closed);
    let p = b.try_acquire().unwrap();
    clock.advance(Duration::from_millis(500));
    p.record(Outcome::Success);
    assert_eq!(b.state(), BreakerState::Open, "4 of 4 calls slow");
}

#[test]
fn a_time_window_forgets_old_failures() {
    let clock = ManualClock::default();
    let b = breaker(&clock)
        .window(Window::Time(Duration::from_secs(10)))
        .build()
        .unwrap();
    for _ in 0..3 {
        call(&b, Outcome::Failure).unwrap();
    }
    clock.advance(Duration::from_secs(11));
    call(&b, Outcome::Failure).unwrap();
    assert_eq!(b.state(), BreakerState::Closed, "only 1 call in the window");
}

#[test]
fn half_open_admits_bounded_probes_and_a_success_closes_it() {
    let clock = ManualClock::default();
    let b = breaker(&clock).probes(2).build().unwrap();
    for _ in 0..4 {
        call(&b, Outcome::Failure).unwrap();
    }
    clock.advance(Duration::from_secs(2));
    let p1 = b.try_acquire().unwrap();
    let p2 = b.try_acquire().unwrap();
    assert!(p1.is_probe() && p2.is_probe());
    let open = BreakerOpen {
        retry_after: Duration::from_secs(2),
    };
    assert_eq!(
        b.try_acquire().err(),
        Some(open),
        "no herd: two probes at most"
    );
    assert_eq!(b.state(), BreakerState::HalfOpen);
    p1.record(Outcome::Success);
    assert_eq!(b.state(), BreakerState::HalfOpen);
    p2.record(Outcome::Success);
    assert_eq!(b.state(), BreakerState::Closed);
}

#[test]
fn failed_probes_grow_the_wait_up_to_the_cap() {
    let clock = ManualClock::default();
    let b = breaker(&clock).build().unwrap();
    for _ in 0..4 {
        call(&b, Outcome::Failure).unwrap();
    }
    let mut waits = Vec::new();
    for _ in 0..3 {
        let wait = b.try_acquire().unwrap_err().retry_after;
        waits.push(wait.as_secs());
        clock.advance(wait);
        call(&b, Outcome::Failure).unwrap();
    }
    assert_eq!(waits, [2, 4, 7]);
    // A success resets the growth.
    clock.advance(Duration::from_secs(7));
    call(&b, Outcome::Success).unwrap();
    for _ in 0..4 {
        call(&b, Outcome::Failure).unwrap();
    }
    assert_eq!(b.try_acquire().unwrap_err().retry_after.as_secs(), 2);
}

#[test]
fn a_dropped_probe_frees_its_slot_and_late_results_are_ignored() {
    let clock = ManualClock::default();
    let b = breaker(&clock).build().unwrap();
    let late = b.try_acquire().unwrap();
    for _ in 0..4 {
        call(&b, Outcome::Failure).unwrap();
    }
    late.record(Outcome::Success);
    assert_eq!(b.state(), BreakerState::Open);
    clock.advance(Duration::from_secs(2));
    drop(b.try_acquire().unwrap());
    assert!(b.try_acquire().unwrap().is_probe(), "the slot came back");
}

#[test]
fn clones_share_one_state_and_reset_closes() {
    let clock = ManualClock::default();
    let b = breaker(&clock).build().unwrap();
    let other = b.clone();
    for _ in 0..4 {
        call(&b, Outcome::Failure).unwrap();
    }
    let open = BreakerOpen {
        retry_after: Duration::from_secs(2),
    };
    assert_eq!(other.try_acquire().err(), Some(open));
    other.reset();
    assert_eq!(b.state(), BreakerState::Closed);
}

#[test]
fn bad_settings_are_config_errors() {
    let clock = ManualClock::default();
    for bad in [
        breaker(&clock).failure_rate(0),
        breaker(&clock).failure_rate(101),
        breaker(&clock).slow_calls(Duration::from_secs(1), 0),
        breaker(&clock).min_calls(0),
        breaker(&clock).probes(0),
        breaker(&clock).window(Window::Count(0)),
        breaker(&clock).window(Window::Time(Duration::ZERO)),
        breaker(&clock).open_wait(Duration::ZERO),
        breaker(&clock).max_open_wait(Duration::from_secs(1)),
    ] {
        let err = bad.build().unwrap_err();
        assert!(err.message().starts_with("circuit breaker test"), "{err}");
    }
}
