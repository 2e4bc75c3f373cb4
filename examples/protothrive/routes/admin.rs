//! API keys (super_admin): list, create, rotate, revoke.
//!
//! Only the SHA-256 of a key is stored (`key_hash`, what the authenticator looks up) with its first
//! 8 characters (`key_prefix`, so people can tell keys apart). The key itself appears once, in the
//! answer that created it; lists show `pt_abcde…`, each key with its `user` (id, name, email)
//! from one batch of the request's loader. Every change writes an `audit_logs` row in the same
//! transaction as the change.

use std::collections::HashMap;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use protothrive::auth::{Principal, Scheme, generate_api_key};
use protothrive::gateway::{ApiVersion, ValidJson};
use serde::Deserialize;
use serde_json::{Value, json};
use sqlx::AnyConnection;
use validator::{Validate, ValidationError};

use super::cursor::{Page, params};
use crate::db::keys::{self, KeyRow};
use crate::db::{is_uuid, rfc3339};
use crate::http::{ApiResult, AppError, envelope};
use crate::loaders::{self, Kind, Nested, NestedLoader};
use crate::state::AppState;

use super::table::{Route, Who::Role, ep};

const PREFIX_CHARS: usize = 8;
const MAX_SCOPES: usize = 20;

pub fn routes() -> Vec<Route> {
    let admin = Role("super_admin");
    vec![
        Route::to(
            ep(
                "GET",
                "/api/admin/api-keys",
                "API keys, masked, each with its user",
                admin,
                "admin",
            )
            .query(super::docs::KEY_FILTERS),
            list,
        ),
        Route::to(
            ep(
                "POST",
                "/api/admin/api-keys",
                "Create an API key (shown once)",
                admin,
                "admin",
            )
            .body(new_key_schema)
            .created()
            .extra(&[404]),
            create,
        ),
        Route::to(
            ep(
                "POST",
                "/api/admin/api-keys/{id}/rotate",
                "Revoke a key and issue its replacement (shown once)",
                admin,
                "admin",
            )
            .created()
            .extra(&[404]),
            rotate,
        ),
        Route::to(
            ep(
                "DELETE",
                "/api/admin/api-keys/{id}",
                "Revoke an API key",
                admin,
                "admin",
            )
            .extra(&[404]),
            revoke,
        ),
    ]
}

/// Each scope `<area>:read` or `<area>:write` of a known area, at most 20, no duplicates.
fn scopes(list: &[String]) -> Result<(), ValidationError> {
    let mut sorted: Vec<&String> = list.iter().collect();
    sorted.sort();
    sorted.dedup();
    if list.len() <= MAX_SCOPES
        && sorted.len() == list.len()
        && list.iter().all(|s| super::scopes::is_known(s))
    {
        Ok(())
    } else {
        Err(ValidationError::new("scopes").with_message(
            format!(
                "at most {MAX_SCOPES} distinct scopes, each <area>:read or <area>:write, areas: {}",
                super::table::areas().join(", ")
            )
            .into(),
        ))
    }
}

/// A caller holding an API key mints or rotates only keys within its own scopes: a key cannot
/// make a stronger one.
fn within_callers_scopes(p: &Principal, scopes: &[String]) -> Result<(), AppError> {
    if p.scheme() != Scheme::ApiKey {
        return Ok(());
    }
    match scopes
        .iter()
        .find(|s| !super::scopes::grants(p.scopes(), s))
    {
        None => Ok(()),
        Some(s) => Err(AppError::Forbidden(format!(
            "An API key cannot grant the scope `{s}`, which it does not hold."
        ))),
    }
}

#[derive(Debug, Deserialize, Validate)]
#[serde(deny_unknown_fields)]
pub struct NewKey {
    #[validate(length(min = 1, max = 100, message = "1 to 100 characters"))]
    name: String,
    /// The key's owner; the caller when absent.
    #[validate(custom(function = "super::logs::uuid"))]
    user_id: Option<String>,
    #[validate(custom(function = "scopes"))]
    #[serde(default)]
    scopes: Vec<String>,
    #[validate(range(min = 1, max = 3650, message = "between 1 and 3650 days"))]
    #[serde(default, deserialize_with = "crate::http::optional_integer")]
    expires_in_days: Option<i64>,
}

