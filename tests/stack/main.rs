//! The `Stack` as a whole, over real HTTP on loopback: the order of the layers (a rejection at each
//! position carries the headers of the layers outside it), the headers CORS is told about, and
//! every mix the builder refuses.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[allow(dead_code, unreachable_pub)]
#[path = "../../examples/quickstart.rs"]
mod quickstart;

use std::net::SocketAddr;
use std::sync::Arc;

use protothrive::auth::{
    Algorithm, Authenticator, SigningKey, TokenIssuer, TokenKind, VerifyingKey,
};
use protothrive::clock::{ManualClock, SharedClock};
use protothrive::cors::{AllowOrigin, CorsLayer};
use protothrive::identity::RoleHierarchy;
use protothrive::rate_limit::{KeyBy, Limit};
use protothrive::stack::Stack;
use serde_json::Value;

const SECRET: &[u8] = b"a test secret that is long enough for HS256";
const ORIGIN: &str = "http://localhost:5173";

/// The quickstart app on a free loopback port, on a manual clock (limits never refill).
async fn serve(per_ip: &str) -> String {
    let clock: SharedClock = Arc::new(ManualClock::default());
    let app = quickstart::app(SECRET, clock, per_ip).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .unwrap();
    });
    format!("http://{addr}")
}

fn token(roles: &[&str]) -> String {
    let clock: SharedClock = Arc::new(ManualClock::default());
    let issuer = TokenIssuer::new(
        SigningKey::hmac(Algorithm::HS256, SECRET).unwrap(),
        "quickstart",
        "quickstart",
    )
    .clock(clock);
    let extra = serde_json::json!({ "roles": roles });
    issuer
        .issue("ada", TokenKind::Access, extra.as_object().unwrap())
        .unwrap()
        .token
}

fn client() -> reqwest::Client {
    reqwest::Client::new()
}

/// A GET as a page of the allowed origin sends it.
fn from_page(base: &str, path: &str) -> reqwest::RequestBuilder {
    client()
        .get(format!("{base}{path}"))
        .header("origin", ORIGIN)
}

/// The headers every answer of the stack carries, whichever layer answered.
async fn assert_outer_headers(
    res: reqwest::Response,
    status: u16,
) -> (reqwest::header::HeaderMap, Value) {
    assert_eq!(res.status().as_u16(), status);
    let h = res.headers().clone();
    assert_eq!(h["access-control-allow-origin"], ORIGIN, "CORS on {status}");
    assert_eq!(
        h["x-content-type-options"], "nosniff",
        "security headers on {status}"
    );
    let id = h["x-request-id"].to_str().unwrap().to_owned();
    assert_eq!(id.len(), 32, "a request id on {status}");
    let traceparent = protothrive::trace::TraceParent::parse(h["traceparent"].as_bytes())
        .unwrap_or_else(|e| panic!("a traceparent on {status}: {e}"));
    let trace_id = protothrive::trace::to_hex(&traceparent.trace_id);
    let body: Value = if h["content-type"] == "application/problem+json" {
        let body: Value = res.json().await.unwrap();
        assert_eq!(
            body["request_id"],
            id.as_str(),
            "the problem quotes the request id"
        );
        assert_eq!(body["trace_id"], trace_id.as_str(), "and the trace id");
        body
    } else {
        Value::Null
    };
    (h, body)
}

#[tokio::test]
async fn a_401_from_auth_carries_cors_request_id_and_the_client_limit() {
    let base = serve("60/min burst 10").await;
    let res = from_page(&base, "/me").send().await.unwrap();
    let (h, body) = assert_outer_headers(res, 401).await;
    assert_eq!(body["code"], "AUTH-401");
    assert!(
        h["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("realm=\"quickstart\"")
    );
    // The per-IP limit sits outside auth: it counted this request.
    assert!(h["ratelimit"].to_str().unwrap().starts_with("\"ip\""));
}

#[tokio::test]
async fn a_429_from_the_client_limit_carries_cors_and_request_id() {
    let base = serve("60/min burst 2").await;
    for _ in 0..2 {
        let res = from_page(&base, "/me").send().await.unwrap();
        assert_eq!(res.status(), 401);
    }
    let res = from_page(&base, "/me")
        .header("x-request-id", "client-chosen-7")
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["x-request-id"], "client-chosen-7");
    assert_eq!(res.status(), 429);
    assert_eq!(res.headers()["access-control-allow-origin"], ORIGIN);
    assert_eq!(res.headers()["retry-after"], "1");
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["code"], "RATE-429");
    assert_eq!(body["request_id"], "client-chosen-7");
}

