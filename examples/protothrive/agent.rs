//! The agent service: an HTTP client, and the simulated agent the example starts when no
//! `PROTOTHRIVE_AGENT_URL` is given (deterministic output; latency and failure rate from
//! `PROTOTHRIVE_AGENT_LATENCY_MS` and `PROTOTHRIVE_AGENT_FAILURE_RATE`, a share of slow calls
//! from `PROTOTHRIVE_AGENT_SLOW_RATE` and `PROTOTHRIVE_AGENT_SLOW_MS`).
//!
//! Calls go through [`AgentClient::run`], a tower stack of the library's resilience layers,
//! outer to inner: an overall [`TimeoutLayer`] (its deadline bounds every retry), a
//! [`RetryLayer`] with a [`RetryBudget`] (the call is a `POST` carrying an `Idempotency-Key`, so
//! it may be retried; only 502/503/504 and timeouts are), the attempt log, a
//! [`CircuitBreakerLayer`] shared by every request, a per-attempt [`TimeoutLayer`], and the
//! HTTP call itself. Everything reads time from the app's clock.

use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use bytes::Bytes;
use http_body_util::{BodyExt, Either, Full};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tower::util::BoxCloneSyncService;
use tower::{ServiceBuilder, ServiceExt, service_fn};

use protothrive::clock::SharedClock;
use protothrive::resilience::{
    CircuitBreaker, CircuitBreakerLayer, Reason, Refused, RetryBudget, RetryLayer, TimeoutLayer,
    Window,
};
use protothrive::trace::TraceClientLayer;

use crate::config::{Config, Resilience};

/// Attempts per run (the first call and up to two retries).
pub const MAX_ATTEMPTS: u32 = 3;
/// The deadline of one attempt, unless configured (`PROTOTHRIVE_AGENT_TIMEOUT_MS`).
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(2);
/// The breaker's first open wait, unless configured (`PROTOTHRIVE_AGENT_BREAKER_WAIT_MS`).
pub const BREAKER_WAIT: Duration = Duration::from_secs(10);
/// The deadline of a whole run, retries and backoff included.
pub const RUN_TIMEOUT: Duration = Duration::from_secs(7);
/// Backoff before retry `n` (from 0): uniform in `[0, min(BACKOFF_CAP, BACKOFF_BASE · 2^n)]`.
const BACKOFF_BASE: Duration = Duration::from_millis(100);
const BACKOFF_CAP: Duration = Duration::from_secs(1);
/// The largest answer read from the agent service.
const MAX_ANSWER_BYTES: usize = 1024 * 1024;

/// The body the retry layer hands on: its buffered copy, or the original.
type Body = Either<Full<Bytes>, Full<Bytes>>;
type Call = BoxCloneSyncService<http::Request<Full<Bytes>>, http::Response<Bytes>, Infallible>;

#[derive(Clone)]
pub struct AgentClient {
    call: Call,
    /// Shared by every request: the breaker sees all calls of the process.
    pub breaker: CircuitBreaker,
}

impl std::fmt::Debug for AgentClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentClient")
            .field("breaker", &self.breaker)
            .finish_non_exhaustive()
    }
}

/// The client's bounds: the deadline of one attempt, and the breaker's first open wait (it
/// doubles while probes fail, up to six times this).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    pub attempt: Duration,
    pub breaker_wait: Duration,
}

impl Default for Bounds {
    fn default() -> Self {
        Self {
            attempt: ATTEMPT_TIMEOUT,
            breaker_wait: BREAKER_WAIT,
        }
    }
}

impl From<&Resilience> for Bounds {
    fn from(r: &Resilience) -> Self {
        Self {
            attempt: Duration::from_millis(r.agent_timeout_ms),
            breaker_wait: Duration::from_millis(r.agent_breaker_wait_ms),
        }
    }
}

/// Why an attempt failed, as the HTTP call saw it (a response extension).
#[derive(Debug, Clone)]
struct Failure(String);

/// The attempts of one run, appended to by the attempt log (a request extension).
#[derive(Debug, Clone, Default)]
struct AttemptLog(Arc<Mutex<Vec<Attempt>>>);

