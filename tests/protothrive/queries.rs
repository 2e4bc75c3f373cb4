//! No N+1: the roadmap list (each row with its owner, log count and latest insight) and the
//! dashboard cost a fixed number of SQL statements whatever the page size — read from the
//! `X-Query-Count` header the app sets on every answer.

use serde_json::{Value, json};

use crate::api::{
    Auth, Slot, call, demo_tokens, get, query_count, req, roadmap, shared, slot, text,
};
use crate::support::Url;
use crate::support::{Answer, send};

static SERVER: Slot = slot();

/// The most statements one request of these may cost (contract: "in at most 2 queries").
const MAX_STATEMENTS: u32 = 2;

/// 60 roadmaps, each with a log and an insight: pages of 1, 20 and 100 cost the same statements,
/// at most 2, in either version — and the related data on every row is right.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roadmap_lists_cost_the_same_statements_whatever_the_page_size() {
    let server = shared(&SERVER);
    let [_, eng, _] = demo_tokens(&server).await;
    let mut created = Vec::new();
    for i in 0..60 {
        let id = roadmap(&server, &eng, &format!("n+1 {i}"), "private").await;
        let log = call(&server, "POST", "/api/v1/agent-logs", &eng, &json!({
            "roadmap_id": id, "task_type": "plan", "output": format!("log {i}"), "status": "success",
            "model_used": "m", "token_count": 10 + i, "cost_usd": 0.001, "duration_ms": 3,
        }))
        .await;
        assert_eq!(log.status, 201, "{}", log.body);
        let kind = ["performance", "usage", "quality", "cost", "collaboration"][i % 5];
        let insight = call(&server, "POST", "/api/v2/insights", &eng, &json!({
            "roadmap_id": id, "type": kind, "data": {"i": i}, "score": 0.5, "trend": "improving",
        }))
        .await;
        assert_eq!(insight.status, 201, "{}", insight.body);
        created.push((id, kind));
    }

    for version in ["v1", "v2"] {
        let mut counts = Vec::new();
        for limit in [1, 20, 100] {
            let path = format!("/api/{version}/roadmaps?limit={limit}");
            let a = get(&server, &path, &eng).await;
            assert_eq!(a.status, 200, "{path}: {}", a.body);
            let total = a.body["meta"]["total"].as_u64().expect("meta.total");
            assert!(total >= 60, "{path}: total {total}");
            let rows = a.body["data"].as_array().expect("a page");
            assert_eq!(rows.len() as u64, total.min(limit), "{path}: page size");
            for (id, kind) in &created {
                if let Some(r) = rows.iter().find(|r| r["id"] == json!(id)) {
                    assert_eq!(r["log_count"], 1, "{path}: log count of {id}");
                    assert_eq!(
                        r["latest_insight"]["type"],
                        json!(kind),
                        "{path}: latest insight of {id}"
                    );
                    assert_eq!(
                        r["owner"]["id"], "00000000-0000-4000-8000-000000000002",
                        "{path}: owner"
                    );
                }
            }
            if limit == 100 {
                assert!(
                    created
                        .iter()
                        .all(|(id, _)| rows.iter().any(|r| r["id"] == json!(id))),
                    "{path}: every created roadmap is on the page"
                );
            }
            counts.push(query_count(&a, &path));
        }
        // The page's rows are one statement and its nested data at most one more: a page of 100
        // costs what a page of 1 does. Whether the second is needed depends on what the data
        // cache holds by then (the writes above cached some rows' nested data and invalidated
        // others'), so the counts may differ by that one statement, never exceed the bound.
        assert!(
            counts.iter().all(|&n| (1..=MAX_STATEMENTS).contains(&n)),
            "{version}: statements per page size 1, 20, 100: {counts:?}"
        );
    }

    // A filtered list, a deep page, and a roadmap's own logs and insights cost no more.
    let first = get(&server, "/api/v2/roadmaps?limit=30", &eng).await;
    let cursor = text(&first.body["meta"]["next_cursor"]);
    let (id, _) = &created[0];
    for path in [
        "/api/v1/roadmaps?status=draft&limit=100".to_owned(),
        "/api/v1/roadmaps?limit=50&offset=50".to_owned(),
        format!("/api/v2/roadmaps?limit=100&cursor={cursor}"),
        format!("/api/v2/roadmaps/{id}"),
        format!("/api/v1/roadmaps/{id}/logs?limit=100"),
        format!("/api/v2/roadmaps/{id}/insights?limit=100"),
    ] {
        let a = get(&server, &path, &eng).await;
        assert_eq!(a.status, 200, "{path}: {}", a.body);
        let n = query_count(&a, &path);
        assert!((1..=MAX_STATEMENTS).contains(&n), "{path}: {n} statements");
    }
}

