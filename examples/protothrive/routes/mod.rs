//! The routes of the contract, by area, registered from the one route table (`table`): each
//! handler with the role check and the API-key scope check its row names. Paths are unversioned:
//! the version layer strips `/api/v1` and `/api/v2` to `/api` and puts the version in request
//! extensions.

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
pub mod table;

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

/// Registers `route` with its own layers, then its scope check, then its role check (outermost).
fn register(router: Router<AppState>, route: table::Route, state: &AppState) -> Router<AppState> {
    let table::Route { doc, handler, wrap } = route;
    let mut handler = match wrap {
        Some(wrap) => wrap(handler, state),
        None => handler,
    };
    if let Some(scope) = doc.scope() {
        handler = handler.route_layer(axum::middleware::from_fn_with_state(
            std::sync::Arc::<str>::from(scope),
            scopes::enforce,
        ));
    }
    let handler = match doc.who {
        table::Who::Anyone => handler,
        table::Who::User | table::Who::Owner => handler.route_layer(user()),
        table::Who::Role(role) => handler.route_layer(at_least(role)),
    };
    router.route(doc.path, handler)
}

/// Every route of the table; all but health, status and metrics under one load shedder (the
/// agent route under its own as well, as its calls last longest).
pub fn router(state: AppState) -> Router {
    let limits = state.config.resilience;
    let (unshed, shed_routes): (Vec<_>, Vec<_>) = table::all()
        .into_iter()
        .partition(|r| r.doc.tag == "health");
    let routes = shed_routes
        .into_iter()
        .fold(Router::new(), |router, r| register(router, r, &state));
    let health = unshed
        .into_iter()
        .fold(Router::new(), |router, r| register(router, r, &state));
    routes
        .fallback(no_route)
        .method_not_allowed_fallback(no_method)
        // A loader of nested data per request (`crate::loaders`), for handlers to extract.
        .layer(protothrive::batch::LoaderLayer::new(state.nested.clone()))
        // Shed before any work, a loader included; health checks are merged after, unshed.
        .layer(shed(limits.max_in_flight))
        .merge(health)
        // The matched route, for the trace layer's spans and metrics outside the router.
        .route_layer(protothrive::trace::MatchedRouteLayer)
        .with_state(state)
}
