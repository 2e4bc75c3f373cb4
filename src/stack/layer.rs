//! The stack's service type, position by position, and its `Layer` implementation.

use tower_layer::Layer;

use super::builder::Stack;
use super::chain::Checks;
use super::front::Front;

// Outer to inner: client IP and request ids in one service, the trace position, then every
// request check in one service.

#[cfg(feature = "trace")]
type TraceAt<X> = crate::trace::Trace<X>;
#[cfg(not(feature = "trace"))]
type TraceAt<X> = X;

/// The positions from CORS inwards (what a [`Stack::with_trace`] layer wraps): the request
/// checks, run in one service.
pub type InnerService<S> = Checks<S>;

/// The service of a [`Stack`] around `S`: every position of the request path, outer to inner.
pub type StackService<S> = Front<TraceAt<InnerService<S>>>;

/// The service of a [`StackWithTrace`] around `S`.
pub type TracedService<T, S> = Front<TraceAt<<T as Layer<InnerService<S>>>::Service>>;

/// A [`Stack`] with a layer of the application's at the trace position (after client IP and
/// request ids, before CORS), so what it puts in request extensions reaches every rejection
/// further in. Made by [`Stack::with_trace`].
#[derive(Debug, Clone)]
#[must_use]
pub struct StackWithTrace<T> {
    stack: Stack,
    trace: T,
}

impl Stack {
    /// The stack with `trace` at the trace position: it sees every request once the client
    /// address and request id are known, and every response, rejections of the layers inside
    /// included.
    ///
    /// ```
    /// use http::{Request, Response};
    /// use protothrive::stack::Stack;
    /// use tower::{Layer, ServiceExt, service_fn};
    ///
    /// // Request bodies named, not inferred: through the stack's nested service type, an inferred
    /// // body makes the type checker's work explode.
    /// type Body = http_body_util::Empty<bytes::Bytes>;
    /// let seen = tower::layer::layer_fn(|inner| tower::util::MapRequest::new(inner, |mut req: Request<Body>| {
    ///     req.extensions_mut().insert(protothrive::error::TraceId::new("4bf92f3577b34da6a3ce929d0e0e4736"));
    ///     req
    /// }));
    /// let stack = Stack::builder().build()?;
    /// // The body limit hands on a `Limited` body.
    /// let svc = stack.with_trace(seen).layer(service_fn(|req: Request<http_body_util::Limited<Body>>| async move {
    ///     let t = protothrive::error::TraceId::of(req.extensions()).unwrap().as_str().to_owned();
    ///     let mut res = Response::new(http_body_util::Empty::<bytes::Bytes>::new());
    ///     res.headers_mut().insert("x-trace", http::HeaderValue::from_str(&t).unwrap());
    ///     Ok::<_, std::convert::Infallible>(res)
    /// }));
    /// let req = Request::new(http_body_util::Empty::<bytes::Bytes>::new());
    /// let res = tokio::runtime::Builder::new_current_thread().build()?.block_on(svc.oneshot(req))?;
    /// assert_eq!(res.headers()["x-trace"], "4bf92f3577b34da6a3ce929d0e0e4736");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn with_trace<T>(&self, trace: T) -> StackWithTrace<T> {
        StackWithTrace {
            stack: self.clone(),
            trace,
        }
    }

    /// The trace position (the configured trace layer, or one switched off) and the front
    /// around `inner`.
    fn outer<X>(&self, inner: X) -> Front<TraceAt<X>> {
        #[cfg(feature = "trace")]
        let inner = self.built.trace_position.layer(inner);
        Front::new(inner, self.built.clone())
    }
}

impl<T, S> Layer<S> for StackWithTrace<T>
where
    T: Layer<InnerService<S>>,
{
    type Service = TracedService<T, S>;

    fn layer(&self, inner: S) -> Self::Service {
        self.stack.outer(self.trace.layer(self.stack.inner(inner)))
    }
}

impl<S> Layer<S> for Stack {
    type Service = StackService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        self.outer(self.inner(inner))
    }
}

impl Stack {
    fn inner<S>(&self, inner: S) -> InnerService<S> {
        Checks::new(inner, self.built.clone())
    }
}
