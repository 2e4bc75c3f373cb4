//! Helpers shared by test targets: an app served on a free loopback port, and a loopback server
//! that records every request it receives (the "harness" side of a propagation test); a real
//! `redis-server` (`redis`) and a real Redis Cluster (`redis_cluster`); a throw-away PostgreSQL
//! server (`postgres`); a TCP fault proxy (`fault`) and a scripted agent service (`agent`); the
//! ProtoThrive example as a process (`process`) and what its tests share (`client`). The
//! example compiled in, served in process, is `example.rs` beside this file, included on its own
//! by the crates that run it (it brings the whole example with it).
//!
//! Included by a test target with `#[path = "../support/mod.rs"] mod support;`.

#![allow(dead_code, unreachable_pub)]

pub mod agent;
pub mod client;
pub mod fault;
pub mod postgres;
pub mod process;
pub mod redis;
pub mod stack;
// A real Redis Cluster, and the choice of one Redis or a cluster for suites that run on both.
#[cfg(feature = "redis")]
pub mod redis_cluster;

// What the API tests share, at the root: `support::{login, send, DEMO, ...}`.
#[allow(unused_imports)]
pub use client::*;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Uri};

/// Serves `app` on a free loopback port (bound before this returns, so no race for the port);
/// the server lives as long as the test's runtime.
pub async fn serve(app: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a loopback port");
    let addr = listener.local_addr().expect("local address");
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .expect("serve");
    });
    addr
}

/// One request a [`Recorder`] received.
#[derive(Debug, Clone)]
pub struct Received {
    pub path: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Received {
    /// Every value of header `name`, as text.
    pub fn all(&self, name: &str) -> Vec<String> {
        self.headers
            .get_all(name)
            .iter()
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .collect()
    }
}

/// A loopback server answering `200` to any request and recording it.
#[derive(Debug, Clone)]
pub struct Recorder {
    pub addr: SocketAddr,
    received: Arc<Mutex<Vec<Received>>>,
}

impl Recorder {
    /// Starts one on a free port.
    pub async fn start() -> Self {
        let received = Arc::new(Mutex::new(Vec::new()));
        let app = Router::new()
            .fallback(record)
            .with_state(Arc::clone(&received));
        let addr = serve(app).await;
        Self { addr, received }
    }

    /// `http://127.0.0.1:PORT/path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}/{}", self.addr, path.trim_start_matches('/'))
    }

    /// What was received so far, in order, emptying the record.
    pub fn take(&self) -> Vec<Received> {
        std::mem::take(&mut *self.received.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

async fn record(
    State(received): State<Arc<Mutex<Vec<Received>>>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) {
    received
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push(Received {
            path: uri.path().to_owned(),
            headers,
            body,
        });
}
