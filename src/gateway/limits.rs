use std::sync::Arc;
use std::task::{Context, Poll};

use http::header::{CONTENT_LENGTH, CONTENT_TYPE, TRANSFER_ENCODING};
use http::{Method, Request, Response, StatusCode};
use http_body_util::Limited;
use tower_layer::Layer;
use tower_service::Service;

use crate::error::{Problem, code};
use crate::identity::RequestContext;
use crate::response::{Checked, NoStamp, ResponseBody, ResponseFuture};

/// The default body limit: 1 MiB.
pub const DEFAULT_BODY_LIMIT: usize = 1024 * 1024;

/// The limit a request was given (extractors read it with [`BodyLimit::of`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyLimit(pub usize);

impl BodyLimit {
    /// The limit in `extensions`: [`RequestLimitsLayer`] keeps it in the request's
    /// [`RequestContext`]; a standalone `BodyLimit` extension is read too.
    ///
    /// ```
    /// use protothrive::gateway::BodyLimit;
    /// let mut ext = http::Extensions::new();
    /// assert_eq!(BodyLimit::of(&ext), None);
    /// ext.insert(BodyLimit(10));
    /// assert_eq!(BodyLimit::of(&ext), Some(BodyLimit(10)));
    /// ```
    #[must_use]
    pub fn of(extensions: &http::Extensions) -> Option<Self> {
        RequestContext::get(extensions)
            .and_then(|c| c.body_limit)
            .map(Self)
            .or_else(|| extensions.get::<Self>().copied())
    }
}

/// Refuses request bodies over a size (413) and bodies of the wrong media type (415).
///
/// A declared `Content-Length` over the limit is answered at once, before any byte is read; a body
/// without one (chunked) is wrapped in [`http_body_util::Limited`], so reading past the limit fails
/// and [`ValidJson`](super::ValidJson) answers 413 then. Media types are checked on `POST`, `PUT`
/// and `PATCH` requests that carry a body.
///
/// ```
/// use protothrive::gateway::RequestLimitsLayer;
/// let layer = RequestLimitsLayer::new()
///     .max_body_bytes(64 * 1024)
///     .json_only();
/// # let _ = layer;
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct RequestLimitsLayer {
    max: usize,
    media_types: Option<Arc<[String]>>,
}

impl Default for RequestLimitsLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl RequestLimitsLayer {
    /// A 1 MiB body limit and any media type.
    pub fn new() -> Self {
        Self {
            max: DEFAULT_BODY_LIMIT,
            media_types: None,
        }
    }

    /// The largest body accepted, in bytes.
    pub fn max_body_bytes(mut self, max: usize) -> Self {
        self.max = max;
        self
    }

    /// Accepts only `application/json` and `+json` media types (RFC 6839 §3.1) for bodies.
    pub fn json_only(mut self) -> Self {
        self.media_types = Some(vec!["application/json".to_owned()].into());
        self
    }

    /// Accepts only these media types (plus `+json` suffixes when `application/json` is listed).
    pub fn media_types<I: IntoIterator<Item = S>, S: Into<String>>(mut self, types: I) -> Self {
        self.media_types = Some(
            types
                .into_iter()
                .map(|t| t.into().to_ascii_lowercase())
                .collect::<Vec<_>>()
                .into(),
        );
        self
    }
}

impl<S> Layer<S> for RequestLimitsLayer {
    type Service = RequestLimits<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequestLimits {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service of [`RequestLimitsLayer`].
#[derive(Debug, Clone)]
pub struct RequestLimits<S> {
    inner: S,
    layer: RequestLimitsLayer,
}

impl<S> RequestLimits<S> {
    crate::macros::inner_service_accessors!();
}

/// Whether `content_type` is one of `allowed` (parameters ignored; `+json` counts as JSON).
pub(crate) fn media_type_allowed(content_type: &str, allowed: &[String]) -> bool {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    allowed.contains(&essence)
        || (allowed.iter().any(|a| a == "application/json")
            && essence.starts_with("application/")
            && essence.ends_with("+json"))
}

fn has_body<B>(req: &Request<B>) -> bool {
    req.headers().contains_key(TRANSFER_ENCODING)
        || req
            .headers()
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .is_some_and(|n| n > 0)
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for RequestLimits<S>
where
    S: Service<Request<Limited<ReqBody>>, Response = Response<ResBody>>,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, ResBody, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqBody>) -> Self::Future {
        match self.layer.check(&mut req) {
            Checked::Answer(res) => ResponseFuture::ready(ResponseBody::map_problem(res)),
            Checked::Pass(_) => ResponseFuture::inner(self.inner.call(self.layer.wrap(req))),
        }
    }
}

impl RequestLimitsLayer {
    /// The 400, 413 or 415 of a request over the limits; otherwise the limit goes into the
    /// request's context and the request may go on (with its body [wrapped](Self::wrap)).
    pub(crate) fn check<B>(&self, req: &mut Request<B>) -> Checked<NoStamp> {
        let max = self.max;
        let declared = req
            .headers()
            .get(CONTENT_LENGTH)
            .map(|v| v.to_str().ok().and_then(|s| s.trim().parse::<u64>().ok()));
        let problem = match declared {
            Some(None) => Some(
                Problem::new(StatusCode::BAD_REQUEST, code::BAD_REQUEST)
                    .with_detail("Content-Length is not a number."),
            ),
            Some(Some(n)) if n > max as u64 => Some(too_large(max)),
            _ => None,
        }
        .or_else(|| {
            let allowed = self.media_types.as_ref()?;
            let writes = matches!(*req.method(), Method::POST | Method::PUT | Method::PATCH);
            if !writes || !has_body(req) {
                return None;
            }
            let ok = req
                .headers()
                .get(CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|ct| media_type_allowed(ct, allowed));
            (!ok).then(|| {
                Problem::new(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    code::UNSUPPORTED_MEDIA_TYPE,
                )
                .with_detail(format!("The body must be one of: {}.", allowed.join(", ")))
            })
        });
        if let Some(p) = problem {
            return Checked::Answer(p.render_for(req.extensions()));
        }
        RequestContext::get_mut(req.extensions_mut()).body_limit = Some(max);
        Checked::Pass(None)
    }

    /// The request with its body cut off at the limit.
    pub(crate) fn wrap<B>(&self, req: Request<B>) -> Request<Limited<B>> {
        req.map(|body| Limited::new(body, self.max))
    }
}

/// The 413 problem for a body over `max` bytes.
pub(crate) fn too_large(max: usize) -> Problem {
    Problem::new(StatusCode::PAYLOAD_TOO_LARGE, code::PAYLOAD_TOO_LARGE)
        .with_detail(format!("The body is larger than {max} bytes."))
}

#[cfg(test)]
mod tests {
    use super::media_type_allowed;

    #[test]
    fn json_media_types() {
        let allowed = vec!["application/json".to_owned()];
        assert!(media_type_allowed("application/json", &allowed));
        assert!(media_type_allowed(
            "Application/JSON; charset=utf-8",
            &allowed
        ));
        assert!(media_type_allowed("application/merge-patch+json", &allowed));
        assert!(!media_type_allowed("text/plain", &allowed));
        assert!(!media_type_allowed("application/jsonp", &allowed));
        assert!(!media_type_allowed("", &allowed));
    }
}
