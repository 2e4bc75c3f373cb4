//! The circuit breaker: a shared state machine on the injected clock, and its tower layer.

use std::borrow::Cow;
use std::fmt;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::clock::{SharedClock, nanos_since};
use crate::error::ConfigError;

use super::Outcome;
use super::window::{Outcomes, Window, reaches};

const CLOSED: u8 = 0;
const OPEN: u8 = 1;
const HALF_OPEN: u8 = 2;

/// The state of a [`CircuitBreaker`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    /// Calls go through; outcomes are counted.
    Closed,
    /// Calls are refused until the wait is over.
    Open,
    /// A bounded number of probes go through; the others are refused.
    HalfOpen,
}

impl BreakerState {
    /// The state's name in metrics and traces: `closed`, `open`, `half_open`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Closed => "closed",
            Self::Open => "open",
            Self::HalfOpen => "half_open",
        }
    }

    fn from_tag(tag: u8) -> Self {
        match tag {
            CLOSED => Self::Closed,
            OPEN => Self::Open,
            _ => Self::HalfOpen,
        }
    }
}

/// A refusal: the breaker is open (or half-open with every probe out).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerOpen {
    /// How long until the breaker lets a probe through (at least the time left of its wait).
    pub retry_after: Duration,
}

/// A circuit breaker shared by every clone: several services (or several stores) that call the
/// same dependency see one state. See the [module docs](super).
///
/// ```
/// use std::time::Duration;
/// use protothrive::clock::ManualClock;
/// use protothrive::resilience::{BreakerOpen, BreakerState, CircuitBreaker, Outcome, Window};
///
/// let clock = ManualClock::default();
/// let breaker = CircuitBreaker::builder("agent")
///     .window(Window::Count(4))
///     .min_calls(4)
///     .failure_rate(50)
///     .open_wait(Duration::from_secs(5))
///     .clock(std::sync::Arc::new(clock.clone()))
///     .build()?;
/// for ok in [true, false, true, false] {
///     let permit = breaker.try_acquire().unwrap();
///     permit.record(if ok { Outcome::Success } else { Outcome::Failure });
/// }
/// let open = breaker.try_acquire().unwrap_err();
/// assert_eq!(open.retry_after, Duration::from_secs(5));
/// clock.advance(Duration::from_secs(5));
/// let probe = breaker.try_acquire().unwrap();
/// let busy = BreakerOpen { retry_after: Duration::from_secs(5) };
/// assert_eq!(breaker.try_acquire().err(), Some(busy), "one probe at a time");
/// probe.record(Outcome::Success);
/// assert_eq!(breaker.state(), BreakerState::Closed, "closed again");
/// # Ok::<(), protothrive::error::ConfigError>(())
/// ```
#[derive(Clone)]
pub struct CircuitBreaker {
    shared: Arc<Shared>,
}

struct Shared {
    name: Cow<'static, str>,
    config: Config,
    clock: SharedClock,
    epoch: Instant,
    /// The state tag, read without the lock on every call.
    state: AtomicU8,
    /// Bumped on every transition: outcomes of calls admitted before it are ignored.
    generation: AtomicU64,
    machine: Mutex<Machine>,
}

#[derive(Debug, Clone, Copy)]
struct Config {
    window: Window,
    failure_rate: u8,
    slow_rate: Option<u8>,
    slow_call: Duration,
    min_calls: u32,
    open_wait: Duration,
    max_open_wait: Duration,
    probes: u32,
}

#[derive(Debug)]
struct Machine {
    state: State,
    outcomes: Outcomes,
    /// Openings since the breaker was last closed: the wait doubles with each.
    opens: u32,
}

#[derive(Debug, Clone, Copy)]
enum State {
    Closed,
    Open { until: u64 },
    HalfOpen { in_flight: u32, successes: u32 },
}

impl fmt::Debug for CircuitBreaker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CircuitBreaker")
            .field("name", &self.shared.name)
            .field("state", &self.state())
            .field("config", &self.shared.config)
            .finish_non_exhaustive()
    }
}

/// Builds a [`CircuitBreaker`]; every setting has a default.
#[derive(Debug)]
#[must_use]
pub struct CircuitBreakerBuilder {
    name: Cow<'static, str>,
    config: Config,
    clock: Option<SharedClock>,
}

impl CircuitBreaker {
    /// A builder for a breaker named `name` (its label in metrics and traces). Defaults: the
    /// last 20 calls, at least 10 of them, 50% failures open it (slow calls not counted), open
    /// for 5 s doubling to 60 s, one probe.
    pub fn builder(name: impl Into<Cow<'static, str>>) -> CircuitBreakerBuilder {
        CircuitBreakerBuilder {
            name: name.into(),
            config: Config {
                window: Window::Count(20),
                failure_rate: 50,
                slow_rate: None,
                slow_call: Duration::from_secs(1),
                min_calls: 10,
                open_wait: Duration::from_secs(5),
                max_open_wait: Duration::from_secs(60),
                probes: 1,
            },
            clock: None,
        }
    }

