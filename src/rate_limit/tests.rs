use std::convert::Infallible;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;
use std::time::Duration;

use http::{Method, Request, Response};
use tower::{ServiceExt, service_fn};
use tower_layer::Layer;

use super::*;
use crate::clock::{Clock, ManualClock};
use crate::identity::ClientIp;
use crate::identity::{Principal, Scheme};

type Svc = RateLimit<
    tower::util::ServiceFn<
        fn(Request<()>) -> std::future::Ready<Result<Response<String>, Infallible>>,
    >,
>;

fn ok(_req: Request<()>) -> std::future::Ready<Result<Response<String>, Infallible>> {
    std::future::ready(Ok(Response::new(String::from("ok"))))
}

fn svc(clock: &ManualClock, limits: Vec<Limit>) -> Svc {
    let mut b = RateLimitLayer::builder().clock(Arc::new(clock.clone()));
    for l in limits {
        b = b.limit(l);
    }
    b.build().unwrap().layer(service_fn(ok as fn(_) -> _))
}

fn from(ip: IpAddr) -> Request<()> {
    let mut r = Request::new(());
    r.extensions_mut().insert(ClientIp(ip));
    r
}

fn v4(last: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(192, 0, 2, last))
}

fn ip_limit(q: &str) -> Limit {
    Limit::new("ip", q.parse().unwrap()).by(KeyBy::ClientIp)
}

async fn status(svc: &Svc, req: Request<()>) -> u16 {
    svc.clone().oneshot(req).await.unwrap().status().as_u16()
}

