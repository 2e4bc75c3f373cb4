//! Time, injected.
//!
//! Every time-dependent piece of this crate (token expiry, key refresh intervals, rate limits, cache
//! freshness) reads time through a [`Clock`], never through `SystemTime::now` or `Instant::now`
//! directly. Production code uses [`SystemClock`]; tests use [`ManualClock`] and move time by hand, so
//! no test has to sleep to see an expiry.
//!
//! This is the only module allowed to read the wall clock (enforced by `clippy.toml`).
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use protothrive::clock::{Clock, ManualClock};
//!
//! let clock = ManualClock::at_unix(1_700_000_000);
//! assert_eq!(clock.unix_seconds(), 1_700_000_000);
//! let before = clock.instant();
//! clock.advance(Duration::from_secs(90));
//! assert_eq!(clock.unix_seconds(), 1_700_000_090);
//! assert_eq!(clock.instant() - before, Duration::from_secs(90));
//! ```
//!
//! Cost: [`SystemClock`] is one `clock_gettime` (a vDSO call, ~20 ns); [`ManualClock`] is one atomic
//! load.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// A source of wall-clock and monotonic time.
pub trait Clock: Send + Sync + fmt::Debug + 'static {
    /// The current wall-clock time (for `exp`, `nbf`, `Date`, ...).
    fn now(&self) -> SystemTime;

    /// The current monotonic time (for intervals: refresh periods, rate limits, timeouts).
    fn instant(&self) -> Instant;

    /// Whole seconds since the UNIX epoch; 0 for a clock set before 1970.
    fn unix_seconds(&self) -> u64 {
        self.now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    }
}

/// A cheaply clonable, shared clock.
pub type SharedClock = Arc<dyn Clock>;

/// The operating system's clocks.
///
/// ```
/// use protothrive::clock::{Clock, SystemClock};
/// assert!(SystemClock.unix_seconds() > 1_600_000_000);
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    #[allow(clippy::disallowed_methods)]
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }

    #[allow(clippy::disallowed_methods)]
    fn instant(&self) -> Instant {
        Instant::now()
    }
}

/// The default clock of every layer: [`SystemClock`] behind an `Arc`.
///
/// ```
/// use protothrive::clock::{system, Clock};
/// assert!(system().unix_seconds() > 0);
/// ```
#[must_use]
pub fn system() -> SharedClock {
    Arc::new(SystemClock)
}

/// Nanoseconds on `clock`'s monotonic time since `epoch` (0 before it, `u64::MAX` after ~584
/// years): the integer time of the rate limiter and the circuit breaker.
#[cfg_attr(
    not(any(feature = "rate-limit", feature = "redis", feature = "resilience")),
    allow(dead_code)
)]
pub(crate) fn nanos_since(clock: &dyn Clock, epoch: Instant) -> u64 {
    u64::try_from(clock.instant().saturating_duration_since(epoch).as_nanos()).unwrap_or(u64::MAX)
}

/// A clock that only moves when told to, for tests.
///
/// Clones share the same time, so a test keeps one handle and gives another to the layer under test.
///
/// ```
/// use std::time::Duration;
/// use protothrive::clock::{Clock, ManualClock};
///
/// let clock = ManualClock::at_unix(100);
/// let shared = clock.clone();
/// clock.advance(Duration::from_millis(1500));
/// assert_eq!(shared.unix_seconds(), 101);
/// ```
#[derive(Clone)]
pub struct ManualClock {
    inner: Arc<ManualInner>,
}

struct ManualInner {
    base_instant: Instant,
    base_unix: Duration,
    offset_nanos: AtomicU64,
}

impl ManualClock {
    /// A clock reading `unix_seconds` seconds after the UNIX epoch.
    #[must_use]
    #[allow(clippy::disallowed_methods)]
    pub fn at_unix(unix_seconds: u64) -> Self {
        Self {
            inner: Arc::new(ManualInner {
                base_instant: Instant::now(),
                base_unix: Duration::from_secs(unix_seconds),
                offset_nanos: AtomicU64::new(0),
            }),
        }
    }

    /// Moves time forward by `by` (both the wall clock and the monotonic clock).
    pub fn advance(&self, by: Duration) {
        let nanos = u64::try_from(by.as_nanos()).unwrap_or(u64::MAX);
        self.inner.offset_nanos.fetch_add(nanos, Ordering::SeqCst);
    }

    fn offset(&self) -> Duration {
        Duration::from_nanos(self.inner.offset_nanos.load(Ordering::SeqCst))
    }
}

impl Default for ManualClock {
    /// A clock at 2023-11-14T22:13:20Z (UNIX time 1 700 000 000).
    fn default() -> Self {
        Self::at_unix(1_700_000_000)
    }
}

impl fmt::Debug for ManualClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ManualClock")
            .field("unix", &(self.inner.base_unix + self.offset()))
            .finish()
    }
}

impl Clock for ManualClock {
    fn now(&self) -> SystemTime {
        UNIX_EPOCH + self.inner.base_unix + self.offset()
    }

    fn instant(&self) -> Instant {
        self.inner.base_instant + self.offset()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_when_advanced() {
        let clock = ManualClock::at_unix(10);
        let a = clock.instant();
        assert_eq!(clock.instant(), a);
        clock.advance(Duration::from_nanos(1));
        assert!(clock.instant() > a);
        assert_eq!(clock.unix_seconds(), 10);
    }

    #[test]
    fn clock_before_epoch_reads_zero_seconds() {
        #[derive(Debug)]
        struct Before;
        impl Clock for Before {
            fn now(&self) -> SystemTime {
                UNIX_EPOCH - Duration::from_secs(5)
            }
            fn instant(&self) -> Instant {
                ManualClock::default().instant()
            }
        }
        assert_eq!(Before.unix_seconds(), 0);
    }
}
