//! The cache's Redis tier and invalidation broadcast against a real `redis-server`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use protothrive::cache::{Purge, RedisTier};
use tokio::sync::mpsc;

use crate::support::redis::RedisServer;
use crate::support::redis_cluster::on_single_and_cluster;

on_single_and_cluster! {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn entries_live_for_their_ttl_and_go_by_key_prefix_and_tag(server) {
        let tier = RedisTier::builder(server.url()).build().unwrap();
        let minute = Duration::from_secs(60);
        let tags = |t: &[&str]| t.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        tier.put("GET /a", b"a", minute, &tags(&["t1"]))
            .await
            .unwrap();
        tier.put("GET /b", b"b", minute, &tags(&["t1", "t2"]))
            .await
            .unwrap();
        tier.put("GET /c*", b"c", minute, &[]).await.unwrap();
        tier.put("GET /d", b"d", minute, &[]).await.unwrap();
        assert_eq!(
            tier.get("GET /a").await.unwrap().as_deref(),
            Some(&b"a"[..])
        );
        assert_eq!(tier.get("GET /zzz").await.unwrap(), None);

        // On a cluster the names carry their shard's hash tag: `protothrive:cache:{3}GET /a`.
        let keys: Vec<String> = server.query(&["KEYS", "protothrive:cache:*"]).await;
        let named = |end: &str| keys.iter().find(|k| k.ends_with(end)).unwrap().clone();
        let pttl: i64 = server.query(&["PTTL", &named("GET /a")]).await;
        assert!((1..=60_000).contains(&pttl), "{pttl}");
        let tag_ttl: i64 = server.query(&["PTTL", &named("tag:t2")]).await;
        assert!((1..=60_000).contains(&tag_ttl), "{tag_ttl}");

        assert_eq!(tier.delete_tag("t1").await.unwrap(), 2);
        assert_eq!(tier.get("GET /a").await.unwrap(), None);
        assert_eq!(tier.get("GET /b").await.unwrap(), None);
        // A glob character in a prefix is literal: `GET /c*` removes `GET /c*` only.
        assert_eq!(tier.delete_prefix("GET /c*").await.unwrap(), 1);
        assert_eq!(
            tier.get("GET /d").await.unwrap().as_deref(),
            Some(&b"d"[..])
        );
        tier.delete("GET /d").await.unwrap();
        assert_eq!(tier.get("GET /d").await.unwrap(), None);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_redis_is_an_error_within_the_timeout_and_the_tier_comes_back() {
    let mut server = RedisServer::start();
    let tier = RedisTier::builder(server.url()).build().unwrap();
    tier.put("k", b"v", Duration::from_secs(60), &[])
        .await
        .unwrap();
    server.kill();
    let started = tokio::time::Instant::now();
    let read = tier.get("k").await.unwrap_err();
    assert!(read.to_string().starts_with("cache tier: "), "{read}");
    let write = tier
        .put("k", b"v", Duration::from_secs(1), &[])
        .await
        .unwrap_err();
    assert!(write.to_string().starts_with("cache tier: "), "{write}");
    assert!(started.elapsed() < Duration::from_secs(1));
    server.restart();
    for _ in 0..200 {
        if tier.ping().await {
            // The entry died with the killed server (no persistence): a clean miss, no error.
            assert_eq!(tier.get("k").await, Ok(None));
            return;
        }
        tokio::task::yield_now().await;
    }
    panic!("the tier did not come back");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalidations_reach_every_subscriber_and_a_reconnect_says_all() {
    let mut server = RedisServer::start();
    let a = RedisTier::builder(server.url()).build().unwrap();
    let b = RedisTier::builder(server.url()).build().unwrap();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let _sub = b
        .subscribe(move |i| {
            log.lock().unwrap().push(i.clone());
            let _ = tx.send(i);
        })
        .unwrap();
    // Subscribed: announced as "drop everything" (nothing was held before it).
    assert_eq!(rx.recv().await, Some(Purge::All));
    a.publish(&Purge::Tag("roadmap:7".into())).await.unwrap();
    assert_eq!(rx.recv().await, Some(Purge::Tag("roadmap:7".into())));
    a.publish(&Purge::KeyPrefix("GET /snippets".into()))
        .await
        .unwrap();
    assert_eq!(
        rx.recv().await,
        Some(Purge::KeyPrefix("GET /snippets".into()))
    );

    // Redis restarts: the subscriber hears that it may have missed messages, then resubscribes.
    server.restart();
    assert_eq!(rx.recv().await, Some(Purge::All));
    for _ in 0..400 {
        let _ = a.publish(&Purge::Key("after".into())).await;
        if let Ok(Some(i)) = tokio::time::timeout(Duration::from_millis(50), rx.recv()).await
            && i == Purge::Key("after".into())
        {
            return;
        }
    }
    panic!("no message after the restart: {:?}", seen.lock().unwrap());
}

on_single_and_cluster! {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn data_caches_share_values_through_redis_and_invalidate_each_other(server) {
        use protothrive::cache::DataCache;
        let tier = || RedisTier::builder(server.url()).build().unwrap();
        let a = DataCache::builder().redis(tier()).build();
        let b = DataCache::builder().redis(tier()).build();
        let (tx, mut rx) = mpsc::unbounded_channel();
        let b2 = b.clone();
        let _sub = tier()
            .subscribe(move |i| {
                b2.apply(&i);
                let _ = tx.send(i);
            })
            .unwrap();
        assert_eq!(rx.recv().await, Some(Purge::All));
        let ttl = Duration::from_secs(60);
        let v: String = a
            .get_or_load("q:1", ttl, || async {
                Ok::<_, std::io::Error>("from db".into())
            })
            .await
            .unwrap();
        assert_eq!(v, "from db");
        // B finds it in Redis: its loader is not called, and it is promoted to B's L1.
        let v: String = b
            .get_or_load("q:1", ttl, || async {
                Err::<String, _>(std::io::Error::other("not called"))
            })
            .await
            .unwrap();
        assert_eq!(v, "from db");
        assert_eq!(b.len(), 1);
        // A write on A invalidates: B's L1 drops it, Redis too; B loads anew.
        a.invalidate("q:1").await;
        assert_eq!(rx.recv().await, Some(Purge::Key("q:1".into())));
        assert!(b.is_empty());
        let v: String = b
            .get_or_load("q:1", ttl, || async {
                Ok::<_, std::io::Error>("new".into())
            })
            .await
            .unwrap();
        assert_eq!(v, "new");
    }
}

on_single_and_cluster! {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_key_purge_takes_its_vary_variants_and_a_uri_purge_scans(server) {
        use protothrive::cache::{CacheEntry, CacheTier};
        let tier = RedisTier::builder(server.url()).build().unwrap();
        let minute = Duration::from_secs(60);
        let marker = CacheEntry::Vary(Arc::from(vec![http::header::ACCEPT]));
        for key in [
            "GET http://h/a",
            "GET http://h/a\x1fv=accept:json",
            "GET http://h/ab",
            "GET http://h/b?x=1",
        ] {
            CacheTier::put(&tier, key, &marker, minute).await;
        }
        CacheTier::invalidate(&tier, &Purge::Key("GET http://h/a".into())).await;
        assert!(CacheTier::get(&tier, "GET http://h/a").await.is_none());
        assert!(
            CacheTier::get(&tier, "GET http://h/a\x1fv=accept:json")
                .await
                .is_none()
        );
        assert!(CacheTier::get(&tier, "GET http://h/ab").await.is_some());
        CacheTier::invalidate(&tier, &Purge::Uri("/b?x=1".into())).await;
        assert!(CacheTier::get(&tier, "GET http://h/b?x=1").await.is_none());
        assert!(CacheTier::get(&tier, "GET http://h/ab").await.is_some());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_requested_before_a_purge_is_refused_and_tags_keep_only_live_entries() {
    use std::time::SystemTime;
    let server = RedisServer::start();
    let tier = RedisTier::builder(server.url()).build().unwrap();
    let minute = Duration::from_secs(60);
    let tags = vec!["roadmap:1".to_owned()];
    #[allow(clippy::disallowed_methods)] // the tombstone compares with Redis's wall clock
    let before = SystemTime::now() - Duration::from_secs(5);
    assert!(
        tier.put_since("k", b"old", minute, &tags, Some(before))
            .await
            .unwrap()
    );
    tier.delete_tag("roadmap:1").await.unwrap();
    // A response requested before the purge (it may hold what was purged) is not written back.
    assert!(
        !tier
            .put_since("k", b"old", minute, &tags, Some(before))
            .await
            .unwrap()
    );
    assert_eq!(tier.get("k").await.unwrap(), None);
    // Untagged writes, and writes of other tags, go through.
    assert!(
        tier.put_since("k", b"v", minute, &[], Some(before))
            .await
            .unwrap()
    );
    let other = vec!["roadmap:2".to_owned()];
    assert!(
        tier.put_since("j", b"v", Duration::from_millis(1), &other, None)
            .await
            .unwrap()
    );
    // An expired member is trimmed from its tag by the next write of that tag.
    let client = redis::Client::open(server.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    for _ in 0..100 {
        let left: i64 = redis::cmd("EXISTS")
            .arg("protothrive:cache:j")
            .query_async(&mut conn)
            .await
            .unwrap();
        if left == 0 {
            break;
        }
        tokio::task::yield_now().await;
    }
    assert!(
        tier.put_since("i", b"v", minute, &other, None)
            .await
            .unwrap()
    );
    let members: Vec<String> = redis::cmd("ZRANGE")
        .arg("protothrive:cache:tag:roadmap:2")
        .arg(0)
        .arg(-1)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(members, vec!["protothrive:cache:i".to_owned()]);
}

on_single_and_cluster! {
    /// A tag's tombstone lives apart from the tags: purging `path:/a` and then writing an entry
    /// tagged `path:/a:purged` (an implicit tag of the URI `/a:purged`) stores it, where the
    /// tombstone used to be that tag's key and the write failed with `WRONGTYPE`.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_tombstone_never_collides_with_a_tag(server) {
        let tier = RedisTier::builder(server.url()).build().unwrap();
        let minute = Duration::from_secs(60);
        let tag = |t: &str| vec![t.to_owned()];
        tier.put("GET /a", b"a", minute, &tag("path:/a"))
            .await
            .unwrap();
        assert_eq!(tier.delete_tag("path:/a").await.unwrap(), 1);
        tier.put("GET /a:purged", b"p", minute, &tag("path:/a:purged"))
            .await
            .unwrap();
        assert_eq!(
            tier.get("GET /a:purged").await.unwrap().as_deref(),
            Some(&b"p"[..])
        );
        assert_eq!(tier.delete_tag("path:/a:purged").await.unwrap(), 1);
        // The tombstone still refuses a write of a response requested before the purge.
        let before = std::time::SystemTime::UNIX_EPOCH + Duration::from_secs(1);
        let stored = tier
            .put_since("GET /a", b"old", minute, &tag("path:/a"), Some(before))
            .await
            .unwrap();
        assert!(!stored);
        assert_eq!(tier.get("GET /a").await.unwrap(), None);
    }
}

/// Records the keys of every batch it is asked; doubles them.
#[derive(Default)]
struct Doubler(Mutex<Vec<Vec<u32>>>);

impl protothrive::batch::BatchFn for Doubler {
    type Key = u32;
    type Value = u64;
    type Error = ();
    async fn load(&self, keys: &[u32]) -> Result<std::collections::HashMap<u32, u64>, ()> {
        let mut asked = keys.to_vec();
        asked.sort_unstable();
        self.0.lock().unwrap().push(asked);
        Ok(keys.iter().map(|&k| (k, u64::from(k) * 2)).collect())
    }
}

on_single_and_cluster! {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn shared_loader_caches_share_values_through_redis_and_invalidate_each_other(server) {
        use protothrive::batch::{LoaderFactory, SharedCache};
        use protothrive::cache::DataCache;
        let tier = || RedisTier::builder(server.url()).build().unwrap();
        let ttl = Duration::from_secs(60);
        let instance = |cache: DataCache| {
            LoaderFactory::new(SharedCache::new(Doubler::default(), cache, "double:", ttl))
        };
        let b_cache = DataCache::builder().redis(tier()).build();
        let (a, b) = (
            instance(DataCache::builder().redis(tier()).build()),
            instance(b_cache.clone()),
        );
        let (tx, mut rx) = mpsc::unbounded_channel();
        let _sub = tier()
            .subscribe(move |purge| {
                b_cache.apply(&purge);
                let _ = tx.send(purge);
            })
            .unwrap();
        assert_eq!(rx.recv().await, Some(Purge::All));
        let calls =
            |f: &LoaderFactory<SharedCache<Doubler>>| f.batch_fn().inner().0.lock().unwrap().clone();

        assert_eq!(
            a.loader().load_many([1, 2, 3]).await,
            [2, 4, 6].map(|v| Ok(Some(v))).to_vec()
        );
        // B finds 1, 2 and 3 in Redis (one MGET) and asks its function for 4 only.
        assert_eq!(
            b.loader().load_many([1, 2, 3, 4]).await,
            [2, 4, 6, 8].map(|v| Ok(Some(v))).to_vec()
        );
        assert_eq!((calls(&a), calls(&b)), (vec![vec![1, 2, 3]], vec![vec![4]]));
        // A write on A invalidates key 2 everywhere: B's memory and Redis; B asks again.
        a.batch_fn().invalidate(&2).await;
        assert_eq!(rx.recv().await, Some(Purge::Key("double:2".into())));
        assert_eq!(
            b.loader().load_many([1, 2]).await,
            [2, 4].map(|v| Ok(Some(v))).to_vec()
        );
        assert_eq!(calls(&b), vec![vec![4], vec![2]]);
    }
}
