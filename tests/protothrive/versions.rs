//! API versions: which version serves a request (path, then `API-Version`, then the vendor media
//! type, else v1), unknown versions, and what differs between v1 and v2 (the graph's shape,
//! offset or cursor paging, deprecation headers).

use std::collections::HashSet;

use serde_json::{Value, json};

use crate::api::{
    Auth, Slot, assert_common_headers, assert_envelope, assert_problem, assert_rfc3339,
    assert_version_headers, call, get, graph, register, req, shared, slot, text,
};
use crate::support::send;

static SERVER: Slot = slot();

/// Request headers of a table row.
type Headers = &'static [(&'static str, &'static str)];

/// Path prefix first, then `API-Version`, then `Accept`, else v1: the answer says which served it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_serving_version_is_negotiated_in_the_documented_order() {
    let server = shared(&SERVER);
    let user = register(&server, "negotiate").await;
    const VND2: &str = "application/vnd.protothrive.v2+json";
    let rows: [(&str, Headers, &str); 12] = [
        ("/api/v1/roadmaps", &[], "v1"),
        ("/api/v2/roadmaps", &[], "v2"),
        ("/api/roadmaps", &[], "v1"),
        ("/api/roadmaps", &[("api-version", "2")], "v2"),
        ("/api/roadmaps", &[("api-version", "v2")], "v2"),
        ("/api/roadmaps", &[("api-version", "1")], "v1"),
        ("/api/roadmaps", &[("accept", VND2)], "v2"),
        (
            "/api/roadmaps",
            &[("accept", "application/json; version=2")],
            "v2",
        ),
        ("/api/roadmaps", &[("accept", "application/json")], "v1"),
        // The header outranks the media type; the path outranks both.
        (
            "/api/roadmaps",
            &[("api-version", "1"), ("accept", VND2)],
            "v1",
        ),
        (
            "/api/v1/roadmaps",
            &[("api-version", "2"), ("accept", VND2)],
            "v1",
        ),
        ("/api/v2/roadmaps", &[("api-version", "1")], "v2"),
    ];
    for (path, headers, version) in rows {
        let what = format!("{path} {headers:?}");
        let mut r = req(&server, "GET", path, Auth::Bearer(&user.access));
        for (k, v) in headers {
            r = r.header(*k, *v);
        }
        let a = send(r).await;
        assert_eq!(a.status, 200, "{what}: {}", a.body);
        assert_envelope(&a, version, &what);
        assert_version_headers(&a, version, &what);
        // The representation follows the version too.
        let paging = if version == "v1" {
            "offset"
        } else {
            "next_cursor"
        };
        assert!(
            a.body["meta"].get(paging).is_some(),
            "{what}: meta {}",
            a.body["meta"]
        );
        if !path.starts_with("/api/v") {
            let vary = a.header("vary").to_ascii_lowercase();
            assert!(
                vary.contains("api-version") && vary.contains("accept"),
                "{what}: Vary {vary:?}"
            );
        }
    }
}

/// An explicit version the API does not serve is a 404 listing the supported ones, never a silent
/// fallback to some other version.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_versions_are_404_with_the_supported_list() {
    let server = shared(&SERVER);
    let rows: [(&str, Headers); 9] = [
        ("/api/v3/roadmaps", &[]),
        ("/api/v0/health", &[]),
        ("/api/v99999999999/health", &[]),
        ("/api/v01/health", &[]),
        ("/api/health", &[("api-version", "7")]),
        ("/api/health", &[("api-version", "latest")]),
        ("/api/health", &[("api-version", "' OR '1'='1")]),
        (
            "/api/health",
            &[("accept", "application/vnd.protothrive.v9+json")],
        ),
        ("/api/health", &[("accept", "application/json;version=abc")]),
    ];
    for (path, headers) in rows {
        let what = format!("{path} {headers:?}");
        let mut r = req(&server, "GET", path, Auth::None);
        for (k, v) in headers {
            r = r.header(*k, *v);
        }
        let a = send(r).await;
        assert_problem(&a, 404, "ROUTE-404", &what);
        assert_common_headers(&a, &what);
        assert_eq!(a.body["supported_versions"], json!(["v1", "v2"]), "{what}");
    }
}

