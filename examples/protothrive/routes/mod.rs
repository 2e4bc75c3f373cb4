//! The routes of the contract, by area. Paths are unversioned: the version layer strips
//! `/api/v1` and `/api/v2` to `/api` and puts the version in request extensions.

pub mod admin;
pub mod agent;
pub mod analytics;
pub mod auth;
pub mod batch;
pub mod cursor;
pub mod docs;
pub mod health;
pub mod logs;
pub mod roadmaps;
pub mod scopes;
pub mod snippets;

use axum::Router;
use protothrive::auth::{RequireLayer, RoleHierarchy};
use protothrive::resilience::LoadShedLayer;

use crate::http::AppError;
use crate::state::AppState;

/// The role hierarchy of the contract, lowest first.
pub fn roles() -> RoleHierarchy {
    RoleHierarchy::new(["vibe_coder", "engineer", "exec", "super_admin"])
        .unwrap_or_else(|_| unreachable!("a fixed, valid hierarchy"))
}

/// Routes that need an authenticated user.
pub fn user() -> RequireLayer {
    RequireLayer::authenticated().realm("protothrive")
}

/// Routes that need `role` or above.
pub fn at_least(role: &str) -> RequireLayer {
    RequireLayer::role_at_least(&roles(), role)
        .unwrap_or_else(|_| unreachable!("roles used in routes are in the hierarchy"))
        .realm("protothrive")
}

/// A concurrency limit of `limit` requests in flight, shed by priority when full: anonymous
/// callers may fill half of it, signed-in ones 90%, `super_admin`s all of it; a refusal is a
/// 503 `LOAD-503` with `Retry-After: 1`, answered before the handler runs.
pub fn shed(limit: u64) -> LoadShedLayer {
    LoadShedLayer::builder(usize::try_from(limit).unwrap_or(usize::MAX).max(1))
        .admin_role("super_admin")
        .build()
        .unwrap_or_else(|_| unreachable!("a limit above zero and the default shares"))
}

async fn no_route() -> AppError {
    AppError::NoRoute
}

async fn no_method() -> AppError {
    AppError::MethodNotAllowed
}

/// Every route; all but health, status and metrics under one load shedder (the agent route
/// under its own as well, as its calls last longest).
pub fn router(state: AppState) -> Router {
    let limits = state.config.resilience;
    Router::new()
        .merge(auth::router(&state))
        .merge(snippets::router(&state))
        .merge(logs::router())
        .merge(agent::router(shed(limits.agent_max_in_flight)))
        .merge(analytics::router(&state))
        .merge(admin::router())
        .merge(batch::router())
        .merge(docs::router())
        .merge(roadmaps::router(&state))
        .fallback(no_route)
        .method_not_allowed_fallback(no_method)
        // A loader of nested data per request (`crate::loaders`), for handlers to extract.
        .layer(protothrive::batch::LoaderLayer::new(state.nested.clone()))
        // Shed before any work, a loader included; health checks are merged after, unshed.
        .layer(shed(limits.max_in_flight))
        .merge(health::router())
        .layer(axum::middleware::from_fn(scopes::enforce))
        // The matched route, for the trace layer's spans and metrics outside the router.
        .route_layer(protothrive::trace::MatchedRouteLayer)
        .with_state(state)
}
