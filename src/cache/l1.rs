//! The in-process tier (L1): quick_cache weighed by bytes, and the numbered log of the purges
//! applied to it, which keeps a response fetched while a purge ran from being stored after it.

use std::sync::Mutex;

use super::policy::key::is_variant_key;
use super::store::{CacheEntry, Purge};

/// Weighs L1 entries by their bytes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Weigher;

impl quick_cache::Weighter<String, CacheEntry> for Weigher {
    fn weight(&self, key: &String, val: &CacheEntry) -> u64 {
        key.len() as u64 + val.weight()
    }
}

/// The L1 tier.
pub(crate) type L1 = quick_cache::sync::Cache<String, CacheEntry, Weigher>;

pub(crate) fn l1(max_bytes: u64) -> L1 {
    let items = usize::try_from((max_bytes / 2048).max(16)).unwrap_or(usize::MAX);
    L1::with_weighter(items, max_bytes, Weigher)
}

/// The purges applied to L1, numbered, so that a response fetched while a purge ran is not stored
/// after it (a read that started before a write must not put the old answer back).
#[derive(Debug, Default)]
pub(crate) struct PurgeLog {
    seq: std::sync::atomic::AtomicU64,
    recent: Mutex<std::collections::VecDeque<(u64, Purge)>>,
}

/// How many recent purges are kept; a store that started before the oldest is refused.
const PURGE_LOG: usize = 512;

impl PurgeLog {
    /// The number of the last purge (take it before asking the origin or the tier).
    pub(crate) fn seq(&self) -> u64 {
        self.seq.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Records `what`, then applies it to `l1`; returns its number.
    pub(crate) fn purge(&self, l1: &L1, what: &Purge) -> u64 {
        let n = self.record(what);
        invalidate_l1(l1, what);
        n
    }

    /// Records `what` without applying it (apply it after, as [`invalidate_l1_all`] does for
    /// several at once); returns its number.
    pub(crate) fn record(&self, what: &Purge) -> u64 {
        {
            let mut recent = self
                .recent
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let n = self.seq.fetch_add(1, std::sync::atomic::Ordering::AcqRel) + 1;
            recent.push_back((n, what.clone()));
            if recent.len() > PURGE_LOG {
                recent.pop_front();
            }
            n
        }
    }

    /// Whether a purge recorded after `since` covers `key` (or the log no longer reaches back).
    pub(crate) fn purged_since(&self, since: u64, key: &str, entry: &CacheEntry) -> bool {
        self.purged_since_except(since, &[], key, entry)
    }

    /// [`purged_since`](Self::purged_since), leaving out the purges numbered in `own` (a
    /// write-through's own).
    pub(crate) fn purged_since_except(
        &self,
        since: u64,
        own: &[u64],
        key: &str,
        entry: &CacheEntry,
    ) -> bool {
        if self.seq() == since {
            return false;
        }
        let recent = self
            .recent
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if recent.front().is_none_or(|(first, _)| *first > since + 1) {
            return true;
        }
        recent.iter().any(|(n, p)| {
            *n > since
                && !own.contains(n)
                && (p.matches(key, entry) || matches!(p, Purge::Key(k) if is_variant_key(key, k)))
        })
    }

    /// Inserts `entry` into `l1` unless a purge since `since` covers it. The check runs after the
    /// insert too: a purge records itself before it clears, so either this sees it or it clears
    /// what was inserted. Returns whether the entry stayed.
    pub(crate) fn insert(&self, l1: &L1, since: u64, key: &str, entry: &CacheEntry) -> bool {
        self.insert_except(l1, since, &[], key, entry)
    }

    /// [`insert`](Self::insert), leaving out the purges numbered in `own`.
    pub(crate) fn insert_except(
        &self,
        l1: &L1,
        since: u64,
        own: &[u64],
        key: &str,
        entry: &CacheEntry,
    ) -> bool {
        if self.purged_since_except(since, own, key, entry) {
            return false;
        }
        l1.insert(key.to_owned(), entry.clone());
        if self.purged_since_except(since, own, key, entry) {
            l1.remove(key);
            return false;
        }
        true
    }
}

pub(crate) fn invalidate_l1(l1: &L1, what: &Purge) {
    match what {
        Purge::Key(k) => {
            if let Some((_, CacheEntry::Vary(_))) = l1.remove(k.as_str()) {
                l1.retain(|key, _| !is_variant_key(key, k));
            }
        }
        Purge::All => l1.clear(),
        _ => l1.retain(|k, e| !what.matches(k, e)),
    }
}

/// Applies every purge of `what` to `l1` with one scan for those that scan (a write's purges
/// together cost one pass over L1, not one each).
pub(crate) fn invalidate_l1_all(l1: &L1, what: &[Purge]) {
    let mut scan = Vec::with_capacity(what.len());
    for w in what {
        match w {
            Purge::Key(_) | Purge::All => invalidate_l1(l1, w),
            _ => scan.push(w),
        }
    }
    if !scan.is_empty() {
        l1.retain(|k, e| !scan.iter().any(|w| w.matches(k, e)));
    }
}
