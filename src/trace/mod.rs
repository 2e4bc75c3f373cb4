//! Tracing and RED metrics: W3C Trace Context in and out, one span per request, request ids in
//! every problem, bounded-cardinality metrics, outbound propagation.
//!
//! * [`TraceLayer`] (server side) continues the caller's trace or starts one ([`context`]: the
//!   W3C `traceparent`/`tracestate` parser and formatter, Level 1 and 2), puts a
//!   [`TraceContext`], the [`TraceId`](crate::error::TraceId) and the
//!   [`RequestId`](crate::error::RequestId) in the request's one
//!   [`RequestContext`](crate::identity::RequestContext) extension (so every problem rendered
//!   further in carries both; read them with `TraceContext::of`, `TraceId::of`, `RequestId::of`), answers with `traceparent` and `X-Request-Id`, opens one
//!   `tracing` span with OpenTelemetry HTTP semantic-convention fields, records RED metrics by
//!   method, matched route and status class, keeps an in-flight count that lasts until the
//!   response body ends or is dropped, and turns a panic in the service into a 500 problem.
//! * [`MatchedRouteLayer`] (inside the router, e.g. axum's `Router::route_layer`) hands the matched
//!   route template out to a trace layer that wraps the router from outside; behind axum's
//!   `Router::layer` (each route wrapped after routing) the trace layer reads `MatchedPath` itself.
//!   A request with no route known is labelled `unmatched`, so the metrics stay bounded whatever
//!   paths clients send.
//! * [`TraceClientLayer`] (outbound) injects `traceparent`/`tracestate` into calls made while a
//!   request is served, with a new span id per call.
//! * [`otel`] (feature `otel`) exports those spans with OTLP/HTTP, ids and sampling unchanged.
//! * [`current`] is the context of the request being served on this task, for code that has no
//!   request at hand (a handler's error type rendering a problem, an outbound client).
//!
//! Why by hand and not tower-http's `TraceLayer` + `SetRequestId` + an OpenTelemetry propagator:
//! tower-http's request ids are UUIDs from the operating system's random source (a system call
//! and several allocations per request) kept only in a header, its spans do not know the matched
//! route or the trace context, and the `opentelemetry` propagator pulls a large dependency for a
//! 55-byte header. Here the ids come from a per-thread generator and everything lands in request
//! extensions the other layers read.
//!
//! The request span (target `protothrive::trace`, name `request`, level `INFO`) and when each
//! field is recorded — at creation, or in one `record` when the response body ends; a field with
//! no value is not recorded at all. With no subscriber taking `INFO` there is no span, and
//! nothing of it is built:
//!
//! | field | value | recorded |
//! |---|---|---|
//! | `otel.kind` | `server` | at creation |
//! | `http.request.method` | the method (`_OTHER` for an unknown one) | at creation |
//! | `trace_id` | 32 hex digits | at creation |
//! | `parent_span_id` | the caller's span id, 16 hex digits (a continued trace only) | at creation |
//! | `request_id` | the request id | at creation |
//! | `user_agent.original`, `client.address`, `http.request.body.size` | the `User-Agent`, the [`ClientIp`](crate::identity::ClientIp), the `Content-Length` | at creation, when present |
//! | `http.response.status_code`, `http.route`, `http.response.body.size` | status, matched route template (none when unmatched), bytes sent | when the body ends or is dropped |
//! | `cache.status` | the response's `Cache-Status` | when the response head leaves |
//! | `otel.status_code`, `error.type` | `ERROR`; `panic`, `service_error` or the 5xx status | on a failure |
//! | `auth.outcome`, `rate_limit.decision`, `rate_limit.key`, `breaker.state` | the other layers' decisions | by those layers |
//!
//! The span's own id and the sampled flag are not fields (a formatting subscriber would write
//! them into every request's span): the span id is the one in the response's `traceparent`, and
//! the [`otel`] exporter takes both from the trace layer as the span opens. Values that carry
//! no spaces or control characters (the ids, method, route) are given as `Display`, so a
//! formatting subscriber writes them without quotes; the user agent keeps its quotes and escapes.
//! With `tracing_subscriber::fmt`, the span's formatting is most of the layer's cost
//! (`BENCHMARKS.md` § trace).
//!
//! Cost with no `tracing` subscriber and no `metrics` recorder: one allocation for the request's
//! state, the ids and the `traceparent` answered copied into the thread's buffer of header values
//! (one allocation per 2 KiB of them), the context extension (shared with the other layers),
//! three header reads (`X-Request-Id`, `traceparent`, `tracestate`) and up to three writes, and
//! the route's metric handles (kept by the route's own service behind axum's `Router::layer`,
//! otherwise a read lock and a hash). Over loopback HTTP that is about the instructions of
//! tower-http's request id + `TraceLayer` (~5.8 k per request over axum's own layering) and
//! ~1 µs of server CPU per request under load on a 2-core VM; `BENCHMARKS.md` § trace has the
//! figures and the commands that give them.

