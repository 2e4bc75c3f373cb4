//! Registration, login with lockout, refresh-token rotation with reuse detection, logout, profile.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use protothrive::auth::{Principal, TokenKind, TokenPair};
use protothrive::gateway::{ApiVersion, ValidJson};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use sqlx::AnyConnection;
use validator::{Validate, ValidationError};

use crate::cache;
use crate::db::users::{self, UserRow};
use crate::db::{self, rfc3339, tokens};
use crate::http::{ApiResult, AppError, created, envelope};
use crate::passwords;
use crate::state::AppState;

use super::table::{
    Route,
    Who::{Anyone, User},
    ep,
};

/// Failed logins before the account locks, and for how long.
const MAX_FAILURES: i64 = 5;
const LOCK_SECONDS: i64 = 30 * 60;

pub fn routes() -> Vec<Route> {
    use super::docs::{login_schema, logout_schema, refresh_schema, register_schema};
    vec![
        Route::to(
            ep(
                "POST",
                "/api/auth/register",
                "Create an account; answers with tokens",
                Anyone,
                "auth",
            )
            .body(register_schema)
            .created()
            .extra(&[409]),
            register,
        ),
        Route::to(
            ep(
                "POST",
                "/api/auth/login",
                "Log in (5 failures lock the account for 30 minutes)",
                Anyone,
                "auth",
            )
            .body(login_schema)
            .extra(&[401]),
            login,
        ),
        Route::to(
            ep(
                "POST",
                "/api/auth/refresh",
                "Rotate a refresh token (reuse revokes the family)",
                Anyone,
                "auth",
            )
            .body(refresh_schema)
            .extra(&[401]),
            refresh,
        ),
        Route::to(
            ep(
                "POST",
                "/api/auth/logout",
                "Revoke the access token and its refresh-token family",
                User,
                "auth",
            )
            .optional_body(logout_schema),
            logout,
        ),
        // Cached per user (tag `user:<id>`; a login, which changes `last_login`, purges it),
        // inside the user check like every cached route.
        Route::to(
            ep("GET", "/api/auth/me", "The caller's profile", User, "auth").extra(&[404]),
            me,
        )
        .wrap(|r, state| r.route_layer(cache::cached(state))),
    ]
}

fn strong_password(p: &str) -> Result<(), ValidationError> {
    if passwords::strong_enough(p) {
        Ok(())
    } else {
        Err(ValidationError::new("weak_password").with_message(
            "at least 12 characters with an upper-case letter, a lower-case letter, a digit and a symbol"
                .into(),
        ))
    }
}

#[derive(Debug, Deserialize, Validate)]
#[serde(deny_unknown_fields)]
pub struct Register {
    #[validate(email(message = "must be an email address"), length(max = 254))]
    email: String,
    #[validate(custom(function = "strong_password"))]
    password: String,
    #[validate(length(min = 1, max = 100, message = "1 to 100 characters"))]
    name: String,
}

#[derive(Debug, Deserialize, Validate)]
#[serde(deny_unknown_fields)]
pub struct Login {
    #[validate(length(min = 1, max = 254))]
    email: String,
    #[validate(length(min = 1, max = 128))]
    password: String,
}

#[derive(Debug, Deserialize, Validate)]
#[serde(deny_unknown_fields)]
pub struct Refresh {
    #[validate(length(min = 1, max = 8192))]
    refresh_token: String,
}

#[derive(Debug, Default, Deserialize, Validate)]
#[serde(deny_unknown_fields)]
pub struct Logout {
    #[validate(length(min = 1, max = 8192))]
    refresh_token: Option<String>,
}

fn user_json(u: &UserRow) -> Value {
    json!({
        "id": u.0, "email": u.1, "name": u.2, "role": u.3,
        "created_at": rfc3339(u.4), "updated_at": rfc3339(u.5),
        "last_login": u.6.map(rfc3339),
    })
}

fn tokens_json(pair: &TokenPair) -> Value {
    json!({
        "access_token": pair.access.token,
        "refresh_token": pair.refresh.token,
        "token_type": "Bearer",
        "expires_in": pair.expires_in,
    })
}

