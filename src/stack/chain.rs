//! The stack's request checks, from CORS to the limits by principal, run in one service.
//!
//! Each of these layers decides about a request before the application sees it (hand it on,
//! adding headers to the response; or answer it) and works alone as a tower layer. Nested one
//! inside the other, every present layer and every left-out position would add a service call,
//! a future wrapping the next one (moved as the stack's future is built and polled) and a body
//! wrapping the next body (polled, sized and dropped per response). [`Checks`] asks the same
//! layers for the same decisions, in the order of the stack, in one call: one future and one
//! response body level for all of them, and a left-out layer costs one branch.
//!
//! The decisions are the layers' own (each layer's service makes them through the same code),
//! so a layer behaves the same inside the stack and alone: an answer at one position carries
//! the headers of the positions outside it (CORS on a 401, `RateLimit` on a 403 from CSRF), the
//! response of the application the headers of all of them, innermost first. A check that must
//! wait (a remote rate-limit store, a key to fetch) moves the rest of the chain into one boxed
//! future, as the layer alone boxes its own.

use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode};
use tower_service::Service;

use super::builder::Built;
#[allow(unused_imports)]
use crate::response::{Checked, ResponseBody, ResponseFuture, Stamp};

#[cfg(feature = "auth")]
use crate::auth::AuthCheck;
#[cfg(feature = "cors")]
use crate::cors::CorsStamp;
#[cfg(feature = "gateway")]
use crate::gateway::VersionStamp;
#[cfg(feature = "rate-limit")]
use crate::rate_limit::{LimitCheck, RateLimitStamp};
#[cfg(feature = "security-headers")]
use crate::security_headers::SecurityHeadersLayer;

/// The request body the application sees: cut off at the body limit with the gateway.
///
/// ```
/// use http_body_util::{Empty, Limited};
/// let _body: protothrive::stack::InnerBody<Empty<bytes::Bytes>> = Limited::new(Empty::new(), 1 << 20);
/// ```
#[cfg(feature = "gateway")]
pub type InnerBody<B> = http_body_util::Limited<B>;
/// The request body the application sees.
#[cfg(not(feature = "gateway"))]
pub type InnerBody<B> = B;

/// The service of the stack's request checks (CORS, security headers, API versions, body
/// limits, limits by client, auth, CSRF, limits by principal) around `S`, run in one call: each
/// present layer decides in the stack's order through the same code as its own service, a left
/// out one costs a branch. An answer carries the headers of the checks before it; the inner
/// service's response those of all of them, innermost first, stamped in one future. A check that
/// must wait boxes the rest of the chain. Made by the [`Stack`](super::Stack) (what a
/// [`Stack::with_trace`](super::Stack::with_trace) layer wraps).
///
/// ```
/// use std::convert::Infallible;
/// use http::{Request, Response, StatusCode};
/// use http_body_util::{Empty, Limited};
/// use protothrive::stack::{Checks, Stack};
/// use tower::{Layer, ServiceExt, service_fn};
///
/// type Body = Empty<bytes::Bytes>;
/// let stack = Stack::builder().build()?;
/// // The trace position wraps the checks: here a layer that only looks at their type.
/// let svc = stack
///     .with_trace(tower::layer::layer_fn(|checks: Checks<_>| checks))
///     .layer(service_fn(|_: Request<Limited<Body>>| async {
///         Ok::<_, Infallible>(Response::new(Body::new()))
///     }));
/// let res = tokio::runtime::Builder::new_current_thread()
///     .build()?
///     .block_on(svc.oneshot(Request::new(Body::new())))?;
/// assert_eq!(res.status(), StatusCode::OK);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct Checks<S> {
    inner: S,
    built: Arc<Built>,
}

impl<S> Checks<S> {
    pub(super) fn new(inner: S, built: Arc<Built>) -> Self {
        Self { inner, built }
    }

    crate::macros::inner_service_accessors!();
}

