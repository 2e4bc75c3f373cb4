//! The read cache as the running API answers it: shared snippet entries, per-user roadmap
//! entries, never a cached answer for a caller the route refuses, a read after a write never old,
//! and two instances sharing Redis purge each other's L1.

use serde_json::json;

use crate::api::{Auth, LOOSE_LIMITS, call, demo_tokens, get, register, req, shared, slot, text};
use crate::support::process::Server as Process;
use crate::support::redis_cluster::on_single_and_cluster;
use crate::support::{Answer, send};

static SERVER: crate::api::Slot = slot();

fn hit(a: &Answer) -> bool {
    a.header("cache-status").contains("; hit")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snippets_are_shared_entries_and_a_new_snippet_shows_at_once() {
    let server = shared(&SERVER);
    let [vibe, eng, _] = demo_tokens(&server).await;
    let path = "/api/v2/snippets?category=ui&limit=100";
    let first = get(&server, path, &vibe).await;
    assert_eq!(first.status, 200);
    assert!(
        !first.header("cache-status").is_empty(),
        "Cache-Status on a cacheable route"
    );
    // Another user reads the same page: the shared entry answers, no statement runs.
    let second = get(&server, path, &eng).await;
    assert!(hit(&second), "{}", second.header("cache-status"));
    assert_eq!(second.header("x-query-count"), "0");
    assert_eq!(second.body["data"], first.body["data"]);
    // What the client may keep is not what the server cache keeps.
    assert_eq!(second.header("cache-control"), "private, no-cache");
    assert!(
        second.headers.get("surrogate-key").is_none(),
        "tags never leave"
    );

    let made = call(
        &server,
        "POST",
        "/api/v2/snippets",
        &eng,
        &json!({
            "category": "ui", "title": "cache e2e", "code": "<b/>", "language": "html",
        }),
    )
    .await;
    assert_eq!(made.status, 201, "{}", made.body);
    let after = get(&server, path, &vibe).await;
    assert!(!hit(&after));
    let id = &made.body["data"]["id"];
    assert!(
        after.body["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| &s["id"] == id),
        "the new snippet is on the next read"
    );
    // v1 and v2 of one path are two entries (`Vary: API-Version`).
    let v1 = get(&server, "/api/v1/snippets?category=ui&limit=100", &vibe).await;
    assert_eq!(v1.body["version"], "v1");
    // The hit rate is reported: in /status and as a Prometheus series.
    let status = get(&server, "/api/status", &vibe).await;
    assert!(
        status.body["data"]["cache"]["hits"].as_u64().unwrap() >= 1,
        "{}",
        status.body
    );
    let text = req(&server, "GET", "/metrics", Auth::None)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(text.contains("protothrive_cache_hit_ratio"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cached_answer_never_reaches_a_caller_the_route_refuses() {
    let server = shared(&SERVER);
    let [vibe, _, admin] = demo_tokens(&server).await;
    let path = "/api/v1/snippets?language=typescript";
    assert_eq!(get(&server, path, &vibe).await.status, 200);
    assert!(hit(&get(&server, path, &vibe).await));
    let anonymous = send(req(&server, "GET", path, Auth::None)).await;
    assert_eq!(anonymous.status, 401);
    // The dashboard is shared between execs and above only.
    assert_eq!(
        get(&server, "/api/v1/analytics/dashboard", &admin)
            .await
            .status,
        200
    );
    assert!(hit(
        &get(&server, "/api/v1/analytics/dashboard", &admin).await
    ));
    assert_eq!(
        get(&server, "/api/v1/analytics/dashboard", &vibe)
            .await
            .status,
        403
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roadmaps_are_per_user_entries_purged_by_every_write() {
    let server = shared(&SERVER);
    let a = register(&server, "cache-a").await;
    let b = register(&server, "cache-b").await;
    let made = call(
        &server,
        "POST",
        "/api/v2/roadmaps",
        &a.access,
        &json!({
            "title": "A's plan", "graph": {"nodes": [], "edges": []},
        }),
    )
    .await;
    assert_eq!(made.status, 201, "{}", made.body);
    let id = text(&made.body["data"]["id"]);
    let one = format!("/api/v2/roadmaps/{id}");

    assert_eq!(get(&server, &one, &a.access).await.status, 200);
    assert!(hit(&get(&server, &one, &a.access).await));
    // B asks for the same URI: B's partition has nothing, and A's private roadmap stays hidden.
    let other = get(&server, &one, &b.access).await;
    assert_eq!(other.status, 404, "{}", other.body);
    let b_list = get(&server, "/api/v2/roadmaps", &b.access).await;
    assert_eq!(b_list.body["meta"]["total"], 0, "{}", b_list.body);

    // List, then write, then list again: never the old answer.
    // Both versions' lists cached before the write.
    for list in ["/api/v2/roadmaps", "/api/v1/roadmaps"] {
        let first = get(&server, list, &a.access).await;
        assert_eq!(first.body["data"][0]["title"], "A's plan");
        assert!(hit(&get(&server, list, &a.access).await), "{list}");
    }
    let patched = call(
        &server,
        "PATCH",
        &one,
        &a.access,
        &json!({"title": "A's new plan"}),
    )
    .await;
    assert_eq!(patched.status, 200, "{}", patched.body);
    for path in [one.as_str(), "/api/v2/roadmaps", "/api/v1/roadmaps"] {
        let read = get(&server, path, &a.access).await;
        let title = if path == one {
            &read.body["data"]["title"]
        } else {
            &read.body["data"][0]["title"]
        };
        assert_eq!(title, "A's new plan", "{path} after PATCH");
    }
    // A log changes the list's log count.
    let before = get(&server, "/api/v2/roadmaps", &a.access).await;
    let count = before.body["data"][0]["log_count"].as_i64().unwrap();
    let run = call(
        &server,
        "POST",
        "/api/v2/agent/run",
        &a.access,
        &json!({
            "roadmap_id": id, "task_type": "analysis", "prompt": "go", "budget_usd": 1.0,
        }),
    )
    .await;
    assert!(run.status == 201 || run.status == 502, "{}", run.body);
    let after = get(&server, "/api/v2/roadmaps", &a.access).await;
    assert_eq!(
        after.body["data"][0]["log_count"],
        count + 1,
        "{}",
        after.body
    );
}

on_single_and_cluster! {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_write_on_one_instance_purges_the_others_l1_through_redis(redis) {
        let url = redis.url();
        // Two instances of one deployment: one database (SQLite in WAL mode takes two processes, as
        // does PostgreSQL), one Redis. The first seeds it; the second finds it seeded.
        // One directory per variant: the single-server and cluster variants run side by side.
        let kind = if url.contains(',') { "cluster" } else { "single" };
        let dir = std::env::temp_dir().join(format!(
            "protothrive-e2e-shared-{}-{kind}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let db = crate::support::postgres::database_for(&dir);
        let env = [
            ("PROTOTHRIVE_RATE_LIMITS", LOOSE_LIMITS),
            ("PROTOTHRIVE_REDIS_URL", url.as_str()),
            ("PROTOTHRIVE_DATABASE_URL", db.as_str()),
        ];
        let a = Process::start_with(&env);
        let b = Process::start_with(&env);
        let [vibe, eng, _] = demo_tokens(&a).await;
        let path = "/api/v2/snippets?category=deploy&limit=100";
        // Behind a load balancer every instance sees one host name (it is part of the cache key).
        let get = |server: &Process, token: &str| {
            send(req(server, "GET", path, Auth::Bearer(token)).header("host", "api.protothrive.test"))
        };
        // B caches the page in its L1 (and Redis).
        assert_eq!(get(&b, &vibe).await.status, 200);
        assert!(hit(&get(&b, &vibe).await));
        // A (sharing Redis) answers it from L2 without running a statement.
        let from_l2 = get(&a, &vibe).await;
        assert_eq!(
            from_l2.header("x-query-count"),
            "0",
            "{}",
            from_l2.header("cache-status")
        );

        let made = call(
            &a,
            "POST",
            "/api/v2/snippets",
            &eng,
            &json!({
                "category": "deploy", "title": "cross-instance", "code": "x", "language": "bash",
            }),
        )
        .await;
        assert_eq!(made.status, 201, "{}", made.body);
        let id = &made.body["data"]["id"];
        // The purge reaches B over pub/sub: B's next reads see the snippet (pub/sub is asynchronous,
        // so B is asked until it does, within a bound).
        let mut seen = false;
        for _ in 0..200 {
            let read = get(&b, &vibe).await;
            if read.body["data"]
                .as_array()
                .unwrap()
                .iter()
                .any(|s| &s["id"] == id)
            {
                seen = true;
                break;
            }
        }
        assert!(seen, "B never dropped its cached page");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
