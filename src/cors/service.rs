use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::{
    ACCESS_CONTROL_ALLOW_CREDENTIALS, ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS,
    ACCESS_CONTROL_ALLOW_ORIGIN, ACCESS_CONTROL_EXPOSE_HEADERS, ACCESS_CONTROL_MAX_AGE,
    ACCESS_CONTROL_REQUEST_HEADERS, HeaderMap, HeaderName, VARY,
};
use http::{HeaderValue, Request, Response, StatusCode};
use tower_service::Service;

use super::preflight::{self, Config};
use crate::error::{Problem, code};
use crate::headers::append_vary;
use crate::response::{self, Checked, ResponseBody, Stamp};

static REQUEST_PRIVATE_NETWORK: HeaderName =
    HeaderName::from_static("access-control-request-private-network");
static ALLOW_PRIVATE_NETWORK: HeaderName =
    HeaderName::from_static("access-control-allow-private-network");
const TRUE: HeaderValue = HeaderValue::from_static("true");
const STAR: HeaderValue = HeaderValue::from_static("*");
const VARY_ORIGIN: HeaderValue = HeaderValue::from_static("Origin");
const PREFLIGHT_VARY_VALUE: HeaderValue = HeaderValue::from_static(
    "Origin, Access-Control-Request-Method, Access-Control-Request-Headers",
);
const PREFLIGHT_VARY_PNA_VALUE: HeaderValue = HeaderValue::from_static(
    "Origin, Access-Control-Request-Method, Access-Control-Request-Headers, \
     Access-Control-Request-Private-Network",
);
const PREFLIGHT_VARY: [&str; 3] = [
    "Origin",
    "Access-Control-Request-Method",
    "Access-Control-Request-Headers",
];
const PREFLIGHT_VARY_PNA: [&str; 4] = [
    "Origin",
    "Access-Control-Request-Method",
    "Access-Control-Request-Headers",
    "Access-Control-Request-Private-Network",
];

/// The service of [`CorsLayer`](super::CorsLayer).
#[derive(Debug, Clone)]
pub struct Cors<S> {
    pub(crate) inner: S,
    pub(crate) config: Arc<Config>,
}

impl<S> Cors<S> {
    crate::macros::inner_service_accessors!();
}

/// Merges `Vary: Origin` without allocating when the response has no `Vary` yet.
fn vary_origin(headers: &mut HeaderMap) {
    if headers.contains_key(VARY) {
        append_vary(headers, &["Origin"]);
    } else {
        headers.insert(VARY, VARY_ORIGIN);
    }
}

/// The CORS headers of an actual (non-preflight) response.
fn stamp(config: &Config, origin: Option<HeaderValue>, headers: &mut HeaderMap) {
    if !config.origins.is_any() {
        vary_origin(headers);
    }
    let Some(origin) = origin else { return };
    headers.insert(ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    if config.credentials {
        headers.insert(ACCESS_CONTROL_ALLOW_CREDENTIALS, TRUE);
    }
    if let Some(expose) = &config.expose_value {
        headers.insert(ACCESS_CONTROL_EXPOSE_HEADERS, expose.clone());
    }
}

fn preflight<R>(config: &Config, req: &Request<R>, method: &HeaderValue) -> Response<Bytes> {
    let origin = preflight::allowed_origin(config, req.headers());
    let vary: &[&str] = if config.private_network {
        &PREFLIGHT_VARY_PNA
    } else {
        &PREFLIGHT_VARY
    };
    let checked = preflight::check(
        config,
        origin.is_some(),
        method,
        req.headers(),
        &ACCESS_CONTROL_REQUEST_HEADERS,
    );
    let origin = match checked.and(origin.ok_or(preflight::Refusal::Origin)) {
        Ok(origin) => origin,
        Err(refusal) => {
            let mut res = Problem::new(StatusCode::FORBIDDEN, code::CORS_FORBIDDEN)
                .with_detail(refusal.detail())
                .render_for(req.extensions());
            append_vary(res.headers_mut(), vary);
            return res;
        }
    };
    let mut res = Response::new(Bytes::new());
    *res.status_mut() = StatusCode::NO_CONTENT;
    let h = res.headers_mut();
    h.insert(
        ACCESS_CONTROL_ALLOW_ORIGIN,
        if config.origins.is_any() {
            STAR
        } else {
            origin.clone()
        },
    );
    if config.credentials {
        h.insert(ACCESS_CONTROL_ALLOW_CREDENTIALS, TRUE);
    }
    h.insert(ACCESS_CONTROL_ALLOW_METHODS, config.methods_value.clone());
    if let Some(v) = &config.headers_value {
        h.insert(ACCESS_CONTROL_ALLOW_HEADERS, v.clone());
    }
    if let Some(v) = &config.max_age {
        h.insert(ACCESS_CONTROL_MAX_AGE, v.clone());
    }
    if config.private_network
        && req
            .headers()
            .get(&REQUEST_PRIVATE_NETWORK)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"true"))
    {
        h.insert(ALLOW_PRIVATE_NETWORK.clone(), TRUE);
    }
    // A fresh response has no `Vary` yet: a pre-built value saves `append_vary`'s allocations.
    h.insert(
        VARY,
        if config.private_network {
            PREFLIGHT_VARY_PNA_VALUE
        } else {
            PREFLIGHT_VARY_VALUE
        },
    );
    res
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for Cors<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, ResBody, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    #[inline]
    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        let decision = check(&self.config, &req);
        ResponseFuture::checked(decision, || self.inner.call(req))
    }
}

/// The CORS decision on a request: a preflight answered, or the headers the response gets.
#[inline]
pub(crate) fn check<B>(config: &Arc<Config>, req: &Request<B>) -> Checked<CorsStamp> {
    // Fetch §3.2.2: a preflight is OPTIONS *with* Access-Control-Request-Method; any other
    // OPTIONS request is the application's.
    if let Some(method) = crate::headers::preflight_method(req) {
        return Checked::Answer(preflight(config, req, method));
    }
    let origin = preflight::allowed_origin(config, req.headers()).map(|o| {
        if config.origins.is_any() {
            STAR
        } else {
            o.clone()
        }
    });
    Checked::Pass(Some(CorsStamp {
        config: config.clone(),
        origin,
    }))
}

/// What CORS adds to an inner service's response: `Vary` and, for an allowed origin, its headers.
pub struct CorsStamp {
    config: Arc<Config>,
    origin: Option<HeaderValue>,
}

impl std::fmt::Debug for CorsStamp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CorsStamp")
            .field("origin", &self.origin)
            .finish()
    }
}

impl Stamp for CorsStamp {
    fn stamp(self, _status: StatusCode, headers: &mut HeaderMap) {
        stamp(&self.config, self.origin, headers);
    }
}

impl super::CorsLayer {
    /// This layer's decision on `req`, for a service that runs several layers' checks.
    #[inline]
    pub(crate) fn check<B>(&self, req: &Request<B>) -> Checked<CorsStamp> {
        check(&self.config, req)
    }
}

/// Response future of [`Cors`].
pub type ResponseFuture<F, B, E> = response::ResponseFuture<F, B, E, CorsStamp>;
