//! `resilience::Upstreams` in front of real upstream servers on loopback (each on its own tokio
//! runtime, so killing one closes its listener and every connection it holds): p2c spreads the
//! load and prefers the less loaded; a failing instance is ejected, gets nothing while ejected,
//! and comes back after its wait and a probe or a passing check; failing active checks take one
//! out; idempotent requests are retried on another instance within the budget, POSTs are not.
//! Time that decides anything is the injected clock; waits on real I/O have bounded deadlines.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::time::Duration;

use axum::http::{Method, Request, Response, StatusCode};
use bytes::Bytes;
use http_body_util::{BodyExt, Either, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use protothrive::clock::ManualClock;
use protothrive::resilience::{
    BreakerState, HealthCheck, RetryBudget, Upstreams, UpstreamsBuilder,
};
use tower::ServiceExt as _;
use tower::util::BoxCloneSyncService;

const OK: u8 = 0;
const FAIL: u8 = 1;
const HANG: u8 = 2;

/// An upstream instance: answers `200` with its name, `503`, or never, as its modes say; counts
/// what it receives.
struct Backend {
    url: String,
    mode: Arc<AtomicU8>,
    health: Arc<AtomicU8>,
    calls: Arc<AtomicUsize>,
    posts: Arc<AtomicUsize>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl Backend {
    fn start(name: &'static str) -> Self {
        let (mode, health) = (Arc::new(AtomicU8::new(OK)), Arc::new(AtomicU8::new(OK)));
        let (calls, posts) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let answer = |mode: u8, body: &'static str| async move {
            match mode {
                OK => (StatusCode::OK, body),
                FAIL => (StatusCode::SERVICE_UNAVAILABLE, "failing"),
                _ => std::future::pending().await,
            }
        };
        let h = health.clone();
        let (m, c, p) = (mode.clone(), calls.clone(), posts.clone());
        let app = axum::Router::new()
            .route(
                "/health",
                axum::routing::get(move || answer(h.load(Ordering::SeqCst), "up")),
            )
            .fallback(move |method: Method| {
                c.fetch_add(1, Ordering::SeqCst);
                if method == Method::POST {
                    p.fetch_add(1, Ordering::SeqCst);
                }
                answer(m.load(Ordering::SeqCst), name)
            });
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr: SocketAddr = listener.local_addr().unwrap();
        runtime.spawn(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            axum::serve(listener, app).await.unwrap();
        });
        Self {
            url: format!("http://{addr}"),
            mode,
            health,
            calls,
            posts,
            runtime: Some(runtime),
        }
    }

    fn set(&self, mode: u8) {
        self.mode.store(mode, Ordering::SeqCst);
    }

    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    /// Stops the instance: its listener and every connection close at once.
    fn kill(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.kill();
    }
}

type Body = Either<Full<Bytes>, Full<Bytes>>;

/// Why a call to an instance failed.
#[derive(Debug)]
enum Failure {
    Transport,
    Timeout,
}

type Member = BoxCloneSyncService<Request<Body>, Response<Incoming>, Failure>;
type Set = Upstreams<Member, Full<Bytes>>;

/// A client of one instance: the request's path on the instance's address, bounded by
/// `timeout` per attempt.
fn member(client: &Client<HttpConnector, Body>, base: &str, timeout: Duration) -> Member {
    let (client, base) = (client.clone(), base.to_owned());
    BoxCloneSyncService::new(tower::service_fn(move |mut req: Request<Body>| {
        let client = client.clone();
        *req.uri_mut() = format!("{base}{}", req.uri().path()).parse().unwrap();
        async move {
            match tokio::time::timeout(timeout, client.request(req)).await {
                Ok(Ok(res)) => Ok(res),
                Ok(Err(_)) => Err(Failure::Transport),
                Err(_) => Err(Failure::Timeout),
            }
        }
    }))
}

/// A set over `backends` on `clock`: ejected after 3 failures for 30 s, per-attempt timeout
/// 300 ms, a budget that never refuses unless the test sets one.
fn builder(backends: &[&Backend], clock: &ManualClock) -> UpstreamsBuilder<Member> {
    let client = Client::builder(TokioExecutor::new()).build(HttpConnector::new());
    let clock: protothrive::clock::SharedClock = Arc::new(clock.clone());
    let mut b = Upstreams::builder()
        .clock(clock.clone())
        .eject_after(3, Duration::from_secs(30))
        .retry_budget(RetryBudget::new(clock, 100, 1000));
    for (i, backend) in backends.iter().enumerate() {
        b = b.member(
            format!("b{i}"),
            member(&client, &backend.url, Duration::from_millis(300)),
        );
    }
    b
}

