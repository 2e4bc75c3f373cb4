//! The `Stack` around an authenticator whose keys come from a JWKS URL: the first request waits
//! for the key set, and the checks after auth (the per-principal limit) still run, with the
//! headers of the checks outside auth on every answer.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use protothrive::clock::ManualClock;
use protothrive::cors::{AllowOrigin, CorsLayer};
use protothrive::rate_limit::{KeyBy, Limit};
use protothrive::stack::Stack;

use crate::jwks::{EcKey, auth, jwks};
use crate::key_server::KeyServer;
use crate::stack_support::{ORIGIN, get_hello};

#[tokio::test]
async fn a_request_waiting_for_the_key_set_goes_through_the_checks_after_auth() {
    let server = KeyServer::start().await;
    let key = EcKey::new("a");
    server.set_keys(&[key.jwk()]);
    let clock = ManualClock::default();
    let set = jwks(&server, &clock, Duration::from_secs(10));
    let stack = Stack::builder()
        .clock(Arc::new(clock.clone()))
        .cors(CorsLayer::builder().allow_origin(AllowOrigin::exact(ORIGIN)))
        .limit_by_client(Limit::new("ip", "60/min burst 10".parse().unwrap()).by(KeyBy::ClientIp))
        .authenticator(auth(&set, &clock), false)
        .limit_by_principal(
            Limit::new("user", "60/min burst 1".parse().unwrap()).by(KeyBy::Subject),
        )
        .build()
        .unwrap();
    let app = Router::new()
        .route("/hello", get(|| async { "hello" }))
        .layer(stack);

    // The key set is fetched while the request waits; then the per-principal limit counts it.
    let (status, h, _) = get_hello(&app, Some(&key.token())).await;
    assert_eq!(status, 200);
    assert_eq!(server.jwks_hits(), 1);
    assert_eq!(h["access-control-allow-origin"], ORIGIN);
    let limits = h["ratelimit"].to_str().unwrap();
    assert!(limits.contains("\"user\";r=0;"), "{limits}");
    assert!(limits.contains("\"ip\";r=9;"), "{limits}");
    // The principal's burst (1) is spent: the limit after auth refuses the next request.
    let (status, h, _) = get_hello(&app, Some(&key.token())).await;
    assert_eq!(status, 429);
    assert_eq!(h["access-control-allow-origin"], ORIGIN);
    // A token naming a key the set lacks waits for a refetch, and is refused after it: the 401
    // carries the headers of the checks outside auth.
    clock.advance(Duration::from_secs(11));
    let (status, h, _) = get_hello(&app, Some(&key.token_as("b"))).await;
    assert_eq!(status, 401);
    assert_eq!(server.jwks_hits(), 2);
    assert_eq!(h["access-control-allow-origin"], ORIGIN);
    assert!(h["ratelimit"].to_str().unwrap().starts_with("\"ip\";"));
}
