//! [`DataCache`]: a typed `get_or_load` data cache (its docs say what it guarantees and costs).

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use quick_cache::sync::Cache;
use quick_cache::{DefaultHashBuilder, Weighter};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::clock::{self, SharedClock};
use crate::coalesce::{Flights, Join};

#[cfg(feature = "redis")]
use super::redis::tier::RedisTier;
#[cfg(feature = "redis")]
use super::store::Purge;

#[derive(Clone)]
struct Entry {
    bytes: Bytes,
    expires: Instant,
}

#[derive(Clone)]
struct ByBytes;

impl Weighter<String, Entry> for ByBytes {
    fn weight(&self, key: &String, value: &Entry) -> u64 {
        (key.len() + value.bytes.len() + 64) as u64
    }
}

type L1 = Cache<String, Entry, ByBytes, DefaultHashBuilder>;

/// A typed `get_or_load(key, ttl, loader)` for query results inside handlers, over
/// the same tiers as the HTTP cache (quick_cache in process, then Redis), with coalescing.
///
/// **Guarantees.**
/// * Concurrent misses for one key make one `loader` call; the others wait for it and read its value
///   from L1. A loader that fails stores nothing and hands the key to the next waiter.
/// * A value is never served after its TTL (by the injected clock) from L1; L2 entries carry the
///   same TTL in Redis.
/// * L1 is bounded by bytes (the encoded value plus its key). A Redis outage skips L2 (counted by
///   `RedisTier`); the loader decides.
/// * [`invalidate`](DataCache::invalidate) and [`invalidate_prefix`](DataCache::invalidate_prefix)
///   remove from L1 and L2 and, with Redis, are broadcast to every instance subscribed with
///   `DataCache::apply` (feature `redis`).
///
/// **Cost.** A hit is one quick_cache lookup plus decoding the value (JSON, through serde); a
/// miss adds the loader, one encode and, with Redis, one round trip to read and one to write.
///
/// ```
/// use std::time::Duration;
/// use protothrive::cache::DataCache;
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let cache = DataCache::builder().max_bytes(1 << 20).build();
/// let load = || async { Ok::<_, std::io::Error>(vec![1u32, 2, 3]) };
/// let a: Vec<u32> = cache.get_or_load("user:7:roadmaps", Duration::from_secs(30), load).await.unwrap();
/// // Served from the cache: this loader is never called.
/// let b: Vec<u32> = cache
///     .get_or_load("user:7:roadmaps", Duration::from_secs(30), || async {
///         Err::<Vec<u32>, _>(std::io::Error::other("not called"))
///     })
///     .await
///     .unwrap();
/// assert_eq!(a, b);
/// # }
/// ```
///
/// Cheap to clone (shared tiers).
#[derive(Clone)]
pub struct DataCache {
    l1: Arc<L1>,
    #[cfg(feature = "redis")]
    l2: Option<RedisTier>,
    clock: SharedClock,
    /// Bumped by every invalidation: a value loaded (or read from Redis) while one ran is returned
    /// but not stored, so a load that started before a write cannot put the old value back.
    purges: Arc<std::sync::atomic::AtomicU64>,
    /// Loads under way, by key.
    flights: Flights<String>,
}

impl fmt::Debug for DataCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DataCache")
            .field("entries", &self.l1.len())
            .field("bytes", &self.l1.weight())
            .finish_non_exhaustive()
    }
}

/// Builds a [`DataCache`].
#[must_use]
pub struct DataCacheBuilder {
    max_bytes: u64,
    #[cfg(feature = "redis")]
    l2: Option<RedisTier>,
    clock: Option<SharedClock>,
}

impl fmt::Debug for DataCacheBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DataCacheBuilder")
            .field("max_bytes", &self.max_bytes)
            .finish_non_exhaustive()
    }
}

impl DataCacheBuilder {
    /// The bound of the in-process tier in bytes (default 16 MiB).
    pub fn max_bytes(mut self, max: u64) -> Self {
        self.max_bytes = max.max(1);
        self
    }

    /// Adds Redis as the second tier (and the channel of invalidations).
    #[cfg(feature = "redis")]
    pub fn redis(mut self, tier: RedisTier) -> Self {
        self.l2 = Some(tier);
        self
    }

