//! `GET /docs`: the OpenAPI 3.1 document of the API, one per version (`/api/v1/docs`,
//! `/api/v2/docs`), generated from the route table (`super::table`): the rows the router
//! registers are the operations documented, with every status each can answer.
//!
//! Schemas are hand-written JSON Schema 2020-12 (the dialect of OpenAPI 3.1) next to the rules
//! they describe rather than derived with `schemars`: the rules live in `validator` attributes and
//! custom functions that no derive sees. They say exactly what the handlers accept (lengths,
//! enums, the password rule, what an empty query value means), so that a schema-valid request is
//! never refused for its shape and a schema-violating one never accepted; the end-to-end test
//! `openapi` sends each operation's documented error cases and checks every answer's status is
//! documented.

use std::sync::OnceLock;

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use protothrive::gateway::ApiVersion;
use serde_json::{Map, Value, json};

use super::table::{Endpoint, Param, Route, Who, Who::Anyone, ep};

/// What an API key may do, for the security schemes' descriptions.
const KEY_SCOPES: &str = "A key does only what its scopes grant: <area>:read for GET and HEAD, \
    <area>:write for other methods (and reads), the area being the path's first segment after \
    the version (roadmaps, snippets, admin, ...); health, docs and the batch envelope need none.";

fn limit() -> Value {
    json!({"type": "integer", "minimum": 1, "maximum": 100, "default": 20})
}
fn offset() -> Value {
    json!({"type": "integer", "minimum": 0, "maximum": 1_000_000, "default": 0, "description": "rows to skip"})
}
fn cursor() -> Value {
    json!({"type": "string", "pattern": super::cursor::pattern(),
           "description": "`meta.next_cursor` of the previous page (opaque)"})
}
fn roadmap_cursor() -> Value {
    json!({"type": "string", "pattern": super::roadmaps::cursor::pattern(),
           "description": "`meta.next_cursor` of the previous page (opaque)"})
}
fn roadmap_status() -> Value {
    json!({"enum": ["draft", "active", "completed", "archived"]})
}
fn category() -> Value {
    json!({"type": "string", "pattern": "^[A-Za-z0-9_-]{1,50}$"})
}
fn language() -> Value {
    printable(30)
}
/// 1 to `max` characters, none of them a control character, not all white space (as Rust's
/// `char::is_control` and `str::trim` read them).
pub fn printable(max: usize) -> Value {
    const CONTROL: &str = "\\u0000-\\u001f\\u007f-\\u009f";
    const SPACE: &str =
        "\\u0020\\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000";
    json!({"type": "string", "minLength": 1, "maxLength": max,
           "pattern": format!("^[^{CONTROL}]*[^{CONTROL}{SPACE}][^{CONTROL}]*(?![\\s\\S])")})
}

fn uuid() -> Value {
    json!({"type": "string", "format": "uuid"})
}

/// A page: `limit`, and `offset` (v1) or `cursor` (v2).
pub const PAGE: &[Param] = &[
    ("limit", limit),
    ("offset", offset),
    ("cursor", roadmap_cursor),
];
pub const SNIPPET_FILTERS: &[Param] = &[
    ("category", category),
    ("language", language),
    ("limit", limit),
    ("offset", offset),
    ("cursor", cursor),
];
pub const ROADMAP_FILTERS: &[Param] = &[
    ("status", roadmap_status),
    ("limit", limit),
    ("offset", offset),
    ("cursor", roadmap_cursor),
];
pub const KEY_FILTERS: &[Param] = &[
    ("user_id", uuid),
    ("limit", limit),
    ("offset", offset),
    ("cursor", cursor),
];

pub fn routes() -> Vec<Route> {
    vec![Route::to(
        ep(
            "GET",
            "/api/docs",
            "This OpenAPI document (of the version asked for)",
            Anyone,
            "docs",
        )
        .unscoped(),
        docs,
    )]
}

async fn docs(v: ApiVersion) -> Response {
    static DOCS: [OnceLock<String>; 2] = [OnceLock::new(), OnceLock::new()];
    let version = if v.0 >= 2 { 2 } else { 1 };
    let body = DOCS[usize::from(version - 1)]
        .get_or_init(|| openapi(version).to_string())
        .clone();
    let mut res = ([(header::CONTENT_TYPE, "application/json")], body).into_response();
    res.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    res
}

pub fn register_schema(_v: u8) -> Value {
    json!({"type": "object", "additionalProperties": false, "required": ["email", "password", "name"], "properties": {
        "email": {"type": "string", "format": "email", "maxLength": 254},
        "password": {"type": "string", "minLength": 12, "maxLength": 128, "pattern": crate::passwords::PATTERN,
                     "description": "12 to 128 characters with an upper-case letter A-Z, a lower-case letter a-z, a digit and an ASCII symbol"},
        "name": {"type": "string", "minLength": 1, "maxLength": 100},
    }})
}

pub fn login_schema(_v: u8) -> Value {
    json!({"type": "object", "additionalProperties": false, "required": ["email", "password"], "properties": {
        "email": {"type": "string", "minLength": 1, "maxLength": 254},
        "password": {"type": "string", "minLength": 1, "maxLength": 128},
    }})
}

