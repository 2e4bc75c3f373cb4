use std::cmp::Reverse;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::header::{HeaderName, RETRY_AFTER};
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode};
use tower_service::Service;

use smallvec::SmallVec;

use super::Decision;
use super::key::key_of;
use super::layer::{Config, Limit};
use super::remote::{CheckFuture, OnStoreError, StoreError, StoreErrorKind};
use crate::error::{Problem, code};
use crate::headers::ValueBuf;
use crate::response::{self, Checked, ResponseBody, Stamp};

/// `RateLimit` (draft-ietf-httpapi-ratelimit-headers-10 §4).
pub static RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");
/// `RateLimit-Policy` (draft-ietf-httpapi-ratelimit-headers-10 §3).
pub static RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");

const NANOS: u64 = 1_000_000_000;

/// The service of [`RateLimitLayer`](super::RateLimitLayer).
#[derive(Debug, Clone)]
pub struct RateLimit<S> {
    pub(crate) inner: S,
    pub(crate) config: Arc<Config>,
}

impl<S> RateLimit<S> {
    crate::macros::inner_service_accessors!();
}

fn ceil_secs(nanos: u64) -> u64 {
    nanos.div_ceil(NANOS)
}

/// Orders decisions strictest first: denials by longest wait, then fewest remaining, then the
/// longest reset.
fn strictness(d: &Decision) -> (bool, Reverse<u64>, u64, Reverse<u64>) {
    (
        d.is_allowed(),
        Reverse(d.retry_after()),
        d.remaining(),
        Reverse(d.reset()),
    )
}

/// The `RateLimit` and `RateLimit-Policy` values of the applied limits, strictest first.
fn headers(applied: &mut [(&Limit, Decision)]) -> Option<(HeaderValue, HeaderValue)> {
    applied.sort_by_key(|(_, d)| strictness(d));
    let mut state = ValueBuf::new();
    for (i, (l, d)) in applied.iter().enumerate() {
        if i > 0 {
            state.push(b", ");
        }
        state
            .push(b"\"")
            .push(l.name.as_bytes())
            .push(b"\";r=")
            .push_int(d.remaining())
            .push(b";t=")
            .push_int(ceil_secs(d.reset()));
    }
    let policy = match applied {
        [(l, _)] => l.policy.clone(),
        _ => {
            let mut policy = ValueBuf::new();
            for (i, (l, _)) in applied.iter().enumerate() {
                if i > 0 {
                    policy.push(b", ");
                }
                policy.push(l.policy.as_bytes());
            }
            policy.value()?
        }
    };
    Some((state.value()?, policy))
}

/// Sets the headers, merged with those of a rate-limit layer further in (a 429 from there keeps
/// its items first, as they decided).
fn stamp(res_status: StatusCode, h: &mut HeaderMap, (state, policy): (HeaderValue, HeaderValue)) {
    merge(res_status, h, &RATELIMIT, state);
    merge(res_status, h, &RATELIMIT_POLICY, policy);
}

fn merge(status: StatusCode, h: &mut HeaderMap, name: &HeaderName, ours: HeaderValue) {
    // One lookup: the entry API hashes the (custom) name once.
    match h.entry(name) {
        http::header::Entry::Vacant(v) => {
            v.insert(ours);
        }
        http::header::Entry::Occupied(mut o) => {
            let theirs = o.get();
            let (first, second) = if status == StatusCode::TOO_MANY_REQUESTS {
                (theirs.as_bytes(), ours.as_bytes())
            } else {
                (ours.as_bytes(), theirs.as_bytes())
            };
            if let Some(v) = ValueBuf::new().push(first).push(b", ").push(second).value() {
                o.insert(v);
            }
        }
    }
}

/// What the decisions of one request say.
enum Verdict {
    /// Go on, stamping these headers (none when no limit applied).
    Pass(Option<RateLimitStamp>),
    /// Answer with this problem.
    Refuse(Problem),
}

