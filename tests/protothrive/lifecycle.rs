//! Process-level behaviour: durability across `kill -9`, graceful and bounded shutdown.

use std::time::Duration;

use serde_json::json;

use crate::api::LOOSE_LIMITS;
use crate::support::process::Server;
use crate::support::{DEMO, client, first_roadmap, login, send};

/// Every write answered 2xx survives a `kill -9` in the middle of a burst of writes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_kill_9() {
    let mut server = Server::start_with(&[("PROTOTHRIVE_RATE_LIMITS", LOOSE_LIMITS)]);
    let token = login(&server, DEMO).await;
    let http = client();
    let url = server.url("/api/v1/roadmaps");
    let (acked_tx, mut acked_rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    let mut tasks = Vec::new();
    for i in 0..300 {
        let (http, url, token, acked) =
            (http.clone(), url.clone(), token.clone(), acked_tx.clone());
        tasks.push(tokio::spawn(async move {
            let graph = json!({"nodes": [{"id": "a"}], "edges": []}).to_string();
            let res = http
                .post(url)
                .bearer_auth(token)
                .json(&json!({"title": format!("durable {i}"), "json_graph": graph}))
                .send()
                .await;
            if let Ok(r) = res {
                if r.status().is_success() {
                    let body: serde_json::Value = r.json().await.unwrap_or_default();
                    if let Some(id) = body["data"]["id"].as_str() {
                        let _ = acked.send(id.to_owned());
                    }
                }
            }
        }));
    }
    drop(acked_tx);
    // Kill once some writes were acknowledged and others are still in flight.
    let mut acknowledged = Vec::new();
    while acknowledged.len() < 40 {
        acknowledged.push(
            acked_rx
                .recv()
                .await
                .expect("writes are being acknowledged"),
        );
    }
    server.kill9();
    for t in tasks {
        let _ = t.await;
    }
    while let Ok(id) = acked_rx.try_recv() {
        acknowledged.push(id);
    }
    assert!(acknowledged.len() < 300, "the kill landed mid-burst");
    server.restart();
    let token = login(&server, DEMO).await;
    for id in &acknowledged {
        let a = send(
            client()
                .get(server.url(&format!("/api/v1/roadmaps/{id}")))
                .bearer_auth(&token),
        )
        .await;
        assert_eq!(
            a.status, 200,
            "acknowledged roadmap {id} is lost after kill -9"
        );
    }
}

/// SIGTERM with an idle keep-alive connection open and a slow client mid-request: the process
/// still exits within the grace period.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_exits_within_the_deadline_despite_idle_and_slow_clients() {
    use tokio::io::AsyncWriteExt;
    let mut server = Server::start_with(&[
        ("PROTOTHRIVE_SHUTDOWN_GRACE_SECS", "2"),
        ("PROTOTHRIVE_RATE_LIMITS", LOOSE_LIMITS),
    ]);
    let addr = server.base.trim_start_matches("http://").to_owned();
    // An idle connection that completed one request and stays open.
    let idle = client();
    assert_eq!(
        send(idle.get(server.url("/api/v1/health"))).await.status,
        200
    );
    // A slow client that sent half a request and stalls.
    let mut slow = tokio::net::TcpStream::connect(&addr)
        .await
        .expect("connect");
    slow.write_all(b"POST /api/v1/auth/login HTTP/1.1\r\nhost: x\r\ncontent-length: 100\r\n\r\n{")
        .await
        .expect("write");
    let exited = tokio::task::spawn_blocking(move || server.terminate(Duration::from_secs(8)))
        .await
        .expect("join");
    assert!(
        exited,
        "the process did not exit within the deadline after SIGTERM"
    );
    drop(slow);
}

/// New connections are refused once shutdown starts; an in-flight request completes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_flight_requests_finish_during_shutdown() {
    let mut server = Server::start_with(&[
        ("PROTOTHRIVE_SHUTDOWN_GRACE_SECS", "5"),
        ("PROTOTHRIVE_RATE_LIMITS", LOOSE_LIMITS),
        ("PROTOTHRIVE_AGENT_LATENCY_MS", "1500"),
    ]);
    let token = login(&server, DEMO).await;
    let roadmap = first_roadmap(&server, &token).await;
    let url = server.url("/api/v1/agent/run");
    let slow = tokio::spawn(async move {
        send(client().post(url).bearer_auth(token).json(&json!({
            "roadmap_id": roadmap, "task_type": "plan", "prompt": "slow", "budget_usd": 1.0
        })))
        .await
    });
    // Wait until the run is in flight: /status counts requests being served (itself included).
    loop {
        let status = send(client().get(server.url("/api/v1/status"))).await;
        if status.body["data"]["requests_in_flight"]
            .as_u64()
            .unwrap_or(0)
            >= 2
        {
            break;
        }
        tokio::task::yield_now().await;
    }
    let base = server.base.clone();
    let exited = tokio::task::spawn_blocking(move || server.terminate(Duration::from_secs(10)));
    let answer = slow.await.expect("join");
    assert_eq!(
        answer.status, 201,
        "the in-flight run completed: {:?}",
        answer.body
    );
    assert!(exited.await.expect("join"));
    let refused = reqwest::get(format!("{base}/api/v1/health"))
        .await
        .expect_err("no new connections after shutdown");
    assert!(refused.is_connect(), "{refused}");
}
