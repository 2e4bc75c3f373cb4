//! API keys (their hashes only) and the audit log of what was done to them.

use serde_json::Value;
use sqlx::AnyConnection;

use super::{Builder, Counted, Db, new_id};

/// id, user_id, name, key_prefix, scopes (JSON), created_at, expires_at, revoked_at.
pub type KeyRow = (
    String,
    String,
    String,
    String,
    String,
    i64,
    Option<i64>,
    Option<i64>,
);

const COLUMNS: &str = "id, user_id, name, key_prefix, scopes, created_at, expires_at, revoked_at";

/// One key to record.
#[derive(Debug)]
pub struct NewKey<'a> {
    pub user_id: &'a str,
    pub name: &'a str,
    pub hash_hex: &'a str,
    pub prefix: &'a str,
    /// JSON array.
    pub scopes: &'a str,
    pub expires_at: Option<i64>,
    pub now: i64,
}

/// Records `key` on `tx` for a live user; `None` when there is no such user.
pub async fn insert(
    tx: &mut AnyConnection,
    key: &NewKey<'_>,
) -> Result<Option<KeyRow>, sqlx::Error> {
    sqlx::query_as(&format!(
        "INSERT INTO api_keys (id, user_id, name, key_hash, key_prefix, scopes, created_at, \
         expires_at) SELECT $1, $2, $3, $4, $5, $6, $7, $8 \
         WHERE EXISTS (SELECT 1 FROM users WHERE id = $2 AND deleted_at IS NULL) \
         RETURNING {COLUMNS}"
    ))
    .bind(new_id())
    .bind(key.user_id)
    .bind(key.name)
    .bind(key.hash_hex)
    .bind(key.prefix)
    .bind(key.scopes)
    .bind(key.now)
    .bind(key.expires_at)
    .fetch_optional(Counted(tx))
    .await
}

/// Revokes key `id` on `tx` unless it is already; returns it as it was, `None` when there is no
/// such live key (of two revocations or rotations at once, one finds it).
pub async fn revoke(
    tx: &mut AnyConnection,
    id: &str,
    now: i64,
) -> Result<Option<KeyRow>, sqlx::Error> {
    sqlx::query_as(&format!(
        "UPDATE api_keys SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL \
         RETURNING {COLUMNS}"
    ))
    .bind(now)
    .bind(id)
    .fetch_optional(Counted(tx))
    .await
}

/// Records on `tx` that `actor` did `action` to key `key_id`.
pub async fn audit(
    tx: &mut AnyConnection,
    actor: &str,
    action: &str,
    key_id: &str,
    detail: &Value,
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO audit_logs (id, actor_id, action, entity, entity_id, detail, created_at) \
         VALUES ($1, $2, $3, 'api_key', $4, $5, $6)",
    )
    .bind(new_id())
    .bind(actor)
    .bind(action)
    .bind(key_id)
    .bind(detail.to_string())
    .bind(now)
    .execute(Counted(tx))
    .await
    .map(drop)
}

/// A page's row: the total, then a key's columns (all `NULL` on an empty page).
type ListRow = (
    i64,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<i64>,
    Option<i64>,
    Option<i64>,
);

/// One page of the keys (of `user` when given), newest first, and the total: one statement.
pub async fn list<'a>(
    db: &Db,
    user: Option<&'a str>,
    window: (Option<(i64, &'a str)>, i64, Option<i64>),
) -> Result<(i64, Vec<KeyRow>), sqlx::Error> {
    let filter = |qb: &mut Builder<'a>| {
        if let Some(u) = user {
            qb.push(" AND user_id = ").push_bind(u);
        }
    };
    Builder::page("api_keys", COLUMNS, filter, window)
        .fetch_page(
            db,
            |r: &ListRow| r.0,
            |r| Some((r.1?, r.2?, r.3?, r.4?, r.5?, r.6?, r.7, r.8)),
        )
        .await
}

/// The key whose hash is `hash_hex` (authentication: not counted for the request): id, user,
/// scopes (JSON), expiry, revocation time.
pub async fn by_hash(
    db: &Db,
    hash_hex: &str,
) -> Result<Option<(String, String, String, Option<i64>, Option<i64>)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, user_id, scopes, expires_at, revoked_at FROM api_keys WHERE key_hash = $1",
    )
    .bind(hash_hex)
    .fetch_optional(&db.read)
    .await
}