/// Sends one request through the set: its status and body (or the failure).
async fn send(set: &Set, method: Method, key: Option<&str>) -> Result<(u16, String), Failure> {
    let mut req = Request::builder().method(method).uri("/work");
    if let Some(key) = key {
        req = req.header("idempotency-key", key);
    }
    let res = set
        .clone()
        .oneshot(req.body(Full::new(Bytes::from_static(b"{}"))).unwrap())
        .await?;
    let status = res.status().as_u16();
    let body = res.into_body().collect().await.map_or_else(
        |_| String::new(),
        |b| String::from_utf8_lossy(&b.to_bytes()).into_owned(),
    );
    Ok((status, body))
}

async fn get(set: &Set) -> (u16, String) {
    send(set, Method::GET, None).await.expect("an answer")
}

/// GETs until `done` (at most `limit` of them).
async fn get_until(set: &Set, limit: usize, done: impl Fn() -> bool) {
    for _ in 0..limit {
        if done() {
            return;
        }
        get(set).await;
    }
    assert!(done(), "not reached in {limit} requests");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn p2c_spreads_the_load_over_every_healthy_upstream() {
    let (a, b, c) = (
        Backend::start("a"),
        Backend::start("b"),
        Backend::start("c"),
    );
    let set: Set = builder(&[&a, &b, &c], &ManualClock::default())
        .build()
        .unwrap();
    for _ in 0..300 {
        assert_eq!(get(&set).await.0, 200);
    }
    let calls = [a.calls(), b.calls(), c.calls()];
    assert_eq!(calls.iter().sum::<usize>(), 300);
    // Equal loads: uniform, 100 each expected; below 50 would be a skew, not chance.
    assert!(calls.iter().all(|&n| n >= 50), "{calls:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn p2c_sends_to_the_less_loaded_upstream() {
    let (a, b) = (Backend::start("a"), Backend::start("b"));
    a.set(HANG);
    let client = Client::builder(TokioExecutor::new()).build(HttpConnector::new());
    let long = Duration::from_secs(60);
    // No retries, and a timeout longer than the test: a request on `a` stays in flight.
    let set: Set = Upstreams::builder()
        .member("a", member(&client, &a.url, long))
        .member("b", member(&client, &b.url, long))
        .max_attempts(1)
        .build()
        .unwrap();
    let mut hung = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while set.status()[0].in_flight == 0 {
        assert!(tokio::time::Instant::now() < deadline, "a never got one");
        let s = set.clone();
        hung.push(tokio::spawn(async move { get(&s).await }));
        wait_for(|| set.status()[0].in_flight == 1 || hung.iter().all(|t| t.is_finished())).await;
    }
    let before = b.calls();
    for _ in 0..20 {
        assert_eq!(get(&set).await, (200, "b".to_owned()));
    }
    assert_eq!(
        b.calls() - before,
        20,
        "with one in flight on a, every request goes to b"
    );
    assert_eq!(a.calls(), 1);
    for t in hung {
        t.abort();
    }
}

/// Awaits `cond` over real I/O, for at most 10 s.
async fn wait_for(cond: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "condition not met in 10 s"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_upstream_is_ejected_and_returns_after_its_wait_and_a_probe() {
    let (a, b) = (Backend::start("a"), Backend::start("b"));
    b.set(FAIL);
    let clock = ManualClock::default();
    let set: Set = builder(&[&a, &b], &clock).max_attempts(1).build().unwrap();
    get_until(&set, 200, || b.calls() == 3).await;
    assert_eq!(
        set.status()[1].breaker,
        BreakerState::Open,
        "3 failures in a row"
    );
    for _ in 0..50 {
        assert_eq!(get(&set).await, (200, "a".to_owned()));
    }
    clock.advance(Duration::from_secs(29));
    for _ in 0..20 {
        assert_eq!(get(&set).await.0, 200);
    }
    assert_eq!(b.calls(), 3, "nothing while ejected");
    // The wait is over: one probe, which fails: ejected again, for twice as long.
    clock.advance(Duration::from_secs(1));
    get_until(&set, 200, || b.calls() == 4).await;
    assert_eq!(set.status()[1].breaker, BreakerState::Open);
    clock.advance(Duration::from_secs(59));
    for _ in 0..20 {
        assert_eq!(get(&set).await.0, 200);
    }
    assert_eq!(b.calls(), 4, "the second wait is 60 s");
    // Fixed, and the wait over: the probe passes and b is back in the rotation.
    b.set(OK);
    clock.advance(Duration::from_secs(1));
    get_until(&set, 200, || b.calls() == 5).await;
    assert_eq!(set.status()[1].breaker, BreakerState::Closed);
    get_until(&set, 200, || b.calls() >= 15).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_every_upstream_ejected_the_answer_is_a_503_problem() {
    let (a, b) = (Backend::start("a"), Backend::start("b"));
    a.set(FAIL);
    b.set(FAIL);
    let clock = ManualClock::default();
    let set: Set = builder(&[&a, &b], &clock).max_attempts(1).build().unwrap();
    get_until(&set, 100, || a.calls() == 3 && b.calls() == 3).await;
    let res = set
        .clone()
        .oneshot(Request::new(Full::new(Bytes::new())))
        .await
        .unwrap();
    assert_eq!(res.status(), 503);
    assert_eq!(res.headers()["content-type"], "application/problem+json");
    assert_eq!(res.headers()["retry-after"], "30");
    let body = res.into_body().collect().await.unwrap().to_bytes();
    let problem: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(problem["code"], "UPSTREAM-503");
    assert_eq!(a.calls() + b.calls(), 6, "nobody called");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_passing_check_is_the_probe_of_an_ejected_upstream() {
    let (a, b) = (Backend::start("a"), Backend::start("b"));
    b.set(FAIL);
    let clock = ManualClock::default();
    let set: Set = builder(&[&a, &b], &clock)
        .health_check(HealthCheck::new("/health"))
        .max_attempts(1)
        .build()
        .unwrap();
    get_until(&set, 200, || b.calls() == 3).await;
    b.set(OK);
    assert_eq!(set.check().await, [true, true]);
    assert_eq!(
        set.status()[1].breaker,
        BreakerState::Open,
        "still within its wait"
    );
    clock.advance(Duration::from_secs(30));
    assert_eq!(set.check().await, [true, true]);
    assert_eq!(set.status()[1].breaker, BreakerState::Closed);
    assert_eq!(b.calls(), 3, "back without risking a client's request");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_checks_take_upstreams_out_and_passing_ones_bring_them_back() {
    let (a, b, c) = (
        Backend::start("a"),
        Backend::start("b"),
        Backend::start("c"),
    );
    b.health.store(FAIL, Ordering::SeqCst);
    c.health.store(HANG, Ordering::SeqCst);
    let check = HealthCheck::new("/health")
        .timeout(Duration::from_millis(200))
        .unhealthy_after(2)
        .healthy_after(2);
    let set: Set = builder(&[&a, &b, &c], &ManualClock::default())
        .health_check(check)
        .build()
        .unwrap();
    assert_eq!(set.check().await, [true, false, false]);
    assert!(
        set.status().iter().all(|m| m.healthy),
        "one failure is not enough"
    );
    set.check().await;
    let healthy: Vec<bool> = set.status().iter().map(|m| m.healthy).collect();
    assert_eq!(healthy, [true, false, false]);
    for _ in 0..30 {
        assert_eq!(get(&set).await, (200, "a".to_owned()));
    }
    assert_eq!((b.calls(), c.calls()), (0, 0));
    b.health.store(OK, Ordering::SeqCst);
    set.check().await;
    assert!(!set.status()[1].healthy, "one pass is not enough");
    set.check().await;
    assert!(set.status()[1].healthy);
    get_until(&set, 100, || b.calls() > 0).await;
    assert_eq!(c.calls(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idempotent_request_is_retried_on_another_upstream_and_a_post_is_not() {
    let (a, b) = (Backend::start("a"), Backend::start("b"));
    a.set(FAIL);
    let set: Set = builder(&[&a, &b], &ManualClock::default())
        .eject_after(1000, Duration::from_secs(30))
        .build()
        .unwrap();
    for _ in 0..30 {
        assert_eq!(get(&set).await, (200, "b".to_owned()));
    }
    assert!(a.calls() > 0, "a was tried");
    assert_eq!(b.calls(), 30, "each GET that met a's 503 was answered by b");
    let (a0, b0) = (a.calls(), b.calls());
    let mut statuses = Vec::new();
    for _ in 0..30 {
        statuses.push(send(&set, Method::POST, None).await.unwrap().0);
    }
    let posts = (
        a.posts.load(Ordering::SeqCst),
        b.posts.load(Ordering::SeqCst),
    );
    assert_eq!(posts.0 + posts.1, 30, "each POST sent once");
    assert_eq!(statuses.iter().filter(|&&s| s == 503).count(), posts.0);
    assert!(posts.0 > 0 && posts.1 > 0, "{posts:?}");
    assert_eq!((a.calls() - a0, b.calls() - b0), posts);
    for i in 0..10 {
        let key = format!("key-{i}");
        let (status, _) = send(&set, Method::POST, Some(&key)).await.unwrap();
        assert_eq!(status, 200, "a POST with an Idempotency-Key is retried");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_and_hanging_upstreams_are_retried_around_and_ejected() {
    let (a, mut b, c) = (
        Backend::start("a"),
        Backend::start("b"),
        Backend::start("c"),
    );
    let set: Set = builder(&[&a, &b, &c], &ManualClock::default())
        .eject_after(2, Duration::from_secs(30))
        .max_attempts(3)
        .build()
        .unwrap();
    // Connections to every instance in the client's pool, then b dies and c stops answering.
    get_until(&set, 100, || {
        a.calls() > 0 && b.calls() > 0 && c.calls() > 0
    })
    .await;
    b.kill();
    c.set(HANG);
    let (a0, c0) = (a.calls(), c.calls());
    for _ in 0..30 {
        assert_eq!(get(&set).await, (200, "a".to_owned()));
    }
    assert_eq!(a.calls() - a0, 30);
    assert_eq!(c.calls() - c0, 2, "two timeouts, then ejected");
    let states: Vec<BreakerState> = set.status().iter().map(|m| m.breaker).collect();
    assert_eq!(
        states,
        [BreakerState::Closed, BreakerState::Open, BreakerState::Open]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_retry_budget_caps_retries() {
    let (a, b) = (Backend::start("a"), Backend::start("b"));
    a.set(FAIL);
    b.set(FAIL);
    let clock = ManualClock::default();
    let set: Set = builder(&[&a, &b], &clock)
        .eject_after(1000, Duration::from_secs(30))
        .retry_budget(RetryBudget::new(Arc::new(clock.clone()), 20, 0))
        .build()
        .unwrap();
    for _ in 0..100 {
        assert_eq!(get(&set).await.0, 503);
    }
    // 20% of 100 requests: 20 retries, each on the other instance.
    assert_eq!(a.calls() + b.calls(), 120);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_balances_its_upstreams_and_routes_around_a_killed_one() {
    let (a, mut b) = (Backend::start("a"), Backend::start("b"));
    let gw = super::Gateway::start(&[
        "--upstream",
        &a.url,
        "--upstream",
        &b.url,
        "--rate",
        "off",
        "--cache-mb",
        "0",
        "--eject-after",
        "2",
        "--health-path",
        "/health",
        "--health-interval",
        "0.2",
    ]);
    let client = super::client();
    let get = || async { client.get(gw.url("/work")).send().await.unwrap() };
    for _ in 0..40 {
        assert_eq!(get().await.status(), 200);
    }
    assert_eq!(a.calls() + b.calls(), 40);
    assert!(a.calls() > 0 && b.calls() > 0, "both get a share");
    b.kill();
    let a0 = a.calls();
    for _ in 0..40 {
        let res = get().await;
        assert_eq!(
            res.status(),
            200,
            "a GET that meets the dead one is retried"
        );
        assert_eq!(res.text().await.unwrap(), "a");
    }
    assert_eq!(a.calls() - a0, 40);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_post_that_meets_a_refused_connection_is_sent_to_another_upstream() {
    let a = Backend::start("a");
    // An address nothing listens on: every connection to it is refused.
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    let gw = super::Gateway::start(&[
        "--upstream",
        &a.url,
        "--upstream",
        &dead,
        "--rate",
        "off",
        "--cache-mb",
        "0",
        "--eject-after",
        "1000",
    ]);
    let client = super::client();
    for i in 0..20 {
        let res = client
            .post(gw.url("/work"))
            .body(format!("{{\"n\":{i}}}"))
            .send()
            .await
            .unwrap();
        assert_eq!(
            res.status(),
            200,
            "POST {i}: never sent to the dead one, so sent to a"
        );
        assert_eq!(res.text().await.unwrap(), "a");
    }
    assert_eq!(
        a.posts.load(Ordering::SeqCst),
        20,
        "each POST reached a once"
    );
}