impl AgentClient {
    fn new(
        base_url: &str,
        http: reqwest::Client,
        clock: &SharedClock,
        bounds: Bounds,
    ) -> Result<Self, Box<dyn std::error::Error>> {
        // Open on 50% failures (or 80% calls of 1 s or more) among at least 10 calls of the last
        // 30 s; closed again by one probe after the wait (10 s unless configured), the wait
        // doubling to six times that while probes fail.
        let breaker = CircuitBreaker::builder("agent")
            .window(Window::Time(Duration::from_secs(30)))
            .min_calls(10)
            .failure_rate(50)
            .slow_calls(Duration::from_secs(1), 80)
            .open_wait(bounds.breaker_wait)
            .max_open_wait(bounds.breaker_wait.saturating_mul(6))
            .clock(clock.clone())
            .build()?;
        let url = format!("{base_url}/v1/run");
        let attempt = ServiceBuilder::new()
            .layer(CircuitBreakerLayer::new(breaker.clone()))
            .layer(TimeoutLayer::outbound(bounds.attempt).clock(clock.clone()))
            // Each attempt is a client span of the request being served: a new span id in the
            // `traceparent` the agent service receives, the caller's trace id.
            .layer(TraceClientLayer::new())
            .service(service_fn(move |req: http::Request<Body>| {
                send(http.clone(), url.clone(), req)
            }));
        let log_clock = clock.clone();
        let logged = service_fn(move |req: http::Request<Body>| {
            log_attempt(attempt.clone(), log_clock.clone(), bounds.attempt, req)
        });
        // Retries may add 20% to the calls of the last 10 s, and at least 3 per second.
        let call = ServiceBuilder::new()
            .layer(TimeoutLayer::outbound(RUN_TIMEOUT).clock(clock.clone()))
            .layer(
                RetryLayer::new(RetryBudget::new(clock.clone(), 20, 3))
                    .max_attempts(MAX_ATTEMPTS)
                    .backoff(BACKOFF_BASE, BACKOFF_CAP),
            )
            .service(logged)
            .and_then(collect);
        Ok(Self {
            call: BoxCloneSyncService::new(call),
            breaker,
        })
    }
}

/// How one attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptStatus {
    Success,
    /// A 5xx answer, a connection error or an unreadable answer: retried.
    Error,
    Timeout,
    /// A 4xx answer: the request is at fault, retrying cannot help.
    Rejected,
}

impl AttemptStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::Error => "error",
            Self::Timeout => "timeout",
            Self::Rejected => "rejected",
        }
    }
}

/// One attempt of a run, as recorded in `agent_run_traces`.
#[derive(Debug, Clone)]
pub struct Attempt {
    pub number: u32,
    pub agent: String,
    pub status: AttemptStatus,
    pub duration_ms: i64,
    pub error: Option<String>,
}

/// Why a run produced no output.
#[derive(Debug, Clone)]
pub enum RunError {
    /// The breaker is open: no attempt was made.
    Open { retry_after: Duration },
    /// Every attempt allowed failed; the last one ended with this status.
    Failed {
        last: AttemptStatus,
        message: String,
    },
}

/// The attempts of a run and its outcome.
#[derive(Debug)]
pub struct Run {
    pub attempts: Vec<Attempt>,
    pub result: Result<AgentOutput, RunError>,
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl AgentClient {
    /// Runs `req` through the resilience stack (see the module docs).
    pub async fn run(&self, req: &AgentRequest) -> Run {
        let log = AttemptLog::default();
        let body = serde_json::to_vec(req).unwrap_or_default();
        let mut request = http::Request::new(Full::new(Bytes::from(body)));
        *request.method_mut() = http::Method::POST;
        let headers = request.headers_mut();
        headers.insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/json"),
        );
        // The same key on every attempt: the agent service may deduplicate, and the retry layer
        // retries a POST only when it carries one.
        if let Ok(key) = http::HeaderValue::from_str(&crate::db::new_id()) {
            headers.insert("idempotency-key", key);
        }
        request.extensions_mut().insert(log.clone());
        let answer = self.call.clone().oneshot(request).await;
        let mut attempts =
            std::mem::take(&mut *log.0.lock().unwrap_or_else(PoisonError::into_inner));
        let Ok(res) = answer;
        let refused = res.extensions().get::<Refused>().copied();
        if res.status().is_success()
            && let Ok(out) = serde_json::from_slice::<AgentOutput>(res.body())
        {
            if let Some(last) = attempts.last_mut() {
                last.agent.clone_from(&out.model);
            }
            return Run {
                attempts,
                result: Ok(out),
            };
        }
        let result = match (refused, attempts.last()) {
            (Some(r), None) if r.reason == Reason::BreakerOpen => RunError::Open {
                retry_after: r.retry_after.unwrap_or(Duration::from_secs(1)),
            },
            (r, Some(last)) => RunError::Failed {
                last: last.status,
                message: match r {
                    Some(r) if r.reason == Reason::BreakerOpen => {
                        format!(
                            "{}; then the circuit opened",
                            last.error.clone().unwrap_or_default()
                        )
                    }
                    _ => last.error.clone().unwrap_or_default(),
                },
            },
            (_, None) => RunError::Failed {
                last: AttemptStatus::Timeout,
                message: format!("no answer within {} ms", RUN_TIMEOUT.as_millis()),
            },
        };
        Run {
            attempts,
            result: Err(result),
        }
    }
}

