//! `GET /docs`: the OpenAPI 3.1 document of the API, generated from [`ENDPOINTS`], the one table
//! of routes (method, path, summary, who may call, request schema).
//!
//! Handlers are registered by their modules (each keeps its handlers private); the table is the
//! single description of them, and the tests below hold the two together: every `.route(...)` in
//! `routes/` must have a row here (a new route without documentation fails the build's tests), and
//! the request schemas come from the modules that validate those bodies. Schemas are hand-written
//! JSON Schema 2020-12 (the dialect of OpenAPI 3.1) next to each body type rather than derived with
//! `schemars`: the rules live in `validator` attributes and custom functions that no derive sees.

use std::sync::OnceLock;

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Map, Value, json};

use crate::state::AppState;

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Who {
    Anyone,
    /// Any authenticated user.
    User,
    /// The owner of the resource (reads also for public visibility).
    Owner,
    /// This role or one above it.
    Role(&'static str),
}

/// One route of the API.
#[derive(Debug, Clone, Copy)]
pub struct Endpoint {
    pub method: &'static str,
    /// As registered (`/api/...` unversioned, or `/metrics`).
    pub path: &'static str,
    pub summary: &'static str,
    pub who: Who,
    pub tag: &'static str,
    /// The JSON Schema of the request body, if it takes one.
    pub body: Option<fn() -> Value>,
    /// Query parameters: name and description.
    pub query: &'static [(&'static str, &'static str)],
    /// The success status.
    pub success: u16,
    /// Statuses particular to this route (beyond the common ones).
    pub extra: &'static [u16],
}

/// What an API key may do, for the security schemes' descriptions.
const KEY_SCOPES: &str = "A key does only what its scopes grant: <area>:read for GET and HEAD, \
    <area>:write for other methods (and reads), the area being the path's first segment after \
    the version (roadmaps, snippets, admin, ...); health, docs and the batch envelope need none.";

const fn ep(
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
        query: &[],
        success: 200,
        extra: &[],
    }
}

impl Endpoint {
    const fn body(mut self, schema: fn() -> Value) -> Self {
        self.body = Some(schema);
        self
    }
    const fn query(mut self, q: &'static [(&'static str, &'static str)]) -> Self {
        self.query = q;
        self
    }
    const fn created(mut self) -> Self {
        self.success = 201;
        self
    }
    const fn extra(mut self, statuses: &'static [u16]) -> Self {
        self.extra = statuses;
        self
    }
}

const PAGE: &[(&str, &str)] = &[
    ("limit", "1..100, default 20"),
    ("offset", "v1 only: rows to skip (≥ 0)"),
    ("cursor", "v2 only: `meta.next_cursor` of the previous page"),
];
const SNIPPET_FILTERS: &[(&str, &str)] = &[
    ("category", "`[A-Za-z0-9_-]{1,50}`"),
    ("language", "1 to 30 characters"),
    ("limit", "1..100, default 20"),
    ("offset", "v1 only: rows to skip (≥ 0)"),
    ("cursor", "v2 only: `meta.next_cursor` of the previous page"),
];
const ROADMAP_FILTERS: &[(&str, &str)] = &[
    ("status", "draft, active, completed or archived"),
    ("limit", "1..100, default 20"),
    ("offset", "v1 only: rows to skip (≥ 0)"),
    ("cursor", "v2 only: `meta.next_cursor` of the previous page"),
];
const KEY_FILTERS: &[(&str, &str)] = &[
    ("user_id", "only the keys of this user"),
    ("limit", "1..100, default 20"),
    ("offset", "v1 only: rows to skip (≥ 0)"),
    ("cursor", "v2 only: `meta.next_cursor` of the previous page"),
];

use Who::{Anyone, Owner, Role, User};

