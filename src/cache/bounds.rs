//! The bounds on what the cache wraps, stated once: [`CacheableService`] and [`CacheableBody`]
//! are shorthands (sealed, with blanket impls) for the bounds the cache's request path needs.

use bytes::Bytes;
use http::{Request, Response};
use http_body::Body;
use tower_service::Service;

use super::state::BoxError;

mod sealed {
    pub trait Body {}
    pub trait Service<R> {}
}

/// A response body the cache can buffer and store: chunks of `Bytes`, an error that boxes,
/// `Send + 'static`. Implemented for every such body; it cannot be implemented elsewhere.
///
/// ```
/// fn check<B: protothrive::cache::CacheableBody>() {}
/// check::<http_body_util::Full<bytes::Bytes>>();
/// check::<axum::body::Body>();
/// ```
pub trait CacheableBody:
    Body<Data = Bytes, Error: Into<BoxError>> + Send + 'static + sealed::Body
{
}

impl<B> sealed::Body for B where B: Body<Data = Bytes, Error: Into<BoxError>> + Send + 'static {}
impl<B> CacheableBody for B where B: Body<Data = Bytes, Error: Into<BoxError>> + Send + 'static {}

/// A service the [`Cache`](super::Cache) can wrap: `Clone` (a background refresh and a coalesced
/// request call their own clone), `Send + 'static` with a `Send` future and error, answering with a
/// [`CacheableBody`]. Implemented for every such service; it cannot be implemented elsewhere.
///
/// ```
/// use std::convert::Infallible;
/// use http::{Request, Response};
/// use tower::service_fn;
///
/// fn check<S: protothrive::cache::CacheableService<()>>(_: S) {}
/// check(service_fn(|_: Request<()>| async {
///     Ok::<_, Infallible>(Response::new(http_body_util::Full::new(bytes::Bytes::new())))
/// }));
/// ```
pub trait CacheableService<ReqBody>:
    Service<
        Request<ReqBody>,
        Response = Response<Self::ResBody>,
        Future: Send + 'static,
        Error: Send + 'static,
    >
    + Clone
    + Send
    + 'static
    + sealed::Service<ReqBody>
{
    /// The body of its responses.
    type ResBody: CacheableBody;
}

impl<S, ReqBody, ResBody> sealed::Service<ReqBody> for S
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    ResBody: CacheableBody,
{
}

impl<S, ReqBody, ResBody> CacheableService<ReqBody> for S
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    ResBody: CacheableBody,
{
    type ResBody = ResBody;
}
