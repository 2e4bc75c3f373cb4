//! A stand-in for the agent service the ProtoThrive API calls (`POST /v1/run`, the API's
//! `PROTOTHRIVE_AGENT_URL`): it answers a valid run output at once, executes each
//! `Idempotency-Key` once (a repeated key gets the first answer again, as a real service that
//! deduplicates would), and counts what it received, so a test can tell how much load reached it
//! and whether a request without a key was ever sent twice.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};

use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use serde_json::{Value, json};

/// What the stand-in received.
#[derive(Debug, Default)]
struct Seen {
    /// Requests, in order of arrival.
    calls: u64,
    /// Requests without an `Idempotency-Key`.
    without_key: u64,
    /// How many times each key came.
    keys: HashMap<String, u32>,
}

/// The running stand-in; it lives as long as the test's runtime.
#[derive(Debug, Clone)]
pub struct AgentService {
    pub addr: SocketAddr,
    seen: Arc<Mutex<Seen>>,
}

impl AgentService {
    /// Starts one on a free loopback port.
    pub async fn start() -> Self {
        let seen = Arc::new(Mutex::new(Seen::default()));
        let app = axum::Router::new()
            .route("/v1/run", axum::routing::post(run))
            .with_state(Arc::clone(&seen));
        let addr = super::serve(app).await;
        Self { addr, seen }
    }

    fn seen<T>(&self, f: impl FnOnce(&Seen) -> T) -> T {
        f(&self.seen.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Requests received so far.
    pub fn calls(&self) -> u64 {
        self.seen(|s| s.calls)
    }

    /// Requests received without an `Idempotency-Key`.
    pub fn without_key(&self) -> u64 {
        self.seen(|s| s.without_key)
    }

    /// Distinct keys received: the runs executed.
    pub fn executed(&self) -> usize {
        self.seen(|s| s.keys.len())
    }

    /// The most requests that carried one key (1: no run was ever sent twice).
    pub fn most_per_key(&self) -> u32 {
        self.seen(|s| s.keys.values().copied().max().unwrap_or(0))
    }
}

async fn run(
    State(seen): State<Arc<Mutex<Seen>>>,
    headers: HeaderMap,
    Json(task): Json<Value>,
) -> Json<Value> {
    {
        let mut s = seen.lock().unwrap_or_else(PoisonError::into_inner);
        s.calls += 1;
        match headers.get("idempotency-key").and_then(|k| k.to_str().ok()) {
            Some(key) => *s.keys.entry(key.to_owned()).or_default() += 1,
            None => s.without_key += 1,
        }
    }
    Json(json!({
        "output": format!("[{}] stand-in plan", task["task_type"].as_str().unwrap_or("?")),
        "model": "stand-in-1",
        "token_count": 100,
        "cost_usd": 0.0002,
    }))
}
