//! Sessions under concurrency and faults, over HTTP against the app and its database (SQLite, or
//! PostgreSQL with `PROTOTHRIVE_TEST_DATABASE=postgres`):
//! parallel wrong passwords each count toward the lockout, parallel refreshes of one token leave
//! no live token once the family is revoked, registration commits the account with its tokens,
//! and expired token rows are pruned.

use std::sync::Arc;

use serde_json::{Value, json};
use sqlx::{AnyConnection, Connection};

use crate::api::{
    Auth, LOOSE_LIMITS, Slot, assert_problem, fresh_email, register, req, shared, slot, text,
};
use crate::example::Server;
use crate::support::Url;
use crate::support::postgres::on_postgres;
use crate::support::{Answer, PASSWORD, send};

static SERVER: Slot = slot();

async fn post(server: &impl Url, path: &str, body: &Value) -> Answer {
    send(req(server, "POST", path, Auth::None).json(body)).await
}

/// A connection of the test's own to the server's database (the server keeps running).
async fn database(server: &Server) -> AnyConnection {
    sqlx::any::install_default_drivers();
    AnyConnection::connect(&server.database_url)
        .await
        .expect("open the server's database")
}

/// Makes inserting a refresh token fail when `when` (an SQL condition on `NEW`) holds, or, with
/// `None`, stops doing so; `name` tells concurrent tests' faults apart.
async fn set_fault(db: &mut AnyConnection, name: &str, when: Option<&str>) {
    let sql = match (when, on_postgres()) {
        (None, false) => format!("DROP TRIGGER {name}"),
        (None, true) => format!("DROP TRIGGER {name} ON refresh_tokens; DROP FUNCTION {name}"),
        (Some(when), false) => format!(
            "CREATE TRIGGER {name} BEFORE INSERT ON refresh_tokens WHEN {when} \
             BEGIN SELECT RAISE(ABORT, 'injected fault'); END"
        ),
        (Some(when), true) => format!(
            "CREATE FUNCTION {name}() RETURNS TRIGGER LANGUAGE plpgsql AS $$ BEGIN \
             IF {when} THEN RAISE EXCEPTION 'injected fault'; END IF; RETURN NEW; END $$; \
             CREATE TRIGGER {name} BEFORE INSERT ON refresh_tokens \
             FOR EACH ROW EXECUTE FUNCTION {name}()"
        ),
    };
    sqlx::raw_sql(&sql)
        .execute(db)
        .await
        .expect("set the fault");
}

/// 20 wrong passwords sent at once for one account all count: the account locks (5 failures)
/// and the right password is refused afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_wrong_passwords_each_count_toward_the_lockout() {
    let server = shared(&SERVER);
    let user = register(&server, "lockout").await;
    let wrong = json!({"email": user.email, "password": "Wrong-Password-1!"});
    for a in at_once(&server, 20, "/api/v1/auth/login", &wrong).await {
        assert_problem(&a, 401, "AUTH-401", "a wrong password");
    }
    let right = json!({"email": user.email, "password": PASSWORD});
    let a = post(&server, "/api/v1/auth/login", &right).await;
    assert_problem(
        &a,
        401,
        "AUTH-401",
        "the right password on a locked account",
    );
}

/// Two refreshes with one token at once, ten times over: each time one wins, the other is reuse
/// and revokes the family, and the winner's new refresh token is refused with the rest of it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_refreshes_of_one_token_leave_no_live_token() {
    let server = shared(&SERVER);
    for round in 0..10 {
        let user = register(&server, "race").await;
        let body = json!({"refresh_token": user.refresh});
        let answers = at_once(&server, 2, "/api/v1/auth/refresh", &body).await;
        let statuses: Vec<u16> = answers.iter().map(|a| a.status).collect();
        let winner = match (&answers[0], &answers[1]) {
            (w, l) | (l, w) if w.status == 200 && l.status != 200 => {
                assert_problem(l, 401, "AUTH-401", "the reused refresh token");
                w
            }
            _ => panic!("round {round}: statuses {statuses:?}"),
        };
        let newer = text(&winner.body["data"]["tokens"]["refresh_token"]);
        let a = post(
            &server,
            "/api/v1/auth/refresh",
            &json!({"refresh_token": newer}),
        )
        .await;
        assert_problem(
            &a,
            401,
            "AUTH-401",
            &format!("round {round}: the winner's token"),
        );
    }
}

