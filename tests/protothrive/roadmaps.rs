//! Roadmaps as their users see them: who may read or change whose, every write visible to the
//! next read (whatever caches sit in between), the thrive score, and agent runs on a roadmap.

use serde_json::{Value, json};

use crate::api::{
    Auth, Slot, assert_problem, call, demo_tokens, get, register, req, roadmap, shared, slot, text,
};
use crate::support::send;

static SERVER: Slot = slot();

/// Someone else's private (or team) roadmap does not exist for you; a public one is readable
/// but only its owner changes it or lists its records. Refused writes change nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_users_roadmaps_are_hidden_unless_public() {
    let server = shared(&SERVER);
    let owner = register(&server, "owner").await;
    let other = register(&server, "other").await;
    let private = roadmap(&server, &owner.access, "secret", "private").await;
    let team = roadmap(&server, &owner.access, "team", "team").await;
    let public = roadmap(&server, &owner.access, "shared", "public").await;
    let patch = json!({"title": "hijacked"});
    let put = json!({"title": "hijacked", "graph": {"nodes": [], "edges": []}});
    let run =
        |id: &str| json!({"roadmap_id": id, "task_type": "plan", "prompt": "p", "budget_usd": 0.1});
    let mut rows: Vec<(&str, String, Option<Value>, u16, &str)> = Vec::new();
    for id in [&private, &team] {
        rows.extend([
            (
                "GET",
                format!("/api/v1/roadmaps/{id}"),
                None,
                404,
                "NOT-FOUND-404",
            ),
            (
                "PUT",
                format!("/api/v2/roadmaps/{id}"),
                Some(put.clone()),
                404,
                "NOT-FOUND-404",
            ),
            (
                "PATCH",
                format!("/api/v1/roadmaps/{id}"),
                Some(patch.clone()),
                404,
                "NOT-FOUND-404",
            ),
            (
                "DELETE",
                format!("/api/v1/roadmaps/{id}"),
                None,
                404,
                "NOT-FOUND-404",
            ),
            (
                "POST",
                format!("/api/v1/roadmaps/{id}/thrive-score"),
                None,
                404,
                "NOT-FOUND-404",
            ),
            (
                "GET",
                format!("/api/v1/roadmaps/{id}/logs"),
                None,
                404,
                "NOT-FOUND-404",
            ),
            (
                "GET",
                format!("/api/v2/roadmaps/{id}/insights"),
                None,
                404,
                "NOT-FOUND-404",
            ),
            (
                "POST",
                "/api/v1/agent/run".to_owned(),
                Some(run(id)),
                404,
                "NOT-FOUND-404",
            ),
        ]);
    }
    rows.extend([
        ("GET", format!("/api/v1/roadmaps/{public}"), None, 200, ""),
        (
            "PUT",
            format!("/api/v2/roadmaps/{public}"),
            Some(put.clone()),
            403,
            "AUTH-403",
        ),
        (
            "PATCH",
            format!("/api/v1/roadmaps/{public}"),
            Some(patch.clone()),
            403,
            "AUTH-403",
        ),
        (
            "DELETE",
            format!("/api/v1/roadmaps/{public}"),
            None,
            403,
            "AUTH-403",
        ),
        (
            "POST",
            format!("/api/v1/roadmaps/{public}/thrive-score"),
            None,
            403,
            "AUTH-403",
        ),
        (
            "GET",
            format!("/api/v1/roadmaps/{public}/logs"),
            None,
            403,
            "AUTH-403",
        ),
        (
            "GET",
            format!("/api/v2/roadmaps/{public}/insights"),
            None,
            403,
            "AUTH-403",
        ),
    ]);
    for (method, path, body, status, code) in &rows {
        let what = format!("{method} {path} by another user");
        let mut r = req(&server, method, path, Auth::Bearer(&other.access));
        if let Some(b) = body {
            r = r.json(b);
        }
        let a = send(r).await;
        if code.is_empty() {
            assert_eq!(a.status, *status, "{what}: {}", a.body);
            assert_eq!(a.body["data"]["title"], "shared", "{what}");
        } else {
            assert_problem(&a, *status, code, &what);
        }
    }
    let theirs = get(&server, "/api/v1/roadmaps", &other.access).await;
    assert_eq!(
        theirs.body["meta"]["total"], 0,
        "another user's list is their own"
    );
    for (id, title) in [(&private, "secret"), (&team, "team"), (&public, "shared")] {
        let mine = get(&server, &format!("/api/v1/roadmaps/{id}"), &owner.access).await;
        assert_eq!(
            (mine.status, &mine.body["data"]["title"]),
            (200, &json!(title)),
            "unchanged"
        );
    }

    // The owner's soft delete hides it everywhere, from its owner too.
    let gone = send(req(
        &server,
        "DELETE",
        &format!("/api/v1/roadmaps/{public}"),
        Auth::Bearer(&owner.access),
    ))
    .await;
    assert_eq!(gone.status, 204);
    for token in [&owner.access, &other.access] {
        let a = get(&server, &format!("/api/v1/roadmaps/{public}"), token).await;
        assert_problem(&a, 404, "NOT-FOUND-404", "a deleted roadmap");
    }
    let list = get(&server, "/api/v1/roadmaps", &owner.access).await;
    assert_eq!(list.body["meta"]["total"], 2);
}

