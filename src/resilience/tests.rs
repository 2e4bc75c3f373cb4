//! The layers, on a manual clock (tokio's paused time for the timers); the breaker's state
//! machine alone is in `breaker_tests.rs`.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use tower::{Layer, Service, ServiceExt, service_fn};

use super::*;
use crate::clock::ManualClock;
use crate::error::ConfigError;

pub(super) fn breaker(clock: &ManualClock) -> CircuitBreakerBuilder {
    CircuitBreaker::builder("test")
        .window(Window::Count(10))
        .min_calls(4)
        .failure_rate(50)
        .open_wait(Duration::from_secs(2))
        .max_open_wait(Duration::from_secs(7))
        .clock(Arc::new(clock.clone()))
}

pub(super) fn call(b: &CircuitBreaker, outcome: Outcome) -> Result<(), BreakerOpen> {
    b.try_acquire()?.record(outcome);
    Ok(())
}

fn status_service(
    status: u16,
    calls: Arc<AtomicUsize>,
) -> impl Service<Request<String>, Response = Response<String>, Error = Infallible> + Clone {
    service_fn(move |_req: Request<String>| {
        calls.fetch_add(1, Ordering::SeqCst);
        async move {
            Ok::<_, Infallible>(
                Response::builder()
                    .status(status)
                    .body(String::new())
                    .unwrap(),
            )
        }
    })
}

async fn json(
    res: Response<
        crate::response::ResponseBody<
            impl http_body::Body<Data = bytes::Bytes, Error = impl std::fmt::Debug>,
        >,
    >,
) -> serde_json::Value {
    let body = res.into_body().collect().await.unwrap().to_bytes();
    serde_json::from_slice(&body).unwrap()
}

/// The statuses of `n` requests through clones of `svc`.
async fn statuses<S, B>(svc: &S, n: usize) -> Vec<u16>
where
    S: Service<Request<String>, Response = Response<B>, Error = Infallible> + Clone,
{
    let mut out = Vec::new();
    for _ in 0..n {
        let res = svc.clone().oneshot(Request::new(String::new())).await;
        out.push(res.unwrap().status().as_u16());
    }
    out
}

#[tokio::test]
async fn an_open_breaker_answers_503_without_calling_the_service() {
    let clock = ManualClock::default();
    let b = breaker(&clock).build().unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let svc = CircuitBreakerLayer::new(b.clone()).layer(status_service(502, calls.clone()));
    assert_eq!(statuses(&svc, 4).await, [502; 4]);
    let res = svc.oneshot(Request::new(String::new())).await.unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 4);
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(res.headers()["retry-after"], "2");
    assert_eq!(
        res.extensions().get::<Refused>(),
        Some(&Refused {
            reason: Reason::BreakerOpen,
            retry_after: Some(Duration::from_secs(2))
        })
    );
    assert_eq!(json(res).await["code"], "CIRCUIT-503");
}

#[tokio::test]
async fn the_clients_4xx_never_opens_the_breaker() {
    let clock = ManualClock::default();
    let b = breaker(&clock).build().unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let svc = CircuitBreakerLayer::new(b.clone()).layer(status_service(404, calls.clone()));
    assert_eq!(statuses(&svc, 20).await, [404; 20]);
    assert_eq!(b.state(), BreakerState::Closed);
}

type Replayed = http_body_util::Either<http_body_util::Full<bytes::Bytes>, String>;

fn flaky(
    failures: usize,
    calls: Arc<AtomicUsize>,
) -> tower::util::BoxCloneService<Request<Replayed>, Response<String>, Infallible> {
    tower::util::BoxCloneService::new(service_fn(move |req: Request<Replayed>| {
        let n = calls.fetch_add(1, Ordering::SeqCst);
        async move {
            let body = req.into_body().collect().await.unwrap().to_bytes();
            let status = if n < failures { 503 } else { 200 };
            Ok::<_, Infallible>(
                Response::builder()
                    .status(status)
                    .header("retry-after", "1")
                    .body(String::from_utf8(body.to_vec()).unwrap())
                    .unwrap(),
            )
        }
    }))
}

