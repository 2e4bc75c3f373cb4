//! The verified-token cache: a repeated token skips signature verification until it expires.
//!
//! Bounded by bytes (token length plus a fixed overhead per entry) in a `quick_cache` (S3-FIFO,
//! sharded, hashed with a per-process random key so clients cannot aim collisions). Only tokens that
//! verified are stored, so a flood of garbage cannot evict good entries. Revocation is checked on
//! every request, hit or miss, so a revoked token is never served from here.

use std::sync::Arc;

use quick_cache::Weighter;
use quick_cache::sync::Cache;

use super::Principal;

/// Bytes charged per entry beyond the token itself (principal, map slot, `Arc`s).
const ENTRY_OVERHEAD: u64 = 256;

#[derive(Clone, Copy, Debug)]
struct TokenWeighter;

/// A verified principal and the key-set generation it was verified under (see [`TokenCache::get`]).
type Entry = (Principal, u64);

impl Weighter<Arc<str>, Entry> for TokenWeighter {
    fn weight(&self, key: &Arc<str>, _val: &Entry) -> u64 {
        key.len() as u64 + ENTRY_OVERHEAD
    }
}

#[derive(Clone)]
pub(crate) struct TokenCache {
    cache: Arc<Cache<Arc<str>, Entry, TokenWeighter>>,
    leeway: u64,
}

impl std::fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenCache")
            .field("entries", &self.cache.len())
            .field("bytes", &self.cache.weight())
            .finish()
    }
}

impl TokenCache {
    pub(crate) fn new(max_bytes: u64, leeway: u64) -> Self {
        let estimated = usize::try_from(max_bytes / (ENTRY_OVERHEAD + 512))
            .unwrap_or(1024)
            .max(16);
        Self {
            cache: Arc::new(Cache::with_weighter(estimated, max_bytes, TokenWeighter)),
            leeway,
        }
    }

    /// The principal of a token verified before, if it has not expired since and no key has
    /// left the key set since (`generation`, the count of such removals, is still the one it was
    /// verified under): its key may be one that went, and the token must be verified again.
    pub(crate) fn get(&self, token: &str, now: u64, generation: u64) -> Option<Principal> {
        let (principal, verified_under) = self.cache.get(token)?;
        match principal.expires_at() {
            Some(exp) if now < exp.saturating_add(self.leeway) && verified_under == generation => {
                Some(principal)
            }
            _ => {
                self.cache.remove(token);
                None
            }
        }
    }

    /// Caches `principal`, verified under key-set `generation` (read before verifying).
    pub(crate) fn insert(&self, token: &str, principal: Principal, generation: u64) {
        self.cache.insert(Arc::from(token), (principal, generation));
    }

    pub(crate) fn len(&self) -> usize {
        self.cache.len()
    }
}
