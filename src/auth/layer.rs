use std::task::{Context, Poll};

use http::{Request, Response};
use tower_layer::Layer;
use tower_service::Service;

use super::authenticator::Quick;
use super::challenge;
use super::{Authenticator, Reason};
use crate::identity::{CredentialSource, Principal, RequestContext};
use crate::response::{ResponseBody, ResponseFuture};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Required,
    Optional,
}

/// Authenticates every request; see the [module docs](super).
///
/// ```
/// use jsonwebtoken::Algorithm;
/// use protothrive::auth::{AuthLayer, Authenticator, VerifyingKey};
///
/// let auth = Authenticator::builder()
///     .key(VerifyingKey::hmac(Algorithm::HS256, [1u8; 32])?)
///     .build()?;
/// let required = AuthLayer::new(auth.clone());
/// let optional = AuthLayer::optional(auth); // no credential → anonymous, bad credential → 401
/// # let _ = (required, optional);
/// # Ok::<(), protothrive::auth::ConfigError>(())
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct AuthLayer {
    auth: Authenticator,
    mode: Mode,
}

impl AuthLayer {
    /// Every request needs a valid credential.
    pub fn new(auth: Authenticator) -> Self {
        Self {
            auth,
            mode: Mode::Required,
        }
    }

    /// A request without credentials passes through anonymous (no [`Principal`](super::Principal)
    /// in its extensions); one with an invalid credential is still refused.
    pub fn optional(auth: Authenticator) -> Self {
        Self {
            auth,
            mode: Mode::Optional,
        }
    }
}

impl<S> Layer<S> for AuthLayer {
    type Service = Auth<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Auth {
            inner,
            auth: self.auth.clone(),
            mode: self.mode,
        }
    }
}

/// The service of [`AuthLayer`].
#[derive(Debug, Clone)]
pub struct Auth<S> {
    inner: S,
    auth: Authenticator,
    mode: Mode,
}

impl<S> Auth<S> {
    crate::macros::inner_service_accessors!();
}

fn reject<B>(
    auth: &Authenticator,
    reason: Reason,
    sent: bool,
    ext: &http::Extensions,
) -> Response<ResponseBody<B>> {
    // On the trace layer's request span, when there is one.
    tracing::Span::current().record("auth.outcome", reason.as_str());
    ResponseBody::map_problem(challenge::refused(reason, auth.realm(), sent).render_for(ext))
}

/// Records a successful authentication on the request span.
fn accepted(principal: &crate::identity::Principal) {
    let span = tracing::Span::current();
    if !span.is_disabled() {
        let outcome = match principal.scheme() {
            crate::identity::Scheme::Jwt => "jwt",
            crate::identity::Scheme::ApiKey => "api_key",
        };
        span.record("auth.outcome", outcome);
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for Auth<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    ReqBody: Send + 'static,
    ResBody: Send + 'static,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, ResBody, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqBody>) -> Self::Future {
        let quick = self.auth.quick(req.headers(), req.uri());
        match quick {
            Quick::Anonymous if self.mode == Mode::Optional => {
                ResponseFuture::inner(self.inner.call(req))
            }
            Quick::Anonymous => {
                ResponseFuture::ready(reject(&self.auth, Reason::Missing, false, req.extensions()))
            }
            Quick::Refused(reason, sent) => {
                ResponseFuture::ready(reject(&self.auth, reason, sent, req.extensions()))
            }
            Quick::Done(principal, source) => {
                accepted(&principal);
                identify(req.extensions_mut(), principal, source);
                ResponseFuture::inner(self.inner.call(req))
            }
            Quick::Slow(_) => {
                // Take the service that was driven to readiness; leave a clone in its place.
                let clone = self.inner.clone();
                let mut inner = std::mem::replace(&mut self.inner, clone);
                let auth = self.auth.clone();
                ResponseFuture::boxed(Box::pin(async move {
                    // Only the head is borrowed across the await, so the body need not be `Sync`.
                    let (mut parts, body) = req.into_parts();
                    let outcome = match auth.quick(&parts.headers, &parts.uri) {
                        Quick::Slow(credential) => auth.slow(credential).await,
                        Quick::Done(p, s) => Ok((p, s)),
                        Quick::Refused(reason, _) => Err(reason.into()),
                        Quick::Anonymous => Err(Reason::Missing.into()),
                    };
                    match outcome {
                        Ok((principal, source)) => {
                            accepted(&principal);
                            identify(&mut parts.extensions, principal, source);
                            let req = Request::from_parts(parts, body);
                            inner.call(req).await.map(ResponseBody::map_response)
                        }
                        Err(e) => Ok(reject(&auth, e.reason(), true, &parts.extensions)),
                    }
                }))
            }
        }
    }
}

/// Puts the caller into the request's context (one extension for everything the layers learn).
fn identify(extensions: &mut http::Extensions, principal: Principal, source: CredentialSource) {
    let context = RequestContext::get_mut(extensions);
    context.principal = Some(principal);
    context.source = Some(source);
}