/// Issues a pair in refresh-token family `family` and records the refresh token on `conn` (the
/// caller's transaction, so the record commits or rolls back with what led to it). `None` when
/// the family has been revoked meanwhile: no token is recorded, and the caller must refuse.
async fn issue(
    s: &AppState,
    conn: &mut AnyConnection,
    user_id: &str,
    family: Option<String>,
) -> ApiResult<Option<TokenPair>> {
    let family = family.unwrap_or_else(db::new_id);
    let mut extra = Map::new();
    extra.insert("fam".into(), family.clone().into());
    let pair = s
        .issuer
        .issue_pair(user_id, &extra)
        .map_err(|e| AppError::Internal(e.to_string()))?;
    let expires_at = i64::try_from(pair.refresh.expires_at).unwrap_or(i64::MAX);
    let recorded = tokens::record_refresh(
        conn,
        &pair.refresh.jti,
        &family,
        user_id,
        expires_at,
        s.now(),
    )
    .await?;
    Ok(recorded.then_some(pair))
}

/// Issues a pair in a new family on `conn` (a new family is never revoked).
async fn issue_new(s: &AppState, conn: &mut AnyConnection, user_id: &str) -> ApiResult<TokenPair> {
    issue(s, conn, user_id, None)
        .await?
        .ok_or_else(|| AppError::Internal("a new token family was already revoked".into()))
}

/// What a refresh token's rotations and revocations serialize on: its family (the `fam` claim),
/// or the token itself when it has none.
fn family_key<'a>(principal: &'a Principal, jti: &'a str) -> &'a str {
    principal
        .claims()
        .get("fam")
        .and_then(Value::as_str)
        .unwrap_or(jti)
}

async fn register(
    State(s): State<AppState>,
    v: ApiVersion,
    ValidJson(body): ValidJson<Register>,
) -> ApiResult {
    let hash = passwords::run_bounded(move || passwords::hash(&body.password))
        .await
        .map_err(AppError::Internal)?
        .map_err(|e| AppError::Internal(e.to_string()))?;
    let id = db::new_id();
    let now = s.now();
    // The account and its first tokens commit together: a failure in between must not leave an
    // account whose owner never got tokens (and would get 409 on retrying).
    let mut tx = s.db.write.begin().await?;
    let inserted = users::insert(
        &mut tx,
        &id,
        body.email.trim(),
        &hash,
        body.name.trim(),
        now,
    )
    .await?;
    if !inserted {
        return Err(AppError::Conflict(
            "An account with this email exists.".into(),
        ));
    }
    let pair = issue_new(&s, &mut tx, &id).await?;
    tx.commit().await?;
    let user: UserRow = (
        id.clone(),
        body.email.trim().to_owned(),
        body.name.trim().to_owned(),
        "vibe_coder".into(),
        now,
        now,
        None,
    );
    let out = envelope(
        v,
        now,
        json!({"user": user_json(&user), "tokens": tokens_json(&pair)}),
        json!({}),
    );
    Ok(created(&format!("/api/{}/auth/me", v.name()), out))
}

async fn login(
    State(s): State<AppState>,
    v: ApiVersion,
    ValidJson(body): ValidJson<Login>,
) -> ApiResult {
    let now = s.now();
    let row = users::for_login(&s.db, body.email.trim()).await?;
    let stored = row
        .as_ref()
        .map_or_else(|| passwords::dummy_hash().to_owned(), |r| r.1.clone());
    let password = body.password.clone();
    let matches = passwords::run_bounded(move || passwords::verify(&password, &stored))
        .await
        .map_err(AppError::Internal)?;
    let Some((id, _, _, locked_until)) = row else {
        return Err(AppError::Unauthorized);
    };
    if locked_until.is_some_and(|t| t > now) {
        tracing::info!(user = %id, "login refused: account locked");
        return Err(AppError::Unauthorized);
    }
    if !matches {
        // Counts however many guesses run in parallel (one conditional statement).
        users::count_failure(&s.db, &id, MAX_FAILURES, now + LOCK_SECONDS).await?;
        return Err(AppError::Unauthorized);
    }
    let mut tx = s.db.write.begin().await?;
    // Only if no parallel failure has locked the account since the read above.
    let user = users::logged_in(&mut tx, &id, now).await?;
    let Some(user) = user else {
        tracing::info!(user = %id, "login refused: account locked");
        return Err(AppError::Unauthorized);
    };
    let pair = issue_new(&s, &mut tx, &id).await?;
    tx.commit().await?;
    // `last_login` changed: the cached `/auth/me` goes.
    cache::purge(&s, &[format!("user:{id}")]).await;
    crate::revocations::prune_now_and_then(&s.db, now).await;
    Ok(envelope(
        v,
        now,
        json!({"user": user_json(&user), "tokens": tokens_json(&pair)}),
        json!({}),
    )
    .into_response())
}

