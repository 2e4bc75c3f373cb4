//! The original mix as four goose scenarios, weighted 3 : 4 : 2 : 1 — auth 30%, roadmaps 40%,
//! snippets 20%, health 10% of users, and so of requests, as every transaction sends exactly one
//! request and every scenario waits alike (see [`crate::profile`]). With `--agent-faults` a fifth,
//! agent runs on the user's roadmap, weighs 2 (1 in 6 users).
//!
//! Every user registers its own account when it starts (a fresh e-mail, a strong password), so
//! the run has as many distinct accounts as users. Argon2 makes a password check cost ~20 ms of
//! CPU by design, so the auth scenario is mostly what clients do between logins — refresh-token
//! rotation and `/auth/me` — with one real login in twenty; `POST /auth/login` and
//! `POST /auth/register` are request names of their own, so their latency is reported apart
//! rather than averaged into the cheap calls.

use goose::goose::GooseResponse;
use goose::prelude::*;
use rand::seq::IndexedRandom as _;
use serde_json::{Value, json};

use crate::observe;
use crate::profile;

// Request names, as goose files them after the method (`POST /auth/login`): paths with `{id}`
// where the id varies.
const REGISTER: &str = "/auth/register";
const LOGIN: &str = "/auth/login";
const REFRESH: &str = "/auth/refresh";
const ME: &str = "/auth/me";
const ROADMAPS_LIST: &str = "/roadmaps";
const ROADMAPS_CREATE: &str = "/roadmaps";
const ROADMAPS_READ: &str = "/roadmaps/{id}";
const ROADMAPS_UPDATE: &str = "/roadmaps/{id}";
const ROADMAPS_SCORE: &str = "/roadmaps/{id}/thrive-score";
const SNIPPETS_LIST: &str = "/snippets";
const SNIPPETS_READ: &str = "/snippets/{id}";
const HEALTH: &str = "/health";
const AGENT_RUN: &str = "/agent/run";

/// The requests whose cost is argon2's by design, as goose keys them.
pub(crate) const ARGON2: [&str; 2] = ["POST /auth/register", "POST /auth/login"];

/// The version prefix every path gets.
const PREFIX: &str = "/api/v1";

/// The roadmaps a user keeps cycling over (the newest it created).
const KEEP_ROADMAPS: usize = 10;

/// What a user knows about itself.
#[derive(Debug, Clone, Default)]
struct Session {
    email: String,
    password: String,
    access: String,
    refresh: String,
    roadmaps: Vec<String>,
    snippets: Vec<String>,
}

/// The four scenarios, each with its weight and transactions, and agent runs when `agent`.
pub(crate) fn all(agent: bool) -> Result<Vec<Scenario>, GooseError> {
    let (min, max) = profile::wait_range();
    let scenario = |name: &str, weight: usize| -> Result<Scenario, GooseError> {
        Ok(scenario!(name)
            .set_weight(weight)?
            .set_wait_time(min, max)?
            .register_transaction(transaction!(register).set_name("register").set_on_start()))
    };
    let mut all = vec![
        scenario("Auth", 3)?
            .register_transaction(transaction!(me).set_name("me").set_weight(10)?)
            .register_transaction(transaction!(refresh).set_name("refresh").set_weight(9)?)
            .register_transaction(transaction!(login).set_name("login").set_weight(1)?),
        scenario("Roadmaps", 4)?
            .register_transaction(
                transaction!(create_roadmap)
                    .set_name("first roadmap")
                    .set_on_start(),
            )
            .register_transaction(transaction!(list_roadmaps).set_name("list").set_weight(3)?)
            .register_transaction(transaction!(read_roadmap).set_name("read").set_weight(3)?)
            .register_transaction(
                transaction!(update_roadmap)
                    .set_name("update")
                    .set_weight(2)?,
            )
            .register_transaction(
                transaction!(create_roadmap)
                    .set_name("create")
                    .set_weight(1)?,
            )
            .register_transaction(
                transaction!(score_roadmap)
                    .set_name("score")
                    .set_weight(1)?,
            ),
        scenario("Snippets", 2)?
            .register_transaction(transaction!(list_snippets).set_name("list").set_weight(1)?)
            .register_transaction(transaction!(read_snippet).set_name("read").set_weight(1)?),
        scenario("Health", 1)?.register_transaction(transaction!(health).set_name("health")),
    ];
    if agent {
        all.push(
            scenario("Agent", 2)?
                .register_transaction(
                    transaction!(create_roadmap)
                        .set_name("first roadmap")
                        .set_on_start(),
                )
                .register_transaction(transaction!(run_agent).set_name("run")),
        );
    }
    Ok(all)
}

