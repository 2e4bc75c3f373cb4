//! Overload: with the API's requests in flight at its limit, anonymous callers are refused first
//! (503 `LOAD-503`, `Retry-After: 1`, before any handler runs), then signed-in ones, admins
//! last; health checks are never shed; once the load drains everyone is served again.

use std::time::Duration;

use super::{AgentPath, turn};
use crate::support::fault::Fault;
use crate::support::{ADMIN, login, send};

/// The API's limit here: anonymous callers may fill 5, signed-in ones 9, admins 10.
const LIMIT: &str = "10";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_overload_anonymous_callers_are_shed_first_and_admins_last() {
    let _turn = turn().await;
    let AgentPath { agent, proxy, api } = AgentPath::start(&[
        ("PROTOTHRIVE_AGENT_TIMEOUT_MS", "20000"),
        ("PROTOTHRIVE_MAX_IN_FLIGHT", LIMIT),
    ])
    .await;
    let admin = login(&api.server, ADMIN).await;
    let t = api.target.clone();
    // Agent runs reach the service and their answers are held: each stays in flight.
    proxy.set(Fault::HalfOpen);
    let mut held = Vec::new();
    let mut hold = |n: u64| {
        for _ in 0..n {
            let t = t.clone();
            held.push(tokio::spawn(async move {
                let body = serde_json::json!({
                    "roadmap_id": t.roadmap, "task_type": "plan", "prompt": "held", "budget_usd": 1.0,
                });
                let url = format!("{}/api/v1/agent/run", t.base);
                send(t.http.post(url).bearer_auth(&t.token).json(&body)).await.status
            }));
        }
    };
    let in_flight = |n: u64| {
        let agent = agent.clone();
        async move {
            for _ in 0..500 {
                if agent.calls() >= n {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            panic!("{n} runs never reached the agent service");
        }
    };
    let get = |path: &str, token: Option<&str>| {
        let mut req = t.http.get(format!("{}/api/v1{path}", t.base));
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        send(req)
    };
    let user = Some(t.token.as_str());

    hold(5);
    in_flight(5).await;
    let shed = get("/docs", None).await;
    assert_eq!((shed.status, shed.code()), (503, "LOAD-503"));
    assert_eq!(shed.header("retry-after"), "1");
    assert_eq!(get("/roadmaps?limit=1", user).await.status, 200);
    assert_eq!(
        get("/health/live", None).await.status,
        200,
        "health is never shed"
    );

    hold(4);
    in_flight(9).await;
    let shed = get("/roadmaps?limit=1", user).await;
    assert_eq!((shed.status, shed.code()), (503, "LOAD-503"));
    assert_eq!(get("/roadmaps?limit=1", Some(&admin)).await.status, 200);

    proxy.set(Fault::None);
    for run in held {
        assert_eq!(
            run.await.unwrap(),
            201,
            "a held run completes once its answer comes"
        );
    }
    assert_eq!(get("/docs", None).await.status, 200);
}
