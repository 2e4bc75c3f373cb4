//! The cache's RFC corners end to end: a scripted origin that writes raw HTTP/1.1 (so it can send
//! a 103, a 304 with any fields, or close the connection), the gateway in front of it, a real
//! client. Staleness comes from the `Age` the origin sends, never from waiting.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{Gateway, client};

/// What the origin does for one request.
enum Reply {
    /// These bytes, as they are.
    Raw(String),
    /// Close the connection without an answer.
    Close,
}

/// A response: the status line's rest and the fields (`"200 OK\r\nname: value"`), then the body,
/// with its `Content-Length` (none for a 304).
fn res(head: &str, body: &str) -> Reply {
    let length = if head.starts_with("304") {
        String::new()
    } else {
        format!("content-length: {}\r\n", body.len())
    };
    Reply::Raw(format!("HTTP/1.1 {head}\r\n{length}\r\n{body}"))
}

type Script = dyn Fn(&str, &str, usize) -> Reply + Send + Sync;

/// An origin on loopback answering by `script(method, path, nth request for the path)`; returns
/// its base URL and the request counts by path.
async fn scripted(
    script: impl Fn(&str, &str, usize) -> Reply + Send + Sync + 'static,
) -> (String, Arc<Mutex<HashMap<String, usize>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let counts = Arc::new(Mutex::new(HashMap::<String, usize>::new()));
    let script: Arc<Script> = Arc::new(script);
    let seen = counts.clone();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let (script, seen) = (script.clone(), seen.clone());
            tokio::spawn(async move {
                let mut buf = Vec::new();
                loop {
                    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                        let mut chunk = [0u8; 4096];
                        match stream.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                        continue;
                    };
                    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
                    buf.drain(..end + 4);
                    let mut first = head.split_whitespace();
                    let (method, path) = (first.next().unwrap_or(""), first.next().unwrap_or(""));
                    let n = {
                        let mut seen = seen.lock().unwrap();
                        let n = seen.entry(path.to_owned()).or_default();
                        *n += 1;
                        *n
                    };
                    match script(method, path, n) {
                        Reply::Close => return,
                        Reply::Raw(mut text) => {
                            if method == "HEAD"
                                && let Some(at) = text.rfind("\r\n\r\n")
                            {
                                text.truncate(at + 4);
                            }
                            if stream.write_all(text.as_bytes()).await.is_err() {
                                return;
                            }
                        }
                    }
                }
            });
        }
    });
    (base, counts)
}

fn calls(counts: &Mutex<HashMap<String, usize>>, path: &str) -> usize {
    counts.lock().unwrap().get(path).copied().unwrap_or(0)
}

/// The status, `Cache-Status`, fields and body of `method path` with `headers`.
async fn send(
    gw: &Gateway,
    method: reqwest::Method,
    path: &str,
    headers: &[(&str, &str)],
) -> (u16, String, reqwest::header::HeaderMap, String) {
    let mut req = client().request(method, gw.url(path));
    for (n, v) in headers {
        req = req.header(*n, *v);
    }
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    let fields = res.headers().clone();
    let cache = fields
        .get("cache-status")
        .map_or(String::new(), |v| v.to_str().unwrap().to_owned());
    (status, cache, fields, res.text().await.unwrap())
}

