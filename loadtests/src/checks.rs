//! The cross-instance checks of the multi-instance run (`--check-instances A,B`, see
//! [`crate::multi`]): straight to each of two API instances, so every request's instance is known.

use reqwest::{Client, Method, StatusCode};
use serde_json::json;

use crate::multi::{call, client};

/// A fresh account on `base`: (email, password, access token).
async fn register(client: &Client, base: &str) -> Result<(String, String, String), String> {
    let email = format!(
        "mi-{}@loadtest.protothrive.dev",
        uuid::Uuid::new_v4().simple()
    );
    let password = format!("Mi-{}-9aZ!", uuid::Uuid::new_v4().simple());
    let body = json!({"email": email, "password": password, "name": "Multi Instance"});
    let url = format!("{base}/api/v1/auth/register");
    let (status, body) = call(client, Method::POST, &url, None, Some(&body)).await?;
    let access = body["data"]["tokens"]["access_token"]
        .as_str()
        .ok_or_else(|| format!("register on {base}: {status} {body}"))?;
    Ok((email, password, access.to_owned()))
}

/// The outcome of one cross-instance check.
#[derive(Debug)]
pub(crate) struct Check {
    pub(crate) name: &'static str,
    pub(crate) passed: bool,
    pub(crate) detail: String,
}

/// A user alternating between the instances gets exactly `quota` of `3 × quota` requests, and
/// both instances refuse some (so both consulted the shared count).
async fn quota_check(client: &Client, urls: [&str; 2], quota: u32) -> Result<Check, String> {
    let (_, _, token) = register(client, urls[0]).await?;
    let mut ok = [0u32; 2];
    let mut refused = [0u32; 2];
    let mut other = 0;
    for i in 0..quota * 3 {
        let at = (i % 2) as usize;
        let url = format!("{}/api/v1/auth/me", urls[at]);
        match call(client, Method::GET, &url, Some(&token), None).await?.0 {
            StatusCode::OK => ok[at] += 1,
            StatusCode::TOO_MANY_REQUESTS => refused[at] += 1,
            _ => other += 1,
        }
    }
    let allowed = ok[0] + ok[1];
    Ok(Check {
        name: "per-user quota across instances",
        passed: allowed == quota && other == 0 && refused.iter().all(|r| *r > 0),
        detail: format!(
            "{allowed} of {} requests allowed for a quota of {quota} (A {} + B {}); 429: A {}, B {}; other {other}",
            quota * 3,
            ok[0],
            ok[1],
            refused[0],
            refused[1]
        ),
    })
}

/// `rounds` times: both instances read a roadmap (so both cache it), one updates it, and the
/// other's next read (the item and the list) must show the update.
async fn cache_check(client: &Client, urls: [&str; 2], rounds: usize) -> Result<Check, String> {
    let (mut stale, mut hits) = (0, 0);
    for round in 0..rounds {
        let (w, r) = (urls[round % 2], urls[(round + 1) % 2]);
        let (_, _, token) = register(client, r).await?;
        let graph = json!({"nodes": [{"id": "a"}], "edges": []}).to_string();
        let body = json!({"title": "before", "json_graph": graph});
        let url = format!("{w}/api/v1/roadmaps");
        let (status, created) = call(client, Method::POST, &url, Some(&token), Some(&body)).await?;
        let id = created["data"]["id"]
            .as_str()
            .ok_or_else(|| format!("create on {w}: {status} {created}"))?
            .to_owned();
        for base in [w, r, w, r] {
            let response = client
                .get(format!("{base}/api/v1/roadmaps/{id}"))
                .bearer_auth(&token)
                .send()
                .await
                .map_err(|e| e.to_string())?;
            hits += u32::from(
                response
                    .headers()
                    .get_all("cache-status")
                    .iter()
                    .filter_map(|v| v.to_str().ok())
                    .any(crate::observe::cache_status_is_hit),
            );
        }
        let title = format!("after {round}");
        let url = format!("{w}/api/v1/roadmaps/{id}");
        let body = json!({ "title": title });
        let (status, _) = call(client, Method::PATCH, &url, Some(&token), Some(&body)).await?;
        if !status.is_success() {
            return Err(format!("update on {w}: {status}"));
        }
        let (_, item) = call(
            client,
            Method::GET,
            &format!("{r}/api/v1/roadmaps/{id}"),
            Some(&token),
            None,
        )
        .await?;
        stale += u32::from(item["data"]["title"] != title.as_str());
        let (_, list) = call(
            client,
            Method::GET,
            &format!("{r}/api/v1/roadmaps?limit=20"),
            Some(&token),
            None,
        )
        .await?;
        let listed = list["data"]
            .as_array()
            .or_else(|| list["data"]["items"].as_array())
            .is_some_and(|items| {
                items
                    .iter()
                    .any(|i| i["id"] == id.as_str() && i["title"] == title.as_str())
            });
        stale += u32::from(!listed);
    }
    Ok(Check {
        name: "a write on one instance is never stale on the other",
        passed: stale == 0,
        detail: format!(
            "{rounds} updates, each read at once on the other instance (item and list): {stale} stale; cache hits while warming: {hits}"
        ),
    })
}

