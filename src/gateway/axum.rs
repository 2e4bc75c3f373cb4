//! The axum extractors of the gateway (feature `axum`): [`ValidJson`], a JSON body parsed within
//! the limits and validated, and the negotiated [`ApiVersion`].

use std::convert::Infallible;

use axum_core::extract::{FromRequest, FromRequestParts, OptionalFromRequestParts, Request};
use axum_core::response::{IntoResponse, Response};
use http::StatusCode;
use http::header::CONTENT_TYPE;
use http::request::Parts;
use http_body_util::{BodyExt, Limited};
use serde::de::DeserializeOwned;
use validator::Validate;

use super::json::{DEFAULT_MAX_DEPTH, parse_json};
use super::limits::{BodyLimit, DEFAULT_BODY_LIMIT, media_type_allowed, too_large};
use super::version::ApiVersion;
use crate::error::{Problem, code};

/// A JSON body, parsed and validated: 415 for another media type, 413 over the body limit, 422
/// with per-field errors for anything wrong inside.
///
/// ```
/// use protothrive::gateway::ValidJson;
/// #[derive(serde::Deserialize)]
/// struct NewSnippet { title: String }
/// impl validator::Validate for NewSnippet {
///     fn validate(&self) -> Result<(), validator::ValidationErrors> { Ok(()) }
/// }
/// async fn create(ValidJson(body): ValidJson<NewSnippet>) -> String { body.title }
/// # let _ = create;
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct ValidJson<T>(pub T);

/// The rejection of [`ValidJson`]: a problem response.
#[derive(Debug)]
pub struct JsonRejection(Problem, http::Extensions);

impl IntoResponse for JsonRejection {
    fn into_response(self) -> Response {
        self.0.render_for(&self.1).map(axum_core::body::Body::from)
    }
}

impl<S, T> FromRequest<S> for ValidJson<T>
where
    S: Send + Sync,
    T: DeserializeOwned + Validate,
{
    type Rejection = JsonRejection;

    async fn from_request(req: Request, _state: &S) -> Result<Self, Self::Rejection> {
        let (parts, body) = req.into_parts();
        let ext = parts.extensions.clone();
        let json = vec!["application/json".to_owned()];
        let ok = parts
            .headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|ct| media_type_allowed(ct, &json));
        if !ok {
            let p = Problem::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                code::UNSUPPORTED_MEDIA_TYPE,
            )
            .with_detail("The body must be application/json.");
            return Err(JsonRejection(p, ext));
        }
        let limit = BodyLimit::of(&parts.extensions).map_or(DEFAULT_BODY_LIMIT, |l| l.0);
        let bytes = match Limited::new(body, limit).collect().await {
            Ok(collected) => collected.to_bytes(),
            Err(e) => {
                // An inner `Limited` (from RequestLimitsLayer) or ours: both are "too large".
                let too_big = e
                    .downcast_ref::<http_body_util::LengthLimitError>()
                    .is_some()
                    || std::error::Error::source(&*e)
                        .is_some_and(|s| s.is::<http_body_util::LengthLimitError>())
                    || e.to_string().contains("length limit");
                let p = if too_big {
                    too_large(limit)
                } else {
                    Problem::new(StatusCode::BAD_REQUEST, code::BAD_REQUEST)
                        .with_detail("The body could not be read.")
                };
                return Err(JsonRejection(p, ext));
            }
        };
        parse_json(&bytes, DEFAULT_MAX_DEPTH)
            .map(ValidJson)
            .map_err(|p| JsonRejection(p, ext))
    }
}

/// The rejection of the [`ApiVersion`] extractor: a 500 problem (`SRV-500`), because a route
/// that reads the version without a [`VersionLayer`](super::VersionLayer) in front of it is a
/// server misconfiguration, not a client's mistake.
///
/// ```
/// use axum::{Router, body::Body, routing::get};
/// use http::Request;
/// use protothrive::gateway::{ApiVersion, VersionLayer};
/// use http_body_util::BodyExt;
/// use tower::{Layer, ServiceExt};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
/// async fn show(version: ApiVersion) -> String {
///     format!("{version} ({})", version.number())
/// }
/// // Around the router: the layer rewrites the path (`/api/v2/...` → `/api/...`) routing reads.
/// let versioned = VersionLayer::builder()
///     .version(1)
///     .version(2)
///     .build()?
///     .layer(Router::new().route("/api/roadmaps", get(show)));
/// let res = versioned.oneshot(Request::get("/api/v2/roadmaps").body(Body::empty())?).await?;
/// assert_eq!(res.into_body().collect().await?.to_bytes(), "v2 (2)");
///
/// // The same route without the layer: a 500 problem naming it.
/// let unversioned = Router::new().route("/api/roadmaps", get(show));
/// let res = unversioned.oneshot(Request::get("/api/roadmaps").body(Body::empty())?).await?;
/// assert_eq!(res.status(), 500);
/// let body = axum::body::to_bytes(res.into_body(), 4096).await?;
/// let problem: serde_json::Value = serde_json::from_slice(&body)?;
/// assert_eq!(problem["code"], "SRV-500");
/// assert!(problem["detail"].as_str().unwrap_or("").contains("VersionLayer"));
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct ApiVersionRejection(Response<bytes::Bytes>);

