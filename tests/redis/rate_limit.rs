//! The Redis rate-limit store: the Lua script against the in-process GCRA, one limit across
//! instances, TTLs, and what the layer does when Redis is killed or hung.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use http::{Request, Response, StatusCode};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use protothrive::clock::{ManualClock, SharedClock};
use protothrive::rate_limit::{
    Decision, InMemoryStore, Limit, OnStoreError, Quota, RateLimitLayer, RateLimitStore,
    RedisStore, RemoteStore, TimeSource,
};
use tower::{Service, ServiceExt, service_fn};

use crate::support::redis::RedisServer;
use crate::support::redis_cluster::on_single_and_cluster;

fn quota(s: &str) -> Quota {
    s.parse().unwrap()
}

async fn redis_cmd<T: redis::FromRedisValue>(url: &str, args: &[&str]) -> T {
    let client = redis::Client::open(url).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let mut cmd = redis::cmd(args[0]);
    for a in &args[1..] {
        cmd.arg(*a);
    }
    cmd.query_async(&mut conn).await.unwrap()
}

/// A service with one global limit decided by `store`, under `policy`.
pub(crate) fn limited(
    store: RedisStore,
    q: &str,
    policy: OnStoreError,
    clock: SharedClock,
) -> impl Service<
    Request<()>,
    Response = Response<protothrive::response::ResponseBody<()>>,
    Error = Infallible,
    Future: Send,
> + Clone {
    let layer = RateLimitLayer::builder()
        .limit(Limit::new("all", quota(q)))
        .remote_store(Arc::new(store), policy)
        .clock(clock)
        .build()
        .unwrap();
    tower::ServiceBuilder::new()
        .layer(layer)
        .service(service_fn(|_req: Request<()>| async {
            Ok::<_, Infallible>(Response::new(()))
        }))
}

fn manual() -> SharedClock {
    Arc::new(ManualClock::at_unix(1_700_000_000))
}

#[test]
fn the_script_decides_like_the_in_process_store() {
    let server = RedisServer::start();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let store = rt.block_on(async {
        RedisStore::builder(server.url())
            .time_source(TimeSource::Caller)
            .timeout(Duration::from_secs(5))
            .build()
            .unwrap()
    });
    static CASE: AtomicU64 = AtomicU64::new(0);
    // Quotas whose emission interval is a whole number of microseconds (the script's unit), and
    // random walks of time over two keys.
    let strategy = (
        1u32..=20,
        1u64..=2_000_000,
        1u32..=10,
        prop::collection::vec((0u64..=3_000_000, 0usize..2), 1..60),
    );
    let mut runner = TestRunner::new(Config {
        cases: 96,
        ..Config::default()
    });
    runner
        .run(&strategy, |(count, interval_us, burst, steps)| {
            let q = Quota::new(
                count,
                Duration::from_micros(interval_us * u64::from(count)),
                burst,
            )
            .unwrap();
            let case = CASE.fetch_add(1, Ordering::Relaxed);
            let local = InMemoryStore::default();
            let mut now_us = 1_000_000u64;
            for (advance, k) in steps {
                now_us += advance;
                let key = format!("case{case}:k{k}");
                let expected = local.check(&key, &q, now_us * 1_000);
                let got = rt
                    .block_on(store.check_many(vec![(key, q)], now_us * 1_000))
                    .unwrap()[0];
                prop_assert_eq!(got.is_allowed(), expected.is_allowed());
                prop_assert_eq!(got.remaining(), expected.remaining());
                prop_assert_eq!(got.retry_after(), expected.retry_after());
                prop_assert_eq!(got.reset(), expected.reset());
            }
            Ok(())
        })
        .unwrap();
}