/// Every route of the API.
pub const ENDPOINTS: &[Endpoint] = &[
    ep("GET", "/api/health", "Liveness", Anyone, "health"),
    ep("GET", "/api/health/live", "Liveness", Anyone, "health"),
    ep("GET", "/api/health/ready", "Readiness: database and Redis checks (503 when unhealthy)", Anyone, "health").extra(&[503]),
    ep("GET", "/api/status", "Version and uptime; cache statistics for users; configuration for super_admins", Anyone, "health"),
    ep("GET", "/metrics", "Prometheus metrics (unversioned; a configured token may be required)", Anyone, "health"),
    ep("GET", "/api/docs", "This OpenAPI document", Anyone, "docs"),
    ep("POST", "/api/auth/register", "Create an account; answers with tokens", Anyone, "auth").body(register_schema).created().extra(&[409]),
    ep("POST", "/api/auth/login", "Log in (5 failures lock the account for 30 minutes)", Anyone, "auth").body(login_schema),
    ep("POST", "/api/auth/refresh", "Rotate a refresh token (reuse revokes the family)", Anyone, "auth").body(refresh_schema),
    ep("POST", "/api/auth/logout", "Revoke the access token and its refresh-token family", User, "auth").body(logout_schema),
    ep("GET", "/api/auth/me", "The caller's profile", User, "auth"),
    ep("GET", "/api/roadmaps", "The caller's roadmaps with owner, log count and latest insight", User, "roadmaps").query(ROADMAP_FILTERS),
    ep("POST", "/api/roadmaps", "Create a roadmap (the graph is validated)", User, "roadmaps").body(roadmap_schema).created(),
    ep("GET", "/api/roadmaps/{id}", "One roadmap with owner, log count, latest insight, recent logs and insights", Owner, "roadmaps"),
    ep("PUT", "/api/roadmaps/{id}", "Replace a roadmap", Owner, "roadmaps").body(roadmap_schema),
    ep("PATCH", "/api/roadmaps/{id}", "Update part of a roadmap (an empty update is 422)", Owner, "roadmaps").body(roadmap_patch_schema),
    ep("DELETE", "/api/roadmaps/{id}", "Soft-delete a roadmap", Owner, "roadmaps"),
    ep("POST", "/api/roadmaps/{id}/thrive-score", "Recompute the thrive score from insights", Owner, "roadmaps"),
    ep("GET", "/api/roadmaps/{id}/logs", "A roadmap's agent logs", Owner, "roadmaps").query(PAGE),
    ep("GET", "/api/roadmaps/{id}/insights", "A roadmap's insights", Owner, "roadmaps").query(PAGE),
    ep("GET", "/api/snippets", "Shared code snippets, each with its author", User, "snippets").query(SNIPPET_FILTERS),
    ep("POST", "/api/snippets", "Add a snippet", Role("engineer"), "snippets").body(super::snippets::new_snippet_schema).created(),
    ep("GET", "/api/snippets/{id}", "One snippet with its author", User, "snippets"),
    ep("POST", "/api/agent-logs", "Record an agent log", Role("engineer"), "agents").body(super::logs::new_log_schema).created(),
    ep("POST", "/api/insights", "Record an insight", Role("engineer"), "agents").body(super::logs::new_insight_schema).created(),
    ep("POST", "/api/agent/run", "Run an agent task (timeout, retry budget, circuit breaker); records the run, traces and a log", User, "agents")
        .body(super::agent::run_task_schema)
        .created()
        .extra(&[402, 502, 503]),
    ep("GET", "/api/analytics/dashboard", "Totals per status, scores, agent cost and success rate, insights per type, top public roadmaps", Role("exec"), "analytics"),
    ep("GET", "/api/admin/api-keys", "API keys, masked, each with its user", Role("super_admin"), "admin").query(KEY_FILTERS),
    ep("POST", "/api/admin/api-keys", "Create an API key (shown once)", Role("super_admin"), "admin").body(super::admin::new_key_schema).created(),
    ep("POST", "/api/admin/api-keys/{id}/rotate", "Revoke a key and issue its replacement (shown once)", Role("super_admin"), "admin").created(),
    ep("DELETE", "/api/admin/api-keys/{id}", "Revoke an API key", Role("super_admin"), "admin"),
    ep("POST", "/api/batch", "Run up to 20 sub-requests through the whole API", User, "batch").body(super::batch::batch_schema),
];

pub fn router() -> Router<AppState> {
    Router::new().route("/api/docs", get(docs))
}

async fn docs() -> Response {
    static DOC: OnceLock<String> = OnceLock::new();
    let body = DOC.get_or_init(|| openapi().to_string()).clone();
    let mut res = ([(header::CONTENT_TYPE, "application/json")], body).into_response();
    res.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    res
}

