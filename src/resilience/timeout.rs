//! Timeouts that set and honour a [`Deadline`].

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use http::{Request, Response, StatusCode};
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use super::{Deadline, Reason, refusal};
use crate::clock::SharedClock;
use crate::error::{Renderer, RequestId, TraceId, code};
use crate::response::ResponseBody;

/// Bounds a call by `timeout` or the request's [`Deadline`], whichever is earlier, and passes
/// that deadline on in the request's extensions. Outside a [`RetryLayer`](super::RetryLayer) it
/// bounds the whole call; inside it, each attempt.
///
/// On expiry the inner future is dropped and the answer is a 504 problem `TIMEOUT-504` for an
/// [outbound](Self::outbound) call, a 503 `TIMEOUT-503` around a [handler](Self::handler). A
/// request whose deadline has already passed is answered at once, without calling the inner
/// service. The remaining time is read from the [clock](Self::clock); the timer itself is
/// tokio's.
///
/// ```
/// use std::convert::Infallible;
/// use std::time::Duration;
/// use http::{Request, Response};
/// use protothrive::resilience::TimeoutLayer;
/// use tower::{service_fn, ServiceBuilder, ServiceExt};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let svc = ServiceBuilder::new()
///     .layer(TimeoutLayer::outbound(Duration::from_millis(100)))
///     .service(service_fn(|_req: Request<()>| async {
///         tokio::time::sleep(Duration::from_secs(5)).await;
///         Ok::<_, Infallible>(Response::new(String::new()))
///     }));
/// assert_eq!(svc.oneshot(Request::new(())).await?.status(), 504);
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct TimeoutLayer {
    timeout: Duration,
    outbound: bool,
    clock: SharedClock,
}

impl TimeoutLayer {
    /// A bound on outbound calls: expiry is a 504.
    pub fn outbound(timeout: Duration) -> Self {
        Self {
            timeout,
            outbound: true,
            clock: crate::clock::system(),
        }
    }

    /// A bound on handlers: expiry is a 503.
    pub fn handler(timeout: Duration) -> Self {
        Self {
            outbound: false,
            ..Self::outbound(timeout)
        }
    }

    /// The clock deadlines are read on (default: the system clock).
    pub fn clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }
}

impl<S> Layer<S> for TimeoutLayer {
    type Service = Timeout<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Timeout {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service of [`TimeoutLayer`].
#[derive(Debug, Clone)]
pub struct Timeout<S> {
    inner: S,
    layer: TimeoutLayer,
}

impl<S> Timeout<S> {
    crate::macros::inner_service_accessors!();
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for Timeout<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = TimeoutFuture<S::Future, ResBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqBody>) -> Self::Future {
        let clock = &*self.layer.clock;
        let own = Deadline::after(clock, self.layer.timeout);
        let deadline = req
            .extensions()
            .get::<Deadline>()
            .map_or(own, |outer| own.min(*outer));
        let remaining = deadline.remaining(clock);
        let ctx = render_context(req.extensions());
        if remaining.is_zero() {
            return TimeoutFuture {
                kind: Kind::Expired {
                    response: Some(expired(self.layer.outbound, &ctx)),
                },
            };
        }
        req.extensions_mut().insert(deadline);
        TimeoutFuture {
            kind: Kind::Running {
                future: self.inner.call(req),
                sleep: tokio::time::sleep(remaining),
                outbound: self.layer.outbound,
                ctx: Some(ctx),
            },
        }
    }
}

/// What rendering a problem later needs of the request: its ids and renderer.
fn render_context(from: &http::Extensions) -> http::Extensions {
    let mut ctx = http::Extensions::new();
    if let Some(id) = RequestId::of(from) {
        ctx.insert(id.clone());
    }
    if let Some(id) = TraceId::of(from) {
        ctx.insert(id.clone());
    }
    if let Some(r) = from.get::<Renderer>() {
        ctx.insert(r.clone());
    }
    ctx
}

fn expired<B>(outbound: bool, ctx: &http::Extensions) -> Response<ResponseBody<B>> {
    let (status, code, detail) = if outbound {
        (
            StatusCode::GATEWAY_TIMEOUT,
            code::UPSTREAM_TIMEOUT,
            "A dependency did not answer in time.",
        )
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            code::DEADLINE_EXCEEDED,
            "The request could not be answered in time.",
        )
    };
    ResponseBody::map_problem(refusal(status, code, detail, Reason::Timeout, None, ctx))
}

pin_project! {
    /// The response future of [`Timeout`].
    pub struct TimeoutFuture<F, B> {
        #[pin]
        kind: Kind<F, B>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<F, B> {
        Running {
            #[pin] future: F,
            #[pin] sleep: tokio::time::Sleep,
            outbound: bool,
            ctx: Option<http::Extensions>,
        },
        Expired { response: Option<Response<ResponseBody<B>>> },
    }
}

impl<F, B> std::fmt::Debug for TimeoutFuture<F, B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TimeoutFuture").finish_non_exhaustive()
    }
}

impl<F, B, E> Future for TimeoutFuture<F, B>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<ResponseBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KindProj::Running {
                future,
                sleep,
                outbound,
                ctx,
            } => {
                if let Poll::Ready(result) = future.poll(cx) {
                    return Poll::Ready(result.map(ResponseBody::map_response));
                }
                std::task::ready!(sleep.poll(cx));
                metrics::counter!("protothrive_timeouts_total").increment(1);
                match ctx.take() {
                    Some(ctx) => Poll::Ready(Ok(expired(*outbound, &ctx))),
                    None => Poll::Pending,
                }
            }
            KindProj::Expired { response } => match response.take() {
                Some(r) => Poll::Ready(Ok(r)),
                None => Poll::Pending,
            },
        }
    }
}
