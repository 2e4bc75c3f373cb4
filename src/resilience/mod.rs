//! Resilience (feature `resilience`): a circuit breaker, budgeted retries, timeouts with
//! deadlines, and priority load shedding — tower layers for both sides of a service: around
//! handlers (inside the route's cache, so a refusal can be answered from a stale entry) and
//! around outbound clients.
//!
//! | layer | guarantees | answers itself with |
//! |---|---|---|
//! | [`CircuitBreakerLayer`] over a shared [`CircuitBreaker`] | opens on a failure rate or a slow-call rate over a count- or time-based [`Window`] once it holds `min_calls`; stays open for a wait that doubles after each failed probe; half-open lets a bounded number of probes through; a client's 4xx never counts ([`Classify`]) | 503 `CIRCUIT-503` + `Retry-After`, inner service not called |
//! | [`RetryLayer`] with a [`RetryBudget`] | retries only idempotent methods or requests with an `Idempotency-Key`, whose body is known to fit the replay buffer; only 502/503/504 and transport errors; retries ≤ a fraction of recent requests; exponential backoff with full jitter; honours `Retry-After`; never waits past the [`Deadline`] | nothing (the last answer) |
//! | [`TimeoutLayer`] | bounds each call (per attempt inside a retry, overall outside it) and puts the [`Deadline`] in the request for the calls inside | 504 `TIMEOUT-504` (outbound) or 503 `TIMEOUT-503` (handler) |
//! | [`LoadShedLayer`] | a concurrency limit shared by every clone, fixed or adaptive (AIMD on latency: lowered while answers are slower than a target); anonymous callers are shed first, then authenticated ones, admins last | 503 `LOAD-503` + `Retry-After`, before any work |
//! | [`FallbackLayer`] | a configured answer instead of a 5xx, an error or a refusal | the fallback, marked `fallback: <reason>` |
//! | [`Upstreams`] | several instances of one upstream: power of two choices on requests in flight, ejection by a breaker per instance, active health checks, idempotent requests retried on another instance within a budget ([module](upstreams)) | 503 `UPSTREAM-503` + `Retry-After` when no instance may be called |
//!
//! Fallback order on a cached route: the route's breaker (or timeout) goes *inside* the cache,
//! so a refusal is answered from a stale entry when the entry allows `stale-if-error` (marked by
//! its `Cache-Status`: `fwd=stale; fwd-status=503; detail=stale-if-error`); a
//! [`FallbackLayer`] outside the cache answers when there is no such entry (marked by the
//! [`FALLBACK`] header). Neither uses the obsolete `Warning` header.
//!
//! Every answer a layer makes itself carries a [`Refused`] response extension, so an outbound
//! caller tells "the breaker refused" from "the dependency answered 503" without parsing.
//!
//! Why by hand: `tower::retry` has a budget and `tower::limit` a concurrency limit, and
//! tower-resilience has a breaker, but none reads time from an injected [`Clock`](crate::clock),
//! answers with problem responses, sheds by caller priority, or shares a breaker between a
//! layer and a non-HTTP client (the Redis stores use the same [`CircuitBreaker`]).
//!
//! ```
//! use std::convert::Infallible;
//! use std::time::Duration;
//! use http::{Request, Response, StatusCode};
//! use protothrive::resilience::{CircuitBreaker, CircuitBreakerLayer, Window};
//! use tower::{service_fn, ServiceBuilder, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let breaker = CircuitBreaker::builder("origin").window(Window::Count(2)).min_calls(2).build()?;
//! let svc = ServiceBuilder::new()
//!     .layer(CircuitBreakerLayer::new(breaker.clone()))
//!     .service(service_fn(|_req: Request<()>| async {
//!         Ok::<_, Infallible>(Response::builder().status(500).body(String::new()).unwrap())
//!     }));
//! for _ in 0..2 {
//!     assert_eq!(svc.clone().oneshot(Request::new(())).await?.status(), 500);
//! }
//! let refused = svc.oneshot(Request::new(())).await?;
//! assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);
//! assert_eq!(refused.headers()["retry-after"], "5");
//! # Ok(())
//! # }
//! ```
//!
//! Cost: a closed breaker is one atomic load and a reference count per call, plus a short
//! uncontended lock to record the outcome; the retry layer buffers replayable bodies (up to its
//! limit) and clones the request's parts per attempt; the timeout layer is one tokio timer; the
//! load shedder is two atomic operations, and with an adaptive limit two clock reads and a short
//! uncontended lock per answer.

mod adaptive;
mod bounds;
mod breaker;
mod fallback;
mod layer;
mod retry;
mod shed;
mod timeout;
pub mod upstreams;
mod window;

use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};

pub use crate::backoff::backoff;
pub use bounds::{ReplayBody, ReplayService};
pub use breaker::{BreakerOpen, BreakerState, CircuitBreaker, CircuitBreakerBuilder, Permit};
pub use fallback::{FALLBACK, Fallback, FallbackFuture, FallbackLayer};
#[allow(deprecated)]
pub use layer::{Breaker, BreakerFuture, CircuitBreakerLayer, CircuitBreakerService};
pub use retry::{Retry, RetryBudget, RetryLayer};
pub use shed::{LoadShed, LoadShedBuilder, LoadShedLayer, Priority, ShedFuture};
pub use timeout::{Timeout, TimeoutFuture, TimeoutLayer};
pub use upstreams::{HealthCheck, HealthChecks, MemberStatus, Upstreams, UpstreamsBuilder};
pub use window::Window;

