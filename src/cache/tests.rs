//! The layer against a scripted origin: RFC behaviours as a table, then coalescing, partitions,
//! cookies, poisoning, validation, stale handling, invalidation and the L2 tier.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use tower::util::BoxCloneService;
use tower::{Layer, ServiceExt, service_fn};

use super::*;
use crate::clock::ManualClock;

type Res = Response<Full<Bytes>>;
type Svc = BoxCloneService<Request<()>, Res, BoxError>;

/// What the origin saw and how often.
#[derive(Clone, Default)]
struct Seen {
    calls: Arc<AtomicUsize>,
    requests: Arc<Mutex<Vec<HeaderMap>>>,
}

impl Seen {
    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
    fn last(&self) -> HeaderMap {
        self.requests.lock().unwrap().last().cloned().unwrap()
    }
}

fn origin<F>(f: F) -> (Svc, Seen)
where
    F: Fn(&Request<()>, usize) -> Result<Res, BoxError> + Clone + Send + Sync + 'static,
{
    let seen = Seen::default();
    let s = seen.clone();
    let svc = service_fn(move |req: Request<()>| {
        let n = s.calls.fetch_add(1, Ordering::SeqCst) + 1;
        s.requests.lock().unwrap().push(req.headers().clone());
        let r = f(&req, n);
        async move { r }
    });
    (BoxCloneService::new(svc), seen)
}

fn resp(status: u16, headers: &[(&str, &str)], body: &str) -> Res {
    let mut b = Response::builder().status(status);
    for (n, v) in headers {
        b = b.header(*n, *v);
    }
    b.body(Full::new(Bytes::from(body.to_owned()))).unwrap()
}

fn get(headers: &[(&str, &str)]) -> Request<()> {
    let mut b = Request::get("/r").header("host", "api.example.com");
    for (n, v) in headers {
        b = b.header(*n, *v);
    }
    b.body(()).unwrap()
}

struct Fixture {
    svc: Cache<Svc>,
    seen: Seen,
    clock: ManualClock,
    handle: CacheHandle,
}

fn fixture_with<F>(builder: CacheLayerBuilder, f: F) -> Fixture
where
    F: Fn(&Request<()>, usize) -> Result<Res, BoxError> + Clone + Send + Sync + 'static,
{
    let clock = ManualClock::default();
    let layer = builder.clock(Arc::new(clock.clone())).build().unwrap();
    let (svc, seen) = origin(f);
    Fixture {
        handle: layer.handle(),
        svc: layer.layer(svc),
        seen,
        clock,
    }
}

fn fixture<F>(f: F) -> Fixture
where
    F: Fn(&Request<()>, usize) -> Result<Res, BoxError> + Clone + Send + Sync + 'static,
{
    fixture_with(CacheLayer::builder(), f)
}

async fn send(svc: &Cache<Svc>, req: Request<()>) -> (StatusCode, HeaderMap, Bytes) {
    let res = svc.clone().oneshot(req).await.unwrap();
    let (parts, body) = res.into_parts();
    (
        parts.status,
        parts.headers,
        body.collect().await.unwrap().to_bytes(),
    )
}

fn cache_status(h: &HeaderMap) -> &str {
    h.get("cache-status").map_or("", |v| v.to_str().unwrap())
}

const DATE: &str = "Tue, 14 Nov 2023 22:13:20 GMT"; // ManualClock::default()