/// v1 sends and returns the graph as a JSON string `json_graph`, v2 as an object `graph`; each
/// refuses the other's field by name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v1_speaks_json_graph_strings_and_v2_graph_objects() {
    let server = shared(&SERVER);
    let user = register(&server, "graphs").await;
    let t = &user.access;
    let g = graph();
    let v1 = call(
        &server,
        "POST",
        "/api/v1/roadmaps",
        t,
        &json!({"title": "one", "json_graph": g.to_string()}),
    )
    .await;
    assert_eq!(v1.status, 201, "{}", v1.body);
    assert_version_headers(&v1, "v1", "v1 create");
    let id = text(&v1.body["data"]["id"]);
    assert_eq!(v1.header("location"), format!("/api/v1/roadmaps/{id}"));
    let v2 = call(
        &server,
        "POST",
        "/api/v2/roadmaps",
        t,
        &json!({"title": "two", "graph": g}),
    )
    .await;
    assert_eq!(v2.status, 201, "{}", v2.body);
    let id2 = text(&v2.body["data"]["id"]);
    assert_eq!(v2.header("location"), format!("/api/v2/roadmaps/{id2}"));

    // Either roadmap reads in either version's shape.
    for rid in [&id, &id2] {
        let one = get(&server, &format!("/api/v1/roadmaps/{rid}"), t).await;
        let s = one.body["data"]["json_graph"]
            .as_str()
            .expect("v1: json_graph is a string");
        assert_eq!(serde_json::from_str::<Value>(s).expect("a JSON graph"), g);
        assert!(
            one.body["data"].get("graph").is_none(),
            "v1 has no graph member"
        );
        let two = get(&server, &format!("/api/v2/roadmaps/{rid}"), t).await;
        assert_eq!(two.body["data"]["graph"], g);
        assert!(
            two.body["data"].get("json_graph").is_none(),
            "v2 has no json_graph member"
        );
        for a in [&one, &two] {
            for at in ["created_at", "updated_at"] {
                assert_rfc3339(&a.body["data"][at], at);
            }
        }
    }
    let list1 = get(&server, "/api/v1/roadmaps", t).await;
    assert!(
        list1.body["data"]
            .as_array()
            .expect("a list")
            .iter()
            .all(|r| r["json_graph"].is_string())
    );
    let list2 = get(&server, "/api/v2/roadmaps", t).await;
    assert!(
        list2.body["data"]
            .as_array()
            .expect("a list")
            .iter()
            .all(|r| r["graph"].is_object())
    );

    // Updates too: PATCH in v2 takes an object, in v1 a string.
    let g2 = json!({"nodes": [{"id": "x"}], "edges": []});
    let p = call(
        &server,
        "PATCH",
        &format!("/api/v2/roadmaps/{id}"),
        t,
        &json!({"graph": g2}),
    )
    .await;
    assert_eq!(
        (p.status, &p.body["data"]["graph"]),
        (200, &g2),
        "{}",
        p.body
    );
    let p = call(
        &server,
        "PATCH",
        &format!("/api/v1/roadmaps/{id}"),
        t,
        &json!({"json_graph": g.to_string()}),
    )
    .await;
    assert_eq!(p.status, 200, "{}", p.body);

    // The other version's field is refused, named.
    for (path, body, field) in [
        (
            "/api/v1/roadmaps",
            json!({"title": "x", "graph": g}),
            "graph",
        ),
        (
            "/api/v2/roadmaps",
            json!({"title": "x", "json_graph": g.to_string()}),
            "json_graph",
        ),
        (
            "/api/v1/roadmaps",
            json!({"title": "x", "json_graph": g}),
            "json_graph",
        ),
        (
            "/api/v2/roadmaps",
            json!({"title": "x", "graph": g.to_string()}),
            "graph",
        ),
    ] {
        let a = call(&server, "POST", path, t, &body).await;
        assert_problem(&a, 422, "VAL-422", path);
        let fields: Vec<&str> = a.body["errors"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|e| e["field"].as_str())
            .collect();
        assert!(
            fields.contains(&field),
            "{path} {body}: errors name {fields:?}"
        );
    }
}

