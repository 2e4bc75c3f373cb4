//! What the end-to-end tests share beyond `support`: one server per test file, fresh users, requests
//! with credentials, and the contract's checks of every answer (common headers, the success
//! envelope, problem bodies).

use std::sync::{Arc, LazyLock, Mutex, PoisonError, Weak};
use std::time::Duration;

use serde_json::{Value, json};

use crate::example::Server;
use crate::support::Url;
use crate::support::{ADMIN, Answer, DEMO, ENGINEER, PASSWORD, send};

/// Every client of these tests is 127.0.0.1: the contract's default limits (60/min per IP,
/// 5 registrations per 15 min) would answer 429 to most of a table. The limiter still runs;
/// rate limits are not what these tests are about. (The syntax is the load tests'.)
pub(crate) const LOOSE_LIMITS: &str = "ip=1000000/60s:100000,user=1000000/60s:100000,\
     api_key=1000000/60s:100000,login=1000000/300s:100000,register=1000000/900s:100000";

/// A test file's server slot: `static SERVER: Slot = slot();`.
pub(crate) type Slot = Mutex<Weak<Server>>;

/// An empty [`Slot`].
pub(crate) const fn slot() -> Slot {
    Mutex::new(Weak::new())
}

/// The file's server, started on first use and shared by the tests that run meanwhile. It stops
/// when the last of them drops it (a `static` server would outlive the test binary as an orphan
/// process). Tests on a shared server never depend on its state: each works on users and records
/// of its own.
pub(crate) fn shared(slot: &'static Slot) -> Arc<Server> {
    let mut weak = slot.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(server) = weak.upgrade() {
        return server;
    }
    let server = Arc::new(Server::start_with(&[(
        "PROTOTHRIVE_RATE_LIMITS",
        LOOSE_LIMITS,
    )]));
    *weak = Arc::downgrade(&server);
    server
}

