//! `cache`: an L1 hit through our layer and through http-cache's tower layer (its in-memory moka
//! manager), and a miss (every iteration a new URI, stored) through both, over a trivial inner
//! service answering a small JSON body with `Cache-Control: max-age=600`. The baseline is the bare
//! inner service through the same harness (a current-thread runtime's `block_on`), so the
//! difference is what a layer adds. Time is a fake clock for our layer (fixed, so hits stay
//! fresh); http-cache reads the system clock.

use crate::drain;
use std::convert::Infallible;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group};
use http::{Request, Response};
use http_body_util::{Empty, Full};
use protothrive::cache::CacheLayer;
use protothrive::clock::ManualClock;
use tower::{Layer, Service, ServiceExt, service_fn};

const BODY: &str = r#"{"id":7,"title":"Ship the cache","tags":["rust","http"],"score":42}"#;

fn request(path: &str) -> Request<Empty<Bytes>> {
    Request::get(format!("http://api.example.com{path}"))
        .header("accept", "application/json")
        .body(Empty::new())
        .expect("req")
}

fn cache(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let inner = service_fn(|_req: Request<Empty<Bytes>>| async {
        Ok::<_, Infallible>(
            Response::builder()
                .header("content-type", "application/json")
                .header("cache-control", "max-age=600")
                .body(Full::new(Bytes::from_static(BODY.as_bytes())))
                .expect("res"),
        )
    });
    let ours = CacheLayer::builder()
        .clock(Arc::new(ManualClock::default()))
        .max_bytes(64 << 20)
        .build()
        .expect("cache")
        .layer(inner);
    let theirs = http_cache_tower::HttpCacheLayer::with_cache(http_cache::HttpCache {
        mode: http_cache::CacheMode::Default,
        // The default holds 42 entries; hold about as many as our 64 MiB do (~600 B each).
        manager: http_cache::MokaManager::new(http_cache::MokaCache::new(100_000)),
        options: http_cache::HttpCacheOptions::default(),
    })
    .layer(inner);

    // Warm both and check that the second call is a hit.
    rt.block_on(async {
        let _ = ours.clone().oneshot(request("/hit")).await.expect("ours");
        let hit = ours.clone().oneshot(request("/hit")).await.expect("ours");
        let status = hit.headers()["cache-status"]
            .to_str()
            .expect("ascii")
            .to_owned();
        assert!(status.starts_with("protothrive; hit"), "{status}");
        assert_eq!(drain(hit).await, BODY.len());
        let _ = theirs
            .clone()
            .oneshot(request("/hit"))
            .await
            .expect("theirs");
        let hit = theirs
            .clone()
            .oneshot(request("/hit"))
            .await
            .expect("theirs");
        assert_eq!(hit.headers()["x-cache"], "HIT");
        assert_eq!(drain(hit).await, BODY.len());
    });

    let mut group = c.benchmark_group("cache");
    group.throughput(Throughput::Elements(1));
    let mut bare = inner;
    group.bench_function("bare inner service", |b| {
        b.iter(|| {
            rt.block_on(async {
                let res = bare
                    .ready()
                    .await
                    .expect("ready")
                    .call(request("/hit"))
                    .await;
                drain(res.expect("res")).await
            })
        });
    });
    let hit_svc = ours.clone();
    let mut svc = ours.clone();
    group.bench_function("protothrive L1 hit", |b| {
        b.iter(|| {
            rt.block_on(async {
                let res = svc
                    .ready()
                    .await
                    .expect("ready")
                    .call(request("/hit"))
                    .await;
                drain(res.expect("res")).await
            })
        });
    });
    let mut svc = theirs.clone();
    group.bench_function("http-cache-tower (moka) hit", |b| {
        b.iter(|| {
            rt.block_on(async {
                let res = svc
                    .ready()
                    .await
                    .expect("ready")
                    .call(request("/hit"))
                    .await;
                drain(res.expect("res")).await
            })
        });
    });
    let n = AtomicU64::new(0);
    let mut svc = ours;
    group.bench_function("protothrive miss (stored)", |b| {
        b.iter(|| {
            let path = format!("/miss/{}", n.fetch_add(1, Ordering::Relaxed));
            rt.block_on(async {
                let res = svc.ready().await.expect("ready").call(request(&path)).await;
                drain(res.expect("res")).await
            })
        });
    });
    let mut svc = theirs;
    group.bench_function("http-cache-tower (moka) miss (stored)", |b| {
        b.iter(|| {
            let path = format!("/miss/{}", n.fetch_add(1, Ordering::Relaxed));
            rt.block_on(async {
                let res = svc.ready().await.expect("ready").call(request(&path)).await;
                drain(res.expect("res")).await
            })
        });
    });
    let mut svc = inner;
    group.bench_function("bare inner service, miss path", |b| {
        b.iter(|| {
            let path = format!("/miss/{}", n.fetch_add(1, Ordering::Relaxed));
            rt.block_on(async {
                let res = svc.ready().await.expect("ready").call(request(&path)).await;
                drain(res.expect("res")).await
            })
        });
    });
    group.finish();

    // The same hit without a runtime: one poll with a no-op waker (an L1 hit never awaits), as
    // the cors bench drives its layer. http-cache-tower's moka lookup is not made for that.
    let mut group = c.benchmark_group("cache/one poll");
    group.throughput(Throughput::Elements(1));
    let mut bare = inner;
    group.bench_function("bare inner service", |b| {
        b.iter(|| poll_once(&mut bare, request("/hit")));
    });
    let mut svc = hit_svc;
    group.bench_function("protothrive L1 hit", |b| {
        b.iter(|| poll_once(&mut svc, request("/hit")));
    });
    group.finish();
}

/// Calls `svc` and polls the response future once; panics if it is not ready.
fn poll_once<S, B>(svc: &mut S, req: Request<Empty<Bytes>>) -> http::StatusCode
where
    S: Service<Request<Empty<Bytes>>, Response = Response<B>>,
    S::Error: std::fmt::Debug,
{
    let mut cx = Context::from_waker(Waker::noop());
    assert!(svc.poll_ready(&mut cx).is_ready());
    let mut fut = pin!(svc.call(req));
    match fut.as_mut().poll(&mut cx) {
        Poll::Ready(res) => res.expect("call").status(),
        Poll::Pending => panic!("the service did not finish in one poll"),
    }
}

criterion_group!(benches, cache);
