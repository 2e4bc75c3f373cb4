//! Revoked access tokens: the in-process list, shared with every instance through Redis when
//! `PROTOTHRIVE_REDIS_URL` is set (each instance consults it on every request, so a logout on one
//! is refused by all from the next request on); the start-up reload from the database; and
//! pruning of revoked-token and refresh-token rows no token can need any more.
//!
//! An authenticator accepts a token until its `exp` plus the leeway, so rows are kept
//! [`MAX_LEEWAY`] past `expires_at` (the most leeway an authenticator may have) and reloaded
//! while within it.

use std::sync::atomic::{AtomicI64, Ordering};

use protothrive::auth::{AuthenticatorBuilder, MAX_LEEWAY, RedisRevocations, RevocationList};
use protothrive::clock::SharedClock;
use protothrive::redis_handle::RedisHandle;

use crate::db::Db;

/// How often a running process prunes (it also prunes at start).
const PRUNE_EVERY_SECONDS: i64 = 3600;

/// When this process prunes next (UNIX seconds).
static NEXT_PRUNE: AtomicI64 = AtomicI64::new(0);

/// The UNIX time before which a row's `expires_at` can no longer matter.
fn horizon(now: i64) -> i64 {
    now.saturating_sub(i64::try_from(MAX_LEEWAY.as_secs()).unwrap_or(i64::MAX))
}

/// This process's revocations, and every instance's through Redis when there is one.
#[derive(Clone, Debug)]
pub struct Revocations {
    list: RevocationList,
    shared: Option<RedisRevocations>,
}

impl Revocations {
    /// Has the authenticator consult them on every request.
    pub fn install(&self, builder: AuthenticatorBuilder) -> AuthenticatorBuilder {
        match &self.shared {
            Some(shared) => builder.revocation(shared.clone()),
            None => builder.revocation_list(self.list.clone()),
        }
    }

    /// Revokes a token until its `exp`, for every instance. An `Err` says the other instances
    /// could not be told (this one refuses the token all the same).
    pub async fn revoke(&self, jti: &str, exp: u64) -> Result<(), String> {
        match &self.shared {
            Some(shared) => shared.revoke(jti, exp).await.map_err(|e| e.to_string()),
            None => {
                self.list.revoke(jti, exp);
                Ok(())
            }
        }
    }

    /// Entries in this process's list.
    pub fn count(&self) -> usize {
        self.list.len()
    }
}

/// The revocations: every revoked token that could still be accepted, from the database, in
/// front of Redis when there is one.
pub async fn load(
    db: &Db,
    clock: SharedClock,
    redis: Option<&RedisHandle>,
) -> Result<Revocations, Box<dyn std::error::Error>> {
    let list = load_list(db, clock).await?;
    let shared = match redis {
        Some(h) => Some(RedisRevocations::from_handle(h, list.clone()).build()?),
        None => None,
    };
    Ok(Revocations { list, shared })
}

/// The in-process list with every revoked token in the database that could still be accepted.
async fn load_list(db: &Db, clock: SharedClock) -> Result<RevocationList, sqlx::Error> {
    let now = i64::try_from(clock.unix_seconds()).unwrap_or(i64::MAX);
    prune(db, now).await?;
    let list = RevocationList::new(clock);
    let revoked = crate::db::tokens::revoked_after(db, horizon(now)).await?;
    for (jti, exp) in revoked {
        list.revoke(&jti, u64::try_from(exp).unwrap_or(0));
    }
    Ok(list)
}

/// Deletes revoked-token and refresh-token rows whose tokens nobody can use any more.
pub async fn prune(db: &Db, now: i64) -> Result<(), sqlx::Error> {
    NEXT_PRUNE.store(now.saturating_add(PRUNE_EVERY_SECONDS), Ordering::Relaxed);
    crate::db::tokens::prune(db, horizon(now)).await
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
