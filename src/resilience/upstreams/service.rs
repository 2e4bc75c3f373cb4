//! The upstream set as a tower service: choose, call, record, retry elsewhere.

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body::Body;
use http_body_util::{Either, Full};
use tower_service::Service;

use super::health::HealthCheck;
use super::member::{Member, MemberStatus};
use super::select::pick;
use crate::backoff::random_u64;
use crate::error::code;
use crate::resilience::bounds::{BoxFuture, ReplayBody, ReplayService};
use crate::resilience::retry::{buffer, fits, replay, replayable, retryable};
use crate::resilience::{
    Classify, Deadline, NotSent, Permit, Reason, RetryBudget, ServerErrors, refusal,
};
use crate::response::ResponseBody;

/// Several instances of one upstream behind one service; see the [module docs](super).
///
/// Built by [`Upstreams::builder`]. Clones share the members, their breakers and health, the
/// requests in flight and the retry budget. `B` is the request body it takes; each member gets
/// `Either<Full<Bytes>, B>`: the buffered copy of a request that may be replayed, the original
/// otherwise.
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
/// let set: Upstreams<_, String> = Upstreams::builder()
///     .member("a", instance)
///     .member("b", instance)
///     .build()?;
/// assert!(set.status().iter().all(|m| m.in_rotation() && m.in_flight == 0));
/// # Ok::<(), protothrive::error::ConfigError>(())
/// ```
pub struct Upstreams<S, B> {
    pub(super) shared: Arc<Shared<S>>,
    body: PhantomData<fn(B)>,
}

pub(super) struct Shared<S> {
    pub(super) members: Vec<Member<S>>,
    pub(super) budget: RetryBudget,
    pub(super) max_attempts: u32,
    pub(super) max_body: u64,
    pub(super) health: Option<HealthCheck>,
}

impl<S, B> Clone for Upstreams<S, B> {
    fn clone(&self) -> Self {
        Self {
            shared: self.shared.clone(),
            body: PhantomData,
        }
    }
}

impl<S, B> fmt::Debug for Upstreams<S, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Upstreams")
            .field("members", &self.status())
            .field("max_attempts", &self.shared.max_attempts)
            .finish_non_exhaustive()
    }
}

impl<S, B> Upstreams<S, B> {
    pub(super) fn from_shared(shared: Shared<S>) -> Self {
        Self {
            shared: Arc::new(shared),
            body: PhantomData,
        }
    }

    /// Each member as it stands, in the order they were added.
    #[must_use]
    pub fn status(&self) -> Vec<MemberStatus> {
        self.shared.members.iter().map(Member::status).collect()
    }
}

impl<S> Shared<S> {
    /// A member to call, not one of `tried`, with its breaker's permission; or the shortest
    /// wait of the breakers that refused (`None` when no breaker refused).
    fn choose(&self, tried: &[usize]) -> Result<(usize, Permit), Option<Duration>> {
        // When no member passes its checks, the checks are ignored (Envoy's panic routing): a
        // broken health endpoint alone takes nothing out of service.
        let checks_count = self.members.iter().any(Member::healthy);
        let mut loads: Vec<Option<usize>> = self
            .members
            .iter()
            .enumerate()
            .map(|(i, m)| {
                ((m.healthy() || !checks_count) && !tried.contains(&i)).then(|| m.pending())
            })
            .collect();
        let mut wait: Option<Duration> = None;
        while let Some(i) = pick(&loads, random_u64()) {
            match self.members[i].breaker.try_acquire() {
                Ok(permit) => return Ok((i, permit)),
                Err(open) => {
                    wait = Some(wait.map_or(open.retry_after, |w| w.min(open.retry_after)));
                    loads[i] = None;
                }
            }
        }
        Err(wait)
    }
}

