use std::borrow::Cow;
use std::fmt;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Response, StatusCode};
use serde::Serialize;
use serde_json::{Map, Value};

use super::ids::{RequestId, TraceId};
use super::render::Renderer;

/// An RFC 9457 problem: what went wrong, with a stable `code`.
///
/// Build one with [`Problem::new`], add detail, members and headers, and turn it into a response
/// with [`Problem::render_for`].
///
/// ```
/// use http::StatusCode;
/// use protothrive::error::{code, Problem};
///
/// let p = Problem::new(StatusCode::UNPROCESSABLE_ENTITY, code::VALIDATION_FAILED)
///     .with_member("errors", serde_json::json!([{"field": "title", "message": "required"}]));
/// assert_eq!(p.status(), StatusCode::UNPROCESSABLE_ENTITY);
/// assert_eq!(p.code(), "VAL-422");
/// assert_eq!(p.to_json()["errors"][0]["field"], "title");
/// ```
#[derive(Clone, PartialEq)]
pub struct Problem(Box<Inner>);

// Boxed so that `Result<T, Problem>` stays one pointer wide on the success path.
#[derive(Clone, PartialEq)]
struct Inner {
    status: StatusCode,
    code: Cow<'static, str>,
    title: Option<Cow<'static, str>>,
    detail: Option<Cow<'static, str>>,
    type_uri: Option<Cow<'static, str>>,
    request_id: Option<String>,
    trace_id: Option<String>,
    members: Map<String, Value>,
    headers: HeaderMap,
}

impl Problem {
    /// A problem with an HTTP status and a stable code; the title defaults to the status's reason
    /// phrase.
    pub fn new(status: StatusCode, code: impl Into<Cow<'static, str>>) -> Self {
        Self(Box::new(Inner {
            status,
            code: code.into(),
            title: None,
            detail: None,
            type_uri: None,
            request_id: None,
            trace_id: None,
            members: Map::new(),
            headers: HeaderMap::new(),
        }))
    }

    /// Sets the human-readable explanation of this occurrence (RFC 9457 §3.1.4).
    #[must_use]
    pub fn with_detail(mut self, detail: impl Into<Cow<'static, str>>) -> Self {
        self.0.detail = Some(detail.into());
        self
    }

    /// Sets the short summary of the problem type (RFC 9457 §3.1.3).
    #[must_use]
    pub fn with_title(mut self, title: impl Into<Cow<'static, str>>) -> Self {
        self.0.title = Some(title.into());
        self
    }

    /// Sets the problem type URI (RFC 9457 §3.1.1); `about:blank` when unset.
    #[must_use]
    pub fn with_type(mut self, type_uri: impl Into<Cow<'static, str>>) -> Self {
        self.0.type_uri = Some(type_uri.into());
        self
    }

    /// Adds an extension member (RFC 9457 §3.2), such as `errors` or `supported_versions`.
    ///
    /// The standard members (`type`, `title`, `status`, `detail`, `code`, `request_id`,
    /// `trace_id`) cannot be overwritten this way.
    #[must_use]
    pub fn with_member(mut self, name: impl Into<String>, value: impl Into<Value>) -> Self {
        self.0.members.insert(name.into(), value.into());
        self
    }