/// The dashboard aggregates in SQL: at most 2 statements however much there is to aggregate,
/// and its totals move with the data.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_aggregates_in_a_fixed_number_of_statements() {
    let server = shared(&SERVER);
    let [_, eng, admin] = demo_tokens(&server).await;
    let before = get(&server, "/api/v1/analytics/dashboard", &admin).await;
    assert_eq!(before.status, 200, "{}", before.body);
    let n_before = query_count(&before, "dashboard");
    assert!(
        (1..=MAX_STATEMENTS).contains(&n_before),
        "dashboard: {n_before} statements"
    );

    let id = roadmap(&server, &eng, "dashboard", "private").await;
    for i in 0..25 {
        let log = call(&server, "POST", "/api/v1/agent-logs", &eng, &json!({
            "roadmap_id": id, "task_type": "review", "status": if i % 5 == 0 { "fail" } else { "success" },
            "model_used": "m", "token_count": 100, "cost_usd": 0.5,
        }))
        .await;
        assert_eq!(log.status, 201, "{}", log.body);
    }
    let after = get(&server, "/api/v2/analytics/dashboard", &admin).await;
    assert_eq!(after.status, 200, "{}", after.body);
    // No more than before (less when the data cache holds the nested values).
    let n_after = query_count(&after, "dashboard");
    assert!(
        (1..=n_before).contains(&n_after),
        "the dashboard's cost grew with the data: {n_before} → {n_after}"
    );
    let runs = |a: &crate::support::Answer| {
        a.body["data"]["agents"]["runs"]
            .as_i64()
            .expect("agents.runs")
    };
    let roadmaps = |a: &crate::support::Answer| {
        a.body["data"]["roadmaps"]["total"]
            .as_i64()
            .expect("roadmaps.total")
    };
    // Other tests of this file may write meanwhile: totals only grow, by at least this test's.
    assert!(
        runs(&after) >= runs(&before) + 25,
        "runs {} → {}",
        runs(&before),
        runs(&after)
    );
    assert!(roadmaps(&after) > roadmaps(&before));
    let by_status = &after.body["data"]["roadmaps"]["by_status"];
    let sum: i64 = ["draft", "active", "completed", "archived"]
        .iter()
        .map(|s| by_status[s].as_i64().unwrap_or(-1))
        .sum();
    assert_eq!(sum, roadmaps(&after), "by_status adds up to the total");
    let rate = after.body["data"]["agents"]["success_rate"]
        .as_f64()
        .expect("success_rate");
    assert!((0.0..=1.0).contains(&rate));
}

/// A GET the read cache may not answer from storage (`Cache-Control: no-cache`): its count is
/// what the view itself costs.
async fn uncached(server: &impl Url, path: &str, token: &str) -> Answer {
    send(req(server, "GET", path, Auth::Bearer(token)).header("cache-control", "no-cache")).await
}

/// The engineer's id (seed data).
const ENGINEER_ID: &str = "00000000-0000-4000-8000-000000000002";

