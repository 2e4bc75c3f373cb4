//! Liveness and readiness: named dependency checks (a database, Redis, an upstream), each run
//! with its own timeout, all at once, into a report an orchestrator and a human can both read.
//!
//! Guarantees:
//! * [`Health::liveness`] never touches a dependency: a process that answers is alive (a
//!   liveness probe that fails when the database is down makes the orchestrator restart every
//!   replica at once, which cures nothing).
//! * [`Health::readiness`] runs every check concurrently, each bounded by its timeout (a hung
//!   check reports `timeout`, it never holds the probe); a check that panics reports `down`.
//!   The probe takes as long as its slowest check, at most the largest timeout.
//! * The status is `ready` when every check is up, `degraded` when only [optional] checks are
//!   not (answer `200`: the service still does its job), `not_ready` when a required one is not
//!   (answer `503`: take this replica out of the load balancer).
//! * Error messages are for operators but may reach anyone who can call the probe: the userinfo
//!   of a URL (`redis://:secret@host`) and `password=`-style values are replaced by `***`, and a
//!   message is cut at 200 characters; [`HealthBuilder::hide_errors`] leaves them out.
//! * Latency is measured on the injected [`Clock`](crate::clock::Clock); timeouts run on tokio's
//!   timer (so tests drive both by hand: a manual clock, tokio's paused time).
//!
//! Why by hand: the health-check crates either serve their own HTTP endpoint or run checks on a
//! background schedule; this is the part in between — concurrent bounded checks and a
//! serialisable report, over tokio's `JoinSet` and `timeout`.
//!
//! Cost: one spawned task and one boxed future per check per probe.
//!
//! [optional]: HealthBuilder::optional
//!
//! ```
//! use std::time::Duration;
//! use protothrive::health::{CheckState, Health, Status};
//!
//! let health = Health::builder()
//!     .check("database", Duration::from_secs(2), || async { Ok::<_, String>(()) })
//!     .optional("redis", Duration::from_millis(100), || async {
//!         Err("connection refused (redis://:hunter2@10.0.0.7:6379)")
//!     })
//!     .build()?;
//! let rt = tokio::runtime::Builder::new_current_thread().enable_time().build()?;
//! let report = rt.block_on(health.readiness());
//! assert_eq!(report.status(), Status::Degraded);
//! assert_eq!(report.http_status(), http::StatusCode::OK);
//! let redis = report.check("redis").unwrap();
//! assert_eq!(redis.state, CheckState::Down);
//! assert_eq!(redis.error.as_deref(), Some("connection refused (redis://***@10.0.0.7:6379)"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::borrow::Cow;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use crate::clock::{self, SharedClock};
use crate::error::ConfigError;

mod report;

use report::redact;
pub use report::{CheckReport, CheckState, Liveness, Report, Status};

/// A dependency check: any `Fn() -> impl Future<Output = Result<(), E>>` with a displayable
/// error (a closure around a client), or a type of its own.
///
/// ```
/// use std::future::Future;
/// use std::pin::Pin;
/// use protothrive::health::Probe;
///
/// struct AlwaysUp;
/// impl Probe for AlwaysUp {
///     fn probe(&self) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send>> {
///         Box::pin(async { Ok(()) })
///     }
/// }
/// let _h = protothrive::health::Health::builder()
///     .check("up", std::time::Duration::from_secs(1), AlwaysUp)
///     .build()?;
/// # Ok::<(), protothrive::error::ConfigError>(())
/// ```
pub trait Probe: Send + Sync + 'static {
    /// One check: `Ok` when the dependency answers, else why not.
    fn probe(&self) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send>>;
}

impl<F, Fut, E> Probe for F
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), E>> + Send + 'static,
    E: fmt::Display,
{
    fn probe(&self) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send>> {
        let fut = self();
        Box::pin(async move { fut.await.map_err(|e| e.to_string()) })
    }
}

struct Check {
    name: Cow<'static, str>,
    timeout: Duration,
    required: bool,
    probe: Arc<dyn Probe>,
}

impl fmt::Debug for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Check")
            .field("name", &self.name)
            .field("timeout", &self.timeout)
            .field("required", &self.required)
            .finish_non_exhaustive()
    }
}

/// Named dependency checks and the clock their latency is measured on. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Health {
    checks: Arc<[Check]>,
    clock: SharedClock,
    started: std::time::Instant,
    hide_errors: bool,
}

/// Builds a [`Health`]. See [`Health::builder`].
#[derive(Debug)]
#[must_use]
pub struct HealthBuilder {
    checks: Vec<Check>,
    clock: Option<SharedClock>,
    hide_errors: bool,
}

impl Health {
    /// A builder with no check (an empty readiness report is `ready`).
    ///
    /// ```
    /// let h = protothrive::health::Health::builder().build()?;
    /// # let _ = h;
    /// # Ok::<(), protothrive::error::ConfigError>(())
    /// ```
    pub fn builder() -> HealthBuilder {
        HealthBuilder {
            checks: Vec::new(),
            clock: None,
            hide_errors: false,
        }
    }

    /// Liveness: `alive`, with the seconds since the `Health` was built. Touches no dependency.
    ///
    /// ```
    /// let h = protothrive::health::Health::builder().build()?;
    /// assert_eq!(h.liveness().status, "alive");
    /// # Ok::<(), protothrive::error::ConfigError>(())
    /// ```
    #[must_use]
    pub fn liveness(&self) -> Liveness {
        Liveness {
            status: "alive",
            uptime_seconds: self
                .clock
                .instant()
                .saturating_duration_since(self.started)
                .as_secs(),
        }
    }