    /// The breaker's name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// The current state (an open breaker whose wait is over reads `Open` until the next call).
    #[must_use]
    pub fn state(&self) -> BreakerState {
        BreakerState::from_tag(self.shared.state.load(Ordering::Acquire))
    }

    /// Permission for one call, or the time until the breaker may let one through. The call's
    /// outcome goes to [`Permit::record`]; a permit dropped unrecorded counts for nothing.
    ///
    /// # Errors
    /// [`BreakerOpen`] when the breaker refuses the call.
    pub fn try_acquire(&self) -> Result<Permit, BreakerOpen> {
        let s = &*self.shared;
        if s.state.load(Ordering::Acquire) == CLOSED {
            return Ok(self.permit(false, s.generation.load(Ordering::Acquire)));
        }
        let now = s.now();
        let mut m = s.lock();
        let admitted = match m.state {
            State::Closed => Ok(false),
            State::Open { until } if now < until => Err(BreakerOpen {
                retry_after: Duration::from_nanos(until - now),
            }),
            State::Open { .. } => {
                s.transition(
                    &mut m,
                    State::HalfOpen {
                        in_flight: 1,
                        successes: 0,
                    },
                );
                Ok(true)
            }
            State::HalfOpen {
                in_flight,
                successes,
            } if in_flight < s.config.probes => {
                m.state = State::HalfOpen {
                    in_flight: in_flight + 1,
                    successes,
                };
                Ok(true)
            }
            State::HalfOpen { .. } => Err(BreakerOpen {
                retry_after: s.config.open_wait,
            }),
        };
        let generation = s.generation.load(Ordering::Acquire);
        drop(m);
        match admitted {
            Ok(probe) => Ok(self.permit(probe, generation)),
            Err(open) => {
                metrics::counter!("protothrive_breaker_rejected_total", "breaker" => s.name.to_string())
                    .increment(1);
                Err(open)
            }
        }
    }

    /// Closes the breaker now, whatever its state (for a health check that saw the dependency
    /// answer).
    pub fn reset(&self) {
        let s = &*self.shared;
        if s.state.load(Ordering::Acquire) == CLOSED {
            return;
        }
        let mut m = s.lock();
        m.opens = 0;
        s.transition(&mut m, State::Closed);
    }

    fn permit(&self, probe: bool, generation: u64) -> Permit {
        let started = if self.shared.config.slow_rate.is_some() || probe {
            self.shared.now()
        } else {
            0
        };
        Permit {
            breaker: self.clone(),
            probe,
            generation,
            started,
            done: false,
        }
    }
}

impl Shared {
    fn now(&self) -> u64 {
        nanos_since(&*self.clock, self.epoch)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Machine> {
        self.machine.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn transition(&self, m: &mut Machine, to: State) {
        let from = BreakerState::from_tag(self.state.load(Ordering::Acquire));
        m.state = to;
        m.outcomes.clear();
        let (tag, name) = match to {
            State::Closed => (CLOSED, BreakerState::Closed),
            State::Open { .. } => (OPEN, BreakerState::Open),
            State::HalfOpen { .. } => (HALF_OPEN, BreakerState::HalfOpen),
        };
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.state.store(tag, Ordering::Release);
        tracing::info!(
            breaker = %self.name,
            from = from.as_str(),
            to = name.as_str(),
            "circuit breaker state changed"
        );
        metrics::gauge!("protothrive_breaker_state", "breaker" => self.name.to_string())
            .set(f64::from(tag));
        metrics::counter!(
            "protothrive_breaker_transitions_total",
            "breaker" => self.name.to_string(),
            "to" => name.as_str()
        )
        .increment(1);
    }

    fn open(&self, m: &mut Machine, now: u64) {
        let wait = self
            .config
            .open_wait
            .saturating_mul(1u32 << m.opens.min(20))
            .min(self.config.max_open_wait);
        m.opens = m.opens.saturating_add(1);
        let until = now.saturating_add(u64::try_from(wait.as_nanos()).unwrap_or(u64::MAX));
        self.transition(m, State::Open { until });
    }

    fn finish(&self, probe: bool, generation: u64, started: u64, outcome: Outcome) {
        let now = self.now();
        let slow = self.config.slow_rate.is_some()
            && Duration::from_nanos(now.saturating_sub(started)) >= self.config.slow_call;
        let mut m = self.lock();
        if self.generation.load(Ordering::Acquire) != generation {
            // Admitted before the last transition: it says nothing about the dependency now.
            return;
        }
        match (m.state, probe) {
            (
                State::HalfOpen {
                    in_flight,
                    successes,
                },
                true,
            ) => match outcome {
                Outcome::Ignored => {
                    m.state = State::HalfOpen {
                        in_flight: in_flight.saturating_sub(1),
                        successes,
                    };
                }
                Outcome::Success if !slow => {
                    if successes + 1 >= self.config.probes {
                        m.opens = 0;
                        self.transition(&mut m, State::Closed);
                    } else {
                        m.state = State::HalfOpen {
                            in_flight: in_flight.saturating_sub(1),
                            successes: successes + 1,
                        };
                    }
                }
                Outcome::Success | Outcome::Failure => self.open(&mut m, now),
            },
            (State::Closed, false) if outcome != Outcome::Ignored => {
                m.outcomes.record(now, outcome == Outcome::Failure, slow);
                let t = m.outcomes.totals(now);
                let trips = t.calls >= u64::from(self.config.min_calls)
                    && (reaches(t.failures, t.calls, self.config.failure_rate)
                        || self
                            .config
                            .slow_rate
                            .is_some_and(|r| reaches(t.slow, t.calls, r)));
                if trips {
                    self.open(&mut m, now);
                }
            }
            _ => {}
        }
    }
}

/// Permission for one call through a [`CircuitBreaker`]; give it the call's outcome.
#[must_use = "record the call's outcome"]
pub struct Permit {
    breaker: CircuitBreaker,
    probe: bool,
    generation: u64,
    started: u64,
    done: bool,
}

impl fmt::Debug for Permit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Permit")
            .field("probe", &self.probe)
            .finish_non_exhaustive()
    }
}

