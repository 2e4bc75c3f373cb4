//! The whole request path in one [`Layer`](tower_layer::Layer): the crate's layers in the order
//! that makes them correct together, and the values they share.
//!
//! Outer to inner:
//!
//! | # | position | why there |
//! |---|---|---|
//! | 1 | client IP | resolved once from trusted proxies; every layer below reads it |
//! | 2 | request id, then trace ([`StackBuilder::trace`]) | every rejection below carries `request_id` and `trace_id`, is traced and counted |
//! | 3 | CORS | preflights answered before auth and limits; CORS headers on every 401/403/429 below |
//! | 4 | security headers, versions, body limits | on every answer; 413/415 before any work |
//! | 5 | limits by client | floods stopped before authentication is paid for |
//! | 6 | auth | the [`Principal`](crate::identity::Principal) for everything inside |
//! | 7 | CSRF | only cookie-authenticated writes, so after auth |
//! | 8 | limits by principal | per user, per API key |
//! | 9 | per route: `Stack::require_role`, then `Stack::cache` | the cache inside each route's check, so a shared entry never answers a caller the route refuses |
//!
//! Guarantees:
//! * one [`Clock`](crate::clock::Clock) for every time-dependent layer, one realm for every
//!   `WWW-Authenticate`, one in-process rate-limit store for both limit positions;
//! * the CORS layer allows the request headers and exposes the response headers of exactly the
//!   layers present ([`Stack::cors_allowed_headers`], [`Stack::cors_exposed_headers`]), added to
//!   what was configured by hand (the exposed list replaces the CORS layer's default one, which
//!   names the headers of layers a stack may leave out);
//! * a mix that could not work is a [`ConfigError`](crate::error::ConfigError) from
//!   [`StackBuilder::build`]: a per-IP limit without the client-IP layer, a limit by principal
//!   without auth (or before it), credentials with a wildcard origin;
//! * with the `gateway` feature the body limit is always there (1 MiB unless
//!   `StackBuilder::body_limits` says otherwise), so the inner service receives
//!   `http_body_util::Limited<B>` bodies — an axum `Router` takes any body;
//! * every layer keeps the inner service's error type and answers rejections itself, so the stack
//!   goes on an axum `Router` with `.layer(stack)` and needs no `HandleErrorLayer`.
//!
//! Positions 3 to 8 run as one service, [`Checks`]: each of those layers decides about the
//! request (hand it on with headers for the response, or answer it) through the same code as
//! when it is used alone, but the stack asks them in turn in one call and stamps their headers
//! on the response in one future, instead of nesting a service, a future and a response body
//! per layer. Every answer still carries the headers of the positions outside the one that
//! answered; a check that must wait (a remote rate-limit store, a key set to fetch) boxes the
//! rest of the chain, as the layer alone boxes its own future. Over loopback HTTP this took
//! about 1.4 k instructions and 0.7 k of `memcpy` off each request of the full stack (the
//! stack's future shrank from 632 to 448 bytes around a trivial handler); see `BENCHMARKS.md`.
//!
//! ```
//! use std::convert::Infallible;
//! use http::{Request, Response, StatusCode};
//! use protothrive::auth::{Algorithm, Authenticator, VerifyingKey};
//! use protothrive::cors::AllowOrigin;
//! use protothrive::rate_limit::{KeyBy, Limit};
//! use protothrive::stack::Stack;
//! use tower::{Layer, ServiceExt, service_fn};
//!
//! let stack = Stack::builder()
//!     .realm("example")
//!     .cors(protothrive::cors::CorsLayer::builder().allow_origin(AllowOrigin::exact("https://app.example")))
//!     .limit_by_client(Limit::new("ip", "60/min burst 10".parse()?).by(KeyBy::ClientIp))
//!     .auth(
//!         Authenticator::builder()
//!             .key(VerifyingKey::hmac(Algorithm::HS256, b"a secret of at least 32 bytes....")?)
//!             .issuer("me")
//!             .audience("you"),
//!     )
//!     .build()?;
//! // The CORS layer lets pages send the token and read the limiter's and request id's headers.
//! assert!(stack.cors_allowed_headers().iter().any(|h| h == "authorization"));
//! assert!(stack.cors_exposed_headers().iter().any(|h| h == "ratelimit"));
//!
//! // The body limit hands the handler a `Limited` body; named rather than inferred (inferred
//! // through the stack's nested service type, it makes type checking explode).
//! type Body = http_body_util::Limited<http_body_util::Empty<bytes::Bytes>>;
//! let app = stack.layer(service_fn(|_: Request<Body>| async {
//!     Ok::<_, Infallible>(Response::new(http_body_util::Empty::<bytes::Bytes>::new()))
//! }));
//! let mut req = Request::get("/").header("origin", "https://app.example").body(http_body_util::Empty::<bytes::Bytes>::new())?;
//! req.extensions_mut().insert(std::net::SocketAddr::from(([192, 0, 2, 1], 4000)));
//! let res = tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(app.oneshot(req))?;
//! // No token: a 401 problem, with the CORS, request-id and rate-limit headers of the layers outside auth.
//! assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
//! assert_eq!(res.headers()["access-control-allow-origin"], "https://app.example");
//! assert!(res.headers().contains_key("x-request-id"));
//! assert!(res.headers().contains_key("ratelimit"));
//!
//! // A per-principal limit with no auth layer could never apply: refused when built.
//! let err = Stack::builder()
//!     .limit_by_principal(Limit::new("user", "100/min".parse()?).by(KeyBy::Subject))
//!     .build()
//!     .unwrap_err();
//! assert!(err.message().contains("no auth layer"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Cost: the layers present, plus one branch per position left out; the stack itself allocates
//! nothing per request (a check that must wait boxes one future, as that layer alone does).
//! Measured over loopback HTTP on a 2-core VM (`BENCHMARKS.md` § stack, with the commands): the
//! full stack — client IP, ids, trace context, CORS, a per-IP limit, HS256 auth and a route-cache
//! hit — executes ~2.1× bare axum's instructions per request, makes 7 more heap allocations,
//! and serves ~0.64× bare axum's requests per second and ~3.2× those of the same stack assembled
//! from tower-http, tower_governor, jsonwebtoken and http-cache-tower.

mod build;
mod builder;
mod chain;
mod config;
mod front;
mod layer;
#[cfg(feature = "resilience")]
mod resilience;

pub use builder::{Stack, StackBuilder};
pub use chain::{Checks, InnerBody, Stamps};
pub use config::{STACK_LIMITS, Settings, StackConfig};
pub use front::Front;
pub use layer::{InnerService, StackService, StackWithTrace, TracedService};
