//! The OpenAPI documents (`/api/v1/docs`, `/api/v2/docs`) against the app that serves them: for
//! every operation, the error cases a client can provoke without luck — no credentials, a role
//! too low, an id that does not exist, a malformed, mistyped, too large or invalid body, an
//! invalid or empty query value, a malformed query — are sent, and each answer's status must be
//! one the operation documents, with a problem body.

use serde_json::Value;

use crate::api::{Auth, Slot, demo_tokens, req, shared, slot};
use crate::support::{Answer, send};

static SERVER: Slot = slot();

/// One request of the error cases, and what it is for the failure message.
struct Case {
    what: &'static str,
    path: String,
    auth: Auth<'static>,
    content_type: Option<&'static str>,
    body: Option<Vec<u8>>,
}

/// `/roadmaps/{id}` with every path parameter a UUID no row has.
fn concrete(path: &str) -> String {
    path.split('/')
        .map(|seg| {
            if seg.starts_with('{') {
                "00000000-0000-4000-8000-00000000dead"
            } else {
                seg
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

fn leak(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_status_an_operation_answers_is_documented() {
    let server = shared(&SERVER);
    let [vibe, _, admin] = demo_tokens(&*server).await;
    let (vibe, admin) = (leak(vibe), leak(admin));
    let mut checked = 0;
    let mut undocumented = Vec::new();
    for v in ["v1", "v2"] {
        let doc = send(req(&*server, "GET", &format!("/api/{v}/docs"), Auth::None)).await;
        assert_eq!(doc.status, 200, "{}", doc.body);
        let base = doc.body["servers"][0]["url"].as_str().unwrap().to_owned();
        assert_eq!(base, format!("/api/{v}"));
        for (path, item) in doc.body["paths"].as_object().unwrap() {
            let prefix = if item["servers"].is_array() {
                ""
            } else {
                base.as_str()
            };
            for (method, op) in item.as_object().unwrap() {
                if method == "servers" {
                    continue;
                }
                let documented: Vec<u16> = op["responses"]
                    .as_object()
                    .unwrap()
                    .keys()
                    .map(|k| k.parse().unwrap())
                    .collect();
                let url = format!("{prefix}{}", concrete(path));
                let secured = !op["security"].as_array().unwrap().is_empty();
                let has_body = op["requestBody"].is_object();
                let params = op["parameters"].as_array().cloned().unwrap_or_default();
                let queries: Vec<&str> = params
                    .iter()
                    .filter(|p| p["in"] == "query")
                    .filter_map(|p| p["name"].as_str())
                    .collect();
                let json = Some("application/json");
                let mut cases = vec![Case {
                    what: "as an admin, an unknown id",
                    path: url.clone(),
                    auth: Auth::Bearer(admin),
                    content_type: has_body.then_some("application/json"),
                    body: has_body.then(|| b"{}".to_vec()),
                }];
                if secured {
                    cases.push(Case {
                        what: "no credentials",
                        path: url.clone(),
                        auth: Auth::None,
                        content_type: None,
                        body: None,
                    });
                    cases.push(Case {
                        what: "a token that is not one",
                        path: url.clone(),
                        auth: Auth::Bearer("not-a-token"),
                        content_type: None,
                        body: None,
                    });
                }
                if op["x-required-role"].is_string() || op["x-required-scope"].is_string() {
                    cases.push(Case {
                        what: "as the lowest role",
                        path: url.clone(),
                        auth: Auth::Bearer(vibe),
                        content_type: has_body.then_some("application/json"),
                        body: has_body.then(|| b"{}".to_vec()),
                    });
                }
                if has_body {
                    for (what, content_type, body) in [
                        ("malformed JSON", json, b"{\"a\":".to_vec()),
                        ("not JSON", Some("text/plain"), b"hello".to_vec()),
                        ("a JSON array", json, b"[1,2]".to_vec()),
                        ("an unknown field", json, b"{\"no_such_field\":1}".to_vec()),
                        ("too large", json, vec![b' '; 70 * 1024]),
                    ] {
                        cases.push(Case {
                            what,
                            path: url.clone(),
                            auth: Auth::Bearer(admin),
                            content_type,
                            body: Some(body),
                        });
                    }
                }
                for (what, query) in [
                    ("an empty query value", "{}="),
                    ("an out-of-range query value", "{}=1000001"),
                    ("a query value of the wrong type", "{}=%00x"),
                ] {
                    for name in &queries {
                        cases.push(Case {
                            what,
                            path: format!("{url}?{}", query.replace("{}", name)),
                            auth: Auth::Bearer(admin),
                            content_type: None,
                            body: None,
                        });
                    }
                }
                if !queries.is_empty() {
                    cases.push(Case {
                        what: "a malformed query string",
                        path: format!("{url}?limit=%zz&&=="),
                        auth: Auth::Bearer(admin),
                        content_type: None,
                        body: None,
                    });
                }
                for case in cases {
                    // Logging the admin out would end the test's own session.
                    if path.ends_with("/logout") && case.body.as_deref() == Some(b"{}") {
                        continue;
                    }
                    let mut r = req(
                        &*server,
                        &method.to_ascii_uppercase(),
                        &case.path,
                        case.auth,
                    );
                    if let Some(ct) = case.content_type {
                        r = r.header("content-type", ct);
                    }
                    if let Some(body) = case.body {
                        r = r.body(body);
                    }
                    let a: Answer = send(r).await;
                    checked += 1;
                    if !documented.contains(&a.status) {
                        undocumented.push(format!(
                            "{v} {} {path} ({}): {} {}",
                            method.to_ascii_uppercase(),
                            case.what,
                            a.status,
                            a.body
                        ));
                    } else if a.status >= 400 {
                        assert_eq!(
                            a.header("content-type"),
                            "application/problem+json",
                            "{v} {method} {path} ({}): {}",
                            case.what,
                            a.status
                        );
                        assert_eq!(a.body["status"], Value::from(a.status), "{}", a.body);
                    }
                }
            }
        }
    }
    assert!(checked > 200, "only {checked} cases");
    assert!(
        undocumented.is_empty(),
        "undocumented statuses:\n{}",
        undocumented.join("\n")
    );
}
