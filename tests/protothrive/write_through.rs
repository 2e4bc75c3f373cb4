//! Reads served from the cache after writes: a roadmap write stores its new detail view (both
//! versions, the writer's partition) so the next read is a hit without a statement; a list page
//! after a write reads its rows and takes the nested data from the data cache; `/auth/me` is a
//! per-user entry that a login purges. Never an answer older than the write.

use serde_json::json;

use crate::api::{call, get, login, query_count, register, shared, slot, text};
use crate::support::Answer;

static SERVER: crate::api::Slot = slot();

fn hit(a: &Answer) -> bool {
    a.header("cache-status").contains("; hit")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_roadmap_write_answers_the_next_reads_from_the_cache() {
    let server = shared(&SERVER);
    let a = register(&server, "through-a").await;
    let b = register(&server, "through-b").await;
    let made = call(
        &server,
        "POST",
        "/api/v2/roadmaps",
        &a.access,
        &json!({"title": "first", "graph": {"nodes": [{"id": "n"}], "edges": []},
                "visibility": "public"}),
    )
    .await;
    assert_eq!(made.status, 201, "{}", made.body);
    let id = text(&made.body["data"]["id"]);
    let (v1, v2) = (
        format!("/api/v1/roadmaps/{id}"),
        format!("/api/v2/roadmaps/{id}"),
    );
    // B reads A's public roadmap: B's own entry, which A's writes must purge.
    assert_eq!(
        get(&server, &v2, &b.access).await.body["data"]["title"],
        "first"
    );

    // Right after the create, both versions are hits in A's partition, without a statement.
    for (path, graph) in [(&v1, "json_graph"), (&v2, "graph")] {
        let read = get(&server, path, &a.access).await;
        assert!(hit(&read), "{path}: {}", read.header("cache-status"));
        assert_eq!(query_count(&read, path), 0);
        assert_eq!(read.body["data"]["title"], "first", "{path}");
        assert!(!read.body["data"][graph].is_null(), "{path}: {}", read.body);
        assert!(
            read.body["data"]["recent_logs"].is_array(),
            "{path}: detail view"
        );
    }

    // The list after the write is not a hit (the write purged it): its rows are one statement,
    // the nested data of every row come from the data cache.
    let list = get(&server, "/api/v2/roadmaps", &a.access).await;
    assert!(!hit(&list));
    assert_eq!(list.body["data"][0]["title"], "first");
    assert_eq!(query_count(&list, "list after a write"), 1);

    for (method, path, body) in [
        ("PATCH", v2.clone(), json!({"title": "second"})),
        (
            "PUT",
            v1.clone(),
            json!({"title": "third", "json_graph": "{\"nodes\":[],\"edges\":[]}",
                                   "visibility": "public"}),
        ),
        ("POST", format!("{v2}/thrive-score"), json!({})),
    ] {
        let wrote = call(&server, method, &path, &a.access, &body).await;
        assert_eq!(wrote.status, 200, "{method} {path}: {}", wrote.body);
        let title = &wrote.body["data"]["title"];
        for read_path in [&v1, &v2] {
            let read = get(&server, read_path, &a.access).await;
            assert!(
                hit(&read),
                "{method} then {read_path}: {}",
                read.header("cache-status")
            );
            assert_eq!(query_count(&read, read_path), 0);
            assert_eq!(
                &read.body["data"]["title"], title,
                "{method} then {read_path}"
            );
            assert_eq!(
                read.body["data"]["updated_at"], wrote.body["data"]["updated_at"],
                "{method} then {read_path}"
            );
        }
        // B's entry went with the write: B reads the new title from the database.
        let other = get(&server, &v2, &b.access).await;
        assert_eq!(&other.body["data"]["title"], title, "B after {method}");
    }

    // A log is not a roadmap write: it purges, and the next read counts it.
    let count = get(&server, &v2, &a.access).await.body["data"]["log_count"]
        .as_i64()
        .unwrap();
    let run = call(
        &server,
        "POST",
        "/api/v2/agent/run",
        &a.access,
        &json!({"roadmap_id": id, "task_type": "analysis", "prompt": "go", "budget_usd": 1.0}),
    )
    .await;
    assert!(run.status == 201 || run.status == 502, "{}", run.body);
    for path in [&v2, &"/api/v2/roadmaps".to_owned()] {
        let read = get(&server, path, &a.access).await;
        let row = if path == &v2 {
            &read.body["data"]
        } else {
            &read.body["data"][0]
        };
        assert_eq!(row["log_count"], count + 1, "{path}: {}", read.body);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_me_is_a_per_user_hit_until_a_login() {
    let server = shared(&SERVER);
    let a = register(&server, "me-a").await;
    let b = register(&server, "me-b").await;
    let first = get(&server, "/api/v1/auth/me", &a.access).await;
    assert_eq!(first.status, 200, "{}", first.body);
    let again = get(&server, "/api/v1/auth/me", &a.access).await;
    assert!(hit(&again), "{}", again.header("cache-status"));
    assert_eq!(query_count(&again, "me"), 0);
    assert_eq!(again.body["data"], first.body["data"]);
    // Another user never gets A's entry.
    let other = get(&server, "/api/v1/auth/me", &b.access).await;
    assert_eq!(other.body["data"]["id"], b.id.as_str());
    // A login changes `last_login`: the next /me reads it.
    let token = login(&server, &a.email).await;
    let after = get(&server, "/api/v1/auth/me", &token).await;
    assert!(!hit(&after), "{}", after.header("cache-status"));
    assert!(
        !after.body["data"]["last_login"].is_null(),
        "{}",
        after.body
    );
}
