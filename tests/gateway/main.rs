//! The gateway example as a real process in front of a scripted origin on loopback: every method,
//! path, query and body forwarded; hop-by-hop headers dropped; the client in `X-Forwarded-For`;
//! the rate limit in front; a dead origin is a `502` problem.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod cache_rfc;
mod cluster;
mod upstreams;

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, Uri};
use serde_json::{Value, json};

#[path = "../support/mod.rs"]
mod support;

use support::client;
use support::process::{example_binary, listening};

/// The gateway example as a process, killed when this drops.
struct Gateway {
    child: Child,
    base: String,
}

impl Gateway {
    fn start(args: &[&str]) -> Self {
        let mut child = Command::new(example_binary("gateway"))
            .args(["--listen", "127.0.0.1:0"])
            .args(args)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn the gateway");
        let base = listening(&mut child);
        Self { child, base }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An origin that echoes what it received, and counts calls; `/fresh` answers with a minute of
/// freshness, `/mine` with `private`.
async fn origin() -> (String, Arc<AtomicUsize>) {
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    let counted = |cc: &'static str, calls: Arc<AtomicUsize>| {
        move || {
            let n = calls.fetch_add(1, Ordering::SeqCst) + 1;
            async move { ([("cache-control", cc)], format!("answer #{n}")) }
        }
    };
    let app = axum::Router::new()
        .route(
            "/fresh",
            axum::routing::get(counted("max-age=60", calls.clone())).post(|| async { "posted" }),
        )
        .route(
            "/mine",
            axum::routing::get(counted("private, max-age=60", calls.clone())),
        )
        // Reflects the host it was told of, in a response the cache may share.
        .route(
            "/reflect",
            axum::routing::get(|headers: HeaderMap| async move {
                let host = headers
                    .get("x-forwarded-host")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned();
                (
                    [("cache-control", "max-age=60")],
                    format!("link to http://{host}/"),
                )
            }),
        )
        // Behind a cache of its own, which said what it did in `Cache-Status`.
        .route(
            "/behind/private",
            axum::routing::get(|| async {
                let cs = "protothrive; hit; ttl=30";
                (
                    [
                        ("cache-control", "private, max-age=60"),
                        ("cache-status", cs),
                    ],
                    "mine",
                )
            }),
        )
        .route(
            "/behind/shared",
            axum::routing::get(|| async {
                let cs = "protothrive; fwd=uri-miss; stored";
                (
                    [("cache-control", "max-age=60"), ("cache-status", cs)],
                    "ours",
                )
            }),
        )
        .route(
            "/stall",
            axum::routing::get(|| async {
                (
                    [("cache-control", "max-age=60")],
                    axum::body::Body::new(Stall),
                )
            }),
        )
        .fallback(
            move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
                let counter = counter.clone();
                async move {
                    counter.fetch_add(1, Ordering::SeqCst);
                    let h = |n: &str| {
                        headers
                            .get(n)
                            .and_then(|v| v.to_str().ok())
                            .map(str::to_owned)
                    };
                    axum::Json(json!({
                        "method": method.as_str(),
                        "uri": uri.to_string(),
                        "body": String::from_utf8_lossy(&body),
                        "host": h("host"),
                        "xff": h("x-forwarded-for"),
                        "forwarded": h("forwarded"),
                        "x_real_ip": h("x-real-ip"),
                        "x_forwarded_host": h("x-forwarded-host"),
                        "secret": h("x-secret"),
                        "te": h("te"),
                    }))
                }
            },
        );
    let addr = support::serve(app).await;
    (format!("http://{addr}"), calls)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_method_path_query_and_body_is_forwarded() {
    let (up, _) = origin().await;
    let gw = Gateway::start(&["--upstream", &format!("{up}/base"), "--rate", "off"]);
    for method in ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"] {
        let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let res = client()
            .request(m, gw.url("/a/b%20c?x=1&y=%2F"))
            .header("x-forwarded-for", "203.0.113.9")
            .header("connection", "x-secret")
            .header("x-secret", "hop")
            .body(format!("body of {method}"))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "{method}");
        let echo: Value = res.json().await.unwrap();
        assert_eq!(echo["method"], method);
        assert_eq!(echo["uri"], "/base/a/b%20c?x=1&y=%2F");
        assert_eq!(echo["body"], format!("body of {method}"));
        // The upstream's authority, the client's host kept aside, the peer appended.
        assert_eq!(echo["host"], up.trim_start_matches("http://"));
        assert_eq!(
            echo["x_forwarded_host"],
            gw.base.trim_start_matches("http://")
        );
        // The peer is no trusted proxy: it is the client, whatever it claims, on every method.
        assert_eq!(echo["xff"], "127.0.0.1", "{method}");
        assert_eq!(echo["forwarded"], "for=127.0.0.1", "{method}");
        // Named by Connection: a hop-by-hop header, dropped.
        assert_eq!(echo["secret"], Value::Null);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rate_limit_answers_429_before_the_origin() {
    let (up, calls) = origin().await;
    let gw = Gateway::start(&["--upstream", &up, "--rate", "2/min burst 2"]);
    let mut statuses = Vec::new();
    for _ in 0..3 {
        let res = client().get(gw.url("/x")).send().await.unwrap();
        statuses.push(res.status().as_u16());
        if res.status() == 429 {
            assert_eq!(res.headers()["content-type"], "application/problem+json");
            assert_eq!(res.headers()["ratelimit-policy"], r#""ip";q=2;w=60"#);
        }
    }
    assert_eq!(statuses, [200, 200, 429]);
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_origin_is_a_502_problem() {
    // A port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let gw = Gateway::start(&["--upstream", &format!("http://127.0.0.1:{port}")]);
    let res = client().get(gw.url("/")).send().await.unwrap();
    assert_eq!(res.status(), 502);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["code"], "UPSTREAM-502");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cache_answers_fresh_responses_and_a_write_purges_them() {
    let (up, calls) = origin().await;
    let gw = Gateway::start(&["--upstream", &up, "--rate", "off"]);
    let get = |path: &'static str| {
        let url = gw.url(path);
        async move {
            let res = client().get(url).send().await.unwrap();
            let status = res.headers()["cache-status"].to_str().unwrap().to_owned();
            (res.text().await.unwrap(), status)
        }
    };
    let (body, status) = get("/fresh").await;
    assert_eq!(body, "answer #1");
    assert!(status.contains("stored"), "{status}");
    let (body, status) = get("/fresh").await;
    assert_eq!(body, "answer #1");
    assert!(status.contains("; hit"), "{status}");
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    // A private answer is not a shared cache's to keep.
    assert_eq!(get("/mine").await.0, "answer #2");
    assert_eq!(get("/mine").await.0, "answer #3");
    // A successful POST to the URI invalidates it (RFC 9111 §4.4).
    let posted = client().post(gw.url("/fresh")).send().await.unwrap();
    assert_eq!(posted.status(), 200);
    assert_eq!(get("/fresh").await.0, "answer #4");
}

/// The gateway's cache adds its member to the `Cache-Status` of the cache behind it (RFC 9211:
/// after it, the origin's side first), under a name of its own, on a response it passes through
/// as on one it stores and then answers from.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_status_lists_the_cache_behind_then_the_gateways() {
    let (up, _) = origin().await;
    let gw = Gateway::start(&["--upstream", &up, "--rate", "off"]);
    let status = |path: &'static str| {
        let url = gw.url(path);
        async move {
            let res = client().get(url).send().await.unwrap();
            let lines = res.headers().get_all("cache-status").iter().count();
            assert_eq!(lines, 1, "{path}: one field line");
            res.headers()["cache-status"].to_str().unwrap().to_owned()
        }
    };
    assert_eq!(
        status("/behind/private").await,
        "protothrive; hit; ttl=30, protothrive-gateway; fwd=uri-miss; fwd-status=200"
    );
    let stored = status("/behind/shared").await;
    assert!(
        stored.starts_with(
            "protothrive; fwd=uri-miss; stored, protothrive-gateway; fwd=uri-miss; fwd-status=200; ttl="
        ),
        "{stored}"
    );
    let hit = status("/behind/shared").await;
    assert!(
        hit.starts_with("protothrive; fwd=uri-miss; stored, protothrive-gateway; hit; ttl="),
        "{hit}"
    );
    // With no cache behind: the gateway's member alone.
    let alone = status("/fresh").await;
    assert!(
        alone.starts_with("protothrive-gateway; fwd=uri-miss"),
        "{alone}"
    );
}

