//! The read cache of the API: the crate's `CacheLayer` on the routes that read, after their
//! role checks (a cached answer is never served to someone the route would refuse), with the
//! caller's subject as the partition for per-user data, Redis as L2 when configured, and the
//! writes' purges by tag.
//!
//! * Snippets and the dashboard are the same for every caller allowed to read them: handlers
//!   answer `s-maxage` (shared entries). Roadmap reads depend on the caller: handlers answer
//!   `private, max-age` (entries in the caller's partition).
//! * Handlers tag responses with `Surrogate-Key` (`snippets`, `roadmap:<id>`,
//!   `roadmaps:<owner>`, `dashboard`); writes purge those tags through [`purge`] before they
//!   answer, so a read after a write never sees the old data (on every instance: the purge goes to
//!   Redis and to the other instances' L1 over pub/sub).
//! * What the cache reads is not what the client should keep: responses leave the cached routes
//!   with `Cache-Control: private, no-cache` (a browser revalidates; no shared proxy stores
//!   authenticated data), `Cache-Status` telling what the cache did.

use std::convert::Infallible;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::Route;
use bytes::Bytes;
use protothrive::auth::Principal;
use protothrive::cache::{CacheBody, CacheLayer, CacheLayerBuilder, Purge, WriteThrough};
use protothrive::gateway::{API_VERSION, ApiVersion};
use tower::{Layer, Service, ServiceBuilder};

use crate::state::AppState;

/// How long cached reads stay fresh. Writes purge what they change; the lifetime bounds how long
/// a read racing a write can keep the old answer.
pub const FRESH_SECS: u64 = 30;

/// `Cache-Control` of shared reads (snippets, the dashboard).
pub fn shared() -> HeaderValue {
    HeaderValue::from_static("max-age=0, s-maxage=30")
}

/// `Cache-Control` of per-user reads (roadmaps).
pub fn per_user() -> HeaderValue {
    HeaderValue::from_static("private, max-age=30")
}

/// Sets `Cache-Control`, `Vary: API-Version` (v1 and v2 answer one path differently; the version
/// layer puts the negotiated version in that request header) and the `Surrogate-Key` tags of a
/// read.
pub fn tag(mut res: Response, cache_control: HeaderValue, tags: &str) -> Response {
    let h = res.headers_mut();
    h.insert(header::CACHE_CONTROL, cache_control);
    h.append(header::VARY, HeaderValue::from_static("API-Version"));
    if let Ok(v) = HeaderValue::try_from(tags) {
        h.insert(protothrive::cache::SURROGATE_KEY.clone(), v);
    }
    res
}

/// The read cache: 64 MiB in process, partitioned by the caller's subject (the stack sets its
/// clock, and its Redis L2 with purges from other instances when there is one).
pub fn builder() -> CacheLayerBuilder {
    CacheLayer::builder()
        .max_bytes(64 << 20)
        .partition(|req| Principal::of(&req.extensions).map(|p| p.subject().to_owned()))
}

/// The answer of a cached route as the client gets it: `Cache-Control: private, no-cache`.
fn outward(mut res: Response<CacheBody<Body>>) -> Response {
    let h = res.headers_mut();
    let no_store = h
        .get(header::CACHE_CONTROL)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("no-store"));
    if !no_store {
        h.insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static("private, no-cache"),
        );
    }
    res.into_response()
}

/// The cache as a route layer (put it inside the route's role check). Its errors are the
/// route's (`Infallible`): what fails in the cache itself is a problem response it renders.
pub fn cached(
    state: &AppState,
) -> impl Layer<
    Route,
    Service: Service<Request, Response = Response, Error = Infallible, Future: Send + 'static>
                 + Clone
                 + Send
                 + Sync
                 + 'static,
> + Clone
+ Send
+ Sync
+ 'static {
    ServiceBuilder::new()
        .map_response(outward as fn(_) -> _)
        .layer(state.cache.clone())
}

/// Purges `tags` from every tier and every instance; the write that calls it answers after.
pub async fn purge(state: &AppState, tags: &[String]) {
    let handle = state.cache.handle();
    for t in tags {
        handle.invalidate(Purge::Tag(t.clone())).await;
    }
}

/// The `GET` of `path` (unversioned) as the cache sees it from `principal` asking for version
/// `v` on `host`: the key a write-through stores under, so that the reader's next `GET` finds it
/// (same URI and `Host`, the principal's partition, `API-Version` for `Vary`).
pub fn read_request(
    host: Option<&HeaderValue>,
    path: &str,
    v: ApiVersion,
    principal: &Principal,
) -> axum::http::Request<()> {
    let mut req = axum::http::Request::new(());
    if let Ok(uri) = path.parse() {
        *req.uri_mut() = uri;
    }
    if let Some(host) = host {
        req.headers_mut().insert(header::HOST, host.clone());
    }
    if let Ok(name) = HeaderValue::try_from(v.name()) {
        req.headers_mut().insert(API_VERSION.clone(), name);
    }
    req.extensions_mut().insert(principal.clone());
    req
}

/// A handler's answer with its body read (a write-through stores it as it is).
pub async fn buffered(res: Response) -> Result<axum::http::Response<Bytes>, axum::Error> {
    let (parts, body) = res.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX).await?;
    Ok(axum::http::Response::from_parts(parts, bytes))
}

/// `res` carrying `through`: the cache layer around the route applies it (its purges, then its
/// puts) before the answer leaves, judged against the purges of concurrent writes.
pub fn with_write_through(mut res: Response, through: WriteThrough) -> Response {
    res.extensions_mut().insert(through);
    res
}
