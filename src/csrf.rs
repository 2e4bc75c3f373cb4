//! CSRF protection for cookie-authenticated, state-changing requests.
//!
//! A browser attaches cookies to requests that other sites trigger, so a request authenticated by a
//! cookie proves nothing about who wanted it. For `POST`, `PUT`, `PATCH` and `DELETE` requests that
//! a cookie authenticated, this layer asks for two proofs:
//!
//! 1. **Double submit**: the `csrf_token` cookie equals the `X-CSRF-Token` header (compared in
//!    constant time). Another site can make the browser send the cookie but cannot read it to copy
//!    it into a header.
//! 2. **Fetch metadata**: `Sec-Fetch-Site` is `same-origin`, `same-site` or `none` (typed by the
//!    user), or the request's `Origin` is one of the [allowed origins](CsrfLayer::allowed_origins).
//!    Without either header (a non-browser client, an old browser) the token alone decides.
//!
//! A request is cookie-authenticated when the auth layer put [`CredentialSource::Cookie`] next to
//! the principal (so this layer goes *inside* the auth layer), or, when a
//! [session cookie](CsrfLayer::session_cookie) is configured, when that cookie is present and no
//! `Authorization` or `X-API-Key` header is. Bearer-token and API-key requests are never checked:
//! a browser does not attach those by itself. A failure is a `403` problem with the stable code
//! [`CSRF-403`](crate::error::code::CSRF_FORBIDDEN).
//!
//! ```
//! use std::convert::Infallible;
//! use http::{Request, Response};
//! use protothrive::csrf::CsrfLayer;
//! use tower::{service_fn, ServiceBuilder, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let svc = ServiceBuilder::new()
//!     .layer(CsrfLayer::new().session_cookie("session"))
//!     .service(service_fn(|_req: Request<()>| async {
//!         Ok::<_, Infallible>(Response::new(String::new()))
//!     }));
//!
//! let forged = Request::post("/api/roadmaps")
//!     .header("cookie", "session=abc; csrf_token=t0k3n")
//!     .header("sec-fetch-site", "cross-site")
//!     .body(())?;
//! assert_eq!(svc.clone().oneshot(forged).await?.status(), 403);
//!
//! let genuine = Request::post("/api/roadmaps")
//!     .header("cookie", "session=abc; csrf_token=t0k3n")
//!     .header("x-csrf-token", "t0k3n")
//!     .header("sec-fetch-site", "same-origin")
//!     .body(())?;
//! assert_eq!(svc.clone().oneshot(genuine).await?.status(), 200);
//!
//! let bearer = Request::post("/api/roadmaps").header("authorization", "Bearer x").body(())?;
//! assert_eq!(svc.oneshot(bearer).await?.status(), 200);
//! # Ok(())
//! # }
//! ```
//!
//! [`CredentialSource::Cookie`]: crate::identity::CredentialSource

use std::sync::Arc;
use std::task::{Context, Poll};

use http::header::{AUTHORIZATION, COOKIE, HeaderName, ORIGIN};
use http::{HeaderMap, Method, Request, Response, StatusCode};
use subtle::ConstantTimeEq;
use tower_layer::Layer;
use tower_service::Service;

use crate::error::{Problem, code};
use crate::response::{Checked, NoStamp, ResponseBody, ResponseFuture};

static SEC_FETCH_SITE: HeaderName = HeaderName::from_static("sec-fetch-site");
static X_API_KEY: HeaderName = HeaderName::from_static("x-api-key");

/// The double-submit CSRF check; see the [module docs](self).
#[derive(Debug, Clone)]
#[must_use]
pub struct CsrfLayer {
    config: Arc<Config>,
}

#[derive(Debug, Clone)]
struct Config {
    cookie: String,
    header: HeaderName,
    session_cookie: Option<String>,
    origins: Vec<String>,
}

impl Default for CsrfLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl CsrfLayer {
    /// Cookie `csrf_token`, header `X-CSRF-Token`, no session cookie, no cross-site origin allowed.
    pub fn new() -> Self {
        Self {
            config: Arc::new(Config {
                cookie: "csrf_token".to_owned(),
                header: HeaderName::from_static("x-csrf-token"),
                session_cookie: None,
                origins: Vec::new(),
            }),
        }
    }

    /// The cookie holding the token (default `csrf_token`).
    pub fn token_cookie(mut self, name: impl Into<String>) -> Self {
        Arc::make_mut(&mut self.config).cookie = name.into();
        self
    }

