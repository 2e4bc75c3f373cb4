use axum_core::extract::{FromRequest, Request};
use axum_core::response::{IntoResponse, Response};
use http::StatusCode;
use http::header::CONTENT_TYPE;
use http_body_util::{BodyExt, Limited};
use serde::de::DeserializeOwned;
use validator::Validate;

use super::json::{DEFAULT_MAX_DEPTH, parse_json};
use super::limits::{BodyLimit, DEFAULT_BODY_LIMIT, media_type_allowed, too_large};
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
        let limit = parts
            .extensions
            .get::<BodyLimit>()
            .map_or(DEFAULT_BODY_LIMIT, |l| l.0);
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
