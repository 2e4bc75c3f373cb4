use std::task::{Context, Poll};

use http::{Request, Response};
use tower_layer::Layer;
use tower_service::Service;

use super::authenticator::Quick;
use super::challenge;
use super::{Authenticator, Reason};
use crate::identity::{CredentialSource, Principal, RequestContext};
use crate::response::{Checked, NoStamp, ResponseBody, ResponseFuture};

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

fn reject(
    auth: &Authenticator,
    reason: Reason,
    sent: bool,
    ext: &http::Extensions,
) -> Response<bytes::Bytes> {
    // On the trace layer's request span, when there is one.
    if let Some(span) = crate::span::request_span() {
        span.record("auth.outcome", reason.as_str());
    }
    challenge::refused(reason, auth.realm(), sent).render_for(ext)
}

/// Records a successful authentication on the request span.
fn accepted(principal: &crate::identity::Principal) {
    if let Some(span) = crate::span::request_span() {
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
        match check(&self.auth, self.mode, &mut req) {
            AuthCheck::Done(decision) => ResponseFuture::checked(decision, || self.inner.call(req)),
            AuthCheck::Slow => {
                let mut inner = crate::response::take_ready(&mut self.inner);
                let auth = self.auth.clone();
                ResponseFuture::boxed(Box::pin(async move {
                    // Only the head is borrowed across the await, so the body need not be `Sync`.
                    let (mut parts, body) = req.into_parts();
                    match check_slow(&auth, &mut parts).await {
                        Checked::Pass(_) => inner
                            .call(Request::from_parts(parts, body))
                            .await
                            .map(ResponseBody::map_response),
                        Checked::Answer(res) => Ok(ResponseBody::map_problem(res)),
                    }
                }))
            }
        }
    }
}

/// The auth decision on a request, or word that it needs an await (a key to fetch, a token to
/// verify off the fast path) first.
pub(crate) enum AuthCheck {
    /// Decided without waiting.
    Done(Checked<NoStamp>),
    /// Decide with [`AuthLayer::check_slow`].
    Slow,
}

impl AuthLayer {
    /// This layer's decision on `req`, for a service that runs several layers' checks.
    pub(crate) fn check<B>(&self, req: &mut Request<B>) -> AuthCheck {
        check(&self.auth, self.mode, req)
    }

    /// The decision [`check`](Self::check) could not make without waiting.
    pub(crate) async fn check_slow(&self, parts: &mut http::request::Parts) -> Checked<NoStamp> {
        check_slow(&self.auth, parts).await
    }
}

fn check<B>(auth: &Authenticator, mode: Mode, req: &mut Request<B>) -> AuthCheck {
    let decision = match auth.quick(req.headers(), req.uri()) {
        Quick::Anonymous if mode == Mode::Optional => Checked::Pass(None),
        Quick::Anonymous => Checked::Answer(reject(auth, Reason::Missing, false, req.extensions())),
        Quick::Refused(reason, sent) => {
            Checked::Answer(reject(auth, reason, sent, req.extensions()))
        }
        Quick::Done(principal, source) => {
            accepted(&principal);
            identify(req.extensions_mut(), principal, source);
            Checked::Pass(None)
        }
        Quick::Slow(_) => return AuthCheck::Slow,
    };
    AuthCheck::Done(decision)
}

async fn check_slow(auth: &Authenticator, parts: &mut http::request::Parts) -> Checked<NoStamp> {
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
            Checked::Pass(None)
        }
        Err(e) => Checked::Answer(reject(auth, e.reason(), true, &parts.extensions)),
    }
}

/// Puts the caller into the request's context (one extension for everything the layers learn).
fn identify(extensions: &mut http::Extensions, principal: Principal, source: CredentialSource) {
    let context = RequestContext::get_mut(extensions);
    context.principal = Some(principal);
    context.source = Some(source);
}
