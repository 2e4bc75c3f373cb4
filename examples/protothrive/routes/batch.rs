//! `POST /batch`: up to 20 sub-requests, run one after the other through the whole app (every
//! layer: client IP, ids, versions, limits, authentication, roles, and later rate limits and
//! caches), so a batch can do nothing its items could not do one by one.
//!
//! A sub-request carries the caller's credentials unless it brings its own, the caller's peer
//! address and forwarding headers (so per-IP limits see the same client), and the batch's API
//! version when its path has none. It may not be a batch itself (per-item 400, checked on the
//! decoded path and again by a request extension, whatever the path spelling). Items that are
//! malformed get a 400 of their own; the batch as a whole answers 200 with one result per item.
//!
//! The answers' bodies share one budget ([`MAX_BATCH_BODY`]) besides each item's own limit: 20
//! items of 2 MiB would otherwise hold 40 MiB per batch in memory. Every item still runs; an
//! answer that does not fit what is left of the budget is replaced by a note.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Extension, Router};
use protothrive::error::RequestId;
use protothrive::gateway::{ApiVersion, ValidJson};
use serde::Deserialize;
use serde_json::{Value, json};
use tower::ServiceExt as _;
use validator::{Validate, ValidationError, ValidationErrors};

use crate::db::tick;
use crate::http::{ApiResult, AppError, envelope};
use crate::state::AppState;

/// Items per batch.
pub const MAX_ITEMS: u64 = 20;
/// The largest item answer kept (bigger ones are replaced by a note).
const MAX_ITEM_BODY: usize = 2 * 1024 * 1024;
/// The most answer bytes one batch keeps, all items together.
pub const MAX_BATCH_BODY: usize = 4 * 1024 * 1024;
/// Headers an item may set (anything else is a per-item 400).
const ALLOWED_HEADERS: [&str; 8] = [
    "accept",
    "api-version",
    "authorization",
    "content-type",
    "idempotency-key",
    "if-match",
    "if-none-match",
    "x-api-key",
];
/// Headers of an item's answer that the batch answer repeats.
const KEPT_HEADERS: [HeaderName; 3] = [header::CONTENT_TYPE, header::LOCATION, header::RETRY_AFTER];

/// Marks a sub-request of a batch: a batch inside a batch is refused whatever its path.
#[derive(Debug, Clone, Copy)]
struct InBatch;

