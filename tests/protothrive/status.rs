//! `/status` shows an anonymous caller liveness figures only: the configuration (environment,
//! rate limits, revocations) is for super_admins, the cache's counters for signed-in users.

use serde_json::Value;

use crate::api::{Auth, Slot, demo_tokens, req, shared, slot};
use crate::support::send;

static SERVER: Slot = slot();

/// The names of the members of `data`, sorted.
fn members(data: &Value) -> Vec<&str> {
    let mut names: Vec<&str> = data
        .as_object()
        .map(|o| o.keys().map(String::as_str).collect())
        .unwrap_or_default();
    names.sort_unstable();
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_shows_the_configuration_to_super_admins_only() {
    let server = shared(&SERVER);
    let [vibe, _, admin] = demo_tokens(&server).await;
    let liveness = ["requests_in_flight", "service", "uptime_seconds", "version"];
    let anonymous = send(req(&server, "GET", "/api/v1/status", Auth::None)).await;
    assert_eq!(anonymous.status, 200, "{}", anonymous.body);
    assert_eq!(members(&anonymous.body["data"]), liveness);

    let user = send(req(&server, "GET", "/api/v1/status", Auth::Bearer(&vibe))).await;
    let mut expected = liveness.to_vec();
    expected.insert(0, "cache");
    assert_eq!(members(&user.body["data"]), expected);

    let full = send(req(&server, "GET", "/api/v1/status", Auth::Bearer(&admin))).await;
    assert_eq!(
        members(&full.body["data"]),
        [
            "auth",
            "cache",
            "environment",
            "rate_limits",
            "requests_in_flight",
            "service",
            "uptime_seconds",
            "version"
        ]
    );
    assert_eq!(full.body["data"]["environment"], "development");
}

/// With `PROTOTHRIVE_METRICS_TOKEN`, a scraper's static bearer token passes the stack's
/// authentication (it is an API key with `metrics:read` only); no token or a wrong one does not.
/// The scrape has the trace layer's RED series, labelled by route template, never by raw path.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_metrics_token_scrapes_red_metrics_by_route() {
    let token = "scrape-token-for-tests";
    let server = crate::example::Server::start_with(&[
        ("PROTOTHRIVE_METRICS_TOKEN", token),
        ("PROTOTHRIVE_RATE_LIMITS", crate::api::LOOSE_LIMITS),
    ]);
    let [vibe, _, _] = demo_tokens(&server).await;
    for id in ["a1", "b2", "c3"] {
        let a = send(req(
            &server,
            "GET",
            &format!("/api/v1/roadmaps/{id}"),
            Auth::Bearer(&vibe),
        ))
        .await;
        assert!(matches!(a.status, 400 | 404 | 422), "{}", a.body);
    }
    let none = send(req(&server, "GET", "/metrics", Auth::None)).await;
    assert_eq!(none.status, 401, "{}", none.body);
    let wrong = send(req(
        &server,
        "GET",
        "/metrics",
        Auth::Bearer("not-the-token"),
    ))
    .await;
    assert_eq!(wrong.status, 401, "{}", wrong.body);
    let user = send(req(&server, "GET", "/metrics", Auth::Bearer(&vibe))).await;
    assert_eq!(user.status, 403, "{}", user.body);
    // A scoped token cannot do anything else.
    let other = send(req(&server, "GET", "/api/v1/roadmaps", Auth::Bearer(token))).await;
    assert_eq!(other.status, 403, "{}", other.body);

    let text = req(&server, "GET", "/metrics", Auth::Bearer(token))
        .send()
        .await
        .unwrap();
    assert_eq!(text.status(), 200, "{:?}", text.headers());
    let text = text.text().await.unwrap();
    assert!(
        text.contains(r#"route="/api/roadmaps/{id}""#),
        "the route template labels the series: {text}"
    );
    assert!(
        text.contains("protothrive_http_request_duration_seconds"),
        "{text}"
    );
    assert!(
        !text.contains("/a1") && !text.contains("/b2"),
        "no raw path is a label"
    );
}