/// v1 pages by `limit`/`offset`, v2 by an opaque cursor; both walk the same rows in the same
/// order, `meta.total` counts them all, and each version refuses the other's parameter.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v1_pages_by_offset_and_v2_by_cursor_over_the_same_rows() {
    let server = shared(&SERVER);
    let user = register(&server, "paging").await;
    let t = &user.access;
    let mut created = HashSet::new();
    for i in 0..5 {
        created.insert(crate::api::roadmap(&server, t, &format!("page {i}"), "private").await);
    }
    let ids = |a: &crate::support::Answer| -> Vec<String> {
        a.body["data"]
            .as_array()
            .expect("a list")
            .iter()
            .map(|r| text(&r["id"]))
            .collect()
    };

    // Without parameters: the first 20.
    let v1 = get(&server, "/api/v1/roadmaps", t).await;
    assert_eq!(
        v1.body["meta"],
        json!({"total": 5, "limit": 20, "offset": 0})
    );
    let v2 = get(&server, "/api/v2/roadmaps", t).await;
    assert_eq!(
        v2.body["meta"],
        json!({"total": 5, "limit": 20, "next_cursor": null})
    );

    let mut by_offset = Vec::new();
    for offset in [0, 2, 4, 6] {
        let a = get(
            &server,
            &format!("/api/v1/roadmaps?limit=2&offset={offset}"),
            t,
        )
        .await;
        assert_eq!(a.status, 200, "{}", a.body);
        assert_eq!(
            a.body["meta"],
            json!({"total": 5, "limit": 2, "offset": offset})
        );
        by_offset.extend(ids(&a));
    }

    let mut by_cursor = Vec::new();
    let mut path = "/api/v2/roadmaps?limit=2".to_owned();
    let mut pages = 0;
    loop {
        let a = get(&server, &path, t).await;
        assert_eq!(a.status, 200, "{path}: {}", a.body);
        assert_eq!(
            (
                a.body["meta"]["total"].as_i64(),
                a.body["meta"]["limit"].as_i64()
            ),
            (Some(5), Some(2))
        );
        assert!(
            a.body["meta"].get("offset").is_none(),
            "v2 meta has no offset"
        );
        by_cursor.extend(ids(&a));
        pages += 1;
        match a.body["meta"]["next_cursor"].as_str() {
            Some(c) => path = format!("/api/v2/roadmaps?limit=2&cursor={c}"),
            None => break,
        }
        assert!(pages < 5, "the cursor does not come to an end");
    }
    assert_eq!(pages, 3);
    assert_eq!(by_offset, by_cursor, "both versions walk the same order");
    assert_eq!(by_cursor.iter().cloned().collect::<HashSet<_>>(), created);

    // Snippets page the same way.
    let s1 = get(&server, "/api/v1/snippets?limit=1&offset=1", t).await;
    assert_eq!(
        (
            s1.body["meta"]["limit"].as_i64(),
            s1.body["meta"]["offset"].as_i64()
        ),
        (Some(1), Some(1))
    );
    let s2 = get(&server, "/api/v2/snippets?limit=1", t).await;
    let c = text(&s2.body["meta"]["next_cursor"]);
    let s2b = get(&server, &format!("/api/v2/snippets?limit=1&cursor={c}"), t).await;
    assert_eq!(
        s2b.body["data"][0]["id"], s1.body["data"][0]["id"],
        "second snippet either way"
    );

    for (path, field) in [
        ("/api/v1/roadmaps?cursor=abc", "cursor"),
        ("/api/v2/roadmaps?offset=2", "offset"),
        ("/api/v1/snippets?cursor=abc", "cursor"),
        ("/api/v2/snippets?offset=0", "offset"),
    ] {
        let a = get(&server, path, t).await;
        assert_problem(&a, 422, "VAL-422", path);
        assert_eq!(a.body["errors"][0]["field"], field, "{path}");
    }
}
