//! `trace`: request id + W3C trace context + span + RED metrics over a trivial service, beside
//! tower-http doing the same job (`SetRequestId` with UUIDs + `PropagateRequestId` +
//! `TraceLayer`), and beside the bare service. Each twice: with no `tracing` subscriber (spans
//! are disabled ones) and with a formatting subscriber writing to `io::sink` (every span and
//! event formatted). No `metrics` recorder is installed, as in a service that exports none.
//!
//! The request carries a `traceparent`, so our layer parses and continues it; tower-http's has no
//! trace-context support and ignores it.

use std::convert::Infallible;

use bytes::Bytes;
use criterion::{Criterion, criterion_group};
use http::{HeaderName, Request, Response};
use http_body_util::Full;
use protothrive::trace::{MatchedRouteLayer, TraceLayer};
use tower::{Layer, Service, ServiceExt, service_fn};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};

use crate::drain;

const CALLER: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

fn request() -> Request<Full<Bytes>> {
    Request::get("/users/42")
        .header("traceparent", CALLER)
        .header("user-agent", "bench/1.0")
        .body(Full::default())
        .expect("req")
}

async fn handler(_req: Request<Full<Bytes>>) -> Result<Response<Full<Bytes>>, Infallible> {
    Ok(Response::new(Full::from("hello")))
}

fn run<S, B>(c: &mut Criterion, name: &str, svc: &S)
where
    S: Service<Request<Full<Bytes>>, Response = Response<B>> + Clone,
    S::Error: std::fmt::Debug,
    B: http_body::Body,
    B::Error: std::fmt::Debug,
{
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("rt");
    c.bench_function(name, |b| {
        b.iter(|| {
            let svc = svc.clone();
            rt.block_on(async move { drain(svc.oneshot(request()).await.expect("call")).await })
        });
    });
}

fn ours() -> impl Service<
    Request<Full<Bytes>>,
    Response = Response<impl http_body::Body<Error = Infallible>>,
    Error = Infallible,
> + Clone {
    TraceLayer::new().layer(MatchedRouteLayer.layer(service_fn(handler)))
}

fn peer() -> impl Service<
    Request<Full<Bytes>>,
    Response = Response<impl http_body::Body<Error = Infallible>>,
    Error = Infallible,
> + Clone {
    let header = HeaderName::from_static("x-request-id");
    tower::ServiceBuilder::new()
        .layer(SetRequestIdLayer::new(header.clone(), MakeRequestUuid))
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .layer(PropagateRequestIdLayer::new(header))
        .service(service_fn(handler))
}

fn trace(c: &mut Criterion) {
    run(c, "trace/bare", &service_fn(handler));
    run(c, "trace/protothrive", &ours());
    run(c, "trace/tower-http", &peer());

    let subscriber = tracing_subscriber::fmt()
        .with_writer(std::io::sink)
        .with_max_level(tracing::Level::DEBUG)
        .finish();
    tracing::subscriber::with_default(subscriber, || {
        run(c, "trace/fmt/protothrive", &ours());
        run(c, "trace/fmt/tower-http", &peer());
    });
}

criterion_group!(benches, trace);