#[tokio::test]
async fn a_403_from_the_route_check_carries_both_limits() {
    let base = serve("60/min burst 10").await;
    let res = from_page(&base, "/admin")
        .bearer_auth(token(&["user"]))
        .send()
        .await
        .unwrap();
    let (h, body) = assert_outer_headers(res, 403).await;
    assert_eq!(body["code"], "AUTH-403");
    let limits = h["ratelimit"].to_str().unwrap();
    assert!(
        limits.contains("\"ip\"") && limits.contains("\"user\""),
        "{limits}"
    );
    // The same token passes where the role is not needed.
    let res = client()
        .get(format!("{base}/me"))
        .bearer_auth(token(&["user"]))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.text().await.unwrap(), "you are ada\n");
}

#[tokio::test]
async fn a_cached_hit_still_carries_the_rate_limit_headers() {
    let base = serve("60/min burst 10").await;
    let get = || from_page(&base, "/hello").send();
    let first = get().await.unwrap();
    assert!(
        first.headers()["cache-status"]
            .to_str()
            .unwrap()
            .contains("fwd=")
    );
    let res = get().await.unwrap();
    let (h, _) = assert_outer_headers(res, 200).await;
    assert!(
        h["cache-status"].to_str().unwrap().contains("hit"),
        "{:?}",
        h["cache-status"]
    );
    assert!(h["ratelimit"].to_str().unwrap().starts_with("\"ip\";r=8"));
}

