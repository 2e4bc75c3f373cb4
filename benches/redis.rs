//! `redis`: the Redis rate-limit store against a real `redis-server` on loopback (spawned by the
//! bench): one check awaited at a time (a round trip: the latency a request pays), 32 checks in
//! flight on the one multiplexed connection (pipelined: the cost per check under load), and a
//! bare `PING` as the floor of a round trip.
//!
//! `cache/tiers`: the HTTP cache's L2 path (an entry read from Redis through the layer) beside an
//! L1 hit of the same response.
//!
//! Run with `cargo bench --bench main -- redis` and `-- cache/tiers`.

use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group};
use protothrive::rate_limit::{Quota, RedisStore, RemoteStore};

#[allow(dead_code, unreachable_pub)]
#[path = "../tests/support/redis.rs"]
mod server;

/// A fresh `redis-server` and a one-worker runtime to drive the client on.
fn redis_and_runtime() -> (server::RedisServer, tokio::runtime::Runtime) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    (server::RedisServer::start(), rt)
}

fn redis(c: &mut Criterion) {
    let (server, rt) = redis_and_runtime();
    let store = rt.block_on(async {
        RedisStore::builder(server.url())
            .timeout(Duration::from_secs(5))
            .build()
            .unwrap()
    });
    let client = redis::Client::open(server.url()).unwrap();
    let mut conn = rt
        .block_on(client.get_multiplexed_async_connection())
        .unwrap();
    let quota: Quota = "1000000000/s burst 1000000000".parse().unwrap();
    let check = || store.check_many(vec![("ip|192.0.2.1".to_owned(), quota)], 0);
    // Loads the script once, outside the measurement.
    rt.block_on(check()).unwrap();

    let mut g = c.benchmark_group("rate_limit/redis");
    g.throughput(Throughput::Elements(1));
    g.bench_function("ping_round_trip", |b| {
        b.iter(|| {
            rt.block_on(redis::cmd("PING").query_async::<String>(&mut conn))
                .unwrap()
        });
    });
    g.bench_function("check/one_at_a_time", |b| {
        b.iter(|| rt.block_on(check()).unwrap());
    });
    g.throughput(Throughput::Elements(32));
    g.bench_function("check/32_in_flight_pipelined", |b| {
        b.iter(|| {
            rt.block_on(async {
                let mut set = tokio::task::JoinSet::new();
                for i in 0..32 {
                    set.spawn(store.check_many(vec![(format!("ip|192.0.2.{i}"), quota)], 0));
                }
                while let Some(r) = set.join_next().await {
                    r.unwrap().unwrap();
                }
            });
        });
    });
    g.finish();
}

/// The cache's L2 path: an L1 too small to keep anything, so every request reads the entry from
/// Redis (one `GET`, decoding, `Age`/`Cache-Status`), beside an L1 hit of the same response.
fn cache_l2(c: &mut Criterion) {
    use std::convert::Infallible;
    use std::sync::Arc;

    use bytes::Bytes;
    use http::{Request, Response};
    use http_body_util::{BodyExt, Empty, Full};
    use protothrive::cache::{CacheLayer, RedisTier};
    use protothrive::clock::ManualClock;
    use tower::{Layer, ServiceExt, service_fn};

    let (server, rt) = redis_and_runtime();
    let tier = rt.block_on(async {
        RedisTier::builder(server.url())
            .timeout(Duration::from_secs(5))
            .build()
            .unwrap()
    });
    let inner = service_fn(|_req: Request<Empty<Bytes>>| async {
        Ok::<_, Infallible>(
            Response::builder()
                .header("content-type", "application/json")
                .header("cache-control", "max-age=600")
                .body(Full::new(Bytes::from_static(
                    br#"{"id":7,"title":"Ship the cache"}"#,
                )))
                .unwrap(),
        )
    });
    let layer = |max_bytes: u64| {
        CacheLayer::builder()
            .clock(Arc::new(ManualClock::default()))
            .max_bytes(max_bytes)
            .tier(Arc::new(tier.clone()))
            .build()
            .unwrap()
            .layer(inner)
    };
    let l2_only = layer(1);
    let l1 = layer(64 << 20);
    let get = || {
        Request::get("http://api.example.com/snippets/7")
            .body(Empty::new())
            .unwrap()
    };
    type Svc = tower::util::BoxCloneService<
        Request<Empty<Bytes>>,
        Response<protothrive::cache::CacheBody<Full<Bytes>>>,
        std::convert::Infallible,
    >;
    let once = |svc: &Svc| {
        rt.block_on(async {
            let res = svc.clone().oneshot(get()).await.unwrap();
            res.into_body().collect().await.unwrap().to_bytes().len()
        })
    };
    let l2_only: Svc = tower::util::BoxCloneService::new(l2_only);
    let l1: Svc = tower::util::BoxCloneService::new(l1);
    // Stores the entry in Redis (and in the big L1).
    once(&l1);
    once(&l2_only);
    let mut g = c.benchmark_group("cache/tiers");
    g.throughput(Throughput::Elements(1));
    g.bench_function("l1_hit", |b| b.iter(|| once(&l1)));
    g.bench_function("l2_hit_redis", |b| b.iter(|| once(&l2_only)));
    g.finish();
}

criterion_group!(benches, redis, cache_l2);