impl IntoResponse for ApiVersionRejection {
    fn into_response(self) -> Response {
        self.0.map(axum_core::body::Body::from)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for ApiVersion {
    type Rejection = ApiVersionRejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<ApiVersion>()
            .copied()
            .ok_or_else(|| {
                tracing::error!(
                    "ApiVersion extractor used on a request no VersionLayer negotiated"
                );
                let problem = Problem::new(StatusCode::INTERNAL_SERVER_ERROR, code::INTERNAL)
                    .with_detail(
                        "The API version is unknown: add VersionLayer in front of this route \
                         (or extract Option<ApiVersion>).",
                    );
                ApiVersionRejection(problem.render_for(&parts.extensions))
            })
    }
}

/// `Option<ApiVersion>`: `None` when no [`VersionLayer`](super::VersionLayer) negotiated one
/// (a route outside the versioned prefix, or no layer).
impl<S: Send + Sync> OptionalFromRequestParts<S> for ApiVersion {
    type Rejection = Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &S,
    ) -> Result<Option<Self>, Self::Rejection> {
        Ok(parts.extensions.get::<ApiVersion>().copied())
    }
}

#[cfg(test)]
mod tests {
    use axum::Router;
    use axum::body::Body;
    use axum::routing::get;
    use http::Request;
    use tower::util::BoxCloneService;
    use tower::{ServiceBuilder, ServiceExt};

    use super::super::VersionLayer;
    use super::*;

    async fn show(v: ApiVersion) -> String {
        format!("{v} {}", v.number())
    }

    async fn maybe(v: Option<ApiVersion>) -> String {
        v.map_or_else(|| "none".to_owned(), |v| v.to_string())
    }

    type App = BoxCloneService<Request<Body>, Response, Infallible>;

    /// The routes, behind a `VersionLayer` (around the router: it rewrites the path that routing
    /// reads) or not.
    fn app(versioned: bool) -> App {
        let routes = Router::new()
            .route("/api/show", get(show))
            .route("/api/maybe", get(maybe));
        if !versioned {
            return BoxCloneService::new(routes);
        }
        let layer = VersionLayer::builder()
            .version(1)
            .version(2)
            .default_version(1)
            .build()
            .unwrap();
        BoxCloneService::new(
            ServiceBuilder::new()
                .map_response(IntoResponse::into_response)
                .layer(layer)
                .service(routes),
        )
    }

    async fn send(app: App, req: Request<Body>) -> (StatusCode, bytes::Bytes) {
        let res = app.oneshot(req).await.unwrap();
        let status = res.status();
        let body = axum::body::to_bytes(res.into_body(), 4096).await.unwrap();
        (status, body)
    }

    #[tokio::test]
    async fn the_negotiated_version_is_extracted_however_it_was_chosen() {
        let get = |uri: &str| Request::get(uri);
        let cases = [
            ("path", get("/api/v2/show"), "v2 2"),
            (
                "header",
                get("/api/show").header("api-version", "2"),
                "v2 2",
            ),
            ("default", get("/api/show"), "v1 1"),
            ("optional", get("/api/v2/maybe"), "v2"),
        ];
        for (name, req, want) in cases {
            let (status, body) = send(app(true), req.body(Body::empty()).unwrap()).await;
            assert_eq!(status, StatusCode::OK, "{name}");
            assert_eq!(body, want, "{name}");
        }
    }

    #[tokio::test]
    async fn without_the_layer_it_is_a_500_problem_naming_it() {
        let req = Request::get("/api/show").body(Body::empty()).unwrap();
        let (status, body) = send(app(false), req).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(json["code"], code::INTERNAL);
        assert_eq!(json["status"], 500);
        assert_eq!(
            json["detail"],
            "The API version is unknown: add VersionLayer in front of this route (or extract \
             Option<ApiVersion>)."
        );
        let req = Request::get("/api/maybe").body(Body::empty()).unwrap();
        assert_eq!(send(app(false), req).await, (StatusCode::OK, "none".into()));
    }
}
