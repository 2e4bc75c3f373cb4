//! An in-memory [`CacheTier`] for tests and examples.

use std::sync::Mutex;
use std::time::Duration;

use super::store::{BoxFuture, CacheEntry, CacheTier, Purge};

/// An in-memory [`CacheTier`] for tests: entries are stored encoded (so the encoding is
/// exercised), TTLs are recorded but not enforced, and every call is counted.
///
/// ```
/// use std::sync::Arc;
/// use std::time::Duration;
/// use protothrive::cache::{CacheEntry, CacheLayer, CacheTier, MemoryTier};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let tier = Arc::new(MemoryTier::default());
/// let entry = CacheEntry::Vary(vec!["accept".parse().unwrap()].into());
/// tier.put("GET http://h/a", &entry, Duration::from_secs(60)).await;
/// assert!(tier.get("GET http://h/a").await.is_some());
/// assert_eq!(tier.ttl("GET http://h/a"), Some(Duration::from_secs(60)));
/// let layer = CacheLayer::builder().tier(tier.clone()).build().unwrap();
/// # let _ = layer;
/// # }
/// ```
#[derive(Debug, Default)]
pub struct MemoryTier {
    entries: Mutex<std::collections::HashMap<String, (Vec<u8>, Duration)>>,
    calls: std::sync::atomic::AtomicU64,
}

impl MemoryTier {
    /// The number of stored keys.
    #[must_use]
    pub fn len(&self) -> usize {
        self.entries.lock().map_or(0, |e| e.len())
    }

    /// Whether nothing is stored.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The TTL given with `key`.
    #[must_use]
    pub fn ttl(&self, key: &str) -> Option<Duration> {
        self.entries.lock().ok()?.get(key).map(|(_, t)| *t)
    }

    /// How many calls the tier received.
    #[must_use]
    pub fn calls(&self) -> u64 {
        self.calls.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn count(&self) {
        self.calls
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
}

impl CacheTier for MemoryTier {
    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Option<CacheEntry>> {
        self.count();
        let found = self
            .entries
            .lock()
            .ok()
            .and_then(|e| e.get(key).and_then(|(b, _)| CacheEntry::decode(b)));
        Box::pin(std::future::ready(found))
    }

    fn put<'a>(&'a self, key: &'a str, entry: &'a CacheEntry, ttl: Duration) -> BoxFuture<'a, ()> {
        self.count();
        if let Ok(mut e) = self.entries.lock() {
            e.insert(key.to_owned(), (entry.encode(), ttl));
        }
        Box::pin(std::future::ready(()))
    }

    fn delete<'a>(&'a self, key: &'a str) -> BoxFuture<'a, ()> {
        self.count();
        if let Ok(mut e) = self.entries.lock() {
            e.remove(key);
        }
        Box::pin(std::future::ready(()))
    }

    fn invalidate<'a>(&'a self, what: &'a Purge) -> BoxFuture<'a, ()> {
        self.count();
        if let Ok(mut e) = self.entries.lock() {
            e.retain(|k, (b, _)| {
                CacheEntry::decode(b).is_none_or(|entry| !what.matches(k, &entry))
            });
        }
        Box::pin(std::future::ready(()))
    }
}