#[tokio::test]
async fn rfc_behaviours() {
    type Case<'a> = (
        &'a str,
        &'a [(&'a str, &'a str)], // response headers
        &'a [(&'a str, &'a str)], // first request headers
        u64,                      // seconds between the requests
        &'a [(&'a str, &'a str)], // second request headers
        usize,                    // origin calls
        &'a str,                  // second Cache-Status starts with
    );
    let cases: &[Case<'_>] = &[
        (
            "fresh hit",
            &[("cache-control", "max-age=60")],
            &[],
            10,
            &[],
            1,
            "protothrive; hit; ttl=50",
        ),
        (
            "stale without validator",
            &[("cache-control", "max-age=60")],
            &[],
            61,
            &[],
            2,
            "protothrive; fwd=stale",
        ),
        (
            "no-store",
            &[("cache-control", "no-store, max-age=60")],
            &[],
            0,
            &[],
            2,
            "protothrive; fwd=uri-miss",
        ),
        (
            "private without partition",
            &[("cache-control", "private, max-age=60")],
            &[],
            0,
            &[],
            2,
            "protothrive; fwd=uri-miss",
        ),
        (
            "request no-store",
            &[("cache-control", "max-age=60")],
            &[("cache-control", "no-store")],
            0,
            &[],
            2,
            "protothrive; fwd=uri-miss",
        ),
        (
            "request no-cache",
            &[("cache-control", "max-age=60")],
            &[],
            0,
            &[("cache-control", "no-cache")],
            2,
            "protothrive; fwd=request",
        ),
        (
            "request max-age=0",
            &[("cache-control", "max-age=60")],
            &[],
            1,
            &[("cache-control", "max-age=0")],
            2,
            "protothrive; fwd=request",
        ),
        (
            "request min-fresh",
            &[("cache-control", "max-age=60")],
            &[],
            50,
            &[("cache-control", "min-fresh=20")],
            2,
            "protothrive; fwd=request",
        ),
        (
            "request max-stale",
            &[("cache-control", "max-age=60")],
            &[],
            70,
            &[("cache-control", "max-stale=20")],
            1,
            "protothrive; hit; ttl=-10",
        ),
        (
            "max-stale vs must-revalidate",
            &[("cache-control", "max-age=60, must-revalidate")],
            &[],
            70,
            &[("cache-control", "max-stale")],
            2,
            "protothrive; fwd=stale",
        ),
        (
            "s-maxage wins for a shared cache",
            &[("cache-control", "max-age=600, s-maxage=10")],
            &[],
            11,
            &[],
            2,
            "protothrive; fwd=stale",
        ),
        (
            "Expires",
            &[("date", DATE), ("expires", "Tue, 14 Nov 2023 22:14:20 GMT")],
            &[],
            59,
            &[],
            1,
            "protothrive; hit; ttl=1",
        ),
        (
            "heuristic",
            &[
                ("date", DATE),
                ("last-modified", "Tue, 14 Nov 2023 12:13:20 GMT"),
            ],
            &[],
            3599,
            &[],
            1,
            "protothrive; hit; ttl=1",
        ),
        (
            "no heuristic for 302",
            &[
                ("date", DATE),
                ("last-modified", "Tue, 14 Nov 2023 12:13:20 GMT"),
                ("location", "/b"),
            ],
            &[],
            0,
            &[],
            2,
            "protothrive; fwd=uri-miss",
        ),
        (
            "Age from upstream counts",
            &[("cache-control", "max-age=60"), ("age", "55")],
            &[],
            6,
            &[],
            2,
            "protothrive; fwd=stale",
        ),
        (
            "authorization, plain",
            &[("cache-control", "max-age=60")],
            &[("authorization", "Bearer a")],
            0,
            &[("authorization", "Bearer a")],
            2,
            "protothrive; fwd=uri-miss",
        ),
        (
            "authorization, public",
            &[("cache-control", "public, max-age=60")],
            &[("authorization", "Bearer a")],
            0,
            &[("authorization", "Bearer b")],
            1,
            "protothrive; hit",
        ),
        (
            "vary, same value",
            &[("cache-control", "max-age=60"), ("vary", "Accept")],
            &[("accept", "text/html")],
            0,
            &[("accept", "text/html")],
            1,
            "protothrive; hit",
        ),
        (
            "vary, other value",
            &[("cache-control", "max-age=60"), ("vary", "Accept")],
            &[("accept", "text/html")],
            0,
            &[("accept", "application/json")],
            2,
            "protothrive; fwd=vary-miss",
        ),
        (
            "vary star",
            &[("cache-control", "max-age=60"), ("vary", "*")],
            &[],
            0,
            &[],
            2,
            "protothrive; fwd=uri-miss",
        ),
        (
            "only-if-cached, stored",
            &[("cache-control", "max-age=60")],
            &[],
            1,
            &[("cache-control", "only-if-cached")],
            1,
            "protothrive; hit",
        ),
        (
            "only-if-cached, stale",
            &[("cache-control", "max-age=60")],
            &[],
            61,
            &[("cache-control", "only-if-cached")],
            1,
            "protothrive; fwd=request; detail=only-if-cached",
        ),
        (
            "500 with max-age",
            &[("cache-control", "max-age=60")],
            &[],
            0,
            &[],
            1,
            "protothrive; hit",
        ),
        (
            "too big",
            &[("cache-control", "max-age=60"), ("x-big", "1")],
            &[],
            0,
            &[],
            2,
            "protothrive; fwd=uri-miss",
        ),
    ];
    for (name, res_h, first, wait, second, calls, status) in cases {
        let res_h: Vec<(String, String)> = res_h
            .iter()
            .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
            .collect();
        let f = fixture_with(CacheLayer::builder().max_body(8), move |req, _| {
            let h: Vec<(&str, &str)> = res_h
                .iter()
                .map(|(a, b)| (a.as_str(), b.as_str()))
                .collect();
            let body = if h.iter().any(|(n, _)| *n == "x-big") {
                "0123456789"
            } else {
                "body"
            };
            let status = if h.iter().any(|(n, _)| *n == "location") {
                302
            } else {
                200
            };
            let _ = req;
            Ok(resp(status, &h, body))
        });
        let (_, h1, _) = send(&f.svc, get(first)).await;
        assert!(!h1.contains_key("surrogate-key"), "{name}");
        f.clock.advance(Duration::from_secs(*wait));
        let (code, h2, _) = send(&f.svc, get(second)).await;
        assert_eq!(f.seen.calls(), *calls, "{name}: origin calls");
        assert!(
            cache_status(&h2).starts_with(status),
            "{name}: {}",
            cache_status(&h2)
        );
        if status.contains("only-if-cached") {
            assert_eq!(code, StatusCode::GATEWAY_TIMEOUT, "{name}");
        }
    }
}

