//! One member of an upstream set: its service, its breaker, its requests in flight and its
//! active-health state.

use std::borrow::Cow;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};

use crate::resilience::{BreakerState, CircuitBreaker, Outcome};

/// A member of an [`Upstreams`](super::Upstreams) set as it stands, from
/// [`Upstreams::status`](super::Upstreams::status).
///
/// ```
/// use protothrive::resilience::{BreakerState, MemberStatus};
///
/// let fine = MemberStatus { name: "a".into(), breaker: BreakerState::Closed, healthy: true, in_flight: 0 };
/// assert!(fine.in_rotation());
/// let ejected = MemberStatus { breaker: BreakerState::Open, ..fine.clone() };
/// assert!(!ejected.in_rotation());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberStatus {
    /// The member's name, as given to the builder.
    pub name: Cow<'static, str>,
    /// Its breaker: `Open` while ejected (passive health).
    pub breaker: BreakerState,
    /// Whether it passes its active health checks (`true` without checks).
    pub healthy: bool,
    /// Its requests in flight (awaiting a response head).
    pub in_flight: usize,
}

impl MemberStatus {
    /// Whether requests go to it: healthy and not ejected (an `Open` breaker whose wait is over
    /// reads `Open` until its probe).
    #[must_use]
    pub fn in_rotation(&self) -> bool {
        self.healthy && self.breaker != BreakerState::Open
    }
}

pub(super) struct Member<S> {
    pub(super) name: Cow<'static, str>,
    pub(super) service: S,
    pub(super) breaker: CircuitBreaker,
    pending: AtomicUsize,
    healthy: AtomicBool,
    /// Consecutive passed and failed checks.
    streak: Mutex<(u32, u32)>,
}

/// Decrements a member's requests in flight when dropped (the response head arrived, or the
/// call was abandoned).
pub(super) struct InFlight<'a>(&'a AtomicUsize);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl<S> Member<S> {
    pub(super) fn new(name: Cow<'static, str>, service: S, breaker: CircuitBreaker) -> Self {
        Self {
            name,
            service,
            breaker,
            pending: AtomicUsize::new(0),
            healthy: AtomicBool::new(true),
            streak: Mutex::new((0, 0)),
        }
    }

    pub(super) fn healthy(&self) -> bool {
        self.healthy.load(Ordering::Acquire)
    }

    pub(super) fn pending(&self) -> usize {
        self.pending.load(Ordering::Acquire)
    }

    pub(super) fn start(&self) -> InFlight<'_> {
        self.pending.fetch_add(1, Ordering::AcqRel);
        InFlight(&self.pending)
    }

    pub(super) fn status(&self) -> MemberStatus {
        MemberStatus {
            name: self.name.clone(),
            breaker: self.breaker.state(),
            healthy: self.healthy(),
            in_flight: self.pending(),
        }
    }

    /// Counts one active check: `fails` failures in a row take the member out of the rotation,
    /// `passes` passes in a row bring it back. A member ejected by its breaker whose wait is over
    /// takes the check as its probe, so it comes back without risking a client's request.
    pub(super) fn checked(&self, passed: bool, passes: u32, fails: u32) {
        let mut streak = self.streak.lock().unwrap_or_else(PoisonError::into_inner);
        *streak = if passed {
            (streak.0.saturating_add(1), 0)
        } else {
            (0, streak.1.saturating_add(1))
        };
        let flip = if self.healthy() {
            streak.1 >= fails
        } else {
            streak.0 >= passes
        };
        if flip {
            self.healthy.store(passed, Ordering::Release);
            if passed {
                tracing::info!(upstream = %self.name, "upstream passes its health checks again");
            } else {
                tracing::warn!(upstream = %self.name, "upstream fails its health checks");
            }
            metrics::gauge!("protothrive_upstream_healthy", "upstream" => self.name.to_string())
                .set(if passed { 1.0 } else { 0.0 });
        }
        drop(streak);
        if self.breaker.state() != BreakerState::Closed
            && let Ok(probe) = self.breaker.try_acquire()
        {
            probe.record(if passed {
                Outcome::Success
            } else {
                Outcome::Failure
            });
        }
    }
}
