//! Hostile input, as a table: each row is a request (method, path, headers, body) and the status
//! and `code` it must get. None may be a 500; every one is a well-formed problem; an id that is not
//! a UUID is refused before any statement runs. After the table the service still works.

use serde_json::{Value, json};

use crate::api::{
    Auth, Slot, assert_common_headers, assert_problem, call, demo_tokens, get, query_count, req,
    roadmap, shared, slot,
};
use crate::support::send;

static SERVER: Slot = slot();

/// Who sends a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Who {
    Anonymous,
    Vibe,
    Engineer,
    Admin,
}

#[derive(Debug, Clone)]
enum Body {
    None,
    Json(Value),
    /// Bytes with this content type (`None`: no `Content-Type` at all).
    Raw(Option<&'static str>, Vec<u8>),
}

struct Row {
    method: &'static str,
    /// `{own}` is a roadmap of the sender's.
    path: String,
    who: Who,
    headers: Vec<(&'static str, String)>,
    body: Body,
    status: u16,
    code: &'static str,
    /// The id in the path is refused before any statement (`X-Query-Count: 0`).
    no_query: bool,
    /// The first per-field error of a 422: field and code.
    error: Option<(&'static str, &'static str)>,
}

fn row(method: &'static str, path: impl Into<String>, status: u16, code: &'static str) -> Row {
    Row {
        method,
        path: path.into(),
        who: Who::Vibe,
        headers: Vec::new(),
        body: Body::None,
        status,
        code,
        no_query: false,
        error: None,
    }
}

impl Row {
    fn json(mut self, v: Value) -> Self {
        self.body = Body::Json(v);
        self
    }
    fn raw(mut self, content_type: Option<&'static str>, bytes: impl Into<Vec<u8>>) -> Self {
        self.body = Body::Raw(content_type, bytes.into());
        self
    }
    fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }
    fn by(mut self, who: Who) -> Self {
        self.who = who;
        self
    }
    fn no_query(mut self) -> Self {
        self.no_query = true;
        self
    }
    fn error(mut self, field: &'static str, code: &'static str) -> Self {
        self.error = Some((field, code));
        self
    }
}

const NF: &str = "NOT-FOUND-404";
const VAL: &str = "VAL-422";
const MISSING: &str = "00000000-0000-4000-8000-00000000beef";

/// A v2 graph of about `bytes` serialized bytes.
fn graph_of(bytes: usize) -> Value {
    let nodes: Vec<Value> = (0..bytes / 1000)
        .map(|i| json!({"id": format!("{i}-{}", "n".repeat(990))}))
        .collect();
    json!({"nodes": nodes, "edges": []})
}

fn run(roadmap: &str, budget: &Value) -> Value {
    json!({"roadmap_id": roadmap, "task_type": "plan", "prompt": "p", "budget_usd": budget})
}

#[rustfmt::skip]
fn ids_and_filters() -> Vec<Row> {
    let mut rows = vec![
        row("GET", "/api/v1/roadmaps/1'%20OR%20'1'='1", 404, NF).no_query(),
        row("GET", "/api/v1/roadmaps/..%2F..%2Fetc%2Fpasswd", 404, NF).no_query(),
        row("GET", "/api/v2/roadmaps/%2e%2e%2f%2e%2e%2fetc%2fpasswd/logs", 404, NF).no_query(),
        row("GET", "/api/v1/roadmaps/1;DROP%20TABLE%20roadmaps/insights", 404, NF).no_query(),
        row("PATCH", "/api/v1/roadmaps/not-a-uuid", 404, NF).json(json!({"title": "x"})).no_query(),
        row("PUT", "/api/v2/roadmaps/%00", 404, NF).json(json!({"title": "x", "graph": {"nodes": [], "edges": []}})).no_query(),
        row("DELETE", "/api/v1/roadmaps/00000000-0000-4000-8000-00000000000g", 404, NF).no_query(),
        row("POST", "/api/v1/roadmaps/0%20OR%201=1/thrive-score", 404, NF).no_query(),
        row("GET", "/api/v1/snippets/1%20UNION%20SELECT%20*%20FROM%20users", 404, NF).no_query(),
        row("GET", "/api/v2/snippets/..%2F..%2Fetc%2Fpasswd", 404, NF).no_query(),
        row("DELETE", "/api/v1/admin/api-keys/1';DROP%20TABLE%20api_keys;--", 404, NF).by(Who::Admin).no_query(),
        row("POST", "/api/v1/admin/api-keys/..%2F..%2F/rotate", 404, NF).by(Who::Admin).no_query(),
        row("GET", format!("/api/v1/roadmaps/{MISSING}"), 404, NF),
        row("GET", "/api/v1/roadmaps?status=active'--", 422, VAL),
        row("GET", "/api/v1/roadmaps?status=ACTIVE", 422, VAL),
        row("GET", "/api/v1/snippets?category=ui%22;DROP", 422, VAL),
        row("GET", "/api/v2/snippets?category=ui%27%20OR%20%271%27=%271", 422, VAL),
        row("GET", "/api/v1/snippets?language=x%00y", 422, VAL),
        row("GET", format!("/api/v1/snippets?category={}", "a".repeat(51)), 422, VAL),
        row("GET", "/api/v1/admin/api-keys?user_id=1%20OR%201=1", 422, VAL).by(Who::Admin),
    ];
    let forged = crate::routes::cursor::hex;
    for q in ["limit=0", "limit=101", "limit=-5", "limit=abc", "limit=1e2", "limit=99999999999999999999", "offset=-1", "offset=abc", "cursor=abc"] {
        rows.push(row("GET", format!("/api/v1/roadmaps?{q}"), 422, VAL));
        rows.push(row("GET", format!("/api/v1/roadmaps/{{own}}/logs?{q}"), 422, VAL));
    }
    for q in [
        "offset=0".to_owned(),
        "cursor=!!!".to_owned(),
        format!("cursor={}", "A".repeat(500)),
        format!("cursor={}", forged("1:' OR 1=1 --")),
        format!("cursor={}", forged("1:../../etc/passwd")),
        format!("cursor={}", forged(&format!("x:{MISSING}"))),
    ] {
        rows.push(row("GET", format!("/api/v2/roadmaps?{q}"), 422, VAL));
        rows.push(row("GET", format!("/api/v2/snippets?{q}"), 422, VAL));
        rows.push(row("GET", format!("/api/v2/roadmaps/{{own}}/insights?{q}"), 422, VAL));
    }
    rows.push(row("GET", "/api/v2/admin/api-keys?cursor=%27", 422, VAL).by(Who::Admin));
    rows
}

#[rustfmt::skip]
fn bodies() -> Vec<Row> {
    let ok_graph = json!({"nodes": [{"id": "a"}], "edges": []});
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let big_text = json!({"nodes": (0..60).map(|i| json!({"id": format!("{i}{}", "x".repeat(1000))})).collect::<Vec<_>>(), "edges": []}).to_string();
    let post = |path: &'static str| row("POST", path, 422, VAL);
    vec![
        post("/api/v1/roadmaps").raw(Some("application/json"), r#"{"title":"#).error("", "invalid_json"),
        post("/api/v1/roadmaps").raw(Some("application/json"), r#"{"title":"t"} {"title":"u"}"#),
        post("/api/v1/roadmaps").raw(Some("application/json"), "[1,2]"),
        post("/api/v1/roadmaps").raw(Some("application/json"), r#""just a string""#),
        post("/api/v1/roadmaps").raw(Some("application/json"), ""),
        post("/api/v1/roadmaps").raw(Some("application/json"), b"\xff\xfe{}".to_vec()),
        post("/api/v1/roadmaps").raw(Some("application/json"), deep).error("", "too_deep"),
        post("/api/v1/batch").raw(Some("application/json"), format!("{}{}", "{\"a\":".repeat(10_000), "}".repeat(10_000))).error("", "too_deep"),
        post("/api/v1/roadmaps").json(json!({"title": 5, "json_graph": "{}"})),
        post("/api/v2/roadmaps").json(json!({"title": "t", "graph": ok_graph, "vibe_mode": "yes"})),
        post("/api/v2/roadmaps").json(json!({"title": "t", "graph": ok_graph, "tags": [1]})),
        post("/api/v2/roadmaps").json(json!({"title": "t", "graph": ok_graph, "status": "deleted"})),
        post("/api/v2/roadmaps").json(json!({"title": "t", "graph": ok_graph, "user_id": "00000000-0000-4000-8000-000000000003"})),
        post("/api/v2/roadmaps").json(json!({"title": "t", "graph": ok_graph, "thrive_score": 1.0})),
        post("/api/v2/roadmaps").json(json!({"title": "   ", "graph": ok_graph})),
        post("/api/v2/roadmaps").json(json!({"title": "t", "graph": {"nodes": [{"id": "a"}, {"id": "a"}], "edges": []}})),
        post("/api/v2/roadmaps").json(json!({"title": "t", "graph": {"nodes": [{"id": "a"}], "edges": [{"from": "a", "to": "zz"}]}})),
        post("/api/v2/roadmaps").json(json!({"title": "t", "graph": {"nodes": {"id": "a"}, "edges": []}})),
        post("/api/v2/roadmaps").json(json!({"title": "t", "graph": [1, 2]})),
        post("/api/v2/roadmaps").json(json!({"title": "60 KB", "graph": graph_of(60_000)})).error("graph", "too_large"),
        post("/api/v1/roadmaps").json(json!({"title": "60 KB", "json_graph": big_text})).error("json_graph", "too_large"),
        post("/api/v1/roadmaps").json(json!({"title": "t", "json_graph": "{\"nodes\": ["})),
        row("PATCH", "/api/v1/roadmaps/{own}", 422, VAL).json(json!({})).error("", "empty_update"),
        row("PATCH", "/api/v2/roadmaps/{own}", 422, VAL).json(json!({"title": null, "graph": null})).error("", "empty_update"),
        row("PATCH", "/api/v2/roadmaps/{own}", 422, VAL).json(json!({"graph": graph_of(60_000)})).error("graph", "too_large"),
        row("PUT", "/api/v2/roadmaps/{own}", 422, VAL).json(json!({"title": "no graph"})),
        row("POST", "/api/v1/roadmaps", 413, "VAL-413").raw(Some("application/json"), format!(r#"{{"title":"{}"}}"#, "x".repeat(70 * 1024))),
        row("PATCH", "/api/v1/roadmaps/{own}", 413, "VAL-413").raw(Some("application/json"), vec![b' '; 65 * 1024 + 1]),
        row("POST", "/api/v1/roadmaps", 415, "VAL-415").raw(Some("text/plain"), r#"{"title":"t"}"#),
        row("POST", "/api/v1/roadmaps", 415, "VAL-415").raw(Some("application/xml"), "<roadmap/>"),
        row("POST", "/api/v1/auth/login", 415, "VAL-415").raw(Some("application/x-www-form-urlencoded"), "email=a&password=b").by(Who::Anonymous),
        row("POST", "/api/v1/roadmaps", 415, "VAL-415").raw(Some("application/jsonp"), "{}"),
        row("POST", "/api/v1/roadmaps", 415, "VAL-415").raw(None, r#"{"title":"t"}"#),
        row("POST", "/api/v1/agent/run", 402, "COST-402").json(run("{own}", &json!(0))),
        row("POST", "/api/v1/agent/run", 402, "COST-402").json(run("{own}", &json!(-1))),
        row("POST", "/api/v1/agent/run", 402, "COST-402").json(run("{own}", &json!(-0.0))),
        row("POST", "/api/v1/agent/run", 402, "COST-402").json(run("{own}", &json!(5.01))),
        row("POST", "/api/v1/agent/run", 402, "COST-402").json(run("{own}", &json!(1e9))),
        row("POST", "/api/v2/agent/run", 422, VAL).json(run("{own}", &json!("1"))),
        row("POST", "/api/v2/agent/run", 422, VAL).json(run("1' OR '1'='1", &json!(1))),
        row("POST", "/api/v2/agent/run", 404, NF).json(run(MISSING, &json!(1))),
        row("POST", "/api/v1/agent-logs", 422, VAL).by(Who::Engineer).json(json!({"roadmap_id": "' OR 1=1 --", "task_type": "plan", "status": "success", "model_used": "m", "token_count": 1})),
        row("POST", "/api/v1/agent-logs", 422, VAL).by(Who::Engineer).json(json!({"roadmap_id": MISSING, "task_type": "plan", "status": "success", "model_used": "m", "token_count": 0})),
        row("POST", "/api/v1/agent-logs", 422, VAL).by(Who::Engineer).json(json!({"roadmap_id": MISSING, "task_type": "plan;DROP", "status": "success", "model_used": "m", "token_count": 1})),
        row("POST", "/api/v1/agent-logs", 404, NF).by(Who::Engineer).json(json!({"roadmap_id": MISSING, "task_type": "plan", "status": "success", "model_used": "m", "token_count": 1})),
        row("POST", "/api/v2/insights", 422, VAL).by(Who::Engineer).json(json!({"roadmap_id": MISSING, "type": "speed", "score": 0.5, "trend": "stable"})),
        row("POST", "/api/v2/insights", 422, VAL).by(Who::Engineer).json(json!({"roadmap_id": MISSING, "type": "cost", "score": 1.5, "trend": "stable"})),
        row("POST", "/api/v1/snippets", 422, VAL).by(Who::Engineer).json(json!({"category": "ui", "title": "x", "code": "x", "language": "js", "ui_preview_url": "javascript:alert(1)"})),
        row("POST", "/api/v1/auth/register", 422, VAL).by(Who::Anonymous).json(json!({"email": "a@b.c'; DROP TABLE users; --", "password": "Strong-Pass-123!", "name": "x"})).error("email", "email"),
        row("POST", "/api/v1/auth/login", 401, "AUTH-401").by(Who::Anonymous).json(json!({"email": "' OR '1'='1' --", "password": "' OR '1'='1"})),
        row("POST", "/api/v1/auth/refresh", 401, "AUTH-401").by(Who::Anonymous).json(json!({"refresh_token": "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0."})),
        row("POST", "/api/v1/batch", 422, VAL).json(json!({"requests": vec![json!({"method": "GET", "path": "/api/v1/health"}); 21]})),
        row("POST", "/api/v1/batch", 422, VAL).json(json!({"requests": []})),
        row("POST", "/api/v1/batch", 422, VAL).json(json!({"requests": {"method": "GET"}})),
    ]
}

#[rustfmt::skip]
fn versions_headers_and_routes() -> Vec<Row> {
    let anon = |path: &'static str, status: u16, code: &'static str| {
        row("GET", path, status, code).by(Who::Anonymous)
    };
    vec![
        anon("/api/v3/roadmaps", 404, "ROUTE-404"),
        anon("/api/v0/health", 404, "ROUTE-404"),
        anon("/api/v99999999999/health", 404, "ROUTE-404"),
        anon("/api/health", 404, "ROUTE-404").header("api-version", "7"),
        anon("/api/health", 404, "ROUTE-404").header("api-version", "' OR 1=1"),
        anon("/api/health", 404, "ROUTE-404").header("accept", "application/vnd.protothrive.v9+json"),
        anon("/api/v1/roadmaps", 401, "AUTH-401").header("authorization", "Bearer ' OR '1'='1"),
        anon("/api/v1/roadmaps", 401, "AUTH-401").header("authorization", "Bearer a.b.c"),
        anon("/api/v1/roadmaps", 401, "AUTH-401").header("authorization", format!("Bearer {}", "A".repeat(6000))),
        anon("/api/v1/roadmaps", 401, "AUTH-401").header("authorization", "Basic YWRtaW46YWRtaW4="),
        anon("/api/v1/roadmaps", 401, "AUTH-401").header("authorization", "ApiKey ../../etc/passwd"),
        anon("/api/v1/roadmaps", 401, "AUTH-401").header("x-api-key", "' OR 1=1 --"),
        // An unsigned token naming the admin.
        anon("/api/v1/admin/api-keys", 401, "AUTH-401").header(
            "authorization",
            "Bearer eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJzdWIiOiIwMDAwMDAwMC0wMDAwLTQwMDAtODAwMC0wMDAwMDAwMDAwMDMiLCJpc3MiOiJwcm90b3Rocml2ZSIsImF1ZCI6InByb3RvdGhyaXZlLWFwaSIsImV4cCI6NDEwMjQ0NDgwMCwianRpIjoieCJ9.",
        ),
        row("GET", "/api/v1/nowhere", 404, "ROUTE-404"),
        row("GET", "/api/v1/roadmaps/{own}/nowhere", 404, "ROUTE-404"),
        row("DELETE", "/api/v1/snippets", 405, "ROUTE-405"),
    ]
}

/// Every hostile row gets its status and code, as a well-formed problem, and never a 500.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_requests_get_their_documented_problem() {
    let server = shared(&SERVER);
    let [vibe, eng, admin] = demo_tokens(&server).await;
    let own = roadmap(&server, &vibe, "target", "private").await;
    let before = get(&server, &format!("/api/v2/roadmaps/{own}"), &vibe).await;
    let mut rows = ids_and_filters();
    rows.extend(bodies());
    rows.extend(versions_headers_and_routes());
    for r in &rows {
        let path = r.path.replace("{own}", &own);
        let auth = match r.who {
            Who::Anonymous => Auth::None,
            Who::Vibe => Auth::Bearer(&vibe),
            Who::Engineer => Auth::Bearer(&eng),
            Who::Admin => Auth::Bearer(&admin),
        };
        let mut builder = req(&server, r.method, &path, auth);
        for (k, v) in &r.headers {
            builder = builder.header(*k, v);
        }
        let body = match &r.body {
            Body::None => String::new(),
            Body::Json(v) => v.to_string().replace("{own}", &own),
            Body::Raw(ct, bytes) => {
                if let Some(ct) = ct {
                    builder = builder.header("content-type", *ct);
                }
                builder = builder.body(bytes.clone());
                String::new()
            }
        };
        if !body.is_empty() {
            builder = builder
                .header("content-type", "application/json")
                .body(body);
        }
        let what = format!(
            "{} {} {:?}",
            r.method,
            r.path.chars().take(120).collect::<String>(),
            r.who
        );
        // The depth and size checks come before any parsing: even these answer at once.
        let a = tokio::time::timeout(std::time::Duration::from_secs(5), send(builder))
            .await
            .unwrap_or_else(|_| panic!("{what}: no answer in 5 s"));
        assert!(a.status < 500, "{what}: {} {}", a.status, a.body);
        assert_problem(&a, r.status, r.code, &what);
        assert_common_headers(&a, &what);
        if let Some((field, code)) = r.error {
            assert_eq!(
                (&a.body["errors"][0]["field"], &a.body["errors"][0]["code"]),
                (&json!(field), &json!(code)),
                "{what}: {}",
                a.body
            );
        }
        if r.no_query {
            assert_eq!(
                query_count(&a, &what),
                0,
                "{what}: a non-UUID id reached the database"
            );
        }
    }
    // The roadmap every row aimed at is as it was, and the service answers as before.
    let after = get(&server, &format!("/api/v2/roadmaps/{own}"), &vibe).await;
    for field in ["title", "graph", "status", "visibility", "updated_at"] {
        assert_eq!(
            after.body["data"][field], before.body["data"][field],
            "{field} changed"
        );
    }
    assert_eq!(get(&server, "/api/v1/roadmaps", &vibe).await.status, 200);
    assert!(
        !crate::api::login(&server, crate::support::ADMIN)
            .await
            .is_empty()
    );
}

/// SQL in values is data: it is stored and answered verbatim, and the tables are still there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_in_values_is_stored_verbatim() {
    let server = shared(&SERVER);
    let [vibe, eng, _] = demo_tokens(&server).await;
    let title = "'); DROP TABLE roadmaps; --";
    let tags = json!(["\" OR \"\"=\"", "1; SELECT * FROM users"]);
    let a = call(&server, "POST", "/api/v2/roadmaps", &vibe, &json!({"title": title, "description": "' OR 1=1 --", "tags": tags, "graph": {"nodes": [{"id": "'; DELETE FROM users; --"}], "edges": []}})).await;
    assert_eq!(a.status, 201, "{}", a.body);
    let id = a.body["data"]["id"].as_str().expect("id").to_owned();
    let back = get(&server, &format!("/api/v2/roadmaps/{id}"), &vibe).await;
    assert_eq!(
        (&back.body["data"]["title"], &back.body["data"]["tags"]),
        (&json!(title), &tags)
    );
    assert_eq!(
        back.body["data"]["graph"]["nodes"][0]["id"],
        "'; DELETE FROM users; --"
    );
    let snippet = call(&server, "POST", "/api/v1/snippets", &eng, &json!({"category": "ui", "title": "' UNION SELECT password_hash FROM users --", "code": "x", "language": "sql"})).await;
    assert_eq!(snippet.status, 201, "{}", snippet.body);
    let list = get(&server, "/api/v1/snippets?language=sql", &vibe).await;
    assert_eq!(
        list.body["data"][0]["title"],
        "' UNION SELECT password_hash FROM users --"
    );
    assert!(!list.body.to_string().contains("argon2"), "no hash leaked");
    assert_eq!(
        get(&server, "/api/v1/roadmaps", &vibe).await.status,
        200,
        "roadmaps still exist"
    );
}

/// A batch may not contain a batch, however its path is spelled; the batch's other items run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_items_may_not_be_batches_or_leave_the_api() {
    let server = shared(&SERVER);
    let [vibe, ..] = demo_tokens(&server).await;
    for path in [
        "/api/v1/batch",
        "/api/batch",
        "/api/v2/BATCH",
        "/api/v1/%62atch",
        "/api/v1/%2562atch",
        "/api/v1/snippets/../batch",
        "/api//batch",
        "/metrics",
        "http://evil.example/api/v1/health",
        "//evil.example/api/v1/health",
        "/api/v1/../../etc/passwd",
    ] {
        let body = json!({"requests": [
            {"method": "POST", "path": path, "body": {"requests": [{"method": "GET", "path": "/api/v1/health"}]}},
            {"method": "GET", "path": "/api/v1/health"},
        ]});
        let a = call(&server, "POST", "/api/v1/batch", &vibe, &body).await;
        assert_eq!(a.status, 200, "{path}: {}", a.body);
        let items = a.body["data"].as_array().expect("items");
        assert_eq!(items.len(), 2, "{path}");
        assert_eq!(
            (&items[0]["status"], &items[0]["body"]["code"]),
            (&json!(400), &json!("VAL-400")),
            "{path}: {}",
            items[0]
        );
        assert_eq!(items[1]["status"], 200, "{path}: the other item ran");
    }
}
