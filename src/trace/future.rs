//! The trace layer's future and response body: the response head recorded, 5xx and panics
//! logged once, the request finished when the body ends or is dropped.

use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Response, StatusCode};
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use tracing::Span;
use tracing::field::{Value, display};

use super::config::Config;
use super::current::{Current, Guard, enter};
use super::metrics::{UNMATCHED, count_error};
use super::route::{Matched, matched};
use super::span::{Later, Plain};
use crate::error::{Problem, code};
use crate::response::ResponseBody;

/// What the future carries from the request to its response.
#[derive(Debug)]
pub(super) struct State {
    /// The request (and the layer's settings through it), counted in flight until the body
    /// ends.
    pub(super) guard: Guard,
    pub(super) span: Span,
    /// The message of a panic in the inner service's `call`.
    pub(super) panic: Option<String>,
}

pin_project! {
    /// The future of [`Trace`].
    #[derive(Debug)]
    pub struct TraceFuture<F> {
        // `None` when calling the inner service panicked.
        #[pin]
        inner: Option<F>,
        state: Option<State>,
        // A layer switched off: the inner future's answer, only its body type mapped.
        passthrough: bool,
    }
}

impl State {
    /// The request being served.
    fn current(&self) -> &Arc<Current> {
        &self.guard.current
    }

    /// The layer's settings.
    fn config(&self) -> &Config {
        &self.guard.current.config
    }
}

impl<F> TraceFuture<F> {
    /// The future of a call (`None` when the call itself panicked).
    pub(super) fn new(inner: Option<F>, state: State) -> Self {
        Self {
            inner,
            state: Some(state),
            passthrough: false,
        }
    }

    /// The inner future as it is (a layer switched off).
    pub(super) fn passthrough(inner: F) -> Self {
        Self {
            inner: Some(inner),
            state: None,
            passthrough: true,
        }
    }
}

impl<F, ResBody, E> Future for TraceFuture<F>
where
    F: Future<Output = Result<Response<ResBody>, E>>,
    ResBody: Body<Data = Bytes>,
{
    type Output = Result<Response<TraceBody<ResBody>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        if *this.passthrough {
            return match this.inner.as_pin_mut() {
                Some(inner) => inner
                    .poll(cx)
                    .map(|r| r.map(|res| res.map(TraceBody::untraced))),
                None => Poll::Pending,
            };
        }
        let Some(state) = this.state.as_ref() else {
            // Polled after completion: a contract breach by the caller; stay pending rather
            // than panic (the waker is not stored, so this never wakes again).
            tracing::error!("TraceFuture polled after completion");
            return Poll::Pending;
        };
        let polled = match this.inner.as_mut().as_pin_mut() {
            None => Err(state.panic.clone().unwrap_or_default()),
            Some(inner) => {
                let _current = enter(state.current());
                let _entered = state.span.enter();
                if state.config().catch_panics {
                    catch_unwind(AssertUnwindSafe(|| inner.poll(cx)))
                        .map_err(|payload| panic_message(&*payload))
                } else {
                    Ok(inner.poll(cx))
                }
            }
        };
        let (result, panicked_now) = match polled {
            Ok(Poll::Pending) => return Poll::Pending,
            Ok(Poll::Ready(r)) => (r.map(|res| res.map(ResponseBody::inner)), false),
            Err(message) => (Ok(panicked(state, &message)), true),
        };
        this.inner.set(None);
        let state = this
            .state
            .take()
            .map(|s| finish_head(s, result.as_ref().ok(), panicked_now));
        Poll::Ready(result.map(|res| {
            let (mut parts, body) = res.into_parts();
            let done = state.map(|(s, route)| {
                echo_headers(&s, &mut parts.headers);
                Done {
                    state: s,
                    route,
                    status: parts.status.as_u16(),
                    bytes: 0,
                }
            });
            Response::from_parts(parts, TraceBody { inner: body, done })
        }))
    }
}

/// The text of a panic payload (`panic!` with a literal or a formatted message).
pub(super) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_owned())
}

/// The 500 problem for a panic, logged and counted once (by `finish_head`'s caller, not as a
/// 5xx again).
fn panicked<B>(state: &State, message: &str) -> Response<ResponseBody<B>> {
    let cur = state.current();
    tracing::error!(
        parent: &state.span,
        request_id = cur.request_id.as_str(),
        trace_id = cur.trace_id.as_str(),
        panic = message,
        "the service panicked; answered 500"
    );
    state.span.record("error.type", "panic");
    if state.config().metrics {
        count_error(UNMATCHED, "panic");
    }
    let mut ext = http::Extensions::new();
    ext.insert(cur.request_id.clone());
    ext.insert(cur.trace_id.clone());
    let res = Problem::new(StatusCode::INTERNAL_SERVER_ERROR, code::INTERNAL).render_for(&ext);
    ResponseBody::map_problem(res)
}

