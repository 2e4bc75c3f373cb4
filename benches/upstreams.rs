//! `upstreams`: choosing an instance, beside tower's balancer. `upstreams/select/N` (N trivial
//! instances answering at once, each call polled once): `bare`, one instance called directly;
//! `ours_post`, our `Upstreams` with a POST (never replayed: the choice by power of two
//! choices, the breaker's admission and outcome, the in-flight count, the boxed future);
//! `ours_get`, a GET (the same, plus the empty body buffered for a replay and the request's
//! parts cloned); `tower_p2c`, tower's `balance::p2c::Balance` over `load::PendingRequests`
//! of the same instances (its ready cache and the same two random draws).

use std::convert::Infallible;
use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use criterion::{BenchmarkId, Criterion, criterion_group};
use http::{Method, Request, Response};
use http_body_util::{Either, Empty};
use protothrive::clock::ManualClock;
use protothrive::resilience::Upstreams;
use tower::balance::p2c::Balance;
use tower::discover::ServiceList;
use tower::load::{CompleteOnResponse, PendingRequests};
use tower::{Service, service_fn};

/// Polls a future once: every service here answers without waiting.
fn now<F: Future>(fut: F) -> F::Output {
    let mut fut = pin!(fut);
    match fut.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(out) => out,
        Poll::Pending => panic!("the service did not finish in one poll"),
    }
}

fn call<S: Service<Request<Empty<Bytes>>>>(svc: &mut S, method: &Method) -> S::Response
where
    S::Error: std::fmt::Debug,
{
    assert!(now(std::future::poll_fn(|cx| svc.poll_ready(cx))).is_ok());
    let mut req = Request::new(Empty::new());
    *req.method_mut() = method.clone();
    now(svc.call(req)).expect("call")
}

fn select(c: &mut Criterion) {
    let ok = || Response::new(Empty::<Bytes>::new());
    let instance =
        service_fn(move |_req: Request<Empty<Bytes>>| async move { Ok::<_, Infallible>(ok()) });
    let member = service_fn(
        move |_req: Request<Either<http_body_util::Full<Bytes>, Empty<Bytes>>>| async move {
            Ok::<_, Infallible>(ok())
        },
    );
    let mut g = c.benchmark_group("upstreams/select");
    for n in [2usize, 8] {
        let mut builder = Upstreams::builder().clock(Arc::new(ManualClock::default()));
        for i in 0..n {
            builder = builder.member(format!("m{i}"), member);
        }
        let mut ours: Upstreams<_, Empty<Bytes>> = builder.build().unwrap();
        let list: Vec<_> = (0..n)
            .map(|_| PendingRequests::new(instance, CompleteOnResponse::default()))
            .collect();
        let mut theirs = Balance::new(ServiceList::new(list));
        let mut bare = instance;
        assert_eq!(call(&mut ours, &Method::GET).status(), 200);
        assert_eq!(call(&mut theirs, &Method::GET).status(), 200);
        g.bench_function(BenchmarkId::new("bare", n), |b| {
            b.iter(|| call(&mut bare, &Method::GET));
        });
        g.bench_function(BenchmarkId::new("ours_post", n), |b| {
            b.iter(|| call(&mut ours, &Method::POST));
        });
        g.bench_function(BenchmarkId::new("ours_get", n), |b| {
            b.iter(|| call(&mut ours, &Method::GET));
        });
        g.bench_function(BenchmarkId::new("tower_p2c", n), |b| {
            b.iter(|| call(&mut theirs, &Method::GET));
        });
    }
    g.finish();
}

criterion_group!(benches, select);
