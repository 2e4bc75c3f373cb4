use std::cell::RefCell;
use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};

use super::TraceContext;
use super::config::Config;
use super::metrics::RouteHandles;
use crate::error::{RequestId, TraceId};

/// The request being served on this task: its trace context and ids. See [`current`].
#[derive(Debug)]
pub struct Current {
    /// The server span's trace position.
    pub context: TraceContext,
    /// The request id.
    pub request_id: RequestId,
    /// The trace id, as problems carry it.
    pub trace_id: TraceId,
    /// The layer's settings.
    pub(super) config: Arc<Config>,
    /// The request's method, as a metrics label index.
    pub(super) method: usize,
    /// The route the request counts on when it arrived routed (behind axum's `Router::layer`).
    /// A field of its own: a `OnceLock` made full still takes its synchronised first write.
    pub(super) arrived_on: Option<Arc<RouteHandles>>,
    /// The route the request counts on once a router further in has matched one.
    pub(super) route: OnceLock<Arc<RouteHandles>>,
    /// When the request arrived (its duration's start).
    pub(super) start: std::time::Instant,
    /// The request id to echo on the response (`None`: an outer layer echoes it).
    pub(super) echo: Option<http::HeaderValue>,
    /// The `traceparent` to answer with (this request's span as the caller's parent).
    pub(super) traceparent: http::HeaderValue,
}

impl Current {
    /// The handles the request counts on: its route's once routed, `unmatched` before.
    pub(super) fn handles(&self) -> &RouteHandles {
        self.routed_handles().unwrap_or(self.config.red.unmatched())
    }

    /// The handles of the route the request counts on, if it has one yet.
    pub(super) fn routed_handles(&self) -> Option<&Arc<RouteHandles>> {
        self.arrived_on.as_ref().or_else(|| self.route.get())
    }

    /// The route the router matched, if it has.
    pub(super) fn route(&self) -> Option<&str> {
        self.routed_handles().map(|h| h.label())
    }

    /// Takes `route` as the request's route (the first route named wins), moving its in-flight
    /// count from `unmatched` to it.
    fn enter_route(&self, route: &str) {
        if self.routed_handles().is_some() {
            return;
        }
        let config = &self.config;
        if self.route.set(config.red.handles(route)).is_ok() && config.metrics {
            self.handles().in_flight(self.method).increment(1.0);
            config.red.unmatched().in_flight(self.method).decrement(1.0);
        }
    }
}

/// Tells the current request which route the router matched, so its span, in-flight count and
/// metrics carry that route; `false` when no traced request is current.
pub(super) fn routed(route: &str) -> bool {
    CURRENT
        .try_with(|c| match c.borrow().as_ref() {
            Some(cur) => {
                cur.enter_route(route);
                true
            }
            None => false,
        })
        .unwrap_or(false)
}

thread_local! {
    static CURRENT: RefCell<Option<Arc<Current>>> = const { RefCell::new(None) };
}

/// The request being served on this task, while [`TraceLayer`](super::TraceLayer)'s future is
/// polled — in a handler and in everything it awaits on the same task (not in a task it
/// spawns). A problem rendered without request extensions takes its ids from here, and
/// [`TraceClientLayer`](super::TraceClientLayer) its parent span.
///
/// ```
/// // Outside a traced request there is none.
/// assert!(protothrive::trace::current().is_none());
/// ```
#[must_use]
pub fn current() -> Option<Arc<Current>> {
    CURRENT.with(|c| c.borrow().clone())
}

/// Makes `cur` the current request until the returned guard drops, which restores the previous
/// one (also when unwinding). A guard rather than a closure: the request moves into the inner
/// `call` once, not into each nested closure on its way there.
pub(super) fn enter(cur: &Arc<Current>) -> Scope {
    Scope(CURRENT.with(|c| c.borrow_mut().replace(Arc::clone(cur))))
}

/// The guard of [`enter`]: holds the request that was current before.
pub(super) struct Scope(Option<Arc<Current>>);

impl Drop for Scope {
    fn drop(&mut self) {
        let previous = self.0.take();
        // `try_with`: nothing to restore while the thread is being torn down.
        let _ = CURRENT.try_with(|c| *c.borrow_mut() = previous);
    }
}

/// Counts a request in flight until dropped: on `unmatched` until the router names its route.
/// The future and body reach the request (and through it the layer's settings) through it.
#[derive(Debug)]
pub(super) struct Guard {
    /// The request counted; its `config` is the layer's.
    pub(super) current: Arc<Current>,
}

impl Guard {
    pub(super) fn enter(current: Arc<Current>) -> Self {
        let config = &current.config;
        config.in_flight.0.fetch_add(1, Ordering::Relaxed);
        if config.metrics {
            current.handles().in_flight(current.method).increment(1.0);
        }
        Self { current }
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        let cur = &self.current;
        cur.config.in_flight.0.fetch_sub(1, Ordering::Relaxed);
        if cur.config.metrics {
            cur.handles().in_flight(cur.method).decrement(1.0);
        }
    }
}

/// The ids of the server span that [`TraceLayer`](super::TraceLayer) is opening on this thread,
/// set only while its `tracing` span is created. The span carries no `span_id` or `sampled`
/// field — a formatting subscriber would write both into every request's span — so the OTLP
/// exporter takes them from here as the span opens.
#[cfg(feature = "otel")]
#[derive(Debug, Clone, Copy)]
pub(super) struct Opening {
    pub(super) trace_id: [u8; 16],
    pub(super) span_id: [u8; 8],
    pub(super) parent_id: Option<[u8; 8]>,
    pub(super) sampled: bool,
}

#[cfg(feature = "otel")]
thread_local! {
    static OPENING: std::cell::Cell<Option<Opening>> = const { std::cell::Cell::new(None) };
}

/// Runs `open` (which creates the server span of `ctx`) with `ctx`'s ids as the span opening.
pub(super) fn opening<R>(ctx: &TraceContext, open: impl FnOnce() -> R) -> R {
    #[cfg(feature = "otel")]
    {
        struct Clear;
        impl Drop for Clear {
            fn drop(&mut self) {
                let _ = OPENING.try_with(|o| o.set(None));
            }
        }
        OPENING.with(|o| {
            o.set(Some(Opening {
                trace_id: ctx.trace_id,
                span_id: ctx.span_id,
                parent_id: ctx.parent_id,
                sampled: ctx.sampled(),
            }));
        });
        let _clear = Clear;
        open()
    }
    #[cfg(not(feature = "otel"))]
    {
        let _ = ctx;
        open()
    }
}

/// The server span being opened on this thread, if one is.
#[cfg(feature = "otel")]
pub(super) fn opened() -> Option<Opening> {
    OPENING.try_with(std::cell::Cell::get).ok().flatten()
}