    /// The header that must repeat the token (default `X-CSRF-Token`).
    pub fn token_header(mut self, name: HeaderName) -> Self {
        Arc::make_mut(&mut self.config).header = name;
        self
    }

    /// The header that carries the token (a CORS layer in front must allow it).
    ///
    /// ```
    /// use protothrive::csrf::CsrfLayer;
    /// assert_eq!(CsrfLayer::new().token_header_name(), "x-csrf-token");
    /// ```
    #[must_use]
    pub fn token_header_name(&self) -> &HeaderName {
        &self.config.header
    }

    /// A session cookie that authenticates requests on its own (for applications whose session is
    /// not read by this crate's auth layer).
    pub fn session_cookie(mut self, name: impl Into<String>) -> Self {
        Arc::make_mut(&mut self.config).session_cookie = Some(name.into());
        self
    }

    /// Origins allowed to send cookie-authenticated writes across sites (`Origin` compared
    /// exactly, without regard to case), such as a front end on another site.
    pub fn allowed_origins<I>(mut self, origins: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        Arc::make_mut(&mut self.config).origins = origins.into_iter().map(Into::into).collect();
        self
    }
}

impl<S> Layer<S> for CsrfLayer {
    type Service = Csrf<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Csrf {
            inner,
            config: self.config.clone(),
        }
    }
}

/// The service of [`CsrfLayer`].
#[derive(Debug, Clone)]
pub struct Csrf<S> {
    inner: S,
    config: Arc<Config>,
}

impl<S> Csrf<S> {
    crate::macros::inner_service_accessors!();
}

/// The values of cookie `name` across every `Cookie` header (RFC 6265 §5.4).
fn cookies<'a>(headers: &'a HeaderMap, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(move |pair| {
            let (k, v) = pair.trim().split_once('=')?;
            (k.trim() == name).then(|| v.trim().trim_matches('"'))
        })
}

fn cookie_authenticated<B>(config: &Config, req: &Request<B>) -> bool {
    if crate::identity::CredentialSource::of(req.extensions())
        == Some(crate::identity::CredentialSource::Cookie)
    {
        return true;
    }
    let h = req.headers();
    config.session_cookie.as_deref().is_some_and(|name| {
        !h.contains_key(AUTHORIZATION)
            && !h.contains_key(&X_API_KEY)
            && cookies(h, name).next().is_some()
    })
}

/// Why a request failed the check, or `None` when it passed.
fn refusal(config: &Config, headers: &HeaderMap) -> Option<&'static str> {
    let site = headers
        .get(&SEC_FETCH_SITE)
        .map(http::HeaderValue::as_bytes);
    let origin_allowed = || {
        headers
            .get(ORIGIN)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|o| config.origins.iter().any(|a| a.eq_ignore_ascii_case(o)))
    };
    let metadata_ok = match site {
        Some(b"same-origin" | b"same-site" | b"none") => true,
        Some(_) => origin_allowed(),
        None => !headers.contains_key(ORIGIN) || origin_allowed(),
    };
    if !metadata_ok {
        return Some("The request comes from another site.");
    }
    let mut tokens = cookies(headers, &config.cookie);
    let (Some(cookie), None) = (tokens.next(), tokens.next()) else {
        return Some("The CSRF token cookie is missing or repeated.");
    };
    let header = headers.get(&config.header).map(http::HeaderValue::as_bytes);
    match header {
        Some(h) if !cookie.is_empty() && bool::from(h.ct_eq(cookie.as_bytes())) => None,
        _ => Some("The CSRF token header does not match the cookie."),
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for Csrf<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, ResBody, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        let decision = check(&self.config, &req);
        ResponseFuture::checked(decision, || self.inner.call(req))
    }
}

impl CsrfLayer {
    /// This layer's decision on `req`, for a service that runs several layers' checks.
    pub(crate) fn check<B>(&self, req: &Request<B>) -> Checked<NoStamp> {
        check(&self.config, req)
    }
}

