//! The axum extractor of the [`ClientIp`] the layer inserts (feature `axum`).

use std::convert::Infallible;

use axum_core::extract::{FromRequestParts, OptionalFromRequestParts};
use axum_core::response::{IntoResponse, Response};
use bytes::Bytes;
use http::StatusCode;
use http::request::Parts;

use crate::error::{Problem, code};
use crate::identity::ClientIp;

/// The rejection of the [`ClientIp`] extractor: a 500 problem (`SRV-500`), because a request
/// without a client address is a server misconfiguration — the [`ClientIpLayer`] is not in
/// front of the route, or the server gives no peer address (serve axum with
/// `into_make_service_with_connect_info::<SocketAddr>()`).
///
/// [`ClientIpLayer`]: super::ClientIpLayer
#[derive(Debug)]
pub struct ClientIpRejection(Response<Bytes>);

impl IntoResponse for ClientIpRejection {
    fn into_response(self) -> Response {
        self.0.map(axum_core::body::Body::from)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for ClientIp {
    type Rejection = ClientIpRejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        ClientIp::of(&parts.extensions).ok_or_else(|| {
            tracing::error!("ClientIp extractor used on a request without a resolved address");
            let problem = Problem::new(StatusCode::INTERNAL_SERVER_ERROR, code::INTERNAL)
                .with_detail(
                    "The client address is unknown: add ClientIpLayer in front of this \
                     route and serve with into_make_service_with_connect_info::<SocketAddr>().",
                );
            ClientIpRejection(problem.render_for(&parts.extensions))
        })
    }
}

/// `Option<ClientIp>`: `None` when the request has no resolved address.
impl<S: Send + Sync> OptionalFromRequestParts<S> for ClientIp {
    type Rejection = Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &S,
    ) -> Result<Option<Self>, Self::Rejection> {
        Ok(ClientIp::of(&parts.extensions))
    }
}