use crate::clock::Clock;
use crate::error::Problem;

/// How a call went, for a [`CircuitBreaker`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The dependency did its job (a 2xx, 3xx or the client's 4xx).
    Success,
    /// The dependency failed (a 5xx, a timeout, a transport error).
    Failure,
    /// Says nothing about the dependency (the call was cancelled, or the request was malformed
    /// before it left).
    Ignored,
}

/// What counts as a failure of the service behind a [`CircuitBreakerLayer`].
///
/// A closure `Fn(Result<&Response<B>, &E>) -> Outcome` is one; the default is [`ServerErrors`].
pub trait Classify<B, E> {
    /// The outcome of one call.
    fn classify(&self, result: Result<&Response<B>, &E>) -> Outcome;
}

impl<B, E, F> Classify<B, E> for F
where
    F: Fn(Result<&Response<B>, &E>) -> Outcome,
{
    fn classify(&self, result: Result<&Response<B>, &E>) -> Outcome {
        self(result)
    }
}

/// The default [`Classify`]: a 5xx answer, a timeout (504 from [`TimeoutLayer`]) or an error of
/// the inner service is a failure; everything else, the client's 4xx included, a success.
///
/// ```
/// use http::Response;
/// use protothrive::resilience::{Classify, Outcome, ServerErrors};
///
/// let r = |s: u16| Response::builder().status(s).body(()).unwrap();
/// assert_eq!(Classify::<(), ()>::classify(&ServerErrors, Ok(&r(503))), Outcome::Failure);
/// assert_eq!(Classify::<(), ()>::classify(&ServerErrors, Ok(&r(404))), Outcome::Success);
/// assert_eq!(Classify::<(), ()>::classify(&ServerErrors, Err(&())), Outcome::Failure);
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct ServerErrors;

impl<B, E> Classify<B, E> for ServerErrors {
    fn classify(&self, result: Result<&Response<B>, &E>) -> Outcome {
        match result {
            Ok(res) if res.status().is_server_error() => Outcome::Failure,
            Ok(_) => Outcome::Success,
            Err(_) => Outcome::Failure,
        }
    }
}

/// Why a resilience layer answered by itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// A [`CircuitBreaker`] is open.
    BreakerOpen,
    /// A [`LoadShedLayer`] shed the request.
    Overloaded,
    /// A [`TimeoutLayer`]'s deadline passed.
    Timeout,
}

/// The response extension of every answer a resilience layer made itself.
///
/// ```
/// use protothrive::resilience::{Reason, Refused};
/// let res = http::Response::new(());
/// assert!(res.extensions().get::<Refused>().is_none(), "the dependency's own answer");
/// # let _ = Reason::Timeout;
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused {
    /// Which layer refused, and why.
    pub reason: Reason,
    /// When to try again, if the layer knows.
    pub retry_after: Option<Duration>,
}

/// The response extension of an answer made without the request reaching the upstream: the
/// connection was refused or never made, so nothing of the request was sent. Sending it
/// elsewhere cannot repeat its effect, whatever its method: [`Upstreams`] retries such a request
/// on another member even when it is a `POST` without an `Idempotency-Key` (Envoy's
/// `connect-failure` retry). A client service puts it on the answer it makes for such an error.
///
/// ```
/// use protothrive::resilience::NotSent;
/// let mut refused = http::Response::new(());
/// *refused.status_mut() = http::StatusCode::BAD_GATEWAY;
/// refused.extensions_mut().insert(NotSent);
/// assert!(refused.extensions().get::<NotSent>().is_some());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotSent;

/// The deadline of a request, on the [`Clock`]'s monotonic time: set by [`TimeoutLayer`] (the
/// earlier of its own and any outer one), read by the calls inside — [`RetryLayer`] never waits
/// past it, and a handler can bound its own outbound calls by [`Deadline::remaining`].
///
/// ```
/// use std::time::Duration;
/// use protothrive::clock::{Clock, ManualClock};
/// use protothrive::resilience::Deadline;
///
/// let clock = ManualClock::default();
/// let deadline = Deadline::after(&clock, Duration::from_secs(2));
/// clock.advance(Duration::from_millis(500));
/// assert_eq!(deadline.remaining(&clock), Duration::from_millis(1500));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Deadline(pub Instant);

impl Deadline {
    /// `timeout` from now.
    #[must_use]
    pub fn after(clock: &dyn Clock, timeout: Duration) -> Self {
        Self(clock.instant() + timeout)
    }

    /// The time left (zero once passed).
    #[must_use]
    pub fn remaining(&self, clock: &dyn Clock) -> Duration {
        self.0.saturating_duration_since(clock.instant())
    }
}

/// `Retry-After` in whole seconds, rounded up, at least 1.
fn retry_after_value(d: Duration) -> HeaderValue {
    let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    crate::headers::number(secs.max(1))
}

/// A problem answer of a resilience layer, marked with [`Refused`].
fn refusal(
    status: StatusCode,
    code: &'static str,
    detail: &'static str,
    reason: Reason,
    retry_after: Option<Duration>,
    extensions: &http::Extensions,
) -> Response<Bytes> {
    let mut problem = Problem::new(status, code).with_detail(detail);
    if let Some(d) = retry_after {
        problem = problem.with_header(header::RETRY_AFTER, retry_after_value(d));
    }
    let mut res = problem.render_for(extensions);
    res.extensions_mut().insert(Refused {
        reason,
        retry_after,
    });
    res
}

#[cfg(test)]
mod breaker_tests;
#[cfg(test)]
mod tests;
