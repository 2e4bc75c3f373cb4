//! The batch layer over a real stack: client IP → rate limit by IP → axum routes.
#![cfg(all(feature = "client-ip", feature = "rate-limit", feature = "axum"))]

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use axum::routing::{get, post};
use http::{HeaderMap, StatusCode};
use http_body_util::BodyExt as _;
use serde_json::{Value, json};
use tower::{ServiceBuilder, ServiceExt as _};

use super::{BatchItem, BatchLayer, BatchLayerBuilder};
use crate::client_ip::{ClientIp, ClientIpLayer};
use crate::error::ConfigError;
use crate::rate_limit::{KeyBy, Limit, RateLimitLayer};

async fn echo(req: Request) -> axum::Json<Value> {
    let (parts, body) = req.into_parts();
    let bytes = body.collect().await.unwrap().to_bytes();
    let h = |name: &str| {
        parts
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    axum::Json(json!({
        "method": parts.method.as_str(),
        "path": parts.uri.path(),
        "authorization": h("authorization"),
        "api_version": h("api-version"),
        "request_id": h("x-request-id"),
        "host": h("host"),
        "uri": parts.uri.to_string(),
        "client_ip": ClientIp::of(&parts.extensions).map(|c| c.0.to_string()),
        "index": parts.extensions.get::<BatchItem>().map(|b| b.index),
        "body": String::from_utf8_lossy(&bytes),
    }))
}

fn routes() -> Router {
    Router::new()
        .route("/api/echo", get(echo).post(echo))
        .route("/api/v2/echo", get(echo))
        .route(
            "/api/big",
            get(|| async {
                (
                    [("content-type", "application/json")],
                    format!("\"{}\"", "x".repeat(1000)),
                )
            }),
        )
        .route("/api/text", get(|| async { "plain" }))
        .route(
            "/api/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(5)).await;
                "late"
            }),
        )
        .route(
            "/api/batch",
            post(|| async { (StatusCode::UNAUTHORIZED, "who are you") }),
        )
}

/// batch → client IP → a per-IP limit of `burst` → routes.
type Svc = tower::util::BoxCloneService<Request, http::Response<Body>, std::convert::Infallible>;

fn stack(batch: BatchLayerBuilder, burst: u32) -> Svc {
    let limit =
        Limit::new("ip", format!("60/min burst {burst}").parse().unwrap()).by(KeyBy::ClientIp);
    ServiceBuilder::new()
        .layer(tower::util::BoxCloneService::layer())
        .map_response(|r: http::Response<_>| r.map(Body::new))
        .layer(batch.build().unwrap())
        .layer(ClientIpLayer::new())
        .layer(RateLimitLayer::builder().limit(limit).build().unwrap())
        .service(routes())
}

fn batch_req(path: &str, envelope: &Value, headers: &[(&str, &str)]) -> Request {
    let mut req = Request::post(path)
        .body(Body::from(envelope.to_string()))
        .unwrap();
    for (k, v) in headers {
        req.headers_mut().insert(
            http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            v.parse().unwrap(),
        );
    }
    req.extensions_mut()
        .insert("192.0.2.7:4000".parse::<SocketAddr>().unwrap());
    req
}