    /// Readiness: every check at once, each within its timeout.
    ///
    /// Needs a tokio runtime with time enabled (the checks are spawned on it).
    pub async fn readiness(&self) -> Report {
        let mut set = tokio::task::JoinSet::new();
        for (i, check) in self.checks.iter().enumerate() {
            let (probe, timeout, clock) =
                (Arc::clone(&check.probe), check.timeout, self.clock.clone());
            set.spawn(async move {
                let start = clock.instant();
                let result = tokio::time::timeout(timeout, probe.probe()).await;
                let latency = clock.instant().saturating_duration_since(start);
                (i, result, latency)
            });
        }
        let mut outcomes: Vec<Option<CheckReport>> = self.checks.iter().map(|_| None).collect();
        while let Some(joined) = set.join_next().await {
            // A check that panicked is `down`; its slot stays empty and is filled below.
            let Ok((i, result, latency)) = joined else {
                continue;
            };
            let check = &self.checks[i];
            let (state, error) = match result {
                Ok(Ok(())) => (CheckState::Up, None),
                Ok(Err(e)) => (CheckState::Down, Some(redact(&e))),
                Err(_) => (
                    CheckState::Timeout,
                    Some(format!("no answer within {} ms", check.timeout.as_millis())),
                ),
            };
            outcomes[i] = Some(self.report(check, state, latency, error));
        }
        let checks: Vec<CheckReport> = outcomes
            .into_iter()
            .zip(self.checks.iter())
            .map(|(o, check)| {
                o.unwrap_or_else(|| {
                    let error = Some("the check panicked".to_owned());
                    self.report(check, CheckState::Down, Duration::ZERO, error)
                })
            })
            .collect();
        let status = if checks.iter().all(|c| c.state == CheckState::Up) {
            Status::Ready
        } else if checks
            .iter()
            .all(|c| c.state == CheckState::Up || !c.required)
        {
            Status::Degraded
        } else {
            Status::NotReady
        };
        Report { status, checks }
    }

    fn report(
        &self,
        check: &Check,
        state: CheckState,
        latency: Duration,
        error: Option<String>,
    ) -> CheckReport {
        CheckReport {
            name: check.name.clone(),
            state,
            required: check.required,
            latency,
            error: if self.hide_errors { None } else { error },
        }
    }
}

impl HealthBuilder {
    /// A required check: the service is `not_ready` unless it answers `Ok` within `timeout`.
    ///
    /// ```
    /// use std::time::Duration;
    /// let h = protothrive::health::Health::builder()
    ///     .check("database", Duration::from_secs(1), || async { Ok::<_, &str>(()) })
    ///     .build()?;
    /// # let _ = h;
    /// # Ok::<(), protothrive::error::ConfigError>(())
    /// ```
    pub fn check(
        self,
        name: impl Into<Cow<'static, str>>,
        timeout: Duration,
        probe: impl Probe,
    ) -> Self {
        self.add(name.into(), timeout, true, Arc::new(probe))
    }

    /// An optional check: when it is not up the service is `degraded`, still `200`.
    ///
    /// ```
    /// use std::time::Duration;
    /// let h = protothrive::health::Health::builder()
    ///     .optional("redis", Duration::from_millis(100), || async { Ok::<_, &str>(()) })
    ///     .build()?;
    /// # let _ = h;
    /// # Ok::<(), protothrive::error::ConfigError>(())
    /// ```
    pub fn optional(
        self,
        name: impl Into<Cow<'static, str>>,
        timeout: Duration,
        probe: impl Probe,
    ) -> Self {
        self.add(name.into(), timeout, false, Arc::new(probe))
    }

    fn add(
        mut self,
        name: Cow<'static, str>,
        timeout: Duration,
        required: bool,
        probe: Arc<dyn Probe>,
    ) -> Self {
        self.checks.push(Check {
            name,
            timeout,
            required,
            probe,
        });
        self
    }

    /// The clock latency is measured on (default: the system clock).
    ///
    /// ```
    /// let _b = protothrive::health::Health::builder().clock(protothrive::clock::system());
    /// ```
    pub fn clock(mut self, clock: SharedClock) -> Self {
        self.clock = Some(clock);
        self
    }

    /// Leaves error messages out of reports (for a probe reachable from outside).
    ///
    /// ```
    /// let _b = protothrive::health::Health::builder().hide_errors();
    /// ```
    pub fn hide_errors(mut self) -> Self {
        self.hide_errors = true;
        self
    }

    /// The checks.
    ///
    /// # Errors
    /// [`ConfigError`] for an empty or repeated name, or a zero timeout.
    ///
    /// ```
    /// use std::time::Duration;
    /// use protothrive::health::Health;
    /// let ok = || async { Ok::<_, &str>(()) };
    /// let err = Health::builder()
    ///     .check("db", Duration::from_secs(1), ok)
    ///     .optional("db", Duration::from_secs(1), ok)
    ///     .build()
    ///     .unwrap_err();
    /// assert!(err.message().contains("`db`"));
    /// ```
    pub fn build(self) -> Result<Health, ConfigError> {
        for (i, c) in self.checks.iter().enumerate() {
            if c.name.is_empty() {
                return Err(ConfigError::new("health: a check needs a name"));
            }
            if c.timeout.is_zero() {
                return Err(ConfigError::new(format!(
                    "health: the check `{}` has a zero timeout; give it the longest wait a probe may take",
                    c.name
                )));
            }
            if self.checks[..i].iter().any(|o| o.name == c.name) {
                return Err(ConfigError::new(format!(
                    "health: the check `{}` is registered twice; names identify checks in the report",
                    c.name
                )));
            }
        }
        let clock = self.clock.unwrap_or_else(clock::system);
        Ok(Health {
            checks: self.checks.into(),
            started: clock.instant(),
            clock,
            hide_errors: self.hide_errors,
        })
    }
}

#[cfg(test)]
mod tests;
