//! Purges the Redis tier cannot apply (the server hangs) are kept, replayed once it answers, and
//! hold up their write meanwhile: an acknowledged write is never served older from any
//! instance's cache, and the writer itself reads nothing from Redis until its purges are in.

use std::sync::atomic::Ordering;
use std::time::Duration;

use protothrive::cache::{CacheTier, DataCache, Purge, RedisTier};
use tokio::sync::mpsc;

use super::http_cache::{get, instance_on};
use crate::support::redis::RedisServer;

const MINUTE: Duration = Duration::from_secs(60);
/// Far longer than any step of these tests: reaching it means the replay never came.
const LONG: Duration = Duration::from_secs(20);

/// Yields until `tier` keeps `n` purges (each attempt ends within the tier's 50 ms timeout).
async fn kept(tier: &RedisTier, n: usize) {
    tokio::time::timeout(LONG, async {
        while tier.unapplied_purges() != n {
            tokio::task::yield_now().await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("never {n} kept purges: {}", tier.unapplied_purges()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_is_answered_once_its_purge_reaches_redis_and_the_other_instance() {
    let server = RedisServer::start();
    let tier = |patience| {
        RedisTier::builder(server.url())
            .purge_patience(patience)
            .build()
            .unwrap()
    };
    let mut a = instance_on(tier(LONG), "a");
    let mut b = instance_on(tier(LONG), "b");
    assert_eq!(a.purges.recv().await, Some(Purge::All));
    assert_eq!(b.purges.recv().await, Some(Purge::All));
    assert_eq!(get(&a.svc, "/snippets").await.0, "a/snippets #1");
    // B serves A's answer, from Redis and then from its own L1.
    assert_eq!(get(&b.svc, "/snippets").await.0, "a/snippets #1");
    let (body, status) = get(&b.svc, "/snippets").await;
    assert_eq!(body, "a/snippets #1");
    assert!(status.contains("hit"), "{status}");

    // Redis hangs; a write on A purges the tag.
    server.pause();
    let write = tokio::spawn({
        let handle = a.handle.clone();
        async move { handle.invalidate(Purge::Tag("snippets".into())).await }
    });
    kept(&a.tier, 1).await;
    assert!(
        !write.is_finished(),
        "answered before its purge was through"
    );
    // A reads nothing from Redis meanwhile (it would wait out the timeout and fail otherwise):
    // its own write is what it serves.
    assert_eq!(a.tier.get("GET http://api.test/snippets").await, Ok(None));
    assert_eq!(get(&a.svc, "/snippets").await.0, "a/snippets #2");

    server.resume();
    tokio::time::timeout(LONG, write).await.unwrap().unwrap();
    assert_eq!(a.tier.unapplied_purges(), 0);
    // Answered: the purge reached B's L1, and Redis no longer holds the old answer.
    assert_eq!(b.purges.recv().await, Some(Purge::Tag("snippets".into())));
    assert_eq!(b.handle.l1_len(), 0);
    assert_eq!(get(&b.svc, "/snippets").await.0, "b/snippets #1");
    assert_eq!(b.calls.load(Ordering::SeqCst), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_purge_kept_past_its_patience_is_replayed_when_redis_answers() {
    let server = RedisServer::start();
    let tier = RedisTier::builder(server.url())
        .purge_patience(Duration::ZERO)
        .build()
        .unwrap();
    let other = RedisTier::builder(server.url()).build().unwrap();
    let (tx, mut heard) = mpsc::unbounded_channel();
    let _sub = other
        .subscribe(move |p| {
            let _ = tx.send(p);
        })
        .unwrap();
    assert_eq!(heard.recv().await, Some(Purge::All));
    let tags = ["t".to_owned()];
    tier.put("GET /x", b"x", MINUTE, &tags).await.unwrap();
    tier.put("GET /y", b"y", MINUTE, &[]).await.unwrap();

    server.pause();
    // With no patience the purge returns after its one failed attempt, and is kept.
    CacheTier::invalidate(&tier, &Purge::Tag("t".into())).await;
    assert_eq!(tier.unapplied_purges(), 1);
    // Kept purges hold back every read of this tier, even of untouched keys.
    assert_eq!(tier.get("GET /y").await, Ok(None));
    assert_eq!(
        tier.get_many(&["GET /x", "GET /y"]).await,
        Ok(vec![None, None])
    );

    server.resume();
    tokio::time::timeout(LONG, tier.settled()).await.unwrap();
    assert_eq!(tier.unapplied_purges(), 0);
    assert_eq!(heard.recv().await, Some(Purge::Tag("t".into())));
    assert_eq!(other.get("GET /x").await, Ok(None));
    assert_eq!(
        other.get("GET /y").await.unwrap().as_deref(),
        Some(&b"y"[..])
    );
    assert_eq!(
        tier.get("GET /y").await.unwrap().as_deref(),
        Some(&b"y"[..])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_256_kept_purges_the_replay_purges_everything() {
    let server = RedisServer::start();
    let tier = RedisTier::builder(server.url())
        .purge_patience(Duration::ZERO)
        .build()
        .unwrap();
    tier.put("GET /kept", b"k", MINUTE, &[]).await.unwrap();
    server.pause();
    for i in 0..=256 {
        CacheTier::invalidate(&tier, &Purge::Tag(format!("t{i}"))).await;
    }
    // 257 purges: bounded, as one purge of everything.
    assert_eq!(tier.unapplied_purges(), 1);
    server.resume();
    tokio::time::timeout(LONG, tier.settled()).await.unwrap();
    assert_eq!(tier.get("GET /kept").await, Ok(None));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_data_cache_invalidation_redis_missed_is_replayed() {
    let server = RedisServer::start();
    let tier = || RedisTier::builder(server.url()).purge_patience(LONG);
    let a_tier = tier().build().unwrap();
    let a = DataCache::builder().redis(a_tier.clone()).build();
    let b = DataCache::builder().redis(tier().build().unwrap()).build();
    let load = |v: &'static str| move || async move { Ok::<_, std::io::Error>(v.to_owned()) };
    let v: String = a.get_or_load("q:1", MINUTE, load("old")).await.unwrap();
    assert_eq!(v, "old");

    server.pause();
    let write = tokio::spawn({
        let a = a.clone();
        async move { a.invalidate("q:1").await }
    });
    kept(&a_tier, 1).await;
    assert!(!write.is_finished());
    server.resume();
    tokio::time::timeout(LONG, write).await.unwrap().unwrap();
    // Redis dropped it before the invalidation returned: B loads the new value.
    let v: String = b.get_or_load("q:1", MINUTE, load("new")).await.unwrap();
    assert_eq!(v, "new");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cache_settles_once_its_kept_purges_are_through() {
    let server = RedisServer::start();
    let tier = RedisTier::builder(server.url())
        .purge_patience(Duration::ZERO)
        .build()
        .unwrap();
    let a = instance_on(tier, "a");
    // Nothing kept: settled at once.
    tokio::time::timeout(LONG, a.handle.settled())
        .await
        .unwrap();
    server.pause();
    a.handle.invalidate(Purge::Tag("snippets".into())).await;
    assert_eq!(a.tier.unapplied_purges(), 1);
    // Not while Redis hangs (the replay retries every 100 ms meanwhile)...
    let early = tokio::time::timeout(Duration::from_millis(300), a.handle.settled()).await;
    assert!(early.is_err(), "settled with a purge still kept");
    assert_eq!(a.tier.unapplied_purges(), 1);
    // ...and once it answers.
    server.resume();
    tokio::time::timeout(LONG, a.handle.settled())
        .await
        .unwrap();
    assert_eq!(a.tier.unapplied_purges(), 0);
}
