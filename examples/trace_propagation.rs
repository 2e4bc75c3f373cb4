//! Run with: cargo run --example trace_propagation -- --listen 127.0.0.1:5000
//!
//! The service the W3C Trace Context test harness drives
//! (<https://github.com/w3c/trace-context/tree/main/test>): `POST /test` takes a JSON array of
//! `{"url": ..., "arguments": [...]}` and, for each element in order, sends `POST url` with
//! `arguments` as its JSON body, then answers `200`. The server is wrapped in `TraceLayer`, so an
//! incoming `traceparent`/`tracestate` is continued (or the trace restarts when it is invalid);
//! the outbound client is a hyper-util client wrapped in `TraceClientLayer`, so every call is a
//! new child span: same trace id, a new parent id per call, the `tracestate` sent on.
//!
//! ```text
//! python test/test.py http://127.0.0.1:5000/test     # from a checkout of w3c/trace-context
//! ```
//!
//! A callback that cannot be made (bad URL, refused connection) ends the request with a `502`
//! problem (`CALLBACK-502`) saying which; the callbacks before it were made.

// A binary, not a library: the public-item lints do not apply.
#![allow(unreachable_pub, missing_docs, missing_debug_implementations)]

use std::net::SocketAddr;

use axum::body::Body;
use axum::extract::State;
use axum::http::{Request, StatusCode, header};
use axum::response::Response;
use axum::routing::post;
use axum::{Json, Router};
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use protothrive::error::Problem;
use protothrive::trace::{TraceClient, TraceClientLayer, TraceContext, TraceLayer};
use serde::Deserialize;
use tower::{Layer as _, ServiceExt as _};

/// The outbound client: every request it sends carries the trace of the request being served.
pub type Outbound = TraceClient<Client<HttpConnector, Full<Bytes>>>;

/// One callback the harness asks for.
#[derive(Debug, Deserialize)]
pub struct Callback {
    pub url: String,
    #[serde(default)]
    pub arguments: serde_json::Value,
}

/// The app: `POST /test` behind `TraceLayer`.
pub fn app() -> Router {
    let client = Client::builder(TokioExecutor::new()).build_http();
    let outbound: Outbound = TraceClientLayer::new().layer(client);
    Router::new()
        .route("/test", post(test))
        .with_state(outbound)
        .layer(TraceLayer::new())
}

async fn test(
    State(client): State<Outbound>,
    Json(callbacks): Json<Vec<Callback>>,
) -> Result<StatusCode, Response> {
    // The trace layer's context of the request being served (it is also in the request's
    // extensions: `TraceContext::of`).
    let server_span = protothrive::trace::current()
        .map(|c| c.context.clone())
        .unwrap_or_else(|| TraceContext::root(false));
    for callback in callbacks {
        call(&client, &server_span, callback).await.map_err(|e| {
            Problem::new(StatusCode::BAD_GATEWAY, "CALLBACK-502")
                .with_detail(e)
                .render_for(&http::Extensions::new())
                .map(Body::from)
        })?;
    }
    Ok(StatusCode::OK)
}

/// One `POST url` with `arguments` as the body, as a child span of `server_span`.
async fn call(client: &Outbound, server_span: &TraceContext, cb: Callback) -> Result<(), String> {
    let body = serde_json::to_vec(&cb.arguments).map_err(|e| e.to_string())?;
    let mut req = Request::post(&cb.url)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Full::from(body))
        .map_err(|e| format!("{}: {e}", cb.url))?;
    // The layer would find the span through `trace::current()` too; the extension says so.
    req.extensions_mut().insert(server_span.clone());
    let res = client
        .clone()
        .oneshot(req)
        .await
        .map_err(|e| format!("{}: {e}", cb.url))?;
    // Read the answer to the end so the connection goes back to the pool.
    res.into_body()
        .collect()
        .await
        .map_err(|e| format!("{}: {e}", cb.url))?;
    Ok(())
}

/// `--listen ADDR` from the command line (default `127.0.0.1:5000`).
pub fn listen_addr(args: impl IntoIterator<Item = String>) -> Result<SocketAddr, String> {
    let mut addr = SocketAddr::from(([127, 0, 0, 1], 5000));
    let mut args = args.into_iter();
    while let Some(flag) = args.next() {
        match flag.as_str() {
            "--listen" => {
                let v = args.next().ok_or("--listen needs a value")?;
                addr = v.parse().map_err(|e| format!("--listen {v}: {e}"))?;
            }
            other => {
                return Err(format!(
                    "unknown option {other}\nusage: trace_propagation [--listen ADDR]"
                ));
            }
        }
    }
    Ok(addr)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr = listen_addr(std::env::args().skip(1))?;
    let listener = tokio::net::TcpListener::bind(addr).await?;
    println!("listening on http://{}/test", listener.local_addr()?);
    axum::serve(listener, app()).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::listen_addr;

    fn args(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn listen_defaults_to_port_5000_and_takes_an_address() {
        assert_eq!(
            listen_addr(args(&[])).unwrap().to_string(),
            "127.0.0.1:5000"
        );
        assert_eq!(
            listen_addr(args(&["--listen", "127.0.0.1:7001"]))
                .unwrap()
                .to_string(),
            "127.0.0.1:7001"
        );
        assert_eq!(
            listen_addr(args(&["--listen"])),
            Err("--listen needs a value".to_owned())
        );
        assert_eq!(
            listen_addr(args(&["--port", "1"])),
            Err("unknown option --port\nusage: trace_propagation [--listen ADDR]".to_owned())
        );
    }
}