pub fn refresh_schema(_v: u8) -> Value {
    json!({"type": "object", "additionalProperties": false, "required": ["refresh_token"], "properties": {
        "refresh_token": {"type": "string", "minLength": 1, "maxLength": 8192},
    }})
}

pub fn logout_schema(_v: u8) -> Value {
    json!({"type": "object", "additionalProperties": false, "properties": {
        "refresh_token": {"type": "string", "minLength": 1, "maxLength": 8192},
    }})
}

/// A string with a character other than white space (as Rust's `str::trim` reads it).
const NOT_BLANK: &str = "[^\\t\\n\\u000b\\f\\r \\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000]";

/// A roadmap's fields in version `v`: v1 speaks the graph as a JSON string (`json_graph`), v2 as
/// an object (`graph`); the other version's field is refused.
fn roadmap_properties(v: u8) -> Value {
    let mut p = json!({
        "title": {"type": "string", "minLength": 1, "maxLength": 200, "pattern": NOT_BLANK},
        "description": {"type": ["string", "null"], "maxLength": 2000},
        "status": {"enum": ["draft", "active", "completed", "archived"]},
        "vibe_mode": {"type": "boolean"},
        "visibility": {"enum": ["private", "team", "public"]},
        "tags": {"type": "array", "maxItems": 20, "items": {"type": "string", "minLength": 1, "maxLength": 50}},
    });
    if v >= 2 {
        p["graph"] = json!({"$ref": "#/components/schemas/Graph"});
    } else {
        p["json_graph"] = json!({"type": "string", "maxLength": 51_200,
            "description": "the graph as a JSON string: an object with `nodes` and `edges` (see Graph)"});
    }
    p
}

fn graph_field(v: u8) -> &'static str {
    if v >= 2 { "graph" } else { "json_graph" }
}

/// POST and PUT: the title and the graph are required.
pub fn roadmap_schema(v: u8) -> Value {
    json!({"type": "object", "additionalProperties": false, "required": ["title", graph_field(v)],
           "properties": roadmap_properties(v)})
}

/// PATCH: any of the fields, at least one.
pub fn roadmap_patch_schema(v: u8) -> Value {
    json!({"type": "object", "additionalProperties": false, "minProperties": 1, "properties": roadmap_properties(v)})
}

/// `/api/snippets/{id}` → `/snippets/{id}` (the server carries `/api/v1` or `/api/v2`).
fn doc_path(path: &str) -> &str {
    path.strip_prefix("/api").unwrap_or(path)
}