    /// The clock (default: the system clock).
    pub fn clock(mut self, clock: SharedClock) -> Self {
        self.clock = Some(clock);
        self
    }

    /// The cache.
    pub fn build(self) -> DataCache {
        // quick_cache sizes its table by an estimate of the item count: assume ~1 KiB values.
        let estimate = usize::try_from(self.max_bytes / 1024)
            .unwrap_or(usize::MAX)
            .max(16);
        DataCache {
            l1: Arc::new(Cache::with_weighter(estimate, self.max_bytes, ByBytes)),
            #[cfg(feature = "redis")]
            l2: self.l2,
            clock: self.clock.unwrap_or_else(clock::system),
            purges: Arc::default(),
            flights: Flights::default(),
        }
    }
}

impl DataCache {
    /// A builder: 16 MiB in process, no Redis, the system clock.
    pub fn builder() -> DataCacheBuilder {
        DataCacheBuilder {
            max_bytes: 16 << 20,
            #[cfg(feature = "redis")]
            l2: None,
            clock: None,
        }
    }

    fn fresh(&self, key: &str) -> Option<Bytes> {
        let entry = self.l1.get(key)?;
        if entry.expires > self.clock.instant() {
            return Some(entry.bytes);
        }
        self.l1
            .remove_if(key, |e| e.expires <= self.clock.instant());
        None
    }

    /// The fresh value under `key` in L1, if it decodes as `T`.
    fn cached<T: DeserializeOwned>(&self, key: &str) -> Option<T> {
        serde_json::from_slice(&self.fresh(key)?).ok()
    }

