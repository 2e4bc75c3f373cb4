//! Tokens: refresh tokens (one row per issued token, a family per login) and revoked access
//! tokens (logouts), both kept until they would have expired.
//!
//! A family's rotations and revocations run in transactions begun with `Db::begin_write` on the
//! family, so none interleaves with another of the same family on either database.

use sqlx::AnyConnection;

use super::{Counted, Db};

/// Records refresh token `jti` of `family` on `tx` unless the family has been revoked; returns
/// whether it did.
pub async fn record_refresh(
    tx: &mut AnyConnection,
    jti: &str,
    family: &str,
    user_id: &str,
    expires_at: i64,
    now: i64,
) -> Result<bool, sqlx::Error> {
    let recorded = sqlx::query(
        "INSERT INTO refresh_tokens (jti, family_id, user_id, expires_at, created_at) \
         SELECT $1, $2, $3, $4, $5 WHERE NOT EXISTS \
         (SELECT 1 FROM refresh_tokens WHERE family_id = $2 AND revoked_at IS NOT NULL)",
    )
    .bind(jti)
    .bind(family)
    .bind(user_id)
    .bind(expires_at)
    .bind(now)
    .execute(Counted(tx))
    .await?;
    Ok(recorded.rows_affected() == 1)
}

/// Claims refresh token `jti` on `tx`: only one request can move it from unused to used. Returns
/// its family and user, or `None` when it is used, revoked, expired or unknown.
pub async fn claim_refresh(
    tx: &mut AnyConnection,
    jti: &str,
    now: i64,
) -> Result<Option<(String, String)>, sqlx::Error> {
    sqlx::query_as(
        "UPDATE refresh_tokens SET used_at = $1 \
         WHERE jti = $2 AND used_at IS NULL AND revoked_at IS NULL AND expires_at > $1 \
         RETURNING family_id, user_id",
    )
    .bind(now)
    .bind(jti)
    .fetch_optional(Counted(tx))
    .await
}

/// Revokes the whole family of refresh token `jti` on `tx`; returns how many tokens it revoked.
pub async fn revoke_family_of(
    tx: &mut AnyConnection,
    jti: &str,
    now: i64,
) -> Result<u64, sqlx::Error> {
    let revoked = sqlx::query(
        "UPDATE refresh_tokens SET revoked_at = $1 WHERE revoked_at IS NULL AND family_id = \
         (SELECT family_id FROM refresh_tokens WHERE jti = $2)",
    )
    .bind(now)
    .bind(jti)
    .execute(Counted(tx))
    .await?;
    Ok(revoked.rows_affected())
}

/// Revokes `user_id`'s refresh-token family `family` on `tx`.
pub async fn revoke_family(
    tx: &mut AnyConnection,
    family: &str,
    user_id: &str,
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE refresh_tokens SET revoked_at = $1 \
         WHERE family_id = $2 AND user_id = $3 AND revoked_at IS NULL",
    )
    .bind(now)
    .bind(family)
    .bind(user_id)
    .execute(Counted(tx))
    .await
    .map(drop)
}

/// Records access token `jti` as revoked until it expires (again: a no-op).
pub async fn revoke_access(db: &Db, jti: &str, expires_at: i64) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO revoked_tokens (jti, expires_at) VALUES ($1, $2) ON CONFLICT DO NOTHING",
    )
    .bind(jti)
    .bind(expires_at)
    .execute(db.writer())
    .await
    .map(drop)
}

/// The revoked access tokens that expire after `after`: (jti, expiry).
pub async fn revoked_after(db: &Db, after: i64) -> Result<Vec<(String, i64)>, sqlx::Error> {
    sqlx::query_as("SELECT jti, expires_at FROM revoked_tokens WHERE expires_at > $1")
        .bind(after)
        .fetch_all(&db.read)
        .await
}

/// Deletes the revoked-token and refresh-token rows that expire at `before` or earlier.
pub async fn prune(db: &Db, before: i64) -> Result<(), sqlx::Error> {
    let mut tx = db.write.begin().await?;
    for table in ["revoked_tokens", "refresh_tokens"] {
        sqlx::query(&format!("DELETE FROM {table} WHERE expires_at <= $1"))
            .bind(before)
            .execute(Counted(&mut *tx))
            .await?;
    }
    tx.commit().await
}
