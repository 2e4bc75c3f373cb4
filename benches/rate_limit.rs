//! `rate_limit`: one in-process check (GCRA in the sharded store) on a hot key and on 10 000
//! rotating keys, and the whole layer (two limits, headers on the response) over a trivial inner
//! service. A manual clock that never moves would make every check after the burst a denial, so
//! the quota is high enough that every check is an allowance.

use std::convert::Infallible;
use std::net::{IpAddr, Ipv4Addr};
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use criterion::{Criterion, Throughput, criterion_group};
use http::{Request, Response};
use protothrive::client_ip::ClientIp;
use protothrive::clock::ManualClock;
use protothrive::rate_limit::{InMemoryStore, KeyBy, Limit, Quota, RateLimitLayer, RateLimitStore};
use tower::{Layer, Service, service_fn};

fn store(c: &mut Criterion) {
    let quota: Quota = "1000000000/s burst 1000000000".parse().unwrap();
    let store = InMemoryStore::default();
    let keys: Vec<String> = (0..10_000)
        .map(|i| format!("ip|10.0.{}.{}", i / 256, i % 256))
        .collect();
    let mut g = c.benchmark_group("rate_limit/check");
    g.throughput(Throughput::Elements(1));
    g.bench_function("in_memory/hot_key", |b| {
        b.iter(|| store.check("ip|192.0.2.1", &quota, 1));
    });
    let mut i = 0;
    g.bench_function("in_memory/10k_keys", |b| {
        b.iter(|| {
            i = (i + 1) % keys.len();
            store.check(&keys[i], &quota, 1)
        });
    });
    g.finish();
}

fn layer(c: &mut Criterion) {
    let clock = ManualClock::default();
    let quota: Quota = "1000000000/s burst 1000000000".parse().unwrap();
    let mut svc = RateLimitLayer::builder()
        .clock(Arc::new(clock))
        .limit(Limit::new("ip", quota).by(KeyBy::ClientIp))
        .limit(Limit::new("global", quota))
        .build()
        .unwrap()
        .layer(service_fn(|_req: Request<()>| async {
            Ok::<_, Infallible>(Response::new(()))
        }));
    let mut g = c.benchmark_group("rate_limit/layer");
    g.throughput(Throughput::Elements(1));
    g.bench_function("two_limits_allowed", |b| {
        b.iter(|| {
            let mut req = Request::new(());
            req.extensions_mut()
                .insert(ClientIp(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1))));
            let mut cx = Context::from_waker(Waker::noop());
            assert!(svc.poll_ready(&mut cx).is_ready());
            let mut fut = pin!(svc.call(req));
            match fut.as_mut().poll(&mut cx) {
                Poll::Ready(res) => res.unwrap(),
                Poll::Pending => panic!("pending"),
            }
        });
    });
    g.finish();
}

criterion_group!(benches, store, layer);
