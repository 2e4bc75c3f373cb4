//! A configured fallback answer when the service inside fails.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Method, Request, Response, Uri};
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use super::{Reason, Refused};
use crate::response::ResponseBody;

/// The header that marks a fallback answer: `fallback: breaker-open`, `overloaded`, `timeout`
/// (a resilience layer inside refused, see [`Refused`]) or `error` (a 5xx or an error of the
/// service). A stale answer of the cache is marked by its `Cache-Status` instead
/// (`fwd=stale; fwd-status=503; detail=stale-if-error`).
pub static FALLBACK: HeaderName = HeaderName::from_static("fallback");

/// Answers with a configured response when the service inside fails: a 5xx, an error, or a
/// refusal of a resilience layer. Put it outside the route's cache, so a stale entry is
/// preferred and the fallback only answers when the cache has none. The fallback gets the
/// request's method and URI; its answer carries the [`FALLBACK`] header.
///
/// ```
/// use std::convert::Infallible;
/// use http::{Response, Request};
/// use protothrive::resilience::FallbackLayer;
/// use tower::{service_fn, Layer, ServiceExt};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let layer = FallbackLayer::new(|_method: &http::Method, _uri: &http::Uri| {
///     Response::new(bytes::Bytes::from_static(b"{\"data\":[]}"))
/// });
/// let svc = layer.layer(service_fn(|_req: Request<()>| async {
///     Ok::<_, Infallible>(Response::builder().status(502).body(String::new()).unwrap())
/// }));
/// let res = svc.oneshot(Request::new(())).await?;
/// assert_eq!(res.status(), 200);
/// assert_eq!(res.headers()["fallback"], "error");
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct FallbackLayer<F> {
    fallback: F,
}

impl<F> FallbackLayer<F>
where
    F: Fn(&Method, &Uri) -> Response<Bytes> + Clone,
{
    /// A layer answering with `fallback`'s response when the service fails.
    pub fn new(fallback: F) -> Self {
        Self { fallback }
    }
}

impl<S, F: Clone> Layer<S> for FallbackLayer<F> {
    type Service = Fallback<S, F>;

    fn layer(&self, inner: S) -> Self::Service {
        Fallback {
            inner,
            fallback: self.fallback.clone(),
        }
    }
}

/// The service of [`FallbackLayer`].
#[derive(Debug, Clone)]
pub struct Fallback<S, F> {
    inner: S,
    fallback: F,
}

impl<S, F> Fallback<S, F> {
    crate::macros::inner_service_accessors!();
}

impl<S, F, ReqBody, ResBody> Service<Request<ReqBody>> for Fallback<S, F>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    F: Fn(&Method, &Uri) -> Response<Bytes> + Clone,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = FallbackFuture<S::Future, F>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        FallbackFuture {
            method: req.method().clone(),
            uri: req.uri().clone(),
            fallback: self.fallback.clone(),
            future: self.inner.call(req),
        }
    }
}

pin_project! {
    /// The response future of [`Fallback`].
    pub struct FallbackFuture<Fut, F> {
        #[pin]
        future: Fut,
        method: Method,
        uri: Uri,
        fallback: F,
    }
}

impl<Fut, F> std::fmt::Debug for FallbackFuture<Fut, F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FallbackFuture").finish_non_exhaustive()
    }
}

impl<Fut, F, B, E> Future for FallbackFuture<Fut, F>
where
    Fut: Future<Output = Result<Response<B>, E>>,
    F: Fn(&Method, &Uri) -> Response<Bytes>,
{
    type Output = Result<Response<ResponseBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let reason = match std::task::ready!(this.future.poll(cx)) {
            Ok(res) if !res.status().is_server_error() => {
                return Poll::Ready(Ok(ResponseBody::map_response(res)));
            }
            Ok(res) => match res.extensions().get::<Refused>().map(|r| r.reason) {
                Some(Reason::BreakerOpen) => "breaker-open",
                Some(Reason::Overloaded) => "overloaded",
                Some(Reason::Timeout) => "timeout",
                None => "error",
            },
            Err(_) => "error",
        };
        metrics::counter!("protothrive_fallbacks_total", "reason" => reason).increment(1);
        let mut res = (this.fallback)(this.method, this.uri);
        res.headers_mut()
            .insert(FALLBACK.clone(), HeaderValue::from_static(reason));
        Poll::Ready(Ok(ResponseBody::map_problem(res)))
    }
}
