//! API-key scopes: a key does only what its scopes name, whatever its owner's role allows.
//!
//! A scope is `<area>:read` (GET and HEAD) or `<area>:write` (every other method, and reading
//! too), where the area is the first segment of the unversioned path: `roadmaps:write` for
//! `PATCH /api/v1/roadmaps/{id}`, `admin:read` for `GET /api/v2/admin/api-keys`,
//! `metrics:read` for `GET /metrics`. A key without scopes can do nothing. Bearer tokens are
//! not scoped here (their holder is the user), and routes open to anyone (`health`, `docs`) need
//! no scope; neither does the `batch` envelope, whose items are each checked as they run.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use protothrive::auth::{Principal, Scheme};

use crate::http::AppError;

/// Whether `scope` is one this API knows (`<area>:read` or `<area>:write` of a scoped route's
/// area, `super::table::areas`).
pub fn is_known(scope: &str) -> bool {
    scope.split_once(':').is_some_and(|(area, access)| {
        matches!(access, "read" | "write") && super::table::areas().iter().any(|a| a == area)
    })
}

/// Whether the scopes `held` grant `needed` (`<area>:write` grants `<area>:read` too).
pub fn grants(held: &[String], needed: &str) -> bool {
    held.iter().any(|h| h == needed)
        || needed
            .strip_suffix(":read")
            .is_some_and(|area| held.iter().any(|h| h.strip_suffix(":write") == Some(area)))
}

/// Refuses (403) a request authenticated by an API key whose scopes do not grant `needed`, the
/// scope of the route's row (registered on each scoped route by `super::router`).
pub async fn enforce(State(needed): State<Arc<str>>, req: Request, next: Next) -> Response {
    if let Some(p) = Principal::of(req.extensions())
        && p.scheme() == Scheme::ApiKey
        && !grants(p.scopes(), &needed)
    {
        return AppError::Forbidden(format!("This API key lacks the scope `{needed}`."))
            .into_response();
    }
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::super::table::endpoints;
    use super::*;

    #[test]
    fn each_route_needs_its_area_and_access() {
        let owned = |s: &[&str]| s.iter().map(|x| (*x).to_owned()).collect::<Vec<_>>();
        let scope = |method: &str, path: &str| {
            endpoints()
                .into_iter()
                .find(|e| e.method == method && e.path == path)
                .unwrap_or_else(|| panic!("{method} {path} is in the table"))
                .scope()
        };
        for (method, path, needed) in [
            ("GET", "/api/roadmaps/{id}", Some("roadmaps:read")),
            ("GET", "/api/snippets", Some("snippets:read")),
            ("PATCH", "/api/roadmaps/{id}", Some("roadmaps:write")),
            ("POST", "/api/admin/api-keys", Some("admin:write")),
            ("GET", "/metrics", Some("metrics:read")),
            ("POST", "/api/agent-logs", Some("agent-logs:write")),
            ("GET", "/api/health/ready", None),
            ("GET", "/api/docs", None),
            ("POST", "/api/batch", None),
        ] {
            assert_eq!(scope(method, path).as_deref(), needed, "{method} {path}");
        }
        let held = owned(&["roadmaps:write", "snippets:read"]);
        assert!(grants(&held, "roadmaps:read") && grants(&held, "snippets:read"));
        assert!(!grants(&held, "snippets:write") && !grants(&held, "admin:read"));
        assert!(!grants(&[], "auth:read"));
        assert!(is_known("agent-logs:write") && !is_known("roadmaps:delete"));
        assert!(!is_known("everything:read") && !is_known("roadmaps"));
        assert!(!is_known("health:read") && !is_known("batch:write"));
    }
}