impl Permit {
    /// Whether this call is a half-open probe.
    #[must_use]
    pub fn is_probe(&self) -> bool {
        self.probe
    }

    /// Records how the call went (its duration, for the slow-call rate, is measured from the
    /// permit's creation).
    pub fn record(mut self, outcome: Outcome) {
        self.done = true;
        self.breaker
            .shared
            .finish(self.probe, self.generation, self.started, outcome);
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        if !self.done && self.probe {
            self.breaker
                .shared
                .finish(true, self.generation, self.started, Outcome::Ignored);
        }
    }
}

impl CircuitBreakerBuilder {
    /// How far back outcomes count (default: the last 20 calls).
    pub fn window(mut self, window: Window) -> Self {
        self.config.window = window;
        self
    }

    /// The failure rate, in percent of the calls in the window, that opens the breaker (1 to
    /// 100; default 50).
    pub fn failure_rate(mut self, percent: u8) -> Self {
        self.config.failure_rate = percent;
        self
    }

    /// Also open when `percent`% of the calls in the window took `threshold` or longer
    /// (default: slow calls do not count). A slow probe counts as a failed one.
    pub fn slow_calls(mut self, threshold: Duration, percent: u8) -> Self {
        self.config.slow_call = threshold;
        self.config.slow_rate = Some(percent);
        self
    }

    /// The fewest calls in the window before any rate counts (default 10).
    pub fn min_calls(mut self, calls: u32) -> Self {
        self.config.min_calls = calls;
        self
    }

    /// How long the breaker stays open the first time (default 5 s); each opening after a
    /// failed probe doubles it, up to `max` (default 60 s; equal to `wait` for a fixed wait).
    pub fn open_wait(mut self, wait: Duration) -> Self {
        self.config.open_wait = wait;
        self.config.max_open_wait = self.config.max_open_wait.max(wait);
        self
    }

    /// The longest wait of a breaker that keeps failing its probes (default 60 s).
    pub fn max_open_wait(mut self, max: Duration) -> Self {
        self.config.max_open_wait = max;
        self
    }

    /// The probes let through at once when half-open, and the successes that close it (default
    /// 1: no herd when the dependency comes back).
    pub fn probes(mut self, probes: u32) -> Self {
        self.config.probes = probes;
        self
    }

    /// The clock (default: the system clock).
    pub fn clock(mut self, clock: SharedClock) -> Self {
        self.clock = Some(clock);
        self
    }

    /// The breaker, closed.
    ///
    /// # Errors
    /// A rate outside 1–100, no calls or probes, an empty window, a zero wait or a maximum
    /// below it.
    pub fn build(self) -> Result<CircuitBreaker, ConfigError> {
        let c = self.config;
        let err = |m: &str| {
            Err(ConfigError::new(format!(
                "circuit breaker {}: {m}",
                self.name
            )))
        };
        if !(1..=100).contains(&c.failure_rate)
            || c.slow_rate.is_some_and(|r| !(1..=100).contains(&r))
        {
            return err("rates are percentages from 1 to 100");
        }
        if c.min_calls == 0 || c.probes == 0 {
            return err("min_calls and probes must be at least 1");
        }
        match c.window {
            Window::Count(0) => return err("a count window holds at least one call"),
            Window::Time(d) if d < Duration::from_nanos(10) => {
                return err("a time window is at least 10 ns long");
            }
            _ => {}
        }
        if c.open_wait.is_zero() || c.max_open_wait < c.open_wait {
            return err("the open wait must be above zero and at most max_open_wait");
        }
        let clock = self.clock.unwrap_or_else(crate::clock::system);
        let epoch = clock.instant();
        Ok(CircuitBreaker {
            shared: Arc::new(Shared {
                name: self.name,
                config: c,
                clock,
                epoch,
                state: AtomicU8::new(CLOSED),
                generation: AtomicU64::new(0),
                machine: Mutex::new(Machine {
                    state: State::Closed,
                    outcomes: Outcomes::new(c.window),
                    opens: 0,
                }),
            }),
        })
    }
}
