use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Request, Response};
use http_body::Body;
use tower_layer::Layer;
use tower_service::Service;

use super::config::{Config, InFlight, Sampler};
use super::current::{Current, Guard, enter};
use super::future::{State, TraceBody, TraceFuture, panic_message};
use super::metrics::{Red, RouteHandles, method_index};
use super::{Incoming, TraceContext};
use crate::clock::{self, SharedClock};
use crate::error::{RequestId, TraceId};
use crate::identity::RequestContext;
use crate::request_id::{X_REQUEST_ID, incoming, install, new_hex};

/// Server-side tracing: trace context in and out, request ids, one span per request, RED
/// metrics, an in-flight count and panics turned into problems. See the [module docs](super).
///
/// ```
/// use http::{Request, Response};
/// use protothrive::error::{RequestId, TraceId};
/// use protothrive::trace::TraceLayer;
/// use tower::{Layer, ServiceExt, service_fn};
///
/// let svc = TraceLayer::new().layer(service_fn(|req: Request<()>| async move {
///     let trace = TraceId::of(req.extensions()).unwrap().as_str().to_owned();
///     Ok::<_, std::convert::Infallible>(Response::new(http_body_util::Full::from(trace)))
/// }));
/// let req = Request::get("/")
///     .header("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
///     .body(())?;
/// let res = tokio::runtime::Builder::new_current_thread().build()?.block_on(svc.oneshot(req))?;
/// let out = res.headers()["traceparent"].to_str()?;
/// assert!(out.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"));
/// assert!(!out.contains("00f067aa0ba902b7")); // our own span id
/// assert_eq!(res.headers()["x-request-id"].len(), 32);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct TraceLayer {
    config: Arc<Config>,
}

impl Default for TraceLayer {
    fn default() -> Self {
        Self {
            config: Arc::new(Config {
                header: X_REQUEST_ID.clone(),
                trust_request_id: true,
                trust_trace: true,
                sampler: Sampler::default(),
                metrics: true,
                catch_panics: true,
                enabled: true,
                clock: clock::system(),
                red: Red::default(),
                in_flight: InFlight::default(),
            }),
        }
    }
}

impl TraceLayer {
    /// Continues incoming traces, keeps sane incoming request ids, samples every root, records
    /// metrics and catches panics.
    pub fn new() -> Self {
        Self::default()
    }

    /// A layer that passes every request through untouched: the stack's trace position when
    /// no trace layer is configured (one branch per request, and no second copy of the inner
    /// service's type, which a present-or-absent slot would add).
    pub(crate) fn disabled() -> Self {
        Self::new().edit(|c| c.enabled = false)
    }

    fn edit(mut self, f: impl FnOnce(&mut Config)) -> Self {
        match Arc::get_mut(&mut self.config) {
            Some(c) => f(c),
            None => {
                let c = &*self.config;
                let mut copy = Config {
                    header: c.header.clone(),
                    trust_request_id: c.trust_request_id,
                    trust_trace: c.trust_trace,
                    sampler: c.sampler,
                    metrics: c.metrics,
                    catch_panics: c.catch_panics,
                    enabled: c.enabled,
                    clock: c.clock.clone(),
                    red: Red::default(),
                    in_flight: InFlight::default(),
                };
                f(&mut copy);
                self.config = Arc::new(copy);
            }
        }
        self
    }

    /// The request-id header (default `X-Request-Id`).
    ///
    /// ```
    /// let _l = protothrive::trace::TraceLayer::new()
    ///     .request_id_header(http::HeaderName::from_static("x-correlation-id"));
    /// ```
    pub fn request_id_header(self, header: HeaderName) -> Self {
        self.edit(|c| c.header = header)
    }

    /// Whether a sane incoming request id is kept (default) or replaced.
    ///
    /// ```
    /// let _l = protothrive::trace::TraceLayer::new().trust_request_id(false);
    /// ```
    pub fn trust_request_id(self, trust: bool) -> Self {
        self.edit(|c| c.trust_request_id = trust)
    }

    /// Whether incoming traces are continued (default) or every request starts a new trace
    /// (a front gate into a private network, as the spec's "restart trace" allows).
    ///
    /// ```
    /// let _l = protothrive::trace::TraceLayer::new().trust_incoming_trace(false);
    /// ```
    pub fn trust_incoming_trace(self, trust: bool) -> Self {
        self.edit(|c| c.trust_trace = trust)
    }

    /// The sampler (default: parent-based, every root sampled).
    ///
    /// ```
    /// use protothrive::trace::{Sampler, TraceLayer};
    /// let _l = TraceLayer::new().sampler(Sampler::parent_based(0.25));
    /// ```
    pub fn sampler(self, sampler: Sampler) -> Self {
        self.edit(|c| c.sampler = sampler)
    }

    /// Whether RED metrics are recorded (default: yes).
    ///
    /// ```
    /// let _l = protothrive::trace::TraceLayer::new().metrics(false);
    /// ```
    pub fn metrics(self, on: bool) -> Self {
        self.edit(|c| c.metrics = on)
    }

    /// Whether a panic in the service becomes a 500 problem (default) or unwinds on.
    ///
    /// ```
    /// let _l = protothrive::trace::TraceLayer::new().catch_panics(false);
    /// ```
    pub fn catch_panics(self, on: bool) -> Self {
        self.edit(|c| c.catch_panics = on)
    }

    /// The clock durations are measured on.
    ///
    /// ```
    /// let _l = protothrive::trace::TraceLayer::new().clock(protothrive::clock::system());
    /// ```
    pub fn clock(self, clock: SharedClock) -> Self {
        self.edit(|c| c.clock = clock)
    }

    /// The in-flight count of this layer's requests.
    #[must_use]
    pub fn in_flight(&self) -> InFlight {
        self.config.in_flight.clone()
    }

