//! The contract's conventions on every answer: `X-Request-Id`, `traceparent` and security headers
//! whatever the outcome; success envelopes; problem bodies naming their own request.

use serde_json::json;

use crate::api::{
    Auth, Slot, assert_common_headers, assert_envelope, assert_problem, assert_version_headers,
    demo_tokens, req, shared, slot, trace_id,
};
use crate::support::{Answer, send};

static SERVER: Slot = slot();

/// One request of the table: what it is, and what the answer is.
struct Row {
    what: &'static str,
    method: &'static str,
    path: &'static str,
    auth: bool,
    body: Option<(&'static str, Vec<u8>)>,
    status: u16,
    /// `Some(code)` for a problem; `None` for a success.
    code: Option<&'static str>,
    /// The version that served it (`None`: refused before negotiation).
    version: Option<&'static str>,
}

const fn row(
    what: &'static str,
    method: &'static str,
    path: &'static str,
    status: u16,
    code: Option<&'static str>,
    version: Option<&'static str>,
) -> Row {
    Row {
        what,
        method,
        path,
        auth: true,
        body: None,
        status,
        code,
        version,
    }
}

impl Row {
    fn body(mut self, content_type: &'static str, bytes: Vec<u8>) -> Self {
        self.body = Some((content_type, bytes));
        self
    }

    fn json(self, v: &serde_json::Value) -> Self {
        self.body("application/json", v.to_string().into_bytes())
    }

    fn anonymous(mut self) -> Self {
        self.auth = false;
        self
    }
}

/// Successes and failures of every kind carry the same headers; successes are envelopes and
/// failures problems that name the request they answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_answer_carries_ids_trace_and_security_headers() {
    let server = shared(&SERVER);
    let [token, ..] = demo_tokens(&server).await;
    let (v1, v2) = (Some("v1"), Some("v2"));
    let (e401, e403, e404, e422) = (
        Some("AUTH-401"),
        Some("AUTH-403"),
        Some("ROUTE-404"),
        Some("VAL-422"),
    );
    let missing = "/api/v1/roadmaps/00000000-0000-4000-8000-00000000dead";
    let run = json!({
        "roadmap_id": "00000000-0000-4000-8000-000000000001",
        "task_type": "plan", "prompt": "p", "budget_usd": 0
    });
    let rows = [
        row("health", "GET", "/api/v1/health", 200, None, v1),
        row("v2 status", "GET", "/api/v2/status", 200, None, v2),
        row("list", "GET", "/api/v1/roadmaps", 200, None, v1),
        row("snippets", "GET", "/api/v2/snippets", 200, None, v2),
        row("me", "GET", "/api/v1/auth/me", 200, None, v1),
        row("created", "POST", "/api/v2/roadmaps", 201, None, v2)
            .json(&json!({"title": "t", "graph": {"nodes": [], "edges": []}})),
        row("no route", "GET", "/api/v1/nowhere", 404, e404, v1),
        row("unknown version", "GET", "/api/v9/health", 404, e404, None),
        row(
            "no such roadmap",
            "GET",
            missing,
            404,
            Some("NOT-FOUND-404"),
            v1,
        ),
        row("anonymous", "GET", "/api/v2/roadmaps", 401, e401, v2).anonymous(),
        row(
            "forbidden",
            "GET",
            "/api/v1/analytics/dashboard",
            403,
            e403,
            v1,
        ),
        row(
            "budget",
            "POST",
            "/api/v1/agent/run",
            402,
            Some("COST-402"),
            v1,
        )
        .json(&run),
        row("query", "GET", "/api/v1/roadmaps?limit=0", 422, e422, v1),
        row("validation", "POST", "/api/v1/roadmaps", 422, e422, v1).json(&json!({"title": "t"})),
        row(
            "media type",
            "POST",
            "/api/v1/roadmaps",
            415,
            Some("VAL-415"),
            v1,
        )
        .body("text/plain", b"hello".to_vec()),
        row(
            "too large",
            "POST",
            "/api/v1/roadmaps",
            413,
            Some("VAL-413"),
            v1,
        )
        .body("application/json", vec![b' '; 64 * 1024 + 1]),
    ];
    for r in &rows {
        let mut builder = req(
            &server,
            r.method,
            r.path,
            if r.auth {
                Auth::Bearer(&token)
            } else {
                Auth::None
            },
        );
        if let Some((ct, bytes)) = &r.body {
            builder = builder.header("content-type", *ct).body(bytes.clone());
        }
        let a = send(builder).await;
        assert_common_headers(&a, r.what);
        match r.code {
            Some(code) => assert_problem(&a, r.status, code, r.what),
            None => {
                assert_eq!(a.status, r.status, "{}: {}", r.what, a.body);
                assert_envelope(&a, r.version.unwrap_or("v1"), r.what);
            }
        }
        match r.version {
            Some(v) => assert_version_headers(&a, v, r.what),
            None => assert!(a.headers.get("api-version").is_none(), "{}", r.what),
        }
    }

    // Unversioned routes carry the same headers.
    let metrics = send(req(&server, "GET", "/metrics", Auth::None)).await;
    assert_eq!(metrics.status, 200);
    assert_common_headers(&metrics, "metrics");
    assert!(metrics.header("content-type").starts_with("text/plain"));
}

/// A sane client request id is kept (answer header and problem body); a hostile one is replaced.
/// A client's `traceparent` keeps its trace id; the answer names a span of its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_ids_and_trace_context_are_propagated_or_replaced() {
    let server = shared(&SERVER);
    let fetch = |rid: &str, tp: Option<&str>| {
        let mut r = req(&server, "GET", "/api/v1/roadmaps", Auth::None).header("x-request-id", rid);
        if let Some(tp) = tp {
            r = r.header("traceparent", tp);
        }
        send(r)
    };
    // `Some(kept)`: whether the id must be kept; `None`: either, as long as the answer's is sane.
    let long = "x".repeat(200);
    for (rid, kept) in [
        ("client-abc-123", Some(true)),
        ("0af7651916cd43dd8448eb211c80319c", Some(true)),
        (long.as_str(), Some(false)),
        ("has space", Some(false)),
        ("ünïcode", Some(false)),
        ("<script>alert(1)</script>", None),
    ] {
        let a: Answer = fetch(rid, None).await;
        assert_problem(&a, 401, "AUTH-401", rid);
        assert_common_headers(&a, rid);
        if let Some(kept) = kept {
            assert_eq!(a.header("x-request-id") == rid, kept, "request id {rid:?}");
        }
    }

    let incoming = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let a = fetch("trace-test", Some(incoming)).await;
    assert_eq!(
        trace_id(&a).as_deref(),
        Some("4bf92f3577b34da6a3ce929d0e0e4736")
    );
    assert_ne!(
        a.header("traceparent"),
        incoming,
        "the answer's span is its own"
    );
    assert_eq!(a.body["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");
    for bad in [
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
        "garbage",
    ] {
        let a = fetch("trace-bad", Some(bad)).await;
        let id = trace_id(&a).expect("a fresh, valid traceparent");
        assert!(!bad.contains(&id), "{bad}: a malformed trace id was kept");
    }
}

/// Two requests never share an id, and each problem names the request it answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_request_has_its_own_id() {
    let server = shared(&SERVER);
    let mut seen = std::collections::HashSet::new();
    for _ in 0..20 {
        let a = send(req(&server, "GET", "/api/v2/auth/me", Auth::None)).await;
        assert_problem(&a, 401, "AUTH-401", "me without credentials");
        assert!(
            seen.insert(a.header("x-request-id").to_owned()),
            "a repeated request id"
        );
    }
}
