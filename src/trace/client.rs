use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use http::{HeaderMap, Request, Response};
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;
use tracing::Span;
use tracing::field::Empty;

use super::{TraceContext, current, to_hex};
use crate::identity::RequestContext;

/// Propagates the trace into outbound calls: each call is a new child span of the request being
/// served (the request's [`TraceContext::of`] when the outbound request carries one, else
/// [`current`]), written into `traceparent`/`tracestate` — replacing whatever the caller set —
/// and opened as one `tracing` client span. A call made outside any request starts a new trace.
///
/// ```
/// use http::{Request, Response};
/// use protothrive::trace::{TraceClientLayer, TraceContext};
/// use tower::{Layer, ServiceExt, service_fn};
///
/// // The "remote" service echoes the traceparent it received.
/// let remote = service_fn(|req: Request<()>| async move {
///     let tp = req.headers()["traceparent"].to_str().unwrap().to_owned();
///     Ok::<_, std::convert::Infallible>(Response::new(tp))
/// });
/// let client = TraceClientLayer::new().layer(remote);
///
/// let server_span = TraceContext::root(true);
/// let mut req = Request::new(());
/// req.extensions_mut().insert(server_span.clone());
/// let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
/// let sent = rt.block_on(client.oneshot(req)).unwrap().into_body();
/// assert!(sent.starts_with(&format!("00-{}-", server_span.trace_id_hex())));
/// // A new span id, not the server span's.
/// assert!(!sent.contains(&protothrive::trace::to_hex(&server_span.span_id())));
/// ```
#[derive(Debug, Clone, Copy, Default)]
#[must_use]
pub struct TraceClientLayer {
    _private: (),
}

impl TraceClientLayer {
    /// The layer.
    pub fn new() -> Self {
        Self::default()
    }
}

impl<S> Layer<S> for TraceClientLayer {
    type Service = TraceClient<S>;

    fn layer(&self, inner: S) -> Self::Service {
        TraceClient { inner }
    }
}

/// The service of [`TraceClientLayer`].
///
/// ```
/// use protothrive::trace::{TraceClient, TraceClientLayer};
/// use tower::Layer;
/// let svc: TraceClient<()> = TraceClientLayer::new().layer(());
/// let () = svc.into_inner();
/// ```
#[derive(Debug, Clone)]
pub struct TraceClient<S> {
    inner: S,
}

impl<S> TraceClient<S> {
    crate::macros::inner_service_accessors!();
}

/// The context of a new outbound call: a child of `parent`, else of the request being served on
/// this task, else a new sampled trace.
///
/// ```
/// let call = protothrive::trace::outbound(None);
/// assert_eq!(call.parent_id(), None); // no request is being served here
/// ```
#[must_use]
pub fn outbound(parent: Option<&TraceContext>) -> TraceContext {
    match parent {
        Some(p) => p.child(),
        None => current().map_or_else(|| TraceContext::root(true), |c| c.context.child()),
    }
}

/// Writes the trace of a new outbound call into `headers` (for clients that are not tower
/// services, such as a `reqwest::RequestBuilder`'s headers); returns the call's context.
///
/// ```
/// let mut headers = http::HeaderMap::new();
/// let call = protothrive::trace::inject(&mut headers);
/// assert_eq!(headers["traceparent"], call.traceparent().to_string());
/// ```
pub fn inject(headers: &mut HeaderMap) -> TraceContext {
    let call = outbound(None);
    call.inject(headers);
    call
}

impl<S, B, ResBody> Service<Request<B>> for TraceClient<S>
where
    S: Service<Request<B>, Response = Response<ResBody>>,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = TraceClientFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        let call = outbound(TraceContext::of(req.extensions()));
        call.inject(req.headers_mut());
        let span = tracing::info_span!(
            target: "protothrive::trace",
            "client request",
            otel.kind = "client",
            otel.status_code = Empty,
            http.request.method = req.method().as_str(),
            server.address = req.uri().host().unwrap_or_default(),
            url.path = req.uri().path(),
            http.response.status_code = Empty,
            trace_id = Empty,
            span_id = Empty,
            parent_span_id = Empty,
            sampled = call.sampled(),
        );
        if !span.is_disabled() {
            span.record("trace_id", call.trace_id_hex().as_str());
            span.record("span_id", to_hex(&call.span_id()).as_str());
            if let Some(p) = call.parent_id() {
                span.record("parent_span_id", to_hex(&p).as_str());
            }
        }
        // A forwarded request carries the server's context: the call's replaces its trace there.
        match req.extensions_mut().get_mut::<RequestContext>() {
            Some(c) => c.trace = Some(call),
            None => {
                req.extensions_mut().insert(call);
            }
        }
        let inner = span.in_scope(|| self.inner.call(req));
        TraceClientFuture { inner, span }
    }
}

pin_project! {
    /// The future of [`TraceClient`].
    #[derive(Debug)]
    pub struct TraceClientFuture<F> {
        #[pin]
        inner: F,
        span: Span,
    }
}

impl<F, ResBody, E> Future for TraceClientFuture<F>
where
    F: Future<Output = Result<Response<ResBody>, E>>,
{
    type Output = Result<Response<ResBody>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let out = ready!(this.span.in_scope(|| this.inner.poll(cx)));
        match &out {
            Ok(res) => {
                this.span
                    .record("http.response.status_code", res.status().as_u16());
                if res.status().is_server_error() {
                    this.span.record("otel.status_code", "ERROR");
                }
            }
            Err(_) => {
                this.span.record("otel.status_code", "ERROR");
            }
        }
        Poll::Ready(out)
    }
}
