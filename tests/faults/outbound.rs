//! An outbound client stack (overall timeout → retry → breaker → per-attempt timeout → reqwest)
//! through the fault proxy to a real axum server.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Either, Full};
use protothrive::clock::{ManualClock, SharedClock};
use protothrive::resilience::{
    BreakerState, CircuitBreaker, CircuitBreakerLayer, RetryBudget, RetryLayer, TimeoutLayer,
    Window,
};
use tower::util::BoxCloneSyncService;
use tower::{ServiceBuilder, ServiceExt, service_fn};

use crate::support::fault::{Fault, FaultProxy};

/// The breaker's window and minimum: it must open within this many failed attempts.
const WINDOW: u32 = 5;
/// The breaker's first open wait (on the manual clock).
const OPEN_WAIT: Duration = Duration::from_secs(5);
/// Retries may add this share of the requests (no floor, so the bound is exact).
const BUDGET_PERCENT: u32 = 20;
/// Requests offered under each fault.
const OFFERED: u64 = 20;

/// What the origin served.
#[derive(Default)]
struct Origin {
    gets: AtomicU64,
    posts: AtomicU64,
}

async fn origin() -> (SocketAddr, Arc<Origin>) {
    let seen = Arc::new(Origin::default());
    let (g, p) = (seen.clone(), seen.clone());
    let app = axum::Router::new()
        .route(
            "/item",
            axum::routing::get(move || {
                g.gets.fetch_add(1, Ordering::SeqCst);
                async { "ok" }
            })
            .post(move || {
                p.posts.fetch_add(1, Ordering::SeqCst);
                async { (StatusCode::CREATED, "made") }
            }),
        )
        .route(
            "/big",
            axum::routing::get(|| async { vec![b'x'; 64 * 1024] }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (addr, seen)
}

type Body = Either<Full<Bytes>, Full<Bytes>>;
type Client = BoxCloneSyncService<Request<Full<Bytes>>, Response<Bytes>, reqwest::Error>;

struct Harness {
    proxy: FaultProxy,
    origin: Arc<Origin>,
    clock: ManualClock,
    breaker: CircuitBreaker,
    client: Client,
    /// Attempts that left the client (the breaker let them through).
    attempts: Arc<AtomicU64>,
}

async fn send(
    http: reqwest::Client,
    base: String,
    attempts: Arc<AtomicU64>,
    req: Request<Body>,
) -> Result<Response<Full<Bytes>>, reqwest::Error> {
    attempts.fetch_add(1, Ordering::SeqCst);
    let (parts, body) = req.into_parts();
    let body = match body {
        Either::Left(b) | Either::Right(b) => b.collect().await.unwrap().to_bytes(),
    };
    let res = http
        .request(parts.method, format!("{base}{}", parts.uri))
        .headers(parts.headers)
        .body(body)
        .send()
        .await?;
    let status = res.status();
    let bytes = res.bytes().await?;
    let mut out = Response::new(Full::new(bytes));
    *out.status_mut() = status;
    Ok(out)
}

async fn collect<B>(res: Response<B>) -> Result<Response<Bytes>, reqwest::Error>
where
    B: http_body::Body<Data = Bytes>,
    B::Error: std::fmt::Debug,
{
    let (parts, body) = res.into_parts();
    Ok(Response::from_parts(
        parts,
        body.collect().await.unwrap().to_bytes(),
    ))
}

async fn harness() -> Harness {
    harness_with(WINDOW).await
}

/// A harness whose breaker opens after `window` attempts.
async fn harness_with(window: u32) -> Harness {
    let (addr, origin) = origin().await;
    let proxy = FaultProxy::start(addr).await;
    let clock = ManualClock::default();
    let shared: SharedClock = Arc::new(clock.clone());
    let breaker = CircuitBreaker::builder("origin")
        .window(Window::Count(window))
        .min_calls(window)
        .failure_rate(50)
        .open_wait(OPEN_WAIT)
        .clock(shared.clone())
        .build()
        .unwrap();
    let attempts = Arc::new(AtomicU64::new(0));
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(4)
        .build()
        .unwrap();
    let base = format!("http://{}", proxy.addr());
    let a = attempts.clone();
    let client = ServiceBuilder::new()
        .layer(TimeoutLayer::outbound(Duration::from_secs(2)).clock(shared.clone()))
        .layer(
            RetryLayer::new(RetryBudget::new(shared.clone(), BUDGET_PERCENT, 0))
                .max_attempts(3)
                .backoff(Duration::from_millis(5), Duration::from_millis(20)),
        )
        .layer(CircuitBreakerLayer::new(breaker.clone()))
        .layer(TimeoutLayer::outbound(Duration::from_millis(250)).clock(shared))
        .service(service_fn(move |req| {
            send(http.clone(), base.clone(), a.clone(), req)
        }))
        .and_then(collect);
    Harness {
        proxy,
        origin,
        clock,
        breaker,
        client: BoxCloneSyncService::new(client),
        attempts,
    }
}

/// What the client saw of a batch of requests.
#[derive(Debug, Default, PartialEq, Eq)]
struct Seen {
    ok: u64,
    circuit_open: u64,
    timeout: u64,
    transport: u64,
}

impl Harness {
    async fn call(&self, method: Method, path: &str) -> Result<Response<Bytes>, reqwest::Error> {
        let req = Request::builder()
            .method(method)
            .uri(path)
            .body(Full::new(Bytes::new()))
            .unwrap();
        self.client.clone().oneshot(req).await
    }

    /// `n` requests one after another, classified; panics on anything undocumented.
    async fn load(&self, method: Method, path: &str, n: u64) -> Seen {
        let mut seen = Seen::default();
        for _ in 0..n {
            match self.call(method.clone(), path).await {
                Ok(res) if res.status().is_success() => seen.ok += 1,
                Ok(res) => {
                    let status = res.status();
                    let problem: serde_json::Value = serde_json::from_slice(res.body())
                        .unwrap_or_else(|_| panic!("{status} without a problem body"));
                    match (status.as_u16(), problem["code"].as_str()) {
                        (503, Some("CIRCUIT-503")) => seen.circuit_open += 1,
                        (504, Some("TIMEOUT-504")) => seen.timeout += 1,
                        other => panic!("an undocumented answer: {other:?}"),
                    }
                }
                Err(_) => seen.transport += 1,
            }
        }
        seen
    }

    /// Clears the fault, waits out the open wait on the clock, and checks that exactly one
    /// probe reaches the origin and closes the breaker; the steady load then succeeds.
    async fn recovers(&self) {
        self.proxy.set(Fault::None);
        self.clock.advance(OPEN_WAIT * 4);
        let before = self.attempts.load(Ordering::SeqCst);
        let probe = self.call(Method::GET, "/item").await.unwrap();
        assert_eq!(probe.status(), 200);
        assert_eq!(
            self.attempts.load(Ordering::SeqCst),
            before + 1,
            "one probe"
        );
        assert_eq!(self.breaker.state(), BreakerState::Closed);
        let after = self.load(Method::GET, "/item", 10).await;
        assert_eq!(after.ok, 10, "{after:?}");
    }
}

/// Runs the steady load under `fault` and checks the promises that hold for every fault.
async fn under(fault: Fault) -> (Harness, Seen) {
    let h = harness().await;
    let baseline = h.load(Method::GET, "/item", 5).await;
    assert_eq!(baseline.ok, 5);
    let before = h.attempts.load(Ordering::SeqCst);
    h.proxy.set(fault);
    let seen = h.load(Method::GET, "/item", OFFERED).await;
    let attempts = h.attempts.load(Ordering::SeqCst) - before;
    eprintln!("{fault:?}: client saw {seen:?}; {attempts} attempts left the client");
    assert_eq!(h.breaker.state(), BreakerState::Open, "{fault:?}");
    assert!(
        attempts <= u64::from(WINDOW),
        "the breaker opened within its window: {attempts} attempts"
    );
    assert!(attempts <= OFFERED * (100 + u64::from(BUDGET_PERCENT)) / 100);
    assert_eq!(seen.ok, 0);
    assert!(seen.circuit_open >= OFFERED - u64::from(WINDOW), "{seen:?}");
    (h, seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blackholed_origin_times_out_then_the_breaker_answers() {
    let (h, seen) = under(Fault::Blackhole).await;
    assert!(seen.timeout >= 1 && seen.transport == 0, "{seen:?}");
    assert_eq!(
        h.origin.gets.load(Ordering::SeqCst),
        5,
        "nothing got through"
    );
    h.recovers().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reset_connections_are_transport_errors_then_the_breaker_answers() {
    let (h, seen) = under(Fault::Reset).await;
    assert!(seen.transport >= 1 && seen.timeout == 0, "{seen:?}");
    h.recovers().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_origin_times_out_then_the_breaker_answers() {
    let (h, seen) = under(Fault::Latency(Duration::from_millis(400))).await;
    assert!(seen.timeout >= 1, "{seen:?}");
    h.recovers().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_narrow_link_times_large_answers_out() {
    let h = harness().await;
    assert_eq!(h.load(Method::GET, "/big", 2).await.ok, 2);
    // 64 KiB at 32 KiB/s: two seconds, far beyond the 250 ms per attempt.
    h.proxy.set(Fault::Bandwidth(32 * 1024));
    let seen = h.load(Method::GET, "/big", OFFERED).await;
    assert_eq!(seen.ok, 0, "{seen:?}");
    assert!(seen.timeout >= 1);
    assert_eq!(h.breaker.state(), BreakerState::Open);
    h.recovers().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_open_connections_never_get_a_post_retried() {
    let h = harness().await;
    h.proxy.set(Fault::HalfOpen);
    let before = h.attempts.load(Ordering::SeqCst);
    let seen = h.load(Method::POST, "/item", OFFERED).await;
    let attempts = h.attempts.load(Ordering::SeqCst) - before;
    // Each POST reached the origin (which did the work) at most once: never retried.
    let posts = h.origin.posts.load(Ordering::SeqCst);
    assert_eq!(posts, attempts, "{seen:?}");
    assert_eq!(
        seen.timeout, attempts,
        "each attempt timed out, none retried"
    );
    assert!(attempts <= u64::from(WINDOW));
    assert_eq!(h.breaker.state(), BreakerState::Open);
    h.recovers().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_of_gets_stay_within_the_budget() {
    // A breaker that cannot open here (its window is larger than the load), to see the budget.
    let h = harness_with(1000).await;
    let seen = h.load(Method::GET, "/item", 50).await;
    assert_eq!(seen.ok, 50);
    let offered = 50 + 10;
    h.proxy.set(Fault::HalfOpen);
    let before = h.attempts.load(Ordering::SeqCst);
    let seen = h.load(Method::GET, "/item", 10).await;
    let attempts = h.attempts.load(Ordering::SeqCst) - before;
    eprintln!("budget: {seen:?}, {attempts} attempts for 10 requests");
    // 20% of the 60 requests of the budget's window: at most 12 retries (3 attempts each
    // would be 30).
    assert!(attempts <= 10 + offered * u64::from(BUDGET_PERCENT) / 100);
    assert!(attempts > 10, "timeouts of GETs are retried");
    assert_eq!(seen.timeout, 10);
}