#[tokio::test]
async fn revalidates_with_etag_and_merges_the_304() {
    let f = fixture(|req, n| {
        if n > 1 {
            assert_eq!(req.headers()["if-none-match"], "\"v1\"");
            return Ok(resp(
                304,
                &[
                    ("etag", "\"v1\""),
                    ("cache-control", "max-age=120"),
                    ("x-new", "yes"),
                ],
                "",
            ));
        }
        Ok(resp(
            200,
            &[
                ("etag", "\"v1\""),
                ("cache-control", "max-age=60"),
                ("content-type", "text/plain"),
            ],
            "hello",
        ))
    });
    send(&f.svc, get(&[])).await;
    f.clock.advance(Duration::from_secs(61));
    let (code, h, body) = send(&f.svc, get(&[])).await;
    assert_eq!((code, &body[..]), (StatusCode::OK, &b"hello"[..]));
    assert_eq!(
        cache_status(&h),
        "protothrive; fwd=stale; fwd-status=304; ttl=120; stored"
    );
    assert_eq!(h["x-new"], "yes");
    assert_eq!(h["content-type"], "text/plain");
    f.clock.advance(Duration::from_secs(100));
    let (_, h, _) = send(&f.svc, get(&[])).await;
    assert_eq!(cache_status(&h), "protothrive; hit; ttl=20");
    assert_eq!(f.seen.calls(), 2);
}

#[tokio::test]
async fn answers_the_clients_own_conditionals_with_304() {
    let f = fixture(|_, _| {
        Ok(resp(
            200,
            &[
                ("etag", "W/\"v1\""),
                ("cache-control", "max-age=60"),
                ("last-modified", "Tue, 14 Nov 2023 12:13:20 GMT"),
            ],
            "hello",
        ))
    });
    // The miss itself: the client's conditional is kept from the origin and answered here.
    let (code, _, _) = send(&f.svc, get(&[("if-none-match", "\"v1\"")])).await;
    assert_eq!(code, StatusCode::NOT_MODIFIED);
    assert!(!f.seen.last().contains_key("if-none-match"));
    let (code, h, body) = send(&f.svc, get(&[("if-none-match", "\"v0\", W/\"v1\"")])).await;
    assert_eq!(code, StatusCode::NOT_MODIFIED);
    assert!(body.is_empty());
    assert_eq!(h["etag"], "W/\"v1\"");
    let (code, _, _) = send(&f.svc, get(&[("if-modified-since", DATE)])).await;
    assert_eq!(code, StatusCode::NOT_MODIFIED);
    let (code, _, body) = send(&f.svc, get(&[("if-none-match", "\"v2\"")])).await;
    assert_eq!((code, &body[..]), (StatusCode::OK, &b"hello"[..]));
    assert_eq!(f.seen.calls(), 1);
}