mod config;
pub mod context;
mod current;
mod future;
mod ids;
mod layer;
mod metrics;
mod route;
mod span;

mod client;
#[cfg(feature = "otel")]
pub mod otel;

pub use client::{TraceClient, TraceClientFuture, TraceClientLayer, inject, outbound};
pub use config::{InFlight, Sampler};
pub use context::{
    Incoming, ParseError, RANDOM, SAMPLED, TRACEPARENT, TRACESTATE, TraceParent, TraceState,
};
pub use current::{Current, current};
pub use future::{TraceBody, TraceFuture};
pub use ids::{new_span_id, new_trace_id, to_hex};
pub use layer::{Trace, TraceLayer};
pub use metrics::METRICS;
pub use route::{MatchedRoute, MatchedRouteFuture, MatchedRouteLayer};

use http::HeaderMap;

/// The trace position of one request (or one outbound call): its trace, its own span, its
/// parent span, the flags and the vendors' state. A request extension set by [`TraceLayer`].
///
/// ```
/// use protothrive::trace::{Incoming, TraceContext, TraceParent};
///
/// let caller = TraceParent::parse(b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")?;
/// let ctx = TraceContext::continue_from(caller, Default::default());
/// assert_eq!(ctx.trace_id_hex(), "4bf92f3577b34da6a3ce929d0e0e4736");
/// assert_eq!(ctx.parent_id(), Some(caller.parent_id));
/// assert!(ctx.sampled());
///
/// // An outbound call is a child span in the same trace.
/// let call = ctx.child();
/// assert_eq!(call.trace_id(), ctx.trace_id());
/// assert_eq!(call.parent_id(), Some(ctx.span_id()));
/// assert_ne!(call.span_id(), ctx.span_id());
/// # Ok::<(), protothrive::trace::ParseError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceContext {
    trace_id: [u8; 16],
    span_id: [u8; 8],
    parent_id: Option<[u8; 8]>,
    flags: u8,
    state: TraceState,
}

impl TraceContext {
    /// A new trace: random ids, the `random` flag, sampled as asked.
    #[must_use]
    pub fn root(sampled: bool) -> Self {
        Self {
            trace_id: new_trace_id(),
            span_id: new_span_id(),
            parent_id: None,
            flags: RANDOM | if sampled { SAMPLED } else { 0 },
            state: TraceState::default(),
        }
    }

    /// A span in the caller's trace: same trace id, flags and state, a new span id.
    #[must_use]
    pub fn continue_from(caller: TraceParent, state: TraceState) -> Self {
        Self {
            trace_id: caller.trace_id,
            span_id: new_span_id(),
            parent_id: Some(caller.parent_id),
            flags: caller.flags & (SAMPLED | RANDOM),
            state,
        }
    }

    /// A child span of this one (an outbound call).
    #[must_use]
    pub fn child(&self) -> Self {
        Self {
            span_id: new_span_id(),
            parent_id: Some(self.span_id),
            ..self.clone()
        }
    }

    /// The trace id.
    #[must_use]
    pub fn trace_id(&self) -> [u8; 16] {
        self.trace_id
    }

    /// The trace id as 32 lowercase hex digits.
    #[must_use]
    pub fn trace_id_hex(&self) -> String {
        to_hex(&self.trace_id)
    }

    /// This span's id.
    #[must_use]
    pub fn span_id(&self) -> [u8; 8] {
        self.span_id
    }

    /// The parent span's id (`None` for a root).
    #[must_use]
    pub fn parent_id(&self) -> Option<[u8; 8]> {
        self.parent_id
    }

    /// The trace flags ([`SAMPLED`], [`RANDOM`]).
    #[must_use]
    pub fn flags(&self) -> u8 {
        self.flags
    }

    /// Whether the trace is sampled.
    #[must_use]
    pub fn sampled(&self) -> bool {
        self.flags & SAMPLED != 0
    }

    /// The vendors' state.
    #[must_use]
    pub fn state(&self) -> &TraceState {
        &self.state
    }

    /// The `traceparent` that names this span as the parent of the next one.
    #[must_use]
    pub fn traceparent(&self) -> TraceParent {
        TraceParent {
            trace_id: self.trace_id,
            parent_id: self.span_id,
            flags: self.flags,
        }
    }

    /// Writes `traceparent` (and `tracestate` when not empty) into `headers`, replacing what
    /// was there.
    ///
    /// ```
    /// let ctx = protothrive::trace::TraceContext::root(true);
    /// let mut h = http::HeaderMap::new();
    /// ctx.inject(&mut h);
    /// assert_eq!(h["traceparent"].len(), 55);
    /// assert!(h.get("tracestate").is_none());
    /// ```
    pub fn inject(&self, headers: &mut HeaderMap) {
        headers.insert(&TRACEPARENT, self.traceparent().to_header_value());
        match self.state.to_header_value() {
            Some(v) => {
                headers.insert(&TRACESTATE, v);
            }
            None => {
                headers.remove(&TRACESTATE);
            }
        }
    }
}

#[cfg(test)]
mod tests;