#[tokio::test]
async fn preflights_are_answered_before_auth_and_never_counted() {
    let base = serve("60/min burst 1").await;
    for _ in 0..5 {
        let res = client()
            .request(reqwest::Method::OPTIONS, format!("{base}/me"))
            .header("origin", ORIGIN)
            .header("access-control-request-method", "GET")
            .header(
                "access-control-request-headers",
                "authorization, x-request-id",
            )
            .send()
            .await
            .unwrap();
        assert!(res.status().is_success(), "{}", res.status());
        let allowed = res.headers()["access-control-allow-headers"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(
            allowed.contains("authorization") && allowed.contains("x-request-id"),
            "{allowed}"
        );
    }
    // The one request the burst allows is still there.
    let res = client()
        .get(format!("{base}/me"))
        .bearer_auth(token(&[]))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
}

#[test]
fn cors_allows_and_exposes_what_the_layers_present_need() {
    let stack = Stack::builder()
        .cors(CorsLayer::builder().allow_origin(AllowOrigin::exact(ORIGIN)))
        .build()
        .unwrap();
    assert_eq!(
        stack.cors_allowed_headers(),
        ["content-type", "x-request-id"]
    );
    assert_eq!(stack.cors_exposed_headers(), ["x-request-id"]);

    let stack = Stack::builder()
        .cors(CorsLayer::builder().allow_origin(AllowOrigin::exact(ORIGIN)))
        .limit_by_client(Limit::new("ip", "1/s".parse().unwrap()).by(KeyBy::ClientIp))
        .optional_auth(authenticator())
        .rate_limit_headers(false)
        .build()
        .unwrap();
    assert_eq!(
        stack.cors_allowed_headers(),
        ["authorization", "content-type", "x-api-key", "x-request-id"]
    );
    assert_eq!(
        stack.cors_exposed_headers(),
        ["retry-after", "www-authenticate", "x-request-id"]
    );

    let stack = Stack::builder()
        .trace(protothrive::trace::TraceLayer::new())
        .cors(CorsLayer::builder().allow_origin(AllowOrigin::exact(ORIGIN)))
        .build()
        .unwrap();
    assert_eq!(
        stack.cors_allowed_headers(),
        ["content-type", "traceparent", "tracestate", "x-request-id"]
    );
    assert_eq!(
        stack.cors_exposed_headers(),
        ["traceparent", "x-request-id"]
    );
}

#[tokio::test]
async fn the_exposed_list_is_the_layers_present_plus_what_was_set_by_hand() {
    use tower::{Layer, ServiceExt};
    type Body = http_body_util::Limited<String>;
    let exposed = |cors: protothrive::cors::CorsLayerBuilder| async move {
        let stack = Stack::builder()
            .cors(cors.allow_origin(AllowOrigin::exact(ORIGIN)))
            .build()
            .unwrap();
        let svc = stack.layer(tower::service_fn(|_: http::Request<Body>| async {
            Ok::<_, std::convert::Infallible>(http::Response::new(String::new()))
        }));
        let req = http::Request::builder()
            .header("origin", ORIGIN)
            .body(String::new())
            .unwrap();
        let res = svc.oneshot(req).await.unwrap();
        res.headers()["access-control-expose-headers"]
            .to_str()
            .unwrap()
            .to_owned()
    };
    // CORS's default list names the versioning and rate-limit headers; this stack has neither.
    assert_eq!(exposed(CorsLayer::builder()).await, "x-request-id");
    assert_eq!(
        exposed(CorsLayer::builder().extend_expose_headers(["x-total-count"])).await,
        "x-total-count, x-request-id"
    );
    assert_eq!(
        exposed(CorsLayer::builder().expose_headers(["api-version"])).await,
        "api-version, x-request-id"
    );
}

fn authenticator() -> protothrive::auth::AuthenticatorBuilder {
    Authenticator::builder()
        .key(VerifyingKey::hmac(Algorithm::HS256, SECRET).unwrap())
        .issuer("i")
        .audience("a")
}

#[test]
fn mixes_that_could_not_work_are_refused_when_built() {
    let ip = || Limit::new("ip", "1/s".parse().unwrap()).by(KeyBy::ClientIp);
    let user = || Limit::new("user", "1/s".parse().unwrap()).by(KeyBy::Subject);
    let cases: Vec<(&str, protothrive::stack::StackBuilder, &str)> = vec![
        (
            "per-IP limit without client IP",
            Stack::builder().without_client_ip().limit_by_client(ip()),
            "no client-IP layer",
        ),
        (
            "per-IP limit by principal without client IP",
            Stack::builder()
                .without_client_ip()
                .auth(authenticator())
                .limit_by_principal(ip()),
            "no client-IP layer",
        ),
        (
            "limit by principal without auth",
            Stack::builder().limit_by_principal(user()),
            "no auth layer",
        ),
        (
            "principal-keyed limit before auth",
            Stack::builder()
                .auth(authenticator())
                .limit_by_client(user()),
            "before authentication",
        ),
        (
            "credentials with a wildcard origin",
            Stack::builder().cors(
                CorsLayer::builder()
                    .allow_origin(AllowOrigin::any())
                    .allow_credentials(true),
            ),
            "credentials",
        ),
        (
            "an auth layer with no key",
            Stack::builder().auth(Authenticator::builder().issuer("i").audience("a")),
            "key",
        ),
    ];
    for (what, builder, needle) in cases {
        let err = builder.build().expect_err(what);
        assert!(err.message().contains(needle), "{what}: {err}");
    }
    // An unlimited limit is no limit: nothing to key, nothing refused, no limiter at all.
    let off = Stack::builder()
        .without_client_ip()
        .cors(CorsLayer::builder().allow_origin(AllowOrigin::exact(ORIGIN)))
        .limit_by_client(Limit::new("ip", "off".parse().unwrap()).by(KeyBy::ClientIp))
        .build()
        .expect("an unlimited per-IP limit needs no address");
    assert_eq!(off.cors_exposed_headers(), ["x-request-id"]);

    let stack = Stack::builder().auth(authenticator()).build().unwrap();
    let err = stack.require_role("admin").unwrap_err();
    assert!(err.message().contains("role hierarchy"), "{err}");
    let stack = Stack::builder()
        .auth(authenticator())
        .roles(RoleHierarchy::new(["user", "admin"]).unwrap())
        .build()
        .unwrap();
    assert!(
        stack
            .require_role("root")
            .unwrap_err()
            .message()
            .contains("root")
    );
    let admin = stack.require_role("admin").unwrap();
    assert!(format!("{admin:?}").contains("admin"), "{admin:?}");
}

#[tokio::test]
async fn an_empty_stack_passes_through_with_a_request_id() {
    use tower::{Layer, ServiceExt};
    let stack = Stack::builder().build().unwrap();
    // The body limit (always present with the gateway feature) hands the body on as `Limited`.
    type Body = http_body_util::Limited<String>;
    let svc = stack.layer(tower::service_fn(|req: http::Request<Body>| async move {
        let id = protothrive::error::RequestId::of(req.extensions()).map(|r| r.as_str().to_owned());
        Ok::<_, std::convert::Infallible>(http::Response::new(id.unwrap_or_default()))
    }));
    let res = svc
        .oneshot(http::Request::new(String::from("body")))
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    // No trace layer configured: its position passes the request through untouched.
    assert!(res.headers().get("traceparent").is_none());
    let id = res.headers()["x-request-id"].to_str().unwrap().to_owned();
    let body = http_body_util::BodyExt::collect(res.into_body())
        .await
        .unwrap()
        .to_bytes();
    assert_eq!(body, id.as_bytes());
}

#[tokio::test]
async fn with_a_trace_layer_request_ids_keep_the_request_id_layers_settings() {
    use protothrive::request_id::RequestIdLayer;
    use protothrive::trace::TraceLayer;
    use tower::{Layer, ServiceExt};
    type Body = http_body_util::Limited<String>;
    // The handler answers with the id it saw.
    let handler = tower::service_fn(|req: http::Request<Body>| async move {
        let id = protothrive::error::RequestId::of(req.extensions()).map(|r| r.as_str().to_owned());
        Ok::<_, std::convert::Infallible>(http::Response::new(id.unwrap_or_default()))
    });
    let send = |stack: Stack, incoming: &'static str| {
        let svc = stack.layer(handler);
        async move {
            let req = http::Request::builder()
                .header("x-request-id", incoming)
                .body(String::new())
                .unwrap();
            let res = svc.oneshot(req).await.unwrap();
            let echoed: Vec<String> = res
                .headers()
                .get_all("x-request-id")
                .iter()
                .map(|v| v.to_str().unwrap().to_owned())
                .collect();
            let seen = http_body_util::BodyExt::collect(res.into_body())
                .await
                .unwrap()
                .to_bytes();
            (echoed, String::from_utf8(seen.to_vec()).unwrap())
        }
    };

    // Same settings: the trace layer assigns the id, kept from the request, echoed once.
    let stack = Stack::builder().trace(TraceLayer::new()).build().unwrap();
    let (echoed, seen) = send(stack, "client-id-1").await;
    assert_eq!(echoed, ["client-id-1"]);
    assert_eq!(seen, "client-id-1");

    // A request-id layer that distrusts incoming ids still decides, outside the trace layer.
    let stack = Stack::builder()
        .request_id(RequestIdLayer::new().trust_incoming(false))
        .trace(TraceLayer::new())
        .build()
        .unwrap();
    let (echoed, seen) = send(stack, "client-id-1").await;
    assert_eq!(echoed.len(), 1, "{echoed:?}");
    assert_ne!(echoed[0], "client-id-1");
    assert_eq!(echoed[0].len(), 32);
    assert_eq!(seen, echoed[0]);
}