/// A public roadmap of the engineer with two logs and two insights, its thrive score computed:
/// what the nested data of the views below must show.
async fn roadmap_with_history(server: &impl Url, eng: &str) -> String {
    let id = roadmap(server, eng, "statements", "public").await;
    for (i, kind) in ["quality", "cost"].into_iter().enumerate() {
        let log = call(server, "POST", "/api/v1/agent-logs", eng, &json!({
            "roadmap_id": id, "task_type": "plan", "output": format!("log {i}"), "status": "success",
            "model_used": "m", "token_count": 10, "cost_usd": 0.001, "duration_ms": 3,
        }))
        .await;
        assert_eq!(log.status, 201, "{}", log.body);
        let insight = call(server, "POST", "/api/v2/insights", eng, &json!({
            "roadmap_id": id, "type": kind, "data": {"i": i}, "score": 1.0, "trend": "improving",
        }))
        .await;
        assert_eq!(insight.status, 201, "{}", insight.body);
    }
    let scored = call(
        server,
        "POST",
        &format!("/api/v1/roadmaps/{id}/thrive-score"),
        eng,
        &json!({}),
    )
    .await;
    assert_eq!(scored.status, 200, "{}", scored.body);
    id
}

/// The nested data of [`roadmap_with_history`] as a roadmap answer shows it: `latest` is its
/// newest insight as the detail view shows it; `owner_view` when the caller is the owner (who
/// alone sees the owner's email).
fn assert_history(r: &Value, what: &str, latest: &Value, owner_view: bool) {
    assert_eq!(r["owner"]["id"], ENGINEER_ID, "{what}: owner");
    assert!(r["owner"]["name"].is_string(), "{what}: owner name");
    assert_eq!(
        r["owner"]["email"].is_string(),
        owner_view,
        "{what}: owner email"
    );
    assert_eq!(r["log_count"], 2, "{what}: log count");
    assert_eq!(&r["latest_insight"], latest, "{what}: latest insight");
}

/// Every list and detail view, at page sizes 1, 20 and 100, costs at most 2 statements as the
/// database wrapper counts them (the table is printed for the record).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_list_and_detail_view_costs_at_most_two_statements() {
    let server = shared(&SERVER);
    let [_, eng, admin] = demo_tokens(&server).await;
    let id = roadmap_with_history(&server, &eng).await;
    let key = call(
        &server,
        "POST",
        "/api/v1/admin/api-keys",
        &admin,
        &json!({
            "name": "statements", "user_id": ENGINEER_ID, "scopes": ["snippets:read"],
        }),
    )
    .await;
    assert_eq!(key.status, 201, "{}", key.body);
    let snippets = get(&server, "/api/v1/snippets?limit=1", &eng).await;
    let snippet = text(&snippets.body["data"][0]["id"]);
    // The detail view: the recent logs and insights, newest first, the newest being the latest.
    let detail = get(&server, &format!("/api/v2/roadmaps/{id}"), &eng).await;
    assert_eq!(detail.status, 200, "{}", detail.body);
    let logs = detail.body["data"]["recent_logs"]
        .as_array()
        .expect("recent_logs");
    let insights = detail.body["data"]["recent_insights"]
        .as_array()
        .expect("recent_insights");
    assert_eq!(
        (logs.len(), insights.len()),
        (2, 2),
        "recent logs and insights"
    );
    let kinds: Vec<&str> = insights.iter().filter_map(|i| i["type"].as_str()).collect();
    assert!(
        kinds == ["cost", "quality"] || kinds == ["quality", "cost"],
        "{kinds:?}"
    );
    let latest = insights[0].clone();
    let at = latest["created_at"].as_str().unwrap_or_default();
    assert!(
        at.ends_with('Z') && at.contains('T'),
        "an RFC 3339 time: {at}"
    );
    assert!(
        logs.iter()
            .all(|l| l["timestamp"].as_str().is_some_and(|t| t.ends_with('Z')))
    );
    let mut table = Vec::new();
    for limit in [1, 20, 100] {
        for (who, path) in [
            (&eng, format!("/api/v1/roadmaps?limit={limit}")),
            (&eng, format!("/api/v2/roadmaps?limit={limit}")),
            (&eng, format!("/api/v1/roadmaps/{id}/logs?limit={limit}")),
            (
                &eng,
                format!("/api/v2/roadmaps/{id}/insights?limit={limit}"),
            ),
            (&eng, format!("/api/v1/snippets?limit={limit}")),
            (&admin, format!("/api/v2/admin/api-keys?limit={limit}")),
        ] {
            let a = uncached(&server, &path, who).await;
            assert_eq!(a.status, 200, "{path}: {}", a.body);
            assert_nested_rows(&a.body["data"], &path, &id, &latest);
            table.push((path.clone(), query_count(&a, &path)));
        }
    }
    for (who, path) in [
        (&eng, format!("/api/v2/roadmaps/{id}")),
        (&admin, format!("/api/v1/roadmaps/{id}")),
        (&eng, format!("/api/v1/snippets/{snippet}")),
        (&admin, "/api/v1/analytics/dashboard".to_owned()),
        (&eng, "/api/v1/auth/me".to_owned()),
    ] {
        let a = uncached(&server, &path, who).await;
        assert_eq!(a.status, 200, "{path}: {}", a.body);
        let data = &a.body["data"];
        if path.contains("/roadmaps/") {
            assert_history(data, &path, &latest, who == &eng);
            assert_eq!(
                data["recent_insights"][0], latest,
                "{path}: recent insights"
            );
            assert_eq!(
                data["recent_logs"].as_array().map(Vec::len),
                Some(2),
                "{path}"
            );
        } else if path.contains("/snippets/") {
            assert_nested_rows(&json!([data]), &path, &id, &latest);
        } else if path.contains("dashboard") {
            let top = data["top_roadmaps"].as_array().expect("top_roadmaps");
            assert!(top.len() <= 5, "{path}: {} top roadmaps", top.len());
            let ours = top
                .iter()
                .find(|r| r["id"] == json!(id))
                .expect("ours on top");
            assert_history(ours, &path, &latest, false);
            assert_eq!(ours["thrive_score"], 1.0, "{path}: score");
        }
        table.push((path.clone(), query_count(&a, &path)));
    }
    // A write answers with the nested data too, at the same cost.
    let patched = call(
        &server,
        "PATCH",
        &format!("/api/v2/roadmaps/{id}"),
        &eng,
        &json!({"title": "renamed"}),
    )
    .await;
    assert_eq!(patched.status, 200, "{}", patched.body);
    assert_history(&patched.body["data"], "PATCH", &latest, true);
    table.push((
        "PATCH /api/v2/roadmaps/{id}".to_owned(),
        query_count(&patched, "PATCH"),
    ));
    for (path, n) in &table {
        println!("statements {n}  {path}");
        // The views with nested data cost their rows and at most one batch, whatever the page
        // size (none when the data cache holds every nested value: the loaders' `SharedCache`).
        assert!(
            (1..=MAX_STATEMENTS).contains(n),
            "{path}: {n} statements, rows and at most one batch"
        );
    }
}

