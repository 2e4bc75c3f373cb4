//! `resilience`: the circuit breaker and the retry layer over a trivial service, beside their
//! peers. `resilience/breaker`: the bare service; our closed breaker's admission alone
//! (`try_acquire`, the permit dropped) and with the outcome recorded (`try_acquire` + `record`); our layer; tower-resilience's circuit breaker layer (count
//! window of 100, 50%). `resilience/retry` (success path, nothing retried; on a current-thread
//! tokio runtime, since our layer's future is boxed): the bare service, our layer (budget 20%,
//! a buffered 13-byte body), tower's `Retry` with its `TpsBudget` and a policy that clones the
//! request the same way.

use std::convert::Infallible;
use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::Bytes;
use criterion::{Criterion, criterion_group};
use http::{Request, Response};
use http_body_util::Full;
use protothrive::clock::ManualClock;
use protothrive::resilience::{
    CircuitBreaker, CircuitBreakerLayer, Outcome, RetryBudget, RetryLayer, Window,
};
use tower::retry::budget::{Budget, TpsBudget};
use tower::{Layer, Service, ServiceExt, service_fn};

/// Polls a future once: every service here answers without waiting.
fn now<F: Future>(fut: F) -> F::Output {
    let mut fut = pin!(fut);
    match fut.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(out) => out,
        Poll::Pending => panic!("the service did not finish in one poll"),
    }
}

fn call<S: Service<Request<()>>>(svc: &mut S) -> S::Response
where
    S::Error: std::fmt::Debug,
{
    assert!(now(std::future::poll_fn(|cx| svc.poll_ready(cx))).is_ok());
    now(svc.call(Request::new(()))).expect("call")
}

fn breaker(c: &mut Criterion) {
    let inner = service_fn(|_req: Request<()>| async {
        Ok::<_, Infallible>(Response::new(http_body_util::Empty::<Bytes>::new()))
    });
    let ours = CircuitBreaker::builder("bench")
        .window(Window::Count(100))
        .failure_rate(50)
        .clock(Arc::new(ManualClock::default()))
        .build()
        .unwrap();
    let theirs = tower_resilience_circuitbreaker::CircuitBreakerLayer::builder()
        .failure_rate_threshold(0.5)
        .sliding_window_size(100)
        .build()
        .unwrap();
    let mut bare = inner;
    let mut our_layer = CircuitBreakerLayer::new(ours.clone()).layer(inner);
    let mut their_layer = theirs.layer(inner);
    assert_eq!(call(&mut our_layer).status(), 200);
    assert_eq!(call(&mut their_layer).status(), 200);

    let mut g = c.benchmark_group("resilience/breaker");
    g.bench_function("bare", |b| b.iter(|| call(&mut bare)));
    g.bench_function("ours_acquire", |b| b.iter(|| ours.try_acquire().is_ok()));
    g.bench_function("ours_check", |b| {
        b.iter(|| ours.try_acquire().unwrap().record(Outcome::Success));
    });
    g.bench_function("ours_layer", |b| b.iter(|| call(&mut our_layer)));
    g.bench_function("tower_resilience_layer", |b| {
        b.iter(|| call(&mut their_layer));
    });
    g.finish();
}

type Req = Request<Full<Bytes>>;

fn request() -> Req {
    Request::get("/item")
        .body(Full::new(Bytes::from_static(b"hello, world!")))
        .unwrap()
}

/// tower's retry policy for the same requests: idempotent ones, 5xx, within a `TpsBudget`.
#[derive(Clone)]
struct TowerPolicy(Arc<TpsBudget>);

impl<B, E> tower::retry::Policy<Req, Response<B>, E> for TowerPolicy {
    type Future = std::future::Ready<()>;

    fn retry(
        &mut self,
        _req: &mut Req,
        result: &mut Result<Response<B>, E>,
    ) -> Option<Self::Future> {
        match result {
            Ok(res) if !res.status().is_server_error() => {
                self.0.deposit();
                None
            }
            _ => self.0.withdraw().then(|| std::future::ready(())),
        }
    }

    fn clone_request(&mut self, req: &Req) -> Option<Req> {
        if !req.method().is_idempotent() {
            return None;
        }
        let mut next = Request::new(req.body().clone());
        *next.method_mut() = req.method().clone();
        *next.uri_mut() = req.uri().clone();
        *next.headers_mut() = req.headers().clone();
        Some(next)
    }
}

fn retry(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let ok = || Response::new(http_body_util::Empty::<Bytes>::new());
    let bare = service_fn(move |_req: Req| async move { Ok::<_, Infallible>(ok()) });
    let replayed = service_fn(
        move |_req: Request<http_body_util::Either<Full<Bytes>, Full<Bytes>>>| async move {
            Ok::<_, Infallible>(ok())
        },
    );
    let budget = RetryBudget::new(Arc::new(ManualClock::default()), 20, 1);
    let ours = RetryLayer::new(budget).layer(replayed);
    let tps = Arc::new(TpsBudget::new(Duration::from_secs(10), 1, 0.2));
    let theirs = tower::retry::RetryLayer::new(TowerPolicy(tps)).layer(bare);
    assert_eq!(
        rt.block_on(ours.clone().oneshot(request()))
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        rt.block_on(theirs.clone().oneshot(request()))
            .unwrap()
            .status(),
        200
    );

    let mut g = c.benchmark_group("resilience/retry");
    g.bench_function("bare", |b| {
        b.iter(|| rt.block_on(bare.oneshot(request())).unwrap());
    });
    g.bench_function("ours", |b| {
        b.iter(|| rt.block_on(ours.clone().oneshot(request())).unwrap());
    });
    g.bench_function("tower", |b| {
        b.iter(|| rt.block_on(theirs.clone().oneshot(request())).unwrap());
    });
    g.finish();
}

criterion_group!(benches, breaker, retry);
