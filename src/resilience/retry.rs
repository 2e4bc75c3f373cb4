//! Budgeted retries: a retry budget on the injected clock, full-jitter backoff, and the layer.

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body::Body;
use http_body_util::{BodyExt, Either, Full};
use tower_layer::Layer;
use tower_service::Service;

use super::bounds::{BoxFuture, ReplayBody, ReplayService};
use super::{Deadline, Reason, Refused};
use crate::backoff::{backoff, random_u64, retry_after};
use crate::clock::SharedClock;
use crate::error::{Problem, code};
use crate::response::ResponseBody;

/// Seconds in the budget's sliding window (one bucket each).
const WINDOW_SECS: u64 = 10;

/// Retries may add at most `percent`% to the requests of the last 10 seconds, plus a floor of
/// `min_per_sec` per second so a quiet service can retry at all — Envoy's `retry_budget` and
/// tower's `TpsBudget`, on the injected clock. Clones share the budget.
///
/// ```
/// use std::sync::Arc;
/// use protothrive::clock::ManualClock;
/// use protothrive::resilience::RetryBudget;
///
/// let budget = RetryBudget::new(Arc::new(ManualClock::default()), 20, 0);
/// for _ in 0..10 {
///     budget.deposit();
/// }
/// assert!(budget.try_withdraw());
/// assert!(budget.try_withdraw());
/// assert!(!budget.try_withdraw(), "20% of 10 requests is 2 retries");
/// ```
#[derive(Clone)]
pub struct RetryBudget {
    inner: Arc<BudgetInner>,
}

struct BudgetInner {
    percent: u32,
    min_per_sec: u32,
    clock: SharedClock,
    epoch: Instant,
    buckets: Mutex<[Bucket; WINDOW_SECS as usize]>,
}

#[derive(Debug, Clone, Copy, Default)]
struct Bucket {
    second: u64,
    deposits: u64,
    withdrawals: u64,
}

impl fmt::Debug for RetryBudget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RetryBudget")
            .field("percent", &self.inner.percent)
            .field("min_per_sec", &self.inner.min_per_sec)
            .finish_non_exhaustive()
    }
}

impl RetryBudget {
    /// Retries of up to `percent`% of the requests of the last 10 s, and at least `min_per_sec`
    /// per second, with time from `clock`.
    #[must_use]
    pub fn new(clock: SharedClock, percent: u32, min_per_sec: u32) -> Self {
        let epoch = clock.instant();
        Self {
            inner: Arc::new(BudgetInner {
                percent,
                min_per_sec,
                clock,
                epoch,
                buckets: Mutex::new([Bucket::default(); WINDOW_SECS as usize]),
            }),
        }
    }

    /// The budget's clock.
    #[must_use]
    pub fn clock(&self) -> &SharedClock {
        &self.inner.clock
    }

    fn with_bucket<T>(&self, f: impl FnOnce(&mut [Bucket; WINDOW_SECS as usize], u64) -> T) -> T {
        let second = self
            .inner
            .clock
            .instant()
            .saturating_duration_since(self.inner.epoch)
            .as_secs();
        let mut buckets = self
            .inner
            .buckets
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let b = &mut buckets[(second % WINDOW_SECS) as usize];
        if b.second != second {
            *b = Bucket {
                second,
                ..Bucket::default()
            };
        }
        f(&mut buckets, second)
    }

    /// Records a request (its first attempt), which earns `percent`% of a retry.
    pub fn deposit(&self) {
        self.with_bucket(|b, s| b[(s % WINDOW_SECS) as usize].deposits += 1);
    }

    /// Takes one retry out of the budget; `false` when it is spent.
    #[must_use]
    pub fn try_withdraw(&self) -> bool {
        let (percent, floor) = (self.inner.percent, self.inner.min_per_sec);
        self.with_bucket(|buckets, second| {
            let (deposits, withdrawals) = buckets
                .iter()
                .filter(|b| b.second <= second && b.second + WINDOW_SECS > second)
                .fold((0u64, 0u64), |(d, w), b| {
                    (d + b.deposits, w + b.withdrawals)
                });
            let allowance = u64::from(floor) * WINDOW_SECS + deposits * u64::from(percent) / 100;
            if withdrawals >= allowance {
                return false;
            }
            buckets[(second % WINDOW_SECS) as usize].withdrawals += 1;
            true
        })
    }
}