#[tokio::test]
async fn burst_then_deny_then_refill() {
    let clock = ManualClock::default();
    let s = svc(&clock, vec![ip_limit("60/min burst 3")]);
    for _ in 0..3 {
        assert_eq!(status(&s, from(v4(1))).await, 200);
    }
    let res = s.clone().oneshot(from(v4(1))).await.unwrap();
    assert_eq!(res.status(), 429);
    assert_eq!(res.headers()["retry-after"], "1");
    assert_eq!(res.headers()["ratelimit"], r#""ip";r=0;t=3"#);
    assert_eq!(res.headers()["ratelimit-policy"], r#""ip";q=60;w=60"#);
    assert_eq!(res.headers()["content-type"], "application/problem+json");
    let body = http_body_util::BodyExt::collect(res.into_body())
        .await
        .unwrap()
        .to_bytes();
    let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["code"], "RATE-429");
    // Another client is not affected.
    assert_eq!(status(&s, from(v4(2))).await, 200);
    clock.advance(Duration::from_millis(999));
    assert_eq!(status(&s, from(v4(1))).await, 429);
    clock.advance(Duration::from_millis(1));
    assert_eq!(status(&s, from(v4(1))).await, 200);
    clock.advance(Duration::from_secs(60));
    let res = s.clone().oneshot(from(v4(1))).await.unwrap();
    assert_eq!(res.headers()["ratelimit"], r#""ip";r=2;t=1"#);
}

#[tokio::test]
async fn stacked_limits_strictest_wins_and_all_are_reported() {
    let clock = ManualClock::default();
    let s = svc(
        &clock,
        vec![
            ip_limit("100/min burst 10"),
            Limit::new("login", "10 per 5 min burst 2".parse().unwrap())
                .by(KeyBy::ClientIp)
                .path_prefix("/login")
                .method(Method::POST),
            Limit::new("global", "1000/s".parse().unwrap()),
        ],
    );
    let login = || {
        let mut r = from(v4(1));
        *r.method_mut() = Method::POST;
        *r.uri_mut() = "/login".parse().unwrap();
        r
    };
    let res = s.clone().oneshot(login()).await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.headers()["ratelimit"],
        r#""login";r=1;t=30, "ip";r=9;t=1, "global";r=999;t=1"#
    );
    assert_eq!(
        res.headers()["ratelimit-policy"],
        r#""login";q=10;w=300, "ip";q=100;w=60, "global";q=1000;w=1"#
    );
    assert_eq!(status(&s, login()).await, 200);
    let res = s.clone().oneshot(login()).await.unwrap();
    assert_eq!(res.status(), 429);
    assert_eq!(res.headers()["retry-after"], "30");
    // Other paths still pass: the login limit does not apply, the IP one still has room.
    let res = s.clone().oneshot(from(v4(1))).await.unwrap();
    assert_eq!(res.status(), 200);
    assert!(
        !res.headers()["ratelimit"]
            .to_str()
            .unwrap()
            .contains("login")
    );
}

#[tokio::test]
async fn preflights_are_never_counted() {
    let clock = ManualClock::default();
    let s = svc(&clock, vec![ip_limit("1/min burst 1")]);
    for _ in 0..5 {
        let mut r = from(v4(1));
        *r.method_mut() = Method::OPTIONS;
        r.headers_mut()
            .insert("access-control-request-method", "PUT".parse().unwrap());
        let res = s.clone().oneshot(r).await.unwrap();
        assert_eq!(res.status(), 200);
        assert!(res.headers().get("ratelimit").is_none());
    }
    assert_eq!(status(&s, from(v4(1))).await, 200);
    assert_eq!(status(&s, from(v4(1))).await, 429);
}

#[tokio::test]
async fn principal_and_api_key_limits_apply_only_when_known() {
    let clock = ManualClock::default();
    let s = svc(
        &clock,
        vec![
            Limit::new("user", "1/min burst 1".parse().unwrap()).by(KeyBy::Subject),
            Limit::new("api_key", "2/min burst 2".parse().unwrap()).by(KeyBy::ApiKey),
        ],
    );
    // No principal: no limit applies, no headers.
    let res = s.clone().oneshot(Request::new(())).await.unwrap();
    assert!(res.headers().get("ratelimit").is_none());
    let with = |p: Principal| {
        let mut r = Request::new(());
        r.extensions_mut().insert(p);
        r
    };
    let jwt = Principal::builder("alice").build();
    assert_eq!(status(&s, with(jwt.clone())).await, 200);
    assert_eq!(status(&s, with(jwt)).await, 429);
    let key = |id: &str| {
        Principal::builder("bob")
            .scheme(Scheme::ApiKey)
            .token_id(id)
            .build()
    };
    let res = s.clone().oneshot(with(key("k1"))).await.unwrap();
    assert_eq!(
        res.headers()["ratelimit"],
        r#""user";r=0;t=60, "api_key";r=1;t=30"#
    );
    // bob's user limit is spent, whatever key he uses.
    assert_eq!(status(&s, with(key("k2"))).await, 429);
}

#[tokio::test]
async fn ipv6_grouping_by_64() {
    let clock = ManualClock::default();
    let s = svc(
        &clock,
        vec![Limit::new("ip", "1/min burst 1".parse().unwrap()).by(KeyBy::ClientIpV6Net64)],
    );
    let a = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 1, 2, 0, 0, 0, 1));
    let b = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 1, 2, 9, 9, 9, 9));
    let c = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 1, 3, 0, 0, 0, 1));
    assert_eq!(status(&s, from(a)).await, 200);
    assert_eq!(status(&s, from(b)).await, 429);
    assert_eq!(status(&s, from(c)).await, 200);
    // IPv4 addresses are never grouped.
    assert_eq!(status(&s, from(v4(1))).await, 200);
    assert_eq!(status(&s, from(v4(2))).await, 200);
}

#[test]
fn build_errors() {
    let q: Quota = "1/s".parse().unwrap();
    let e = RateLimitLayer::builder().build().unwrap_err();
    assert!(e.message().contains("at least one limit"));
    let e = RateLimitLayer::builder()
        .limit(Limit::new("a", q))
        .limit(Limit::new("a", q))
        .build()
        .unwrap_err();
    assert!(e.message().contains("two rate limits"));
    let e = RateLimitLayer::builder()
        .limit(Limit::new("a\"b", q))
        .build()
        .unwrap_err();
    assert!(e.message().contains("letters, digits"));
}

