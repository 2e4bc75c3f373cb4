//! Every endpoint of the contract as every kind of caller — anonymous, vibe_coder, engineer,
//! super_admin (there is no exec demo user: exec-only routes are checked below exec and above
//! it) — with the headers and body shape of each answer, and a check that the table covers every
//! operation the API documents. (Whose roadmaps each user may see: `roadmaps.rs`.)

use std::collections::BTreeSet;

use serde_json::{Value, json};

use crate::api::{
    Auth, Slot, assert_common_headers, assert_envelope, assert_problem, assert_version_headers,
    call, demo_tokens, fresh_email, get, req, roadmap, shared, slot, text,
};
use crate::support::Url;
use crate::support::{ADMIN, DEMO, ENGINEER, PASSWORD, send};

static SERVER: Slot = slot();

/// One operation of the contract: its documented route, the request, and the status per caller
/// (anonymous, vibe_coder, engineer, super_admin). Placeholders in `path` and `body`: `{own}` a
/// roadmap of the caller's, `{doomed}` another one (deleted by the row), `{snippet}`, `{key}` and
/// `{key2}` API keys, `{email}` a fresh address, `{me}` the caller's email, `{refresh}` a fresh
/// refresh token of the caller's.
struct Op {
    method: &'static str,
    route: &'static str,
    path: &'static str,
    body: Option<&'static str>,
    expect: [u16; 4],
}

const fn op(
    method: &'static str,
    route: &'static str,
    path: &'static str,
    body: Option<&'static str>,
    expect: [u16; 4],
) -> Op {
    Op {
        method,
        route,
        path,
        body,
        expect,
    }
}

const ANYONE: [u16; 4] = [200; 4];
const USER: [u16; 4] = [401, 200, 200, 200];
const USER_CREATES: [u16; 4] = [401, 201, 201, 201];
const ENGINEER_CREATES: [u16; 4] = [401, 403, 201, 201];
const EXEC: [u16; 4] = [401, 403, 403, 200];
const ADMIN_CREATES: [u16; 4] = [401, 403, 403, 201];

const ROADMAP: &str = r#"{"title": "matrix", "graph": {"nodes": [{"id": "a"}], "edges": []}}"#;
const SNIPPET: &str = r#"{"category": "ui", "title": "Button", "code": "<button/>", "language": "html", "ui_preview_url": "https://example.com/b.png"}"#;
const LOG: &str = r#"{"roadmap_id": "{own}", "task_type": "plan", "output": "ok", "status": "success", "model_used": "m", "token_count": 12, "cost_usd": 0.01, "duration_ms": 5}"#;
const INSIGHT: &str = r#"{"roadmap_id": "{own}", "type": "quality", "data": {"k": 1}, "score": 0.5, "trend": "stable"}"#;
const RUN: &str =
    r#"{"roadmap_id": "{own}", "task_type": "plan", "prompt": "plan it", "budget_usd": 0.5}"#;
const REGISTER: &str = r#"{"email": "{email}", "password": "{password}", "name": "M"}"#;
const LOGIN: &str = r#"{"email": "{me}", "password": "{password}"}"#;
const BATCH: &str = r#"{"requests": [{"method": "GET", "path": "/api/v2/roadmaps/{own}"}, {"method": "GET", "path": "/api/health"}]}"#;

