use std::convert::Infallible;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;
use std::time::Duration;

use http::{Method, Request, Response};
use tower::{ServiceExt, service_fn};
use tower_layer::Layer;

use super::*;
use crate::auth::{Principal, Scheme};
use crate::client_ip::ClientIp;
use crate::clock::ManualClock;

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