/// What the checks that passed a request add to its response, innermost first: the
/// [`Stamp`] of [`Checks`]' future.
///
/// ```
/// use protothrive::response::Stamp;
/// let mut headers = http::HeaderMap::new();
/// // No check passed a request yet: nothing to add.
/// protothrive::stack::Stamps::default().stamp(http::StatusCode::OK, &mut headers);
/// assert!(headers.is_empty());
/// ```
#[derive(Debug, Default)]
pub struct Stamps {
    #[cfg(feature = "rate-limit")]
    by_principal: Option<RateLimitStamp>,
    #[cfg(feature = "rate-limit")]
    by_client: Option<RateLimitStamp>,
    #[cfg(feature = "gateway")]
    version: Option<VersionStamp>,
    #[cfg(feature = "security-headers")]
    security: Option<SecurityHeadersLayer>,
    #[cfg(feature = "cors")]
    cors: Option<CorsStamp>,
}

impl Stamp for Stamps {
    #[allow(unused_variables)]
    fn stamp(self, status: StatusCode, headers: &mut HeaderMap) {
        #[cfg(feature = "rate-limit")]
        if let Some(s) = self.by_principal {
            s.stamp(status, headers);
        }
        #[cfg(feature = "rate-limit")]
        if let Some(s) = self.by_client {
            s.stamp(status, headers);
        }
        #[cfg(feature = "gateway")]
        if let Some(s) = self.version {
            s.stamp(status, headers);
        }
        #[cfg(feature = "security-headers")]
        if let Some(s) = self.security {
            s.stamp(headers);
        }
        #[cfg(feature = "cors")]
        if let Some(s) = self.cors {
            s.stamp(status, headers);
        }
    }
}

/// The positions of the chain, outer to inner.
#[allow(dead_code)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Pos {
    Cors,
    Security,
    Versions,
    Body,
    ByClient,
    Auth,
    Csrf,
    ByPrincipal,
}

impl Pos {
    /// The position after this one.
    #[allow(dead_code)]
    fn next(self) -> Option<Pos> {
        Some(match self {
            Pos::Cors => Pos::Security,
            Pos::Security => Pos::Versions,
            Pos::Versions => Pos::Body,
            Pos::Body => Pos::ByClient,
            Pos::ByClient => Pos::Auth,
            Pos::Auth => Pos::Csrf,
            Pos::Csrf => Pos::ByPrincipal,
            Pos::ByPrincipal => return None,
        })
    }
}

/// A check that must wait before it decides.
enum Wait {
    #[cfg(feature = "rate-limit")]
    Limit(crate::rate_limit::Remote),
    #[cfg(feature = "auth")]
    Auth,
}

/// Where the checks from a position on leave a request.
#[allow(dead_code)]
enum Flow {
    /// Every check passed: call the application.
    Go,
    /// A check answered.
    Answer(Response<Bytes>),
    /// The check at this position must wait.
    Wait(Pos, Wait),
}

/// Takes a check's decision: its stamp kept, or its answer returned.
#[allow(unused_macros)]
macro_rules! take {
    ($decision:expr) => {
        if let Checked::Answer(res) = $decision {
            return Flow::Answer(res);
        }
    };
    ($decision:expr, $slot:expr) => {
        match $decision {
            Checked::Pass(stamp) => $slot = stamp,
            Checked::Answer(res) => return Flow::Answer(res),
        }
    };
}

/// Runs the present checks from `from` on, in order, until one answers or must wait.
#[allow(unused_variables, unused_mut)]
#[inline]
fn run<B>(b: &Built, from: Pos, req: &mut Request<B>, stamps: &mut Stamps) -> Flow {
    #[cfg(feature = "cors")]
    if from <= Pos::Cors
        && let Some(l) = &b.cors
    {
        take!(l.check(req), stamps.cors);
    }
    #[cfg(feature = "security-headers")]
    if from <= Pos::Security {
        stamps.security.clone_from(&b.security_headers);
    }
    #[cfg(feature = "gateway")]
    if from <= Pos::Versions
        && let Some(l) = &b.versions
    {
        take!(l.check(req), stamps.version);
    }
    #[cfg(feature = "gateway")]
    if from <= Pos::Body {
        take!(b.body_limits.check(req));
    }
    #[cfg(feature = "rate-limit")]
    if from <= Pos::ByClient
        && let Some(l) = &b.by_client
    {
        match l.check(req) {
            LimitCheck::Done(d) => take!(d, stamps.by_client),
            LimitCheck::Remote(r) => return Flow::Wait(Pos::ByClient, Wait::Limit(r)),
        }
    }
    #[cfg(feature = "auth")]
    if from <= Pos::Auth
        && let Some((_, l)) = &b.auth
    {
        match l.check(req) {
            AuthCheck::Done(d) => take!(d),
            AuthCheck::Slow => return Flow::Wait(Pos::Auth, Wait::Auth),
        }
    }
    #[cfg(feature = "csrf")]
    if from <= Pos::Csrf
        && let Some(l) = &b.csrf
    {
        take!(l.check(req));
    }
    #[cfg(feature = "rate-limit")]
    if from <= Pos::ByPrincipal
        && let Some(l) = &b.by_principal
    {
        match l.check(req) {
            LimitCheck::Done(d) => take!(d, stamps.by_principal),
            LimitCheck::Remote(r) => return Flow::Wait(Pos::ByPrincipal, Wait::Limit(r)),
        }
    }
    Flow::Go
}