/// Retries failed calls within a [`RetryBudget`]; see the [module docs](super).
///
/// The inner service gets the body as `Either<Full<Bytes>, B>`: the buffered copy when the
/// request may be retried, the original otherwise.
///
/// ```
/// use std::sync::Arc;
/// use std::time::Duration;
/// use protothrive::clock::system;
/// use protothrive::resilience::{RetryBudget, RetryLayer};
///
/// let layer = RetryLayer::new(RetryBudget::new(system(), 20, 1))
///     .max_attempts(3)
///     .backoff(Duration::from_millis(50), Duration::from_secs(1))
///     .max_body(64 * 1024);
/// # let _ = layer;
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct RetryLayer {
    config: Arc<Config>,
}

#[derive(Debug, Clone)]
struct Config {
    budget: RetryBudget,
    max_attempts: u32,
    base: Duration,
    cap: Duration,
    max_body: u64,
}

impl RetryLayer {
    /// Retries within `budget` (its clock is the layer's): at most 3 attempts, backoff from
    /// 100 ms capped at 2 s, bodies up to 64 KiB replayed.
    pub fn new(budget: RetryBudget) -> Self {
        Self {
            config: Arc::new(Config {
                budget,
                max_attempts: 3,
                base: Duration::from_millis(100),
                cap: Duration::from_secs(2),
                max_body: 64 * 1024,
            }),
        }
    }

    /// Attempts per request, the first included (1 disables retries).
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        Arc::make_mut(&mut self.config).max_attempts = attempts.max(1);
        self
    }

    /// The backoff's base and cap.
    pub fn backoff(mut self, base: Duration, cap: Duration) -> Self {
        let c = Arc::make_mut(&mut self.config);
        (c.base, c.cap) = (base, cap.max(base));
        self
    }

    /// The largest body kept for replay; a request whose body may be larger is sent once.
    pub fn max_body(mut self, bytes: usize) -> Self {
        Arc::make_mut(&mut self.config).max_body = bytes as u64;
        self
    }
}

impl<S> Layer<S> for RetryLayer {
    type Service = Retry<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Retry {
            inner,
            config: self.config.clone(),
        }
    }
}

/// The service of [`RetryLayer`].
#[derive(Debug, Clone)]
pub struct Retry<S> {
    inner: S,
    config: Arc<Config>,
}

impl<S> Retry<S> {
    crate::macros::inner_service_accessors!();
}

impl<S, B> Service<Request<B>> for Retry<S>
where
    S: ReplayService<B>,
    B: ReplayBody,
{
    type Response = Response<ResponseBody<S::ResBody>>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        // The ready clone goes first; the clone left behind becomes ready on its next poll.
        let ready = self.inner.clone();
        let svc = std::mem::replace(&mut self.inner, ready);
        let config = self.config.clone();
        Box::pin(run(svc, config, req))
    }
}

/// Whether a request may be sent twice: an idempotent method, or an `Idempotency-Key`.
pub(super) fn replayable(method: &Method, headers: &HeaderMap) -> bool {
    method.is_idempotent() || headers.contains_key("idempotency-key")
}

/// Whether an answer is worth retrying: 502, 503 or 504, unless an open breaker said it.
pub(super) fn retryable<B>(res: &Response<B>) -> bool {
    matches!(
        res.status(),
        StatusCode::BAD_GATEWAY | StatusCode::SERVICE_UNAVAILABLE | StatusCode::GATEWAY_TIMEOUT
    ) && res
        .extensions()
        .get::<Refused>()
        .is_none_or(|r| r.reason != Reason::BreakerOpen)
}

/// Whether a request is to be buffered for replay: more than one attempt allowed, a body known to
/// fit in `max_body` bytes, and [`replayable`].
pub(super) fn replays<B: Body>(req: &Request<B>, max_attempts: u32, max_body: u64) -> bool {
    max_attempts > 1 && fits(req, max_body) && replayable(req.method(), req.headers())
}

/// Whether a request's body is known to fit in `max_body` bytes.
pub(super) fn fits<B: Body>(req: &Request<B>, max_body: u64) -> bool {
    req.body()
        .size_hint()
        .upper()
        .is_some_and(|n| n <= max_body)
}

/// The request's parts and its whole body, or the `400` problem for a body that failed to arrive.
pub(super) async fn buffer<B, R>(
    req: Request<B>,
) -> Result<(http::request::Parts, Bytes), Response<ResponseBody<R>>>
where
    B: Body<Data = Bytes>,
{
    let (parts, body) = req.into_parts();
    match body.collect().await {
        Ok(collected) => Ok((parts, collected.to_bytes())),
        Err(_) => {
            let problem = Problem::new(StatusCode::BAD_REQUEST, code::BAD_REQUEST)
                .with_detail("The request body could not be read.")
                .render_for(&parts.extensions);
            Err(ResponseBody::map_problem(problem))
        }
    }
}