async fn get(
    gw: &Gateway,
    path: &str,
    headers: &[(&str, &str)],
) -> (u16, String, reqwest::header::HeaderMap, String) {
    send(gw, reqwest::Method::GET, path, headers).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn targeted_cache_control_governs_the_gateways_cache() {
    let (up, counts) = scripted(|_, path, n| match path {
        "/cdn" => res(
            "200 OK\r\ncache-control: no-store\r\ncdn-cache-control: max-age=60",
            &format!("cdn #{n}"),
        ),
        "/ours" => res(
            "200 OK\r\nprotothrive-cache-control: no-store\r\ncdn-cache-control: max-age=60",
            &format!("ours #{n}"),
        ),
        _ => res(
            "200 OK\r\ncache-control: no-store\r\ncdn-cache-control: Max-Age=60",
            &format!("bad #{n}"),
        ),
    })
    .await;
    let gw = Gateway::start(&["--upstream", &up, "--rate", "off"]);
    let (_, first, _, _) = get(&gw, "/cdn", &[]).await;
    assert!(first.contains("stored"), "{first}");
    let (_, status, fields, body) = get(&gw, "/cdn", &[]).await;
    assert!(status.contains("; hit"), "{status}");
    assert_eq!(body, "cdn #1");
    assert_eq!(
        fields["cache-control"], "no-store",
        "downstream caches still told no-store"
    );
    // Invalid dictionary: ignored whole, Cache-Control's no-store governs.
    get(&gw, "/bad", &[]).await;
    assert_eq!(get(&gw, "/bad", &[]).await.3, "bad #2");
    // The product's own field first on the list: its no-store wins over CDN-Cache-Control.
    let ours = Gateway::start(&[
        "--upstream",
        &up,
        "--rate",
        "off",
        "--cache-target",
        "Protothrive-Cache-Control",
        "--cache-target",
        "CDN-Cache-Control",
    ]);
    get(&ours, "/ours", &[]).await;
    assert_eq!(get(&ours, "/ours", &[]).await.3, "ours #2");
    // The default list does not know it: CDN-Cache-Control governs there.
    get(&gw, "/ours", &[]).await;
    assert_eq!(get(&gw, "/ours", &[]).await.3, "ours #3");
    assert_eq!(calls(&counts, "/cdn"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn head_updates_or_invalidates_the_stored_get_through_the_gateway() {
    const STALE: &str = "200 OK\r\ncache-control: max-age=60\r\nage: 100\r\netag: \"v1\"\r\nx-v: 1";
    let (up, counts) = scripted(|method, path, n| match (method, path, n) {
        ("HEAD", "/same", _) => res(
            "200 OK\r\ncache-control: max-age=60\r\netag: \"v1\"\r\nx-v: 2",
            "hello",
        ),
        ("HEAD", _, _) => res(
            "200 OK\r\ncache-control: max-age=60\r\netag: \"v2\"",
            "other",
        ),
        (_, _, 1) => res(STALE, "hello"),
        _ => res(
            "200 OK\r\ncache-control: max-age=60\r\netag: \"v2\"",
            "fresh",
        ),
    })
    .await;
    let gw = Gateway::start(&["--upstream", &up, "--rate", "off"]);
    for path in ["/same", "/changed"] {
        let (_, status, _, _) = get(&gw, path, &[]).await;
        assert!(status.contains("stored"), "{path}: {status}");
        let (code, status, _, _) = send(&gw, reqwest::Method::HEAD, path, &[]).await;
        assert_eq!(code, 200);
        assert!(
            status.contains("fwd=stale; fwd-status=200"),
            "{path}: {status}"
        );
    }
    // Same validator and length: the stored GET took the HEAD's fields and freshness.
    let (_, status, fields, body) = get(&gw, "/same", &[]).await;
    assert!(status.contains("; hit"), "{status}");
    assert_eq!(
        (fields["x-v"].to_str().unwrap(), body.as_str()),
        ("2", "hello")
    );
    // Another validator: the stored GET is gone, the origin asked again.
    let (_, status, _, body) = get(&gw, "/changed", &[]).await;
    assert!(status.contains("fwd=uri-miss"), "{status}");
    assert_eq!(body, "fresh");
    assert_eq!(
        (calls(&counts, "/same"), calls(&counts, "/changed")),
        (2, 3)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ranges_are_cut_from_the_stored_200_through_the_gateway() {
    let (up, counts) = scripted(|_, _, _| {
        res(
            "200 OK\r\ncache-control: max-age=60\r\netag: \"v1\"",
            "0123456789",
        )
    })
    .await;
    let gw = Gateway::start(&["--upstream", &up, "--rate", "off"]);
    get(&gw, "/r", &[]).await;
    let (code, status, fields, body) = get(&gw, "/r", &[("range", "bytes=2-4")]).await;
    assert_eq!((code, body.as_str()), (206, "234"), "{status}");
    assert_eq!(fields["content-range"], "bytes 2-4/10");
    let (code, _, fields, body) = get(&gw, "/r", &[("range", "bytes=20-")]).await;
    assert_eq!(code, 416);
    assert_eq!(fields["content-range"], "bytes */10");
    assert!(body.contains("CACHE-416"), "{body}");
    let (code, _, _, body) =
        get(&gw, "/r", &[("range", "bytes=0-1"), ("if-range", "\"v0\"")]).await;
    assert_eq!((code, body.as_str()), (200, "0123456789"));
    let (code, _, _, body) =
        get(&gw, "/r", &[("range", "bytes=0-1"), ("if-range", "\"v1\"")]).await;
    assert_eq!((code, body.as_str()), (206, "01"));
    assert_eq!(calls(&counts, "/r"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cookies_listed_fields_and_interim_responses_through_the_gateway() {
    let (up, counts) = scripted(|_, path, n| match path {
        "/listed" => res(
            "200 OK\r\ncache-control: max-age=60, private=\"set-cookie\", no-cache=\"x-token\"\r\n\
             set-cookie: s=1\r\nx-token: t1",
            "listed",
        ),
        "/cookie" => res(
            "200 OK\r\ncache-control: max-age=60\r\nset-cookie: s=2",
            &format!("cookie #{n}"),
        ),
        _ => {
            let Reply::Raw(last) = res(
                "200 OK\r\ncache-control: max-age=60",
                &format!("hinted #{n}"),
            ) else {
                unreachable!()
            };
            Reply::Raw(format!(
                "HTTP/1.1 103 Early Hints\r\nlink: </a.css>\r\n\r\n{last}"
            ))
        }
    })
    .await;
    let gw = Gateway::start(&["--upstream", &up, "--rate", "off"]);
    let (_, _, first, _) = get(&gw, "/listed", &[]).await;
    assert_eq!(
        (
            first["set-cookie"].to_str().unwrap(),
            first["x-token"].to_str().unwrap()
        ),
        ("s=1", "t1"),
        "the fetching client's"
    );
    let (_, status, next, _) = get(&gw, "/listed", &[]).await;
    assert!(status.contains("; hit"), "{status}");
    assert!(
        !next.contains_key("set-cookie") && !next.contains_key("x-token"),
        "{next:?}"
    );
    // An unlisted Set-Cookie: never stored, every client asks the origin and gets its own.
    for n in 1..=2 {
        let (_, _, fields, body) = get(&gw, "/cookie", &[]).await;
        assert_eq!(
            (fields["set-cookie"].to_str().unwrap(), body),
            ("s=2", format!("cookie #{n}"))
        );
    }
    // The 103 before the final 200 is not what is stored.
    get(&gw, "/hinted", &[]).await;
    let (code, status, fields, body) = get(&gw, "/hinted", &[]).await;
    assert_eq!((code, body.as_str()), (200, "hinted #1"), "{status}");
    assert!(!fields.contains_key("link"));
    assert_eq!(calls(&counts, "/listed"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_entries_when_the_origin_closes_the_connection() {
    let (up, _) = scripted(|_, path, n| {
        if n > 1 {
            return Reply::Close;
        }
        let cc = match path {
            "/lenient" => "max-age=60, stale-if-error=600",
            "/strict" => "max-age=60, must-revalidate, stale-if-error=600",
            _ => "s-maxage=60, stale-if-error=600",
        };
        res(
            &format!("200 OK\r\ncache-control: {cc}\r\nage: 100\r\netag: \"v1\""),
            "old",
        )
    })
    .await;
    let gw = Gateway::start(&["--upstream", &up, "--rate", "off"]);
    for path in ["/lenient", "/strict", "/shared"] {
        get(&gw, path, &[]).await;
    }
    let (code, status, _, body) = get(&gw, "/lenient", &[]).await;
    assert_eq!((code, body.as_str()), (200, "old"));
    assert!(status.contains("detail=stale-if-error"), "{status}");
    for path in ["/strict", "/shared"] {
        let (code, _, _, body) = get(&gw, path, &[]).await;
        assert_eq!(code, 502, "{path}: refused, never the stale entry");
        assert!(body.contains("UPSTREAM-502"), "{body}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_304_updates_the_stored_fields_through_the_gateway() {
    let (up, counts) = scripted(|_, _, n| match n {
        1 => res(
            "200 OK\r\ncache-control: max-age=60\r\nage: 100\r\netag: \"v1\"\r\nx-old: 1",
            "body",
        ),
        _ => res(
            "304 Not Modified\r\netag: \"v1\"\r\ncache-control: max-age=600\r\nage: 30\r\nx-new: 1",
            "",
        ),
    })
    .await;
    let gw = Gateway::start(&["--upstream", &up, "--rate", "off"]);
    get(&gw, "/n", &[]).await;
    let (code, status, fields, body) = get(&gw, "/n", &[]).await;
    assert_eq!((code, body.as_str()), (200, "body"));
    assert!(status.contains("fwd-status=304"), "{status}");
    assert_eq!(
        (
            fields["x-old"].to_str().unwrap(),
            fields["x-new"].to_str().unwrap()
        ),
        ("1", "1")
    );
    let age: u64 = fields["age"].to_str().unwrap().parse().unwrap();
    assert!((30..40).contains(&age), "the 304's Age counts: {age}");
    let (_, status, fields, _) = get(&gw, "/n", &[]).await;
    assert!(status.contains("; hit"), "{status}");
    assert_eq!(fields["cache-control"], "max-age=600");
    assert_eq!(calls(&counts, "/n"), 2);
}
