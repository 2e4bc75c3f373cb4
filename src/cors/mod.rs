//! CORS per the Fetch standard, correct by construction.
//!
//! * A **preflight** is `OPTIONS` *with* `Access-Control-Request-Method` (Fetch §3.2.2). It is
//!   answered here and never reaches the layers further in (auth, rate limits, cache, handler):
//!   `204` with the exact allowed methods and headers and `Access-Control-Max-Age` when the origin,
//!   the method and every requested header are allowed; otherwise a `403` problem with the stable
//!   code [`CORS-403`](crate::error::code::CORS_FORBIDDEN). Any other `OPTIONS` request goes to the
//!   application.
//! * **Origins** are compared as serialized origins — scheme, host and port, case-insensitive,
//!   default ports dropped — against exact values, lists, whole-label host patterns
//!   (`https://*.example.com` never matches `example.com.evil.net`, `evilexample.com`, another
//!   scheme or port) or a predicate ([`AllowOrigin`]). `null` passes only if listed; two `Origin`
//!   headers or a comma list pass never.
//! * **Every response** of the inner service for an allowed origin — 401, 403, 429 and 503
//!   included — carries `Access-Control-Allow-Origin` (and `-Credentials`, `-Expose-Headers`), so
//!   the page can read why it was refused. `Vary: Origin` is merged into the application's own
//!   `Vary` (never duplicated, never overwritten) whenever the answer depends on the origin.
//! * **Exposed headers** default to [`DEFAULT_EXPOSE_HEADERS`]: the request id and the rate-limit
//!   and versioning headers. `Set-Cookie` and `Authorization` are refused.
//! * **Mistakes are build errors**, returned as `Result`: credentials with any wildcard (origin,
//!   methods, headers, exposed headers) or with a mirrored origin, malformed origins or patterns.
//! * **Private Network Access** preflights get `Access-Control-Allow-Private-Network: true` only
//!   when [`allow_private_network`](CorsLayerBuilder::allow_private_network) is on.
//!
//! # Why not a wrapper of tower-http's `CorsLayer`
//!
//! tower-http's layer treats every `OPTIONS` request as a preflight (an application's own `OPTIONS`
//! route never runs when the origin is allowed), panics on a bad configuration instead of returning
//! an error, answers a refused preflight with an ordinary `200` the browser then rejects (so a
//! misconfiguration is invisible in logs and metrics), and matches predicates against raw header
//! values. Fixing those from the outside would mean re-parsing every request before it; the rules
//! are small, so the layer stands alone and shares the crate's problem responses and `Vary` merging.
//!
//! # What it costs
//!
//! The decision allocates nothing: the origin is parsed and compared in place, and the header
//! values sent back are built once by [`build`](CorsLayerBuilder::build). What remains is the
//! response headers themselves (the first insert into an empty `HeaderMap` allocates, the echoed
//! origin is cloned): about 260 ns over the inner service for a simple request and 430 ns for a
//! preflight on a 2-core machine, below and level with tower-http's layer; BENCHMARKS.md has the
//! figures.
//!
//! # Example
//!
//! ```
//! use std::convert::Infallible;
//! use http::{Method, Request, Response};
//! use protothrive::cors::{AllowOrigin, CorsLayer};
//! use tower::{service_fn, ServiceBuilder, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let cors = CorsLayer::builder()
//!     .allow_origin(AllowOrigin::list(["https://app.example.com", "https://*.example.org"]))
//!     .allow_methods([Method::GET, Method::PUT])
//!     .allow_headers(["authorization", "content-type"])
//!     .allow_credentials(true)
//!     .build()?;
//! let svc = ServiceBuilder::new()
//!     .layer(cors)
//!     .service(service_fn(|_req: Request<()>| async {
//!         Ok::<_, Infallible>(Response::new(String::from("hello")))
//!     }));
//!
//! let preflight = Request::options("/api/roadmaps/1")
//!     .header("origin", "https://app.example.com")
//!     .header("access-control-request-method", "PUT")
//!     .header("access-control-request-headers", "authorization,content-type")
//!     .body(())?;
//! let res = svc.clone().oneshot(preflight).await?;
//! assert_eq!(res.status(), 204);
//! assert_eq!(res.headers()["access-control-allow-methods"], "GET, PUT");
//!
//! let evil = Request::options("/api/roadmaps/1")
//!     .header("origin", "https://example.org.evil.net")
//!     .header("access-control-request-method", "PUT")
//!     .body(())?;
//! assert_eq!(svc.clone().oneshot(evil).await?.status(), 403);
//!
//! let get = Request::get("/").header("origin", "https://eu.example.org").body(())?;
//! let res = svc.oneshot(get).await?;
//! assert_eq!(res.headers()["access-control-allow-origin"], "https://eu.example.org");
//! assert_eq!(res.headers()["access-control-allow-credentials"], "true");
//! assert_eq!(res.headers()["vary"], "Origin");
//!
//! // Credentials with a wildcard is a build error, not a panic.
//! let err = CorsLayer::builder().allow_origin(AllowOrigin::any()).allow_credentials(true).build();
//! assert!(err.unwrap_err().message().starts_with(
//!     "CORS: credentials cannot be combined with an origin wildcard or a mirrored origin"
//! ));
//! # Ok(())
//! # }
//! ```

mod allow_origin;
mod layer;
mod origin;
mod preflight;
mod service;
#[cfg(test)]
mod tests;

pub use allow_origin::AllowOrigin;
pub use layer::{CorsLayer, CorsLayerBuilder, DEFAULT_EXPOSE_HEADERS, DEFAULT_MAX_AGE};
pub use service::{Cors, CorsStamp, ResponseFuture};

/// Whether `origin` parses as a serialized origin (`scheme://host[:port]`, no path) — for fuzzing
/// and tests; the layer itself uses [`AllowOrigin::matches`].
///
/// ```
/// assert!(protothrive::cors::is_serialized_origin("https://a.example:8443"));
/// assert!(!protothrive::cors::is_serialized_origin("https://a.example/"));
/// ```
#[must_use]
pub fn is_serialized_origin(origin: &str) -> bool {
    origin::parse(origin).is_some()
}