/// A body that never sends a frame.
struct Stall;

impl http_body::Body for Stall {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        std::task::Poll::Pending
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_origin_body_is_cut_and_never_holds_the_cache() {
    let (up, _) = origin().await;
    let gw = Gateway::start(&["--upstream", &up, "--rate", "off", "--timeout", "1"]);
    // Two callers of one URL: the first buffers the stalled body, the second waits behind it;
    // both get an answer once the body timeout cuts it.
    let (a, b) = tokio::join!(
        client().get(gw.url("/stall")).send(),
        client().get(gw.url("/stall")).send()
    );
    for res in [a.unwrap(), b.unwrap()] {
        assert_eq!(res.status(), 502);
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["code"], "CACHE-502");
    }
}

/// What the origin echoed of `method /echo` sent through `gw` with `headers`.
async fn echo_of(gw: &Gateway, method: &reqwest::Method, headers: &[(&str, &str)]) -> Value {
    let mut req = client().request(method.clone(), gw.url("/echo"));
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    req.send().await.unwrap().json().await.unwrap()
}

/// Behind a trusted balancer, the upstream gets the client the balancer named and then the
/// balancer, on cacheable requests as on writes; a direct client's own `Forwarded`,
/// `X-Forwarded-For` and `X-Real-IP` never reach the upstream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_resolved_client_chain_is_forwarded() {
    let (up, _) = origin().await;
    let behind = Gateway::start(&[
        "--upstream",
        &up,
        "--rate",
        "off",
        "--trusted-proxy",
        "127.0.0.0/8",
    ]);
    let direct = Gateway::start(&["--upstream", &up, "--rate", "off"]);
    for method in [reqwest::Method::GET, reqwest::Method::POST] {
        let echo = echo_of(&behind, &method, &[("x-forwarded-for", "198.51.100.7")]).await;
        assert_eq!(echo["xff"], "198.51.100.7, 127.0.0.1", "{method}");
        assert_eq!(
            echo["forwarded"], "for=198.51.100.7, for=127.0.0.1",
            "{method}"
        );
        let spoofed = [
            ("forwarded", "for=192.0.2.66"),
            ("x-forwarded-for", "192.0.2.66"),
            ("x-real-ip", "192.0.2.66"),
        ];
        let echo = echo_of(&direct, &method, &spoofed).await;
        assert_eq!(
            (&echo["xff"], &echo["forwarded"], &echo["x_real_ip"]),
            (&json!("127.0.0.1"), &json!("for=127.0.0.1"), &Value::Null),
            "{method}"
        );
    }
}

