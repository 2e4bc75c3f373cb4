//! Building an upstream set.

use std::borrow::Cow;
use std::time::Duration;

use super::health::HealthCheck;
use super::member::Member;
use super::service::{Shared, Upstreams};
use crate::clock::SharedClock;
use crate::error::ConfigError;
use crate::resilience::{CircuitBreaker, RetryBudget, Window};

/// Builds an [`Upstreams`] set; every setting but the members has a default.
///
/// ```
/// use std::convert::Infallible;
/// use bytes::Bytes;
/// use http::{Request, Response};
/// use http_body_util::{Either, Full};
/// use protothrive::resilience::{HealthCheck, Upstreams};
/// use tower::service_fn;
///
/// let instance = service_fn(|_req: Request<Either<Full<Bytes>, String>>| async {
///     Ok::<_, Infallible>(Response::new(String::new()))
/// });
/// let twice = Upstreams::builder().member("a", instance).member("a", instance);
/// let err = twice.build::<String>().err().unwrap();
/// assert_eq!(err.message(), r#"upstreams: two members are named "a"; names are unique"#);
/// let bad_path = Upstreams::builder()
///     .member("a", instance)
///     .health_check(HealthCheck::new("http://elsewhere/health"));
/// let err = bad_path.build::<String>().err().unwrap();
/// assert_eq!(
///     err.message(),
///     "health check \"http://elsewhere/health\": \
///      the path is an origin-form target, starting with `/`",
///     "a path, not a URL"
/// );
/// ```
#[derive(Debug)]
#[must_use]
pub struct UpstreamsBuilder<S> {
    members: Vec<(Cow<'static, str>, S)>,
    clock: Option<SharedClock>,
    eject_after: u32,
    eject_wait: Duration,
    max_eject_wait: Duration,
    health: Option<HealthCheck>,
    budget: Option<RetryBudget>,
    max_attempts: u32,
    max_body: u64,
}

impl<S> Upstreams<S, ()> {
    /// A builder (the set's request body type is chosen by [`build`](UpstreamsBuilder::build)). Defaults: ejected after 5 failures in a row for 30 s (doubling after each
    /// failed probe, up to 300 s), no active checks, 2 attempts per request on distinct members
    /// within a budget of 20% of the requests plus 1 per second, bodies up to 64 KiB replayed.
    pub fn builder() -> UpstreamsBuilder<S> {
        UpstreamsBuilder {
            members: Vec::new(),
            clock: None,
            eject_after: 5,
            eject_wait: Duration::from_secs(30),
            max_eject_wait: Duration::from_secs(300),
            health: None,
            budget: None,
            max_attempts: 2,
            max_body: 64 * 1024,
        }
    }
}

impl<S> UpstreamsBuilder<S> {
    /// Adds a member: `service` calls one instance; `name` (unique) labels its breaker, its
    /// metrics and its [`MemberStatus`](super::MemberStatus).
    pub fn member(mut self, name: impl Into<Cow<'static, str>>, service: S) -> Self {
        self.members.push((name.into(), service));
        self
    }

    /// The clock of the breakers and of the default retry budget (default: the system clock).
    pub fn clock(mut self, clock: SharedClock) -> Self {
        self.clock = Some(clock);
        self
    }

    /// Passive health (Envoy's consecutive-5xx outlier detection): a member whose last
    /// `failures` calls all failed (a 5xx, or an error of its service: connection refused or
    /// reset, a timeout) is ejected for `wait`, then gets one probe; a failed probe ejects it
    /// again for twice as long, up to [`max_eject_wait`](Self::max_eject_wait).
    pub fn eject_after(mut self, failures: u32, wait: Duration) -> Self {
        self.eject_after = failures;
        self.eject_wait = wait;
        self.max_eject_wait = self.max_eject_wait.max(wait);
        self
    }

    /// The longest ejection of a member that keeps failing its probes (default 300 s).
    pub fn max_eject_wait(mut self, max: Duration) -> Self {
        self.max_eject_wait = max;
        self
    }

    /// Active health checks (default: none); run them with
    /// [`Upstreams::spawn_health_checks`] or [`Upstreams::check`].
    pub fn health_check(mut self, check: HealthCheck) -> Self {
        self.health = Some(check);
        self
    }

    /// The budget retries are drawn from (default: 20% of the requests of the last 10 s plus
    /// 1 per second, on the builder's clock).
    pub fn retry_budget(mut self, budget: RetryBudget) -> Self {
        self.budget = Some(budget);
        self
    }

    /// Attempts per request, each on a different member (default 2; 1 disables retries).
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts.max(1);
        self
    }

    /// The largest request body kept for a replay; a request whose body may be larger is sent
    /// once (default 64 KiB).
    pub fn max_body(mut self, bytes: usize) -> Self {
        self.max_body = bytes as u64;
        self
    }

    /// The set.
    ///
    /// # Errors
    /// No member, two members of one name, `eject_after(0, _)`, a zero wait or a maximum below
    /// it, or a [`HealthCheck`] with an invalid path, a zero interval, timeout or threshold.
    pub fn build<B>(self) -> Result<Upstreams<S, B>, ConfigError> {
        if self.members.is_empty() {
            return Err(ConfigError::new("upstreams: add at least one member"));
        }
        for (i, (name, _)) in self.members.iter().enumerate() {
            if self.members[..i].iter().any(|(other, _)| other == name) {
                return Err(ConfigError::new(format!(
                    "upstreams: two members are named {name:?}; names are unique"
                )));
            }
        }
        let mut health = self.health;
        if let Some(check) = &mut health {
            check.validate()?;
        }
        let clock = self.clock.unwrap_or_else(crate::clock::system);
        let mut members = Vec::with_capacity(self.members.len());
        for (name, service) in self.members {
            // All of the last N calls failed: N failures in a row.
            let n = self.eject_after;
            let breaker = CircuitBreaker::builder(format!("upstream {name}"))
                .window(Window::Count(n))
                .min_calls(n)
                .failure_rate(100)
                .open_wait(self.eject_wait)
                .max_open_wait(self.max_eject_wait)
                .clock(clock.clone())
                .build()
                .map_err(|e| ConfigError::new(format!("upstreams: {}", e.message())))?;
            members.push(Member::new(name, service, breaker));
        }
        Ok(Upstreams::from_shared(Shared {
            members,
            budget: self
                .budget
                .unwrap_or_else(|| RetryBudget::new(clock.clone(), 20, 1)),
            max_attempts: self.max_attempts,
            max_body: self.max_body,
            health,
        }))
    }
}
