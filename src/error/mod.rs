//! RFC 9457 problem responses: the one shape of every rejection in this crate.
//!
//! When a layer refuses a request (401, 403, 413, 429, ...) it does not return an error through
//! `Service::Error`; it answers with a [`Problem`], rendered as `application/problem+json`:
//!
//! ```json
//! {"type":"about:blank","title":"Unauthorized","status":401,"detail":"...",
//!  "code":"AUTH-401","request_id":"...","trace_id":"..."}
//! ```
//!
//! * `code` is stable and machine-readable ([`code`] lists the ones the crate uses);
//! * `request_id` and `trace_id` come from the request's ids ([`RequestId::of`], [`TraceId::of`])
//!   (set by the trace layer), so a client can quote them to support;
//! * the headers a status needs travel with it (`WWW-Authenticate` on 401, `Retry-After` on 429/503).
//!
//! The JSON renderer is the default; an application swaps it for its own by inserting a [`Renderer`]
//! into request extensions, which [`RendererLayer`] does for every request. Every layer of the crate
//! renders through [`Problem::render_for`], so one renderer serves them all.
//!
//! # Example
//!
//! ```
//! use http::StatusCode;
//! use protothrive::error::{code, Problem};
//!
//! let response = Problem::new(StatusCode::TOO_MANY_REQUESTS, code::RATE_LIMITED)
//!     .with_detail("Slow down.")
//!     .with_header(http::header::RETRY_AFTER, http::HeaderValue::from_static("7"))
//!     .render_for(&http::Extensions::new());
//! assert_eq!(response.status(), 429);
//! assert_eq!(response.headers()["content-type"], "application/problem+json");
//! assert_eq!(response.headers()["retry-after"], "7");
//! let body: serde_json::Value = serde_json::from_slice(response.body()).unwrap();
//! assert_eq!(body["code"], "RATE-429");
//! assert_eq!(body["status"], 429);
//! ```
//!
//! Cost: rendering is one small `serde_json` serialisation (~300 ns); nothing is paid on the success
//! path.

pub mod code;
mod config;
mod ids;
mod problem;
mod render;

pub use config::ConfigError;
pub use ids::{RequestId, TraceId};
pub use problem::Problem;
#[allow(deprecated)]
pub use render::{
    JsonRenderer, RenderProblem, Renderer, RendererLayer, RendererService, SetRenderer,
};
