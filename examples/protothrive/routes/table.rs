//! The one table of routes: each [`Route`] is a handler with its [`Endpoint`] — method, path,
//! who may call it, its API-key scope, its schemas and every status it answers. The router
//! registers the handler with the role check and the scope check the row names (`super::router`),
//! and the OpenAPI document is generated from the same rows (`super::docs`), so what is served,
//! who may call it and what is documented cannot drift apart.
//!
//! Each area module lists its rows in a `routes()` function; [`all`] is their sum.

use axum::handler::Handler;
use axum::routing::{MethodFilter, MethodRouter, on};
use serde_json::Value;

use crate::state::AppState;

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Who {
    Anyone,
    /// Any authenticated user.
    User,
    /// The owner of the resource (reads also for public visibility); authenticated first.
    Owner,
    /// This role or one above it.
    Role(&'static str),
}

/// A query parameter: its name and JSON Schema.
pub type Param = (&'static str, fn() -> Value);

/// One route of the API, as documented.
#[derive(Debug, Clone, Copy)]
pub struct Endpoint {
    pub method: &'static str,
    /// As registered (`/api/...` unversioned, or `/metrics`).
    pub path: &'static str,
    pub summary: &'static str,
    pub who: Who,
    pub tag: &'static str,
    /// The JSON Schema of the request body in a version, if it takes one.
    pub body: Option<fn(u8) -> Value>,
    /// Whether the body may be left out (logout's).
    pub body_optional: bool,
    /// Query parameters.
    pub query: &'static [Param],
    /// The success status.
    pub success: u16,
    /// Statuses particular to this route (beyond the ones its row implies).
    pub extra: &'static [u16],
    /// Whether a rate limit of its own applies (login, register), beyond the ones by client,
    /// user and key that every route has.
    pub scoped: bool,
}

/// A row: `ep("GET", "/api/snippets", "Shared code snippets", User, "snippets")`.
pub const fn ep(
    method: &'static str,
    path: &'static str,
    summary: &'static str,
    who: Who,
    tag: &'static str,
) -> Endpoint {
    Endpoint {
        method,
        path,
        summary,
        who,
        tag,
        body: None,
        body_optional: false,
        query: &[],
        success: 200,
        extra: &[],
        scoped: true,
    }
}

impl Endpoint {
    pub const fn body(mut self, schema: fn(u8) -> Value) -> Self {
        self.body = Some(schema);
        self
    }
    pub const fn optional_body(mut self, schema: fn(u8) -> Value) -> Self {
        self.body = Some(schema);
        self.body_optional = true;
        self
    }
    pub const fn query(mut self, q: &'static [Param]) -> Self {
        self.query = q;
        self
    }
    pub const fn created(mut self) -> Self {
        self.success = 201;
        self
    }
    pub const fn no_content(mut self) -> Self {
        self.success = 204;
        self
    }
    pub const fn extra(mut self, statuses: &'static [u16]) -> Self {
        self.extra = statuses;
        self
    }
    /// No API-key scope is needed (health, docs, the batch envelope whose items are checked).
    pub const fn unscoped(mut self) -> Self {
        self.scoped = false;
        self
    }

    /// The scope an API key needs for this route: `<area>:read` for GET and HEAD, `<area>:write`
    /// otherwise, the area being the path's first segment after `/api` (`/metrics`: `metrics`).
    pub fn scope(&self) -> Option<String> {
        if !self.scoped {
            return None;
        }
        let rest = self
            .path
            .strip_prefix("/api/")
            .unwrap_or(self.path.trim_start_matches('/'));
        let area = rest.split('/').next().unwrap_or_default();
        let access = if matches!(self.method, "GET" | "HEAD") {
            "read"
        } else {
            "write"
        };
        Some(format!("{area}:{access}"))
    }

    fn filter(&self) -> MethodFilter {
        match self.method {
            "GET" => MethodFilter::GET,
            "POST" => MethodFilter::POST,
            "PUT" => MethodFilter::PUT,
            "PATCH" => MethodFilter::PATCH,
            "DELETE" => MethodFilter::DELETE,
            other => unreachable!("a method the table does not use: {other}"),
        }
    }
}

/// Layers of a route's own that need the state (the read cache, a load shedder).
pub type Wrap = fn(MethodRouter<AppState>, &AppState) -> MethodRouter<AppState>;

/// A handler and its row.
pub struct Route {
    pub doc: Endpoint,
    pub handler: MethodRouter<AppState>,
    pub wrap: Option<Wrap>,
}

impl Route {
    /// `handler` for the row's method and path.
    pub fn to<H, T>(doc: Endpoint, handler: H) -> Self
    where
        H: Handler<T, AppState>,
        T: 'static,
    {
        Self {
            handler: on(doc.filter(), handler),
            doc,
            wrap: None,
        }
    }

    /// Adds layers of the route's own, inside its role and scope checks.
    pub fn wrap(mut self, wrap: Wrap) -> Self {
        self.wrap = Some(wrap);
        self
    }
}

/// Every route of the API.
pub fn all() -> Vec<Route> {
    [
        super::health::routes(),
        super::docs::routes(),
        super::auth::routes(),
        super::roadmaps::routes(),
        super::snippets::routes(),
        super::logs::routes(),
        super::agent::routes(),
        super::analytics::routes(),
        super::admin::routes(),
        super::batch::routes(),
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// Every row of the table.
pub fn endpoints() -> Vec<Endpoint> {
    all().into_iter().map(|r| r.doc).collect()
}

/// The areas a scope can name: those of the scoped routes.
pub fn areas() -> Vec<String> {
    let mut areas: Vec<String> = endpoints()
        .iter()
        .filter_map(Endpoint::scope)
        .filter_map(|s| s.split_once(':').map(|(area, _)| area.to_owned()))
        .collect();
    areas.sort();
    areas.dedup();
    areas
}
