//! Authentication flows over HTTP: registration, login and lockout, refresh-token rotation and
//! reuse detection, logout, token kinds, and API keys.

use serde_json::{Value, json};

use crate::api::{
    Auth, Slot, assert_envelope, assert_problem, call, demo_tokens, fresh_email, get, login,
    register, req, shared, slot, text,
};
use crate::support::Url;
use crate::support::{Answer, DEMO, PASSWORD, send};

static SERVER: Slot = slot();

async fn post(server: &impl Url, path: &str, body: &Value) -> Answer {
    send(req(server, "POST", path, Auth::None).json(body)).await
}

async fn login_as(server: &impl Url, email: &str, password: &str) -> Answer {
    post(
        server,
        "/api/v1/auth/login",
        &json!({"email": email, "password": password}),
    )
    .await
}

async fn refresh(server: &impl Url, token: &str) -> Answer {
    post(
        server,
        "/api/v1/auth/refresh",
        &json!({"refresh_token": token}),
    )
    .await
}

async fn me(server: &impl Url, auth: Auth<'_>) -> Answer {
    send(req(server, "GET", "/api/v1/auth/me", auth)).await
}

/// `tokens` as the contract shapes them.
fn assert_tokens(tokens: &Value, what: &str) {
    assert!(
        tokens["access_token"]
            .as_str()
            .is_some_and(|t| t.split('.').count() == 3),
        "{what}: {tokens}"
    );
    assert!(
        tokens["refresh_token"]
            .as_str()
            .is_some_and(|t| t.split('.').count() == 3),
        "{what}: {tokens}"
    );
    assert_eq!(tokens["token_type"], "Bearer", "{what}");
    assert_eq!(tokens["expires_in"], 900, "{what}");
}

/// Register: 201 with the user, tokens and a `Location` that resolves; a weak password is a 422
/// naming `password`; an existing email (in any case) is a 409.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_creates_a_vibe_coder_once() {
    let server = shared(&SERVER);
    let email = fresh_email("reg");
    let body = json!({"email": email, "password": PASSWORD, "name": "Reg"});
    let a = post(&server, "/api/v1/auth/register", &body).await;
    assert_eq!(a.status, 201, "{}", a.body);
    assert_envelope(&a, "v1", "register");
    let user = &a.body["data"]["user"];
    assert_eq!(
        (&user["email"], &user["role"], &user["name"]),
        (&json!(email), &json!("vibe_coder"), &json!("Reg"))
    );
    assert_tokens(&a.body["data"]["tokens"], "register");
    let access = text(&a.body["data"]["tokens"]["access_token"]);
    let location = a.header("location").to_owned();
    let mine = get(&server, &location, &access).await;
    assert_eq!(
        (mine.status, &mine.body["data"]["id"]),
        (200, &user["id"]),
        "Location {location}"
    );

    let rows = [
        (
            json!({"email": email, "password": PASSWORD, "name": "Again"}),
            409,
            "CONFLICT-409",
            "",
        ),
        (
            json!({"email": email.to_uppercase(), "password": PASSWORD, "name": "Caps"}),
            409,
            "CONFLICT-409",
            "",
        ),
        (
            json!({"email": fresh_email("weak"), "password": "short1!A", "name": "W"}),
            422,
            "VAL-422",
            "password",
        ),
        (
            json!({"email": fresh_email("weak"), "password": "alllowercase-and-long-1", "name": "W"}),
            422,
            "VAL-422",
            "password",
        ),
        (
            json!({"email": fresh_email("weak"), "password": "NoDigitsHere!!abc", "name": "W"}),
            422,
            "VAL-422",
            "password",
        ),
        (
            json!({"email": fresh_email("weak"), "password": "NoSymbols123abcD", "name": "W"}),
            422,
            "VAL-422",
            "password",
        ),
        (
            json!({"email": "not-an-email", "password": PASSWORD, "name": "W"}),
            422,
            "VAL-422",
            "email",
        ),
        (
            json!({"email": fresh_email("role"), "password": PASSWORD, "name": "W", "role": "super_admin"}),
            422,
            "VAL-422",
            "role",
        ),
    ];
    for (body, status, code, field) in rows {
        let a = post(&server, "/api/v1/auth/register", &body).await;
        assert_problem(&a, status, code, &body.to_string());
        if !field.is_empty() {
            assert_eq!(a.body["errors"][0]["field"], field, "{body}");
        }
    }
}

