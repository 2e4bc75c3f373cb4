//! `redis`: the Redis rate-limit store against a real `redis-server` on loopback (spawned by the
//! bench): one check awaited at a time (a round trip: the latency a request pays), 32 checks in
//! flight on the one multiplexed connection (pipelined: the cost per check under load), and a
//! bare `PING` as the floor of a round trip.
//!
//! Run with `cargo bench --bench main -- redis`.

use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group};
use protothrive::rate_limit::{Quota, RedisStore, RemoteStore};

#[allow(dead_code, unreachable_pub)]
#[path = "../tests/redis/server.rs"]
mod server;

fn redis(c: &mut Criterion) {
    let server = server::RedisServer::start();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
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

criterion_group!(benches, redis);