/// The final answer with its body read.
async fn collect<B: http_body::Body<Data = Bytes>>(
    res: http::Response<B>,
) -> Result<http::Response<Bytes>, Infallible> {
    let (parts, body) = res.into_parts();
    let bytes = body.collect().await.map(|c| c.to_bytes());
    Ok(http::Response::from_parts(parts, bytes.unwrap_or_default()))
}

/// One attempt through `svc` (breaker, per-attempt timeout, HTTP call), logged in the request's
/// [`AttemptLog`] unless the breaker refused it (no call was made).
async fn log_attempt<S, B>(
    svc: S,
    clock: SharedClock,
    timeout: Duration,
    req: http::Request<Body>,
) -> Result<http::Response<Full<Bytes>>, Infallible>
where
    S: tower::Service<http::Request<Body>, Response = http::Response<B>, Error = Infallible>,
    B: http_body::Body<Data = Bytes>,
{
    let log = req.extensions().get::<AttemptLog>().cloned();
    let started = clock.instant();
    let res = svc.oneshot(req).await?;
    let duration_ms = millis(clock.instant().saturating_duration_since(started));
    let (parts, body) = res.into_parts();
    let bytes = body
        .collect()
        .await
        .map(|c| c.to_bytes())
        .unwrap_or_default();
    let refused = parts.extensions.get::<Refused>().map(|r| r.reason);
    if let Some(log) = log
        && refused != Some(Reason::BreakerOpen)
    {
        let code = parts.status;
        let (status, error) = if refused == Some(Reason::Timeout) {
            let e = format!("no answer within {} ms", timeout.as_millis());
            (AttemptStatus::Timeout, Some(e))
        } else if code.is_success() {
            (AttemptStatus::Success, None)
        } else if code.is_client_error() {
            let e = format!("agent service refused the task ({code})");
            (AttemptStatus::Rejected, Some(e))
        } else {
            let e = parts
                .extensions
                .get::<Failure>()
                .map_or_else(|| format!("agent service answered {code}"), |f| f.0.clone());
            (AttemptStatus::Error, Some(e))
        };
        let mut attempts = log.0.lock().unwrap_or_else(PoisonError::into_inner);
        let number = u32::try_from(attempts.len()).unwrap_or(u32::MAX) + 1;
        attempts.push(Attempt {
            number,
            agent: "agent-service".into(),
            status,
            duration_ms,
            error,
        });
    }
    Ok(http::Response::from_parts(parts, Full::new(bytes)))
}

