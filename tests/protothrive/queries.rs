//! No N+1: the roadmap list (each row with its owner, log count and latest insight) and the
//! dashboard cost a fixed number of SQL statements whatever the page size — read from the
//! `X-Query-Count` header the app sets on every answer.

use serde_json::json;

use crate::api::{Slot, call, demo_tokens, get, query_count, roadmap, shared, slot, text};

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
        assert!(
            counts.iter().all(|&n| (1..=MAX_STATEMENTS).contains(&n)),
            "{version}: statements per page size 1, 20, 100: {counts:?}"
        );
        assert!(
            counts.windows(2).all(|w| w[0] == w[1]),
            "{version}: the cost grows with the page: {counts:?}"
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
    assert_eq!(
        query_count(&after, "dashboard"),
        n_before,
        "the dashboard's cost grew with the data"
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

/// Every list and detail view, at page sizes 1, 20 and 100, costs at most 2 statements as the
/// database wrapper counts them (the table is printed for the record).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_list_and_detail_view_costs_at_most_two_statements() {
    let server = shared(&SERVER);
    let [_, eng, admin] = demo_tokens(&server).await;
    let id = roadmap(&server, &eng, "statements", "private").await;
    let snippets = get(&server, "/api/v1/snippets?limit=1", &eng).await;
    let snippet = text(&snippets.body["data"][0]["id"]);
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
            let a = get(&server, &path, who).await;
            assert_eq!(a.status, 200, "{path}: {}", a.body);
            table.push((path.clone(), query_count(&a, &path)));
        }
    }
    for (who, path) in [
        (&eng, format!("/api/v2/roadmaps/{id}")),
        (&eng, format!("/api/v1/snippets/{snippet}")),
        (&admin, "/api/v1/analytics/dashboard".to_owned()),
        (&eng, "/api/v1/auth/me".to_owned()),
    ] {
        let a = get(&server, &path, who).await;
        assert_eq!(a.status, 200, "{path}: {}", a.body);
        table.push((path.clone(), query_count(&a, &path)));
    }
    for (path, n) in &table {
        println!("statements {n}  {path}");
        assert!(*n <= MAX_STATEMENTS, "{path}: {n} statements");
    }
}