/// Sends one request filed as `METHOD name`, with the user's bearer token when `auth`, and records what goose
/// does not (headers, per-phase timing).
async fn send(
    user: &mut GooseUser,
    method: GooseMethod,
    path: &str,
    name: &str,
    body: Option<&Value>,
    auth: bool,
) -> Result<GooseResponse, Box<TransactionError>> {
    let key = format!("{method} {name}");
    let url = format!("{PREFIX}{path}");
    let mut builder = user.get_request_builder(&method, &url)?;
    if auth && let Some(session) = user.get_session_data::<Session>() {
        builder = builder.bearer_auth(&session.access);
    }
    if let Some(body) = body {
        builder = builder
            .header("content-type", "application/json")
            .body(body.to_string());
    }
    let request = GooseRequest::builder()
        .method(method)
        .path(url.as_str())
        .name(name)
        .set_request_builder(builder)
        .build();
    let response = user.request(request).await?;
    observe::record(&key, &response);
    Ok(response)
}

/// The `data` member of a successful JSON answer. A 2xx answer without one is marked failed.
async fn data(
    user: &mut GooseUser,
    mut goose: GooseResponse,
) -> Result<Option<Value>, Box<TransactionError>> {
    if !goose.request.success {
        return Ok(None);
    }
    let body = match goose.response {
        Ok(response) => response.text().await.ok(),
        Err(_) => None,
    };
    match body
        .and_then(|b| serde_json::from_str::<Value>(&b).ok())
        .map(|mut v| v["data"].take())
    {
        Some(data) if !data.is_null() => Ok(Some(data)),
        _ => {
            user.set_failure(
                "2xx without a JSON `data` member",
                &mut goose.request,
                None,
                None,
            )?;
            Ok(None)
        }
    }
}

fn string(value: &Value) -> Option<String> {
    value.as_str().map(str::to_owned)
}

/// The items of a list answer: `data` itself or `data.items`.
fn items(data: &Value) -> &[Value] {
    data.as_array()
        .or_else(|| data["items"].as_array())
        .map_or(&[], Vec::as_slice)
}

fn session(user: &GooseUser) -> Session {
    user.get_session_data::<Session>()
        .cloned()
        .unwrap_or_default()
}

fn store_tokens(user: &mut GooseUser, tokens: &Value) {
    if let (Some(access), Some(refresh)) = (
        string(&tokens["access_token"]),
        string(&tokens["refresh_token"]),
    ) {
        let mut s = session(user);
        s.access = access;
        s.refresh = refresh;
        user.set_session_data(s);
    }
}

/// A password the API accepts: 12+ characters with upper, lower, digit and symbol.
fn strong_password() -> String {
    format!("Lt-{}-9aZ!", uuid::Uuid::new_v4().simple())
}

/// The user's own account.
async fn register(user: &mut GooseUser) -> TransactionResult {
    let email = format!(
        "lt-{}@loadtest.protothrive.dev",
        uuid::Uuid::new_v4().simple()
    );
    let password = strong_password();
    let body = json!({"email": email, "password": password, "name": "Load Test"});
    user.set_session_data(Session {
        email,
        password,
        ..Session::default()
    });
    let response = send(
        user,
        GooseMethod::Post,
        "/auth/register",
        REGISTER,
        Some(&body),
        false,
    )
    .await?;
    if let Some(data) = data(user, response).await? {
        store_tokens(user, &data["tokens"]);
    }
    Ok(())
}