async fn send(svc: Svc, req: Request) -> (StatusCode, HeaderMap, Value) {
    let res = svc.oneshot(req).await.unwrap();
    let (parts, body) = res.into_parts();
    let bytes = body.collect().await.unwrap().to_bytes();
    (
        parts.status,
        parts.headers,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

fn layer() -> BatchLayerBuilder {
    BatchLayer::builder("/api/batch").items_under("/api")
}

macro_rules! run {
    ($svc:expr, $req:expr) => {
        send($svc, $req).await
    };
}

#[tokio::test]
async fn each_item_goes_through_the_stack_as_if_sent_alone() {
    let envelope = json!([
        {"method": "GET", "path": "/api/echo"},
        {"method": "POST", "path": "/api/echo", "body": {"x": 1}, "headers": {"Authorization": "Bearer own"}},
        {"method": "GET", "path": "/api/v2/echo"},
        {"method": "GET", "path": "/api/text"},
    ]);
    let req = batch_req(
        "/api/v3/batch",
        &envelope,
        &[
            ("authorization", "Bearer caller"),
            ("x-request-id", "rid"),
            ("host", "api.example"),
        ],
    );
    let (status, headers, body) = run!(stack(layer(), 10), req);
    assert_eq!(status, 200, "{body}");
    assert_eq!(headers["cache-control"], "no-store");
    assert_eq!(body["meta"]["count"], 4);
    let d = &body["data"];
    assert_eq!(d[0]["status"], 200);
    assert_eq!(d[0]["body"]["authorization"], "Bearer caller");
    assert_eq!(
        d[0]["body"]["client_ip"], "192.0.2.7",
        "the batch's peer address"
    );
    assert_eq!(d[0]["body"]["request_id"], "rid.0");
    assert_eq!(d[0]["body"]["host"], "api.example", "the batch's host");
    assert_eq!(d[0]["body"]["api_version"], "3", "the batch path's version");
    assert_eq!(d[0]["body"]["index"], 0);
    assert_eq!(
        d[0]["headers"]["ratelimit-policy"], "\"ip\";q=60;w=60",
        "the limit saw it"
    );
    assert_eq!(d[1]["body"]["authorization"], "Bearer own");
    assert_eq!(d[1]["body"]["body"], "{\"x\":1}");
    assert_eq!(d[1]["body"]["method"], "POST");
    assert_eq!(
        d[2]["body"]["api_version"],
        Value::Null,
        "the item has its own version"
    );
    assert_eq!(d[3]["body"], "plain");
    assert_eq!(d[3]["headers"]["content-type"], "text/plain; charset=utf-8");
}

/// An HTTP/2 (or absolute-form) batch names its server in the URI: so do its items.
#[tokio::test]
async fn items_of_an_absolute_uri_batch_name_its_scheme_and_authority() {
    let envelope = json!([{"method": "GET", "path": "/api/echo?x=1"}]);
    let req = batch_req("https://api.example/api/batch", &envelope, &[]);
    let (status, _, body) = run!(stack(layer(), 10), req);
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["data"][0]["body"]["uri"],
        "https://api.example/api/echo?x=1"
    );
    assert_eq!(body["data"][0]["body"]["path"], "/api/echo");
}

#[tokio::test]
async fn every_item_counts_against_the_rate_limit() {
    let items: Vec<Value> = (0..5)
        .map(|_| json!({"method": "GET", "path": "/api/echo"}))
        .collect();
    let (status, _, body) = run!(
        stack(layer(), 3),
        batch_req("/api/batch", &json!(items), &[])
    );
    assert_eq!(status, 200);
    let statuses: Vec<u64> = body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["status"].as_u64().unwrap())
        .collect();
    assert_eq!(
        statuses.iter().filter(|&&s| s == 200).count(),
        3,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|&&s| s == 429).count(),
        2,
        "{statuses:?}"
    );
    let refused = body["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["status"] == 429)
        .unwrap();
    assert_eq!(refused["body"]["code"], "RATE-429");
    assert!(refused["headers"]["retry-after"].is_string());
}

#[tokio::test]
async fn nested_batches_and_bad_items_are_refused_one_by_one() {
    let envelope = json!({"requests": [
        {"method": "POST", "path": "/API//V1/%2562atch/", "body": []},
        {"method": "GET", "path": "/metrics"},
        {"method": "GET", "path": "/api/echo", "headers": {"host": "evil"}},
        {"method": "GET", "path": "/api/echo"},
    ]});
    let (status, _, body) = run!(stack(layer(), 10), batch_req("/api/batch", &envelope, &[]));
    assert_eq!(status, 200);
    let d = &body["data"];
    for (i, reason) in [(0, "nested_batch"), (1, "path"), (2, "header")] {
        assert_eq!(
            (
                &d[i]["status"],
                &d[i]["body"]["code"],
                &d[i]["body"]["reason"]
            ),
            (&json!(400), &json!("VAL-400"), &json!(reason)),
            "{i}"
        );
    }
    assert_eq!(d[3]["status"], 200, "the other item ran");
}

