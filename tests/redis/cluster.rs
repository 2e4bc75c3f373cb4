//! The stores on a real Redis Cluster losing a node mid-test: a master killed with no replica
//! (its slots fail: the stores take their outage fallback for those, the other slots keep
//! serving, the purge subscription moves to another node), and a master killed with a replica
//! (a real failover: the stores follow the new master once it is promoted), and a slot moved
//! between masters (`ASK` while it migrates, `MOVED` after). The suites that run
//! on both one Redis and a cluster are in `rate_limit`, `cache`, `http_cache` and
//! `write_through` (their `::cluster` tests).

use std::sync::Arc;
use std::time::{Duration, Instant};

use http::{Request, StatusCode};
use protothrive::cache::{DataCache, Purge, RedisTier};
use protothrive::clock::ManualClock;
use protothrive::rate_limit::{OnStoreError, RedisStore};
use protothrive::redis_handle::RedisHandle;
use tokio::sync::mpsc;
use tower::ServiceExt;

use crate::support::redis_cluster::RedisCluster;

/// How long calls fail fast after a failure (the handle's breaker), skipped on the manual clock.
const FAIL_FAST: Duration = Duration::from_millis(500);

/// Writes `n` entries and returns, for each, its key and the node serving its slot.
async fn spread(cluster: &RedisCluster, tier: &RedisTier, n: usize) -> Vec<(String, usize)> {
    let mut out = Vec::new();
    let stored: Vec<String> = {
        for i in 0..n {
            let key = format!("GET /items/{i}");
            tier.put(&key, b"v", Duration::from_secs(60), &["items".to_owned()])
                .await
                .unwrap();
        }
        cluster
            .query(&["KEYS", "protothrive:cache:*GET /items/*"])
            .await
    };
    for i in 0..n {
        let key = format!("GET /items/{i}");
        let name = stored.iter().find(|s| s.ends_with(&key)).unwrap();
        out.push((key, cluster.master_of(name)));
    }
    out
}

