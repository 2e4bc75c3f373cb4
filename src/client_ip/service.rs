use std::task::{Context, Poll};

use http::Request;
use tower_service::Service;

use super::{ClientIp, ClientIpLayer};
use crate::identity::RequestContext;

/// The service of [`ClientIpLayer`]: inserts a [`ClientIp`] into each request, then calls the
/// inner service. It never answers by itself, so its response and future are the inner service's.
///
/// Named for what it does, as tower-http's `SetRequestId<S>` is: `ClientIp` is the address it
/// inserts.
#[derive(Clone, Debug)]
pub struct ResolveClientIp<S> {
    inner: S,
    layer: ClientIpLayer,
}

impl<S> ResolveClientIp<S> {
    /// Wraps `inner`.
    pub fn new(inner: S, layer: ClientIpLayer) -> Self {
        Self { inner, layer }
    }

    crate::macros::inner_service_accessors!();
}

impl<S, B> Service<Request<B>> for ResolveClientIp<S>
where
    S: Service<Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    #[inline]
    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        self.layer.resolve(&mut req);
        self.inner.call(req)
    }
}

impl ClientIpLayer {
    /// Puts the client address into the request's context (for a service that runs several
    /// layers at once).
    #[inline]
    pub(crate) fn resolve<B>(&self, req: &mut Request<B>) {
        // Resolved once: an outer ClientIpLayer (or a PROXY-protocol acceptor) already decided.
        if ClientIp::of(req.extensions()).is_none() {
            let shared = &self.shared;
            if let Some(peer) = (shared.peer_addr)(req.extensions()) {
                let resolution = shared.resolver.resolve(peer, req.headers());
                if resolution.stop().is_early() {
                    tracing::debug!(
                        %peer,
                        client = %resolution.ip(),
                        hops = resolution.hops(),
                        stop = ?resolution.stop(),
                        "client_ip: forwarding headers not fully walked",
                    );
                }
                RequestContext::get_mut(req.extensions_mut()).client_ip =
                    Some(ClientIp(resolution.ip()));
            }
        }
    }
}

/// The former name of [`ResolveClientIp`].
#[deprecated(since = "0.1.0", note = "renamed `ResolveClientIp`")]
pub type ClientIpService<S> = ResolveClientIp<S>;
