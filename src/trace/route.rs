use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use http::{Request, Response};
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use crate::identity::Route;

/// Hands the matched route template out to [`TraceLayer`](super::TraceLayer) when the trace
/// layer sits outside the router (around the router as a whole, or a router that does not layer
/// each route) and so never sees the request after routing. Behind axum's `Router::layer`, which
/// wraps each route after routing, the trace layer reads axum's `MatchedPath` itself and this
/// layer is not needed. It hands on the request's [`Route`]
/// (or, with the `axum` feature, axum's `MatchedPath`) goes to the traced request being served
/// (see [`current`](super::current)) as soon as the router has matched it — its in-flight gauge
/// moves from `route="unmatched"` to that route for the rest of its life, so the sum over routes
/// stays the number of requests in flight — or, outside a traced request, into the response's
/// extensions.
///
/// With axum, add it with `Router::route_layer`, so that it runs only for matched routes (a
/// request no route matches is then labelled `unmatched`).
///
/// ```
/// use http::{Request, Response};
/// use protothrive::identity::Route;
/// use protothrive::trace::MatchedRouteLayer;
/// use tower::{Layer, ServiceExt, service_fn};
///
/// let svc = MatchedRouteLayer.layer(service_fn(|_req: Request<()>| async {
///     Ok::<_, std::convert::Infallible>(Response::new(()))
/// }));
/// let mut req = Request::new(());
/// req.extensions_mut().insert(Route::new("/users/{id}"));
/// let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
/// let res = rt.block_on(svc.oneshot(req)).unwrap();
/// assert_eq!(Route::of(res.extensions()), Some("/users/{id}"));
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct MatchedRouteLayer;

impl<S> Layer<S> for MatchedRouteLayer {
    type Service = MatchedRoute<S>;

    fn layer(&self, inner: S) -> Self::Service {
        MatchedRoute { inner }
    }
}

/// The service of [`MatchedRouteLayer`].
///
/// ```
/// use protothrive::trace::{MatchedRoute, MatchedRouteLayer};
/// use tower::Layer;
/// let svc: MatchedRoute<()> = MatchedRouteLayer.layer(());
/// let () = svc.into_inner();
/// ```
#[derive(Debug, Clone)]
pub struct MatchedRoute<S> {
    inner: S,
}

impl<S> MatchedRoute<S> {
    crate::macros::inner_service_accessors!();
}

/// What is copied: a `Route`, or axum's `MatchedPath` (an `Arc<str>` inside, so no copy of the
/// text).
#[derive(Debug, Clone)]
pub(super) enum Matched {
    Route(Route),
    #[cfg(feature = "axum")]
    Axum(axum::extract::MatchedPath),
}

impl Matched {
    pub(super) fn as_str(&self) -> &str {
        match self {
            Self::Route(r) => r.as_str(),
            #[cfg(feature = "axum")]
            Self::Axum(m) => m.as_str(),
        }
    }
}

pub(super) fn matched(ext: &http::Extensions) -> Option<Matched> {
    if let Some(r) = ext.get::<Route>() {
        return Some(Matched::Route(r.clone()));
    }
    #[cfg(feature = "axum")]
    if let Some(m) = ext.get::<axum::extract::MatchedPath>() {
        return Some(Matched::Axum(m.clone()));
    }
    None
}

impl<S, B, ResBody> Service<Request<B>> for MatchedRoute<S>
where
    S: Service<Request<B>, Response = Response<ResBody>>,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = MatchedRouteFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        // A traced request takes the route now; otherwise it goes out with the response.
        let matched = matched(req.extensions()).filter(|m| !super::current::routed(m.as_str()));
        MatchedRouteFuture {
            matched,
            inner: self.inner.call(req),
        }
    }
}

pin_project! {
    /// The future of [`MatchedRoute`].
    #[derive(Debug)]
    pub struct MatchedRouteFuture<F> {
        #[pin]
        inner: F,
        matched: Option<Matched>,
    }
}

impl<F, ResBody, E> Future for MatchedRouteFuture<F>
where
    F: Future<Output = Result<Response<ResBody>, E>>,
{
    type Output = Result<Response<ResBody>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut res = ready!(this.inner.poll(cx))?;
        match this.matched.take() {
            Some(Matched::Route(r)) => {
                res.extensions_mut().insert(r);
            }
            #[cfg(feature = "axum")]
            Some(Matched::Axum(m)) => {
                res.extensions_mut().insert(m);
            }
            None => {}
        }
        Poll::Ready(Ok(res))
    }
}
