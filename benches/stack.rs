//! `stack`: one `GET /hello` through the whole [`Stack`](protothrive::stack::Stack) (client IP,
//! request id, CORS with an allowed `Origin`, a per-IP limit that never refuses, HS256 auth with
//! the verified-token cache warm, a route-cache hit) beside the peer stack assembled from public
//! crates (tower-http request id + `TraceLayer` + `CorsLayer`, tower_governor by peer IP, a
//! `jsonwebtoken` decode per request, http-cache-tower's moka cache) and beside bare axum — the
//! very routers `examples/bench_server.rs` serves to `scripts/throughput`, same handler, same
//! token, same request.
//!
//! The per-layer share is cumulative: `protothrive/+N ...` is the stack with the first N parts of
//! `STACK_PARTS` configured, so each row minus the one before is what that part adds in its place
//! in the full stack (after the parts outside it). Layers alone would not do: the per-IP limit is
//! refused without client IP, and a part's cost depends on its neighbours (CORS exposes the
//! headers of the layers present, auth's 401 path is not taken once a token is there).
//!
//! Every row is driven the same way: the router called inside a current-thread tokio runtime's
//! `block_on` and the body read (http-cache-tower's lookup needs a runtime, so the harness is
//! the same for all). Our layers run on a fixed `ManualClock`; tower_governor reads its own
//! quanta clock and `jsonwebtoken` the system clock (the token is valid for a day either way).
//! No log subscriber is installed, so `TraceLayer`'s spans are disabled ones.

#[allow(dead_code, unreachable_pub, missing_docs)]
#[path = "../examples/bench_server.rs"]
mod bench_server;

use crate::drain;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use criterion::{Criterion, Throughput, criterion_group};
use http::header::{AUTHORIZATION, HOST, ORIGIN};
use http::{Request, Response};
use protothrive::clock::{ManualClock, SharedClock};
use tower::{Service, ServiceExt};

use bench_server::STACK_PARTS;

fn request(bearer: &str) -> Request<Body> {
    let mut req = Request::get("/hello")
        .header(HOST, "127.0.0.1:3000")
        .header(ORIGIN, bench_server::ORIGIN)
        .header(AUTHORIZATION, bearer)
        .body(Body::empty())
        .expect("req");
    req.extensions_mut()
        .insert(ConnectInfo(SocketAddr::from(([127, 0, 0, 1], 40_000))));
    req
}

async fn call(app: &mut Router, bearer: &str) -> Response<Body> {
    let svc = ServiceExt::<Request<Body>>::ready(app)
        .await
        .expect("ready");
    svc.call(request(bearer)).await.expect("infallible")
}

fn stack(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let now = protothrive::clock::system().unix_seconds();
    let clock: SharedClock = Arc::new(ManualClock::at_unix(now));
    let bearer = format!(
        "Bearer {}",
        bench_server::token(clock.clone()).expect("token")
    );

    let mut apps: Vec<(String, Router)> = vec![("bare axum".into(), bench_server::bare())];
    let mut bearers = vec![bearer.clone()];
    for parts in 0..=STACK_PARTS.len() {
        let name = match parts {
            0 => "protothrive/+0 body limit only".to_owned(),
            n => format!("protothrive/+{n} {}", STACK_PARTS[n - 1]),
        };
        let app = bench_server::stack(clock.clone(), parts).expect("stack");
        apps.push((name, app));
        bearers.push(bearer.clone());
    }
    // The full stack verifying RS256 tokens (2048-bit RSA): the verified-token cache makes
    // every request after the first a cache hit, as with HS256.
    let (pem, key) = bench_server::rsa_key().expect("rsa key");
    let rs_signing =
        protothrive::auth::SigningKey::from_pem(protothrive::auth::Algorithm::RS256, pem)
            .expect("rsa pem");
    let rs = bench_server::stack_builder_with(clock.clone(), STACK_PARTS.len(), key)
        .and_then(|b| Ok(bench_server::stack_router(&b.build()?)))
        .expect("stack");
    apps.push(("protothrive full, auth rs256".into(), rs));
    bearers.push(format!(
        "Bearer {}",
        bench_server::token_signed(clock.clone(), rs_signing).expect("token")
    ));
    // The full stack with tower-http's TraceLayer at its trace position, for a like-for-like
    // look at the peer, which has one.
    apps.push((
        "protothrive full + tower-http TraceLayer".into(),
        bench_server::stack_with_trace(clock.clone()).expect("stack"),
    ));
    apps.push(("peer stack".into(), bench_server::peer().expect("peer")));
    bearers.extend([bearer.clone(), bearer]);

    // Warm every app (the token cache, both route caches) and check what the rows measure.
    rt.block_on(async {
        for ((name, app), bearer) in apps.iter_mut().zip(&bearers) {
            let first = call(app, bearer).await;
            assert_eq!(first.status(), 200, "{name}");
            drain(first).await;
            let res = call(app, bearer).await;
            assert_eq!(res.status(), 200, "{name}");
            let h = res.headers();
            if name.contains("cors") || name.contains("full") || name.starts_with("peer") {
                assert_eq!(
                    h["access-control-allow-origin"],
                    bench_server::ORIGIN,
                    "{name}"
                );
            }
            if name.contains("route cache") || name.contains("full") {
                let status = h["cache-status"].to_str().expect("ascii");
                assert!(status.contains("hit"), "{name}: {status}");
            }
            if name.starts_with("peer") {
                assert_eq!(h["x-cache"], "HIT");
                assert!(h.contains_key("x-request-id"));
            }
            assert_eq!(drain(res).await, 6, "{name}");
        }
    });

    let mut group = c.benchmark_group("stack");
    group.throughput(Throughput::Elements(1));
    for ((name, app), bearer) in apps.iter_mut().zip(&bearers) {
        group.bench_function(name.as_str(), |b| {
            b.iter(|| rt.block_on(async { drain(call(app, bearer).await).await }));
        });
    }
    group.finish();
}

criterion_group!(benches, stack);
