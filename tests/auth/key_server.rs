//! A key server on loopback: serves a JWKS whose contents a test swaps mid-test, an OIDC
//! discovery document, and counts every request. It can hold requests at a gate (to keep a fetch
//! in flight while others pile up) and be shut down.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use serde_json::{Value, json};
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

/// What `/jwks` answers.
#[derive(Clone)]
enum Answer {
    Document(String),
    Status(StatusCode),
}

struct Shared {
    base: String,
    answer: Mutex<Answer>,
    /// Requests to `/jwks` so far.
    jwks_hits: watch::Sender<usize>,
    /// Requests to anything else but discovery documents.
    other_hits: AtomicUsize,
    /// `/jwks` answers only while this is true.
    open: watch::Sender<bool>,
}

pub(crate) struct KeyServer {
    shared: Arc<Shared>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

async fn jwks(State(s): State<Arc<Shared>>) -> Response {
    // The answer is decided when the request arrives, before the gate: a test may change what is
    // served next while this request is held.
    let answer = s.answer.lock().unwrap().clone();
    s.jwks_hits.send_modify(|n| *n += 1);
    let mut open = s.open.subscribe();
    let _ = open.wait_for(|open| *open).await;
    match answer {
        Answer::Document(doc) => ([("content-type", "application/json")], doc).into_response(),
        Answer::Status(status) => status.into_response(),
    }
}

fn discovery(issuer: &str, jwks_uri: Option<&str>) -> Response {
    let mut doc = json!({ "issuer": issuer, "id_token_signing_alg_values_supported": ["ES256"] });
    if let Some(uri) = jwks_uri {
        doc["jwks_uri"] = Value::from(uri);
    }
    axum::Json(doc).into_response()
}

async fn other(State(s): State<Arc<Shared>>, uri: Uri) -> Response {
    let base = &s.base;
    let jwks_uri = format!("{base}/jwks");
    match uri.path() {
        "/.well-known/openid-configuration" => discovery(base, Some(&jwks_uri)),
        // Names the root issuer although it was asked for `/other`.
        "/other/.well-known/openid-configuration" => discovery(base, Some(&jwks_uri)),
        "/nojwks/.well-known/openid-configuration" => discovery(&format!("{base}/nojwks"), None),
        "/insecure/.well-known/openid-configuration" => discovery(
            &format!("{base}/insecure"),
            Some("http://idp.example.com/jwks"),
        ),
        // Redirects: to the set on loopback (fine), to plain HTTP on the network (TEST-NET-1).
        "/moved" => Redirect::temporary(&jwks_uri).into_response(),
        "/to-network" => Redirect::temporary("http://192.0.2.1/jwks").into_response(),
        _ => {
            s.other_hits.fetch_add(1, Ordering::SeqCst);
            StatusCode::NOT_FOUND.into_response()
        }
    }
}

impl KeyServer {
    /// Starts a server on 127.0.0.1 (an ephemeral port) serving an empty set.
    pub(crate) async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr: SocketAddr = listener.local_addr().unwrap();
        let shared = Arc::new(Shared {
            base: format!("http://{addr}"),
            answer: Mutex::new(Answer::Document(r#"{"keys":[]}"#.to_owned())),
            jwks_hits: watch::channel(0).0,
            other_hits: AtomicUsize::new(0),
            open: watch::channel(true).0,
        });
        let app = Router::new()
            .route("/jwks", get(jwks))
            .fallback(other)
            .with_state(shared.clone());
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stopped.await;
                })
                .await
                .unwrap();
        });
        Self {
            shared,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub(crate) fn base(&self) -> String {
        self.shared.base.clone()
    }

    /// The JWKS URL.
    pub(crate) fn url(&self) -> String {
        format!("{}/jwks", self.shared.base)
    }

    /// Serves these keys from now on.
    pub(crate) fn set_keys(&self, keys: &[Value]) {
        self.set_document(crate::keys::jwks_doc(keys));
    }

    /// Serves this document from now on.
    pub(crate) fn set_document(&self, doc: String) {
        *self.shared.answer.lock().unwrap() = Answer::Document(doc);
    }

    /// Answers `/jwks` with this status from now on.
    pub(crate) fn set_status(&self, status: StatusCode) {
        *self.shared.answer.lock().unwrap() = Answer::Status(status);
    }

    /// Requests to `/jwks` so far.
    pub(crate) fn jwks_hits(&self) -> usize {
        *self.shared.jwks_hits.borrow()
    }

    /// Requests to paths the server does not serve (where `jku`/`x5u` would point).
    pub(crate) fn other_hits(&self) -> usize {
        self.shared.other_hits.load(Ordering::SeqCst)
    }

    /// Waits until `/jwks` has received at least `n` requests. The timeout only turns a
    /// request that never comes (a broken refresh) into a failure instead of a hang.
    pub(crate) async fn jwks_hit(&self, n: usize) {
        let mut hits = self.shared.jwks_hits.subscribe();
        let arrived = tokio::time::timeout(Duration::from_secs(10), hits.wait_for(|h| *h >= n));
        assert!(
            matches!(arrived.await, Ok(Ok(_))),
            "the key server never received request {n}"
        );
    }

    /// Holds every `/jwks` request until [`release`](Self::release).
    pub(crate) fn hold(&self) {
        self.shared.open.send_replace(false);
    }

    /// Lets held and future requests through.
    pub(crate) fn release(&self) {
        self.shared.open.send_replace(true);
    }

    /// Shuts the server down: from now on connections are refused.
    pub(crate) async fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap();
        }
    }
}
