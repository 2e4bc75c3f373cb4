//! The layers in an axum app over real loopback HTTP, driven by a raw HTTP/1.1 client so that a
//! test can send what no well-behaved client would: two `Authorization` headers, bytes that are
//! not UTF-8, control characters.

use std::net::SocketAddr;

use axum::Router;
use axum::routing::{get, post};
use protothrive::auth::{
    Algorithm, AuthLayer, Authenticator, Claims, Principal, RequireLayer, RoleHierarchy,
};
use protothrive::clock::ManualClock;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::keys::{authenticator, token, token_with};

#[derive(Deserialize)]
struct Plan {
    plan: String,
}

fn app(auth: &Authenticator) -> Router {
    let roles = RoleHierarchy::new(["vibe_coder", "engineer", "exec", "super_admin"]).unwrap();
    let protected = Router::new()
        .route(
            "/me",
            get(|p: Principal| async move { p.subject().to_owned() }),
        )
        .route(
            "/plan",
            get(|Claims(c): Claims<Plan>| async move { c.plan }),
        )
        .route(
            "/roadmaps",
            post(|| async { "created" }).route_layer(RequireLayer::scopes(["roadmaps:write"])),
        )
        .route(
            "/admin",
            get(|| async { "welcome" })
                .route_layer(RequireLayer::role_at_least(&roles, "exec").unwrap()),
        )
        .layer(AuthLayer::new(auth.clone()));
    let public = Router::new()
        .route(
            "/maybe",
            get(|p: Option<Principal>| async move {
                p.map_or("anonymous".to_owned(), |p| p.subject().to_owned())
            }),
        )
        .layer(AuthLayer::optional(auth.clone()));
    // A handler that wants a principal on a route nobody authenticated.
    let forgotten = Router::new().route(
        "/forgotten",
        get(|p: Principal| async move { p.subject().to_owned() }),
    );
    Router::new()
        .merge(protected)
        .merge(public)
        .merge(forgotten)
}

async fn serve(auth: &Authenticator) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = app(auth);
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

/// A response as the raw client saw it.
#[derive(Debug)]
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

/// Sends `method path` with these raw header lines (each without its CRLF) and reads the answer.
async fn raw(addr: SocketAddr, method: &str, path: &str, headers: &[&[u8]]) -> Reply {
    let mut request =
        format!("{method} {path} HTTP/1.1\r\nhost: test\r\nconnection: close\r\n").into_bytes();
    for h in headers {
        request.extend_from_slice(h);
        request.extend_from_slice(b"\r\n");
    }
    if method == "POST" {
        request.extend_from_slice(b"content-length: 0\r\n");
    }
    request.extend_from_slice(b"\r\n");
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(&request).await.unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    parse(&response)
}

fn parse(response: &[u8]) -> Reply {
    let end = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no head in {:?}", String::from_utf8_lossy(response)));
    let head = std::str::from_utf8(&response[..end]).unwrap();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers: Vec<(String, String)> = lines
        .map(|l| {
            let (n, v) = l.split_once(':').unwrap();
            (n.to_owned(), v.trim().to_owned())
        })
        .collect();
    let mut body = response[end + 4..].to_vec();
    let chunked = headers
        .iter()
        .any(|(n, v)| n.eq_ignore_ascii_case("transfer-encoding") && v == "chunked");
    if chunked {
        body = dechunk(&body);
    }
    Reply {
        status,
        headers,
        body,
    }
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let eol = data.windows(2).position(|w| w == b"\r\n").unwrap();
        let size = usize::from_str_radix(std::str::from_utf8(&data[..eol]).unwrap(), 16).unwrap();
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&data[eol + 2..eol + 2 + size]);
        data = &data[eol + 4 + size..];
    }
}

fn auth_header(value: &str) -> Vec<u8> {
    format!("authorization: {value}").into_bytes()
}

const INVALID: &str = r#"Bearer realm="api", error="invalid_token""#;