/// The HTTP call: the agent's answer when it is a valid [`AgentOutput`], its status when it is
/// a 4xx or 5xx, and a 502 with a [`Failure`] when the service is unreachable or its answer is
/// unusable (so the breaker counts it, and the retry layer retries it).
async fn send(
    http: reqwest::Client,
    url: String,
    req: http::Request<Body>,
) -> Result<http::Response<Full<Bytes>>, Infallible> {
    let (parts, body) = req.into_parts();
    let body = match body {
        Either::Left(b) | Either::Right(b) => b.collect().await.map(|c| c.to_bytes()),
    };
    let failed = |message: String| {
        let mut res = http::Response::new(Full::new(Bytes::new()));
        *res.status_mut() = StatusCode::BAD_GATEWAY;
        res.extensions_mut().insert(Failure(message));
        Ok(res)
    };
    let answer = http
        .post(url)
        .headers(parts.headers)
        .body(body.unwrap_or_default())
        .send()
        .await;
    let res = match answer {
        Ok(res) => res,
        Err(e) => return failed(format!("agent service unreachable: {e}")),
    };
    let status = res.status();
    if !status.is_success() {
        let mut out = http::Response::new(Full::new(Bytes::new()));
        *out.status_mut() = status;
        if let Some(after) = res.headers().get(http::header::RETRY_AFTER) {
            out.headers_mut()
                .insert(http::header::RETRY_AFTER, after.clone());
        }
        return Ok(out);
    }
    if res
        .content_length()
        .is_some_and(|n| n > MAX_ANSWER_BYTES as u64)
    {
        return failed("agent answer too large".into());
    }
    let bytes = match res.bytes().await {
        Ok(b) if b.len() <= MAX_ANSWER_BYTES => b,
        Ok(_) => return failed("agent answer too large".into()),
        Err(e) => return failed(format!("agent answer unreadable: {e}")),
    };
    let out: AgentOutput = match serde_json::from_slice(&bytes) {
        Ok(out) => out,
        Err(e) => return failed(format!("agent answer malformed: {e}")),
    };
    // The schema's checks (token_count > 0, cost ≥ 0) hold for what gets recorded.
    if out.token_count <= 0
        || !out.cost_usd.is_finite()
        || out.cost_usd < 0.0
        || out.model.is_empty()
    {
        return failed("agent answer out of range".into());
    }
    Ok(http::Response::new(Full::new(bytes)))
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AgentRequest {
    pub task_type: String,
    pub roadmap_id: String,
    pub prompt: String,
    pub budget_usd: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AgentOutput {
    pub output: String,
    pub model: String,
    pub token_count: i64,
    pub cost_usd: f64,
}

/// The client of the configured agent service, or of a simulated one started on loopback.
pub async fn start(
    config: &Config,
    clock: &SharedClock,
) -> Result<AgentClient, Box<dyn std::error::Error>> {
    let http = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(2))
        .build()?;
    let bounds = Bounds::from(&config.resilience);
    if let Some(url) = &config.agent_url {
        return AgentClient::new(url.trim_end_matches('/'), http, clock, bounds);
    }
    let sim = Sim {
        latency: Duration::from_millis(config.agent_latency_ms),
        failure_rate: config.agent_failure_rate,
        slow_rate: config.agent_slow_rate,
        slow: Duration::from_millis(config.agent_slow_ms),
        calls: Arc::new(AtomicU64::new(0)),
        traceparents: Arc::default(),
    };
    let url = spawn_sim(sim).await?;
    AgentClient::new(&url, http, clock, bounds)
}

/// Serves `sim` on a free loopback port; its base URL.
async fn spawn_sim(sim: Sim) -> std::io::Result<String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let router = axum::Router::new()
        .route("/v1/run", post(run))
        .with_state(sim);
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    Ok(format!("http://{addr}"))
}

#[derive(Clone, Default)]
struct Sim {
    latency: Duration,
    failure_rate: f64,
    /// The share of calls that take `slow` more.
    slow_rate: f64,
    slow: Duration,
    calls: Arc<AtomicU64>,
    /// The `traceparent` of the last calls received (at most 64), in order.
    traceparents: Arc<std::sync::Mutex<Vec<String>>>,
}

/// Whether call number `call` is one of a `rate` share of calls, spread evenly and
/// deterministically over the sequence (a rate of 0.3 picks calls 3, 6, 9, 13, ...).
#[allow(clippy::cast_precision_loss)]
fn every(rate: f64, call: u64) -> bool {
    rate > 0.0 && (call as f64 * rate).floor() != ((call + 1) as f64 * rate).floor()
}

/// FNV-1a: a stable hash so the same request always gets the same answer.
fn fnv(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

async fn run(
    State(sim): State<Sim>,
    headers: axum::http::HeaderMap,
    Json(req): Json<AgentRequest>,
) -> Response {
    let call = sim.calls.fetch_add(1, Ordering::Relaxed);
    if let Some(tp) = headers.get("traceparent").and_then(|v| v.to_str().ok())
        && let Ok(mut seen) = sim.traceparents.lock()
    {
        if seen.len() == 64 {
            seen.remove(0);
        }
        seen.push(tp.to_owned());
    }
    let slow = if every(sim.slow_rate, call) {
        sim.slow
    } else {
        Duration::ZERO
    };
    tokio::time::sleep(sim.latency + slow).await;
    if every(sim.failure_rate, call) {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"error": "simulated failure"})),
        )
            .into_response();
    }
    let h = fnv(&format!(
        "{}|{}|{}",
        req.task_type, req.roadmap_id, req.prompt
    ));
    let tokens = 200 + i64::try_from(h % 1800).unwrap_or(0);
    #[allow(clippy::cast_precision_loss)]
    let cost = (tokens as f64) * 0.000_002;
    Json(AgentOutput {
        output: format!(
            "[{}] plan for roadmap {}: step {}",
            req.task_type,
            req.roadmap_id,
            h % 97
        ),
        model: "sim-agent-1".into(),
        token_count: tokens,
        cost_usd: (cost * 1e6).round() / 1e6,
    })
    .into_response()
}

#[cfg(test)]
mod tests;