#[tokio::test]
async fn the_limits_answer_with_their_problems() {
    let one = json!({"method": "GET", "path": "/api/echo"});
    let cases = [
        (
            layer().max_items(2),
            json!([one, one, one]),
            413,
            "BATCH-ITEMS-413",
        ),
        (
            layer().max_request_bytes(20),
            json!([one]),
            413,
            "BATCH-SIZE-413",
        ),
        (layer(), json!([]), 400, "BATCH-400"),
        (
            layer(),
            json!({"requests": [one], "extra": true}),
            400,
            "BATCH-400",
        ),
        (layer(), json!("not an envelope"), 400, "BATCH-400"),
    ];
    for (builder, envelope, want, code) in cases {
        let (status, headers, body) =
            run!(stack(builder, 10), batch_req("/api/batch", &envelope, &[]));
        assert_eq!(
            (status.as_u16(), body["code"].as_str()),
            (want, Some(code)),
            "{envelope}"
        );
        assert_eq!(headers["content-type"], "application/problem+json");
    }
}

#[tokio::test]
async fn answers_past_the_budget_are_left_out_with_their_status() {
    let items: Vec<Value> = (0..4)
        .map(|_| json!({"method": "GET", "path": "/api/big"}))
        .collect();
    let builder = layer().max_response_bytes(2500, 2000);
    let (_, _, body) = run!(
        stack(builder, 10),
        batch_req(
            "/api/batch",
            &json!({"requests": items, "sequential": true}),
            &[]
        )
    );
    let d = body["data"].as_array().unwrap();
    assert_eq!(d[0]["body"].as_str().map(str::len), Some(1000));
    assert_eq!(d[1]["body"].as_str().map(str::len), Some(1000));
    for r in &d[2..] {
        assert_eq!(
            (&r["status"], &r["body"]["code"]),
            (&json!(200), &json!("BATCH-RESPONSE-507")),
            "{r}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn items_past_the_deadline_are_504_and_finished_ones_stay() {
    let envelope =
        json!([{"method": "GET", "path": "/api/slow"}, {"method": "GET", "path": "/api/echo"}]);
    let builder = layer().deadline(Duration::from_secs(1));
    let (status, _, body) = run!(stack(builder, 10), batch_req("/api/batch", &envelope, &[]));
    assert_eq!(status, 200);
    assert_eq!(
        (&body["data"][0]["status"], &body["data"][0]["body"]["code"]),
        (&json!(504), &json!("BATCH-504"))
    );
    assert_eq!(body["data"][1]["status"], 200);
}

#[tokio::test]
async fn sequential_items_run_in_order_and_admission_answers_first() {
    let items: Vec<Value> = (0..6)
        .map(|_| json!({"method": "GET", "path": "/api/echo"}))
        .collect();
    let (_, _, body) = run!(
        stack(layer().concurrency(1), 10),
        batch_req(
            "/api/batch",
            &json!({"requests": items, "sequential": true}),
            &[]
        )
    );
    let indexes: Vec<u64> = body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["body"]["index"].as_u64().unwrap())
        .collect();
    assert_eq!(indexes, vec![0, 1, 2, 3, 4, 5]);

    // The routes' `/api/batch` refuses: with admission, that is the batch's answer.
    let req = batch_req(
        "/api/batch",
        &json!([{"method": "GET", "path": "/api/echo"}]),
        &[],
    );
    let svc = stack(layer().admit_through_inner(true), 10);
    assert_eq!(svc.oneshot(req).await.unwrap().status(), 401);

    // Other requests pass through untouched.
    let req = batch_req("/api/echo", &json!({}), &[]);
    let (status, _, body) = run!(stack(layer(), 10), req);
    assert_eq!((status.as_u16(), body["index"].clone()), (200, Value::Null));
}

#[test]
fn bad_settings_are_build_errors() {
    let zero = "batch max_items, max_request_bytes, max_response_bytes, concurrency and deadline \
                must be above zero";
    for (b, message) in [
        (
            BatchLayer::builder("batch"),
            r#"batch path must be an absolute path such as /api/batch, not "batch""#,
        ),
        (
            BatchLayer::builder("/api/batch").items_under("api"),
            r#"batch items_under prefix must be an absolute path such as /api/batch, not "api""#,
        ),
        (BatchLayer::builder("/api/batch").max_items(0), zero),
        (
            BatchLayer::builder("/api/batch").deadline(Duration::ZERO),
            zero,
        ),
        (
            BatchLayer::builder("/api/batch").max_response_bytes(10, 20),
            "the per-item answer limit of a batch cannot exceed its total answer limit",
        ),
    ] {
        assert_eq!(
            b.build().err().as_ref().map(ConfigError::message),
            Some(message)
        );
    }
}