impl Verdict {
    /// The decision, a refusal rendered for `req`.
    fn checked<B>(self, req: &Request<B>) -> Checked<RateLimitStamp> {
        match self {
            Verdict::Pass(stamp) => Checked::Pass(stamp),
            Verdict::Refuse(problem) => Checked::Answer(problem.render_for(req.extensions())),
        }
    }
}

/// The headers (when `send_headers`) and the answer for the decisions of the applied limits.
fn verdict(applied: &mut [(&Limit, Decision)], send_headers: bool) -> Verdict {
    if applied.is_empty() {
        return Verdict::Pass(None);
    }
    for (l, d) in applied.iter() {
        l.count(d.is_allowed());
    }
    let values = if send_headers {
        headers(applied)
    } else {
        applied.sort_by_key(|(_, d)| strictness(d));
        None
    };
    let (strictest_limit, strictest) = (applied[0].0, applied[0].1);
    if let Some(span) = crate::span::request_span() {
        let decision = if strictest.is_allowed() {
            "allowed"
        } else {
            "denied"
        };
        span.record("rate_limit.decision", decision);
        let key = format!("{}:{:?}", strictest_limit.name, strictest_limit.keys());
        span.record("rate_limit.key", key.as_str());
    }
    if strictest.is_allowed() {
        return Verdict::Pass(values.map(|(state, policy)| RateLimitStamp { state, policy }));
    }
    let retry = ceil_secs(strictest.retry_after()).max(1);
    let mut problem = Problem::new(StatusCode::TOO_MANY_REQUESTS, code::RATE_LIMITED)
        .with_detail(format!(
            "Too many requests for the `{}` limit; retry in {retry} s.",
            strictest_limit.name
        ))
        .with_header(RETRY_AFTER, crate::headers::number(retry));
    if let Some((state, policy)) = values {
        problem = problem
            .with_header(RATELIMIT.clone(), state)
            .with_header(RATELIMIT_POLICY.clone(), policy);
    }
    Verdict::Refuse(problem)
}

impl Config {
    /// The layer's clock in nanoseconds since it was built.
    fn now(&self) -> u64 {
        crate::clock::nanos_since(&*self.clock, self.epoch)
    }
}

/// The 503 of [`OnStoreError::FailClosed`].
fn store_down() -> Problem {
    Problem::new(StatusCode::SERVICE_UNAVAILABLE, code::UNAVAILABLE)
        .with_detail("The rate limiter cannot decide right now; retry shortly.")
        .with_header(RETRY_AFTER, HeaderValue::from_static("1"))
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for RateLimit<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    ReqBody: Send + 'static,
    ResBody: 'static,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, ResBody, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        match check(&self.config, &req) {
            LimitCheck::Done(decision) => {
                ResponseFuture::checked(decision, || self.inner.call(req))
            }
            LimitCheck::Remote(remote) => {
                let mut inner = response::take_ready(&mut self.inner);
                ResponseFuture::boxed(Box::pin(async move {
                    match remote.settle().await.decide(&req) {
                        Checked::Pass(stamp) => {
                            Ok(response::stamped(inner.call(req).await?, stamp))
                        }
                        Checked::Answer(res) => Ok(ResponseBody::map_problem(res)),
                    }
                }))
            }
        }
    }
}

/// The limiter's decision on a request, or the remote store's answer to await first.
pub(crate) enum LimitCheck {
    /// Decided in process.
    Done(Checked<RateLimitStamp>),
    /// Asked the remote store: [`Remote::settle`], then decide.
    Remote(Remote),
}

impl super::RateLimitLayer {
    /// This layer's decision on `req`, for a service that runs several layers' checks.
    #[inline]
    pub(crate) fn check<B>(&self, req: &Request<B>) -> LimitCheck {
        check(&self.config, req)
    }
}