    /// The value under `key`, or `loader`'s (stored for `ttl`). Concurrent calls for one key make
    /// one `loader` call.
    ///
    /// # Errors
    /// The loader's error (nothing is stored). A value that no longer decodes as `T` (the type
    /// changed between deployments) is treated as a miss, not an error.
    pub async fn get_or_load<T, E, F, Fut>(
        &self,
        key: &str,
        ttl: Duration,
        loader: F,
    ) -> Result<T, E>
    where
        T: Serialize + DeserializeOwned,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        if let Some(v) = self.cached(key) {
            count("hit", 1);
            return Ok(v);
        }
        let leader = loop {
            match self.flights.join(key) {
                Join::Lead(leader) => break leader,
                Join::Wait(waiter) => waiter.done().await,
            }
            if let Some(v) = self.cached(key) {
                count("coalesced", 1);
                return Ok(v);
            }
        };
        // The previous flight may have stored it between the lookup above and this one's start.
        if let Some(v) = self.cached(key) {
            count("coalesced", 1);
            return Ok(v);
        }
        let since = self.purge_count();
        #[cfg(feature = "redis")]
        if let Some(l2) = &self.l2
            && let Ok(Some(bytes)) = l2.get(key).await
            && let Some((expires, value)) = decode_l2(&bytes, self.clock.as_ref())
            && let Ok(v) = serde_json::from_slice::<T>(value)
        {
            count("l2_hit", 1);
            if self.purge_count() == since {
                let bytes = bytes.slice(8..);
                self.l1.insert(key.to_owned(), Entry { bytes, expires });
                self.unless_purged(since, key);
            }
            return Ok(v);
        }
        count("miss", 1);
        let value = loader().await?;
        let expires = self.clock.instant().checked_add(ttl);
        if let (Ok(encoded), Some(expires), true) = (
            serde_json::to_vec(&value),
            expires,
            self.purge_count() == since,
        ) {
            let bytes = Bytes::from(encoded);
            self.l1.insert(
                key.to_owned(),
                Entry {
                    bytes: bytes.clone(),
                    expires,
                },
            );
            self.unless_purged(since, key);
            // The waiters read it from L1; they need not wait for the L2 write.
            drop(leader);
            #[cfg(feature = "redis")]
            if let Some(l2) = &self.l2 {
                let _ = l2
                    .put(key, &encode_l2(ttl, &bytes, self.clock.as_ref()), ttl, &[])
                    .await;
            }
        }
        Ok(value)
    }

    /// The values under `keys`, in order; those no tier holds from one `loader` call.
    ///
    /// `loader` gets the positions (in `keys`) of the keys found neither in process nor in Redis
    /// (one `MGET` for all of them) and answers the values it has, by position; each is stored
    /// for `ttl` unless an invalidation ran meanwhile. A position it leaves out is `None` in the
    /// answer and stores nothing (to remember that a key has no value, make `T` an `Option`).
    /// Unlike [`get_or_load`](Self::get_or_load), concurrent calls that miss the same keys are
    /// not coalesced: each calls its loader. A miss costs, with Redis, one write per stored key.
    ///
    /// ```
    /// # use std::{collections::HashMap, time::Duration};
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let cache = protothrive::cache::DataCache::builder().build();
    /// let keys = ["user:1".to_owned(), "user:2".to_owned()];
    /// let load = |at: Vec<usize>| async move { Ok::<_, ()>(at.into_iter().map(|i| (i, i * 10)).collect()) };
    /// let ttl = Duration::from_secs(30);
    /// assert_eq!(cache.get_many_or_load(&keys, ttl, load).await, Ok(vec![Some(0), Some(10)]));
    /// let cached = |_| async { Ok::<HashMap<usize, usize>, ()>(HashMap::new()) };
    /// assert_eq!(cache.get_many_or_load(&keys, ttl, cached).await, Ok(vec![Some(0), Some(10)]));
    /// # }
    /// ```
    ///
    /// # Errors
    /// The loader's error (nothing is stored).
    pub async fn get_many_or_load<T, E, F, Fut>(
        &self,
        keys: &[String],
        ttl: Duration,
        loader: F,
    ) -> Result<Vec<Option<T>>, E>
    where
        T: Serialize + DeserializeOwned,
        F: FnOnce(Vec<usize>) -> Fut,
        Fut: Future<Output = Result<std::collections::HashMap<usize, T>, E>>,
    {
        let since = self.purge_count();
        let mut out: Vec<Option<T>> = keys.iter().map(|k| self.cached(k)).collect();
        let missing: Vec<usize> = (0..keys.len()).filter(|&i| out[i].is_none()).collect();
        count("hit", keys.len() - missing.len());
        #[cfg(feature = "redis")]
        let missing = self.found_in_l2(keys, &mut out, missing, since).await;
        if missing.is_empty() {
            return Ok(out);
        }
        count("miss", missing.len());
        let mut loaded = loader(missing.clone()).await?;
        for i in missing {
            let Some(value) = loaded.remove(&i) else {
                continue;
            };
            if let (Ok(encoded), Some(expires), true) = (
                serde_json::to_vec(&value),
                self.clock.instant().checked_add(ttl),
                self.purge_count() == since,
            ) {
                let bytes = Bytes::from(encoded);
                self.l1.insert(
                    keys[i].clone(),
                    Entry {
                        bytes: bytes.clone(),
                        expires,
                    },
                );
                self.unless_purged(since, &keys[i]);
                #[cfg(feature = "redis")]
                if let Some(l2) = &self.l2 {
                    let l2_value = encode_l2(ttl, &bytes, self.clock.as_ref());
                    let _ = l2.put(&keys[i], &l2_value, ttl, &[]).await;
                }
            }
            out[i] = Some(value);
        }
        Ok(out)
    }

    /// Fills the `missing` positions of `out` that Redis holds (one `MGET`), promoting them to
    /// L1 unless an invalidation ran since `since`; the positions still missing.
    #[cfg(feature = "redis")]
    async fn found_in_l2<T: DeserializeOwned>(
        &self,
        keys: &[String],
        out: &mut [Option<T>],
        mut missing: Vec<usize>,
        since: u64,
    ) -> Vec<usize> {
        let Some(l2) = self.l2.as_ref().filter(|_| !missing.is_empty()) else {
            return missing;
        };
        let asked: Vec<&str> = missing.iter().map(|&i| keys[i].as_str()).collect();
        let found = l2.get_many(&asked).await.unwrap_or_default();
        for (&i, bytes) in missing.iter().zip(found) {
            let Some(bytes) = bytes else { continue };
            let Some((expires, value)) = decode_l2(&bytes, self.clock.as_ref()) else {
                continue;
            };
            if let Ok(v) = serde_json::from_slice::<T>(value) {
                out[i] = Some(v);
                if self.purge_count() == since {
                    let bytes = bytes.slice(8..);
                    self.l1.insert(keys[i].clone(), Entry { bytes, expires });
                    self.unless_purged(since, &keys[i]);
                }
            }
        }
        let before = missing.len();
        missing.retain(|&i| out[i].is_none());
        count("l2_hit", before - missing.len());
        missing
    }

    fn purge_count(&self) -> u64 {
        self.purges.load(std::sync::atomic::Ordering::Acquire)
    }

    fn purged(&self) {
        self.purges
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
    }

    /// Removes what was just stored under `key` if an invalidation ran since `since` (it may have
    /// cleared before the store landed).
    fn unless_purged(&self, since: u64, key: &str) {
        if self.purge_count() != since {
            self.l1.remove(key);
        }
    }

    /// Drops `key` here and in Redis, and tells every subscribed instance.
    pub async fn invalidate(&self, key: &str) {
        self.purged();
        self.l1.remove(key);
        #[cfg(feature = "redis")]
        if let Some(l2) = &self.l2 {
            l2.purge_data(Purge::Key(key.to_owned())).await;
        }
    }

    /// Resolves once every invalidation made so far has reached Redis and the other instances
    /// (see [`RedisTier`](super::RedisTier) on purges Redis did not take); at once without
    /// Redis. For a graceful shutdown, under a timeout of the caller's.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// protothrive::cache::DataCache::builder().build().settled().await;
    /// # }
    /// ```
    pub async fn settled(&self) {
        #[cfg(feature = "redis")]
        if let Some(l2) = &self.l2 {
            l2.settled().await;
        }
    }

    /// Drops every key starting with `prefix` here and in Redis, and tells every subscribed
    /// instance.
    pub async fn invalidate_prefix(&self, prefix: &str) {
        self.purged();
        self.drop_prefix(prefix);
        #[cfg(feature = "redis")]
        if let Some(l2) = &self.l2 {
            l2.purge_data(Purge::KeyPrefix(prefix.to_owned())).await;
        }
    }

    fn drop_prefix(&self, prefix: &str) {
        self.l1.retain(|k, _| !k.starts_with(prefix));
    }

    /// Applies a purge received from another instance to the in-process tier (call it from
    /// [`RedisTier::subscribe`]). Keys and key prefixes apply (a URI prefix is read as a key
    /// prefix); tags and URIs belong to the HTTP cache.
    #[cfg(feature = "redis")]
    pub fn apply(&self, purge: &Purge) {
        self.purged();
        match purge {
            Purge::Key(k) => {
                self.l1.remove(k.as_str());
            }
            Purge::KeyPrefix(p) | Purge::Prefix(p) => self.drop_prefix(p),
            Purge::All => self.l1.clear(),
            _ => {}
        }
    }

    /// The number of entries in process.
    #[must_use]
    pub fn len(&self) -> usize {
        self.l1.len()
    }

    /// Whether the in-process tier is empty.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.l1.is_empty()
    }
}

