//! The API's conventions: the success envelope, problem errors with the contract's codes, request
//! ids, pagination.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use std::sync::atomic::{AtomicBool, Ordering};

use protothrive::error::Problem;
use protothrive::gateway::{ApiVersion, FieldError, validation_problem};
use serde::Serialize;
use serde_json::{Value, json};

use crate::db::rfc3339;

/// Whether problems hide internal details (set once when the app is built).
static PRODUCTION: AtomicBool = AtomicBool::new(false);

/// Problems hide internal details from now on when `production`.
pub fn set_production(production: bool) {
    PRODUCTION.store(production, Ordering::Relaxed);
}

/// `{"data": ..., "meta": {...}, "version": "v1", "timestamp": "..."}`.
// Call sites pass `json!({...})` literals; taking them by value reads best there.
#[allow(clippy::needless_pass_by_value)]
pub fn envelope(version: ApiVersion, now: i64, data: impl Serialize, meta: Value) -> Json<Value> {
    Json(json!({
        "data": data,
        "meta": meta,
        "version": version.name(),
        "timestamp": rfc3339(now),
    }))
}

/// `201 Created` with `Location`.
pub fn created(location: &str, body: Json<Value>) -> Response {
    let mut res = (StatusCode::CREATED, body).into_response();
    if let Ok(v) = HeaderValue::from_str(location) {
        res.headers_mut().insert(header::LOCATION, v);
    }
    res
}

#[derive(Debug)]
pub enum AppError {
    BadRequest(String),
    Validation(Vec<FieldError>),
    Unauthorized,
    Forbidden(String),
    NotFound(&'static str),
    NoRoute,
    MethodNotAllowed,
    Conflict(String),
    PaymentRequired(String),
    Agent(String),
    Unavailable(String),
    Internal(String),
    /// A problem built elsewhere (validation of a body parsed by hand).
    Problem(Problem),
}

impl AppError {
    pub fn field(field: &str, code: &str, message: impl Into<String>) -> Self {
        Self::Validation(vec![FieldError::new(field, code, message)])
    }

    fn problem(self, production: bool) -> Problem {
        let p = |status: StatusCode, code: &'static str, detail: String| {
            Problem::new(status, code).with_detail(detail)
        };
        match self {
            Self::BadRequest(d) => p(StatusCode::BAD_REQUEST, "VAL-400", d),
            Self::Validation(errors) => validation_problem(errors),
            Self::Unauthorized => p(
                StatusCode::UNAUTHORIZED,
                "AUTH-401",
                "Valid credentials are required.".into(),
            )
            .with_header(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"protothrive\""),
            ),
            Self::Forbidden(d) => p(StatusCode::FORBIDDEN, "AUTH-403", d),
            Self::NotFound(what) => p(
                StatusCode::NOT_FOUND,
                "NOT-FOUND-404",
                format!("{what} not found."),
            ),
            Self::NoRoute => p(StatusCode::NOT_FOUND, "ROUTE-404", "No such route.".into()),
            Self::MethodNotAllowed => p(
                StatusCode::METHOD_NOT_ALLOWED,
                "ROUTE-405",
                "This route does not accept that method.".into(),
            ),
            Self::Conflict(d) => p(StatusCode::CONFLICT, "CONFLICT-409", d),
            Self::PaymentRequired(d) => p(StatusCode::PAYMENT_REQUIRED, "COST-402", d),
            Self::Agent(d) => p(StatusCode::BAD_GATEWAY, "AGENT-502", d),
            Self::Unavailable(d) => p(
                StatusCode::SERVICE_UNAVAILABLE,
                "DB-503",
                if production {
                    "The database is unavailable; retry shortly.".into()
                } else {
                    d
                },
            )
            .with_header(header::RETRY_AFTER, HeaderValue::from_static("2")),
            Self::Problem(p) => p,
            Self::Internal(d) => {
                tracing::error!(error = %d, "internal error");
                p(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "SRV-500",
                    if production {
                        "An unexpected error occurred.".into()
                    } else {
                        d
                    },
                )
            }
        }
    }
}

impl From<&sqlx::Error> for AppError {
    fn from(e: &sqlx::Error) -> Self {
        match e {
            sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => {
                Self::Unavailable(e.to_string())
            }
            sqlx::Error::Database(db) if crate::db::is_busy(db.as_ref()) => {
                Self::Unavailable(db.to_string())
            }
            other => Self::Internal(other.to_string()),
        }
    }
}

impl From<sqlx::Error> for AppError {
    fn from(e: sqlx::Error) -> Self {
        Self::from(&e)
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        // The request id and trace id come from the request being served (`trace::current`).
        self.problem(PRODUCTION.load(Ordering::Relaxed))
            .render_for(&axum::http::Extensions::new())
            .map(axum::body::Body::from)
    }
}

pub type ApiResult<T = Response> = Result<T, AppError>;

/// A body's integer as JSON Schema reads one: `3`, or a number without a fractional part such as
/// `3.0` or `3e0` (`#[serde(deserialize_with = "crate::http::integer")]`).
pub fn integer<'de, D: serde::Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    let n = <serde_json::Number as serde::Deserialize>::deserialize(d)?;
    // Past 2^53 a float no longer holds every integer; such values are out of every range here.
    const EXACT: f64 = 9_007_199_254_740_992.0;
    #[allow(clippy::cast_possible_truncation)]
    n.as_i64()
        .or_else(|| {
            n.as_f64()
                .filter(|f| f.fract() == 0.0 && f.abs() <= EXACT)
                .map(|f| f as i64)
        })
        .ok_or_else(|| serde::de::Error::custom(format!("invalid type: {n}, expected an integer")))
}

/// [`integer`] of an optional field (with `#[serde(default)]`).
pub fn optional_integer<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    integer(d).map(Some)
}

/// `limit` 1..=100 (default 20) and `offset` ≥ 0, with problems naming the field.
pub fn page(limit: Option<&str>, offset: Option<&str>) -> Result<(i64, i64), AppError> {
    let limit = match limit {
        None => 20,
        Some(v) => v
            .parse::<i64>()
            .ok()
            .filter(|n| (1..=100).contains(n))
            .ok_or_else(|| AppError::field("limit", "range", "limit must be between 1 and 100"))?,
    };
    let offset = match offset {
        None => 0,
        Some(v) => v
            .parse::<i64>()
            .ok()
            .filter(|n| (0..=1_000_000).contains(n))
            .ok_or_else(|| AppError::field("offset", "range", "offset must be 0 or more"))?,
    };
    Ok((limit, offset))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    struct Count {
        #[serde(deserialize_with = "integer")]
        n: i64,
    }

    fn read(json: &str) -> Result<i64, String> {
        serde_json::from_str::<Count>(json)
            .map(|c| c.n)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn an_integer_is_what_json_schema_calls_one() {
        for (json, n) in [
            (r#"{"n": 3}"#, 3),
            (r#"{"n": 3.0}"#, 3),
            (r#"{"n": -2e3}"#, -2000),
        ] {
            assert_eq!(read(json), Ok(n), "{json}");
        }
        for json in [
            r#"{"n": 3.5}"#,
            r#"{"n": "3"}"#,
            r#"{"n": 1e300}"#,
            r#"{"n": null}"#,
        ] {
            let e = read(json).expect_err(json);
            assert!(
                e.contains("expected an integer") || e.contains("invalid type"),
                "{json}: {e}"
            );
        }
    }
}
