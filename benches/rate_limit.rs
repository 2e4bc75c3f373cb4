//! `rate_limit`: one in-process check beside governor's, and the whole layer beside
//! tower_governor's, over a trivial inner service.
//!
//! * `rate_limit/check`: our [`InMemoryStore`] (a given `now`), governor's direct limiter and its
//!   keyed one on a `DashMap` (both on a `FakeRelativeClock`, one atomic load), and governor's
//!   `DefaultKeyedRateLimiter` (its real quanta clock): on a hot key and on 10 000 rotating keys,
//!   at 1 thread and at 2 threads. A 2-thread row times both threads each doing one check per
//!   iteration (`iter_custom`, the slower thread's time), so a flat cost reads the same as the
//!   1-thread row; `own_key` gives each thread its own key, `hot_key` makes them fight over one.
//! * `rate_limit/layer`: one per-IP limit, our [`RateLimitLayer`] (system clock, `RateLimit`
//!   headers on every answer) beside tower_governor 0.8's `GovernorLayer` with its
//!   `PeerIpKeyExtractor` (with and without its `x-ratelimit-*` headers), and our layer with two
//!   limits on a manual clock; `bare_service` builds the same request and calls the inner service
//!   alone.
//!
//! Time never moves (or barely), so the quota is `4000000000/4s burst 4000000000` (T = 1 ns, a
//! burst of 4·10⁹): every check is an allowance that runs the whole compare-and-swap path, and
//! each bench gets fresh limiters so none reaches the end of its burst.

use std::convert::Infallible;
use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::num::NonZeroU32;
use std::pin::pin;
use std::sync::{Arc, Barrier};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use criterion::{BenchmarkGroup, Criterion, Throughput, criterion_group, measurement::WallTime};
use governor::clock::FakeRelativeClock;
use governor::middleware::NoOpMiddleware;
use governor::state::keyed::DashMapStateStore;
use governor::{DefaultKeyedRateLimiter, RateLimiter};
use http::{Request, Response};
use protothrive::client_ip::ClientIp;
use protothrive::clock::{Clock, ManualClock, SystemClock};
use protothrive::rate_limit::{InMemoryStore, KeyBy, Limit, Quota, RateLimitLayer, RateLimitStore};
use tower::{Layer, Service, service_fn};
use tower_governor::GovernorLayer;
use tower_governor::governor::GovernorConfigBuilder;

const BURST: u32 = 4_000_000_000;

fn quota() -> Quota {
    "4000000000/4s burst 4000000000".parse().unwrap()
}

fn governor_quota() -> governor::Quota {
    governor::Quota::with_period(Duration::from_nanos(1))
        .unwrap()
        .allow_burst(NonZeroU32::new(BURST).unwrap())
}

type FakeKeyed = RateLimiter<
    String,
    DashMapStateStore<String>,
    FakeRelativeClock,
    NoOpMiddleware<governor::nanos::Nanos>,
>;

fn fake_keyed() -> FakeKeyed {
    RateLimiter::dashmap_with_clock(governor_quota(), FakeRelativeClock::default())
}

/// `n` threads each run `check(thread, i)` for `i` in `0..iters`, started together; returns the slowest
/// thread's time. Every row goes through here, so 1 and 2 threads are timed the same way.
fn on_threads(n: usize, iters: u64, check: &(impl Fn(usize, usize) + Sync)) -> Duration {
    let barrier = Barrier::new(n);
    std::thread::scope(|s| {
        let threads: Vec<_> = (0..n)
            .map(|thread| {
                let barrier = &barrier;
                s.spawn(move || {
                    barrier.wait();
                    let start = SystemClock.instant();
                    for i in 0..iters {
                        #[allow(clippy::cast_possible_truncation)]
                        check(thread, i as usize);
                    }
                    start.elapsed()
                })
            })
            .collect();
        threads
            .into_iter()
            .map(|t| t.join().unwrap())
            .max()
            .unwrap()
    })
}

