//! An HTTP shared cache (RFC 9111) in front of handlers: correct by the RFC, cheap on a hit.
//!
//! * **What is stored** ([`storable`](policy::storable)): `GET` responses with a final status the
//!   cache understands (never a 1xx, never a `206` or `304`), explicit freshness or a heuristically
//!   cacheable status; never `no-store` (request or response), never `Vary: *`, never `private` or
//!   (RFC 9111 §3.5) a response to `Authorization` without `public`/`s-maxage`/`must-revalidate` —
//!   unless the request has a **partition**.
//! * **Cookies**: `Set-Cookie` is never stored, so no cookie is ever replayed to another client. A
//!   response that sets one is not stored at all, unless the origin lists it in
//!   `no-cache="Set-Cookie"` or `private="Set-Cookie"`: then it is stored without it. Either way
//!   the origin's `Set-Cookie` reaches the client whose request fetched the response.
//! * **Listed fields** ([`strip_listed`](policy::strip_listed)): fields named by a qualified
//!   `no-cache="..."` are left out of the stored response (it is reused without revalidation,
//!   without them), and so are, in the shared scope, those named by `private="..."` (RFC 9111
//!   §5.2.2.4, §5.2.2.7); the client that fetched the response gets them.
//! * **Targeted fields** ([`Directives`](policy::Directives), RFC 9213): the first field of the
//!   target list ([`targets`](CacheLayerBuilder::targets), default `CDN-Cache-Control`) with a
//!   valid Structured Field dictionary governs storage and freshness in place of `Cache-Control`
//!   and `Expires`; `Cache-Control` goes on to the client for the caches downstream.
//! * **Partitions**: [`partition`](CacheLayerBuilder::partition) names the user a request belongs
//!   to (the principal's subject, say). That user's responses are stored under keys that carry the
//!   partition and only ever answer that user; they are shared only when the origin marks them
//!   `public` or gives `s-maxage`. With no partition only shared-cacheable responses are stored.
//! * **Keys** ([`CacheKey`](policy::CacheKey)): method + normalized URI (host from the URI or
//!   `Host`, never from `X-Forwarded-Host`) + partition + the request's values of the response's
//!   `Vary` headers. Headers that are not keyed but that handlers are known to reflect
//!   ([`DEFAULT_UNKEYED_HEADERS`]: `X-Forwarded-Host`, `Forwarded`, `X-Original-URL`, ...) are
//!   removed from every cacheable request before it reaches the handler, so they cannot poison the
//!   cache.
//! * **Freshness and age** ([`freshness_lifetime`](policy::freshness_lifetime),
//!   [`initial_age`](policy::initial_age)): `s-maxage`, `max-age`, `Expires` − `Date`, 10% of
//!   `Date` − `Last-Modified` capped; `Age` and `Cache-Status` (RFC 9211) on every response
//!   ([`CacheStatus`](policy::CacheStatus)), this cache's member added after those of the caches
//!   nearer the origin (a forwarded response's, or a stored one's).
//! * **Reuse** ([`reuse`](policy::reuse)): request
//!   `no-cache`/`max-age`/`min-fresh`/`max-stale`/`only-if-cached` (a `504` problem when nothing
//!   fits), response `no-cache`/`must-revalidate`/`proxy-revalidate`; `stale-while-revalidate`
//!   answers stale and refreshes once in the background (a tokio task); `stale-if-error` answers
//!   stale when the origin fails or answers 5xx (put a timeout layer inside this one to turn a slow
//!   origin into an error).
//! * **Validation**: a stale response with `ETag`/`Last-Modified` is revalidated with
//!   `If-None-Match`/`If-Modified-Since`; a 304 is merged into it (RFC 9111 §4.3.4). A client's own
//!   conditional request is answered with 304 from a usable stored response.
//! * **Coalescing**: concurrent misses for one key make one origin call; the others wait and are
//!   answered from what it stored (or go to the origin themselves when it stored nothing). A key
//!   whose response was not storable because of the response (`no-store`, `private`, `Set-Cookie`,
//!   ...) is remembered for a minute ([`hit_for_pass`](CacheLayerBuilder::hit_for_pass)): its
//!   requests go straight to the origin, side by side, without asking the L2 tier.
//! * **Tiers**: L1 is quick_cache bounded by bytes (body + header fields + key); an optional L2
//!   ([`CacheTier`], Redis) is read on an L1 miss (promoted to L1) and written on every store
//!   (awaited before the response goes out, with a TTL covering the stale windows; entries are
//!   [`CacheEntry::encode`]d compactly).
//! * **Invalidation**: an unsafe method answered 2xx/3xx invalidates its target URI and same-origin
//!   `Location`/`Content-Location` (RFC 9111 §4.4); a [`CacheHandle`] invalidates by key, URI,
//!   prefix or tag — tags come from a `Surrogate-Key` response header (space-separated), recorded
//!   and then removed from the response.
//!
//! * **Data**: [`DataCache`] is a typed `get_or_load` cache for query results inside handlers, over
//!   its own L1 and the Redis tier.
//!
//! * **Errors**: the cache's error is the inner service's (`type Error = S::Error`), passed through
//!   unchanged, so it goes on an axum `Router` (whose routes never fail) without
//!   `HandleErrorLayer`. What fails in the cache itself is answered by the cache, as a problem
//!   response rendered with the request's [`Renderer`](crate::error::Renderer) and logged with
//!   `tracing`: an origin body that fails while it is buffered is a `502`
//!   ([`CACHE_UPSTREAM_BODY`](crate::error::code::CACHE_UPSTREAM_BODY), nothing stored, the
//!   coalesced waiters go to the origin themselves), `only-if-cached` with nothing usable stored is
//!   a `504` ([`CACHE_ONLY_IF_CACHED`](crate::error::code::CACHE_ONLY_IF_CACHED)). A body error
//!   after the cache gave up buffering (past `max_body`) reaches the client's body as the origin's
//!   own error.
//!
//! Only `GET` is stored. A `HEAD` is answered from a stored `GET` when that may answer as it is;
//! otherwise it goes to the origin, and a `200` carrying the stored validators updates the stored
//! headers while any other `200` invalidates the entry (RFC 9111 §4.3.5). A `GET` with `Range` is
//! answered from a stored complete `200` that may answer as it is
//! ([`byte_range`](policy::byte_range), [`if_range_holds`](policy::if_range_holds)): a `206` of one
//! span, a `416` problem when no range is within it, the whole `200` when `If-Range` does not hold
//! or the ranges make several spans; otherwise it goes to the origin as it is and its answer is not
//! stored. A 304 (or a `HEAD`) updates the stored fields as §3.2 says: each field replaces the
//! stored one but `Content-Length`, the stored `Age` goes, a missing `Date` is the time of arrival.
//!
//! # Where things are
//!
//! The root has what a user names: the [`CacheLayer`], its builder, its [`CacheHandle`] and
//! [`CacheStats`], the [`Cache`] service with its future and [`CacheBody`], the tiers
//! ([`CacheTier`], [`MemoryTier`], the Redis tier) and the [`DataCache`]. [`policy`] holds the
//! rules of RFC 9111 as pure functions, the layer is built on them; `redis` (feature `redis`)
//! holds the Redis tier, the wire form of invalidations and their broadcast. Inside, the layer
//! builds the service, the service finds hits and sends misses to the origin, and they all read
//! one shared state (configuration apart from what the requests share at run time); concurrent
//! misses coalesce through the crate's one single-flight, which the data cache and the JWKS use
//! too.
//!
//! # What it costs
//!
//! A fresh hit in L1 is answered in `call` itself: the key is built in one buffer (the `Host`
//! field read in place), L1 is looked up without awaiting (one sharded quick_cache lookup), the
//! stored headers are copied into a map sized for what the layers outside add, and `Age` comes
//! from a shared table; the body is shared (`Bytes`), and a range is a slice of it. Nothing is
//! boxed and the inner service is not cloned: four allocations in all (the key, the header
//! map's two buffers and `Cache-Status`; the stored response itself is an `Arc` clone).
//! Targeted fields are parsed when a response is stored or updated, never on a hit. Every other
//! path runs in a boxed future (the origin paths boxed inside it). About 0.5 µs over the inner
//! service on 2 cores, 0.15x http-cache-tower's hit. A miss
//! buffers a storable body up to [`max_body`](CacheLayerBuilder::max_body) before answering.
//! Invalidation by URI, prefix or tag scans L1 (every unsafe request that succeeds does one URI
//! scan). With an L2 tier, an L1 miss asks the tier once, except for a key in a hit-for-pass
//! window. BENCHMARKS.md has the figures.
//!
//! # Example
//!
//! ```
//! use std::convert::Infallible;
//! use std::sync::Arc;
//! use std::sync::atomic::{AtomicUsize, Ordering};
//! use bytes::Bytes;
//! use http::{Request, Response};
//! use http_body_util::Full;
//! use protothrive::cache::CacheLayer;
//! use tower::{service_fn, ServiceBuilder, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! let calls = Arc::new(AtomicUsize::new(0));
//! let counter = calls.clone();
//! let cache = CacheLayer::builder().build()?;
//! let svc = ServiceBuilder::new().layer(cache).service(service_fn(move |_req: Request<()>| {
//!     counter.fetch_add(1, Ordering::SeqCst);
//!     async {
//!         Ok::<_, Infallible>(
//!             Response::builder()
//!                 .header("cache-control", "max-age=60")
//!                 .header("surrogate-key", "snippets snippet-7")
//!                 .body(Full::new(Bytes::from("hello")))
//!                 .unwrap(),
//!         )
//!     }
//! }));
//! let get = || Request::get("/snippets/7").header("host", "api.example.com").body(()).unwrap();
//! let first = svc.clone().oneshot(get()).await?;
//! assert_eq!(first.headers()["cache-status"], "protothrive; fwd=uri-miss; fwd-status=200; ttl=60; stored");
//! assert!(!first.headers().contains_key("surrogate-key"));
//! let second = svc.clone().oneshot(get()).await?;
//! assert_eq!(second.headers()["cache-status"], "protothrive; hit; ttl=60");
//! assert_eq!(second.headers()["age"], "0");
//! assert_eq!(calls.load(Ordering::SeqCst), 1);
//! # Ok(())
//! # }
//! ```
//!
//! On an axum router, as a route layer (inside the route's authorization, see the crate docs):
//!
//! ```
//! use axum::{Router, body::Body, routing::get};
//! use http::{Request, header};
//! use protothrive::cache::CacheLayer;
//! use tower::ServiceExt;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! let app: Router = Router::new()
//!     .route("/snippets", get(|| async { ([(header::CACHE_CONTROL, "max-age=60")], "[]") }))
//!     .route_layer(CacheLayer::builder().build()?);
//! let get = || Request::get("http://api.example.com/snippets").body(Body::empty());
//! let _ = app.clone().oneshot(get()?).await?;
//! let res = app.oneshot(get()?).await?;
//! assert_eq!(res.headers()["cache-status"], "protothrive; hit; ttl=60");
//! # Ok(())
//! # }
//! ```

mod body;
mod bounds;
mod data;
mod freshen;
mod hit;
mod l1;
mod layer;
mod memory_tier;
mod origin;
pub mod policy;
mod put;
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub mod redis;
mod service;
mod state;
mod store;
#[cfg(test)]
mod tests;

pub use body::CacheBody;
pub use bounds::{CacheableBody, CacheableService};
pub use data::{DataCache, DataCacheBuilder};
pub use layer::{
    CacheHandle, CacheLayer, CacheLayerBuilder, CacheStats, DEFAULT_HIT_FOR_PASS, DEFAULT_MAX_BODY,
    DEFAULT_MAX_BYTES, DEFAULT_REVALIDATION_GRACE, DEFAULT_UNKEYED_HEADERS,
};
pub use memory_tier::MemoryTier;
pub use policy::validate::SURROGATE_KEY;
pub use put::{Ticket, WriteThrough, Written};
#[cfg(feature = "redis")]
pub use redis::RedisTier;
pub use service::{Cache, ResponseFuture};
pub use state::PartitionFn;
pub use store::{BoxFuture, CacheEntry, CacheTier, Purge, StoredResponse};