on_single_and_cluster! {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn instances_share_one_limit_on_the_server_clock(server) {
        // Two instances whose own clocks disagree wildly: the server's clock decides. (Timeouts
        // of 5 s: a first call on a cluster connects to every master, which the default 50 ms
        // may not cover on a loaded machine; the clocks are the point here.)
        let a_clock = Arc::new(ManualClock::at_unix(1_700_000_000));
        a_clock.advance(Duration::from_secs(86_400));
        let a = limited(
            RedisStore::builder(server.url())
                .timeout(Duration::from_secs(5))
                .build()
                .unwrap(),
            "3/min burst 3",
            OnStoreError::FailClosed,
            a_clock,
        );
        let b = limited(
            RedisStore::builder(server.url())
                .timeout(Duration::from_secs(5))
                .build()
                .unwrap(),
            "3/min burst 3",
            OnStoreError::FailClosed,
            manual(),
        );
        let mut statuses = Vec::new();
        for svc in [&a, &b, &a, &b, &a, &b] {
            let res = svc.clone().oneshot(Request::new(())).await.unwrap();
            statuses.push(res.status());
        }
        assert_eq!(
            statuses.iter().filter(|s| **s == StatusCode::OK).count(),
            3,
            "{statuses:?}"
        );
        let refused = b.clone().oneshot(Request::new(())).await.unwrap();
        assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(refused.headers()["ratelimit-policy"], r#""all";q=3;w=60"#);
        let retry: u64 = refused.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((1..=20).contains(&retry), "{retry}");
    }
}

on_single_and_cluster! {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_key_expires_when_it_carries_no_information(server) {
        let store = RedisStore::builder(server.url())
            .key_prefix("t:")
            .timeout(Duration::from_secs(5))
            .build()
            .unwrap();
        let d = store
            .check_many(vec![("k".into(), quota("2/s burst 4"))], 0)
            .await
            .unwrap()[0];
        assert_eq!(d.remaining(), 3);
        let pttl: i64 = server.query(&["PTTL", "t:k"]).await;
        // One request's worth: 500 ms, no more.
        assert!((1..=500).contains(&pttl), "{pttl}");
        let keys: Vec<String> = server.query(&["KEYS", "*"]).await;
        assert_eq!(keys, vec!["t:k".to_owned()]);
    }
}

on_single_and_cluster! {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_checks_on_one_key_never_pass_the_burst(server) {
        let store = RedisStore::builder(server.url())
            .timeout(Duration::from_secs(5))
            .build()
            .unwrap();
        let q = quota("1/min burst 7");
        let tasks: Vec<_> = (0..200)
            .map(|_| {
                let store = store.clone();
                tokio::spawn(async move { store.check_many(vec![("hot".into(), q)], 0).await })
            })
            .collect();
        let mut allowed = 0;
        for t in tasks {
            if t.await.unwrap().unwrap()[0].is_allowed() {
                allowed += 1;
            }
        }
        assert_eq!(allowed, 7);
    }
}

/// Sends one request and returns (status, has `RateLimit` headers, wall time taken).
#[allow(clippy::disallowed_methods)] // the wall time of an outage is what is measured
async fn probe<S>(svc: &S) -> (StatusCode, bool, Duration)
where
    S: Service<
            Request<()>,
            Response = Response<protothrive::response::ResponseBody<()>>,
            Error = Infallible,
        > + Clone,
{
    let started = Instant::now();
    let res = svc.clone().oneshot(Request::new(())).await.unwrap();
    (
        res.status(),
        res.headers().contains_key("ratelimit"),
        started.elapsed(),
    )
}

/// Waits for the store to answer again (the connection manager reconnects in the background).
async fn until_up(store: &RedisStore) {
    for _ in 0..200 {
        if store.ping().await {
            return;
        }
        tokio::task::yield_now().await;
    }
    panic!("Redis did not come back");
}

async fn outage(policy: OnStoreError, hang: bool) {
    let mut server = RedisServer::start();
    let store = RedisStore::builder(server.url()).build().unwrap();
    let svc = limited(store.clone(), "100/s burst 100", policy, manual());
    let (status, headers, _) = probe(&svc).await;
    assert_eq!((status, headers), (StatusCode::OK, true));
    if hang {
        server.pause();
    } else {
        server.kill();
    }
    for _ in 0..3 {
        let (status, headers, elapsed) = probe(&svc).await;
        match policy {
            OnStoreError::FailOpen => assert_eq!((status, headers), (StatusCode::OK, false)),
            OnStoreError::FailClosed => {
                assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
            }
            _ => assert_eq!((status, headers), (StatusCode::OK, true)),
        }
        // The store's 50 ms timeout bounds the wait (generous margin for a loaded CI machine).
        assert!(elapsed < Duration::from_secs(1), "{elapsed:?}");
    }
    if hang {
        server.resume();
    } else {
        server.restart();
    }
    until_up(&store).await;
    let (status, headers, _) = probe(&svc).await;
    assert_eq!((status, headers), (StatusCode::OK, true));
    // Decided by Redis again: the key is there.
    let keys: Vec<String> = redis_cmd(&server.url(), &["KEYS", "*"]).await;
    assert_eq!(keys.len(), 1, "{keys:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_redis_fails_closed_with_503_and_recovers() {
    outage(OnStoreError::FailClosed, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_redis_fails_open_and_recovers() {
    outage(OnStoreError::FailOpen, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_redis_falls_back_to_the_local_limiter_and_recovers() {
    outage(OnStoreError::Local, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hung_redis_fails_closed_within_the_timeout_and_recovers() {
    outage(OnStoreError::FailClosed, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hung_redis_falls_back_to_the_local_limiter_and_recovers() {
    outage(OnStoreError::Local, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_local_fallback_still_limits() {
    let mut server = RedisServer::start();
    let store = RedisStore::builder(server.url()).build().unwrap();
    let svc = limited(store, "1/min burst 2", OnStoreError::Local, manual());
    server.kill();
    let mut statuses = Vec::new();
    for _ in 0..3 {
        statuses.push(probe(&svc).await.0);
    }
    assert_eq!(
        statuses,
        [
            StatusCode::OK,
            StatusCode::OK,
            StatusCode::TOO_MANY_REQUESTS
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_answer_count_is_never_a_500() {
    // A store that answers the wrong number of decisions is treated as down.
    #[derive(Debug)]
    struct Broken;
    impl RemoteStore for Broken {
        fn check_many(
            &self,
            _checks: Vec<(String, Quota)>,
            _now: u64,
        ) -> protothrive::rate_limit::CheckFuture {
            Box::pin(async { Ok(Vec::<Decision>::new()) })
        }
    }
    let layer = RateLimitLayer::builder()
        .limit(Limit::new("all", quota("5/s")))
        .remote_store(Arc::new(Broken), OnStoreError::FailClosed)
        .build()
        .unwrap();
    let svc = tower::ServiceBuilder::new()
        .layer(layer)
        .service(service_fn(|_req: Request<()>| async {
            Ok::<_, Infallible>(Response::new(()))
        }));
    let res = svc.oneshot(Request::new(())).await.unwrap();
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(res.headers()["retry-after"], "1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[allow(clippy::disallowed_methods)] // what is measured is how long a call waits
async fn a_hung_redis_is_waited_for_once_then_calls_fail_fast() {
    let server = RedisServer::start();
    let store = RedisStore::builder(server.url())
        .timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    let q = quota("100/s");
    let decisions = store.check_many(vec![("k".into(), q)], 0).await.unwrap();
    assert!(
        matches!(decisions[..], [Decision::Allow { .. }]),
        "{decisions:?}"
    );
    server.pause();
    let first = store
        .check_many(vec![("k".into(), q)], 0)
        .await
        .unwrap_err();
    assert_eq!(
        first.kind(),
        protothrive::rate_limit::StoreErrorKind::Timeout
    );
    // Within the fail-fast window the next call does not wait out the 2 s timeout again.
    let started = Instant::now();
    let next = store
        .check_many(vec![("k".into(), q)], 0)
        .await
        .unwrap_err();
    assert_eq!(
        next.kind(),
        protothrive::rate_limit::StoreErrorKind::Unavailable
    );
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    server.resume();
    until_up(&store).await;
    let decisions = store.check_many(vec![("k".into(), q)], 0).await.unwrap();
    assert!(
        matches!(decisions[..], [Decision::Allow { .. }]),
        "{decisions:?}"
    );
}

on_single_and_cluster! {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_limits_in_one_script_call_each_keep_their_own_quota(server) {
        let layer = RateLimitLayer::builder()
            .limit(
                Limit::new("ip", quota("2/min burst 2")).by(protothrive::rate_limit::KeyBy::ClientIp),
            )
            .limit(Limit::new("all", quota("10/min burst 10")))
            .remote_store(
                Arc::new(RedisStore::builder(server.url()).build().unwrap()),
                OnStoreError::FailClosed,
            )
            .build()
            .unwrap();
        let svc = tower::ServiceBuilder::new()
            .layer(layer)
            .service(service_fn(|_req: Request<()>| async {
                Ok::<_, Infallible>(Response::new(()))
            }));
        let req = || {
            let mut r = Request::new(());
            r.extensions_mut()
                .insert(protothrive::client_ip::ClientIp(std::net::IpAddr::from([
                    192, 0, 2, 1,
                ])));
            r
        };
        let mut last = None;
        for _ in 0..3 {
            last = Some(svc.clone().oneshot(req()).await.unwrap());
        }
        let refused = last.unwrap();
        assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
        // The per-IP limit (30 s apart) refused; the global one (6 s apart) counted all three.
        assert_eq!(
            refused.headers()["ratelimit"],
            r#""ip";r=0;t=60, "all";r=7;t=18"#
        );
        assert_eq!(
            refused.headers()["ratelimit-policy"],
            r#""ip";q=2;w=60, "all";q=10;w=60"#
        );
    }
}

on_single_and_cluster! {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn many_limits_in_one_call_answer_in_order_across_slots(server) {
        // The order is the point, not the latency: the first call on a cluster learns the slots
        // and connects to every master, which the default 50 ms may not cover on a loaded machine.
        let store = RedisStore::builder(server.url())
            .timeout(Duration::from_secs(5))
            .build()
            .unwrap();
        // Burst i + 1 per key: the first check leaves i, whichever slot (and master) it is on.
        let checks: Vec<_> = (0..12)
            .map(|i| (format!("k{i}"), quota(&format!("1/min burst {}", i + 1))))
            .collect();
        let remaining: Vec<u64> = store
            .check_many(checks, 0)
            .await
            .unwrap()
            .iter()
            .map(Decision::remaining)
            .collect();
        assert_eq!(remaining, (0..12).collect::<Vec<u64>>());
    }
}