/// A user whose registration failed tries again before anything else, so one refused request
/// does not turn every later one into a 401.
async fn ensure_account(user: &mut GooseUser) -> TransactionResult {
    if session(user).access.is_empty() {
        register(user).await?;
    }
    Ok(())
}

async fn login(user: &mut GooseUser) -> TransactionResult {
    ensure_account(user).await?;
    let s = session(user);
    let body = json!({"email": s.email, "password": s.password});
    let response = send(
        user,
        GooseMethod::Post,
        "/auth/login",
        LOGIN,
        Some(&body),
        false,
    )
    .await?;
    if let Some(data) = data(user, response).await? {
        store_tokens(user, &data["tokens"]);
    }
    Ok(())
}

/// Rotates the refresh token. A refused rotation (say, a response lost after the server rotated)
/// is an error, and the user logs in again as a real client would.
async fn refresh(user: &mut GooseUser) -> TransactionResult {
    ensure_account(user).await?;
    let body = json!({"refresh_token": session(user).refresh});
    let response = send(
        user,
        GooseMethod::Post,
        "/auth/refresh",
        REFRESH,
        Some(&body),
        false,
    )
    .await?;
    match data(user, response).await? {
        Some(data) => store_tokens(user, &data["tokens"]),
        None => login(user).await?,
    }
    Ok(())
}

async fn me(user: &mut GooseUser) -> TransactionResult {
    ensure_account(user).await?;
    send(user, GooseMethod::Get, "/auth/me", ME, None, true).await?;
    Ok(())
}

async fn list_roadmaps(user: &mut GooseUser) -> TransactionResult {
    ensure_account(user).await?;
    send(
        user,
        GooseMethod::Get,
        "/roadmaps?limit=20",
        ROADMAPS_LIST,
        None,
        true,
    )
    .await?;
    Ok(())
}