#[tokio::test]
async fn stale_while_revalidate_serves_stale_and_refreshes_once() {
    let f = fixture(|_, n| {
        Ok(resp(
            200,
            &[("cache-control", "max-age=60, stale-while-revalidate=30")],
            &format!("v{n}"),
        ))
    });
    send(&f.svc, get(&[])).await;
    f.clock.advance(Duration::from_secs(70));
    for _ in 0..3 {
        let (_, h, body) = send(&f.svc, get(&[])).await;
        assert_eq!(&body[..], b"v1");
        assert_eq!(
            cache_status(&h),
            "protothrive; hit; ttl=-10; detail=stale-while-revalidate"
        );
    }
    for _ in 0..50 {
        if f.seen.calls() == 2 && f.handle.stats().stored == 2 {
            break;
        }
        tokio::task::yield_now().await;
    }
    assert_eq!(f.seen.calls(), 2, "one background refresh");
    let (_, h, body) = send(&f.svc, get(&[])).await;
    assert_eq!(&body[..], b"v2");
    assert!(
        cache_status(&h).starts_with("protothrive; hit"),
        "{}",
        cache_status(&h)
    );
}

#[tokio::test]
async fn stale_if_error_serves_stale_on_errors_and_5xx() {
    let f = fixture(|_, n| match n {
        1 => Ok(resp(
            200,
            &[("cache-control", "max-age=60, stale-if-error=100")],
            "good",
        )),
        2 => Err("origin down".into()),
        _ => Ok(resp(503, &[], "busy")),
    });
    send(&f.svc, get(&[])).await;
    f.clock.advance(Duration::from_secs(61));
    let (code, h, body) = send(&f.svc, get(&[])).await;
    assert_eq!((code, &body[..]), (StatusCode::OK, &b"good"[..]));
    assert_eq!(
        cache_status(&h),
        "protothrive; fwd=stale; ttl=-1; detail=stale-if-error"
    );
    let (code, h, body) = send(&f.svc, get(&[])).await;
    assert_eq!((code, &body[..]), (StatusCode::OK, &b"good"[..]));
    assert!(cache_status(&h).contains("fwd-status=503"));
    f.clock.advance(Duration::from_secs(100));
    let (code, _, _) = send(&f.svc, get(&[])).await;
    assert_eq!(
        code,
        StatusCode::SERVICE_UNAVAILABLE,
        "past the window the error goes through"
    );
}

#[tokio::test]
async fn stale_if_error_never_overrides_must_revalidate() {
    let f = fixture(|_, n| match n {
        1 => Ok(resp(
            200,
            &[(
                "cache-control",
                "max-age=60, stale-if-error=100, must-revalidate",
            )],
            "good",
        )),
        _ => Err("origin down".into()),
    });
    send(&f.svc, get(&[])).await;
    f.clock.advance(Duration::from_secs(61));
    assert!(f.svc.clone().oneshot(get(&[])).await.is_err());
}

#[tokio::test(flavor = "current_thread")]
async fn a_hundred_concurrent_misses_make_one_origin_call() {
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let calls = Arc::new(AtomicUsize::new(0));
    let (g, c) = (gate.clone(), calls.clone());
    let inner = BoxCloneService::new(service_fn(move |_req: Request<()>| {
        let (g, c) = (g.clone(), c.clone());
        async move {
            c.fetch_add(1, Ordering::SeqCst);
            let _permit = g.acquire().await.map_err(|e| Box::new(e) as BoxError)?;
            Ok::<_, BoxError>(resp(200, &[("cache-control", "max-age=60")], "shared"))
        }
    }));
    let layer = CacheLayer::builder()
        .clock(Arc::new(ManualClock::default()))
        .build()
        .unwrap();
    let handle = layer.handle();
    let svc = layer.layer(inner);
    let tasks: Vec<_> = (0..100)
        .map(|_| tokio::spawn(svc.clone().oneshot(get(&[]))))
        .collect();
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    gate.add_permits(1);
    for t in tasks {
        let res = t.await.unwrap().unwrap();
        assert_eq!(
            res.into_body().collect().await.unwrap().to_bytes(),
            "shared"
        );
    }
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(handle.stats().collapsed, 99);
}

