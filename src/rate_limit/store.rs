//! Where the theoretical arrival times live: [`RateLimitStore`] and the in-process
//! [`InMemoryStore`].
//!
//! A store meets the algorithm through one narrow method, [`check`](RateLimitStore::check): read
//! the key's TAT, run [`gcra::check`](super::check), write the new TAT back if allowed — atomically
//! per key — and return the decision. A Redis store does the same in one Lua script and takes `now`
//! from the Redis server, so instances never disagree on time.

use std::collections::HashMap;
use std::collections::hash_map::{Entry, RandomState};
use std::fmt;
use std::hash::BuildHasher;
use std::sync::Mutex;

use super::{Decision, Quota, check};

/// Keeps one TAT per key and decides atomically per key.
pub trait RateLimitStore: Send + Sync + fmt::Debug + 'static {
    /// Checks one request for `key` at `now` (nanoseconds on the layer's clock) and records it
    /// when allowed. Two calls for the same key never interleave between read and write.
    fn check(&self, key: &str, quota: &Quota, now: u64) -> Decision;
}

/// What [`InMemoryStore`] does with a new key when full of keys that still carry state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum WhenFull {
    /// Drop the entry closest to idle (the smallest TAT) — it forgets the least. The default: a
    /// flood of new keys can then cost a well-behaved key at most its already-spent burst.
    #[default]
    EvictNearestIdle,
    /// Refuse the new key's request (a 429) until a slot frees up: memory never grows and no
    /// key's history is lost, but new clients are refused while the table is full.
    Deny,
}

/// The default maximum number of keys of an [`InMemoryStore`].
pub const DEFAULT_MAX_KEYS: usize = 1 << 20;

const SHARDS: usize = 64;

type Shard = Mutex<HashMap<Box<str>, u64>>;

/// An in-process store: 64 mutex-guarded shards, memory bounded by a maximum number of keys.
///
/// There is no cleanup task: an entry whose TAT is in the past is the same as no entry, so a full
/// shard first drops those before deciding by [`WhenFull`].
///
/// ```
/// use protothrive::rate_limit::{InMemoryStore, Quota, RateLimitStore};
/// let store = InMemoryStore::with_max_keys(1000);
/// let q: Quota = "1/s burst 1".parse().unwrap();
/// assert!(store.check("k", &q, 0).is_allowed());
/// assert!(!store.check("k", &q, 1).is_allowed());
/// assert_eq!(store.len(), 1);
/// ```
pub struct InMemoryStore {
    shards: Box<[Shard]>,
    hasher: RandomState,
    per_shard: usize,
    when_full: WhenFull,
}

impl fmt::Debug for InMemoryStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InMemoryStore")
            .field("max_keys", &(self.per_shard * SHARDS))
            .field("when_full", &self.when_full)
            .finish_non_exhaustive()
    }
}

impl Default for InMemoryStore {
    fn default() -> Self {
        Self::with_max_keys(DEFAULT_MAX_KEYS)
    }
}

impl InMemoryStore {
    /// A store holding at most about `max_keys` keys (rounded up to a multiple of 64).
    #[must_use]
    pub fn with_max_keys(max_keys: usize) -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            hasher: RandomState::new(),
            per_shard: max_keys.div_ceil(SHARDS).max(1),
            when_full: WhenFull::default(),
        }
    }

    /// Sets what happens to a new key when the store is full of live keys.
    #[must_use]
    pub fn when_full(mut self, policy: WhenFull) -> Self {
        self.when_full = policy;
        self
    }

    /// The number of keys held (idle ones included until they are dropped).
    #[must_use]
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().map_or(0, |m| m.len()))
            .sum()
    }

    /// Whether no key is held.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl RateLimitStore for InMemoryStore {
    fn check(&self, key: &str, quota: &Quota, now: u64) -> Decision {
        let shard = &self.shards[(self.hasher.hash_one(key) as usize) % SHARDS];
        // A poisoned shard only means another thread panicked mid-insert of plain integers.
        let mut map = shard
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(tat) = map.get_mut(key) {
            let d = check(*tat, now, quota);
            if let Decision::Allow { tat: new, .. } = d {
                *tat = new;
            }
            return d;
        }
        let d = check(0, now, quota);
        let Decision::Allow { tat: new, .. } = d else {
            return d;
        };
        if map.len() >= self.per_shard {
            map.retain(|_, tat| *tat > now);
        }
        if map.len() >= self.per_shard {
            match self.when_full {
                WhenFull::Deny => {
                    return Decision::Deny {
                        retry_after: quota.interval_nanos(),
                        reset: quota.interval_nanos(),
                    };
                }
                WhenFull::EvictNearestIdle => {
                    if let Some(k) = map.iter().min_by_key(|(_, t)| **t).map(|(k, _)| k.clone()) {
                        map.remove(&k);
                    }
                }
            }
        }
        if let Entry::Vacant(v) = map.entry(key.into()) {
            v.insert(new);
        }
        d
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    const SEC: u64 = 1_000_000_000;

    fn q(s: &str) -> Quota {
        s.parse().unwrap()
    }

    #[test]
    fn memory_is_bounded_and_idle_keys_go_first() {
        let store = InMemoryStore::with_max_keys(SHARDS * 4);
        let quota = q("1/s burst 1");
        for i in 0..10_000 {
            assert!(store.check(&format!("k{i}"), &quota, 0).is_allowed());
        }
        assert!(store.len() <= SHARDS * 4);
        // Later, every old key is idle: new keys replace them, nothing is refused.
        for i in 0..10_000 {
            assert!(store.check(&format!("n{i}"), &quota, 10 * SEC).is_allowed());
        }
        assert!(store.len() <= SHARDS * 4);
    }

    #[test]
    fn full_of_live_keys_with_deny_policy_refuses_new_keys() {
        let store = InMemoryStore::with_max_keys(SHARDS).when_full(WhenFull::Deny);
        let quota = q("1/min burst 1");
        let mut refused = 0;
        for i in 0..SHARDS * 20 {
            if !store.check(&format!("k{i}"), &quota, 0).is_allowed() {
                refused += 1;
            }
        }
        assert!(refused > 0);
        assert_eq!(store.len(), SHARDS);
        // Once the keys are idle, new ones are admitted.
        assert!(store.check("late", &quota, 120 * SEC).is_allowed());
    }

    #[test]
    fn threads_hammering_one_key_never_exceed_the_burst() {
        let store = Arc::new(InMemoryStore::default());
        let quota = q("10/min burst 5");
        let allowed: usize = (0..4)
            .map(|_| {
                let store = store.clone();
                std::thread::spawn(move || {
                    (0..1000)
                        .filter(|_| store.check("one", &quota, 0).is_allowed())
                        .count()
                })
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|h| h.join().unwrap())
            .sum();
        assert_eq!(allowed, 5);
    }

    #[test]
    fn denied_requests_do_not_consume() {
        let store = InMemoryStore::default();
        let quota = q("1/s burst 1");
        assert!(store.check("k", &quota, 0).is_allowed());
        for _ in 0..100 {
            assert!(!store.check("k", &quota, SEC / 2).is_allowed());
        }
        assert!(store.check("k", &quota, SEC).is_allowed());
    }
}