/// The contract's endpoints, in an order where nothing a row needs was spent by an earlier one.
#[rustfmt::skip]
const OPS: &[Op] = &[
    op("GET", "/health", "/api/v1/health", None, ANYONE),
    op("GET", "/health/live", "/api/v1/health/live", None, ANYONE),
    op("GET", "/health/ready", "/api/v1/health/ready", None, ANYONE),
    op("GET", "/status", "/api/v1/status", None, ANYONE),
    op("GET", "/metrics", "/metrics", None, ANYONE),
    op("GET", "/docs", "/api/v1/docs", None, ANYONE),
    op("POST", "/auth/register", "/api/v1/auth/register", Some(REGISTER), [201; 4]),
    op("POST", "/auth/login", "/api/v2/auth/login", Some(LOGIN), ANYONE),
    op("POST", "/auth/refresh", "/api/v1/auth/refresh", Some(r#"{"refresh_token": "{refresh}"}"#), ANYONE),
    op("GET", "/auth/me", "/api/v2/auth/me", None, USER),
    op("GET", "/roadmaps", "/api/v1/roadmaps", None, USER),
    op("POST", "/roadmaps", "/api/v2/roadmaps", Some(ROADMAP), USER_CREATES),
    op("GET", "/roadmaps/{id}", "/api/v2/roadmaps/{own}", None, USER),
    op("PUT", "/roadmaps/{id}", "/api/v2/roadmaps/{own}", Some(ROADMAP), USER),
    op("PATCH", "/roadmaps/{id}", "/api/v1/roadmaps/{own}", Some(r#"{"status": "active"}"#), USER),
    op("POST", "/roadmaps/{id}/thrive-score", "/api/v1/roadmaps/{own}/thrive-score", None, USER),
    op("GET", "/roadmaps/{id}/logs", "/api/v2/roadmaps/{own}/logs", None, USER),
    op("GET", "/roadmaps/{id}/insights", "/api/v1/roadmaps/{own}/insights", None, USER),
    op("DELETE", "/roadmaps/{id}", "/api/v1/roadmaps/{doomed}", None, [401, 204, 204, 204]),
    op("GET", "/snippets", "/api/v1/snippets?category=ui", None, USER),
    op("GET", "/snippets/{id}", "/api/v2/snippets/{snippet}", None, USER),
    op("POST", "/snippets", "/api/v1/snippets", Some(SNIPPET), ENGINEER_CREATES),
    op("POST", "/agent-logs", "/api/v1/agent-logs", Some(LOG), ENGINEER_CREATES),
    op("POST", "/insights", "/api/v2/insights", Some(INSIGHT), ENGINEER_CREATES),
    op("POST", "/agent/run", "/api/v2/agent/run", Some(RUN), USER_CREATES),
    op("GET", "/analytics/dashboard", "/api/v1/analytics/dashboard", None, EXEC),
    op("GET", "/admin/api-keys", "/api/v2/admin/api-keys", None, EXEC),
    op("POST", "/admin/api-keys", "/api/v2/admin/api-keys", Some(r#"{"name": "matrix"}"#), ADMIN_CREATES),
    op("POST", "/admin/api-keys/{id}/rotate", "/api/v1/admin/api-keys/{key}/rotate", None, ADMIN_CREATES),
    op("DELETE", "/admin/api-keys/{id}", "/api/v2/admin/api-keys/{key2}", None, EXEC),
    op("POST", "/batch", "/api/v1/batch", Some(BATCH), USER),
    op("POST", "/auth/logout", "/api/v1/auth/logout", None, USER),
];

/// A caller of the matrix and what its rows refer to.
struct Caller {
    name: &'static str,
    token: Option<String>,
    email: &'static str,
    own: String,
    doomed: String,
}

impl Caller {
    async fn fill(&self, server: &impl Url, s: &str, shared: &[(&str, String)]) -> String {
        let mut out = s
            .replace("{own}", &self.own)
            .replace("{doomed}", &self.doomed)
            .replace("{me}", self.email)
            .replace("{password}", PASSWORD);
        for (k, v) in shared {
            out = out.replace(k, v);
        }
        if out.contains("{email}") {
            out = out.replace("{email}", &fresh_email("matrix"));
        }
        if out.contains("{refresh}") {
            let a = send(
                req(server, "POST", "/api/v1/auth/login", Auth::None)
                    .json(&json!({"email": self.email, "password": PASSWORD})),
            )
            .await;
            out = out.replace(
                "{refresh}",
                &text(&a.body["data"]["tokens"]["refresh_token"]),
            );
        }
        out
    }
}

/// Every operation × every caller: the status, the headers, and the body's shape.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_endpoint_answers_every_role_as_the_contract_says() {
    let server = shared(&SERVER);
    let [vibe, eng, admin] = demo_tokens(&server).await;
    let mut callers = Vec::new();
    for (name, token, email) in [
        ("vibe_coder", &vibe, DEMO),
        ("engineer", &eng, ENGINEER),
        ("super_admin", &admin, ADMIN),
    ] {
        callers.push(Caller {
            name,
            token: Some(token.clone()),
            email,
            own: roadmap(&server, token, name, "private").await,
            doomed: roadmap(&server, token, "doomed", "private").await,
        });
    }
    let anonymous = Caller {
        name: "anonymous",
        token: None,
        email: DEMO,
        own: callers[0].own.clone(),
        doomed: callers[0].doomed.clone(),
    };
    callers.insert(0, anonymous);
    let snippets = get(&server, "/api/v1/snippets", &vibe).await;
    let mut keys = Vec::new();
    for name in ["rotate me", "revoke me"] {
        let k = call(
            &server,
            "POST",
            "/api/v1/admin/api-keys",
            &admin,
            &json!({"name": name}),
        )
        .await;
        keys.push(text(&k.body["data"]["id"]));
    }
    let shared_values = [
        ("{snippet}", text(&snippets.body["data"][0]["id"])),
        ("{key2}", keys[1].clone()),
        ("{key}", keys[0].clone()),
    ];

    for o in OPS {
        for (caller, &status) in callers.iter().zip(&o.expect) {
            let what = format!("{} {} as {}", o.method, o.path, caller.name);
            let path = caller.fill(&server, o.path, &shared_values).await;
            let auth = caller.token.as_deref().map_or(Auth::None, Auth::Bearer);
            let mut r = req(&server, o.method, &path, auth);
            if let Some(body) = o.body {
                let body: Value =
                    serde_json::from_str(&caller.fill(&server, body, &shared_values).await)
                        .expect("row body");
                r = r.json(&body);
            }
            let a = send(r).await;
            assert_common_headers(&a, &what);
            let version = if path.starts_with("/api/v2") {
                "v2"
            } else {
                "v1"
            };
            if path.starts_with("/api/") {
                assert_version_headers(&a, version, &what);
            }
            match status {
                401 => assert_problem(&a, 401, "AUTH-401", &what),
                403 => assert_problem(&a, 403, "AUTH-403", &what),
                _ => assert_eq!(a.status, status, "{what}: {}", a.body),
            }
            if matches!(a.status, 200 | 201) && o.route != "/metrics" && o.route != "/docs" {
                assert_envelope(&a, version, &what);
            }
            if a.status == 201 {
                check_location(&server, &a, caller.token.as_deref(), o.route, &what).await;
            }
        }
    }
}

/// A 201 that created something the contract can address says where it is, and it is there.
async fn check_location(
    server: &impl Url,
    a: &crate::support::Answer,
    token: Option<&str>,
    route: &str,
    what: &str,
) {
    let kind = match route {
        "/roadmaps" => "roadmaps",
        "/snippets" => "snippets",
        "/auth/register" => "auth/me",
        // Logs, insights, runs and keys have no URL of their own in the contract.
        _ => return,
    };
    let location = a.header("location");
    assert!(
        location.starts_with("/api/v") && location.contains(kind),
        "{what}: Location {location:?}"
    );
    let token = if route == "/auth/register" {
        text(&a.body["data"]["tokens"]["access_token"])
    } else {
        token.unwrap_or_default().to_owned()
    };
    let there = get(server, location, &token).await;
    assert_eq!(there.status, 200, "{what}: GET {location}");
    let id = if route == "/auth/register" {
        &a.body["data"]["user"]["id"]
    } else {
        &a.body["data"]["id"]
    };
    assert_eq!(
        &there.body["data"]["id"], id,
        "{what}: Location names the created resource"
    );
}

/// The matrix covers every operation the API documents, and documents nothing it does not cover.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_matrix_covers_every_documented_operation() {
    let server = shared(&SERVER);
    let doc = send(req(&server, "GET", "/api/v2/docs", Auth::None)).await;
    assert_eq!(doc.status, 200);
    assert!(
        doc.body["openapi"]
            .as_str()
            .is_some_and(|v| v.starts_with("3.1")),
        "{}",
        doc.body["openapi"]
    );
    let documented: BTreeSet<(String, String)> = doc.body["paths"]
        .as_object()
        .expect("paths")
        .iter()
        .flat_map(|(path, item)| {
            item.as_object()
                .into_iter()
                .flatten()
                .filter(|(m, _)| m.as_str() != "servers" && m.as_str() != "parameters")
                .map(move |(m, _)| (m.to_uppercase(), path.clone()))
        })
        .collect();
    let tested: BTreeSet<(String, String)> = OPS
        .iter()
        .map(|o| (o.method.to_owned(), o.route.to_owned()))
        .collect();
    assert_eq!(documented, tested, "documented vs tested operations");
}