/// Login answers `{user, tokens}`; a wrong password and an unknown email get the same 401.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_answers_user_and_tokens() {
    let server = shared(&SERVER);
    let a = login_as(&server, DEMO, PASSWORD).await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_envelope(&a, "v1", "login");
    let data = a.body["data"].as_object().expect("data");
    assert_eq!(data.keys().collect::<Vec<_>>(), ["tokens", "user"]);
    assert_eq!(a.body["data"]["user"]["email"], DEMO);
    assert_eq!(
        a.body["data"]["user"]["id"],
        "00000000-0000-4000-8000-000000000001"
    );
    assert!(a.body["data"]["user"].get("password_hash").is_none());
    assert_tokens(&a.body["data"]["tokens"], "login");

    let wrong = login_as(&server, &fresh_email("ghost"), PASSWORD).await;
    assert_problem(&wrong, 401, "AUTH-401", "unknown email");
    let user = register(&server, "wrongpw").await;
    let bad = login_as(&server, &user.email, "Not-The-Password-1!").await;
    assert_problem(&bad, 401, "AUTH-401", "wrong password");
    assert_eq!(
        bad.body["detail"], wrong.body["detail"],
        "no hint which one was wrong"
    );
}

/// Five failed logins lock the account: the sixth attempt, with the right password, is refused.
/// Other accounts are not affected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_failures_lock_the_account() {
    let server = shared(&SERVER);
    let victim = register(&server, "locked").await;
    assert_eq!(login_as(&server, &victim.email, PASSWORD).await.status, 200);
    for i in 1..=5 {
        let a = login_as(&server, &victim.email, "Wrong-Password-9!").await;
        assert_problem(&a, 401, "AUTH-401", &format!("failure {i}"));
    }
    let sixth = login_as(&server, &victim.email, PASSWORD).await;
    assert_problem(
        &sixth,
        401,
        "AUTH-401",
        "the right password on a locked account",
    );
    let bystander = register(&server, "bystander").await;
    assert_eq!(
        login_as(&server, &bystander.email, PASSWORD).await.status,
        200
    );
    // Tokens issued before the lock still work: the lock is on logging in.
    assert_eq!(me(&server, Auth::Bearer(&victim.access)).await.status, 200);
}

/// Refresh rotates; the old refresh token then fails, and presenting it again revokes the family,
/// so the token that replaced it fails too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_rotates_and_reuse_revokes_the_family() {
    let server = shared(&SERVER);
    let user = register(&server, "rotate").await;
    let first = refresh(&server, &user.refresh).await;
    assert_eq!(first.status, 200, "{}", first.body);
    assert_envelope(&first, "v1", "refresh");
    let tokens = &first.body["data"]["tokens"];
    assert_tokens(tokens, "refresh");
    let (access2, refresh2) = (
        text(&tokens["access_token"]),
        text(&tokens["refresh_token"]),
    );
    assert_ne!(refresh2, user.refresh);
    assert_eq!(
        me(&server, Auth::Bearer(&access2)).await.body["data"]["id"],
        json!(user.id)
    );

    // A second family of the same user is not affected by the first one's reuse.
    let other = login_as(&server, &user.email, PASSWORD).await;
    let other_refresh = text(&other.body["data"]["tokens"]["refresh_token"]);

    let reuse = refresh(&server, &user.refresh).await;
    assert_problem(&reuse, 401, "AUTH-401", "a rotated refresh token");
    let after = refresh(&server, &refresh2).await;
    assert_problem(&after, 401, "AUTH-401", "the family was revoked on reuse");
    assert_eq!(
        refresh(&server, &other_refresh).await.status,
        200,
        "another session"
    );
}

/// A refresh token is never an access token, nor an access token a refresh token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_kinds_are_not_interchangeable() {
    let server = shared(&SERVER);
    let user = register(&server, "kinds").await;
    assert_problem(
        &me(&server, Auth::Bearer(&user.refresh)).await,
        401,
        "AUTH-401",
        "refresh as access",
    );
    let write = call(
        &server,
        "POST",
        "/api/v2/roadmaps",
        &user.refresh,
        &json!({"title": "t", "graph": {"nodes": [], "edges": []}}),
    )
    .await;
    assert_problem(&write, 401, "AUTH-401", "refresh token on a write");
    assert_problem(
        &refresh(&server, &user.access).await,
        401,
        "AUTH-401",
        "access as refresh",
    );
    // Neither attempt spent the refresh token.
    assert_eq!(refresh(&server, &user.refresh).await.status, 200);
}

