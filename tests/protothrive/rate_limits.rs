//! Rate limits as the running API answers them, with tight limits: the IETF headers on every
//! answer, a `429` `RATE-429` problem with `Retry-After` past the burst, the login limit stacked on
//! the per-IP one; a forged `X-Forwarded-For` from an untrusted peer changes nothing.

use crate::example::Server;
use crate::support::client;

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

/// The peer (loopback) is not a trusted proxy, so a forged `X-Forwarded-For`, `Forwarded` or
/// `X-Real-IP` changes nothing: every request counts against the one per-IP limit of 127.0.0.1.
/// With loopback trusted (the control), the same headers name distinct clients.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spoofed_forwarded_for_from_an_untrusted_peer_changes_nothing() {
    let limits = ("PROTOTHRIVE_RATE_LIMITS", "ip=3/60s:3");
    let server = Server::start_with(&[limits]);
    let health = server.url("/api/health");
    let get = |header: &'static str, value: &'static str| {
        client().get(&health).header(header, value).send()
    };
    for (value, remaining) in [
        ("1.2.3.4", 2),
        ("5.6.7.8", 1),
        ("9.10.11.12, 13.14.15.16", 0),
    ] {
        let res = get("x-forwarded-for", value).await.unwrap();
        assert_eq!(res.status(), 200, "{value}");
        assert_eq!(
            res.headers()["ratelimit"].to_str().unwrap(),
            format!(r#""ip";r={remaining};t={}"#, 20 * (3 - remaining)),
            "{value}"
        );
    }
    for (header, value) in [
        ("x-forwarded-for", "203.0.113.9"),
        ("x-forwarded-for", "::1"),
        ("forwarded", "for=198.51.100.1"),
        ("x-real-ip", "198.51.100.2"),
    ] {
        let res = get(header, value).await.unwrap();
        assert_eq!(res.status(), 429, "{header}: {value}");
        assert_eq!(res.headers()["retry-after"], "20");
    }
    let res = client().get(&health).send().await.unwrap();
    assert_eq!(res.status(), 429);

    // The control: behind a trusted loopback proxy, each forwarded address has its own limit.
    let trusted = Server::start_with(&[limits, ("PROTOTHRIVE_TRUSTED_PROXIES", "127.0.0.0/8")]);
    for value in ["1.2.3.4", "5.6.7.8", "9.10.11.12", "13.14.15.16"] {
        let res = client()
            .get(trusted.url("/api/health"))
            .header("x-forwarded-for", value)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "{value}");
        assert_eq!(res.headers()["ratelimit"], r#""ip";r=2;t=20"#, "{value}");
    }
}

/// `::ffff:0:0/96` is every IPv4 address as a dual-stack socket reports it: trusting it would let
/// any IPv4 client name its own address (and so its own rate-limit bucket). The app refuses to
/// start with it, as with `0.0.0.0/0`, and says why.
#[test]
fn trusting_every_mapped_ipv4_address_refuses_to_start() {
    for everything in ["::ffff:0:0/96", "::ffff:10.0.0.0/96", "0.0.0.0/0"] {
        let stderr = Server::refused_start(&[("PROTOTHRIVE_TRUSTED_PROXIES", everything)]);
        assert!(
            stderr.contains("any client could choose its own"),
            "{everything}: {stderr}"
        );
    }
}
