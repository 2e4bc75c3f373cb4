//! Rate limiting with GCRA: stacked, named limits keyed by client, principal, API key or path.
//!
//! * **The algorithm** is [`check`], a pure function of the key's stored theoretical arrival time,
//!   `now` and a [`Quota`] (`count` per `period`, at most `burst` at once), in integer nanoseconds.
//!   A denial is a value that knows its retry-after and reset.
//! * **Limits stack**: a [`RateLimitLayer`] holds several named [`Limit`]s, each keyed by
//!   [`KeyBy`] parts (client IP — optionally IPv6 /64 — principal subject, API key, path, matched
//!   route, or a combination) and optionally restricted to a path prefix and methods. Every applicable limit
//!   is checked; the strictest decides. A limit whose key is missing (no principal yet, because
//!   this layer runs before auth) does not apply, so one layer before auth and one after give
//!   per-IP and per-user limits.
//! * **CORS preflights** (`OPTIONS` with `Access-Control-Request-Method`) are never counted.
//! * **Responses** carry `RateLimit-Policy` and `RateLimit` (draft-ietf-httpapi-ratelimit-headers
//!   -10, structured fields: `"ip";q=60;w=60` and `"ip";r=42;t=17`), one item per applied limit,
//!   strictest first. A refusal is a `429` problem with the code
//!   [`RATE-429`](crate::error::code::RATE_LIMITED) and `Retry-After` in seconds.
//! * **State** lives in a [`RateLimitStore`]; [`InMemoryStore`] is sharded, bounded by a maximum
//!   number of keys and drops idle keys by itself (a TAT in the past carries no information).
//!   A [`RemoteStore`] — [`RedisStore`] with the `redis` feature — shares one limit between
//!   instances, with an explicit [`OnStoreError`] policy (in-process fallback, fail open, or fail
//!   closed with a `503`) when it is down or slow.
//! * **Metrics** (through the `metrics` facade; the application installs the exporter):
//!   `protothrive_rate_limit_decisions_total{limit, decision}` with `decision` `allow` or `deny`,
//!   and `protothrive_rate_limit_store_errors_total{kind, policy}`. A limit registers its counters
//!   with the recorder at its first decision, so install the recorder before serving.
//!
//! Note that a denied request is not recorded by the limit that denied it: a client hammering past
//! its limit is refused, but its wait does not grow (the same as governor). The other limits of the
//! same request that allowed it did count it (each limit is checked and recorded atomically on its
//! own), so a request refused by a per-route limit still uses up one of the per-IP quota.
//!
//! # Example
//!
//! ```
//! use std::convert::Infallible;
//! use std::net::{IpAddr, Ipv4Addr};
//! use http::{Request, Response};
//! use protothrive::client_ip::ClientIp;
//! use protothrive::rate_limit::{KeyBy, Limit, RateLimitLayer};
//! use tower::{service_fn, ServiceBuilder, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let layer = RateLimitLayer::builder()
//!     .limit(Limit::new("ip", "60/min burst 2".parse()?).by(KeyBy::ClientIp))
//!     .build()?;
//! let svc = ServiceBuilder::new()
//!     .layer(layer)
//!     .service(service_fn(|_req: Request<()>| async { Ok::<_, Infallible>(Response::new(())) }));
//! let req = || {
//!     let mut r = Request::new(());
//!     r.extensions_mut().insert(ClientIp(IpAddr::V4(Ipv4Addr::LOCALHOST)));
//!     r
//! };
//! let ok = svc.clone().oneshot(req()).await?;
//! assert_eq!(ok.headers()["ratelimit-policy"], r#""ip";q=60;w=60"#);
//! assert_eq!(ok.headers()["ratelimit"], r#""ip";r=1;t=1"#);
//! svc.clone().oneshot(req()).await?;
//! let refused = svc.oneshot(req()).await?;
//! assert_eq!(refused.status(), 429);
//! assert_eq!(refused.headers()["retry-after"], "1");
//! # Ok(())
//! # }
//! ```

mod gcra;
mod key;
mod layer;
mod quota;
mod quota_list;
#[cfg(feature = "redis")]
mod redis;
mod remote;
mod service;
mod store;
#[cfg(test)]
mod tests;

pub use gcra::{Decision, check};
pub use layer::{KeyBy, Limit, RateLimitLayer, RateLimitLayerBuilder, Route};
pub use quota::Quota;
pub use quota_list::QuotaList;
#[cfg(feature = "redis")]
pub use redis::{DEFAULT_TIMEOUT, RedisStore, RedisStoreBuilder, TimeSource};
pub use remote::{CheckFuture, OnStoreError, RemoteStore, StoreError, StoreErrorKind};
pub(crate) use service::{LimitCheck, Remote};
pub use service::{RATELIMIT, RATELIMIT_POLICY, RateLimit, RateLimitStamp, ResponseFuture};
pub use store::{DEFAULT_MAX_KEYS, InMemoryStore, RateLimitStore, WhenFull};
