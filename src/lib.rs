//! # protothrive
//!
//! Tower middleware that makes an HTTP API production-grade — the real client address behind
//! proxies, request ids, CORS, security headers, API versions and body limits, rate limits, JWT and
//! API-key authentication, CSRF, an RFC 9111 cache, RFC 9457 problem responses — as layers that
//! know about each other and go together in the right order.
//!
//! ## The order, and why
//!
//! [`stack::Stack`] assembles them outer to inner; each layer also works alone with axum, hyper
//! or tonic (every one is generic over `http::Request`/`http::Response`).
//!
//! | # | layer | why there |
//! |---|---|---|
//! | 1 | `client_ip` | the client address, resolved once from trusted proxies; every layer below reads it |
//! | 2 | [`request_id`], then `trace` | every rejection below carries `request_id` and `trace_id`, is traced and counted |
//! | 3 | `cors` | preflights answered before auth and limits; CORS headers on every 401/403/429 further in |
//! | 4 | `security_headers`, `gateway` | headers on every answer; versions; 413/415 before any work |
//! | 5 | `rate_limit` by client | floods stopped before authentication is paid for |
//! | 6 | `auth` | the [`identity::Principal`] for everything inside |
//! | 7 | `csrf` | only cookie-authenticated writes, so after auth |
//! | 8 | `rate_limit` by principal | per user and per API key |
//! | 9 | per route: role check, then `cache` | a shared entry never answers a caller the route refuses |
//! | 10 | per route, inside the cache: `resilience` (breaker, timeout, load shedding) | a refusal is answered from a stale entry when there is one |
//!
//! Impossible mixes (a per-IP limit without client IP, a per-user limit without auth, credentials
//! with a wildcard origin) are [`error::ConfigError`]s when the stack is built.
//!
//! | module | feature | what it does |
//! |---|---|---|
//! | [`stack`] | always (layers by feature) | the order above from one builder, or from [`stack::Settings`] (`config` for TOML) |
//! | [`clock`] | always | injected time: nothing else reads the wall clock |
//! | [`error`] | always | `application/problem+json` rejections with stable codes |
//! | [`identity`] | always | the client address, principal and credential source the layers share |
//! | [`request_id`] | always | `X-Request-Id` in and out, and on every problem |
//! | [`response`] | always | the one response body and future every layer shares |
//! | `client_ip` | `client-ip` | the client address, from trusted proxies' forwarding headers |
//! | `auth` | `auth` (`jwks`) | JWT (HS/RS/PS/ES/EdDSA) and API keys → a `Principal` |
//! | `gateway` | `gateway` | API versions, body and media-type limits, JSON validation |
//! | `cors` | `cors` | CORS per the Fetch standard; refused preflights get a 403 problem |
//! | `security_headers` | `security-headers` | HSTS, nosniff, frame options, referrer policy, CSP, COOP |
//! | `csrf` | `csrf` | double-submit CSRF check for cookie-authenticated writes |
//! | `rate_limit` | `rate-limit` (`redis`) | GCRA limits by IP, user, API key or route; IETF `RateLimit` headers |
//! | `trace` | `trace` | W3C trace context in and out, one span per request, RED metrics, outbound propagation |
//! | `batch` | `batch` | DataLoader (`Loader`) for N+1 lookups; `BatchLayer`, an HTTP batch endpoint around the stack |
//! | `cache` | `cache` (`redis`) | RFC 9111 shared cache: freshness, revalidation, stale handling, coalescing, invalidation |
//! | `resilience` | `resilience` | circuit breaker, retry budget, timeouts and deadlines, priority load shedding, upstream sets (p2c, ejection, health checks) |
//! | `health` | `health` | liveness, and readiness from named dependency checks with timeouts |
//!
//! No feature is on by default: each layer's feature brings only what it needs (`full` has them
//! all).
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(feature = "auth")]
pub mod auth;
#[cfg(any(feature = "resilience", feature = "otel"))]
mod backoff;
#[cfg(feature = "batch")]
pub mod batch;
#[cfg(feature = "cache")]
pub mod cache;
#[cfg(feature = "client-ip")]
pub mod client_ip;
pub mod clock;
#[cfg(any(feature = "cache", feature = "auth"))]
mod coalesce;
#[cfg(feature = "cors")]
pub mod cors;
#[cfg(feature = "csrf")]
pub mod csrf;
pub mod error;
#[cfg(feature = "gateway")]
pub mod gateway;
mod headers;
#[cfg(feature = "health")]
pub mod health;
pub mod identity;
mod macros;
#[cfg(feature = "rate-limit")]
pub mod rate_limit;
#[cfg(feature = "redis")]
pub mod redis_handle;
pub mod request_id;
#[cfg(feature = "resilience")]
pub mod resilience;
pub mod response;
#[cfg(feature = "security-headers")]
pub mod security_headers;
#[cfg(any(
    feature = "auth",
    feature = "rate-limit",
    feature = "resilience",
    feature = "trace"
))]
mod span;
pub mod stack;
#[cfg(feature = "trace")]
pub mod trace;

// The README's code blocks are compiled and run with the doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