fn by_user(req: &http::request::Parts) -> Option<String> {
    req.headers
        .get("x-user")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

#[tokio::test]
async fn a_users_private_response_never_reaches_another_user() {
    let f = fixture_with(CacheLayer::builder().partition(by_user), |req, _| {
        let user = req
            .headers()
            .get("x-user")
            .map_or("nobody", |v| v.to_str().unwrap());
        Ok(resp(
            200,
            &[("cache-control", "private, max-age=60")],
            &format!("data of {user}"),
        ))
    });
    let (_, _, a) = send(&f.svc, get(&[("x-user", "alice")])).await;
    let (_, h, a2) = send(&f.svc, get(&[("x-user", "alice")])).await;
    assert_eq!(
        (a, a2.clone()),
        (Bytes::from("data of alice"), Bytes::from("data of alice"))
    );
    assert!(cache_status(&h).starts_with("protothrive; hit"));
    let (_, _, b) = send(&f.svc, get(&[("x-user", "bob")])).await;
    assert_eq!(b, "data of bob");
    let (_, _, anon) = send(&f.svc, get(&[])).await;
    assert_eq!(anon, "data of nobody");
    let (_, _, anon) = send(&f.svc, get(&[])).await;
    assert_eq!(anon, "data of nobody");
    assert_eq!(
        f.seen.calls(),
        4,
        "alice once, bob once, anonymous twice (private: not stored)"
    );
}

#[tokio::test]
async fn set_cookie_is_never_served_from_the_cache() {
    let f = fixture(|_, n| {
        Ok(resp(
            200,
            &[
                ("cache-control", "public, max-age=60"),
                ("set-cookie", &format!("session=user{n}")),
            ],
            "page",
        ))
    });
    let (_, h1, _) = send(&f.svc, get(&[])).await;
    let (_, h2, _) = send(&f.svc, get(&[])).await;
    assert_eq!(h1["set-cookie"], "session=user1");
    assert_eq!(h2["set-cookie"], "session=user2");
    assert_eq!(f.seen.calls(), 2);
    assert_eq!(f.handle.l1_len(), 0);
}

#[tokio::test]
async fn x_forwarded_host_cannot_poison_the_cache() {
    let f = fixture(|req, _| {
        let host = req
            .headers()
            .get("x-forwarded-host")
            .or_else(|| req.headers().get("host"))
            .map_or("", |v| v.to_str().unwrap());
        Ok(resp(
            200,
            &[("cache-control", "max-age=60")],
            &format!("<script src=\"https://{host}/app.js\">"),
        ))
    });
    let (_, _, attacker) = send(
        &f.svc,
        get(&[
            ("x-forwarded-host", "evil.example"),
            ("forwarded", "host=evil.example"),
        ]),
    )
    .await;
    assert!(!f.seen.last().contains_key("x-forwarded-host"));
    assert!(!f.seen.last().contains_key("forwarded"));
    let (_, _, victim) = send(&f.svc, get(&[])).await;
    assert_eq!(attacker, victim);
    assert!(!String::from_utf8_lossy(&victim).contains("evil"));
    // Another Host is another key.
    let other = Request::get("/r")
        .header("host", "other.example")
        .body(())
        .unwrap();
    let (_, _, b) = send(&f.svc, other).await;
    assert!(String::from_utf8_lossy(&b).contains("other.example"));
}

#[tokio::test]
async fn unsafe_methods_invalidate_the_target_and_location() {
    let f = fixture(|req, n| match *req.method() {
        Method::POST => Ok(resp(
            201,
            &[
                ("location", "/items/2"),
                ("content-location", "https://elsewhere.example/r"),
            ],
            "",
        )),
        _ => Ok(resp(
            200,
            &[("cache-control", "max-age=60")],
            &format!("v{n}"),
        )),
    });
    let at = |path: &str| {
        Request::get(path)
            .header("host", "api.example.com")
            .body(())
            .unwrap()
    };
    send(&f.svc, at("/items")).await;
    send(&f.svc, at("/items/2")).await;
    send(&f.svc, at("/items/3")).await;
    let post = Request::post("/items")
        .header("host", "api.example.com")
        .body(())
        .unwrap();
    let (code, h, _) = send(&f.svc, post).await;
    assert_eq!(
        (code, cache_status(&h)),
        (StatusCode::CREATED, "protothrive; fwd=method")
    );
    let calls = f.seen.calls();
    send(&f.svc, at("/items")).await;
    send(&f.svc, at("/items/2")).await;
    send(&f.svc, at("/items/3")).await;
    assert_eq!(
        f.seen.calls(),
        calls + 2,
        "/items and /items/2 refetched, /items/3 kept"
    );
}

#[tokio::test]
async fn tags_prefixes_and_uris_invalidate_through_the_handle() {
    let f = fixture(|req, n| {
        let tag = if req.uri().path().starts_with("/snippets") {
            "snippets"
        } else {
            "other"
        };
        Ok(resp(
            200,
            &[("cache-control", "max-age=60"), ("surrogate-key", tag)],
            &format!("v{n}"),
        ))
    });
    let at = |path: &str| {
        Request::get(path)
            .header("host", "api.example.com")
            .body(())
            .unwrap()
    };
    for p in ["/snippets/1", "/snippets/2", "/roadmaps/1", "/roadmaps/2"] {
        let (_, h, _) = send(&f.svc, at(p)).await;
        assert!(!h.contains_key("surrogate-key"));
    }
    f.handle.invalidate_tag("snippets").await;
    f.handle.invalidate_uri("/roadmaps/1").await;
    let before = f.seen.calls();
    for p in ["/snippets/1", "/snippets/2", "/roadmaps/1", "/roadmaps/2"] {
        send(&f.svc, at(p)).await;
    }
    assert_eq!(f.seen.calls(), before + 3);
    f.handle
        .invalidate_prefix("https://API.example.com/road")
        .await; // not normalized: no match
    f.handle
        .invalidate_prefix("http://api.example.com/road")
        .await;
    send(&f.svc, at("/roadmaps/2")).await;
    assert_eq!(f.seen.calls(), before + 4);
}

#[tokio::test]
async fn head_is_answered_from_a_stored_get() {
    let f = fixture(|_, _| Ok(resp(200, &[("cache-control", "max-age=60")], "body")));
    send(&f.svc, get(&[])).await;
    let head = Request::head("/r")
        .header("host", "api.example.com")
        .body(())
        .unwrap();
    let (code, h, body) = send(&f.svc, head).await;
    assert_eq!((code, body.len()), (StatusCode::OK, 0));
    assert!(cache_status(&h).starts_with("protothrive; hit"));
    assert_eq!(f.seen.calls(), 1);
}

#[tokio::test]
async fn the_l2_tier_is_filled_and_promotes_to_a_new_l1() {
    let tier = Arc::new(MemoryTier::default());
    let make = |tier: Arc<MemoryTier>| {
        fixture_with(
            CacheLayer::builder().tier(tier).partition(by_user),
            |req, _| {
                let user = req
                    .headers()
                    .get("x-user")
                    .map_or("nobody", |v| v.to_str().unwrap());
                Ok(resp(
                    200,
                    &[
                        ("cache-control", "max-age=60, stale-if-error=30"),
                        ("vary", "accept"),
                    ],
                    &format!("for {user}"),
                ))
            },
        )
    };
    let one = make(tier.clone());
    send(&one.svc, get(&[("x-user", "alice")])).await;
    assert_eq!(tier.len(), 2, "the Vary marker and the variant");
    let key = CacheKey::new(&Method::GET, "http://api.example.com/r", Some("alice"));
    let variant = key.with_vary(&["accept".parse().unwrap()], &HeaderMap::new());
    assert_eq!(tier.ttl(variant.as_str()), Some(Duration::from_secs(90)));
    assert_eq!(
        tier.ttl(key.as_str()),
        Some(Duration::from_secs(90)),
        "the Vary marker too"
    );
    let two = make(tier.clone());
    let (_, h, body) = send(&two.svc, get(&[("x-user", "alice")])).await;
    assert_eq!(body, "for alice");
    assert!(cache_status(&h).starts_with("protothrive; hit"));
    assert_eq!(two.seen.calls(), 0);
    let (_, _, body) = send(&two.svc, get(&[("x-user", "bob")])).await;
    assert_eq!(body, "for bob");
    assert_eq!(two.seen.calls(), 1);
    two.handle.invalidate_uri("/r").await;
    assert!(tier.is_empty());
}

#[test]
fn builder_errors_say_how_to_fix() {
    let e = CacheLayer::builder().max_bytes(0).build().unwrap_err();
    assert!(e.message().contains("max_bytes"));
    let e = CacheLayer::builder().scheme("ftp").build().unwrap_err();
    assert!(e.message().contains("https"));
    let e = CacheLayer::builder()
        .unkeyed_headers(["bad header"])
        .build()
        .unwrap_err();
    assert!(e.message().contains("bad header"));
}

/// A body of several chunks that does not say its size.
struct Chunks(std::collections::VecDeque<Bytes>);

impl http_body::Body for Chunks {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Infallible>>> {
        std::task::Poll::Ready(self.0.pop_front().map(|c| Ok(http_body::Frame::data(c))))
    }
}

use std::convert::Infallible;

#[tokio::test]
async fn a_body_past_the_limit_streams_through_whole_and_unstored() {
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    let inner = service_fn(move |_req: Request<()>| {
        c.fetch_add(1, Ordering::SeqCst);
        let chunks = ["abc", "defg", "hij", "k"]
            .map(|s: &str| Bytes::copy_from_slice(s.as_bytes()))
            .into_iter()
            .collect();
        async move {
            Ok::<_, Infallible>(
                Response::builder()
                    .header("cache-control", "max-age=60")
                    .body(Chunks(chunks))
                    .unwrap(),
            )
        }
    });
    for (max, stored) in [(5, false), (11, true)] {
        let layer = CacheLayer::builder().max_body(max).build().unwrap();
        let svc = layer.layer(inner.clone());
        for _ in 0..2 {
            let res = svc.clone().oneshot(get(&[])).await.unwrap();
            assert_eq!(
                res.into_body().collect().await.unwrap().to_bytes(),
                "abcdefghijk"
            );
        }
        assert_eq!(
            layer.handle().stats().stored,
            u64::from(stored),
            "max {max}"
        );
    }
    assert_eq!(calls.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn a_one_byte_l1_leaves_everything_to_the_tier() {
    let tier = Arc::new(MemoryTier::default());
    let f = fixture_with(
        CacheLayer::builder().max_bytes(1).tier(tier.clone()),
        |_, _| {
            Ok(resp(
                200,
                &[("cache-control", "max-age=60")],
                "from the origin",
            ))
        },
    );
    send(&f.svc, get(&[])).await;
    let (_, h, body) = send(&f.svc, get(&[])).await;
    assert_eq!(body, "from the origin");
    assert!(cache_status(&h).starts_with("protothrive; hit"));
    assert_eq!((f.seen.calls(), f.handle.l1_len(), tier.len()), (1, 0, 1));
}

#[tokio::test]
async fn a_key_purge_takes_the_vary_variants_along() {
    let f = fixture(|req, n| {
        let accept = req
            .headers()
            .get("accept")
            .map_or("", |v| v.to_str().unwrap());
        Ok(resp(
            200,
            &[("cache-control", "max-age=60"), ("vary", "accept")],
            &format!("{accept} v{n}"),
        ))
    });
    send(&f.svc, get(&[("accept", "a")])).await;
    send(&f.svc, get(&[("accept", "b")])).await;
    let primary = CacheKey::new(&Method::GET, "http://api.example.com/r", None);
    f.handle
        .invalidate(Purge::Key(primary.as_str().to_owned()))
        .await;
    assert_eq!(f.handle.l1_len(), 0);
    let (_, _, body) = send(&f.svc, get(&[("accept", "a")])).await;
    assert_eq!(body, "a v3");
    let (_, _, body) = send(&f.svc, get(&[("accept", "b")])).await;
    assert_eq!(body, "b v4", "not the variant from before the purge");
}

proptest::proptest! {
    /// What an L2 tier stores reads back as it was written.
    #[test]
    fn stored_responses_round_trip_through_the_encoding(
        status in 200u16..600,
        headers in proptest::collection::vec(("[a-z][a-z0-9-]{0,12}", "[ -~]{0,24}"), 0..8),
        body in proptest::collection::vec(proptest::num::u8::ANY, 0..64),
        tags in proptest::collection::vec("[a-z0-9:_-]{1,10}", 0..4),
        secs in 0u64..4_000_000_000,
        partition in proptest::bool::ANY,
    ) {
        let mut h = HeaderMap::new();
        for (n, v) in &headers {
            h.append(http::HeaderName::from_bytes(n.as_bytes()).unwrap(), v.trim().parse().unwrap());
        }
        let t = std::time::UNIX_EPOCH + Duration::from_secs(secs);
        let scope = if partition { Scope::Partition } else { Scope::Shared };
        let stored = StoredResponse::new(StatusCode::from_u16(status).unwrap(), h, Bytes::from(body), t, t, scope)
            .with_tags(tags);
        let entry = CacheEntry::Response(Arc::new(stored.clone()));
        let Some(CacheEntry::Response(back)) = CacheEntry::decode(&entry.encode()) else {
            panic!("did not decode");
        };
        proptest::prop_assert_eq!(back.status(), stored.status());
        proptest::prop_assert_eq!(back.headers(), stored.headers());
        proptest::prop_assert_eq!(back.body(), stored.body());
        proptest::prop_assert_eq!(back.tags(), stored.tags());
        proptest::prop_assert_eq!(back.lifetime(), stored.lifetime());
        proptest::prop_assert_eq!(back.scope(), stored.scope());
        proptest::prop_assert_eq!(back.age(t), stored.age(t));
    }
}

proptest::proptest! {
    /// Whatever an L2 tier hands back, decoding never panics.
    #[test]
    fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..256)) {
        let _ = CacheEntry::decode(&bytes);
        let mut tagged = vec![b'R', 1];
        tagged.extend_from_slice(&bytes);
        let _ = CacheEntry::decode(&tagged);
    }
}

#[tokio::test]
async fn a_miss_asks_the_tier_once() {
    let tier = Arc::new(MemoryTier::default());
    let f = fixture_with(CacheLayer::builder().tier(tier.clone()), |_, _| {
        Ok(resp(200, &[("cache-control", "max-age=60")], "x"))
    });
    send(&f.svc, get(&[])).await;
    assert_eq!(tier.calls(), 2, "one get, one put");
    send(&f.svc, get(&[])).await;
    assert_eq!(tier.calls(), 2, "an L1 hit never reaches the tier");
}

#[tokio::test(flavor = "current_thread")]
async fn an_uncacheable_uri_is_neither_coalesced_nor_asked_of_the_tier() {
    let tier = Arc::new(MemoryTier::default());
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let calls = Arc::new(AtomicUsize::new(0));
    let (g, c) = (gate.clone(), calls.clone());
    let inner = BoxCloneService::new(service_fn(move |req: Request<()>| {
        let (g, c) = (g.clone(), c.clone());
        async move {
            let n = c.fetch_add(1, Ordering::SeqCst);
            if n > 0 {
                let _permit = g.acquire().await.map_err(|e| Box::new(e) as BoxError)?;
            }
            let cc = if req.headers().contains_key("x-cacheable") {
                "max-age=60"
            } else {
                "no-store"
            };
            Ok::<_, BoxError>(resp(200, &[("cache-control", cc)], "x"))
        }
    }));
    let clock = ManualClock::default();
    let layer = CacheLayer::builder()
        .tier(tier.clone())
        .clock(Arc::new(clock.clone()))
        .build()
        .unwrap();
    let svc = layer.layer(inner);
    // The first answer says no-store: the key is remembered as pass.
    svc.clone().oneshot(get(&[])).await.unwrap();
    let tier_calls = tier.calls();
    let tasks: Vec<_> = (0..10)
        .map(|_| tokio::spawn(svc.clone().oneshot(get(&[]))))
        .collect();
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    assert_eq!(
        calls.load(Ordering::SeqCst),
        11,
        "all ten reached the origin at once"
    );
    assert_eq!(tier.calls(), tier_calls, "and none asked the tier");
    gate.add_permits(10);
    for t in tasks {
        let res = t.await.unwrap().unwrap();
        assert_eq!(
            res.headers()["cache-status"],
            "protothrive; fwd=uri-miss; fwd-status=200"
        );
    }
    // Once the response is storable again, it is stored and the pass ends.
    gate.add_permits(10);
    svc.clone()
        .oneshot(get(&[("x-cacheable", "1")]))
        .await
        .unwrap();
    let res = svc.clone().oneshot(get(&[])).await.unwrap();
    assert!(
        res.headers()["cache-status"]
            .to_str()
            .unwrap()
            .starts_with("protothrive; hit")
    );
}