/// How a request authenticates.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Auth<'a> {
    None,
    Bearer(&'a str),
    /// `Authorization: ApiKey <key>`.
    ApiKey(&'a str),
    /// `X-API-Key: <key>`.
    XApiKey(&'a str),
}

/// One client for every test: building one costs tens of milliseconds (TLS roots), more than
/// most requests here. Without idle pooling it holds no connection (nor the task serving one) of a
/// test's runtime past that test.
static HTTP: LazyLock<reqwest::Client> = LazyLock::new(|| {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .pool_max_idle_per_host(0)
        .build()
        .expect("client")
});

/// A request to `path` (with any `/api/...` prefix it needs) as `auth`.
pub(crate) fn req(
    server: &impl Url,
    method: &str,
    path: &str,
    auth: Auth<'_>,
) -> reqwest::RequestBuilder {
    let method = reqwest::Method::from_bytes(method.as_bytes()).expect("a method");
    let r = HTTP.request(method, server.url(path));
    match auth {
        Auth::None => r,
        Auth::Bearer(t) => r.bearer_auth(t),
        Auth::ApiKey(k) => r.header("authorization", format!("ApiKey {k}")),
        Auth::XApiKey(k) => r.header("x-api-key", k),
    }
}

/// `GET path` as the holder of `token`.
pub(crate) async fn get(server: &impl Url, path: &str, token: &str) -> Answer {
    send(req(server, "GET", path, Auth::Bearer(token))).await
}

/// `method path` with a JSON body as the holder of `token`.
pub(crate) async fn call(
    server: &impl Url,
    method: &str,
    path: &str,
    token: &str,
    body: &Value,
) -> Answer {
    send(req(server, method, path, Auth::Bearer(token)).json(body)).await
}

/// A fresh email address (tests on a shared server never meet each other's users).
pub(crate) fn fresh_email(tag: &str) -> String {
    format!(
        "{tag}-{}@e2e.protothrive.dev",
        uuid::Uuid::new_v4().simple()
    )
}

/// A user registered for one test.
#[derive(Debug, Clone)]
pub(crate) struct User {
    pub id: String,
    pub email: String,
    pub access: String,
    pub refresh: String,
}

/// Registers a fresh vibe_coder.
pub(crate) async fn register(server: &impl Url, tag: &str) -> User {
    let email = fresh_email(tag);
    let a = send(
        req(server, "POST", "/api/v1/auth/register", Auth::None).json(&json!({
            "email": email, "password": PASSWORD, "name": tag,
        })),
    )
    .await;
    assert_eq!(a.status, 201, "register {email}: {}", a.body);
    User {
        id: text(&a.body["data"]["user"]["id"]),
        email,
        access: text(&a.body["data"]["tokens"]["access_token"]),
        refresh: text(&a.body["data"]["tokens"]["refresh_token"]),
    }
}

/// Logs in and returns the access token.
pub(crate) use crate::support::login;

/// The demo users' tokens: vibe_coder, engineer, super_admin.
pub(crate) async fn demo_tokens(server: &impl Url) -> [String; 3] {
    let (v, e, a) = tokio::join!(
        login(server, DEMO),
        login(server, ENGINEER),
        login(server, ADMIN)
    );
    [v, e, a]
}

/// A JSON string's value (panics with the value otherwise).
pub(crate) fn text(v: &Value) -> String {
    v.as_str()
        .unwrap_or_else(|| panic!("expected a string, got {v}"))
        .to_owned()
}

/// A small valid graph.
pub(crate) fn graph() -> Value {
    json!({"nodes": [{"id": "a"}, {"id": "b"}], "edges": [{"from": "a", "to": "b"}]})
}

/// Creates a roadmap (v2 body) and returns its id.
pub(crate) async fn roadmap(
    server: &impl Url,
    token: &str,
    title: &str,
    visibility: &str,
) -> String {
    let a = call(
        server,
        "POST",
        "/api/v2/roadmaps",
        token,
        &json!({"title": title, "graph": graph(), "visibility": visibility}),
    )
    .await;
    assert_eq!(a.status, 201, "create roadmap {title}: {}", a.body);
    text(&a.body["data"]["id"])
}

/// The headers every answer carries: `X-Request-Id`, a W3C `traceparent`, security headers.
pub(crate) fn assert_common_headers(a: &Answer, what: &str) {
    let rid = a.header("x-request-id");
    assert!(
        !rid.is_empty() && rid.len() <= 64 && rid.bytes().all(|b| b.is_ascii_graphic()),
        "{what}: X-Request-Id {rid:?}"
    );
    let trace =
        trace_id(a).unwrap_or_else(|| panic!("{what}: traceparent {:?}", a.header("traceparent")));
    assert_eq!(trace.len(), 32, "{what}: trace id {trace}");
    assert_eq!(a.header("x-content-type-options"), "nosniff", "{what}");
    for name in [
        "x-frame-options",
        "referrer-policy",
        "content-security-policy",
    ] {
        assert!(!a.header(name).is_empty(), "{what}: no {name}");
    }
}

/// The trace id of a well-formed `traceparent` (`00-<32 hex>-<16 hex>-<2 hex>`, ids not zero).
pub(crate) fn trace_id(a: &Answer) -> Option<String> {
    let parts: Vec<&str> = a.header("traceparent").split('-').collect();
    let hex = |s: &str, n: usize| {
        s.len() == n
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
            && s.bytes().any(|b| b != b'0')
    };
    (parts.len() == 4
        && parts[0] == "00"
        && hex(parts[1], 32)
        && hex(parts[2], 16)
        && parts[3].len() == 2)
        .then(|| parts[1].to_owned())
}

/// `API-Version`, and the deprecation headers v1 carries and v2 does not.
pub(crate) fn assert_version_headers(a: &Answer, version: &str, what: &str) {
    assert_eq!(a.header("api-version"), version, "{what}: API-Version");
    if version == "v1" {
        assert!(
            a.header("deprecation").starts_with('@'),
            "{what}: Deprecation"
        );
        assert!(
            httpdate_like(a.header("sunset")),
            "{what}: Sunset {:?}",
            a.header("sunset")
        );
        let link = a.header("link");
        assert!(
            link.contains("/api/v2") && link.contains("rel=\"successor-version\""),
            "{what}: Link {link:?}"
        );
    } else {
        for name in ["deprecation", "sunset"] {
            assert!(a.headers.get(name).is_none(), "{what}: {name} on {version}");
        }
    }
}

/// An IMF-fixdate (`Fri, 01 Jan 2027 00:00:00 GMT`).
fn httpdate_like(s: &str) -> bool {
    chrono::DateTime::parse_from_rfc2822(s).is_ok() && s.ends_with(" GMT")
}

/// An RFC 3339 timestamp.
pub(crate) fn assert_rfc3339(v: &Value, what: &str) {
    let s = v.as_str().unwrap_or_default();
    let at = chrono::DateTime::parse_from_rfc3339(s)
        .unwrap_or_else(|e| panic!("{what}: {v} is not RFC 3339: {e}"));
    assert_eq!(
        at.offset().local_minus_utc(),
        0,
        "{what}: {v} is not in UTC"
    );
}

/// Every time in `v` (members named `timestamp` or `*_at`) is RFC 3339 or null ("timestamps are
/// RFC 3339 everywhere" in v2).
pub(crate) fn assert_times_rfc3339(v: &Value, what: &str) {
    match v {
        Value::Array(items) => items.iter().for_each(|i| assert_times_rfc3339(i, what)),
        Value::Object(map) => {
            for (k, v) in map {
                if (k == "timestamp" || k.ends_with("_at")) && !v.is_null() {
                    assert_rfc3339(v, &format!("{what}: {k}"));
                } else {
                    assert_times_rfc3339(v, what);
                }
            }
        }
        _ => {}
    }
}

/// `{"data": ..., "meta": {...}, "version": "<version>", "timestamp": "<RFC 3339>"}`.
pub(crate) fn assert_envelope(a: &Answer, version: &str, what: &str) {
    let b = &a.body;
    assert!(
        b.get("data").is_some() && b["meta"].is_object(),
        "{what}: not an envelope: {b}"
    );
    assert_eq!(b["version"], version, "{what}: envelope version");
    assert_rfc3339(&b["timestamp"], what);
    if version == "v2" {
        assert_times_rfc3339(&b["data"], what);
    }
    assert!(
        a.header("content-type").starts_with("application/json"),
        "{what}: content-type {:?}",
        a.header("content-type")
    );
}

/// A problem answer: the status, `application/problem+json`, the stable `code`, and the
/// `request_id`/`trace_id` of this very response; a 422 lists its per-field `errors`.
pub(crate) fn assert_problem(a: &Answer, status: u16, code: &str, what: &str) {
    assert_eq!(a.status, status, "{what}: status ({})", a.body);
    assert!(
        a.header("content-type")
            .starts_with("application/problem+json"),
        "{what}: content-type {:?}",
        a.header("content-type")
    );
    let b = &a.body;
    assert_eq!(a.code(), code, "{what}: code ({b})");
    assert_eq!(b["status"], status, "{what}: status member");
    for member in ["type", "title", "detail"] {
        assert!(b[member].is_string(), "{what}: no {member} in {b}");
    }
    assert_eq!(
        b["request_id"],
        a.header("x-request-id"),
        "{what}: request_id"
    );
    assert_eq!(
        b["trace_id"].as_str(),
        trace_id(a).as_deref(),
        "{what}: trace_id"
    );
    if status == 401 {
        assert!(
            !a.header("www-authenticate").is_empty(),
            "{what}: 401 without WWW-Authenticate"
        );
    }
    if code == "VAL-422" {
        let errors = b["errors"].as_array().cloned().unwrap_or_default();
        assert!(!errors.is_empty(), "{what}: a 422 without errors: {b}");
        for e in &errors {
            assert!(
                e["field"].is_string() && e["code"].is_string() && e["message"].is_string(),
                "{what}: field error {e}"
            );
        }
    }
}

/// The statement count the app reports for a request (`X-Query-Count`).
pub(crate) fn query_count(a: &Answer, what: &str) -> u32 {
    a.header("x-query-count")
        .parse()
        .unwrap_or_else(|_| panic!("{what}: no X-Query-Count header"))
}