/// `rounds` times: a session used on both instances, logged out on one; the other refuses its
/// access token from the next request on.
async fn logout_check(client: &Client, urls: [&str; 2], rounds: usize) -> Result<Check, String> {
    let (email, password, _) = register(client, urls[0]).await?;
    let mut honoured = 0;
    for round in 0..rounds {
        let (a, b) = (urls[round % 2], urls[(round + 1) % 2]);
        let body = json!({"email": email, "password": password});
        let (status, login) = call(
            client,
            Method::POST,
            &format!("{a}/api/v1/auth/login"),
            None,
            Some(&body),
        )
        .await?;
        let token = login["data"]["tokens"]["access_token"]
            .as_str()
            .ok_or_else(|| format!("login on {a}: {status}"))?
            .to_owned();
        let me = |base: &str| format!("{base}/api/v1/auth/me");
        let before = call(client, Method::GET, &me(b), Some(&token), None)
            .await?
            .0;
        let out = call(
            client,
            Method::POST,
            &format!("{a}/api/v1/auth/logout"),
            Some(&token),
            None,
        )
        .await?
        .0;
        let after_b = call(client, Method::GET, &me(b), Some(&token), None)
            .await?
            .0;
        let after_a = call(client, Method::GET, &me(a), Some(&token), None)
            .await?
            .0;
        honoured += u32::from(
            before == StatusCode::OK
                && out.is_success()
                && after_b == StatusCode::UNAUTHORIZED
                && after_a == StatusCode::UNAUTHORIZED,
        );
    }
    Ok(Check {
        name: "a logout on one instance is honoured by the other",
        passed: honoured as usize == rounds,
        detail: format!("{honoured} of {rounds} logouts refused at once by both instances"),
    })
}

/// Runs the three checks against `urls` (two instances) and prints them; whether all passed.
pub(crate) async fn checks(urls: &[String], quota: u32) -> Result<bool, String> {
    let [a, b] = urls else {
        return Err("--check-instances takes two URLs: A,B".to_owned());
    };
    let urls = [a.trim_end_matches('/'), b.trim_end_matches('/')];
    let client = client()?;
    let started = crate::observe::now();
    let all = [
        quota_check(&client, urls, quota).await?,
        cache_check(&client, urls, 10).await?,
        logout_check(&client, urls, 6).await?,
    ];
    println!("cross-instance checks (A = {}, B = {}):", urls[0], urls[1]);
    for c in &all {
        println!(
            "  {} {}: {}",
            if c.passed { "PASS" } else { "FAIL" },
            c.name,
            c.detail
        );
    }
    println!("  ({:.1} s)", started.elapsed().as_secs_f64());
    Ok(all.iter().all(|c| c.passed))
}
