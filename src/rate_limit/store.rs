//! Where the theoretical arrival times live: [`RateLimitStore`] and the in-process
//! [`InMemoryStore`].
//!
//! A store meets the algorithm through one narrow method, [`check`](RateLimitStore::check): read
//! the key's TAT, run [`gcra::check`](super::check), write the new TAT back if allowed — atomically
//! per key — and return the decision. A Redis store does the same in one Lua script and takes `now`
//! from the Redis server, so instances never disagree on time.

use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher, RandomState};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{PoisonError, RwLock};

use super::{Decision, Quota, check};

/// Keeps one TAT per key and decides atomically per key.
pub trait RateLimitStore: Send + Sync + fmt::Debug + 'static {
    /// Checks one request for `key` at `now` (nanoseconds on the layer's clock) and records it
    /// when allowed. Calls for the same key are linearizable: each decides on the TAT left by the
    /// previous one, as if they never interleaved between read and write.
    fn check(&self, key: &str, quota: &Quota, now: u64) -> Decision;
}

/// What [`InMemoryStore`] does with a new key when a shard is full of keys that still carry state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum WhenFull {
    /// Drop the entries closest to idle (the smallest TATs) — they forget the least. The default:
    /// a flood of new keys can then cost a well-behaved key at most its already-spent burst. An
    /// eighth of the shard goes at once, so a flood costs one scan of a shard per eighth of it
    /// rather than one per new key.
    #[default]
    EvictNearestIdle,
    /// Refuse the new key's request (a 429) until a slot frees up: memory never grows and no
    /// key's history is lost, but new clients are refused while the table is full.
    Deny,
}

/// The default maximum number of keys of an [`InMemoryStore`].
pub const DEFAULT_MAX_KEYS: usize = 1 << 20;

const SHARDS: usize = 64;

/// One shard on its own cache lines (128 bytes covers adjacent-line prefetching), so threads on
/// different shards never bounce a lock word between cores.
#[repr(align(128))]
struct Shard(RwLock<Table>);

struct Entry {
    key: Box<str>,
    tat: AtomicU64,
}

/// The table is keyed by the key's 64-bit keyed hash, computed once per check, so the key is
/// hashed once and compared once. Two keys with one hash (about one chance in 2⁶⁴ per pair, and
/// not aimable without the seed) are still kept apart: the later one goes to `collided`.
struct Table {
    map: HashMap<u64, Entry, BuildHasherDefault<Prehashed>>,
    collided: Vec<Entry>,
    /// No entry's TAT is below this (TATs only grow), so while `now` is below it nothing in the
    /// table is idle and a full table need not be scanned.
    floor: u64,
}

/// Passes the already-computed hash through to the table.
#[derive(Default)]
struct Prehashed(u64);

impl Hasher for Prehashed {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write_u64(&mut self, hash: u64) {
        self.0 = hash;
    }

    // Only `u64` keys are hashed here; this keeps the hasher total all the same.
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }
}