fn problem_ref(description: &str) -> Value {
    json!({"description": description, "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}})
}

/// Every status `e` can answer besides its success, with what it means.
pub fn errors(e: &Endpoint) -> Vec<(u16, &'static str)> {
    let mut errors: Vec<(u16, &'static str)> = vec![
        (
            429,
            "Rate limited (by client address, and by user or key once authenticated); see Retry-After",
        ),
        (500, "Unexpected error"),
    ];
    let liveness = matches!(e.path, "/api/health" | "/api/health/live");
    if !liveness {
        errors.push((
            503,
            "Unavailable (load shed, or the database busy); see Retry-After",
        ));
    }
    if e.who != Anyone || e.path == "/metrics" || e.extra.contains(&401) {
        errors.push((401, "Credentials missing or invalid"));
    }
    if e.who != Anyone || e.scope().is_some() {
        errors.push((
            403,
            "The caller's role, ownership or API-key scope does not allow it",
        ));
    }
    if e.path.contains('{') || e.extra.contains(&404) {
        errors.push((404, "No such resource (or not one the caller may see)"));
    }
    if e.body.is_some() || !e.query.is_empty() {
        errors.push((400, "Malformed JSON body or query string"));
        errors.push((422, "Invalid field, per-field errors"));
    }
    if e.body.is_some() {
        errors.extend([
            (413, "Body too large (64 KB)"),
            (415, "Not application/json"),
        ]);
    }
    for s in e.extra {
        let d = match s {
            402 => "Budget not positive or over the maximum",
            409 => "Conflict",
            502 => "The agent service failed after retries",
            503 => "Unavailable; see Retry-After",
            _ => continue,
        };
        errors.push((*s, d));
    }
    errors.sort_by_key(|(s, _)| *s);
    errors.dedup_by_key(|(s, _)| *s);
    errors
}

fn operation(e: &Endpoint, v: u8) -> Value {
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
        Who::Anyone => "anyone".to_owned(),
        Who::User => "any authenticated user".to_owned(),
        Who::Owner => "the owner (reads: also anyone for public visibility)".to_owned(),
        Who::Role(r) => format!("{r} or above"),
    };
    op.insert("description".into(), format!("Who: {who}.").into());
    if let Who::Role(r) = e.who {
        op.insert("x-required-role".into(), r.into());
    }
    if let Some(scope) = e.scope() {
        op.insert("x-required-scope".into(), scope.into());
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
        .map(|name| {
            json!({"name": name, "in": "path", "required": true, "schema": uuid(),
                           "description": "a UUID: anything else is a 404"})
        })
        .collect();
    let other_version = if v >= 2 { "offset" } else { "cursor" };
    params.extend(
        e.query
            .iter()
            .filter(|(name, _)| *name != other_version)
            .map(|(name, schema)| json!({"name": name, "in": "query", "required": false, "schema": schema(),
                "description": "An empty value is a value (`?limit=` is a 422), not an absent parameter."})),
    );
    if !params.is_empty() {
        op.insert("parameters".into(), params.into());
    }
    if let Some(schema) = e.body.map(|body| body(v)) {
        op.insert(
            "requestBody".into(),
            json!({"required": !e.body_optional, "content": {"application/json": {"schema": schema}}}),
        );
    }
    let mut responses = Map::new();
    let ok = if e.success == 204 {
        json!({"description": "Done; no content"})
    } else if e.path == "/metrics" {
        json!({"description": "Prometheus text", "content": {"text/plain": {"schema": {"type": "string"}}}})
    } else if e.path == "/api/docs" {
        json!({"description": "OpenAPI 3.1", "content": {"application/json": {"schema": {"type": "object"}}}})
    } else {
        json!({"description": "Success", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Envelope"}}}})
    };
    responses.insert(e.success.to_string(), ok);
    for (status, d) in errors(e) {
        responses
            .entry(status.to_string())
            .or_insert_with(|| problem_ref(d));
    }
    op.insert("responses".into(), responses.into());
    op.into()
}

/// The OpenAPI 3.1 document of version `v` (1 or 2) of every route of the table.
pub fn openapi(v: u8) -> Value {
    let mut paths = Map::new();
    for e in super::table::endpoints() {
        let item = paths
            .entry(doc_path(e.path).to_owned())
            .or_insert_with(|| json!({}));
        if e.path == "/metrics" {
            item["servers"] = json!([{"url": "/"}]);
        }
        item[e.method.to_ascii_lowercase()] = operation(&e, v);
    }
    let server = if v >= 2 {
        json!({"url": "/api/v2", "description": "current"})
    } else {
        json!({"url": "/api/v1", "description": "deprecated (Deprecation and Sunset headers); v2 is current"})
    };
    json!({
        "openapi": "3.1.0",
        "jsonSchemaDialect": "https://json-schema.org/draft/2020-12/schema",
        "info": {
            "title": "ProtoThrive API",
            "version": format!("{}-v{v}", env!("CARGO_PKG_VERSION")),
            "description": "Roadmaps, snippets, agent runs, insights and analytics. This is the document of one version \
                            (/api/v1/docs, /api/v2/docs). v2 takes and returns the roadmap graph as an object named `graph` and \
                            paginates by cursor; v1 speaks it as a JSON string `json_graph` and paginates by offset. \
                            A bare /api/... path is served by the version of the API-Version header or the Accept media type.",
        },
        "servers": [server],
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
                    "description": "Node ids are unique; each edge names two nodes of the graph by id (`from`/`to` or `source`/`target`); \
                                    at most 50 KB serialized. The API checks what JSON Schema cannot say (422 naming the place).",
                    "properties": {
                        "nodes": {"type": "array", "items": {"type": "object", "required": ["id"],
                                  "properties": {"id": {"type": "string", "minLength": 1}}}},
                        "edges": {"type": "array", "items": {"type": "object",
                                  "anyOf": [{"required": ["from", "to"]}, {"required": ["source", "target"]}],
                                  "properties": {"from": {"type": "string"}, "to": {"type": "string"},
                                                 "source": {"type": "string"}, "target": {"type": "string"}}}},
                    }
                },
            },
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_document_lists_every_route_of_the_table_once_with_its_security() {
        for v in [1, 2] {
            let doc = openapi(v);
            assert_eq!(doc["openapi"], "3.1.0");
            let mut seen = std::collections::HashSet::new();
            for e in super::super::table::endpoints() {
                assert!(
                    seen.insert((e.method, e.path)),
                    "{} {} twice",
                    e.method,
                    e.path
                );
                let op = &doc["paths"][doc_path(e.path)][e.method.to_ascii_lowercase()];
                assert!(op.is_object(), "{} {} missing", e.method, e.path);
                assert_eq!(
                    op["security"].as_array().map(Vec::is_empty),
                    Some(e.who == Anyone)
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
        let v1 = openapi(1);
        let v2 = openapi(2);
        let names = |doc: &Value| -> Vec<String> {
            doc["paths"]["/roadmaps"]["get"]["parameters"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|p| p["name"].as_str().map(str::to_owned))
                .collect()
        };
        assert_eq!(names(&v1), ["status", "limit", "offset"]);
        assert_eq!(names(&v2), ["status", "limit", "cursor"]);
        let required = |doc: &Value| {
            doc["paths"]["/roadmaps"]["post"]["requestBody"]["content"]["application/json"]["schema"]["required"].clone()
        };
        assert_eq!(required(&v1), json!(["title", "json_graph"]));
        assert_eq!(required(&v2), json!(["title", "graph"]));
    }
}