fn register_schema() -> Value {
    json!({"type": "object", "additionalProperties": false, "required": ["email", "password", "name"], "properties": {
        "email": {"type": "string", "format": "email", "maxLength": 254},
        "password": {"type": "string", "minLength": 12, "description": "upper, lower, digit and symbol"},
        "name": {"type": "string", "minLength": 1, "maxLength": 100},
    }})
}

fn login_schema() -> Value {
    json!({"type": "object", "additionalProperties": false, "required": ["email", "password"], "properties": {
        "email": {"type": "string", "minLength": 1, "maxLength": 254},
        "password": {"type": "string", "minLength": 1, "maxLength": 128},
    }})
}

fn refresh_schema() -> Value {
    json!({"type": "object", "additionalProperties": false, "required": ["refresh_token"], "properties": {
        "refresh_token": {"type": "string", "minLength": 1, "maxLength": 8192},
    }})
}

fn logout_schema() -> Value {
    json!({"type": "object", "additionalProperties": false, "properties": {
        "refresh_token": {"type": "string", "minLength": 1, "maxLength": 8192},
    }})
}

fn roadmap_properties() -> Value {
    json!({
        "title": {"type": "string", "minLength": 1, "maxLength": 200},
        "description": {"type": ["string", "null"]},
        "json_graph": {"type": "string", "description": "v1: the graph as a JSON string (at most 50 KB)"},
        "graph": {"$ref": "#/components/schemas/Graph", "description": "v2: the graph as an object"},
        "status": {"enum": ["draft", "active", "completed", "archived"]},
        "vibe_mode": {"type": "boolean"},
        "visibility": {"enum": ["private", "team", "public"]},
        "tags": {"type": "array", "items": {"type": "string"}},
    })
}

fn roadmap_schema() -> Value {
    json!({"type": "object", "required": ["title"], "properties": roadmap_properties()})
}

fn roadmap_patch_schema() -> Value {
    json!({"type": "object", "minProperties": 1, "properties": roadmap_properties()})
}

/// `/api/snippets/{id}` → `/snippets/{id}` (servers carry `/api/v1`, `/api/v2`).
fn doc_path(path: &str) -> &str {
    path.strip_prefix("/api").unwrap_or(path)
}