/// A handle on `cluster` whose breaker runs on the manual clock it returns.
fn handle(cluster: &RedisCluster) -> (RedisHandle, ManualClock) {
    let clock = ManualClock::default();
    let handle = RedisHandle::builder(cluster.url())
        .timeout(Duration::from_millis(100))
        .clock(Arc::new(clock.clone()))
        .build()
        .unwrap();
    (handle, clock)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[allow(clippy::disallowed_methods)] // what is measured is how long a call waits
async fn a_killed_master_fails_its_slots_over_to_the_outage_policy_and_the_rest_serves() {
    let mut cluster = RedisCluster::start();
    let (handle, clock) = handle(&cluster);
    let tier = RedisTier::from_handle(&handle).build().unwrap();
    let entries = spread(&cluster, &tier, 24).await;
    let mut masters: Vec<usize> = entries.iter().map(|e| e.1).collect();
    masters.sort_unstable();
    masters.dedup();
    assert_eq!(masters, [0, 1, 2], "entries spread over every master");

    // The subscription is on the first node of the list: the one killed.
    let (tx, mut rx) = mpsc::unbounded_channel();
    let _sub = tier
        .subscribe(move |p| {
            let _ = tx.send(p);
        })
        .unwrap();
    assert_eq!(rx.recv().await, Some(Purge::All));
    let data = DataCache::builder()
        .redis(RedisTier::from_handle(&handle).build().unwrap())
        .build();
    let svc = crate::rate_limit::limited(
        RedisStore::from_handle(&handle).build().unwrap(),
        "1000/min burst 1000",
        OnStoreError::Local,
        Arc::new(clock.clone()),
    );

    let victim = 0;
    cluster.kill(victim);
    let (dead, live): (Vec<_>, Vec<_>) = entries.iter().partition(|e| e.1 == victim);
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut served = vec![false; live.len()];
    let mut heard = false;
    while !(served.iter().all(|s| *s) && heard) {
        assert!(
            Instant::now() < deadline,
            "live slots served: {served:?}; purge heard: {heard}"
        );
        clock.advance(FAIL_FAST);
        // A live slot answers (once the breaker lets calls through); a dead one never does.
        for (i, (key, _)) in live.iter().enumerate() {
            if let Ok(v) = tier.get(key).await {
                assert_eq!(v.as_deref(), Some(&b"v"[..]), "{key}");
                served[i] = true;
            }
        }
        for (key, _) in &dead {
            let started = Instant::now();
            assert!(tier.get(key).await.is_err(), "{key} is on the dead master");
            assert!(started.elapsed() < Duration::from_secs(1), "bounded");
            // The data cache skips the dead tier: its loader answers.
            let v: String = data
                .get_or_load(&format!("q:{key}"), Duration::from_secs(60), || async {
                    Ok::<_, std::io::Error>("loaded".to_owned())
                })
                .await
                .unwrap();
            assert_eq!(v, "loaded");
        }
        // Rate limits on any slot: decided by Redis or by the local fallback, never a 500.
        let res = svc.clone().oneshot(Request::new(())).await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        // The subscription moves to a live node: a purge published now is heard.
        let _ = tier.publish(&Purge::Tag("after-kill".into())).await;
        while let Ok(p) = rx.try_recv() {
            heard |= p == Purge::Tag("after-kill".into());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[allow(clippy::disallowed_methods)] // what is measured is how long a call waits
async fn a_failover_is_followed_once_the_replica_is_promoted() {
    let mut cluster = RedisCluster::with(3, 1);
    let (handle, clock) = handle(&cluster);
    let tier = RedisTier::from_handle(&handle).build().unwrap();
    let limits = RedisStore::from_handle(&handle).build().unwrap();
    let entries = spread(&cluster, &tier, 12).await;
    let (key, victim) = entries[0].clone();
    cluster.kill(victim);
    let deadline = Instant::now() + Duration::from_secs(30);
    // Meanwhile every call is bounded and the rate-limit store reports an outage, not a panic.
    loop {
        assert!(Instant::now() < deadline, "the failover was never followed");
        clock.advance(FAIL_FAST);
        let started = Instant::now();
        let got = tier.get(&key).await;
        assert!(started.elapsed() < Duration::from_secs(1), "bounded");
        let put = tier.put(&key, b"w", Duration::from_secs(60), &[]).await;
        if got.is_ok() && put.is_ok() {
            break;
        }
        use protothrive::rate_limit::RemoteStore;
        let _ = limits
            .check_many(vec![(key.clone(), "1/s burst 5".parse().unwrap())], 0)
            .await;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(tier.get(&key).await.unwrap().as_deref(), Some(&b"w"[..]));
    let live: Vec<usize> = (0..6).filter(|&i| i != victim).collect();
    cluster.wait_until_ok(&live);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slot_moved_to_another_master_is_followed_through_ask_then_moved() {
    let cluster = RedisCluster::start();
    let (handle, _clock) = handle(&cluster);
    let tier = RedisTier::from_handle(&handle).build().unwrap();
    let (key, src) = spread(&cluster, &tier, 1).await.remove(0);
    let names: Vec<String> = cluster.query(&["KEYS", "protothrive:cache:*"]).await;
    let stored = names.iter().find(|n| n.ends_with(&key)).unwrap().clone();
    let slot = cluster
        .cli(0, &["CLUSTER", "KEYSLOT", &stored])
        .trim()
        .to_owned();
    let dst = (src + 1) % 3;
    let id = |i: usize| cluster.cli(i, &["CLUSTER", "MYID"]).trim().to_owned();
    let (src_id, dst_id) = (id(src), id(dst));
    assert_eq!(
        cluster
            .cli(dst, &["CLUSTER", "SETSLOT", &slot, "IMPORTING", &src_id])
            .trim(),
        "OK"
    );
    assert_eq!(
        cluster
            .cli(src, &["CLUSTER", "SETSLOT", &slot, "MIGRATING", &dst_id])
            .trim(),
        "OK"
    );
    // Every key of the slot moves: the source now answers ASK for them.
    let port = cluster.port(dst).to_string();
    let keys = cluster.cli(src, &["CLUSTER", "GETKEYSINSLOT", &slot, "1000"]);
    let mut migrate = vec!["MIGRATE", "127.0.0.1", &port, "", "0", "5000", "KEYS"];
    migrate.extend(keys.lines().filter(|k| !k.is_empty()));
    assert_eq!(cluster.cli(src, &migrate).trim(), "OK");
    assert_eq!(
        tier.get(&key).await.unwrap().as_deref(),
        Some(&b"v"[..]),
        "followed through ASK"
    );
    for i in 0..3 {
        cluster.cli(i, &["CLUSTER", "SETSLOT", &slot, "NODE", &dst_id]);
    }
    // The slot is the destination's now: the source answers MOVED, and the client follows.
    assert_eq!(
        tier.get(&key).await.unwrap().as_deref(),
        Some(&b"v"[..]),
        "followed through MOVED"
    );
    tier.put(&key, b"w", Duration::from_secs(60), &["items".to_owned()])
        .await
        .unwrap();
    assert_eq!(tier.get(&key).await.unwrap().as_deref(), Some(&b"w"[..]));
    assert_eq!(cluster.master_of(&stored), dst);
}