#[tokio::test]
async fn nested_layers_merge_their_headers() {
    let clock = ManualClock::default();
    let inner = svc(
        &clock,
        vec![Limit::new("user", "1/min burst 1".parse().unwrap()).by(KeyBy::Subject)],
    );
    let outer = RateLimitLayer::builder()
        .clock(Arc::new(clock.clone()))
        .limit(ip_limit("60/min burst 10"))
        .build()
        .unwrap()
        .layer(inner);
    let req = || {
        let mut r = from(v4(1));
        r.extensions_mut()
            .insert(Principal::builder("alice").build());
        r
    };
    let res = outer.clone().oneshot(req()).await.unwrap();
    assert_eq!(
        res.headers()["ratelimit"],
        r#""ip";r=9;t=1, "user";r=0;t=60"#
    );
    let res = outer.oneshot(req()).await.unwrap();
    assert_eq!(res.status(), 429);
    assert_eq!(
        res.headers()["ratelimit"],
        r#""user";r=0;t=60, "ip";r=8;t=2"#
    );
    assert_eq!(
        res.headers()["ratelimit-policy"],
        r#""user";q=1;w=60, "ip";q=60;w=60"#
    );
}

#[tokio::test]
async fn jwt_subject_leaves_api_keys_to_their_own_limit() {
    let clock = ManualClock::default();
    let s = svc(
        &clock,
        vec![
            Limit::new("user", "1/min burst 1".parse().unwrap()).by(KeyBy::JwtSubject),
            Limit::new("api_key", "2/min burst 2".parse().unwrap()).by(KeyBy::ApiKey),
        ],
    );
    let with = |p: Principal| {
        let mut r = Request::new(());
        r.extensions_mut().insert(p);
        r
    };
    let key = || {
        Principal::builder("bob")
            .scheme(Scheme::ApiKey)
            .token_id("k1")
            .build()
    };
    assert_eq!(status(&s, with(key())).await, 200);
    let res = s.clone().oneshot(with(key())).await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["ratelimit"], r#""api_key";r=0;t=60"#);
    assert_eq!(status(&s, with(key())).await, 429);
    // bob with a JWT has his own user quota.
    assert_eq!(
        status(&s, with(Principal::builder("bob").build())).await,
        200
    );
}

/// N tasks on a multi-thread runtime race on one key; the clock moves only between rounds, so
/// each round's allowances are exactly what a sequential caller would get at that instant, and
/// the total never passes `burst + elapsed / T`.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tasks_hammering_one_key_never_exceed_burst_plus_rate_times_elapsed() {
    let store = Arc::new(InMemoryStore::default());
    let quota: Quota = "10/s burst 5".parse().unwrap();
    let t = quota.interval_nanos();
    let clock = ManualClock::default();
    let start = clock.instant();
    let advances_ms = [0, 30, 100, 250, 1_000, 10, 90, 5_000, 99, 1, 700, 100];
    let (mut model_tat, mut total) = (0, 0u64);
    for advance in advances_ms {
        clock.advance(Duration::from_millis(advance));
        let now = u64::try_from((clock.instant() - start).as_nanos()).unwrap();
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let store = store.clone();
                tokio::spawn(async move {
                    let mut allowed = 0u64;
                    for _ in 0..50 {
                        allowed += u64::from(store.check("one", &quota, now).is_allowed());
                        tokio::task::yield_now().await;
                    }
                    allowed
                })
            })
            .collect();
        let mut round = 0;
        for task in tasks {
            round += task.await.unwrap();
        }
        let mut expected = 0;
        while let Decision::Allow { tat, .. } = check(model_tat, now, &quota) {
            model_tat = tat;
            expected += 1;
        }
        assert_eq!(round, expected, "at {now} ns");
        total += round;
        assert!(
            total <= u64::from(quota.burst()) + now / t,
            "{total} by {now} ns"
        );
    }
}