fn problem_ref(description: &str) -> Value {
    json!({"description": description, "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}})
}

fn operation(e: &Endpoint) -> Value {
    let mut op = Map::new();
    let id: String = format!(
        "{}{}",
        e.method.to_ascii_lowercase(),
        e.path.replace(['/', '-', '{', '}'], "_")
    )
    .split('_')
    .filter(|s| !s.is_empty())
    .collect::<Vec<_>>()
    .join("_");
    op.insert("operationId".into(), id.into());
    op.insert("summary".into(), e.summary.into());
    op.insert("tags".into(), json!([e.tag]));
    let who = match e.who {
        Anyone => "anyone".to_owned(),
        User => "any authenticated user".to_owned(),
        Owner => "the owner (reads: also anyone for public visibility)".to_owned(),
        Role(r) => format!("{r} or above"),
    };
    op.insert("description".into(), format!("Who: {who}.").into());
    if let Role(r) = e.who {
        op.insert("x-required-role".into(), r.into());
    }
    op.insert(
        "security".into(),
        if e.who == Anyone {
            json!([])
        } else {
            json!([{"bearer": []}, {"apiKey": []}, {"apiKeyHeader": []}])
        },
    );
    let mut params: Vec<Value> = e
        .path
        .split('/')
        .filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
        .map(|name| json!({"name": name, "in": "path", "required": true, "schema": {"type": "string", "format": "uuid"}}))
        .collect();
    params.extend(
        e.query
            .iter()
            .map(|(name, d)| json!({"name": name, "in": "query", "required": false, "description": d, "schema": {"type": "string"}})),
    );
    if !params.is_empty() {
        op.insert("parameters".into(), params.into());
    }
    if let Some(schema) = e.body {
        op.insert(
            "requestBody".into(),
            json!({"required": e.path != "/api/auth/logout", "content": {"application/json": {"schema": schema()}}}),
        );
    }
    let mut responses = Map::new();
    let ok = if e.path == "/metrics" {
        json!({"description": "Prometheus text", "content": {"text/plain": {"schema": {"type": "string"}}}})
    } else if e.path == "/api/docs" {
        json!({"description": "OpenAPI 3.1", "content": {"application/json": {"schema": {"type": "object"}}}})
    } else {
        json!({"description": "Success", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Envelope"}}}})
    };
    responses.insert(e.success.to_string(), ok);
    let mut errors: Vec<(u16, &str)> = vec![(429, "Rate limited"), (500, "Unexpected error")];
    if e.who != Anyone {
        errors.push((401, "Credentials missing or invalid"));
    }
    if matches!(e.who, Role(_) | Owner) {
        errors.push((403, "The caller's role is too low"));
    }
    if e.path.contains('{') {
        errors.push((404, "No such resource (or not the caller's)"));
    }
    if e.body.is_some() {
        errors.extend([
            (413, "Body too large"),
            (415, "Not application/json"),
            (422, "Invalid body, per-field errors"),
        ]);
    }
    if !e.query.is_empty() {
        errors.extend([(400, "Malformed query"), (422, "Invalid query parameter")]);
    }
    for s in e.extra {
        let d = match s {
            402 => "Budget not positive or over the maximum",
            409 => "Conflict",
            502 => "The agent service failed after retries",
            503 => "Unavailable; see Retry-After",
            _ => "See the code",
        };
        errors.push((*s, d));
    }
    for (status, d) in errors {
        responses
            .entry(status.to_string())
            .or_insert_with(|| problem_ref(d));
    }
    op.insert("responses".into(), responses.into());
    op.into()
}

/// The OpenAPI 3.1 document.
pub fn openapi() -> Value {
    let mut paths = Map::new();
    for e in ENDPOINTS {
        let item = paths
            .entry(doc_path(e.path).to_owned())
            .or_insert_with(|| json!({}));
        if e.path == "/metrics" {
            item["servers"] = json!([{"url": "/"}]);
        }
        item[e.method.to_ascii_lowercase()] = operation(e);
    }
    json!({
        "openapi": "3.1.0",
        "jsonSchemaDialect": "https://json-schema.org/draft/2020-12/schema",
        "info": {
            "title": "ProtoThrive API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Roadmaps, snippets, agent runs, insights and analytics. v1 is deprecated (Deprecation, Sunset \
                            headers); v2 takes and returns the roadmap graph as an object named `graph` and paginates by cursor. \
                            A bare /api/... path is served by the version of the API-Version header or the Accept media type.",
        },
        "servers": [
            {"url": "/api/v2", "description": "current"},
            {"url": "/api/v1", "description": "deprecated"},
        ],
        "paths": paths,
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
                "apiKey": {"type": "http", "scheme": "ApiKey", "description": format!("Authorization: ApiKey <key>. {KEY_SCOPES}")},
                "apiKeyHeader": {"type": "apiKey", "in": "header", "name": "X-API-Key", "description": KEY_SCOPES},
            },
            "schemas": {
                "Envelope": {
                    "type": "object", "required": ["data", "meta", "version", "timestamp"],
                    "properties": {
                        "data": {}, "meta": {"type": "object"},
                        "version": {"enum": ["v1", "v2"]}, "timestamp": {"type": "string", "format": "date-time"},
                    }
                },
                "Problem": {
                    "type": "object", "required": ["type", "title", "status", "code"],
                    "properties": {
                        "type": {"type": "string"}, "title": {"type": "string"}, "status": {"type": "integer"},
                        "detail": {"type": "string"}, "code": {"type": "string"},
                        "request_id": {"type": "string"}, "trace_id": {"type": "string"},
                        "errors": {"type": "array", "items": {"type": "object", "properties": {
                            "field": {"type": "string"}, "code": {"type": "string"}, "message": {"type": "string"}}}},
                    }
                },
                "Graph": {
                    "type": "object", "required": ["nodes", "edges"],
                    "properties": {
                        "nodes": {"type": "array", "items": {"type": "object", "required": ["id"], "properties": {"id": {"type": "string"}}}},
                        "edges": {"type": "array", "items": {"type": "object"}},
                    }
                },
            },
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

    /// `(METHOD, path)` of every `.route("path", get(..).post(..)...)` in `src`.
    fn registered(src: &str) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let mut rest = src;
        while let Some(at) = rest.find(".route(") {
            rest = &rest[at + ".route(".len()..];
            let Some(open) = rest.find('"') else { break };
            let Some(len) = rest[open + 1..].find('"') else {
                break;
            };
            let path = rest[open + 1..open + 1 + len].to_owned();
            // The arguments: up to the parenthesis closing `.route(`.
            let (mut depth, mut end) = (1i32, rest.len());
            for (i, c) in rest.char_indices() {
                match c {
                    '(' => depth += 1,
                    ')' => depth -= 1,
                    _ => {}
                }
                if depth == 0 {
                    end = i;
                    break;
                }
            }
            let args = &rest[..end];
            for m in METHODS {
                let needle = format!("{m}(");
                let hits = args.match_indices(&needle).any(|(i, _)| {
                    args[..i]
                        .chars()
                        .next_back()
                        .is_none_or(|c| !(c.is_alphanumeric() || c == '_'))
                });
                if hits {
                    out.push((m.to_ascii_uppercase(), path.clone()));
                }
            }
        }
        out
    }

    fn route_sources() -> Vec<(std::path::PathBuf, String)> {
        let dir =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/protothrive/routes");
        let mut files = Vec::new();
        let mut stack = vec![dir];
        while let Some(d) = stack.pop() {
            for entry in std::fs::read_dir(&d).unwrap().flatten() {
                let p = entry.path();
                if p.is_dir() {
                    stack.push(p);
                } else if p.extension().is_some_and(|e| e == "rs")
                    && p.file_name().is_some_and(|n| n != "docs.rs")
                {
                    files.push((p.clone(), std::fs::read_to_string(&p).unwrap()));
                }
            }
        }
        files.push((
            std::path::PathBuf::from("docs.rs"),
            "Router::new().route(\"/api/docs\", get(docs))".to_owned(),
        ));
        files
    }

    #[test]
    fn the_scanner_reads_chained_and_layered_method_routers() {
        let src = r#".route("/a/{id}", get(one).route_layer(x()).merge(axum::routing::post(create).route_layer(at_least("engineer"))))
                     .route("/b", delete(get_thing))"#;
        assert_eq!(
            registered(src),
            vec![
                ("GET".into(), "/a/{id}".into()),
                ("POST".into(), "/a/{id}".into()),
                ("DELETE".into(), "/b".into())
            ]
        );
    }

    #[test]
    fn every_registered_route_is_documented() {
        let documented: Vec<(String, String)> = ENDPOINTS
            .iter()
            .map(|e| (e.method.to_owned(), e.path.to_owned()))
            .collect();
        let mut count = 0;
        for (file, src) in route_sources() {
            assert!(
                !src.contains(".nest(") && !src.contains(".route_service("),
                "{}: teach this test to read .nest/.route_service",
                file.display()
            );
            for route in registered(&src) {
                count += 1;
                assert!(
                    documented.contains(&route),
                    "{} registers {route:?}, missing from ENDPOINTS",
                    file.display()
                );
            }
        }
        assert!(count >= 20, "the scanner found only {count} routes");
    }

    #[test]
    fn the_document_lists_every_endpoint_once_with_its_security() {
        let doc = openapi();
        assert_eq!(doc["openapi"], "3.1.0");
        let mut seen = std::collections::HashSet::new();
        for e in ENDPOINTS {
            assert!(
                seen.insert((e.method, e.path)),
                "{} {} twice",
                e.method,
                e.path
            );
            let op = &doc["paths"][doc_path(e.path)][e.method.to_ascii_lowercase()];
            assert!(op.is_object(), "{} {} missing", e.method, e.path);
            assert_eq!(
                op["security"].as_array().unwrap().is_empty(),
                e.who == Anyone
            );
            assert!(op["responses"][e.success.to_string()].is_object());
            if e.body.is_some() {
                assert_eq!(
                    op["requestBody"]["content"]["application/json"]["schema"]["type"],
                    "object"
                );
            }
        }
        assert_eq!(
            doc["paths"]["/snippets/{id}"]["get"]["parameters"][0]["name"],
            "id"
        );
        assert_eq!(
            doc["paths"]["/admin/api-keys"]["get"]["x-required-role"],
            "super_admin"
        );
    }
}