fn retry_layer(clock: &ManualClock, percent: u32) -> RetryLayer {
    RetryLayer::new(RetryBudget::new(Arc::new(clock.clone()), percent, 0))
        .max_attempts(3)
        .backoff(Duration::from_millis(10), Duration::from_millis(100))
}

#[tokio::test(start_paused = true)]
async fn idempotent_requests_are_retried_with_their_body_replayed() {
    let clock = ManualClock::default();
    let calls = Arc::new(AtomicUsize::new(0));
    let svc = retry_layer(&clock, 200).layer(flaky(2, calls.clone()));
    let req = Request::put("/x").body(String::from("payload")).unwrap();
    let res = svc.oneshot(req).await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    let body = res.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body, "payload");
}

#[tokio::test(start_paused = true)]
async fn a_post_is_never_retried_unless_it_has_an_idempotency_key() {
    let clock = ManualClock::default();
    let calls = Arc::new(AtomicUsize::new(0));
    let svc = retry_layer(&clock, 100).layer(flaky(1, calls.clone()));
    let post = Request::post("/x").body(String::from("a")).unwrap();
    assert_eq!(svc.clone().oneshot(post).await.unwrap().status(), 503);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    let keyed = Request::post("/x")
        .header("idempotency-key", "k1")
        .body(String::from("a"))
        .unwrap();
    calls.store(0, Ordering::SeqCst);
    assert_eq!(svc.oneshot(keyed).await.unwrap().status(), 200);
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

#[tokio::test(start_paused = true)]
async fn retries_stop_when_the_budget_is_spent() {
    let clock = ManualClock::default();
    let calls = Arc::new(AtomicUsize::new(0));
    // 10% of 10 requests: one retry in all.
    let svc = retry_layer(&clock, 10).layer(flaky(usize::MAX, calls.clone()));
    for _ in 0..10 {
        let res = svc
            .clone()
            .oneshot(Request::get("/x").body(String::new()).unwrap())
            .await;
        assert_eq!(res.unwrap().status(), 503);
    }
    assert_eq!(calls.load(Ordering::SeqCst), 11);
}

#[tokio::test(start_paused = true)]
async fn retry_after_past_the_deadline_is_not_waited_for() {
    let clock = ManualClock::default();
    let calls = Arc::new(AtomicUsize::new(0));
    let svc = retry_layer(&clock, 100).layer(flaky(1, calls.clone()));
    let mut req = Request::get("/x").body(String::new()).unwrap();
    req.extensions_mut()
        .insert(Deadline::after(&clock, Duration::from_millis(900)));
    assert_eq!(svc.oneshot(req).await.unwrap().status(), 503);
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "Retry-After: 1 is past the deadline"
    );
}

#[tokio::test(start_paused = true)]
async fn an_open_breaker_inside_is_not_retried() {
    let clock = ManualClock::default();
    let b = breaker(&clock).build().unwrap();
    for _ in 0..4 {
        call(&b, Outcome::Failure).unwrap();
    }
    let calls = Arc::new(AtomicUsize::new(0));
    let svc = tower::ServiceBuilder::new()
        .layer(retry_layer(&clock, 100))
        .layer(CircuitBreakerLayer::new(b))
        .service(flaky(0, calls.clone()));
    let res = svc
        .oneshot(Request::get("/x").body(String::new()).unwrap())
        .await
        .unwrap();
    assert_eq!(res.status(), 503);
    assert_eq!(calls.load(Ordering::SeqCst), 0);
}

fn slow(
    delay: Duration,
) -> impl Service<Request<String>, Response = Response<String>, Error = Infallible> + Clone {
    service_fn(move |req: Request<String>| async move {
        let left = req.extensions().get::<Deadline>().map(|d| d.0);
        tokio::time::sleep(delay).await;
        Ok::<_, Infallible>(Response::new(format!("{}", left.is_some())))
    })
}