    /// Adds a response header that goes with this problem (`WWW-Authenticate`, `Retry-After`, ...).
    #[must_use]
    pub fn with_header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.0.headers.append(name, value);
        self
    }

    /// Sets the request id reported in the body.
    #[must_use]
    pub fn with_request_id(mut self, id: impl Into<String>) -> Self {
        self.0.request_id = Some(id.into());
        self
    }

    /// Sets the trace id reported in the body.
    #[must_use]
    pub fn with_trace_id(mut self, id: impl Into<String>) -> Self {
        self.0.trace_id = Some(id.into());
        self
    }

    /// The HTTP status.
    #[must_use]
    pub fn status(&self) -> StatusCode {
        self.0.status
    }

    /// The stable code.
    #[must_use]
    pub fn code(&self) -> &str {
        &self.0.code
    }

    /// The detail, if any.
    #[must_use]
    pub fn detail(&self) -> Option<&str> {
        self.0.detail.as_deref()
    }

    /// The headers that go with this problem.
    #[must_use]
    pub fn headers(&self) -> &HeaderMap {
        &self.0.headers
    }

    /// The title: the one set, or the status's canonical reason phrase.
    #[must_use]
    pub fn title(&self) -> &str {
        self.0
            .title
            .as_deref()
            .or_else(|| self.0.status.canonical_reason())
            .unwrap_or("Error")
    }

    /// The body as a JSON object.
    #[must_use]
    pub fn to_json(&self) -> Value {
        #[derive(Serialize)]
        struct Body<'a> {
            #[serde(rename = "type")]
            type_uri: &'a str,
            title: &'a str,
            status: u16,
            #[serde(skip_serializing_if = "Option::is_none")]
            detail: Option<&'a str>,
            code: &'a str,
            #[serde(skip_serializing_if = "Option::is_none")]
            request_id: Option<&'a str>,
            #[serde(skip_serializing_if = "Option::is_none")]
            trace_id: Option<&'a str>,
        }
        let body = Body {
            type_uri: self.0.type_uri.as_deref().unwrap_or("about:blank"),
            title: self.title(),
            status: self.0.status.as_u16(),
            detail: self.0.detail.as_deref(),
            code: &self.0.code,
            request_id: self.0.request_id.as_deref(),
            trace_id: self.0.trace_id.as_deref(),
        };
        let mut value = serde_json::to_value(body).unwrap_or(Value::Null);
        if let Value::Object(map) = &mut value {
            for (k, v) in &self.0.members {
                map.entry(k.clone()).or_insert_with(|| v.clone());
            }
        }
        value
    }

    /// Fills `request_id` and `trace_id` from request extensions, unless already set.
    #[must_use]
    pub fn with_ids_from(mut self, extensions: &http::Extensions) -> Self {
        if self.0.request_id.is_none() {
            self.0.request_id = RequestId::of(extensions).map(|id| id.as_str().to_owned());
        }
        if self.0.trace_id.is_none() {
            self.0.trace_id = TraceId::of(extensions).map(|id| id.as_str().to_owned());
        }
        // Rendered where the request is not at hand (a handler's error type): the request
        // being served on this task.
        #[cfg(feature = "trace")]
        if self.0.request_id.is_none()
            && let Some(cur) = crate::trace::current()
        {
            self.0.request_id = Some(cur.request_id.as_str().to_owned());
            if self.0.trace_id.is_none() {
                self.0.trace_id = Some(cur.trace_id.as_str().to_owned());
            }
        }
        self
    }

    /// Renders the problem for a request: ids from its extensions, through the [`Renderer`] found
    /// there or the default JSON renderer.
    #[must_use]
    pub fn render_for(self, extensions: &http::Extensions) -> Response<Bytes> {
        let problem = self.with_ids_from(extensions);
        match extensions.get::<Renderer>() {
            Some(renderer) => renderer.render(&problem),
            None => super::render::render_json(&problem),
        }
    }

    /// The headers of this problem, consumed (used by renderers).
    pub(crate) fn headers_owned(&self) -> HeaderMap {
        self.0.headers.clone()
    }
}

impl fmt::Debug for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Problem")
            .field("status", &self.0.status)
            .field("code", &self.0.code)
            .field("detail", &self.0.detail)
            .finish_non_exhaustive()
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.0.status.as_u16(), self.0.code)?;
        if let Some(detail) = &self.0.detail {
            write!(f, ": {detail}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standard_members_cannot_be_overwritten_by_extensions() {
        let p = Problem::new(StatusCode::BAD_REQUEST, "X-1")
            .with_member("status", 200)
            .with_member("code", "OK");
        let json = p.to_json();
        assert_eq!(json["status"], 400);
        assert_eq!(json["code"], "X-1");
    }

    #[test]
    fn ids_come_from_extensions_unless_set() {
        let mut ext = http::Extensions::new();
        ext.insert(RequestId::new("r1"));
        ext.insert(TraceId::new("t1"));
        let json = Problem::new(StatusCode::NOT_FOUND, "N")
            .with_ids_from(&ext)
            .to_json();
        assert_eq!(json["request_id"], "r1");
        assert_eq!(json["trace_id"], "t1");
        let json = Problem::new(StatusCode::NOT_FOUND, "N")
            .with_request_id("mine")
            .with_ids_from(&ext)
            .to_json();
        assert_eq!(json["request_id"], "mine");
    }

    #[test]
    fn title_defaults_to_reason_phrase_and_type_to_about_blank() {
        let json = Problem::new(StatusCode::FORBIDDEN, "AUTH-403").to_json();
        assert_eq!(json["title"], "Forbidden");
        assert_eq!(json["type"], "about:blank");
        assert!(json.get("detail").is_none());
    }
}