/// Each write is visible to the very next read, single and listed, in either version.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_write_is_visible_to_the_next_read() {
    let server = shared(&SERVER);
    let user = register(&server, "writer").await;
    let t = &user.access;
    let id = roadmap(&server, t, "draft one", "private").await;
    let title_in = |a: &crate::support::Answer| -> Vec<Value> {
        a.body["data"]
            .as_array()
            .expect("a list")
            .iter()
            .map(|r| r["title"].clone())
            .collect()
    };
    // Read first, so that anything cached has an entry to invalidate.
    assert_eq!(
        get(&server, &format!("/api/v2/roadmaps/{id}"), t)
            .await
            .body["data"]["title"],
        "draft one"
    );
    assert_eq!(
        title_in(&get(&server, "/api/v1/roadmaps", t).await),
        [json!("draft one")]
    );

    let writes = [
        (
            "PATCH",
            json!({"title": "patched", "status": "active", "tags": ["x"]}),
        ),
        (
            "PUT",
            json!({"title": "replaced", "graph": {"nodes": [{"id": "z"}], "edges": []}, "status": "completed", "visibility": "public"}),
        ),
    ];
    for (method, body) in writes {
        let a = call(&server, method, &format!("/api/v2/roadmaps/{id}"), t, &body).await;
        assert_eq!(a.status, 200, "{method}: {}", a.body);
        for version in ["v1", "v2"] {
            let one = get(&server, &format!("/api/{version}/roadmaps/{id}"), t).await;
            let list = get(&server, &format!("/api/{version}/roadmaps"), t).await;
            for (k, v) in body.as_object().expect("a body") {
                if k == "graph" {
                    let stored = &one.body["data"][if version == "v1" {
                        "json_graph"
                    } else {
                        "graph"
                    }];
                    let stored = stored.as_str().map_or_else(
                        || stored.clone(),
                        |s| serde_json::from_str(s).expect("json_graph"),
                    );
                    assert_eq!(&stored, v, "{method} then GET {version}: graph");
                } else {
                    assert_eq!(&one.body["data"][k], v, "{method} then GET {version}: {k}");
                    assert_eq!(
                        &list.body["data"][0][k], v,
                        "{method} then list {version}: {k}"
                    );
                }
            }
        }
    }
    let filtered = get(&server, "/api/v1/roadmaps?status=completed", t).await;
    assert_eq!(title_in(&filtered), [json!("replaced")]);
    assert_eq!(
        get(&server, "/api/v1/roadmaps?status=draft", t).await.body["meta"]["total"],
        0
    );

    let gone = send(req(
        &server,
        "DELETE",
        &format!("/api/v2/roadmaps/{id}"),
        Auth::Bearer(t),
    ))
    .await;
    assert_eq!(gone.status, 204);
    assert_problem(
        &get(&server, &format!("/api/v2/roadmaps/{id}"), t).await,
        404,
        "NOT-FOUND-404",
        "deleted",
    );
    assert_eq!(
        get(&server, "/api/v1/roadmaps", t).await.body["meta"]["total"],
        0
    );

    // A new snippet is in the next list and readable at its Location.
    let [vibe, eng, _] = demo_tokens(&server).await;
    let category = format!("c{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
    let before = get(
        &server,
        &format!("/api/v2/snippets?category={category}"),
        &vibe,
    )
    .await;
    assert_eq!(before.body["meta"]["total"], 0);
    let s = call(
        &server,
        "POST",
        "/api/v2/snippets",
        &eng,
        &json!({"category": category, "title": "T", "code": "c", "language": "rust"}),
    )
    .await;
    assert_eq!(s.status, 201, "{}", s.body);
    let after = get(
        &server,
        &format!("/api/v2/snippets?category={category}"),
        &vibe,
    )
    .await;
    assert_eq!(
        (&after.body["meta"]["total"], &after.body["data"][0]["id"]),
        (&json!(1), &s.body["data"]["id"])
    );
    assert_eq!(
        get(&server, s.header("location"), &vibe).await.body["data"]["title"],
        "T"
    );
}