/// Logs and counts a 5xx, records a failure and the `Cache-Status` on the span; returns the
/// route when the request did not name it on its way in (the end of the body records it).
fn finish_head<B>(
    state: State,
    res: Option<&Response<B>>,
    panicked: bool,
) -> (State, Option<Matched>) {
    // Taken from the request on its way in, or (no `current` around the router) from the
    // response.
    let route = match state.current().route() {
        Some(_) => None,
        None => res.and_then(|r| matched(r.extensions())),
    };
    let routed = state
        .current()
        .route()
        .or(route.as_ref().map(Matched::as_str));
    let label = routed.unwrap_or(UNMATCHED);
    let span = &state.span;
    match res {
        Some(res) => {
            let status = res.status().as_u16();
            if !span.is_disabled()
                && let Some(v) = res
                    .headers()
                    .get("cache-status")
                    .and_then(|v| v.to_str().ok())
            {
                span.record("cache.status", v);
            }
            if status >= 500 {
                span.record("otel.status_code", "ERROR");
            }
            if status >= 500 && !panicked {
                span.record("error.type", status);
                let cur = state.current();
                tracing::error!(
                    parent: span,
                    request_id = cur.request_id.as_str(),
                    trace_id = cur.trace_id.as_str(),
                    route = label,
                    status,
                    "server error"
                );
                if state.config().metrics {
                    count_error(label, res.status().as_str());
                }
            }
        }
        None => {
            span.record("otel.status_code", "ERROR");
            span.record("error.type", "service_error");
        }
    }
    (state, route)
}

fn echo_headers(state: &State, headers: &mut http::HeaderMap) {
    // The entry API hashes each (custom) name once; a value set further in is kept.
    if let http::header::Entry::Vacant(v) = headers.entry(&super::TRACEPARENT) {
        v.insert(state.current().traceparent.clone());
    }
    if let Some(id) = &state.current().echo
        && let http::header::Entry::Vacant(v) = headers.entry(&state.config().header)
    {
        v.insert(id.clone());
    }
}

/// Finishes the request when the body ends or is dropped: metrics, the response's fields,
/// span close.
#[derive(Debug)]
struct Done {
    state: State,
    route: Option<Matched>,
    status: u16,
    bytes: u64,
}

impl Done {
    /// The response's fields in one `record`: status, route, body size.
    fn record(&self) {
        let s = &self.state;
        let Some(f) = Later::of(&s.span) else {
            return;
        };
        let routed = s
            .current()
            .route()
            .or(self.route.as_ref().map(Matched::as_str))
            .map(|r| display(Plain(r)));
        s.span.record_all(&f.set.value_set(&[
            (&f.status, Some(&self.status as &dyn Value)),
            (&f.route, routed.as_ref().map(|r| r as &dyn Value)),
            (&f.response_size, Some(&self.bytes as &dyn Value)),
        ]));
    }
}

impl Drop for Done {
    fn drop(&mut self) {
        let s = &self.state;
        if !s.span.is_disabled() {
            self.record();
        }
        if s.config().metrics {
            let seconds = s
                .config()
                .clock
                .instant()
                .duration_since(s.current().start)
                .as_secs_f64();
            let method = s.current().method;
            match s.current().routed_handles() {
                Some(routed) => routed.record(method, self.status, seconds),
                None => {
                    let label = self.route.as_ref().map_or(UNMATCHED, Matched::as_str);
                    let handles = s.config().red.handles(label);
                    handles.record(method, self.status, seconds);
                }
            }
        }
    }
}

pin_project! {
    /// The response body of [`Trace`]: the inner body (or a problem of its own), with the
    /// request's in-flight count and metrics finished when it ends or is dropped.
    #[derive(Debug)]
    pub struct TraceBody<B> {
        #[pin]
        inner: ResponseBody<B>,
        done: Option<Done>,
    }
}

impl<B> Body for TraceBody<B>
where
    B: Body<Data = Bytes>,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.project();
        let frame = std::task::ready!(this.inner.poll_frame(cx));
        match &frame {
            Some(Ok(f)) => {
                if let (Some(done), Some(data)) = (this.done.as_mut(), f.data_ref()) {
                    done.bytes += data.len() as u64;
                }
            }
            Some(Err(_)) | None => {
                this.done.take();
            }
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl<B> TraceBody<B> {
    /// The body of a response that was not traced (a stack position left out).
    pub fn untraced(body: B) -> Self {
        Self {
            inner: ResponseBody::inner(body),
            done: None,
        }
    }
}
