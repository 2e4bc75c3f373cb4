//! A request through a stacked axum router, in process: what the stack tests of several targets
//! send. Included on its own (`#[path = "../support/stack.rs"]`) by targets that need nothing
//! else of the support module.

use std::net::SocketAddr;

use axum::Router;
use axum::body::{Body, Bytes};
use http::{HeaderMap, Request};
use http_body_util::BodyExt;
use tower::ServiceExt;

/// The origin the stack tests allow.
pub const ORIGIN: &str = "https://app.example";

/// `GET /hello` from 192.0.2.9 with an allowed `Origin` and, when given, a bearer token: the
/// status, headers and body of the answer.
pub async fn get_hello(app: &Router, token: Option<&str>) -> (u16, HeaderMap, Bytes) {
    let mut req = Request::get("http://example.test/hello").header("origin", ORIGIN);
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let mut req = req.body(Body::empty()).expect("a valid request");
    req.extensions_mut()
        .insert(SocketAddr::from(([192, 0, 2, 9], 5000)));
    let res = app.clone().oneshot(req).await.expect("the router answers");
    let (status, headers) = (res.status().as_u16(), res.headers().clone());
    let body = res
        .into_body()
        .collect()
        .await
        .expect("a whole body")
        .to_bytes();
    (status, headers, body)
}