fn rows(g: &mut BenchmarkGroup<'_, WallTime>, threads: usize) {
    let q = quota();
    let suffix = if threads == 1 {
        "1_thread"
    } else {
        "2_threads"
    };
    let hot = String::from("ip|192.0.2.1");
    let own = [String::from("ip|192.0.2.1"), String::from("ip|192.0.2.2")];
    // Each thread walks its own 10 000 keys (the same ones at 1 thread).
    let rotating: Vec<Vec<String>> = (0..threads)
        .map(|t| {
            (0..10_000)
                .map(|i| format!("ip|10.{t}.{}.{}", i / 256, i % 256))
                .collect()
        })
        .collect();
    let mut run = |name: &str, check: &(dyn Fn(usize, usize) + Sync)| {
        g.bench_function(format!("{name}/{suffix}"), |b| {
            b.iter_custom(|iters| on_threads(threads, iters, &check));
        });
    };

    let store = InMemoryStore::default();
    run("protothrive_in_memory/hot_key", &|_, _| {
        black_box(store.check(black_box(&hot), &q, 1));
    });
    let keyed = fake_keyed();
    run("governor_keyed_dashmap/hot_key", &|_, _| {
        let _ = black_box(keyed.check_key(black_box(&hot)));
    });
    let direct = RateLimiter::direct_with_clock(governor_quota(), FakeRelativeClock::default());
    run("governor_direct", &|_, _| {
        let _ = black_box(direct.check());
    });
    let default_keyed: DefaultKeyedRateLimiter<String> = RateLimiter::keyed(governor_quota());
    run("governor_default_keyed_quanta/hot_key", &|_, _| {
        let _ = black_box(default_keyed.check_key(black_box(&hot)));
    });
    if threads > 1 {
        let store = InMemoryStore::default();
        run("protothrive_in_memory/own_key", &|t, _| {
            black_box(store.check(black_box(&own[t]), &q, 1));
        });
        let keyed = fake_keyed();
        run("governor_keyed_dashmap/own_key", &|t, _| {
            let _ = black_box(keyed.check_key(black_box(&own[t])));
        });
    }
    let store = InMemoryStore::default();
    run("protothrive_in_memory/10k_keys_each", &|t, i| {
        black_box(store.check(&rotating[t][i % 10_000], &q, 1));
    });
    let keyed = fake_keyed();
    run("governor_keyed_dashmap/10k_keys_each", &|t, i| {
        let _ = black_box(keyed.check_key(&rotating[t][i % 10_000]));
    });
}

fn check(c: &mut Criterion) {
    let mut g = c.benchmark_group("rate_limit/check");
    g.throughput(Throughput::Elements(1));
    rows(&mut g, 1);
    // Two checks per iteration (one on each thread).
    g.throughput(Throughput::Elements(2));
    rows(&mut g, 2);
    g.finish();
}

/// Calls a service whose answer is ready at once (no inner I/O).
fn call_now<S: Service<Request<()>>>(svc: &mut S, req: Request<()>) -> S::Response
where
    S::Error: std::fmt::Debug,
{
    let mut cx = Context::from_waker(Waker::noop());
    assert!(svc.poll_ready(&mut cx).is_ready());
    let mut fut = pin!(svc.call(req));
    match fut.as_mut().poll(&mut cx) {
        Poll::Ready(res) => res.unwrap(),
        Poll::Pending => panic!("pending"),
    }
}

fn inner() -> impl Service<
    Request<()>,
    Response = Response<Body>,
    Error = Infallible,
    Future = impl Future<Output = Result<Response<Body>, Infallible>> + Send,
> + Clone
+ Send
+ 'static {
    service_fn(|_req: Request<()>| async { Ok::<_, Infallible>(Response::new(Body::empty())) })
}

const PEER: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));

fn layer(c: &mut Criterion) {
    let mut g = c.benchmark_group("rate_limit/layer");
    g.throughput(Throughput::Elements(1));

    // The baseline: the same request built and the inner service called bare.
    let mut bare = inner();
    g.bench_function("bare_service", |b| {
        b.iter(|| {
            let mut req = Request::new(());
            req.extensions_mut().insert(ClientIp(PEER));
            call_now(&mut bare, req)
        });
    });

    let mut ours = RateLimitLayer::builder()
        .limit(Limit::new("ip", quota()).by(KeyBy::ClientIp))
        .build()
        .unwrap()
        .layer(inner());
    g.bench_function("protothrive/one_ip_limit_system_clock", |b| {
        b.iter(|| {
            let mut req = Request::new(());
            req.extensions_mut().insert(ClientIp(PEER));
            call_now(&mut ours, req)
        });
    });

    let config = GovernorConfigBuilder::default()
        .per_nanosecond(1)
        .burst_size(BURST)
        .finish()
        .unwrap();
    let mut theirs = GovernorLayer::new(config).layer(inner());
    g.bench_function("tower_governor/peer_ip", |b| {
        b.iter(|| {
            let mut req = Request::new(());
            req.extensions_mut()
                .insert(ConnectInfo(SocketAddr::new(PEER, 40_000)));
            call_now(&mut theirs, req)
        });
    });

    let config = GovernorConfigBuilder::default()
        .per_nanosecond(1)
        .burst_size(BURST)
        .use_headers()
        .finish()
        .unwrap();
    let mut theirs = GovernorLayer::new(config).layer(inner());
    g.bench_function("tower_governor/peer_ip_with_headers", |b| {
        b.iter(|| {
            let mut req = Request::new(());
            req.extensions_mut()
                .insert(ConnectInfo(SocketAddr::new(PEER, 40_000)));
            call_now(&mut theirs, req)
        });
    });

    let mut two = RateLimitLayer::builder()
        .clock(Arc::new(ManualClock::default()))
        .limit(Limit::new("ip", quota()).by(KeyBy::ClientIp))
        .limit(Limit::new("global", quota()))
        .build()
        .unwrap()
        .layer(inner());
    g.bench_function("protothrive/two_limits_manual_clock", |b| {
        b.iter(|| {
            let mut req = Request::new(());
            req.extensions_mut().insert(ClientIp(PEER));
            call_now(&mut two, req)
        });
    });
    g.finish();
}

criterion_group!(benches, check, layer);