/// Counts `req` against every applicable limit: in process at once, or by asking the remote
/// store.
fn check<B>(config: &Arc<Config>, req: &Request<B>) -> LimitCheck {
    // A CORS preflight (Fetch §3.2.2) is never counted.
    if crate::headers::is_preflight(req) {
        return LimitCheck::Done(Checked::Pass(None));
    }
    let now = config.now();
    if let Some((remote, policy)) = &config.remote {
        let mut applied: SmallVec<[usize; 4]> = SmallVec::new();
        let mut checks = Vec::new();
        for (i, l) in config.limits.iter().enumerate() {
            if let Some(k) = key_of(l, req) {
                applied.push(i);
                checks.push((k.as_str().to_owned(), l.quota));
            }
        }
        if checks.is_empty() {
            return LimitCheck::Done(Checked::Pass(None));
        }
        return LimitCheck::Remote(Remote {
            config: config.clone(),
            policy: *policy,
            applied,
            now,
            asked: remote.check_many(checks, now),
        });
    }
    let mut applied = check_locally(config, req, now);
    LimitCheck::Done(verdict(&mut applied, config.headers).checked(req))
}

/// The decisions of the applicable limits, in order.
type Decided<'a> = SmallVec<[(&'a Limit, Decision); 4]>;

/// Checks and records every applicable limit in the in-process store.
fn check_locally<'a, B>(config: &'a Config, req: &Request<B>, now: u64) -> Decided<'a> {
    config
        .limits
        .iter()
        .filter_map(|limit| {
            let key = key_of(limit, req)?;
            Some((limit, config.store.check(key.as_str(), &limit.quota, now)))
        })
        .collect()
}

/// A request's limits asked of the remote store, the answer not yet in.
pub(crate) struct Remote {
    config: Arc<Config>,
    policy: OnStoreError,
    applied: SmallVec<[usize; 4]>,
    now: u64,
    asked: CheckFuture,
}

/// The remote store's answer (or failure) for a request's limits.
pub(crate) struct Settled {
    remote: Remote,
    answer: Result<Vec<Decision>, StoreError>,
}

impl Remote {
    /// Awaits the store.
    pub(crate) async fn settle(mut self) -> Settled {
        let answer = (&mut self.asked).await;
        Settled {
            remote: self,
            answer,
        }
    }
}

impl Settled {
    /// Decides as the in-process path does, or applies the outage policy when the store failed.
    pub(crate) fn decide<B>(self, req: &Request<B>) -> Checked<RateLimitStamp> {
        let Remote {
            config,
            policy,
            applied,
            now,
            ..
        } = self.remote;
        let mut decided: Decided<'_> = match self.answer {
            Ok(d) if d.len() == applied.len() => applied
                .iter()
                .zip(d)
                .map(|(&i, d)| (&config.limits[i], d))
                .collect(),
            outcome => {
                let error = outcome.err().unwrap_or_else(|| {
                    StoreError::new(StoreErrorKind::Protocol, "wrong number of decisions")
                });
                metrics::counter!(
                    "protothrive_rate_limit_store_errors_total",
                    "kind" => error.kind().as_str(),
                    "policy" => policy.as_str()
                )
                .increment(1);
                tracing::warn!(error = %error, policy = policy.as_str(), "rate-limit store failed");
                match policy {
                    OnStoreError::FailOpen => return Checked::Pass(None),
                    OnStoreError::FailClosed => {
                        return Checked::Answer(store_down().render_for(req.extensions()));
                    }
                    // The in-process path, keys built again (the remote store took them): rare.
                    OnStoreError::Local => check_locally(&config, req, now),
                }
            }
        };
        verdict(&mut decided, config.headers).checked(req)
    }
}

/// What the limiter adds to an allowed response: `RateLimit` and `RateLimit-Policy`.
#[derive(Debug)]
pub struct RateLimitStamp {
    state: HeaderValue,
    policy: HeaderValue,
}

impl Stamp for RateLimitStamp {
    fn stamp(self, status: StatusCode, headers: &mut HeaderMap) {
        stamp(status, headers, (self.state, self.policy));
    }
}

/// The response future of [`RateLimit`]: the inner service's (stamped with the headers), a
/// ready `429`, or — with a [`RemoteStore`](super::RemoteStore) — the store's answer first.
pub type ResponseFuture<F, B, E> = response::ResponseFuture<F, B, E, RateLimitStamp>;
