//! Revocations shared through Redis: what one instance revokes, another refuses at once; with
//! Redis gone, the configured policy decides.

use std::sync::Arc;

use protothrive::auth::{Principal, Reason, RedisRevocations, Revocation, RevocationList};
use protothrive::clock::ManualClock;

use crate::support::redis::RedisServer;

/// A token's `exp`: Redis expires entries by its own (wall) clock, so a real future time.
const EXP: u64 = 4_000_000_000;

/// Two instances' views: each its own local list, one Redis.
fn instance(server: &RedisServer, clock: &ManualClock) -> RedisRevocations {
    let local = RevocationList::new(Arc::new(clock.clone()));
    RedisRevocations::builder(server.url(), local)
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revocation_on_one_instance_is_seen_by_another_at_once() {
    let server = RedisServer::start();
    let clock = ManualClock::at_unix(1_000);
    let (a, b) = (instance(&server, &clock), instance(&server, &clock));
    let p = Principal::builder("alice").expires_at(EXP).build();
    assert!(!b.is_revoked("jti-1", &p).await.unwrap());
    a.revoke("jti-1", EXP).await.unwrap();
    assert!(a.local().contains("jti-1"));
    assert!(!b.local().contains("jti-1"));
    assert!(b.is_revoked("jti-1", &p).await.unwrap());
    // Remembered locally once seen.
    assert!(b.local().contains("jti-1"));
    assert!(!b.is_revoked("jti-2", &p).await.unwrap());

    // Redis expires the entry a leeway after `exp`, by its own clock.
    let client = redis::Client::open(server.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let at: u64 = redis::cmd("EXPIRETIME")
        .arg("protothrive:revoked:jti-1")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(at, EXP + 300);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_redis_gone_the_local_list_decides_or_the_request_is_refused() {
    let mut server = RedisServer::start();
    let clock = ManualClock::at_unix(1_000);
    let open = instance(&server, &clock);
    let closed =
        RedisRevocations::builder(server.url(), RevocationList::new(Arc::new(clock.clone())))
            .fail_closed()
            .build()
            .unwrap();
    let p = Principal::builder("alice").expires_at(EXP).build();
    open.revoke("mine", EXP).await.unwrap();
    server.kill();
    assert!(open.is_revoked("mine", &p).await.unwrap());
    assert!(!open.is_revoked("other", &p).await.unwrap());
    let err = closed.is_revoked("other", &p).await.unwrap_err();
    assert_eq!(err.reason(), Reason::Unavailable);
    let err = open.revoke("late", EXP).await.unwrap_err();
    assert!(err.to_string().starts_with("revocation store: "), "{err}");
    assert!(open.local().contains("late"), "revoked here all the same");
}
