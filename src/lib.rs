//! # protothrive
//!
//! Tower middleware that makes an HTTP API production-grade: the real client address behind
//! proxies, RFC 9457 problem responses, JWT and API-key authentication, and (as they land) CORS,
//! rate limits, caching, batching, tracing and resilience — layers that know about each other and
//! go together in the right order.
//!
//! Every layer is generic over `http::Request`/`http::Response`, so it works with axum, hyper and
//! tonic, and each works alone.
//!
//! | module | feature | what it does |
//! |---|---|---|
//! | [`clock`] | always | injected time: nothing else reads the wall clock |
//! | [`error`] | always | `application/problem+json` rejections with stable codes |
//! | `client_ip` | `client-ip` | the client address, from trusted proxies' forwarding headers |
//! | `auth` | `auth` (`jwks`) | JWT (HS/RS/PS/ES/EdDSA) and API keys → a `Principal` |
//! | `cors` | `cors` | CORS per the Fetch standard; refused preflights get a 403 problem |
//! | `security_headers` | `security-headers` | HSTS, nosniff, frame options, referrer policy, CSP, COOP |
//! | `csrf` | `csrf` | double-submit CSRF check for cookie-authenticated writes |
//! | `rate_limit` | `rate-limit` | GCRA limits by IP, user, API key or route; IETF `RateLimit` headers |
//! | `cache` | `cache` | RFC 9111 shared cache: freshness, revalidation, stale handling, coalescing, invalidation |
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(feature = "auth")]
pub mod auth;
#[cfg(feature = "cache")]
pub mod cache;
#[cfg(feature = "client-ip")]
pub mod client_ip;
pub mod clock;
#[cfg(feature = "cors")]
pub mod cors;
#[cfg(feature = "csrf")]
pub mod csrf;
pub mod error;
#[cfg(feature = "gateway")]
pub mod gateway;
#[cfg(any(feature = "gateway", feature = "cors"))]
mod headers;
pub mod identity;
#[cfg(feature = "rate-limit")]
pub mod rate_limit;
// Shared by the Redis stores of the rate limiter and the cache.
#[cfg(all(feature = "redis", any(feature = "rate-limit", feature = "cache")))]
mod redis_conn;
pub mod request_id;
#[cfg(feature = "security-headers")]
pub mod security_headers;
pub mod stack;