pub fn router() -> Router<AppState> {
    Router::new().route("/api/batch", post(batch).route_layer(super::user()))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Batch {
    requests: Vec<Item>,
}

/// By hand: the derive would want `Item: Serialize` to echo the value in the error.
impl Validate for Batch {
    fn validate(&self) -> Result<(), ValidationErrors> {
        if (1..=MAX_ITEMS).contains(&(self.requests.len() as u64)) {
            return Ok(());
        }
        let mut errors = ValidationErrors::new();
        errors.add(
            "requests",
            ValidationError::new("length")
                .with_message(format!("1 to {MAX_ITEMS} requests").into()),
        );
        Err(errors)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Item {
    method: String,
    path: String,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    body: Option<Value>,
}

/// JSON Schema (2020-12) of [`Batch`], for the OpenAPI document.
pub fn batch_schema() -> Value {
    json!({
        "type": "object", "additionalProperties": false,
        "required": ["requests"],
        "properties": {
            "requests": {
                "type": "array", "minItems": 1, "maxItems": MAX_ITEMS,
                "items": {
                    "type": "object", "additionalProperties": false,
                    "required": ["method", "path"],
                    "properties": {
                        "method": {"enum": ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"]},
                        "path": {"type": "string", "pattern": "^/api/", "maxLength": 2048,
                                 "description": "an API path (not /batch), with an optional query"},
                        "headers": {"type": "object", "additionalProperties": {"type": "string"},
                                    "propertyNames": {"enum": ALLOWED_HEADERS}},
                        "body": {"description": "any JSON value, sent as application/json"},
                    }
                }
            }
        }
    })
}

/// `%XX` decoding of a path (invalid escapes are kept as they are), for the recursion check.
fn percent_decoded(path: &str) -> String {
    let bytes = path.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| {
            char::from(b)
                .to_digit(16)
                .and_then(|d| u8::try_from(d).ok())
        };
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2]))
        {
            out.push(h * 16 + l);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Checks an item's path: an origin-form `/api/...` path, no dot segments, not a batch.
pub fn check_path(path: &str) -> Result<Uri, String> {
    if path.len() > 2048 || !path.bytes().all(|b| b.is_ascii_graphic()) {
        return Err("path must be at most 2048 visible ASCII characters".into());
    }
    if !path.starts_with("/api/") {
        return Err("path must start with /api/".into());
    }
    let uri: Uri = path
        .parse()
        .map_err(|_| "path is not a valid request target".to_owned())?;
    if uri.scheme().is_some() || uri.authority().is_some() || path.contains('#') {
        return Err("path must be a path and query only".into());
    }
    let decoded = percent_decoded(uri.path());
    // Decoding twice catches `%2562atch`.
    let decoded = percent_decoded(&decoded);
    if decoded.contains("//") || decoded.contains('\\') {
        return Err("path must not contain empty segments or backslashes".into());
    }
    if decoded.split('/').any(|seg| seg == "." || seg == "..") {
        return Err("path must not contain dot segments".into());
    }
    if decoded
        .split('/')
        .any(|seg| seg.eq_ignore_ascii_case("batch"))
    {
        return Err("a batch may not contain a batch".into());
    }
    Ok(uri)
}

fn method(m: &str) -> Result<Method, String> {
    match m {
        "GET" => Ok(Method::GET),
        "HEAD" => Ok(Method::HEAD),
        "POST" => Ok(Method::POST),
        "PUT" => Ok(Method::PUT),
        "PATCH" => Ok(Method::PATCH),
        "DELETE" => Ok(Method::DELETE),
        _ => Err("method must be one of GET, HEAD, POST, PUT, PATCH, DELETE".into()),
    }
}

/// What the caller's request lends to each item.
struct Outer {
    headers: HeaderMap,
    version: ApiVersion,
    peer: Option<ConnectInfo<SocketAddr>>,
    request_id: Option<String>,
}

/// Builds the sub-request of item `i`, or says why the item is refused.
fn sub_request(outer: &Outer, i: usize, item: Item) -> Result<Request, String> {
    let method = method(&item.method)?;
    let uri = check_path(&item.path)?;
    let mut headers = HeaderMap::new();
    for (name, value) in &item.headers {
        let name = name.to_ascii_lowercase();
        if !ALLOWED_HEADERS.contains(&name.as_str()) {
            return Err(format!("header {name} may not be set in a batch item"));
        }
        let name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| "invalid header name".to_owned())?;
        let value = HeaderValue::from_str(value)
            .ok()
            .filter(|_| value.len() <= 8192)
            .ok_or_else(|| format!("header {name} has an invalid value"))?;
        headers.insert(name, value);
    }
    let own_credentials =
        headers.contains_key(header::AUTHORIZATION) || headers.contains_key("x-api-key");
    let mut lend: Vec<HeaderName> = vec![
        HeaderName::from_static("x-forwarded-for"),
        header::FORWARDED,
    ];
    if !own_credentials {
        lend.extend([header::AUTHORIZATION, HeaderName::from_static("x-api-key")]);
    }
    for name in lend {
        if let Some(v) = outer.headers.get(&name) {
            headers.insert(name, v.clone());
        }
    }
    let versioned = uri
        .path()
        .strip_prefix("/api/v")
        .is_some_and(|r| r.starts_with(|c: char| c.is_ascii_digit()));
    if !versioned && !headers.contains_key("api-version") {
        headers.insert("api-version", HeaderValue::from(outer.version.0));
    }
    if let Some(rid) = &outer.request_id
        && let Ok(v) = HeaderValue::from_str(&format!("{rid}.{i}"))
    {
        headers.insert("x-request-id", v);
    }
    let body = match item.body {
        Some(v) => {
            if !headers.contains_key(header::CONTENT_TYPE) {
                headers.insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                );
            }
            Body::from(v.to_string())
        }
        None => Body::empty(),
    };
    let mut req = Request::new(body);
    *req.method_mut() = method;
    *req.uri_mut() = uri;
    *req.headers_mut() = headers;
    req.extensions_mut().insert(InBatch);
    if let Some(peer) = outer.peer {
        req.extensions_mut().insert(peer);
    }
    Ok(req)
}

/// One item's result: status, a few headers, and the body (JSON when it is JSON) if it fits in
/// `budget` bytes (and the item limit); with the body bytes it kept.
async fn item_result(res: Response, budget: usize) -> (Value, usize) {
    let status = res.status().as_u16();
    let mut headers = serde_json::Map::new();
    for name in &KEPT_HEADERS {
        if let Some(v) = res.headers().get(name).and_then(|v| v.to_str().ok()) {
            headers.insert(name.as_str().to_owned(), v.into());
        }
    }
    // The sub-request counted its statements in its own scope: add them to the batch's.
    let statements = res
        .headers()
        .get("x-query-count")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u32>().ok())
        .unwrap_or(0);
    for _ in 0..statements {
        tick();
    }
    let json = res
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.contains("json"));
    let limit = budget.min(MAX_ITEM_BODY);
    let (body, kept) = match axum::body::to_bytes(res.into_body(), limit).await {
        Ok(b) if b.is_empty() => (Value::Null, 0),
        Ok(b) if json => (
            serde_json::from_slice(&b)
                .unwrap_or_else(|_| String::from_utf8_lossy(&b).into_owned().into()),
            b.len(),
        ),
        Ok(b) => (String::from_utf8_lossy(&b).into_owned().into(), b.len()),
        Err(_) if limit < MAX_ITEM_BODY => (
            json!({"error": format!("the batch's answers reached {MAX_BATCH_BODY} bytes; this answer was left out")}),
            0,
        ),
        Err(_) => (
            json!({"error": format!("the answer is larger than {MAX_ITEM_BODY} bytes and was left out")}),
            0,
        ),
    };
    (
        json!({"status": status, "headers": headers, "body": body}),
        kept,
    )
}

