//! The batch endpoint's answer is bounded as a whole, not only item by item.

use serde_json::{Value, json};

use crate::api::{Auth, Slot, call, register, req, shared, slot};

static SERVER: Slot = slot();

/// The most answer bytes one batch keeps (the example's `MAX_BATCH_BODY`).
const BUDGET: usize = 4 * 1024 * 1024;

/// Twenty lists of ten roadmaps of 50 KB graphs are ~10 MB of answers: the batch keeps the first
/// ones whole, replaces the bodies of those past 4 MiB by a `BATCH-RESPONSE-507` problem (their
/// status kept), and its own answer stays within the budget.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_answer_stays_within_its_budget() {
    let server = shared(&SERVER);
    let user = register(&server, "budget").await;
    let label = "x".repeat(49_000);
    for i in 0..10 {
        let graph = json!({"nodes": [{"id": "a", "label": label}], "edges": []});
        let made = call(
            &server,
            "POST",
            "/api/v2/roadmaps",
            &user.access,
            &json!({"title": format!("big {i}"), "graph": graph}),
        )
        .await;
        assert_eq!(made.status, 201, "{}", made.body);
    }
    let items = vec![json!({"method": "GET", "path": "/api/v2/roadmaps?limit=100"}); 20];
    let res = req(&server, "POST", "/api/v2/batch", Auth::Bearer(&user.access))
        .json(&json!({"requests": items}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let bytes = res.bytes().await.unwrap();
    assert!(
        bytes.len() <= BUDGET + 64 * 1024,
        "{} bytes of batch answer",
        bytes.len()
    );
    let answer: Value = serde_json::from_slice(&bytes).unwrap();
    let results = answer["data"].as_array().unwrap();
    assert_eq!(results.len(), 20, "every item ran");
    assert!(results.iter().all(|r| r["status"] == 200));
    assert_eq!(
        results[0]["body"]["data"].as_array().map(Vec::len),
        Some(10)
    );
    let left_out = &results[19]["body"];
    assert_eq!(left_out["code"], "BATCH-RESPONSE-507", "{left_out}");
    let detail = left_out["detail"].as_str().unwrap_or_default();
    assert!(detail.contains("left out"), "{left_out}");
}

/// A batch can do no more than its items one by one: the per-IP limit counts the envelope and
/// every item, so a burst of 6 lets the envelope and 5 items through and refuses the rest with
/// their own 429 — and every item saw the caller's address (one limit, not one per item).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_item_of_a_batch_counts_against_the_rate_limit() {
    let server = crate::example::Server::start_with(&[(
        "PROTOTHRIVE_RATE_LIMITS",
        "ip=6/60s:6,register=1000/900s:1000",
    )]);
    let user = register(&server, "limited").await;
    let items = vec![json!({"method": "GET", "path": "/api/v1/health"}); 8];
    let res = req(&server, "POST", "/api/v1/batch", Auth::Bearer(&user.access))
        .json(&json!({"requests": items, "sequential": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let answer: Value = res.json().await.unwrap();
    let statuses: Vec<u64> = answer["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["status"].as_u64().unwrap())
        .collect();
    // register (1) + envelope (1) + 4 items = the burst of 6; in order, since sequential.
    assert_eq!(
        statuses,
        [200, 200, 200, 200, 429, 429, 429, 429],
        "{answer}"
    );
    assert_eq!(answer["data"][4]["body"]["code"], "RATE-429");
}

/// Items are requests to the same server as the batch: the read cache answers them as it answers
/// the same reads sent alone (no statement), and stores what they read for later requests.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_items_are_served_by_the_read_cache() {
    let server = shared(&SERVER);
    let user = register(&server, "cached-items").await;
    let items = json!({"requests": [
        {"method": "GET", "path": "/api/v1/snippets?limit=3&category=ui"},
        {"method": "GET", "path": "/api/v1/snippets?limit=3&category=ui"},
    ]});
    let batch = || async {
        let res = req(&server, "POST", "/api/v1/batch", Auth::Bearer(&user.access))
            .json(&items)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        let answer: Value = res.json().await.unwrap();
        answer["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| (r["status"].clone(), r["headers"]["x-query-count"].clone()))
            .collect::<Vec<_>>()
    };
    // Sequential items would show the second reading the first's entry; concurrent ones may
    // both read, so the first batch only fills the cache.
    let first = batch().await;
    assert!(first.iter().all(|(s, _)| s == 200), "{first:?}");
    let second = batch().await;
    assert_eq!(second, vec![(json!(200), json!("0")); 2], "cache hits");
    let alone = req(
        &server,
        "GET",
        "/api/v1/snippets?limit=3&category=ui",
        Auth::Bearer(&user.access),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(
        alone.headers()["x-query-count"],
        "0",
        "the items' entry serves it"
    );
}