/// An in-process store: 64 shards of lock-free per-key state, memory bounded by a maximum
/// number of keys, idle keys dropped without a cleanup task.
///
/// **How.** Each key's TAT is one `AtomicU64` in one of 64 shards, each a `RwLock` over a hash
/// table, each on its own cache lines. A check of a key already held takes the shard's *read*
/// lock (shared with every other reader) and updates the TAT with a compare-and-swap loop around
/// the pure [`check`](super::check): two threads on the same key never wait for each other, the
/// loser of a race recomputes from the winner's TAT, and a denial writes nothing. Only a new key
/// takes the shard's write lock, to insert it (and, when the shard is full, to drop entries),
/// which holds up that shard's readers for the time of one insert.
///
/// **Cost of a check.** One SipHash of the key (a per-store random seed, so clients cannot aim
/// keys at one slot) whose bits pick both the shard and the slot, one uncontended read-lock
/// acquire and release, one key comparison, one CAS: about 26 ns on one thread (see
/// `BENCHMARKS.md`). Threads on different shards write no common cache line; threads hammering
/// one key share its TAT's line, as with any exact limiter.
///
/// **Memory.** Each shard holds at most `max_keys / 64` keys (rounded up): about 100 bytes per
/// key held for keys like `ip|203.0.113.7` ([`approx_memory_bytes`](Self::approx_memory_bytes)),
/// so about 100 MiB at the default [`DEFAULT_MAX_KEYS`]. An entry whose TAT is at or before `now`
/// carries no information (the key's burst is full again), so a full shard first drops those, and
/// only when none is idle applies [`WhenFull`]. A shard remembers a lower bound of its TATs, so a
/// shard full of live keys is not rescanned for idle ones until that bound has passed.
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
            .field("max_keys", &self.max_keys())
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
            shards: (0..SHARDS)
                .map(|_| {
                    Shard(RwLock::new(Table {
                        map: HashMap::default(),
                        collided: Vec::new(),
                        floor: u64::MAX,
                    }))
                })
                .collect(),
            hasher: RandomState::new(),
            per_shard: max_keys.div_ceil(SHARDS).max(1),
            when_full: WhenFull::default(),
        }
    }

    /// Sets what happens to a new key when its shard is full of live keys.
    #[must_use]
    pub fn when_full(mut self, policy: WhenFull) -> Self {
        self.when_full = policy;
        self
    }

    /// The most keys this store holds: `max_keys` rounded up to a multiple of 64.
    #[must_use]
    pub fn max_keys(&self) -> usize {
        self.per_shard * SHARDS
    }

    /// The number of keys held (idle ones included until they are dropped).
    #[must_use]
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| s.read().len()).sum()
    }

    /// Whether no key is held.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// An estimate of the heap bytes held: the shards, each table's slots (its capacity × (the
    /// slot's 32 bytes + 1 control byte)) and each key's own allocation as a glibc-like allocator
    /// sizes it (the key's bytes + 8, rounded up to 16, at least 32). For a metrics gauge and the
    /// memory test, not an exact count.
    #[must_use]
    pub fn approx_memory_bytes(&self) -> usize {
        let slot = std::mem::size_of::<(u64, Entry)>() + 1;
        let key = |e: &Entry| (e.key.len() + 8).next_multiple_of(16).max(32);
        let shards = std::mem::size_of::<Shard>() * SHARDS;
        shards
            + self
                .shards
                .iter()
                .map(|s| {
                    let t = s.read();
                    t.map.capacity() * slot
                        + t.collided.capacity() * std::mem::size_of::<Entry>()
                        + t.map.values().chain(&t.collided).map(key).sum::<usize>()
                })
                .sum::<usize>()
    }

    /// The slow path: `key` was not in its shard a moment ago. Takes the write lock.
    fn insert(&self, shard: &Shard, hash: u64, key: &str, quota: &Quota, now: u64) -> Decision {
        let d = check(0, now, quota);
        let Decision::Allow { tat: new, .. } = d else {
            return d;
        };
        let mut table = shard.write();
        // Another thread may have inserted it between our read and write locks.
        if let Some(tat) = table.get(hash, key) {
            return update(tat, quota, now);
        }
        if table.len() >= self.per_shard && !table.make_room(now, self.per_shard, self.when_full) {
            return Decision::Deny {
                retry_after: quota.interval_nanos(),
                reset: quota.interval_nanos(),
            };
        }
        table.insert(hash, key, new);
        d
    }
}