/// Recording the new refresh token fails (a trigger on the server's database): the refresh fails
/// as a whole, so the token it presented is not burnt and works once the fault is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_refresh_does_not_burn_the_token() {
    let server = shared(&SERVER);
    let user = register(&server, "burn").await;
    let mut db = database(&server).await;
    let when = format!("NEW.user_id = '{}'", user.id);
    set_fault(&mut db, "fail_refresh", Some(&when)).await;
    let body = json!({"refresh_token": user.refresh});
    let failed = post(&server, "/api/v1/auth/refresh", &body).await;
    assert_problem(
        &failed,
        500,
        "SRV-500",
        "a refresh whose new token cannot be recorded",
    );
    set_fault(&mut db, "fail_refresh", None).await;
    let retried = post(&server, "/api/v1/auth/refresh", &body).await;
    assert_eq!(retried.status, 200, "{}", retried.body);
}

/// Recording the first refresh token fails (a trigger on the server's database): the registration
/// fails as a whole, so the same registration succeeds once the fault is gone — no account
/// without tokens is left behind to answer 409.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_registration_leaves_no_account_behind() {
    let server = shared(&SERVER);
    let mut db = database(&server).await;
    let when = "(SELECT name FROM users WHERE id = NEW.user_id) = 'no-tokens'";
    set_fault(&mut db, "fail_register", Some(when)).await;
    let email = fresh_email("atomic");
    let body = json!({"email": email, "password": PASSWORD, "name": "no-tokens"});
    let failed = post(&server, "/api/v1/auth/register", &body).await;
    assert_problem(
        &failed,
        500,
        "SRV-500",
        "registration with a failing token insert",
    );
    set_fault(&mut db, "fail_register", None).await;
    let retried = post(&server, "/api/v1/auth/register", &body).await;
    assert_eq!(retried.status, 201, "{}", retried.body);
    assert_eq!(retried.body["data"]["user"]["email"], json!(email));
}

/// Revoked-token and refresh-token rows past their expiry (plus the longest leeway) are deleted
/// when the process starts; rows that still matter stay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_token_rows_are_pruned() {
    let mut server = Server::start_with(&[("PROTOTHRIVE_RATE_LIMITS", LOOSE_LIMITS)]);
    let user = register(&server, "prune").await;
    let logout = send(req(
        &server,
        "POST",
        "/api/v1/auth/logout",
        Auth::Bearer(&user.access),
    ))
    .await;
    assert_eq!(logout.status, 200, "{}", logout.body);
    let mut db = database(&server).await;
    for (table, jti) in [
        ("revoked_tokens", "old-revoked"),
        ("refresh_tokens", "old-refresh"),
    ] {
        let sql = if table == "revoked_tokens" {
            "INSERT INTO revoked_tokens (jti, expires_at) VALUES ($1, 1000)".to_owned()
        } else {
            "INSERT INTO refresh_tokens (jti, family_id, user_id, expires_at, created_at) \
             VALUES ($1, 'old-family', $2, 1000, 900)"
                .to_owned()
        };
        let mut insert = sqlx::query(&sql).bind(jti);
        if table == "refresh_tokens" {
            insert = insert.bind(&user.id);
        }
        insert.execute(&mut db).await.unwrap();
    }
    drop(db);
    server.restart();
    let mut db = database(&server).await;
    let count = |table: &'static str| format!("SELECT COUNT(*) FROM {table}");
    let revoked: i64 = sqlx::query_scalar(&count("revoked_tokens"))
        .fetch_one(&mut db)
        .await
        .unwrap();
    let refresh: i64 = sqlx::query_scalar(&count("refresh_tokens"))
        .fetch_one(&mut db)
        .await
        .unwrap();
    let old: i64 = sqlx::query_scalar(
        "SELECT (SELECT COUNT(*) FROM revoked_tokens WHERE jti = 'old-revoked') \
         + (SELECT COUNT(*) FROM refresh_tokens WHERE jti = 'old-refresh')",
    )
    .fetch_one(&mut db)
    .await
    .unwrap();
    assert_eq!(old, 0, "the expired rows are gone");
    // The logout's revocation and the registration's refresh token are still needed.
    assert_eq!((revoked, refresh), (1, 1));
    // And the logged-out token is still refused after the restart.
    let me = send(req(
        &server,
        "GET",
        "/api/v1/auth/me",
        Auth::Bearer(&user.access),
    ))
    .await;
    assert_problem(&me, 401, "AUTH-401", "a logged-out token after a restart");
}

/// `n` copies of one POST, all in flight at once (each on its own task).
async fn at_once(server: &Arc<Server>, n: usize, path: &'static str, body: &Value) -> Vec<Answer> {
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let (server, body) = (server.clone(), body.clone());
            tokio::spawn(async move { post(&server, path, &body).await })
        })
        .collect();
    let mut answers = Vec::with_capacity(n);
    for task in tasks {
        answers.push(task.await.expect("request task"));
    }
    answers
}