async fn refresh(
    State(s): State<AppState>,
    v: ApiVersion,
    ValidJson(body): ValidJson<Refresh>,
) -> ApiResult {
    let principal = s
        .auth
        .verify(&body.refresh_token, TokenKind::Refresh)
        .await
        .map_err(|_| AppError::Unauthorized)?;
    let jti = principal
        .token_id()
        .ok_or(AppError::Unauthorized)?
        .to_owned();
    let now = s.now();
    // Claim and issue in one transaction: a crash in between rolls the claim back instead of
    // burning the token, and a reuse that revokes the family cannot slip between them (it runs
    // alone among the family's rotations and revocations: `begin_write` on the family).
    let mut tx = s.db.begin_write(family_key(&principal, &jti)).await?;
    // Claim the token: only one request can move it from unused to used.
    let claimed = tokens::claim_refresh(&mut tx, &jti, now).await?;
    let Some((family, user_id)) = claimed else {
        // Reuse of a rotated (or revoked) token: someone else may hold the family. Revoke it all.
        let revoked = tokens::revoke_family_of(&mut tx, &jti, now).await?;
        tx.commit().await?;
        if revoked > 0 {
            tracing::warn!(jti = %jti, "refresh token reused: family revoked");
        }
        return Err(AppError::Unauthorized);
    };
    if user_id != principal.subject() {
        return Err(AppError::Unauthorized);
    }
    if !users::is_live(&mut tx, &user_id).await? {
        return Err(AppError::Unauthorized);
    }
    // `None`: the family was revoked (a reuse elsewhere) after this token was issued.
    let Some(pair) = issue(&s, &mut tx, &user_id, Some(family)).await? else {
        return Err(AppError::Unauthorized);
    };
    tx.commit().await?;
    Ok(envelope(v, now, json!({"tokens": tokens_json(&pair)}), json!({})).into_response())
}

async fn logout(
    State(s): State<AppState>,
    v: ApiVersion,
    p: Principal,
    body: axum::body::Bytes,
) -> ApiResult {
    // A body that is refused (400, 422) logs nothing out.
    let body: Logout = if body.is_empty() {
        Logout::default()
    } else {
        protothrive::gateway::parse_json(&body, protothrive::gateway::DEFAULT_MAX_DEPTH)
            .map_err(AppError::Problem)?
    };
    let now = s.now();
    if let (Some(jti), Some(exp)) = (p.token_id(), p.expires_at())
        && p.scheme() == protothrive::auth::Scheme::Jwt
    {
        // The database first: a restart reloads from it, and a retried logout after a failure
        // to tell the other instances finds the row there already.
        tokens::revoke_access(&s.db, jti, i64::try_from(exp).unwrap_or(i64::MAX)).await?;
        if let Err(e) = s.revocations.revoke(jti, exp).await {
            tracing::warn!(error = %e, "logout not shared with the other instances");
            return Err(AppError::Unavailable(
                "The logout could not reach every instance; retry it.".into(),
            ));
        }
    }
    // The session's refresh-token family: from the access token's `fam`, or the body's token.
    let mut family = p
        .claims()
        .get("fam")
        .and_then(Value::as_str)
        .map(str::to_owned);
    if let Some(t) = body.refresh_token
        && let Ok(rp) = s.auth.verify(&t, TokenKind::Refresh).await
        && rp.subject() == p.subject()
    {
        family = rp
            .claims()
            .get("fam")
            .and_then(Value::as_str)
            .map(str::to_owned);
    }
    if let Some(family) = family {
        // Alone among the family's rotations: a refresh committing meanwhile cannot leave a
        // token of the family this revocation did not see.
        let mut tx = s.db.begin_write(&family).await?;
        tokens::revoke_family(&mut tx, &family, p.subject(), now).await?;
        tx.commit().await?;
    }
    crate::revocations::prune_now_and_then(&s.db, now).await;
    Ok(envelope(v, now, json!({"logged_out": true}), json!({})).into_response())
}

async fn me(State(s): State<AppState>, v: ApiVersion, p: Principal) -> ApiResult<Response> {
    let user = users::profile(&s.db, p.subject())
        .await?
        .ok_or(AppError::NotFound("User"))?;
    Ok(cache::tag(
        envelope(v, s.now(), user_json(&user), json!({})).into_response(),
        cache::per_user(),
        &format!("user:{}", p.subject()),
    ))
}
