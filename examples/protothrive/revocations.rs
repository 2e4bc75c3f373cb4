//! Revoked access tokens and refresh tokens in the database: the start-up reload into the
//! in-process list, and pruning of rows no token can need any more.
//!
//! An authenticator accepts a token until its `exp` plus the leeway, so rows are kept
//! [`MAX_LEEWAY`] past `expires_at` (the most leeway an authenticator may have) and reloaded
//! while within it.

use std::sync::atomic::{AtomicI64, Ordering};

use protothrive::auth::{MAX_LEEWAY, RevocationList};
use protothrive::clock::SharedClock;

use crate::db::Db;

/// How often a running process prunes (it also prunes at start).
const PRUNE_EVERY_SECONDS: i64 = 3600;

/// When this process prunes next (UNIX seconds).
static NEXT_PRUNE: AtomicI64 = AtomicI64::new(0);

/// The UNIX time before which a row's `expires_at` can no longer matter.
fn horizon(now: i64) -> i64 {
    now.saturating_sub(i64::try_from(MAX_LEEWAY.as_secs()).unwrap_or(i64::MAX))
}

/// The revocation list with every revoked token that could still be accepted.
pub async fn load(db: &Db, clock: SharedClock) -> Result<RevocationList, sqlx::Error> {
    let now = i64::try_from(clock.unix_seconds()).unwrap_or(i64::MAX);
    prune(db, now).await?;
    let list = RevocationList::new(clock);
    let revoked: Vec<(String, i64)> =
        sqlx::query_as("SELECT jti, expires_at FROM revoked_tokens WHERE expires_at > ?")
            .bind(horizon(now))
            .fetch_all(&db.read)
            .await?;
    for (jti, exp) in revoked {
        list.revoke(&jti, u64::try_from(exp).unwrap_or(0));
    }
    Ok(list)
}

/// Deletes revoked-token and refresh-token rows whose tokens nobody can use any more.
pub async fn prune(db: &Db, now: i64) -> Result<(), sqlx::Error> {
    NEXT_PRUNE.store(now.saturating_add(PRUNE_EVERY_SECONDS), Ordering::Relaxed);
    let before = horizon(now);
    let mut tx = db.write.begin().await?;
    for table in ["revoked_tokens", "refresh_tokens"] {
        crate::db::tick();
        sqlx::query(&format!("DELETE FROM {table} WHERE expires_at <= ?"))
            .bind(before)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await
}

/// [`prune`] when the last one is an hour old (the writes that add rows call this after theirs,
/// outside any transaction: the writer is one connection).
pub async fn prune_now_and_then(db: &Db, now: i64) {
    if now < NEXT_PRUNE.load(Ordering::Relaxed) {
        return;
    }
    if let Err(e) = prune(db, now).await {
        tracing::warn!(error = %e, "pruning expired token rows failed");
    }
}
