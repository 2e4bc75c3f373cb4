//! axum extractors for what the auth layer puts in request extensions.

use axum_core::extract::{FromRequestParts, OptionalFromRequestParts};
use axum_core::response::{IntoResponse, Response};
use http::StatusCode;
use http::request::Parts;
use serde::de::DeserializeOwned;

use super::{Principal, Reason, challenge};
use crate::error::{Problem, code};

/// The rejection of the auth extractors: a problem response.
#[derive(Debug)]
pub struct AuthRejection(Problem, http::Extensions);

impl IntoResponse for AuthRejection {
    fn into_response(self) -> Response {
        self.0.render_for(&self.1).map(axum_core::body::Body::from)
    }
}

fn ids(parts: &Parts) -> http::Extensions {
    let mut ext = http::Extensions::new();
    if let Some(id) = crate::error::RequestId::of(&parts.extensions) {
        ext.insert(id.clone());
    }
    if let Some(id) = crate::error::TraceId::of(&parts.extensions) {
        ext.insert(id.clone());
    }
    if let Some(r) = parts.extensions.get::<crate::error::Renderer>() {
        ext.insert(r.clone());
    }
    ext
}

/// `Principal` as an extractor: 401 when the request is anonymous.
impl<S: Send + Sync> FromRequestParts<S> for Principal {
    type Rejection = AuthRejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Principal::of(&parts.extensions).cloned().ok_or_else(|| {
            AuthRejection(
                challenge::refused(Reason::Missing, "api", false),
                ids(parts),
            )
        })
    }
}

/// `Option<Principal>` as an extractor, for routes behind [`AuthLayer::optional`](super::AuthLayer::optional).
impl<S: Send + Sync> OptionalFromRequestParts<S> for Principal {
    type Rejection = AuthRejection;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &S,
    ) -> Result<Option<Self>, Self::Rejection> {
        Ok(Principal::of(&parts.extensions).cloned())
    }
}

/// The token's claims as an application type `C`.
///
/// ```
/// use protothrive::auth::Claims;
/// #[derive(serde::Deserialize)]
/// struct MyClaims { sub: String, plan: Option<String> }
/// async fn handler(Claims(claims): Claims<MyClaims>) -> String {
///     claims.sub
/// }
/// # let _ = handler;
/// ```
#[derive(Debug, Clone)]
pub struct Claims<C>(pub C);

impl<S: Send + Sync, C: DeserializeOwned> FromRequestParts<S> for Claims<C> {
    type Rejection = AuthRejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let principal = Principal::of(&parts.extensions).ok_or_else(|| {
            AuthRejection(
                challenge::refused(Reason::Missing, "api", false),
                ids(parts),
            )
        })?;
        principal.custom::<C>().map(Claims).map_err(|_| {
            AuthRejection(
                Problem::new(StatusCode::FORBIDDEN, code::AUTH_FORBIDDEN)
                    .with_detail("The token lacks claims this operation needs."),
                ids(parts),
            )
        })
    }
}
