//! The problems the auth layers answer with (RFC 6750 §3).

use http::header::{RETRY_AFTER, WWW_AUTHENTICATE};
use http::{HeaderValue, StatusCode};

use super::Reason;
use crate::error::{Problem, code};

/// 401 (or 503 when a dependency, not the client, failed). The body is the same for every reason;
/// the reason is only logged.
pub(crate) fn refused(reason: Reason, realm: &str, credential_sent: bool) -> Problem {
    tracing::debug!(reason = reason.as_str(), "authentication refused");
    if reason == Reason::Unavailable {
        return Problem::new(StatusCode::SERVICE_UNAVAILABLE, code::UNAVAILABLE)
            .with_detail("Authentication is temporarily unavailable.")
            .with_header(RETRY_AFTER, HeaderValue::from_static("5"));
    }
    let challenge = if credential_sent {
        format!("Bearer realm=\"{realm}\", error=\"invalid_token\"")
    } else {
        format!("Bearer realm=\"{realm}\"")
    };
    Problem::new(StatusCode::UNAUTHORIZED, code::AUTH_UNAUTHORIZED)
        .with_detail("Valid credentials are required.")
        .with_header(
            WWW_AUTHENTICATE,
            HeaderValue::from_str(&challenge).unwrap_or(HeaderValue::from_static("Bearer")),
        )
}

/// 403 `insufficient_scope`, naming what is missing.
pub(crate) fn forbidden(realm: &str, missing_scopes: &[String], detail: String) -> Problem {
    let mut challenge = format!("Bearer realm=\"{realm}\", error=\"insufficient_scope\"");
    if !missing_scopes.is_empty() {
        challenge.push_str(&format!(", scope=\"{}\"", missing_scopes.join(" ")));
    }
    Problem::new(StatusCode::FORBIDDEN, code::AUTH_FORBIDDEN)
        .with_detail(detail)
        .with_header(
            WWW_AUTHENTICATE,
            HeaderValue::from_str(&challenge).unwrap_or(HeaderValue::from_static("Bearer")),
        )
}