async fn batch(
    State(s): State<AppState>,
    v: ApiVersion,
    nested: Option<Extension<InBatch>>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    rid: Option<Extension<RequestId>>,
    headers: HeaderMap,
    ValidJson(body): ValidJson<Batch>,
) -> ApiResult {
    if nested.is_some() {
        return Err(AppError::BadRequest(
            "A batch may not contain a batch.".into(),
        ));
    }
    let app = s
        .app
        .get()
        .cloned()
        .ok_or_else(|| AppError::Internal("the app handle is not set".into()))?;
    let outer = Outer {
        headers,
        version: v,
        peer: peer.map(|Extension(p)| p),
        request_id: rid.map(|Extension(r)| r.as_str().to_owned()),
    };
    let mut results = Vec::with_capacity(body.requests.len());
    let mut budget = MAX_BATCH_BODY;
    for (i, item) in body.requests.into_iter().enumerate() {
        let res = match sub_request(&outer, i, item) {
            Ok(req) => match app.clone().oneshot(req).await {
                Ok(res) => res,
                Err(never) => match never {},
            },
            Err(why) => AppError::BadRequest(why).into_response(),
        };
        let (result, kept) = item_result(res, budget).await;
        budget -= kept;
        results.push(result);
    }
    let meta = json!({"count": results.len()});
    let mut res = envelope(v, s.now(), results, meta).into_response();
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(res)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_must_be_api_paths_and_never_a_batch() {
        for ok in [
            "/api/snippets",
            "/api/v2/snippets?category=ui&limit=5",
            "/api/v1/roadmaps/00000000-0000-4000-8000-000000000001",
        ] {
            assert!(check_path(ok).is_ok(), "{ok}");
        }
        for bad in [
            "/api/batch",
            "/api/v1/batch",
            "/api/v2/BATCH",
            "/api/v1/%62atch",
            "/api/v1/%2562atch",
            "/api/v1/snippets/../batch",
            "/api/v1/./snippets",
            "/api//batch",
            "/health",
            "/metrics",
            "http://evil.example/api/snippets",
            "//evil.example/api/x",
            "/api/snippets#x",
            "/api/snip pets",
            "/api/\u{e9}",
            "api/snippets",
            "",
        ] {
            assert!(check_path(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn methods_are_exact() {
        assert!(method("GET").is_ok() && method("DELETE").is_ok());
        for bad in ["get", "CONNECT", "TRACE", "OPTIONS", "", "G ET"] {
            assert!(method(bad).is_err(), "{bad}");
        }
    }

    fn outer() -> Outer {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer caller"),
        );
        Outer {
            headers,
            version: ApiVersion(2),
            peer: None,
            request_id: Some("rid".into()),
        }
    }

    fn item(path: &str, headers: &[(&str, &str)]) -> Item {
        Item {
            method: "GET".into(),
            path: path.into(),
            headers: headers
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            body: None,
        }
    }

    #[test]
    fn items_borrow_the_callers_credentials_and_version_unless_they_bring_their_own() {
        let req = sub_request(&outer(), 3, item("/api/snippets", &[])).unwrap();
        assert_eq!(req.headers()[header::AUTHORIZATION], "Bearer caller");
        assert_eq!(req.headers()["api-version"], "2");
        assert_eq!(req.headers()["x-request-id"], "rid.3");
        assert!(req.extensions().get::<InBatch>().is_some());

        let req = sub_request(
            &outer(),
            0,
            item("/api/v1/snippets", &[("X-API-Key", "pt_x")]),
        )
        .unwrap();
        assert!(req.headers().get(header::AUTHORIZATION).is_none());
        assert_eq!(req.headers()["x-api-key"], "pt_x");
        assert!(req.headers().get("api-version").is_none());
    }

    #[test]
    fn items_may_not_set_other_headers() {
        assert!(sub_request(&outer(), 0, item("/api/snippets", &[("Host", "evil")])).is_err());
        assert!(
            sub_request(
                &outer(),
                0,
                item("/api/snippets", &[("x-forwarded-for", "1.2.3.4")])
            )
            .is_err()
        );
        assert!(sub_request(&outer(), 0, item("/api/snippets", &[("accept", "a\nb")])).is_err());
    }
}