/// A layer of the application's at the trace position (`Stack::with_trace`) goes inside the
/// configured trace layer, which still assigns and echoes ids and answers with `traceparent`.
#[tokio::test]
async fn a_layer_at_the_trace_position_keeps_the_trace_layer() {
    use protothrive::trace::TraceLayer;
    use tower::{Layer, ServiceExt};
    type Body = http_body_util::Limited<String>;
    let handler = tower::service_fn(|req: http::Request<Body>| async move {
        let id = protothrive::error::RequestId::of(req.extensions()).map(|r| r.as_str().to_owned());
        Ok::<_, std::convert::Infallible>(http::Response::new(id.unwrap_or_default()))
    });
    // The application's layer sees the trace layer's id already in the request.
    let saw_id = tower::layer::layer_fn(|inner| {
        tower::util::MapRequest::new(inner, |req: http::Request<String>| {
            assert!(protothrive::error::RequestId::of(req.extensions()).is_some());
            req
        })
    });
    let stack = Stack::builder().trace(TraceLayer::new()).build().unwrap();
    let svc = stack.with_trace(saw_id).layer(handler);
    let req = http::Request::builder()
        .header("x-request-id", "client-id-2")
        .body(String::new())
        .unwrap();
    let res = svc.oneshot(req).await.unwrap();
    assert_eq!(res.headers()["x-request-id"], "client-id-2");
    assert_eq!(res.headers()["traceparent"].len(), 55);
    let seen = http_body_util::BodyExt::collect(res.into_body())
        .await
        .unwrap()
        .to_bytes();
    assert_eq!(seen, "client-id-2");
}
