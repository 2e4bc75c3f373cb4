//! API-key scopes: a key does only what its scopes name, whatever its owner's role allows.
//!
//! A scope is `<area>:read` (GET and HEAD) or `<area>:write` (every other method, and reading
//! too), where the area is the first segment of the unversioned path: `roadmaps:write` for
//! `PATCH /api/v1/roadmaps/{id}`, `admin:read` for `GET /api/v2/admin/api-keys`,
//! `metrics:read` for `GET /metrics`. A key without scopes can do nothing. Bearer tokens are
//! not scoped here (their holder is the user), and routes open to anyone (`health`, `docs`) need
//! no scope; neither does the `batch` envelope, whose items are each checked as they run.

use axum::extract::Request;
use axum::http::Method;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use protothrive::auth::{Principal, Scheme};

use crate::http::AppError;

/// The areas a scope can name.
pub const AREAS: &[&str] = &[
    "admin",
    "agent",
    "agent-logs",
    "analytics",
    "auth",
    "insights",
    "metrics",
    "roadmaps",
    "snippets",
    "status",
];

/// Areas whose routes need no scope.
const UNSCOPED: &[&str] = &["batch", "docs", "health"];

/// Whether `scope` is one this API knows (`<area>:read` or `<area>:write`).
pub fn is_known(scope: &str) -> bool {
    scope
        .split_once(':')
        .is_some_and(|(area, access)| AREAS.contains(&area) && matches!(access, "read" | "write"))
}

/// The scope a request needs, or `None` when its route needs none (or there is no such area: the
/// router answers 404).
pub fn required(method: &Method, path: &str) -> Option<String> {
    let rest = path
        .strip_prefix("/api/")
        .unwrap_or(path.trim_start_matches('/'));
    let area = rest.split('/').next().unwrap_or_default();
    if UNSCOPED.contains(&area) || !AREAS.contains(&area) {
        return None;
    }
    let access = if matches!(*method, Method::GET | Method::HEAD) {
        "read"
    } else {
        "write"
    };
    Some(format!("{area}:{access}"))
}

/// Whether the scopes `held` grant `needed` (`<area>:write` grants `<area>:read` too).
pub fn grants(held: &[String], needed: &str) -> bool {
    held.iter().any(|h| h == needed)
        || needed
            .strip_suffix(":read")
            .is_some_and(|area| held.iter().any(|h| h.strip_suffix(":write") == Some(area)))
}

/// Refuses (403) a request authenticated by an API key whose scopes do not grant the route's.
pub async fn enforce(req: Request, next: Next) -> Response {
    if let Some(p) = req.extensions().get::<Principal>()
        && p.scheme() == Scheme::ApiKey
        && let Some(needed) = required(req.method(), req.uri().path())
        && !grants(p.scopes(), &needed)
    {
        return AppError::Forbidden(format!("This API key lacks the scope `{needed}`."))
            .into_response();
    }
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_route_needs_its_area_and_access() {
        let owned = |s: &[&str]| s.iter().map(|x| (*x).to_owned()).collect::<Vec<_>>();
        for (method, path, needed) in [
            (Method::GET, "/api/roadmaps/7", Some("roadmaps:read")),
            (Method::HEAD, "/api/snippets", Some("snippets:read")),
            (Method::PATCH, "/api/roadmaps/7", Some("roadmaps:write")),
            (Method::POST, "/api/admin/api-keys", Some("admin:write")),
            (Method::GET, "/metrics", Some("metrics:read")),
            (Method::GET, "/api/health/ready", None),
            (Method::POST, "/api/batch", None),
            (Method::GET, "/api/nowhere", None),
        ] {
            assert_eq!(
                required(&method, path).as_deref(),
                needed,
                "{method} {path}"
            );
        }
        let held = owned(&["roadmaps:write", "snippets:read"]);
        assert!(grants(&held, "roadmaps:read") && grants(&held, "snippets:read"));
        assert!(!grants(&held, "snippets:write") && !grants(&held, "admin:read"));
        assert!(!grants(&[], "auth:read"));
        assert!(is_known("agent-logs:write") && !is_known("roadmaps:delete"));
        assert!(!is_known("everything:read") && !is_known("roadmaps"));
    }
}