impl<S, B> Service<Request<B>> for Upstreams<S, B>
where
    S: ReplayService<B> + Sync,
    B: ReplayBody,
{
    type Response = Response<ResponseBody<S::ResBody>>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, S::Error>>;

    /// Always ready: each member's readiness is awaited once it is chosen.
    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        Box::pin(run(self.shared.clone(), req))
    }
}

/// One call to member `i`, its outcome recorded by its breaker.
async fn attempt<S, Req, ResBody>(
    member: &Member<S>,
    permit: Permit,
    req: Request<Req>,
) -> Result<Response<ResBody>, S::Error>
where
    S: Service<Request<Req>, Response = Response<ResBody>> + Clone,
{
    let _in_flight = member.start();
    let mut svc = member.service.clone();
    let result = match std::future::poll_fn(|cx| svc.poll_ready(cx)).await {
        Ok(()) => svc.call(req).await,
        Err(e) => Err(e),
    };
    permit.record(ServerErrors.classify(result.as_ref()));
    result
}

/// The answer when no member may be called.
fn unavailable<R>(
    wait: Option<Duration>,
    extensions: &http::Extensions,
) -> Response<ResponseBody<R>> {
    ResponseBody::map_problem(refusal(
        StatusCode::SERVICE_UNAVAILABLE,
        code::UPSTREAMS_UNAVAILABLE,
        "Every instance of the upstream service is failing; none is called for now.",
        Reason::BreakerOpen,
        wait,
        extensions,
    ))
}

async fn run<S, B, ResBody>(
    shared: Arc<Shared<S>>,
    req: Request<B>,
) -> Result<Response<ResponseBody<ResBody>>, S::Error>
where
    S: Service<Request<Either<Full<Bytes>, B>>, Response = Response<ResBody>> + Clone,
    B: Body<Data = Bytes>,
{
    let s = &*shared;
    s.budget.deposit();
    // A body that fits is buffered whatever the method: a request that may not be sent twice
    // is still sent to another member when the first answer says it never left ([`NotSent`]).
    if s.max_attempts <= 1 || !fits(&req, s.max_body) {
        return match s.choose(&[]) {
            Ok((i, permit)) => attempt(&s.members[i], permit, req.map(Either::Right))
                .await
                .map(ResponseBody::map_response),
            Err(wait) => Ok(unavailable(wait, req.extensions())),
        };
    }
    let (parts, bytes) = match buffer(req).await {
        Ok(buffered) => buffered,
        Err(problem) => return Ok(problem),
    };
    let deadline = parts.extensions.get::<Deadline>().copied();
    let idempotent = replayable(&parts.method, &parts.headers);
    let clock = s.budget.clock();
    let mut tried = Vec::with_capacity(s.max_attempts as usize);
    let mut next = s.choose(&tried);
    loop {
        let (i, permit) = match next {
            Ok(chosen) => chosen,
            Err(wait) => return Ok(unavailable(wait, &parts.extensions)),
        };
        tried.push(i);
        let result = attempt(&s.members[i], permit, replay(&parts, &bytes)).await;
        let not_sent = matches!(&result, Ok(res) if res.extensions().get::<NotSent>().is_some());
        let again = match &result {
            _ if not_sent => true,
            Ok(res) => idempotent && retryable(res),
            Err(_) => idempotent,
        };
        let late = deadline.is_some_and(|d| d.remaining(&**clock).is_zero());
        if !again || tried.len() >= s.max_attempts as usize || late {
            return result.map(ResponseBody::map_response);
        }
        // Another member first: the budget is spent only on a retry that can happen, and not on
        // a request that never left (no upstream has seen it yet: nothing is amplified).
        next = s.choose(&tried);
        if next.is_err() || (!not_sent && !s.budget.try_withdraw()) {
            return result.map(ResponseBody::map_response);
        }
        tracing::debug!(upstream = %s.members[i].name, "retrying on another upstream");
        metrics::counter!("protothrive_upstream_retries_total").increment(1);
    }
}