/// JSON Schema (2020-12) of [`NewKey`], for the OpenAPI document.
pub fn new_key_schema(_v: u8) -> Value {
    json!({
        "type": "object", "additionalProperties": false,
        "required": ["name"],
        "properties": {
            "name": {"type": "string", "minLength": 1, "maxLength": 100},
            "user_id": {"type": "string", "format": "uuid", "description": "the owner; defaults to the caller"},
            "scopes": {
                "type": "array", "maxItems": MAX_SCOPES, "uniqueItems": true, "default": [],
                "items": {"type": "string", "enum": super::table::areas().iter()
                    .flat_map(|a| [format!("{a}:read"), format!("{a}:write")])
                    .collect::<Vec<_>>()}
            },
            "expires_in_days": {"type": "integer", "minimum": 1, "maximum": 3650},
        }
    })
}

/// A key as lists show it: masked.
fn key_json(r: &KeyRow, now: i64) -> Value {
    let status = match (r.7, r.6) {
        (Some(_), _) => "revoked",
        (None, Some(exp)) if exp <= now => "expired",
        _ => "active",
    };
    json!({
        "id": r.0, "user_id": r.1, "name": r.2,
        "key": format!("{}…", r.3), "key_prefix": r.3,
        "scopes": serde_json::from_str::<Value>(&r.4).unwrap_or_else(|_| json!([])),
        "status": status,
        "created_at": rfc3339(r.5), "expires_at": r.6.map(rfc3339), "revoked_at": r.7.map(rfc3339),
    })
}

