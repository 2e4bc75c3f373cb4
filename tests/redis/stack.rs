//! The `Stack` on one `RedisHandle`: both instances' limits decide in Redis (one limit across
//! them) and the route cache shares its L2 — one connection and one outage breaker per instance
//! for every store.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Router;
use axum::routing::get;
use protothrive::cache::CacheLayer;
use protothrive::rate_limit::{KeyBy, Limit};
use protothrive::redis_handle::RedisHandle;
use protothrive::stack::Stack;

use crate::support::redis::RedisServer;
use crate::support::stack::{ORIGIN, get_hello};

fn instance(url: &str, calls: Arc<AtomicUsize>) -> (Router, Stack) {
    let handle = RedisHandle::builder(url).build().unwrap();
    let stack = Stack::builder()
        .redis(handle)
        .limit_by_client(Limit::new("ip", "60/min burst 3".parse().unwrap()).by(KeyBy::ClientIp))
        .cache(CacheLayer::builder())
        .build()
        .unwrap();
    let cache = stack.cache().cloned().unwrap();
    let app = Router::new()
        .route(
            "/hello",
            get(move || {
                calls.fetch_add(1, Ordering::SeqCst);
                async {
                    (
                        [(http::header::CACHE_CONTROL, "public, max-age=60")],
                        "hello",
                    )
                }
            })
            .route_layer(cache),
        )
        .layer(stack.clone());
    (app, stack)
}

async fn get_plain(app: &Router) -> (u16, String, String) {
    let (status, headers, body) = get_hello(app, None).await;
    let cache = headers
        .get("cache-status")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (status, cache, String::from_utf8(body.to_vec()).unwrap())
}

#[tokio::test]
async fn two_instances_on_one_handle_each_share_limits_and_cache_entries() {
    let server = RedisServer::start();
    let calls = Arc::new(AtomicUsize::new(0));
    let (a, stack_a) = instance(&server.url(), calls.clone());
    let (b, _stack_b) = instance(&server.url(), calls.clone());
    assert!(
        stack_a.redis().unwrap().ping().await,
        "the shared handle reaches Redis"
    );

    let (status, cache, body) = get_plain(&a).await;
    assert_eq!((status, body.as_str()), (200, "hello"));
    assert!(cache.contains("fwd=uri-miss"), "{cache}");
    // The other instance finds the entry in Redis: the origin is not asked again.
    let (status, cache, _) = get_plain(&b).await;
    assert_eq!(status, 200);
    assert!(cache.contains("hit"), "{cache}");
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    // The per-IP limit (burst 3) is one limit across both instances.
    assert_eq!(get_plain(&a).await.0, 200);
    assert_eq!(get_plain(&b).await.0, 429);
    assert_eq!(get_plain(&a).await.0, 429);
}

const SECRET: &[u8] = b"a test secret that is long enough for HS256";

/// Both limits in Redis, auth between them: each request waits twice (for the client limit,
/// then for the principal's), and the checks between and after the waits still run, their
/// headers on every answer.
#[tokio::test]
async fn the_checks_after_a_remote_limit_still_run_and_stamp_the_answer() {
    use protothrive::auth::{
        Algorithm, Authenticator, SigningKey, TokenIssuer, TokenKind, VerifyingKey,
    };
    use protothrive::clock::{ManualClock, SharedClock};
    use protothrive::cors::{AllowOrigin, CorsLayer};

    let server = RedisServer::start();
    let clock: SharedClock = Arc::new(ManualClock::default());
    let stack = Stack::builder()
        .clock(clock.clone())
        .redis(RedisHandle::builder(server.url()).build().unwrap())
        .cors(CorsLayer::builder().allow_origin(AllowOrigin::exact(ORIGIN)))
        .limit_by_client(Limit::new("ip", "60/min burst 10".parse().unwrap()).by(KeyBy::ClientIp))
        .auth(
            Authenticator::builder()
                .key(VerifyingKey::hmac(Algorithm::HS256, SECRET).unwrap())
                .issuer("i")
                .audience("a"),
        )
        .limit_by_principal(
            Limit::new("user", "60/min burst 2".parse().unwrap()).by(KeyBy::Subject),
        )
        .build()
        .unwrap();
    let app = Router::new()
        .route("/hello", get(|| async { "hello" }))
        .layer(stack);
    let token = TokenIssuer::new(
        SigningKey::hmac(Algorithm::HS256, SECRET).unwrap(),
        "i",
        "a",
    )
    .clock(clock)
    .issue("ada", TokenKind::Access, &serde_json::Map::new())
    .unwrap()
    .token;

    // No token: the client limit decided in Redis, then auth refused; the 401 carries CORS and
    // the client limit's headers.
    let (status, h, _) = get_hello(&app, None).await;
    assert_eq!(status, 401);
    assert_eq!(h["access-control-allow-origin"], ORIGIN);
    let limits = h["ratelimit"].to_str().unwrap();
    assert!(limits.starts_with("\"ip\";r=9;"), "{limits}");
    // With the token: both limits' items, the outer layer's first.
    let (status, h, _) = get_hello(&app, Some(&token)).await;
    assert_eq!(status, 200);
    let limits = h["ratelimit"].to_str().unwrap();
    assert!(limits.starts_with("\"ip\";r=8;"), "{limits}");
    assert!(limits.contains(", \"user\";r=1;"), "{limits}");
    assert_eq!(h["access-control-allow-origin"], ORIGIN);
    assert_eq!(get_hello(&app, Some(&token)).await.0, 200);
    // The principal's burst is spent: a 429 from the innermost check (its item first, as it
    // decided), with the client limit's item and CORS from outside it.
    let (status, h, _) = get_hello(&app, Some(&token)).await;
    assert_eq!(status, 429);
    assert_eq!(h["access-control-allow-origin"], ORIGIN);
    let limits = h["ratelimit"].to_str().unwrap();
    assert!(limits.starts_with("\"user\";r=0;"), "{limits}");
    assert!(limits.contains("\"ip\";r=6;"), "{limits}");
}
