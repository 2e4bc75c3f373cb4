//! The pure core of the layer: which origin a request names, and whether a preflight passes
//! (Fetch §4.8 "CORS-preflight fetch", seen from the server). No I/O, no tower.

use http::header::{HeaderName, ORIGIN};
use http::{HeaderMap, HeaderValue, Method};

use super::AllowOrigin;
use crate::headers::is_token;

/// The compiled configuration of a [`CorsLayer`](super::CorsLayer).
#[derive(Debug)]
pub(crate) struct Config {
    pub(crate) origins: AllowOrigin,
    pub(crate) credentials: bool,
    /// `None`: any method (`*`).
    pub(crate) methods: Option<Vec<Method>>,
    pub(crate) methods_value: HeaderValue,
    /// `None`: any header (`*`).
    pub(crate) headers: Option<Vec<HeaderName>>,
    pub(crate) headers_value: Option<HeaderValue>,
    pub(crate) expose_value: Option<HeaderValue>,
    pub(crate) max_age: Option<HeaderValue>,
    pub(crate) private_network: bool,
}

/// The request's origin, when it names exactly one allowed origin.
///
/// Two `Origin` headers, a comma list, a value that is not text, a malformed or a disallowed origin
/// all give `None`: a browser sends one serialized origin, so anything else is not a browser's
/// request and gets no CORS headers.
pub(crate) fn allowed_origin<'a>(
    config: &Config,
    headers: &'a HeaderMap,
) -> Option<&'a HeaderValue> {
    let mut all = headers.get_all(ORIGIN).iter();
    let value = all.next()?;
    if all.next().is_some() {
        return None;
    }
    let text = value.to_str().ok()?;
    config.origins.matches(text).then_some(value)
}

/// Why a preflight was refused (the 403 problem's detail).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Refusal {
    Origin,
    Method,
    Header(String),
}

impl Refusal {
    pub(crate) fn detail(&self) -> String {
        match self {
            Self::Origin => "The origin is not allowed to call this API.".to_owned(),
            Self::Method => {
                "The requested method is not allowed for cross-origin calls.".to_owned()
            }
            Self::Header(h) => {
                format!("The request header `{h}` is not allowed for cross-origin calls.")
            }
        }
    }
}

/// Checks a preflight's `Access-Control-Request-Method` and `-Headers` against the configuration.
///
/// GET, HEAD and POST pass even when not listed: they are CORS-safelisted methods, which a browser
/// never needs permission for (Fetch §4.8 step 7.5). Methods compare case-sensitively, header
/// names without regard to case.
pub(crate) fn check(
    config: &Config,
    origin_allowed: bool,
    method: &HeaderValue,
    request_headers: &HeaderMap,
    request_headers_name: &HeaderName,
) -> Result<(), Refusal> {
    if !origin_allowed {
        return Err(Refusal::Origin);
    }
    let method = method.to_str().map_err(|_| Refusal::Method)?.trim();
    if !is_token(method) {
        return Err(Refusal::Method);
    }
    let safelisted = matches!(method, "GET" | "HEAD" | "POST");
    if let Some(allowed) = &config.methods
        && !safelisted
        && !allowed.iter().any(|m| m.as_str() == method)
    {
        return Err(Refusal::Method);
    }
    for value in request_headers.get_all(request_headers_name) {
        let text = value
            .to_str()
            .map_err(|_| Refusal::Header("<not text>".to_owned()))?;
        for name in text.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            if !is_token(name) {
                return Err(Refusal::Header(name.to_owned()));
            }
            if let Some(allowed) = &config.headers
                && !allowed
                    .iter()
                    .any(|h| h.as_str().eq_ignore_ascii_case(name))
            {
                return Err(Refusal::Header(name.to_owned()));
            }
        }
    }
    Ok(())
}