/// An answer of a check, with the headers of the checks outside it.
fn answer<B>(res: Response<Bytes>, stamps: Stamps) -> Response<ResponseBody<B>> {
    let mut res = ResponseBody::map_problem(res);
    let status = res.status();
    stamps.stamp(status, res.headers_mut());
    res
}

/// The request as the application gets it.
#[allow(unused_variables)]
fn hand_on<B>(b: &Built, req: Request<B>) -> Request<InnerBody<B>> {
    #[cfg(feature = "gateway")]
    let req = b.body_limits.wrap(req);
    req
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for Checks<S>
where
    S: Service<Request<InnerBody<ReqBody>>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    ReqBody: Send + 'static,
    ResBody: Send + 'static,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, ResBody, S::Error, Stamps>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqBody>) -> Self::Future {
        let mut stamps = Stamps::default();
        match run(&self.built, Pos::Cors, &mut req, &mut stamps) {
            Flow::Go => {
                let req = hand_on(&self.built, req);
                ResponseFuture::stamped(self.inner.call(req), Some(stamps))
            }
            Flow::Answer(res) => ResponseFuture::ready(answer(res, stamps)),
            Flow::Wait(at, wait) => {
                let inner = crate::response::take_ready(&mut self.inner);
                ResponseFuture::boxed(Box::pin(rest(
                    self.built.clone(),
                    at,
                    wait,
                    req,
                    stamps,
                    inner,
                )))
            }
        }
    }
}

/// The chain from a check that must wait: that check awaited, the checks after it run (awaiting
/// any other that must wait), then the application.
#[allow(unused_variables, unused_mut, unreachable_code)]
async fn rest<S, ReqBody, ResBody>(
    built: Arc<Built>,
    mut at: Pos,
    mut wait: Wait,
    req: Request<ReqBody>,
    mut stamps: Stamps,
    mut inner: S,
) -> Result<Response<ResponseBody<ResBody>>, S::Error>
where
    S: Service<Request<InnerBody<ReqBody>>, Response = Response<ResBody>>,
{
    // Only the head is borrowed across the awaits, so the body need not be `Sync`.
    let (parts, body) = req.into_parts();
    let mut head = Request::from_parts(parts, ());
    loop {
        // What the check that waited answered, if it refused the request.
        let answered: Option<Response<Bytes>> = match wait {
            #[cfg(feature = "rate-limit")]
            Wait::Limit(remote) => match remote.settle().await.decide(&head) {
                Checked::Pass(stamp) => {
                    if at == Pos::ByClient {
                        stamps.by_client = stamp;
                    } else {
                        stamps.by_principal = stamp;
                    }
                    None
                }
                Checked::Answer(res) => Some(res),
            },
            #[cfg(feature = "auth")]
            Wait::Auth => match &built.auth {
                Some((_, l)) => {
                    let (mut parts, ()) = head.into_parts();
                    let decision = l.check_slow(&mut parts).await;
                    head = Request::from_parts(parts, ());
                    match decision {
                        Checked::Pass(_) => None,
                        Checked::Answer(res) => Some(res),
                    }
                }
                None => None,
            },
        };
        if let Some(res) = answered {
            return Ok(answer(res, stamps));
        }
        let Some(next) = at.next() else { break };
        match run(&built, next, &mut head, &mut stamps) {
            Flow::Go => break,
            Flow::Answer(res) => return Ok(answer(res, stamps)),
            Flow::Wait(p, w) => {
                at = p;
                wait = w;
            }
        }
    }
    let (parts, ()) = head.into_parts();
    let req = hand_on(&built, Request::from_parts(parts, body));
    Ok(crate::response::stamped(
        inner.call(req).await?,
        Some(stamps),
    ))
}
