//! `cors`: a simple (actual) request and a preflight through our layer and through tower-http's
//! `CorsLayer` with the same configuration (two exact origins, credentials, three methods, two
//! request headers), over a trivial inner service; the baseline is the bare inner service with
//! the same request, so the difference is what a layer adds.

use std::convert::Infallible;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group};
use http::header::{AUTHORIZATION, CONTENT_TYPE};
use http::{HeaderValue, Method, Request, Response};
use protothrive::cors::{AllowOrigin, CorsLayer};
use tower::{Layer, Service, service_fn};

const ORIGIN: &str = "https://app.example.com";

fn call<S: Service<Request<()>>>(svc: &mut S, req: Request<()>) -> S::Response
where
    S::Error: std::fmt::Debug,
{
    let mut cx = Context::from_waker(Waker::noop());
    assert!(svc.poll_ready(&mut cx).is_ready());
    let mut fut = pin!(svc.call(req));
    match fut.as_mut().poll(&mut cx) {
        Poll::Ready(res) => res.expect("call"),
        Poll::Pending => panic!("the service did not finish in one poll"),
    }
}

fn simple() -> Request<()> {
    Request::get("/api/v2/roadmaps")
        .header("origin", ORIGIN)
        .body(())
        .expect("req")
}

fn preflight() -> Request<()> {
    Request::options("/api/v2/roadmaps/1")
        .header("origin", ORIGIN)
        .header("access-control-request-method", "PUT")
        .header(
            "access-control-request-headers",
            "authorization,content-type",
        )
        .body(())
        .expect("req")
}

fn cors(c: &mut Criterion) {
    let inner = service_fn(|_req: Request<()>| async {
        Ok::<_, Infallible>(Response::new(http_body_util::Empty::<bytes::Bytes>::new()))
    });
    let ours = CorsLayer::builder()
        .allow_origin(AllowOrigin::list([ORIGIN, "https://admin.example.com"]))
        .allow_methods([Method::GET, Method::PUT, Method::DELETE])
        .allow_headers(["authorization", "content-type"])
        .allow_credentials(true)
        .max_age(Some(Duration::from_secs(600)))
        .build()
        .expect("cors");
    let theirs = tower_http::cors::CorsLayer::new()
        .allow_origin(tower_http::cors::AllowOrigin::list([
            HeaderValue::from_static(ORIGIN),
            HeaderValue::from_static("https://admin.example.com"),
        ]))
        .allow_methods([Method::GET, Method::PUT, Method::DELETE])
        .allow_headers([AUTHORIZATION, CONTENT_TYPE])
        .allow_credentials(true)
        .max_age(Duration::from_secs(600));
    let mut bare = inner;
    let mut ours = ours.layer(inner);
    let mut theirs = theirs.layer(inner);
    assert_eq!(call(&mut ours, preflight()).status(), 204);
    assert_eq!(call(&mut theirs, preflight()).status(), 200);
    assert_eq!(
        call(&mut ours, simple()).headers()["access-control-allow-origin"],
        ORIGIN
    );

    let mut group = c.benchmark_group("cors");
    group.throughput(Throughput::Elements(1));
    group.bench_function("bare inner service, simple request", |b| {
        b.iter(|| call(&mut bare, simple()));
    });
    group.bench_function("protothrive simple", |b| {
        b.iter(|| call(&mut ours, simple()));
    });
    group.bench_function("tower-http simple", |b| {
        b.iter(|| call(&mut theirs, simple()));
    });
    group.bench_function("bare inner service, preflight request", |b| {
        b.iter(|| call(&mut bare, preflight()));
    });
    group.bench_function("protothrive preflight", |b| {
        b.iter(|| call(&mut ours, preflight()));
    });
    group.bench_function("tower-http preflight", |b| {
        b.iter(|| call(&mut theirs, preflight()));
    });
    group.finish();
}

criterion_group!(benches, cors);