    /// The request-id header this layer reads and writes.
    #[must_use]
    pub fn request_id_header_name(&self) -> &HeaderName {
        &self.config.header
    }

    /// Whether a sane incoming request id is kept.
    pub(crate) fn trusts_request_id(&self) -> bool {
        self.config.trust_request_id
    }
}

impl<S> Layer<S> for TraceLayer {
    type Service = Trace<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Trace {
            inner,
            shared: Arc::new(Shared {
                config: self.config.clone(),
                route: OnceLock::new(),
            }),
        }
    }
}

/// The service of [`TraceLayer`].
///
/// ```
/// use protothrive::trace::{Trace, TraceLayer};
/// use tower::Layer;
/// let svc: Trace<()> = TraceLayer::new().layer(());
/// let () = svc.into_inner();
/// ```
#[derive(Debug, Clone)]
pub struct Trace<S> {
    inner: S,
    shared: Arc<Shared>,
}

/// What the clones of one [`Trace`] service share: the layer's settings and the route handles
/// of the first route it served. Under axum's `Router::layer` each route has a service of its
/// own (cloned per request), so its requests find their route's metric handles here instead of
/// in the layer's route table (a read lock and a hash per request).
#[derive(Debug)]
struct Shared {
    config: Arc<Config>,
    route: OnceLock<Arc<RouteHandles>>,
}

impl<S> Trace<S> {
    /// The metric handles of `label`: the service's own route's, or the layer's table's for
    /// another route (a service around a whole router serves many).
    fn route_handles(&self, label: &str) -> Arc<RouteHandles> {
        let shared = &*self.shared;
        let own = shared
            .route
            .get_or_init(|| shared.config.red.handles(label));
        if own.label() == label {
            own.clone()
        } else {
            shared.config.red.handles(label)
        }
    }
}

impl<S> Trace<S> {
    crate::macros::inner_service_accessors!();
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for Trace<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    ResBody: Body<Data = Bytes>,
{
    type Response = Response<TraceBody<ResBody>>;
    type Error = S::Error;
    type Future = TraceFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqBody>) -> Self::Future {
        let c = &self.shared.config;
        if !c.enabled {
            return TraceFuture::passthrough(self.inner.call(req));
        }
        let start = c.clock.instant();
        let method = method_index(req.method());

        // A request-id layer further out has decided already; otherwise this layer does.
        let outer_id = RequestId::of(req.extensions()).cloned();
        let incoming_id = match outer_id {
            Some(_) => None,
            None => incoming(&req, &c.header, c.trust_request_id),
        };

        let caller = if c.trust_trace {
            Incoming::from_headers(req.headers())
        } else {
            Incoming::default()
        };
        let parent_sampled = caller.parent.map(|p| p.sampled());
        let mut context = match caller.parent {
            Some(parent) => TraceContext::continue_from(parent, caller.state),
            None => TraceContext::root(false),
        };
        if c.sampler.sample(&context.trace_id, parent_sampled) {
            context.flags |= super::SAMPLED;
        } else {
            context.flags &= !super::SAMPLED;
        }
        // The `traceparent` to answer with, and a new request id when one is needed, are copied
        // into the thread's shared header-value buffer; the trace id's hex is kept in place.
        let parent = context.traceparent().encode();
        let mut hex = [0u8; 32];
        hex.copy_from_slice(&parent[3..35]);
        let trace_id = TraceId::from_hex(hex);
        let (request_id, echo, traceparent) = match (outer_id, incoming_id) {
            (Some(id), _) => (id, None, shared_value(crate::headers::shared_copy(&parent))),
            (None, Some(v)) => {
                let (id, echo) = install(&mut req, &c.header, v, false);
                (
                    id,
                    Some(echo),
                    shared_value(crate::headers::shared_copy(&parent)),
                )
            }
            (None, None) => {
                // Two copies rather than two slices of one: a slice is a reference count more
                // to take and to give back.
                let generated = shared_value(crate::headers::shared_copy(&new_hex()));
                let (id, echo) = install(&mut req, &c.header, generated, true);
                (
                    id,
                    Some(echo),
                    shared_value(crate::headers::shared_copy(&parent)),
                )
            }
        };
        // One extension for the ids and the context (`install` or an outer layer inserted it).
        let shared = RequestContext::get_mut(req.extensions_mut());
        shared.trace_id = Some(trace_id.clone());
        shared.trace = Some(context.clone());

        let span = super::span::request(&req, &context, &trace_id, &request_id, method);
        // Behind axum's `Router::layer` the router has matched already (its `MatchedPath` is in
        // the request): the request counts on its route from the start.
        let arrived_on =
            crate::identity::Route::of(req.extensions()).map(|l| self.route_handles(l));
        let current = Arc::new(Current {
            context,
            request_id,
            trace_id,
            config: c.clone(),
            method,
            arrived_on,
            route: OnceLock::new(),
            start,
            echo,
            traceparent,
        });
        let guard = Guard::enter(current);
        let inner = &mut self.inner;
        let (future, panic) = {
            let _current = enter(&guard.current);
            let _entered = span.enter();
            if c.catch_panics {
                match catch_unwind(AssertUnwindSafe(|| inner.call(req))) {
                    Ok(f) => (Some(f), None),
                    Err(payload) => (None, Some(panic_message(&*payload))),
                }
            } else {
                (Some(inner.call(req)), None)
            }
        };
        TraceFuture::new(future, State { guard, span, panic })
    }
}

/// Visible ASCII (hex digits and dashes) as a header value sharing `bytes`.
fn shared_value(bytes: Bytes) -> HeaderValue {
    HeaderValue::from_maybe_shared(bytes).unwrap_or_else(|_| HeaderValue::from_static(""))
}