#[tokio::test]
async fn bearer_tokens_over_http() {
    let clock = ManualClock::default();
    let addr = serve(&authenticator(&clock)).await;
    let good = token(Algorithm::RS256);

    let r = raw(
        addr,
        "GET",
        "/me",
        &[&auth_header(&format!("Bearer {good}"))],
    )
    .await;
    assert_eq!((r.status, r.text()), (200, "alice".to_owned()));
    let r = raw(
        addr,
        "GET",
        "/me",
        &[&auth_header(&format!("bEaReR {good}"))],
    )
    .await;
    assert_eq!(r.status, 200);

    let r = raw(addr, "GET", "/me", &[]).await;
    assert_eq!(r.status, 401);
    assert_eq!(r.header("www-authenticate"), Some(r#"Bearer realm="api""#));
    assert_eq!(r.header("content-type"), Some("application/problem+json"));
    let missing_body = r.body;

    let two = [
        auth_header(&format!("Bearer {good}")),
        auth_header(&format!("Bearer {good}")),
    ];
    let big = token_with(
        Algorithm::HS256,
        &json!({}),
        &json!({"pad": "p".repeat(9000)}),
    );
    let cases: Vec<(&str, Vec<Vec<u8>>)> = vec![
        ("two Authorization headers", two.to_vec()),
        (
            "not UTF-8",
            vec![[b"authorization: Bearer ".as_slice(), b"\xff\xfe\x80"].concat()],
        ),
        (
            "UTF-8 but not ASCII",
            vec!["authorization: Bearer jöhn.dœ.x".as_bytes().to_vec()],
        ),
        ("over 8 KiB", vec![auth_header(&format!("Bearer {big}"))]),
        ("Basic", vec![auth_header("Basic YWxpY2U6c2VjcmV0")]),
        ("empty", vec![auth_header("")]),
        (
            "expired",
            vec![auth_header(&format!(
                "Bearer {}",
                token_with(Algorithm::RS256, &json!({}), &json!({"exp": 1}))
            ))],
        ),
    ];
    for (name, headers) in cases {
        let refs: Vec<&[u8]> = headers.iter().map(Vec::as_slice).collect();
        let r = raw(addr, "GET", "/me", &refs).await;
        assert_eq!(r.status, 401, "{name}");
        assert_eq!(r.header("www-authenticate"), Some(INVALID), "{name}");
        assert_eq!(r.body, missing_body, "{name}");
    }
    // Still serving.
    let r = raw(
        addr,
        "GET",
        "/me",
        &[&auth_header(&format!("Bearer {good}"))],
    )
    .await;
    assert_eq!(r.status, 200);
}

#[tokio::test]
async fn garbage_never_gets_through_or_takes_the_server_down() {
    let addr = serve(&authenticator(&ManualClock::default())).await;
    let long = format!("authorization: Bearer {}", "a.".repeat(40_000));
    let garbage: Vec<Vec<u8>> = vec![
        b"authorization: Bearer \x01\x02".to_vec(),
        b"authorization: Bearer a\x7fb".to_vec(),
        b"authorization: Bearer\ta.b.c".to_vec(),
        b"authorization Bearer a.b.c".to_vec(),
        b"authorization: Bearer a.b.c\rx".to_vec(),
        long.into_bytes(),
        vec![b'x'; 100],
    ];
    for g in &garbage {
        let r = raw(addr, "GET", "/me", &[g]).await;
        assert!(
            matches!(r.status, 400 | 401 | 431),
            "{}: {}",
            String::from_utf8_lossy(&g[..g.len().min(40)]),
            r.status
        );
    }
    let good = format!("authorization: Bearer {}", token(Algorithm::EdDSA));
    assert_eq!(
        raw(addr, "GET", "/me", &[good.as_bytes()]).await.status,
        200
    );
}

#[tokio::test]
async fn extractors_and_optional_authentication_over_http() {
    let addr = serve(&authenticator(&ManualClock::default())).await;
    let good = format!("authorization: Bearer {}", token(Algorithm::ES256));
    let bad = format!(
        "authorization: Bearer {}",
        token(Algorithm::ES256).replace('.', "x")
    );

    let r = raw(addr, "GET", "/maybe", &[]).await;
    assert_eq!((r.status, r.text()), (200, "anonymous".to_owned()));
    let r = raw(addr, "GET", "/maybe", &[good.as_bytes()]).await;
    assert_eq!((r.status, r.text()), (200, "alice".to_owned()));
    let r = raw(addr, "GET", "/maybe", &[bad.as_bytes()]).await;
    assert_eq!(r.status, 401);

    // The Principal extractor on a route without the layer: 401, not a 500 or a pass.
    let r = raw(addr, "GET", "/forgotten", &[good.as_bytes()]).await;
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["code"], "AUTH-401");

    let pro = token_with(Algorithm::ES256, &json!({}), &json!({"plan": "pro"}));
    let r = raw(
        addr,
        "GET",
        "/plan",
        &[&auth_header(&format!("Bearer {pro}"))],
    )
    .await;
    assert_eq!((r.status, r.text()), (200, "pro".to_owned()));
    let r = raw(addr, "GET", "/plan", &[good.as_bytes()]).await;
    assert_eq!(r.status, 403, "claims the handler needs are missing");
    assert_eq!(r.json()["code"], "AUTH-403");
}

#[tokio::test]
async fn scopes_and_roles_per_route_over_http() {
    let addr = serve(&authenticator(&ManualClock::default())).await;
    let with = |claims: Value| {
        auth_header(&format!(
            "Bearer {}",
            token_with(Algorithm::PS256, &json!({}), &claims)
        ))
    };
    let r = raw(addr, "POST", "/roadmaps", &[&with(json!({}))]).await;
    assert_eq!(r.status, 403);
    assert_eq!(
        r.header("www-authenticate"),
        Some(r#"Bearer realm="api", error="insufficient_scope", scope="roadmaps:write""#)
    );
    assert!(
        r.json()["detail"]
            .as_str()
            .unwrap()
            .contains("roadmaps:write")
    );
    let r = raw(
        addr,
        "POST",
        "/roadmaps",
        &[&with(json!({"scope": "roadmaps:write"}))],
    )
    .await;
    assert_eq!((r.status, r.text()), (200, "created".to_owned()));

    let r = raw(
        addr,
        "GET",
        "/admin",
        &[&with(json!({"roles": ["engineer"]}))],
    )
    .await;
    assert_eq!(r.status, 403);
    let r = raw(
        addr,
        "GET",
        "/admin",
        &[&with(json!({"roles": ["super_admin"]}))],
    )
    .await;
    assert_eq!(r.status, 200);
    // A principal is needed before its roles matter.
    assert_eq!(raw(addr, "GET", "/admin", &[]).await.status, 401);
}
