use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, PoisonError, RwLock};

use crate::clock::SharedClock;

use super::{AuthError, Principal};

/// A boxed, sendable future (the return type of the auth hooks).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Decides whether a token id (`jti`) was revoked. Consulted on every request that carries a token
/// with a `jti`, whether its verification came from the cache or not.
///
/// Implement it over a shared store (Redis, the database) when several instances must agree; for
/// one process, [`RevocationList`] is ready.
pub trait Revocation: Send + Sync + fmt::Debug + 'static {
    /// Whether `token_id` is revoked. An `Err` refuses the request as unavailable (fail closed).
    fn is_revoked<'a>(
        &'a self,
        token_id: &'a str,
        principal: &'a Principal,
    ) -> BoxFuture<'a, Result<bool, AuthError>>;
}

/// An in-process revocation list: each entry is kept until the revoked token would have expired
/// anyway, then dropped, so its size is bounded by revocations per token lifetime.
///
/// An authenticator accepts a token until `exp` plus its leeway, so an entry revoked until `exp`
/// is kept [`MAX_LEEWAY`](super::MAX_LEEWAY) longer (the most leeway any authenticator may
/// have): pass the token's `exp` and the token stays refused for as long as it could be accepted.
///
/// ```
/// use protothrive::auth::{MAX_LEEWAY, RevocationList};
/// use protothrive::clock::ManualClock;
/// use std::{sync::Arc, time::Duration};
///
/// let clock = ManualClock::at_unix(1_000);
/// let list = RevocationList::new(Arc::new(clock.clone()));
/// list.revoke("jti-1", 1_900);
/// assert!(list.contains("jti-1"));
/// clock.advance(Duration::from_secs(901));
/// assert!(list.contains("jti-1")); // past `exp`, but within any authenticator's leeway
/// clock.advance(MAX_LEEWAY);
/// assert!(!list.contains("jti-1")); // no authenticator accepts the token by now
/// ```
#[derive(Clone)]
pub struct RevocationList {
    entries: Arc<RwLock<HashMap<Box<str>, u64>>>,
    clock: SharedClock,
}

impl RevocationList {
    /// An empty list reading time from `clock`.
    #[must_use]
    pub fn new(clock: SharedClock) -> Self {
        Self {
            entries: Arc::default(),
            clock,
        }
    }

    /// Revokes `token_id` until `until` (UNIX seconds; the token's `exp` is the right value) plus
    /// [`MAX_LEEWAY`](super::MAX_LEEWAY), past which no authenticator accepts the token.
    pub fn revoke(&self, token_id: &str, until: u64) {
        let until = until.saturating_add(super::MAX_LEEWAY.as_secs());
        let now = self.clock.unix_seconds();
        let mut entries = self.entries.write().unwrap_or_else(PoisonError::into_inner);
        // Amortised purge: whenever the map doubles, drop what has expired.
        if entries.len() >= 1024 && entries.len().is_power_of_two() {
            entries.retain(|_, until| *until > now);
        }
        entries.insert(token_id.into(), until);
    }

    /// Whether `token_id` is currently revoked.
    #[must_use]
    pub fn contains(&self, token_id: &str) -> bool {
        let now = self.clock.unix_seconds();
        self.entries
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(token_id)
            .is_some_and(|until| *until > now)
    }

    /// Entries currently held (expired ones included until the next purge).
    #[must_use]
    pub fn len(&self) -> usize {
        self.entries
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// Whether the list holds no entries.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl fmt::Debug for RevocationList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RevocationList")
            .field("entries", &self.len())
            .finish()
    }
}

impl Revocation for RevocationList {
    fn is_revoked<'a>(
        &'a self,
        token_id: &'a str,
        _principal: &'a Principal,
    ) -> BoxFuture<'a, Result<bool, AuthError>> {
        let revoked = self.contains(token_id);
        Box::pin(std::future::ready(Ok(revoked)))
    }
}

/// The revocation check, with a fast path for the built-in list (no boxed future per request).
#[derive(Clone, Debug)]
pub(crate) enum Revoker {
    List(RevocationList),
    Custom(Arc<dyn Revocation>),
}

impl Revoker {
    pub(crate) async fn is_revoked(
        &self,
        token_id: &str,
        principal: &Principal,
    ) -> Result<bool, AuthError> {
        match self {
            Self::List(list) => Ok(list.contains(token_id)),
            Self::Custom(hook) => hook.is_revoked(token_id, principal).await,
        }
    }
}
