//! The API gateway layers: version negotiation, request limits and JSON validation.
//!
//! * [`VersionLayer`] resolves the API version of each request from the path prefix, the
//!   `API-Version` header or the media type, hands the inner service an unversioned path plus the
//!   [`ApiVersion`] (an axum extractor with the `axum` feature) (and the negotiated `API-Version` request header, so that a cache inside keys
//!   on it with `Vary: API-Version`), answers unknown versions with a 404 problem listing the supported ones, and
//!   stamps responses with `API-Version` (and `Deprecation`/`Sunset`/`Link` for deprecated
//!   versions, `Vary` when the version came from a header).
//! * [`RequestLimitsLayer`] refuses bodies over a size (413, before reading when the length is
//!   declared) and of the wrong media type (415).
//! * [`parse_json`] and the axum extractor [`ValidJson`] turn bodies into typed, validated values,
//!   and every mistake — syntax, wrong type, missing field, rule, too deep — into one 422 problem
//!   with per-field `errors`.
//!
//! # What it costs
//!
//! Negotiation is a few string comparisons per request (one allocation when the path is
//! rewritten); limits are header reads; JSON validation is one extra linear pass for the depth
//! check on top of `serde_json`.
//!
//! # Example
//!
//! ```
//! use std::convert::Infallible;
//! use http::{Request, Response};
//! use protothrive::gateway::{ApiVersion, VersionLayer};
//! use tower::{service_fn, ServiceBuilder, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let svc = ServiceBuilder::new()
//!     .layer(VersionLayer::builder().version(1).version(2).build()?)
//!     .service(service_fn(|req: Request<()>| async move {
//!         let v = req.extensions().get::<ApiVersion>().copied();
//!         // The negotiated version is also a request header (for `Vary: API-Version`).
//!         assert_eq!(req.headers()["api-version"], "v2");
//!         let body = format!("{} {:?}", req.uri().path(), v);
//!         Ok::<_, Infallible>(Response::new(http_body_util::Full::new(bytes::Bytes::from(body))))
//!     }));
//!
//! let res = svc.clone().oneshot(Request::get("/api/v2/roadmaps").body(())?).await?;
//! assert_eq!(res.headers()["api-version"], "v2");
//! let res = svc.oneshot(Request::get("/api/v9/roadmaps").body(())?).await?;
//! assert_eq!(res.status(), 404);
//! # Ok(())
//! # }
//! ```

#[cfg(feature = "axum")]
mod axum;
mod json;
mod limits;
mod version;
mod versioning;

#[cfg(feature = "axum")]
pub use axum::{ApiVersionRejection, ValidJson};
pub use json::{DEFAULT_MAX_DEPTH, FieldError, nesting_exceeds, parse_json, validation_problem};
pub use limits::{BodyLimit, DEFAULT_BODY_LIMIT, RequestLimits, RequestLimitsLayer};
pub use version::{ApiVersion, VersionSource};
pub use versioning::{
    API_VERSION, Deprecation, ResponseFuture, VersionLayer, VersionLayerBuilder, VersionStamp,
    Versioning,
};

/// Negotiates a version without the layer (for fuzzing and tests): `None` outside `prefix`,
/// `Some(Err(name))` for an unsupported version, else the version and the unversioned path.
///
/// ```
/// use protothrive::gateway::{negotiate_version, ApiVersion};
/// let (v, path) = negotiate_version("/api", "/api/v2/x", None, None, "acme", &[1, 2], 1)
///     .unwrap()
///     .unwrap();
/// assert_eq!((v, path.as_str()), (ApiVersion(2), "/api/x"));
/// ```
#[must_use]
pub fn negotiate_version(
    prefix: &str,
    path: &str,
    header: Option<&str>,
    accept: Option<&str>,
    vendor: &str,
    supported: &[u16],
    default: u16,
) -> Option<Result<(ApiVersion, String), String>> {
    version::negotiate(prefix, path, header, accept, vendor, supported, default).map(|r| {
        r.map(|n| (n.version, n.unversioned_path.into_owned()))
            .map_err(|version::NegotiationError::Unsupported(name)| name)
    })
}
