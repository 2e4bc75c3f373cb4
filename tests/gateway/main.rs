//! The gateway example as a real process in front of a scripted origin on loopback: every method,
//! path, query and body forwarded; hop-by-hop headers dropped; the client in `X-Forwarded-For`;
//! the rate limit in front; a dead origin is a `502` problem.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, Uri};
use serde_json::{Value, json};

/// The example's binary, built on demand (a no-op when `cargo test --all-targets` built it).
fn binary() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let profile_dir = exe.parent().and_then(|d| d.parent()).expect("target dir");
    static BUILT: std::sync::Once = std::sync::Once::new();
    BUILT.call_once(|| {
        let status = Command::new(env!("CARGO"))
            .args(["build", "--quiet", "--example", "gateway"])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .expect("cargo build --example gateway");
        assert!(status.success(), "building the gateway failed");
    });
    profile_dir.join("examples").join("gateway")
}

struct Gateway {
    child: Child,
    base: String,
}

impl Gateway {
    fn start(args: &[&str]) -> Self {
        let mut child = Command::new(binary())
            .args(["--listen", "127.0.0.1:0"])
            .args(args)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn the gateway");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let base = loop {
            let line = lines.next().expect("the gateway exited").unwrap();
            if let Some(rest) = line.split("listening on ").nth(1) {
                break rest.split_whitespace().next().unwrap().to_owned();
            }
        };
        std::thread::spawn(move || for _ in lines {});
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
                        "x_forwarded_host": h("x-forwarded-host"),
                        "secret": h("x-secret"),
                        "te": h("te"),
                    }))
                }
            },
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}"), calls)
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(std::time::Duration::from_secs(20))
        .build()
        .unwrap()
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
        // A cacheable request reaches the origin without the client's forwarding headers (the
        // cache does not key on them, so a reflected value could be served to others); the
        // gateway adds the peer it saw.
        let xff = if method == "GET" {
            "127.0.0.1"
        } else {
            "203.0.113.9, 127.0.0.1"
        };
        assert_eq!(echo["xff"], xff, "{method}");
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
