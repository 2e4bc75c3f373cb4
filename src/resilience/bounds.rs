//! The bounds the replaying services ([`Retry`](super::Retry) and
//! [`Upstreams`](super::Upstreams)) share, named once, and their boxed future.
//!
//! Each trait has one blanket impl over exactly its supertraits, so every type that meets them
//! has it and no other impl can exist: they are names for bounds, not extension points.

use std::future::Future;
use std::pin::Pin;

use bytes::Bytes;
use http::{Request, Response};
use http_body::Body;
use http_body_util::{Either, Full};
use tower_service::Service;

/// The future of a replaying service: its calls run as `async fn`s.
pub(super) type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// A request body a replaying service takes: chunks of `Bytes`, `Send + 'static`, its error
/// `Send`. Implemented for every such body.
///
/// ```
/// fn check<B: protothrive::resilience::ReplayBody>() {}
/// check::<http_body_util::Full<bytes::Bytes>>();
/// check::<axum::body::Body>();
/// ```
pub trait ReplayBody: Body<Data = Bytes, Error: Send> + Send + 'static {}

impl<B> ReplayBody for B where B: Body<Data = Bytes, Error: Send> + Send + 'static {}

/// A service a request can be sent to more than once: it takes the request's own body `B` on a
/// first attempt and a buffered copy (`Full<Bytes>`) on a replay, is `Clone` (each attempt calls
/// a ready clone) and `Send + 'static` with a `Send` future and error. Implemented for every such
/// service.
///
/// ```
/// use std::convert::Infallible;
/// use http::{Request, Response};
/// use http_body_util::{Either, Empty, Full};
/// use bytes::Bytes;
/// use tower::service_fn;
///
/// type Body = Either<Full<Bytes>, Empty<Bytes>>;
/// fn check<S: protothrive::resilience::ReplayService<Empty<Bytes>>>(_: S) {}
/// check(service_fn(|_: Request<Body>| async { Ok::<_, Infallible>(Response::new(())) }));
/// ```
pub trait ReplayService<B>:
    Service<
        Request<Either<Full<Bytes>, B>>,
        Response = Response<Self::ResBody>,
        Future: Send,
        Error: Send,
    > + Clone
    + Send
    + 'static
{
    /// The body of its responses.
    type ResBody: Send + 'static;
}

impl<S, B, ResBody> ReplayService<B> for S
where
    S: Service<Request<Either<Full<Bytes>, B>>, Response = Response<ResBody>>
        + Clone
        + Send
        + 'static,
    S::Future: Send,
    S::Error: Send,
    ResBody: Send + 'static,
{
    type ResBody = ResBody;
}