/// One more copy of a buffered request.
pub(super) fn replay<B>(
    parts: &http::request::Parts,
    bytes: &Bytes,
) -> Request<Either<Full<Bytes>, B>> {
    let mut next = Request::new(Either::Left(Full::new(bytes.clone())));
    *next.method_mut() = parts.method.clone();
    *next.uri_mut() = parts.uri.clone();
    *next.version_mut() = parts.version;
    *next.headers_mut() = parts.headers.clone();
    *next.extensions_mut() = parts.extensions.clone();
    next
}

async fn run<S, B, ResBody>(
    mut svc: S,
    config: Arc<Config>,
    req: Request<B>,
) -> Result<Response<ResponseBody<ResBody>>, S::Error>
where
    S: Service<Request<Either<Full<Bytes>, B>>, Response = Response<ResBody>>,
    B: Body<Data = Bytes>,
{
    let c = &*config;
    c.budget.deposit();
    if !replays(&req, c.max_attempts, c.max_body) {
        std::future::poll_fn(|cx| svc.poll_ready(cx)).await?;
        return svc
            .call(req.map(Either::Right))
            .await
            .map(ResponseBody::map_response);
    }
    let (parts, bytes) = match buffer(req).await {
        Ok(buffered) => buffered,
        Err(problem) => return Ok(problem),
    };
    let deadline = parts.extensions.get::<Deadline>().copied();
    let clock = c.budget.clock();
    let mut attempt = 0;
    loop {
        let next = replay(&parts, &bytes);
        std::future::poll_fn(|cx| svc.poll_ready(cx)).await?;
        let result = svc.call(next).await;
        attempt += 1;
        let asked = match &result {
            Ok(res) if retryable(res) => retry_after(res.headers(), clock),
            Ok(_) => return result.map(ResponseBody::map_response),
            Err(_) => None,
        };
        let wait = backoff(attempt - 1, c.base, c.cap, random_u64()).max(asked.unwrap_or_default());
        let late = deadline.is_some_and(|d| d.remaining(&**clock) <= wait);
        if attempt >= c.max_attempts || late || !c.budget.try_withdraw() {
            return result.map(ResponseBody::map_response);
        }
        metrics::counter!("protothrive_retries_total").increment(1);
        drop(result);
        tokio::time::sleep(wait).await;
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::clock::ManualClock;

    #[test]
    fn the_floor_allows_retries_without_requests() {
        let budget = RetryBudget::new(Arc::new(ManualClock::default()), 20, 3);
        let granted = (0..100).filter(|_| budget.try_withdraw()).count();
        assert_eq!(granted, 30);
    }

    #[test]
    fn the_window_slides() {
        let clock = ManualClock::default();
        let budget = RetryBudget::new(Arc::new(clock.clone()), 50, 0);
        for _ in 0..10 {
            budget.deposit();
        }
        clock.advance(Duration::from_secs(5));
        assert_eq!((0..10).filter(|_| budget.try_withdraw()).count(), 5);
        clock.advance(Duration::from_secs(5));
        assert!(!budget.try_withdraw(), "the deposits left the window");
    }

    proptest! {
        /// Whenever a retry is granted, the retries in the window do not exceed the floor plus
        /// the percentage of the requests in it.
        #[test]
        fn granted_retries_stay_within_the_budget(
            percent in 0u32..100,
            floor in 0u32..3,
            steps in proptest::collection::vec((0u64..3000, 0u32..20, 0u32..20), 1..50),
        ) {
            let clock = ManualClock::default();
            let budget = RetryBudget::new(Arc::new(clock.clone()), percent, floor);
            let mut log: Vec<(u64, u32, u32)> = Vec::new();
            let mut now = 0;
            for (ms, deposits, asks) in steps {
                clock.advance(Duration::from_millis(ms));
                now += ms;
                for _ in 0..deposits {
                    budget.deposit();
                }
                let granted = (0..asks).filter(|_| budget.try_withdraw()).count() as u32;
                log.push((now / 1000, deposits, granted));
                let second = now / 1000;
                let (d, w) = log
                    .iter()
                    .filter(|(s, _, _)| s + WINDOW_SECS > second)
                    .fold((0u64, 0u64), |(d, w), (_, a, b)| (d + u64::from(*a), w + u64::from(*b)));
                // Checked when granting (deposits may leave the window before the retries they
                // paid for do).
                if granted > 0 {
                    prop_assert!(w <= u64::from(floor) * WINDOW_SECS + d * u64::from(percent) / 100);
                }
            }
        }
    }
}
