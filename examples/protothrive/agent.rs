//! The agent service: an HTTP client, and the simulated agent the example starts when no
//! `PROTOTHRIVE_AGENT_URL` is given (deterministic output; latency and failure rate from
//! `PROTOTHRIVE_AGENT_LATENCY_MS` and `PROTOTHRIVE_AGENT_FAILURE_RATE`).
//!
//! Calls go through [`AgentClient::run`]: a per-attempt timeout, retries of 5xx answers and
//! timeouts only, with jittered exponential backoff bounded by a [`retry::RetryBudget`], all behind
//! a [`breaker::CircuitBreaker`]. Both state machines are pure and read time from the app's clock.

pub mod breaker;
pub mod retry;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde::{Deserialize, Serialize};
use serde_json::json;

use protothrive::clock::SharedClock;

use self::breaker::{BreakerConfig, CircuitBreaker, Permit};
use self::retry::{RetryBudget, backoff};
use crate::config::Config;

/// Attempts per run (the first call and up to two retries).
pub const MAX_ATTEMPTS: u32 = 3;
/// The deadline of one attempt.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(2);
/// Backoff before retry `n` (from 0): uniform in `[0, min(BACKOFF_CAP, BACKOFF_BASE · 2^n)]`.
const BACKOFF_BASE: Duration = Duration::from_millis(100);
const BACKOFF_CAP: Duration = Duration::from_secs(1);
/// The largest answer read from the agent service.
const MAX_ANSWER_BYTES: usize = 1024 * 1024;

#[derive(Clone, Debug)]
pub struct AgentClient {
    pub base_url: String,
    pub http: reqwest::Client,
    /// Shared by every request: the breaker and the budget see all calls of the process.
    pub breaker: Arc<Mutex<CircuitBreaker>>,
    pub budget: Arc<Mutex<RetryBudget>>,
}

