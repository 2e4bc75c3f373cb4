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

async fn no_route() -> AppError {
    AppError::NoRoute
}

async fn no_method() -> AppError {
    AppError::MethodNotAllowed
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .merge(health::router())
        .merge(auth::router())
        .merge(snippets::router(&state))
        .merge(logs::router())
        .merge(agent::router())
        .merge(analytics::router(&state))
        .merge(admin::router())
        .merge(batch::router())
        .merge(docs::router())
        .merge(roadmaps::router(&state))
        .fallback(no_route)
        .method_not_allowed_fallback(no_method)
        // A loader of nested data per request (`crate::loaders`), for handlers to extract.
        .layer(protothrive::batch::LoaderLayer::new(state.nested.clone()))
        .layer(axum::middleware::from_fn(scopes::enforce))
        // The matched route, for the trace layer's spans and metrics outside the router.
        .route_layer(protothrive::trace::MatchedRouteLayer)
        .with_state(state)
}
