//! The stack's first positions, client IP and request ids, in one service.

use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};
use tower_service::Service;

use super::builder::Built;
use crate::request_id::ResponseFuture;

/// The service of the stack's first positions around `S`: the client address resolved (when
/// the client-IP layer is present), then the request id assigned (when the request-id layer is),
/// in one call; the response given the id in one future level around the inner service's. A
/// left-out position costs a branch. Made by the [`Stack`](super::Stack).
///
/// ```
/// use std::convert::Infallible;
/// use http::{Request, Response};
/// use http_body_util::{Empty, Limited};
/// use protothrive::stack::{Front, Stack};
/// use tower::{Layer, ServiceExt, service_fn};
///
/// type Body = Empty<bytes::Bytes>;
/// let stack = Stack::builder().build()?;
/// let svc: Front<_> = stack.layer(service_fn(|_: Request<Limited<Body>>| async {
///     Ok::<_, Infallible>(Response::new(Body::new()))
/// }));
/// let res = tokio::runtime::Builder::new_current_thread()
///     .build()?
///     .block_on(svc.oneshot(Request::new(Body::new())))?;
/// assert_eq!(res.headers()["x-request-id"].len(), 32);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct Front<S> {
    inner: S,
    built: Arc<Built>,
}

impl<S> Front<S> {
    pub(super) fn new(inner: S, built: Arc<Built>) -> Self {
        Self { inner, built }
    }

    crate::macros::inner_service_accessors!();
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for Front<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    #[inline]
    fn call(&mut self, mut req: Request<ReqBody>) -> Self::Future {
        let b = &*self.built;
        #[cfg(feature = "client-ip")]
        if let Some(l) = &b.client_ip {
            l.resolve(&mut req);
        }
        let stamp = b.request_id.as_ref().map(|l| l.assign(&mut req));
        ResponseFuture::new(self.inner.call(req), stamp)
    }
}
