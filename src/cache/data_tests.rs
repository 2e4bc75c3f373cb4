//! The data cache on a manual clock: coalesced loads, TTLs, failures and invalidation.

use std::sync::atomic::{AtomicUsize, Ordering};

use super::*;
use crate::clock::ManualClock;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_misses_make_one_load_and_the_ttl_holds() {
    let clock = ManualClock::default();
    let cache = DataCache::builder().clock(Arc::new(clock.clone())).build();
    let calls = Arc::new(AtomicUsize::new(0));
    let (release, wait) = tokio::sync::watch::channel(false);
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let cache = cache.clone();
            let calls = calls.clone();
            let mut wait = wait.clone();
            tokio::spawn(async move {
                cache
                    .get_or_load("k", Duration::from_secs(10), || async move {
                        calls.fetch_add(1, Ordering::SeqCst);
                        // Hold the load until every task has asked.
                        let _ = wait.wait_for(|go| *go).await;
                        Ok::<_, std::io::Error>(String::from("v"))
                    })
                    .await
                    .unwrap()
            })
        })
        .collect();
    // Let every task reach the cache before the load finishes.
    for _ in 0..100 {
        tokio::task::yield_now().await;
    }
    release.send(true).unwrap();
    for t in tasks {
        assert_eq!(t.await.unwrap(), "v");
    }
    assert_eq!(calls.load(Ordering::SeqCst), 1);

    clock.advance(Duration::from_secs(9));
    let again: String = cache
        .get_or_load("k", Duration::from_secs(10), || async {
            Err::<String, _>(std::io::Error::other("fresh: not called"))
        })
        .await
        .unwrap();
    assert_eq!(again, "v");
    clock.advance(Duration::from_secs(1));
    let reloaded: String = cache
        .get_or_load("k", Duration::from_secs(10), || async {
            Ok::<_, std::io::Error>(String::from("new"))
        })
        .await
        .unwrap();
    assert_eq!(reloaded, "new");
}

#[tokio::test]
async fn a_failed_load_stores_nothing_and_invalidation_drops() {
    let cache = DataCache::builder().build();
    let failed: Result<u8, _> = cache
        .get_or_load("k", Duration::from_secs(5), || async {
            Err(std::io::Error::other("db down"))
        })
        .await;
    assert_eq!(failed.unwrap_err().to_string(), "db down");
    assert!(cache.is_empty());
    let ttl = Duration::from_secs(5);
    let _: u8 = cache
        .get_or_load("user:1:a", ttl, || async { Ok::<_, std::io::Error>(1) })
        .await
        .unwrap();
    let _: u8 = cache
        .get_or_load("user:1:b", ttl, || async { Ok::<_, std::io::Error>(2) })
        .await
        .unwrap();
    let _: u8 = cache
        .get_or_load("user:2:a", ttl, || async { Ok::<_, std::io::Error>(3) })
        .await
        .unwrap();
    cache.invalidate_prefix("user:1:").await;
    assert_eq!(cache.len(), 1);
    cache.invalidate("user:2:a").await;
    assert!(cache.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_value_loaded_across_an_invalidation_is_returned_but_not_stored() {
    let cache = DataCache::builder().build();
    let (release, asked) = (
        Arc::new(tokio::sync::Notify::new()),
        Arc::new(tokio::sync::Notify::new()),
    );
    let load = tokio::spawn({
        let (cache, release, asked) = (cache.clone(), release.clone(), asked.clone());
        async move {
            cache
                .get_or_load("user:1:roadmaps", Duration::from_secs(60), || async move {
                    asked.notify_one();
                    release.notified().await;
                    Ok::<_, std::io::Error>(String::from("old"))
                })
                .await
        }
    });
    asked.notified().await;
    cache.invalidate_prefix("user:1:").await;
    release.notify_one();
    assert_eq!(load.await.unwrap().unwrap(), "old");
    let next: String = cache
        .get_or_load("user:1:roadmaps", Duration::from_secs(60), || async {
            Ok::<_, std::io::Error>(String::from("new"))
        })
        .await
        .unwrap();
    assert_eq!(next, "new");
}