impl AgentClient {
    fn new(base_url: String, http: reqwest::Client) -> Self {
        Self {
            base_url,
            http,
            breaker: Arc::new(Mutex::new(CircuitBreaker::new(BreakerConfig::default()))),
            // Retries may add 20% to the calls of the last 10 s, and at least 3 per second.
            budget: Arc::new(Mutex::new(RetryBudget::new(20, 3))),
        }
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

fn random_u64() -> u64 {
    let mut bytes = [0u8; 8];
    let _ = aws_lc_rs::rand::fill(&mut bytes);
    u64::from_le_bytes(bytes)
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl AgentClient {
    /// Runs `req` with timeouts, budgeted retries and the breaker. Time comes from `clock`.
    pub async fn run(&self, clock: &SharedClock, req: &AgentRequest) -> Run {
        let mut attempts = Vec::new();
        self.budget
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .deposit(clock.instant());
        let mut last = (AttemptStatus::Error, String::new());
        for number in 1..=MAX_ATTEMPTS {
            let permit = self
                .breaker
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .acquire(clock.instant());
            let permit = match permit {
                Ok(p) => p,
                Err(open) if attempts.is_empty() => {
                    return Run {
                        attempts,
                        result: Err(RunError::Open {
                            retry_after: open.retry_after,
                        }),
                    };
                }
                Err(_) => {
                    last.1 = format!("{}; then the circuit opened", last.1);
                    break;
                }
            };
            let started = clock.instant();
            let outcome = self.attempt(req).await;
            let duration_ms = millis(clock.instant().saturating_duration_since(started));
            let status = match &outcome {
                Ok(_) => AttemptStatus::Success,
                Err((s, _)) => *s,
            };
            // A 4xx says the service is up and answering.
            let healthy = matches!(status, AttemptStatus::Success | AttemptStatus::Rejected);
            self.record(permit, clock, healthy);
            match outcome {
                Ok(out) => {
                    attempts.push(Attempt {
                        number,
                        agent: out.model.clone(),
                        status,
                        duration_ms,
                        error: None,
                    });
                    return Run {
                        attempts,
                        result: Ok(out),
                    };
                }
                Err((status, message)) => {
                    attempts.push(Attempt {
                        number,
                        agent: "agent-service".into(),
                        status,
                        duration_ms,
                        error: Some(message.clone()),
                    });
                    last = (status, message);
                }
            }
            if status == AttemptStatus::Rejected || number == MAX_ATTEMPTS {
                break;
            }
            let granted = self
                .budget
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .try_withdraw(clock.instant());
            if !granted {
                last.1 = format!("{}; retry budget exhausted", last.1);
                break;
            }
            tokio::time::sleep(backoff(number - 1, BACKOFF_BASE, BACKOFF_CAP, random_u64())).await;
        }
        Run {
            attempts,
            result: Err(RunError::Failed {
                last: last.0,
                message: last.1,
            }),
        }
    }

    fn record(&self, permit: Permit, clock: &SharedClock, ok: bool) {
        self.breaker
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .record(permit, clock.instant(), ok);
    }

    /// One HTTP call under [`ATTEMPT_TIMEOUT`].
    async fn attempt(&self, req: &AgentRequest) -> Result<AgentOutput, (AttemptStatus, String)> {
        let call = async {
            let res = self
                .http
                .post(format!("{}/v1/run", self.base_url))
                .json(req)
                .send()
                .await
                .map_err(|e| {
                    (
                        AttemptStatus::Error,
                        format!("agent service unreachable: {e}"),
                    )
                })?;
            let status = res.status();
            if status.is_client_error() {
                return Err((
                    AttemptStatus::Rejected,
                    format!("agent service refused the task ({status})"),
                ));
            }
            if !status.is_success() {
                return Err((
                    AttemptStatus::Error,
                    format!("agent service answered {status}"),
                ));
            }
            if res
                .content_length()
                .is_some_and(|n| n > MAX_ANSWER_BYTES as u64)
            {
                return Err((AttemptStatus::Error, "agent answer too large".into()));
            }
            let bytes = res.bytes().await.map_err(|e| {
                (
                    AttemptStatus::Error,
                    format!("agent answer unreadable: {e}"),
                )
            })?;
            if bytes.len() > MAX_ANSWER_BYTES {
                return Err((AttemptStatus::Error, "agent answer too large".into()));
            }
            let out: AgentOutput = serde_json::from_slice(&bytes)
                .map_err(|e| (AttemptStatus::Error, format!("agent answer malformed: {e}")))?;
            // The schema's checks (token_count > 0, cost ≥ 0) hold for what gets recorded.
            if out.token_count <= 0
                || !out.cost_usd.is_finite()
                || out.cost_usd < 0.0
                || out.model.is_empty()
            {
                return Err((AttemptStatus::Error, "agent answer out of range".into()));
            }
            Ok(out)
        };
        match tokio::time::timeout(ATTEMPT_TIMEOUT, call).await {
            Ok(r) => r,
            Err(_) => Err((
                AttemptStatus::Timeout,
                format!("no answer within {} ms", ATTEMPT_TIMEOUT.as_millis()),
            )),
        }
    }
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
pub async fn start(config: &Config) -> Result<AgentClient, Box<dyn std::error::Error>> {
    let http = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(2))
        .build()?;
    if let Some(url) = &config.agent_url {
        return Ok(AgentClient::new(url.trim_end_matches('/').to_owned(), http));
    }
    let sim = Sim {
        latency: Duration::from_millis(config.agent_latency_ms),
        failure_rate: config.agent_failure_rate,
        calls: Arc::new(AtomicU64::new(0)),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let router = axum::Router::new()
        .route("/v1/run", post(run))
        .with_state(sim);
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    Ok(AgentClient::new(format!("http://{addr}"), http))
}

#[derive(Clone)]
struct Sim {
    latency: Duration,
    failure_rate: f64,
    calls: Arc<AtomicU64>,
}

/// FNV-1a: a stable hash so the same request always gets the same answer.
fn fnv(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

async fn run(State(sim): State<Sim>, Json(req): Json<AgentRequest>) -> Response {
    let call = sim.calls.fetch_add(1, Ordering::Relaxed);
    tokio::time::sleep(sim.latency).await;
    // Failures are spread evenly and deterministically over the sequence of calls.
    #[allow(clippy::cast_precision_loss)]
    let fails = sim.failure_rate > 0.0
        && ((call as f64 * sim.failure_rate).floor()
            != ((call + 1) as f64 * sim.failure_rate).floor());
    if fails {
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