/// The 403 of a cookie-authenticated write that fails the origin or token check.
fn check<B>(config: &Config, req: &Request<B>) -> Checked<NoStamp> {
    let writes = matches!(
        *req.method(),
        Method::POST | Method::PUT | Method::PATCH | Method::DELETE
    );
    if writes
        && cookie_authenticated(config, req)
        && let Some(detail) = refusal(config, req.headers())
    {
        let problem = Problem::new(StatusCode::FORBIDDEN, code::CSRF_FORBIDDEN)
            .with_detail(detail)
            .render_for(req.extensions());
        return Checked::Answer(problem);
    }
    Checked::Pass(None)
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;
    use std::future::Future;
    use std::pin::pin;
    use std::task::Waker;

    use super::*;

    fn status(layer: &CsrfLayer, req: Request<()>) -> u16 {
        let mut svc = layer.layer(tower::service_fn(|_req: Request<()>| {
            std::future::ready(Ok::<_, Infallible>(Response::new(String::new())))
        }));
        let mut fut = pin!(svc.call(req));
        match fut.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
            Poll::Ready(Ok(res)) => res.status().as_u16(),
            _ => panic!("ready"),
        }
    }

    #[test]
    fn decisions_table() {
        let layer = CsrfLayer::new()
            .session_cookie("session")
            .allowed_origins(["https://app.example.com"]);
        const BOTH: &str = "session=s; csrf_token=abc";
        // (method, headers, status)
        type Case = (Method, &'static [(&'static str, &'static str)], u16);
        let cases: Vec<Case> = vec![
            (Method::GET, &[("cookie", "session=s")], 200),
            (Method::POST, &[("cookie", "session=s")], 403),
            (
                Method::POST,
                &[("cookie", BOTH), ("x-csrf-token", "abc")],
                200,
            ),
            (
                Method::PUT,
                &[("cookie", BOTH), ("x-csrf-token", "abd")],
                403,
            ),
            (
                Method::PATCH,
                &[("cookie", BOTH), ("x-csrf-token", "ab")],
                403,
            ),
            (Method::DELETE, &[("cookie", BOTH)], 403),
            (
                Method::POST,
                &[("cookie", "session=s; csrf_token="), ("x-csrf-token", "")],
                403,
            ),
            (
                Method::POST,
                &[
                    ("cookie", "session=s; csrf_token=abc; csrf_token=abc"),
                    ("x-csrf-token", "abc"),
                ],
                403,
            ),
            (
                Method::POST,
                &[
                    ("cookie", BOTH),
                    ("x-csrf-token", "abc"),
                    ("sec-fetch-site", "same-origin"),
                ],
                200,
            ),
            (
                Method::POST,
                &[
                    ("cookie", BOTH),
                    ("x-csrf-token", "abc"),
                    ("sec-fetch-site", "same-site"),
                ],
                200,
            ),
            (
                Method::POST,
                &[
                    ("cookie", BOTH),
                    ("x-csrf-token", "abc"),
                    ("sec-fetch-site", "none"),
                ],
                200,
            ),
            (
                Method::POST,
                &[
                    ("cookie", BOTH),
                    ("x-csrf-token", "abc"),
                    ("sec-fetch-site", "cross-site"),
                ],
                403,
            ),
            (
                Method::POST,
                &[
                    ("cookie", BOTH),
                    ("x-csrf-token", "abc"),
                    ("sec-fetch-site", "cross-site"),
                    ("origin", "https://app.example.com"),
                ],
                200,
            ),
            (
                Method::POST,
                &[
                    ("cookie", BOTH),
                    ("x-csrf-token", "abc"),
                    ("origin", "https://evil.example"),
                ],
                403,
            ),
            (
                Method::POST,
                &[
                    ("cookie", BOTH),
                    ("x-csrf-token", "abc"),
                    ("origin", "https://app.example.com"),
                ],
                200,
            ),
            // Bearer tokens and API keys: not a browser's ambient credential.
            (
                Method::POST,
                &[("cookie", "session=s"), ("authorization", "Bearer t")],
                200,
            ),
            (
                Method::DELETE,
                &[("cookie", "session=s"), ("x-api-key", "k")],
                200,
            ),
            (Method::POST, &[], 200),
            (Method::POST, &[("cookie", "other=1")], 200),
        ];
        for (i, (method, headers, want)) in cases.into_iter().enumerate() {
            let mut b = Request::builder().method(method).uri("/x");
            for (k, v) in headers {
                b = b.header(*k, *v);
            }
            assert_eq!(status(&layer, b.body(()).unwrap()), want, "case {i}");
        }
    }

    #[test]
    fn auth_cookie_source_is_checked_and_bearer_is_not() {
        let layer = CsrfLayer::new();
        let mut req = Request::post("/x").body(()).unwrap();
        req.extensions_mut()
            .insert(crate::identity::CredentialSource::Cookie);
        assert_eq!(status(&layer, req), 403);
        let mut req = Request::post("/x").body(()).unwrap();
        req.extensions_mut()
            .insert(crate::identity::CredentialSource::AuthorizationHeader);
        assert_eq!(status(&layer, req), 200);
    }
}
