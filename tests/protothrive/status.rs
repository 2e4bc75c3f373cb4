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