#[tokio::test(start_paused = true)]
async fn timeouts_answer_504_outbound_and_503_around_handlers_and_pass_the_deadline() {
    let clock = Arc::new(ManualClock::default());
    let out = TimeoutLayer::outbound(Duration::from_millis(100)).clock(clock.clone());
    let res = out
        .layer(slow(Duration::from_secs(1)))
        .oneshot(Request::new(String::new()))
        .await
        .unwrap();
    assert_eq!(res.status(), 504);
    assert_eq!(
        res.extensions().get::<Refused>().unwrap().reason,
        Reason::Timeout
    );
    assert_eq!(json(res).await["code"], "TIMEOUT-504");
    let handler = TimeoutLayer::handler(Duration::from_millis(100)).clock(clock.clone());
    let res = handler
        .layer(slow(Duration::from_secs(1)))
        .oneshot(Request::new(String::new()))
        .await
        .unwrap();
    assert_eq!(json(res).await["code"], "TIMEOUT-503");
    let res = out
        .layer(slow(Duration::from_millis(10)))
        .oneshot(Request::new(String::new()))
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.into_body().collect().await.unwrap().to_bytes(), "true");
}

#[tokio::test(start_paused = true)]
async fn a_passed_deadline_is_answered_without_calling_the_service() {
    let clock = ManualClock::default();
    let calls = Arc::new(AtomicUsize::new(0));
    let svc = TimeoutLayer::outbound(Duration::from_secs(5))
        .clock(Arc::new(clock.clone()))
        .layer(status_service(200, calls.clone()));
    let mut req = Request::new(String::new());
    req.extensions_mut()
        .insert(Deadline::after(&clock, Duration::from_secs(1)));
    clock.advance(Duration::from_secs(1));
    assert_eq!(svc.oneshot(req).await.unwrap().status(), 504);
    assert_eq!(calls.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn load_shedding_refuses_anonymous_first_and_admins_last() {
    let layer = LoadShedLayer::builder(4)
        .anonymous_share(50)
        .authenticated_share(75)
        .build()
        .unwrap();
    let (tx, rx) = tokio::sync::watch::channel(false);
    let mut svc = layer.layer(service_fn(move |_req: Request<()>| {
        let mut rx = rx.clone();
        async move {
            let _ = rx.wait_for(|go| *go).await;
            Ok::<_, Infallible>(Response::new(String::new()))
        }
    }));
    let user = || {
        let mut r = Request::new(());
        r.extensions_mut()
            .insert(crate::identity::Principal::builder("u").build());
        r
    };
    let admin = || {
        let mut r = Request::new(());
        r.extensions_mut().insert(
            crate::identity::Principal::builder("a")
                .roles(["admin"])
                .build(),
        );
        r
    };
    let mut held = vec![svc.call(Request::new(())), svc.call(Request::new(()))];
    let shed = svc.call(Request::new(())).await.unwrap();
    assert_eq!(shed.status(), 503);
    assert_eq!(shed.headers()["retry-after"], "1");
    assert_eq!(json(shed).await["code"], "LOAD-503");
    held.push(svc.call(user()));
    assert_eq!(svc.call(user()).await.unwrap().status(), 503);
    held.push(svc.call(admin()));
    assert_eq!(
        svc.call(admin()).await.unwrap().status(),
        503,
        "the limit itself"
    );
    assert_eq!(layer.in_flight(), 4);
    tx.send(true).unwrap();
    for f in held {
        assert_eq!(f.await.unwrap().status(), 200);
    }
    assert_eq!(layer.in_flight(), 0);
    let shares = "load shedding: the limit must be above zero and 0 ≤ anonymous share ≤ \
                  authenticated share ≤ 100";
    let err = LoadShedLayer::builder(0).build().err();
    assert_eq!(err.as_ref().map(ConfigError::message), Some(shares));
    let err = LoadShedLayer::builder(5)
        .anonymous_share(80)
        .authenticated_share(50)
        .build()
        .err();
    assert_eq!(err.as_ref().map(ConfigError::message), Some(shares));
}

/// A breaker inside a cached route: once it opens, the cache answers its 503 from the stale
/// entry (marked in `Cache-Status`) and the origin is not called; without an entry the client
/// gets the breaker's problem.
#[cfg(feature = "cache")]
#[tokio::test]
async fn an_open_breaker_inside_the_cache_is_answered_stale_and_marked() {
    use crate::cache::CacheLayer;

    let clock = ManualClock::default();
    let shared: crate::clock::SharedClock = Arc::new(clock.clone());
    let b = breaker(&clock)
        .window(Window::Count(2))
        .min_calls(2)
        .build()
        .unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let seen = calls.clone();
    let origin = service_fn(move |_req: Request<()>| {
        let n = seen.fetch_add(1, Ordering::SeqCst);
        async move {
            let res = if n == 0 {
                Response::builder()
                    .header("cache-control", "max-age=1, stale-if-error=60")
                    .body(http_body_util::Full::new(bytes::Bytes::from("fresh")))
            } else {
                Response::builder()
                    .status(500)
                    .body(http_body_util::Full::new(bytes::Bytes::new()))
            };
            Ok::<_, Infallible>(res.unwrap())
        }
    });
    let cache = CacheLayer::builder().clock(shared).build().unwrap();
    let svc = tower::ServiceBuilder::new()
        .layer(cache)
        .layer(CircuitBreakerLayer::new(b.clone()))
        .service(origin);
    let get = |path: &str| {
        Request::get(path)
            .header("host", "api.example.com")
            .body(())
            .unwrap()
    };
    assert_eq!(svc.clone().oneshot(get("/r")).await.unwrap().status(), 200);
    clock.advance(Duration::from_secs(2));
    let res = svc.clone().oneshot(get("/r")).await.unwrap();
    assert_eq!(res.status(), 200, "stale on the origin's 500");
    assert_eq!(b.state(), BreakerState::Open, "1 failure in 2 calls");
    let res = svc.clone().oneshot(get("/r")).await.unwrap();
    assert_eq!(res.status(), 200);
    let status = res.headers()["cache-status"].to_str().unwrap().to_owned();
    assert!(
        status.contains("fwd=stale") && status.contains("fwd-status=503"),
        "{status}"
    );
    assert!(status.contains("detail=stale-if-error"), "{status}");
    assert_eq!(res.into_body().collect().await.unwrap().to_bytes(), "fresh");
    assert_eq!(
        calls.load(Ordering::SeqCst),
        2,
        "the open breaker spared the origin"
    );
    let res = svc.oneshot(get("/other")).await.unwrap();
    assert_eq!(res.status(), 503);
    assert_eq!(res.headers()["retry-after"], "2");
}

#[tokio::test]
async fn the_fallback_answers_failures_and_refusals_marked_and_passes_the_rest() {
    let layer = FallbackLayer::new(|method: &http::Method, uri: &http::Uri| {
        Response::new(bytes::Bytes::from(format!("fallback for {method} {uri}")))
    });
    let calls = Arc::new(AtomicUsize::new(0));
    for (status, marker) in [(500, Some("error")), (404, None), (200, None)] {
        let res = layer
            .layer(status_service(status, calls.clone()))
            .oneshot(Request::get("/x").body(String::new()).unwrap())
            .await
            .unwrap();
        let fallback = res
            .headers()
            .get("fallback")
            .map(|v| v.to_str().unwrap().to_owned());
        assert_eq!(fallback.as_deref(), marker);
        if marker.is_some() {
            assert_eq!(res.status(), 200);
            let body = res.into_body().collect().await.unwrap().to_bytes();
            assert_eq!(body, "fallback for GET /x");
        } else {
            assert_eq!(res.status().as_u16(), status);
        }
    }
    let clock = ManualClock::default();
    let b = breaker(&clock).build().unwrap();
    for _ in 0..4 {
        call(&b, Outcome::Failure).unwrap();
    }
    let svc = tower::ServiceBuilder::new()
        .layer(layer)
        .layer(CircuitBreakerLayer::new(b))
        .service(status_service(200, calls.clone()));
    let res = svc.oneshot(Request::new(String::new())).await.unwrap();
    assert_eq!(res.headers()["fallback"], "breaker-open");
}