/// Logout revokes the access token (the next call is a 401) and the session's refresh token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_revokes_the_access_and_refresh_tokens() {
    let server = shared(&SERVER);
    let user = register(&server, "logout").await;
    let second_session = login(&server, &user.email).await;
    assert_eq!(me(&server, Auth::Bearer(&user.access)).await.status, 200);
    let out = call(
        &server,
        "POST",
        "/api/v1/auth/logout",
        &user.access,
        &json!({}),
    )
    .await;
    assert_eq!(out.status, 200, "{}", out.body);
    assert_envelope(&out, "v1", "logout");
    assert_problem(
        &me(&server, Auth::Bearer(&user.access)).await,
        401,
        "AUTH-401",
        "after logout",
    );
    let again = call(
        &server,
        "POST",
        "/api/v1/auth/logout",
        &user.access,
        &json!({}),
    )
    .await;
    assert_problem(&again, 401, "AUTH-401", "logout twice");
    assert_problem(
        &refresh(&server, &user.refresh).await,
        401,
        "AUTH-401",
        "the session's refresh token",
    );
    // Another session of the same user is its own.
    assert_eq!(me(&server, Auth::Bearer(&second_session)).await.status, 200);
}

/// Keys created by a super_admin authenticate as their owner with `Authorization: ApiKey` and
/// `X-API-Key` (within their scopes), are listed masked, and stop working once revoked or
/// rotated.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_keys_authenticate_until_revoked() {
    let server = shared(&SERVER);
    let [_, _, admin] = demo_tokens(&server).await;
    let owner = register(&server, "keyowner").await;
    let created = call(
        &server,
        "POST",
        "/api/v1/admin/api-keys",
        &admin,
        &json!({"name": "ci", "user_id": owner.id, "scopes": ["auth:read", "roadmaps:read"]}),
    )
    .await;
    assert_eq!(created.status, 201, "{}", created.body);
    assert_envelope(&created, "v1", "create key");
    let key = text(&created.body["data"]["key"]);
    let key_id = text(&created.body["data"]["id"]);
    assert_eq!(created.body["data"]["user_id"], json!(owner.id));

    for auth in [Auth::ApiKey(&key), Auth::XApiKey(&key)] {
        let a = me(&server, auth).await;
        assert_eq!(
            (a.status, &a.body["data"]["id"]),
            (200, &json!(owner.id)),
            "{auth:?}: {}",
            a.body
        );
        let list = send(req(&server, "GET", "/api/v2/roadmaps", auth)).await;
        assert_eq!(list.status, 200, "{auth:?}");
    }
    // A key's holder has at most its owner's role (not an admin), and its scopes.
    let as_key = send(req(
        &server,
        "GET",
        "/api/v1/admin/api-keys",
        Auth::XApiKey(&key),
    ))
    .await;
    assert_problem(
        &as_key,
        403,
        "AUTH-403",
        "a vibe_coder's key on an admin route",
    );

    let listed = get(
        &server,
        &format!("/api/v1/admin/api-keys?user_id={}", owner.id),
        &admin,
    )
    .await;
    assert_eq!(listed.status, 200, "{}", listed.body);
    assert!(
        !listed.body.to_string().contains(&key),
        "the key is shown once only"
    );
    assert_eq!(listed.body["data"][0]["id"], json!(key_id));

    let rotated = call(
        &server,
        "POST",
        &format!("/api/v1/admin/api-keys/{key_id}/rotate"),
        &admin,
        &json!({}),
    )
    .await;
    assert_eq!(rotated.status, 201, "{}", rotated.body);
    let key2 = text(&rotated.body["data"]["key"]);
    let key2_id = text(&rotated.body["data"]["id"]);
    assert_problem(
        &me(&server, Auth::ApiKey(&key)).await,
        401,
        "AUTH-401",
        "the rotated key",
    );
    assert_eq!(
        me(&server, Auth::XApiKey(&key2)).await.status,
        200,
        "its replacement"
    );

    let revoked = send(req(
        &server,
        "DELETE",
        &format!("/api/v1/admin/api-keys/{key2_id}"),
        Auth::Bearer(&admin),
    ))
    .await;
    assert_eq!(
        (revoked.status, &revoked.body["data"]["status"]),
        (200, &json!("revoked")),
        "{}",
        revoked.body
    );
    for auth in [Auth::ApiKey(&key2), Auth::XApiKey(&key2)] {
        assert_problem(
            &me(&server, auth).await,
            401,
            "AUTH-401",
            &format!("{auth:?} after revocation"),
        );
    }
    let twice = send(req(
        &server,
        "DELETE",
        &format!("/api/v1/admin/api-keys/{key2_id}"),
        Auth::Bearer(&admin),
    ))
    .await;
    assert_problem(&twice, 404, "NOT-FOUND-404", "revoking a revoked key");
    // Keys that were never issued, or look like keys, authenticate nobody.
    for bogus in [
        "pt_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "' OR '1'='1",
        "../../etc/passwd",
    ] {
        assert_problem(
            &me(&server, Auth::XApiKey(bogus)).await,
            401,
            "AUTH-401",
            bogus,
        );
    }
}

