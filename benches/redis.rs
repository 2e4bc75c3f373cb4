//! `redis`: the Redis rate-limit store against a real `redis-server` on loopback (spawned by the
//! bench): one check awaited at a time (a round trip: the latency a request pays), 32 checks in
//! flight on the one multiplexed connection (pipelined: the cost per check under load), and a
//! bare `PING` as the floor of a round trip.
//!
//! `rate_limit/redis_cluster`: the same checks on a 3-master Redis Cluster on loopback (spawned
//! by the bench, `tests/support/redis_cluster.rs`), where a request's limits on several slots are
//! one script per slot.
//!
//! `cache/tiers`: the HTTP cache's L2 path (an entry read from Redis, or from the cluster,
//! through the layer) beside an L1 hit of the same response.
//!
//! Run with `cargo bench --bench main -- redis` and `-- cache/tiers`.

use std::time::Duration;

use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion, Throughput, criterion_group};
use protothrive::rate_limit::{Quota, RedisStore, RemoteStore};

// The test helpers that spawn `redis-server`s; `redis_cluster` finds `RedisServer` as
// `super::redis`, as in `tests/support` (so the client crate is `::redis` here).
#[allow(dead_code, unreachable_pub, clippy::module_inception)]
#[path = "../tests/support/redis.rs"]
mod redis;
#[allow(dead_code, unreachable_pub, unused_imports, unused_macros)]
#[path = "../tests/support/redis_cluster.rs"]
mod redis_cluster;
use redis_cluster::RedisCluster;

/// A one-worker runtime to drive the client on.
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap()
}

/// A fresh `redis-server` and a one-worker runtime to drive the client on.
fn redis_and_runtime() -> (redis::RedisServer, tokio::runtime::Runtime) {
    (redis::RedisServer::start(), runtime())
}

/// The rate-limit checks of a group on `store`: one key awaited, four keys (four limits of one
/// request) awaited, and 32 one-key checks in flight.
fn checks(g: &mut BenchmarkGroup<'_, WallTime>, rt: &tokio::runtime::Runtime, store: &RedisStore) {
    let quota: Quota = "1000000000/s burst 1000000000".parse().unwrap();
    let check = || store.check_many(vec![("ip|192.0.2.1".to_owned(), quota)], 0);
    let four = || {
        let keys = ["ip|192.0.2.1", "user|7", "key|k1", "route|GET /x"];
        store.check_many(keys.map(|k| (k.to_owned(), quota)).to_vec(), 0)
    };
    // Loads the script once, outside the measurement.
    rt.block_on(check()).unwrap();
    rt.block_on(four()).unwrap();
    g.throughput(Throughput::Elements(1));
    g.bench_function("check/one_at_a_time", |b| {
        b.iter(|| rt.block_on(check()).unwrap());
    });
    g.bench_function("check/4_limits_one_at_a_time", |b| {
        b.iter(|| rt.block_on(four()).unwrap());
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
}

/// A rate-limit store on `url` with a generous timeout (a bench measures, it does not fail).
fn store(rt: &tokio::runtime::Runtime, url: &str) -> RedisStore {
    rt.block_on(async {
        RedisStore::builder(url)
            .timeout(Duration::from_secs(5))
            .build()
            .unwrap()
    })
}

fn redis(c: &mut Criterion) {
    let (server, rt) = redis_and_runtime();
    let store = store(&rt, &server.url());
    let client = ::redis::Client::open(server.url()).unwrap();
    let mut conn = rt
        .block_on(client.get_multiplexed_async_connection())
        .unwrap();
    let mut g = c.benchmark_group("rate_limit/redis");
    g.throughput(Throughput::Elements(1));
    g.bench_function("ping_round_trip", |b| {
        b.iter(|| {
            rt.block_on(::redis::cmd("PING").query_async::<String>(&mut conn))
                .unwrap()
        });
    });
    checks(&mut g, &rt, &store);
    g.finish();
}

/// The same checks on a 3-master cluster.
fn redis_cluster(c: &mut Criterion) {
    let cluster = RedisCluster::start();
    let rt = runtime();
    let store = store(&rt, &cluster.url());
    let mut g = c.benchmark_group("rate_limit/redis_cluster");
    checks(&mut g, &rt, &store);
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
    let cluster = RedisCluster::start();
    let tier = |url: String| {
        rt.block_on(async {
            RedisTier::builder(url)
                .timeout(Duration::from_secs(5))
                .build()
                .unwrap()
        })
    };
    let (single, clustered) = (tier(server.url()), tier(cluster.url()));
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
    let layer = |max_bytes: u64, tier: &RedisTier| {
        CacheLayer::builder()
            .clock(Arc::new(ManualClock::default()))
            .max_bytes(max_bytes)
            .tier(Arc::new(tier.clone()))
            .build()
            .unwrap()
            .layer(inner)
    };
    let l2_only = layer(1, &single);
    let l2_cluster = layer(1, &clustered);
    let l1 = layer(64 << 20, &single);
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
    let l2_cluster: Svc = tower::util::BoxCloneService::new(l2_cluster);
    // Stores the entry in Redis (and in the big L1), and in the cluster.
    once(&l1);
    once(&l2_only);
    once(&l2_cluster);
    let mut g = c.benchmark_group("cache/tiers");
    g.throughput(Throughput::Elements(1));
    g.bench_function("l1_hit", |b| b.iter(|| once(&l1)));
    g.bench_function("l2_hit_redis", |b| b.iter(|| once(&l2_only)));
    g.bench_function("l2_hit_redis_cluster", |b| b.iter(|| once(&l2_cluster)));
    g.finish();
}

criterion_group!(benches, redis, redis_cluster, cache_l2);