/// Counts `n` lookups of the data caches that ended in `result`.
fn count(result: &'static str, n: usize) {
    metrics::counter!("protothrive_data_cache_total", "result" => result).increment(n as u64);
}

/// L2 values carry their expiry as Unix milliseconds (8 bytes, big-endian) before the value, so
/// that a promoted entry keeps its remaining lifetime rather than a new one.
#[cfg(feature = "redis")]
fn encode_l2(ttl: Duration, value: &[u8], clock: &dyn clock::Clock) -> Vec<u8> {
    let expires_ms = clock
        .now()
        .checked_add(ttl)
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    let mut out = Vec::with_capacity(8 + value.len());
    out.extend_from_slice(&expires_ms.to_be_bytes());
    out.extend_from_slice(value);
    out
}

#[cfg(feature = "redis")]
fn decode_l2<'a>(bytes: &'a [u8], clock: &dyn clock::Clock) -> Option<(Instant, &'a [u8])> {
    let (head, value) = bytes.split_at_checked(8)?;
    let expires_ms = u64::from_be_bytes(head.try_into().ok()?);
    let now = clock.instant();
    let now_ms = u64::try_from(
        clock
            .now()
            .duration_since(std::time::UNIX_EPOCH)
            .ok()?
            .as_millis(),
    )
    .ok()?;
    let left = expires_ms.checked_sub(now_ms).filter(|l| *l > 0)?;
    Some((now + Duration::from_millis(left), value))
}

#[cfg(test)]
#[path = "data_tests.rs"]
mod tests;