/// A key's scopes bound what it does, whatever its owner may: a super_admin's key made with
/// `snippets:read` reads snippets and nothing else (no key minting, no roadmap writes, not even
/// the profile); a key that may mint keys mints none stronger than itself; scopes outside the
/// API's vocabulary are refused when the key is made.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_key_scopes_bound_every_route() {
    let server = shared(&SERVER);
    let [_, _, admin] = demo_tokens(&server).await;
    let mint = |token: Auth<'_>, scopes: Value| {
        send(
            req(&server, "POST", "/api/v1/admin/api-keys", token)
                .json(&json!({"name": "scoped", "scopes": scopes})),
        )
    };
    let reader = mint(Auth::Bearer(&admin), json!(["snippets:read"])).await;
    assert_eq!(reader.status, 201, "{}", reader.body);
    let reader = text(&reader.body["data"]["key"]);
    let as_reader = Auth::XApiKey(&reader);
    let snippets = send(req(
        &server,
        "GET",
        "/api/v1/snippets?category=ui",
        as_reader,
    ))
    .await;
    assert_eq!(snippets.status, 200, "{}", snippets.body);
    let denied = [
        (
            "POST",
            "/api/v1/admin/api-keys",
            json!({"name": "more", "scopes": []}),
        ),
        ("GET", "/api/v1/admin/api-keys", Value::Null),
        (
            "POST",
            "/api/v2/roadmaps",
            json!({"title": "t", "graph": crate::api::graph()}),
        ),
        ("POST", "/api/v1/snippets", json!({})),
        ("GET", "/api/v1/auth/me", Value::Null),
    ];
    for (method, path, body) in denied {
        let mut r = req(&server, method, path, as_reader);
        if !body.is_null() {
            r = r.json(&body);
        }
        assert_problem(&send(r).await, 403, "AUTH-403", &format!("{method} {path}"));
    }

    // A key-minting key: its keys stay within its own scopes.
    let minter = mint(Auth::Bearer(&admin), json!(["admin:write"])).await;
    assert_eq!(minter.status, 201, "{}", minter.body);
    let minter = text(&minter.body["data"]["key"]);
    let stronger = mint(
        Auth::ApiKey(&minter),
        json!(["admin:write", "roadmaps:write"]),
    )
    .await;
    assert_problem(&stronger, 403, "AUTH-403", "a key minting a stronger key");
    let weaker = mint(Auth::ApiKey(&minter), json!(["admin:read"])).await;
    assert_eq!(weaker.status, 201, "{}", weaker.body);

    let unknown = mint(Auth::Bearer(&admin), json!(["everything"])).await;
    assert_problem(&unknown, 422, "VAL-422", "a scope outside the vocabulary");
}

/// A logout whose body is refused — malformed, or with an unknown field (422) — logs nothing out:
/// the body is read before anything is revoked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_logout_refused_for_its_body_logs_nothing_out() {
    let server = shared(&SERVER);
    let user = register(&*server, "bad-logout").await;
    for (body, status, code) in [
        ("{\"refresh_token\":", 422, "VAL-422"),
        ("{\"no_such_field\":1}", 422, "VAL-422"),
    ] {
        let a = send(
            req(
                &*server,
                "POST",
                "/api/v1/auth/logout",
                Auth::Bearer(&user.access),
            )
            .header("content-type", "application/json")
            .body(body),
        )
        .await;
        assert_problem(&a, status, code, body);
    }
    let me = get(&*server, "/api/v1/auth/me", &user.access).await;
    assert_eq!(me.status, 200, "{}", me.body);
    assert_eq!(me.body["data"]["email"], user.email.as_str());
}