/// Sends raw HTTP/1.1 bytes and returns the whole answer as text.
async fn raw(base: &str, request: String) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(base.trim_start_matches("http://"))
        .await
        .unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.unwrap();
    String::from_utf8_lossy(&answer).into_owned()
}

/// An absolute-form request whose `Host` names another host cannot poison the shared entry of
/// the target: the target's authority is the host the upstream is told of, so what the origin
/// reflects matches the key it is stored under. Two `Host` fields are refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_absolute_form_request_cannot_poison_the_cache() {
    let (up, _) = origin().await;
    let gw = Gateway::start(&["--upstream", &up, "--rate", "off"]);
    let authority = gw.base.trim_start_matches("http://").to_owned();
    let poison = raw(
        &gw.base,
        format!(
            "GET http://{authority}/reflect HTTP/1.1\r\nHost: evil.example\r\n\
             Connection: close\r\n\r\n"
        ),
    )
    .await;
    assert!(poison.starts_with("HTTP/1.1 200"), "{poison}");
    assert!(!poison.contains("evil.example"), "{poison}");
    let res = client().get(gw.url("/reflect")).send().await.unwrap();
    let status = res.headers()["cache-status"].to_str().unwrap().to_owned();
    assert!(status.contains("; hit"), "{status}");
    assert_eq!(
        res.text().await.unwrap(),
        format!("link to http://{authority}/")
    );

    let twice = raw(
        &gw.base,
        "GET /reflect HTTP/1.1\r\nHost: a.example\r\nHost: b.example\r\nConnection: close\r\n\r\n"
            .to_owned(),
    )
    .await;
    assert!(twice.starts_with("HTTP/1.1 400"), "{twice}");
    assert!(twice.contains("VAL-400"), "{twice}");
}
