//! The circuit breaker as a tower layer.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::{Request, Response, StatusCode};
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use super::{CircuitBreaker, Classify, Permit, Reason, ServerErrors, refusal};
use crate::error::code;
use crate::response::ResponseBody;

/// Calls the inner service only while the [`CircuitBreaker`] allows it, and records each call's
/// outcome as `C` classifies it; see the [module docs](super).
///
/// ```
/// use http::Response;
/// use protothrive::resilience::{CircuitBreaker, CircuitBreakerLayer, Outcome};
///
/// let breaker = CircuitBreaker::builder("payments").build()?;
/// // Only 503 and transport errors count: a 500 is this service's answer to a bad request.
/// let _layer = CircuitBreakerLayer::new(breaker).classify(
///     |r: Result<&Response<String>, &std::io::Error>| match r {
///         Ok(res) if res.status() == 503 => Outcome::Failure,
///         Ok(_) => Outcome::Success,
///         Err(_) => Outcome::Failure,
///     },
/// );
/// # Ok::<(), protothrive::error::ConfigError>(())
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct CircuitBreakerLayer<C = ServerErrors> {
    breaker: CircuitBreaker,
    classify: C,
}

impl CircuitBreakerLayer {
    /// A layer over `breaker` (shared with its other clones), with [`ServerErrors`].
    pub fn new(breaker: CircuitBreaker) -> Self {
        Self {
            breaker,
            classify: ServerErrors,
        }
    }
}

impl<C> CircuitBreakerLayer<C> {
    /// What counts as a failure (default [`ServerErrors`]).
    pub fn classify<C2>(self, classify: C2) -> CircuitBreakerLayer<C2> {
        CircuitBreakerLayer {
            breaker: self.breaker,
            classify,
        }
    }

    /// The breaker.
    #[must_use]
    pub fn breaker(&self) -> &CircuitBreaker {
        &self.breaker
    }
}

impl<S, C: Clone> Layer<S> for CircuitBreakerLayer<C> {
    type Service = Breaker<S, C>;

    fn layer(&self, inner: S) -> Self::Service {
        Breaker {
            inner,
            breaker: self.breaker.clone(),
            classify: self.classify.clone(),
        }
    }
}

/// The service of [`CircuitBreakerLayer`]: calls the inner service while its [`CircuitBreaker`]
/// lets the call through, and answers 503 itself while it does not.
///
/// Named `Breaker` (as its [`BreakerFuture`] is) because [`CircuitBreaker`] is the shared state
/// machine it consults.
#[derive(Debug, Clone)]
pub struct Breaker<S, C = ServerErrors> {
    inner: S,
    breaker: CircuitBreaker,
    classify: C,
}

impl<S, C> Breaker<S, C> {
    crate::macros::inner_service_accessors!();
}

/// The former name of [`Breaker`].
#[deprecated(since = "0.1.0", note = "renamed `Breaker`")]
pub type CircuitBreakerService<S, C = ServerErrors> = Breaker<S, C>;

impl<S, C, ReqBody, ResBody> Service<Request<ReqBody>> for Breaker<S, C>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    C: Classify<ResBody, S::Error> + Clone,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = BreakerFuture<S::Future, ResBody, C>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        // On the trace layer's request span, when there is one.
        if let Some(span) = crate::span::request_span() {
            span.record("breaker.state", self.breaker.state().as_str());
        }
        match self.breaker.try_acquire() {
            Ok(permit) => BreakerFuture {
                kind: Kind::Called {
                    future: self.inner.call(req),
                    permit: Some(permit),
                    classify: self.classify.clone(),
                },
            },
            Err(open) => {
                let res = refusal(
                    StatusCode::SERVICE_UNAVAILABLE,
                    code::CIRCUIT_OPEN,
                    "A dependency of this service is failing; calls to it are paused.",
                    Reason::BreakerOpen,
                    Some(open.retry_after),
                    req.extensions(),
                );
                BreakerFuture {
                    kind: Kind::Refused {
                        response: Some(ResponseBody::map_problem(res)),
                    },
                }
            }
        }
    }
}

pin_project! {
    /// The response future of [`Breaker`]: records the outcome when the inner
    /// future completes (a future dropped before then records nothing).
    pub struct BreakerFuture<F, B, C> {
        #[pin]
        kind: Kind<F, B, C>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<F, B, C> {
        Called { #[pin] future: F, permit: Option<Permit>, classify: C },
        Refused { response: Option<Response<ResponseBody<B>>> },
    }
}

impl<F, B, C> std::fmt::Debug for BreakerFuture<F, B, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BreakerFuture").finish_non_exhaustive()
    }
}

impl<F, B, E, C> Future for BreakerFuture<F, B, C>
where
    F: Future<Output = Result<Response<B>, E>>,
    C: Classify<B, E>,
{
    type Output = Result<Response<ResponseBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KindProj::Called {
                future,
                permit,
                classify,
            } => {
                let result = std::task::ready!(future.poll(cx));
                if let Some(permit) = permit.take() {
                    permit.record(classify.classify(result.as_ref()));
                }
                Poll::Ready(result.map(ResponseBody::map_response))
            }
            KindProj::Refused { response } => match response.take() {
                Some(r) => Poll::Ready(Ok(r)),
                None => Poll::Pending,
            },
        }
    }
}