/// A flood of a million distinct keys never holds more than the cap, costs about a hundred bytes
/// (at most 128) per key held, and does not free a key that spent its burst before the flood.
#[test]
fn a_million_distinct_keys_stay_under_the_cap() {
    let cap = 100_000;
    let store = InMemoryStore::with_max_keys(cap);
    assert!(store.max_keys() >= cap && store.max_keys() < cap + 64);
    let quota: Quota = "10/min burst 3".parse().unwrap();
    for _ in 0..3 {
        assert!(store.check("ip|198.51.100.7", &quota, 0).is_allowed());
    }
    let mut key = String::new();
    for i in 0u32..1_000_000 {
        use std::fmt::Write as _;
        key.clear();
        let [a, b, c, d] = i.to_be_bytes();
        write!(key, "ip|{a}.{b}.{c}.{d}").unwrap();
        assert!(store.check(&key, &quota, 1).is_allowed());
        if i % 100_000 == 0 {
            assert!(store.len() <= store.max_keys());
        }
    }
    let (len, bytes) = (store.len(), store.approx_memory_bytes());
    assert!(len <= store.max_keys(), "{len}");
    assert!(
        bytes <= store.max_keys() * 128,
        "{bytes} bytes for {len} keys"
    );
    println!(
        "{len} keys held after 1 000 000, ~{bytes} bytes (~{} per key)",
        bytes / len
    );
    // The spent key had the largest TAT: the nearest-idle eviction kept it.
    assert!(!store.check("ip|198.51.100.7", &quota, 2).is_allowed());
    // Once every key is idle, the next ones take their place without a refusal.
    let later = 60_000_000_000;
    for i in 0..1_000 {
        assert!(
            store
                .check(&format!("later|{i}"), &quota, later)
                .is_allowed()
        );
    }
    assert!(store.len() <= store.max_keys());
}

#[tokio::test]
async fn route_keys_count_every_id_of_one_endpoint_together() {
    let clock = ManualClock::default();
    let s = svc(
        &clock,
        vec![Limit::new("route", "60/min burst 2".parse().unwrap()).by(KeyBy::Route)],
    );
    let to = |path: &str, route: Option<&'static str>| {
        let mut r = Request::builder().uri(path).body(()).unwrap();
        if let Some(route) = route {
            r.extensions_mut().insert(Route::new(route));
        }
        r
    };
    // Three ids of one route: one key, so the third is refused.
    assert_eq!(
        status(&s, to("/roadmaps/1", Some("/roadmaps/{id}"))).await,
        200
    );
    assert_eq!(
        status(&s, to("/roadmaps/2", Some("/roadmaps/{id}"))).await,
        200
    );
    assert_eq!(
        status(&s, to("/roadmaps/3", Some("/roadmaps/{id}"))).await,
        429
    );
    // Another route has its own key; without a matched route the limit does not apply.
    assert_eq!(status(&s, to("/snippets", Some("/snippets"))).await, 200);
    for _ in 0..5 {
        assert_eq!(status(&s, to("/unrouted", None)).await, 200);
    }
    // axum's MatchedPath is read too (the layer inside the router, through `route_layer`).
    let app: axum::Router = axum::Router::new()
        .route("/items/{id}", axum::routing::get(|| async { "ok" }))
        .route_layer(
            RateLimitLayer::builder()
                .clock(Arc::new(clock.clone()))
                .limit(Limit::new("route", "60/min burst 1".parse().unwrap()).by(KeyBy::Route))
                .build()
                .unwrap(),
        );
    let get = |p: &str| {
        Request::builder()
            .uri(p)
            .body(axum::body::Body::empty())
            .unwrap()
    };
    assert_eq!(
        app.clone().oneshot(get("/items/1")).await.unwrap().status(),
        200
    );
    assert_eq!(
        app.clone().oneshot(get("/items/2")).await.unwrap().status(),
        429
    );
}

