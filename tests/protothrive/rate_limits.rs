//! Rate limits as the running API answers them, with tight limits: the IETF headers on every
//! answer, a `429` `RATE-429` problem with `Retry-After` past the burst, the login limit stacked on
//! the per-IP one.

use crate::support::{Server, client};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tight_limits_answer_429_with_headers() {
    let server = Server::start_with(&[(
        "PROTOTHRIVE_RATE_LIMITS",
        "ip=3/60s:3,login=1/300s:1,register=1000/900s:1000",
    )]);
    let health = server.url("/api/health");

    let res = client().get(&health).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["ratelimit-policy"], r#""ip";q=3;w=60"#);
    assert_eq!(res.headers()["ratelimit"], r#""ip";r=2;t=20"#);

    // A preflight is not counted.
    let preflight = client()
        .request(reqwest::Method::OPTIONS, &health)
        .header("origin", "http://localhost:5173")
        .header("access-control-request-method", "GET")
        .send()
        .await
        .unwrap();
    assert!(preflight.headers().get("ratelimit").is_none());

    // The login limit (1 per 5 min) refuses the second login before the IP limit is spent.
    // The limit sees the path after version negotiation: `/api/v1/...` and `/api/...` are one.
    let login = |path: &str| {
        client()
            .post(server.url(path))
            .header("content-type", "application/json")
            .body(r#"{"email":"nobody@example.com","password":"wrong-password"}"#)
    };
    let first = login("/api/v1/auth/login").send().await.unwrap();
    assert_ne!(first.status(), 429);
    let second = login("/api/auth/login").send().await.unwrap();
    assert_eq!(second.status(), 429);
    assert_eq!(second.headers()["retry-after"], "300");
    let state = second.headers()["ratelimit"].to_str().unwrap().to_owned();
    assert!(state.starts_with(r#""login";r=0;t=300"#), "{state}");
    let body: serde_json::Value = second.json().await.unwrap();
    assert_eq!(body["code"], "RATE-429");

    // The IP limit: 3 at once, and the two logins counted.
    let res = client().get(&health).send().await.unwrap();
    assert_eq!(res.status(), 429);
    assert_eq!(res.headers()["retry-after"], "20");
    assert_eq!(res.headers()["content-type"], "application/problem+json");
}