/// The answer that shows a new key, once.
fn shown_once(
    v: ApiVersion,
    now: i64,
    row: &KeyRow,
    key: &str,
    rotated_from: Option<&str>,
) -> Response {
    let mut data = key_json(row, now);
    data["key"] = Value::from(key);
    if let Some(old) = rotated_from {
        data["rotated_from"] = Value::from(old);
    }
    let meta = json!({"notice": "Store this key now: it is not shown again."});
    let mut res = (StatusCode::CREATED, envelope(v, now, data, meta)).into_response();
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

/// Inserts a new key for a live user; `None` when there is no such user.
async fn insert_key(
    conn: &mut AnyConnection,
    user_id: &str,
    name: &str,
    scopes: &str,
    expires_at: Option<i64>,
    now: i64,
) -> Result<Option<(KeyRow, String)>, sqlx::Error> {
    let (key, hash) = generate_api_key("pt");
    let prefix: String = key.chars().take(PREFIX_CHARS).collect();
    let new = keys::NewKey {
        user_id,
        name,
        hash_hex: &hash.to_hex(),
        prefix: &prefix,
        scopes,
        expires_at,
        now,
    };
    let row = keys::insert(conn, &new).await?;
    Ok(row.map(|r| (r, key)))
}

async fn list(
    State(s): State<AppState>,
    v: ApiVersion,
    loader: NestedLoader,
    q: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> ApiResult {
    let q = params(q)?;
    let user = q.get("user_id").map(String::as_str);
    if user.is_some_and(|u| !is_uuid(u)) {
        return Err(AppError::field("user_id", "uuid", "a UUID"));
    }
    let page = Page::from_query(v, &q)?;
    let (total, keys) = keys::list(&s.db, user, page.window()).await?;
    let now = s.now();
    let meta = page.meta(total, keys.len(), keys.last().map(|k| (k.5, k.0.as_str())));
    // Each key with its user (id, name, email), one batch of the request's loader for the page.
    let users = keys
        .iter()
        .map(|k| Nested(Kind::User, k.1.clone()))
        .collect();
    let users = loaders::load(&loader, users).await?;
    let data: Vec<Value> = keys
        .iter()
        .zip(users)
        .map(|(k, user)| {
            let mut shown = key_json(k, now);
            shown["user"] = user;
            shown
        })
        .collect();
    let mut res = envelope(v, now, data, meta).into_response();
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(res)
}

async fn create(
    State(s): State<AppState>,
    v: ApiVersion,
    p: Principal,
    ValidJson(body): ValidJson<NewKey>,
) -> ApiResult {
    let now = s.now();
    let owner = body.user_id.as_deref().unwrap_or(p.subject());
    let expires_at = body.expires_in_days.map(|d| now + d * 86_400);
    within_callers_scopes(&p, &body.scopes)?;
    let scopes = json!(body.scopes).to_string();
    let mut tx = s.db.write.begin().await?;
    let (row, key) = insert_key(&mut tx, owner, body.name.trim(), &scopes, expires_at, now)
        .await?
        .ok_or(AppError::NotFound("User"))?;
    let detail = json!({"name": row.2, "user_id": row.1, "scopes": body.scopes, "expires_at": expires_at, "key_prefix": row.3});
    keys::audit(&mut tx, p.subject(), "api_key.create", &row.0, &detail, now).await?;
    tx.commit().await?;
    Ok(shown_once(v, now, &row, &key, None))
}

async fn rotate(
    State(s): State<AppState>,
    v: ApiVersion,
    p: Principal,
    Path(id): Path<String>,
) -> ApiResult {
    if !is_uuid(&id) {
        return Err(AppError::NotFound("API key"));
    }
    let now = s.now();
    let mut tx = s.db.write.begin().await?;
    let old: Option<KeyRow> = keys::revoke(&mut tx, &id, now).await?;
    let old = old.ok_or(AppError::NotFound("API key"))?;
    let old_scopes: Vec<String> = serde_json::from_str(&old.4).unwrap_or_default();
    within_callers_scopes(&p, &old_scopes)?;
    // The new key lives as long as the old one was meant to.
    let expires_at = old.6.map(|exp| now + (exp - old.5).max(86_400));
    let (row, key) = insert_key(&mut tx, &old.1, &old.2, &old.4, expires_at, now)
        .await?
        .ok_or(AppError::NotFound("API key owner"))?;
    let detail = json!({"rotated_from": old.0, "key_prefix": row.3, "old_key_prefix": old.3});
    keys::audit(&mut tx, p.subject(), "api_key.rotate", &row.0, &detail, now).await?;
    tx.commit().await?;
    Ok(shown_once(v, now, &row, &key, Some(&old.0)))
}

async fn revoke(
    State(s): State<AppState>,
    v: ApiVersion,
    p: Principal,
    Path(id): Path<String>,
) -> ApiResult {
    if !is_uuid(&id) {
        return Err(AppError::NotFound("API key"));
    }
    let now = s.now();
    let mut tx = s.db.write.begin().await?;
    let row: Option<KeyRow> = keys::revoke(&mut tx, &id, now).await?;
    let row = row.ok_or(AppError::NotFound("API key"))?;
    keys::audit(
        &mut tx,
        p.subject(),
        "api_key.revoke",
        &row.0,
        &json!({"key_prefix": row.3}),
        now,
    )
    .await?;
    tx.commit().await?;
    let mut res = envelope(v, now, key_json(&row, now), json!({})).into_response();
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(res)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_are_short_distinct_and_plain() {
        let v = |s: &[&str]| scopes(&s.iter().map(|x| (*x).to_owned()).collect::<Vec<_>>());
        let code = |r: Result<(), ValidationError>| r.map_err(|e| e.code.into_owned());
        let refused = Err("scopes".to_owned());
        assert_eq!(code(v(&[])), Ok(()));
        assert_eq!(code(v(&["snippets:read", "roadmaps:write"])), Ok(()));
        assert_eq!(code(v(&["auth:read", "auth:read"])), refused);
        assert_eq!(code(v(&["roadmaps.write"])), refused);
        assert_eq!(code(v(&[""])), refused);
        assert_eq!(code(v(&["everything"])), refused);
        let many: Vec<String> = (0..21).map(|i| format!("s{i}:read")).collect();
        assert_eq!(code(scopes(&many)), refused);
    }

    #[test]
    fn listed_keys_are_masked() {
        let row: KeyRow = (
            "id".into(),
            "u".into(),
            "n".into(),
            "pt_abcde".into(),
            "[]".into(),
            0,
            None,
            None,
        );
        assert_eq!(key_json(&row, 1)["key"], "pt_abcde…");
        let revoked: KeyRow = (
            "id".into(),
            "u".into(),
            "n".into(),
            "pt_abcde".into(),
            "[]".into(),
            0,
            Some(5),
            Some(2),
        );
        assert_eq!(key_json(&revoked, 1)["status"], "revoked");
    }
}