async fn create_roadmap(user: &mut GooseUser) -> TransactionResult {
    ensure_account(user).await?;
    // v1 carries the graph as a JSON string.
    let graph = json!({"nodes": [{"id": "a"}, {"id": "b"}], "edges": [{"from": "a", "to": "b"}]});
    let title = format!(
        "Load test {}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );
    let body = json!({
        "title": title,
        "description": "created by the goose load test",
        "json_graph": graph.to_string(),
    });
    let response = send(
        user,
        GooseMethod::Post,
        "/roadmaps",
        ROADMAPS_CREATE,
        Some(&body),
        true,
    )
    .await?;
    if let Some(id) = data(user, response).await?.and_then(|d| string(&d["id"])) {
        let mut s = session(user);
        crate::multi::record_write(&id, &title, &s.access, true);
        s.roadmaps.push(id);
        if s.roadmaps.len() > KEEP_ROADMAPS {
            s.roadmaps.remove(0);
        }
        user.set_session_data(s);
    }
    Ok(())
}

/// One of the user's roadmaps, creating one first if it has none (its first create failed).
async fn some_roadmap(user: &mut GooseUser) -> Result<Option<String>, Box<TransactionError>> {
    if session(user).roadmaps.is_empty() {
        create_roadmap(user).await?;
    }
    Ok(session(user).roadmaps.choose(&mut rand::rng()).cloned())
}

async fn read_roadmap(user: &mut GooseUser) -> TransactionResult {
    ensure_account(user).await?;
    if let Some(id) = some_roadmap(user).await? {
        send(
            user,
            GooseMethod::Get,
            &format!("/roadmaps/{id}"),
            ROADMAPS_READ,
            None,
            true,
        )
        .await?;
    }
    Ok(())
}

async fn update_roadmap(user: &mut GooseUser) -> TransactionResult {
    ensure_account(user).await?;
    if let Some(id) = some_roadmap(user).await? {
        let title = format!(
            "Renamed {}",
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        );
        let body = json!({ "title": title });
        let response = send(
            user,
            GooseMethod::Patch,
            &format!("/roadmaps/{id}"),
            ROADMAPS_UPDATE,
            Some(&body),
            true,
        )
        .await?;
        let acked = response.request.success;
        crate::multi::record_write(&id, &title, &session(user).access, acked);
    }
    Ok(())
}

async fn score_roadmap(user: &mut GooseUser) -> TransactionResult {
    ensure_account(user).await?;
    if let Some(id) = some_roadmap(user).await? {
        let path = format!("/roadmaps/{id}/thrive-score");
        send(
            user,
            GooseMethod::Post,
            &path,
            ROADMAPS_SCORE,
            Some(&json!({})),
            true,
        )
        .await?;
    }
    Ok(())
}

/// Lists snippets, a quarter of the time unfiltered and otherwise by one of the seeded
/// categories (distinct cache entries), and remembers the ids it saw.
async fn list_snippets(user: &mut GooseUser) -> TransactionResult {
    ensure_account(user).await?;
    let path = *[
        "/snippets",
        "/snippets?category=ui",
        "/snippets?category=auth",
        "/snippets?category=deploy",
    ]
    .choose(&mut rand::rng())
    .unwrap_or(&"/snippets");
    let response = send(user, GooseMethod::Get, path, SNIPPETS_LIST, None, true).await?;
    if let Some(data) = data(user, response).await? {
        let ids: Vec<String> = items(&data)
            .iter()
            .filter_map(|s| string(&s["id"]))
            .collect();
        if !ids.is_empty() {
            let mut s = session(user);
            s.snippets = ids;
            user.set_session_data(s);
        }
    }
    Ok(())
}

async fn read_snippet(user: &mut GooseUser) -> TransactionResult {
    ensure_account(user).await?;
    if session(user).snippets.is_empty() {
        list_snippets(user).await?;
    }
    let id = session(user).snippets.choose(&mut rand::rng()).cloned();
    if let Some(id) = id {
        send(
            user,
            GooseMethod::Get,
            &format!("/snippets/{id}"),
            SNIPPETS_READ,
            None,
            true,
        )
        .await?;
    }
    Ok(())
}

/// An agent task on one of the user's roadmaps.
async fn run_agent(user: &mut GooseUser) -> TransactionResult {
    ensure_account(user).await?;
    if let Some(id) = some_roadmap(user).await? {
        let body = json!({
            "roadmap_id": id, "task_type": "plan", "prompt": "plan the next step", "budget_usd": 1.0,
        });
        send(
            user,
            GooseMethod::Post,
            "/agent/run",
            AGENT_RUN,
            Some(&body),
            true,
        )
        .await?;
    }
    Ok(())
}

async fn health(user: &mut GooseUser) -> TransactionResult {
    send(user, GooseMethod::Get, "/health", HEALTH, None, false).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_strong() {
        let p = strong_password();
        assert!(p.len() >= 12);
        assert!(p.chars().any(|c| c.is_ascii_uppercase()));
        assert!(p.chars().any(|c| c.is_ascii_lowercase()));
        assert!(p.chars().any(|c| c.is_ascii_digit()));
        assert!(p.chars().any(|c| !c.is_ascii_alphanumeric()));
    }

    #[test]
    fn list_items_in_either_shape() {
        assert_eq!(items(&json!([{"id": "a"}])).len(), 1);
        assert_eq!(
            items(&json!({"items": [{"id": "a"}, {"id": "b"}]})).len(),
            2
        );
        assert!(items(&json!({"id": "a"})).is_empty());
    }

    #[test]
    fn weights_give_the_mix() {
        let weights = |agent| -> Vec<(String, usize)> {
            all(agent)
                .unwrap_or_default()
                .iter()
                .map(|s| (s.name.to_string(), s.weight))
                .collect()
        };
        let expected = [("Auth", 3), ("Roadmaps", 4), ("Snippets", 2), ("Health", 1)];
        assert_eq!(weights(false), expected.map(|(n, w)| (n.to_owned(), w)));
        let with_agent = [
            ("Auth", 3),
            ("Roadmaps", 4),
            ("Snippets", 2),
            ("Health", 1),
            ("Agent", 2),
        ];
        assert_eq!(weights(true), with_agent.map(|(n, w)| (n.to_owned(), w)));
    }
}