#[tokio::test]
async fn long_keys_spill_to_the_heap_and_stay_distinct() {
    let clock = ManualClock::default();
    let s = svc(
        &clock,
        vec![Limit::new("path", "60/min burst 1".parse().unwrap()).by(KeyBy::Path)],
    );
    let long = |c: char| {
        let path = format!("/{}", c.to_string().repeat(300));
        Request::builder().uri(path).body(()).unwrap()
    };
    assert_eq!(status(&s, long('a')).await, 200);
    assert_eq!(status(&s, long('a')).await, 429);
    assert_eq!(status(&s, long('b')).await, 200);
    let short = super::key::key_for_tests("ip", IpAddr::V4(Ipv4Addr::new(10, 0, 255, 7)));
    assert_eq!(short, "ip|10.0.255.7");
    let mapped = super::key::key_for_tests(
        "ip",
        IpAddr::V6(Ipv4Addr::new(192, 0, 2, 1).to_ipv6_mapped()),
    );
    assert_eq!(mapped, "ip|192.0.2.1");
}

proptest::proptest! {
    #[test]
    fn an_ipv4_key_is_the_dotted_quad(octets: [u8; 4]) {
        let ip = Ipv4Addr::from(octets);
        let key = super::key::key_for_tests("ip", IpAddr::V4(ip));
        proptest::prop_assert_eq!(key, format!("ip|{ip}"));
    }
}

#[tokio::test]
async fn an_unlimited_quota_turns_its_limit_off() {
    let clock = ManualClock::default();
    let s = svc(
        &clock,
        vec![
            ip_limit("off"),
            Limit::new("path", "1/min".parse().unwrap()).path_prefix("/limited"),
        ],
    );
    for _ in 0..100 {
        let res = s.clone().oneshot(from(v4(1))).await.unwrap();
        assert_eq!(res.status(), 200);
        assert!(
            !res.headers().contains_key("ratelimit"),
            "no header for an off limit"
        );
    }
    let limited = || {
        let mut r = Request::get("/limited").body(()).unwrap();
        r.extensions_mut().insert(ClientIp(v4(1)));
        r
    };
    assert_eq!(status(&s, limited()).await, 200);
    assert_eq!(status(&s, limited()).await, 429);
}

#[tokio::test]
async fn headers_can_be_left_out_but_a_refusal_keeps_retry_after() {
    let clock = ManualClock::default();
    let s = RateLimitLayer::builder()
        .clock(Arc::new(clock.clone()))
        .limit(ip_limit("60/min burst 1"))
        .headers(false)
        .build()
        .unwrap()
        .layer(service_fn(ok as fn(_) -> _));
    let res = s.clone().oneshot(from(v4(1))).await.unwrap();
    assert_eq!(res.status(), 200);
    assert!(!res.headers().contains_key("ratelimit"));
    assert!(!res.headers().contains_key("ratelimit-policy"));
    let res = s.clone().oneshot(from(v4(1))).await.unwrap();
    assert_eq!(res.status(), 429);
    assert_eq!(res.headers()["retry-after"], "1");
    assert!(!res.headers().contains_key("ratelimit"));
}

#[tokio::test]
async fn a_per_ip_limit_without_an_address_is_reported_not_silent() {
    let clock = ManualClock::default();
    let limit = ip_limit("60/min burst 1");
    let reported = limit.unkeyed.clone();
    let s = svc(&clock, vec![limit]);
    assert!(reported.get().is_none());
    // No ClientIp extension: the limit cannot apply, and says so.
    assert_eq!(status(&s, Request::new(())).await, 200);
    assert!(reported.get().is_some(), "logged and counted");
}