/// The nested data of the rows of a list: roadmaps with their owner, log count and latest
/// insight (exactly so for `ours`), snippets with their author, API keys with their user.
fn assert_nested_rows(rows: &Value, path: &str, ours: &str, latest: &Value) {
    let rows = rows.as_array().unwrap_or_else(|| panic!("{path}: a list"));
    for r in rows {
        if path.contains("/roadmaps?") {
            assert_eq!(r["owner"]["id"], ENGINEER_ID, "{path}: owner");
            assert!(
                r["owner"]["email"].is_string(),
                "{path}: the owner sees the email"
            );
            assert!(r["log_count"].is_u64(), "{path}: log count");
            assert!(r["latest_insight"].is_null() || r["latest_insight"]["type"].is_string());
            if r["id"] == json!(ours) {
                assert_history(r, path, latest, true);
            }
        } else if path.contains("/snippets") {
            assert_eq!(r["author"]["id"], r["created_by"], "{path}: author");
            assert!(r["author"]["name"].is_string(), "{path}: author name");
            assert!(
                r["author"].get("email").is_none(),
                "{path}: no author email"
            );
        } else if path.contains("/api-keys") {
            assert_eq!(r["user"]["id"], r["user_id"], "{path}: key user");
            assert!(r["user"]["email"].is_string(), "{path}: key user email");
        }
    }
    if path.ends_with("roadmaps?limit=100") {
        assert!(
            rows.iter().any(|r| r["id"] == json!(ours)),
            "{path}: ours on the page"
        );
    }
}
