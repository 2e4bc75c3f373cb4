//! The two loopback servers of the test: an OTLP/HTTP receiver that decodes what arrives, and
//! a downstream service that notes the `traceparent` of each call and answers 500 on `/fail`.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode, Uri};
use prost::Message as _;
use tokio::sync::mpsc;

use crate::otlp::{ExportTraceServiceRequest, Span};

/// One export request as it arrived.
#[derive(Debug)]
pub(crate) struct Received {
    pub(crate) path: String,
    pub(crate) content_type: String,
    pub(crate) request: ExportTraceServiceRequest,
}

/// An OTLP/HTTP receiver on 127.0.0.1.
pub(crate) struct Receiver {
    pub(crate) endpoint: String,
    rx: mpsc::UnboundedReceiver<Received>,
    status: Arc<AtomicU16>,
    next: Arc<Mutex<VecDeque<u16>>>,
}

async fn serve(router: axum::Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    addr
}

impl Receiver {
    pub(crate) async fn start() -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        let status = Arc::new(AtomicU16::new(200));
        let next = Arc::new(Mutex::new(VecDeque::new()));
        let (answer, scripted) = (status.clone(), next.clone());
        let router =
            axum::Router::new().fallback(move |uri: Uri, headers: HeaderMap, body: Bytes| {
                let (tx, answer) = (tx.clone(), answer.clone());
                let scripted = scripted.lock().unwrap().pop_front();
                async move {
                    let request =
                        ExportTraceServiceRequest::decode(body).expect("valid OTLP protobuf");
                    let content_type = headers
                        .get("content-type")
                        .map(|v| v.to_str().unwrap().to_owned())
                        .unwrap_or_default();
                    let path = uri.path().to_owned();
                    let _ = tx.send(Received {
                        path,
                        content_type,
                        request,
                    });
                    // An empty ExportTraceServiceResponse is zero bytes.
                    let code = scripted.unwrap_or_else(|| answer.load(Ordering::Relaxed));
                    StatusCode::from_u16(code).unwrap()
                }
            });
        let addr = serve(router).await;
        Self {
            endpoint: format!("http://{addr}"),
            rx,
            status,
            next,
        }
    }

    /// The statuses of the next requests, one each, before the standing one again.
    pub(crate) fn answer_next(&self, statuses: &[u16]) {
        self.next.lock().unwrap().extend(statuses);
    }

    /// The status the receiver answers with from now on.
    pub(crate) fn answer_with(&self, status: u16) {
        self.status.store(status, Ordering::Relaxed);
    }

    /// The next export request, waiting at most five seconds.
    pub(crate) async fn next(&mut self) -> Received {
        tokio::time::timeout(Duration::from_secs(5), self.rx.recv())
            .await
            .expect("an export within 5 s")
            .expect("the receiver is running")
    }

    /// The spans of the export requests received so far (an exporter's `flush` returns once
    /// the receiver has answered, so they are all here by then).
    pub(crate) fn spans(&mut self) -> Vec<Span> {
        self.requests().into_iter().flatten().collect()
    }

    /// The spans of each export request received so far, request by request.
    pub(crate) fn requests(&mut self) -> Vec<Vec<Span>> {
        let mut out = Vec::new();
        while let Ok(r) = self.rx.try_recv() {
            assert_eq!(r.path, "/v1/traces");
            assert_eq!(r.content_type, "application/x-protobuf");
            let mut spans = Vec::new();
            for rs in r.request.resource_spans {
                for ss in rs.scope_spans {
                    spans.extend(ss.spans);
                }
            }
            out.push(spans);
        }
        out
    }
}

/// A downstream service on 127.0.0.1: 200 on every path but `/fail` (500).
pub(crate) struct Downstream {
    pub(crate) addr: SocketAddr,
    seen: Arc<Mutex<Vec<(String, String)>>>,
}

impl Downstream {
    pub(crate) async fn start() -> Self {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        let router = axum::Router::new().fallback(move |uri: Uri, headers: HeaderMap| {
            let log = log.clone();
            async move {
                let tp = headers
                    .get("traceparent")
                    .map(|v| v.to_str().unwrap().to_owned())
                    .unwrap_or_default();
                log.lock().unwrap().push((uri.path().to_owned(), tp));
                if uri.path() == "/fail" {
                    StatusCode::INTERNAL_SERVER_ERROR
                } else {
                    StatusCode::OK
                }
            }
        });
        Self {
            addr: serve(router).await,
            seen,
        }
    }

    /// The `traceparent` the last call to `path` carried.
    pub(crate) fn traceparent_of(&self, path: &str) -> String {
        let seen = self.seen.lock().unwrap();
        let (_, tp) = seen.iter().rev().find(|(p, _)| p == path).expect("a call");
        tp.clone()
    }
}