impl Shard {
    // A poisoned shard only means another thread panicked while holding it; the table holds
    // plain integers and is never left half-updated by the code below.
    fn read(&self) -> std::sync::RwLockReadGuard<'_, Table> {
        self.0.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Table> {
        self.0.write().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Table {
    fn len(&self) -> usize {
        self.map.len() + self.collided.len()
    }

    fn get(&self, hash: u64, key: &str) -> Option<&AtomicU64> {
        match self.map.get(&hash) {
            Some(e) if *e.key == *key => Some(&e.tat),
            _ if self.collided.is_empty() => None,
            _ => self
                .collided
                .iter()
                .find(|e| *e.key == *key)
                .map(|e| &e.tat),
        }
    }

    fn insert(&mut self, hash: u64, key: &str, tat: u64) {
        let entry = Entry {
            key: key.into(),
            tat: AtomicU64::new(tat),
        };
        match self.map.entry(hash) {
            std::collections::hash_map::Entry::Occupied(_) => self.collided.push(entry),
            std::collections::hash_map::Entry::Vacant(v) => {
                v.insert(entry);
            }
        }
        self.floor = self.floor.min(tat);
    }

    /// Keeps the entries whose TAT passes `keep`.
    fn retain(&mut self, mut keep: impl FnMut(u64) -> bool) {
        self.map.retain(|_, e| keep(*e.tat.get_mut()));
        self.collided.retain_mut(|e| keep(*e.tat.get_mut()));
    }

    /// Frees at least one slot of a full table, or returns `false` (policy [`WhenFull::Deny`]
    /// and no idle entry).
    fn make_room(&mut self, now: u64, per_shard: usize, when_full: WhenFull) -> bool {
        if now >= self.floor {
            let mut floor = u64::MAX;
            self.retain(|tat| {
                let live = tat > now;
                if live {
                    floor = floor.min(tat);
                }
                live
            });
            self.floor = floor;
        }
        if self.len() < per_shard {
            return true;
        }
        match when_full {
            WhenFull::Deny => false,
            WhenFull::EvictNearestIdle => {
                self.evict_nearest_idle((per_shard / 8).max(1));
                true
            }
        }
    }

    /// Drops the `n` entries with the smallest TATs.
    fn evict_nearest_idle(&mut self, n: usize) {
        let mut tats: Vec<u64> = (self.map.values_mut().chain(&mut self.collided))
            .map(|e| *e.tat.get_mut())
            .collect();
        let n = n.min(tats.len());
        if n == 0 {
            return;
        }
        let threshold = *tats.select_nth_unstable(n - 1).1;
        // Every TAT below the threshold goes; ties at the threshold go until `n` are gone.
        let mut ties = n - tats.iter().filter(|&&t| t < threshold).count();
        self.retain(|tat| {
            if tat < threshold {
                false
            } else if tat == threshold && ties > 0 {
                ties -= 1;
                false
            } else {
                true
            }
        });
        self.floor = threshold;
    }
}

/// The fast path: a compare-and-swap loop around the pure check. A denial writes nothing; an
/// allowance is stored only if the TAT it was computed from is still there, else it is
/// recomputed from the TAT that won.
fn update(cell: &AtomicU64, quota: &Quota, now: u64) -> Decision {
    let mut tat = cell.load(Ordering::Acquire);
    loop {
        let d = check(tat, now, quota);
        let Decision::Allow { tat: new, .. } = d else {
            return d;
        };
        match cell.compare_exchange_weak(tat, new, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => return d,
            Err(seen) => tat = seen,
        }
    }
}

impl RateLimitStore for InMemoryStore {
    fn check(&self, key: &str, quota: &Quota, now: u64) -> Decision {
        let hash = self.hasher.hash_one(key);
        // The table takes its slot from the low bits and its tag from the top seven; the shard
        // comes from bits 32-37, which neither uses for tables under 2³² slots.
        #[allow(clippy::cast_possible_truncation)]
        let shard = &self.shards[(hash >> 32) as usize % SHARDS];
        if let Some(tat) = shard.read().get(hash, key) {
            return update(tat, quota, now);
        }
        self.insert(shard, hash, key, quota, now)
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
    fn keys_with_one_hash_are_kept_apart() {
        let mut t = Table {
            map: HashMap::default(),
            collided: Vec::new(),
            floor: u64::MAX,
        };
        t.insert(7, "a", 10);
        t.insert(7, "b", 20);
        t.insert(8, "c", 30);
        assert_eq!(t.len(), 3);
        let tat = |t: &Table, k| t.get(7, k).map(|a| a.load(Ordering::Relaxed));
        assert_eq!(
            (tat(&t, "a"), tat(&t, "b"), tat(&t, "x")),
            (Some(10), Some(20), None)
        );
        assert_eq!(t.floor, 10);
        // The first of the pair goes; the collided one is still found under the same hash.
        t.evict_nearest_idle(1);
        assert_eq!((tat(&t, "a"), tat(&t, "b")), (None, Some(20)));
        assert!(t.make_room(25, 2, WhenFull::Deny));
        assert_eq!((t.len(), tat(&t, "b")), (1, None));
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
