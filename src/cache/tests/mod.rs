//! The layer against a scripted origin: RFC behaviours as a table, then coalescing, partitions,
//! cookies, poisoning, validation, stale handling, invalidation and the L2 tier.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use tower::util::BoxCloneService;
use tower::{BoxError, Layer, ServiceExt, service_fn};

use super::policy::*;
use super::*;
use crate::clock::ManualClock;

type Res = Response<Full<Bytes>>;
type Svc = BoxCloneService<Request<()>, Res, BoxError>;

/// What the origin saw and how often.
#[derive(Clone, Default)]
struct Seen {
    calls: Arc<AtomicUsize>,
    requests: Arc<Mutex<Vec<HeaderMap>>>,
}

impl Seen {
    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
    fn last(&self) -> HeaderMap {
        self.requests.lock().unwrap().last().cloned().unwrap()
    }
}

fn origin<F>(f: F) -> (Svc, Seen)
where
    F: Fn(&Request<()>, usize) -> Result<Res, BoxError> + Clone + Send + Sync + 'static,
{
    let seen = Seen::default();
    let s = seen.clone();
    let svc = service_fn(move |req: Request<()>| {
        let n = s.calls.fetch_add(1, Ordering::SeqCst) + 1;
        s.requests.lock().unwrap().push(req.headers().clone());
        let r = f(&req, n);
        async move { r }
    });
    (BoxCloneService::new(svc), seen)
}

fn resp(status: u16, headers: &[(&str, &str)], body: &str) -> Res {
    let mut b = Response::builder().status(status);
    for (n, v) in headers {
        b = b.header(*n, *v);
    }
    b.body(Full::new(Bytes::from(body.to_owned()))).unwrap()
}

fn get(headers: &[(&str, &str)]) -> Request<()> {
    let mut b = Request::get("/r").header("host", "api.example.com");
    for (n, v) in headers {
        b = b.header(*n, *v);
    }
    b.body(()).unwrap()
}

struct Fixture {
    svc: Cache<Svc>,
    seen: Seen,
    clock: ManualClock,
    handle: CacheHandle,
}

fn fixture_with<F>(builder: CacheLayerBuilder, f: F) -> Fixture
where
    F: Fn(&Request<()>, usize) -> Result<Res, BoxError> + Clone + Send + Sync + 'static,
{
    let clock = ManualClock::default();
    let layer = builder.clock(Arc::new(clock.clone())).build().unwrap();
    let (svc, seen) = origin(f);
    Fixture {
        handle: layer.handle(),
        svc: layer.layer(svc),
        seen,
        clock,
    }
}

fn fixture<F>(f: F) -> Fixture
where
    F: Fn(&Request<()>, usize) -> Result<Res, BoxError> + Clone + Send + Sync + 'static,
{
    fixture_with(CacheLayer::builder(), f)
}

async fn send(svc: &Cache<Svc>, req: Request<()>) -> (StatusCode, HeaderMap, Bytes) {
    let res = svc.clone().oneshot(req).await.unwrap();
    let (parts, body) = res.into_parts();
    (
        parts.status,
        parts.headers,
        body.collect().await.unwrap().to_bytes(),
    )
}

fn cache_status(h: &HeaderMap) -> &str {
    h.get("cache-status").map_or("", |v| v.to_str().unwrap())
}

const DATE: &str = "Tue, 14 Nov 2023 22:13:20 GMT"; // ManualClock::default()

mod errors;
mod isolation;
mod purge;
/// The partition of the tests: the `x-user` header.
fn by_user(req: &http::request::Parts) -> Option<String> {
    req.headers
        .get("x-user")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

mod rfc;
mod rows_head_range;
mod rows_stale;
mod rows_targeted;
mod table;
mod tiers_and_bodies;
mod validation_and_stale;