/// The thrive score is recomputed from the roadmap's insights: their mean when they are equally
/// recent, 0 without any.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_thrive_score_is_recomputed_from_insights() {
    let server = shared(&SERVER);
    let [_, eng, _] = demo_tokens(&server).await;
    let owner = register(&server, "scored").await;
    let id = roadmap(&server, &owner.access, "scored", "private").await;
    let score = format!("/api/v1/roadmaps/{id}/thrive-score");
    let none = call(&server, "POST", &score, &owner.access, &json!({})).await;
    assert_eq!(
        (none.status, none.body["data"]["thrive_score"].as_f64()),
        (200, Some(0.0)),
        "{}",
        none.body
    );
    for s in [0.8, 0.4] {
        let body = json!({"roadmap_id": id, "type": "quality", "score": s, "trend": "stable"});
        assert_eq!(
            call(&server, "POST", "/api/v1/insights", &eng, &body)
                .await
                .status,
            201
        );
    }
    let a = call(&server, "POST", &score, &owner.access, &json!({})).await;
    let value = a.body["data"]["thrive_score"].as_f64().expect("a score");
    assert!(
        (value - 0.6).abs() < 0.001,
        "the mean of 0.8 and 0.4, got {value}"
    );
    let read = get(&server, &format!("/api/v2/roadmaps/{id}"), &owner.access).await;
    assert_eq!(read.body["data"]["thrive_score"].as_f64(), Some(value));
    assert_eq!(
        read.body["data"]["recent_insights"]
            .as_array()
            .map(Vec::len),
        Some(2)
    );
}

/// An agent run answers with the run, its traces and its log, and the log is then the
/// roadmap's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_run_records_its_run_traces_and_log() {
    let server = shared(&SERVER);
    let user = register(&server, "runner").await;
    let id = roadmap(&server, &user.access, "run me", "private").await;
    let a = call(
        &server,
        "POST",
        "/api/v2/agent/run",
        &user.access,
        &json!({
            "roadmap_id": id, "task_type": "codegen", "prompt": "write it", "budget_usd": 1.5,
        }),
    )
    .await;
    assert_eq!(a.status, 201, "{}", a.body);
    let d = &a.body["data"];
    assert_eq!(
        (
            &d["run"]["status"],
            &d["run"]["roadmap_id"],
            &d["run"]["user_id"]
        ),
        (&json!("succeeded"), &json!(id), &json!(user.id))
    );
    assert!(
        d["run"]["cost_usd"]
            .as_f64()
            .is_some_and(|c| (0.0..=1.5).contains(&c)),
        "within budget: {}",
        d["run"]
    );
    let traces = d["traces"].as_array().expect("traces");
    assert!(!traces.is_empty() && traces.iter().all(|t| t["run_id"] == d["run"]["id"]));
    let log_id = text(&d["log"]["id"]);
    let logs = get(
        &server,
        &format!("/api/v2/roadmaps/{id}/logs"),
        &user.access,
    )
    .await;
    assert_eq!(
        (&logs.body["meta"]["total"], &logs.body["data"][0]["id"]),
        (&json!(1), &json!(log_id))
    );
    assert_eq!(logs.body["data"][0]["task_type"], "codegen");
    let read = get(&server, &format!("/api/v1/roadmaps/{id}"), &user.access).await;
    assert_eq!(read.body["data"]["log_count"], 1);
}
