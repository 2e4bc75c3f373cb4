//! [`SharedCache`]: a [`BatchFn`] whose values outlive the request, in a [`DataCache`].

use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::BatchFn;
use crate::cache::DataCache;

/// Wraps a [`BatchFn`] so that its values are shared across requests (and, with Redis, across
/// instances) through a [`DataCache`]'s tiers: memory, then Redis.
///
/// **Guarantees.**
/// * A batch asks the tiers first — the in-process tier, then one `MGET` for what it lacks — and
///   the wrapped function only for the keys neither holds, in one call. What it answers is
///   stored for the TTL, including that a key has no value (a miss is remembered too).
/// * A failed call stores nothing and fails the batch as the wrapped function did.
/// * [`invalidate`](SharedCache::invalidate) drops a key from every tier and, with Redis, from
///   every subscribed instance; [`invalidate_all`](SharedCache::invalidate_all) drops this
///   wrapper's keys. A value loaded while an invalidation ran is answered but not stored.
///
/// **Cost.** Per batch, a lookup per key in process and, with Redis, one round trip for the keys
/// missing there and one write per key loaded; values are JSON-encoded (serde) in the tiers.
/// Concurrent batches of different requests that miss the same key each call the function.
///
/// ```
/// use std::collections::HashMap;
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// use std::time::Duration;
/// use protothrive::batch::{BatchFn, LoaderFactory, SharedCache};
/// use protothrive::cache::DataCache;
///
/// #[derive(Default)]
/// struct Names(AtomicUsize);
/// impl BatchFn for Names {
///     type Key = u32;
///     type Value = String;
///     type Error = String;
///     async fn load(&self, keys: &[u32]) -> Result<HashMap<u32, String>, String> {
///         self.0.fetch_add(keys.len(), Ordering::SeqCst);
///         Ok(keys.iter().map(|k| (*k, format!("user {k}"))).collect())
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let cache = DataCache::builder().max_bytes(1 << 20).build();
/// let shared = SharedCache::new(Names::default(), cache, "name:", Duration::from_secs(60));
/// let factory = LoaderFactory::new(shared);
/// // Two requests: the second finds both names in the shared cache.
/// assert_eq!(factory.loader().load_many([1, 2]).await.len(), 2);
/// assert_eq!(factory.loader().load(2).await, Ok(Some("user 2".to_owned())));
/// assert_eq!(factory.batch_fn().inner().0.load(Ordering::SeqCst), 2, "keys asked once");
/// // After a write, invalidate: the next request asks again.
/// factory.batch_fn().invalidate(&2).await;
/// assert_eq!(factory.loader().load(2).await, Ok(Some("user 2".to_owned())));
/// assert_eq!(factory.batch_fn().inner().0.load(Ordering::SeqCst), 3);
/// # }
/// ```
pub struct SharedCache<F> {
    inner: F,
    cache: DataCache,
    prefix: String,
    ttl: Duration,
}

impl<F> fmt::Debug for SharedCache<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedCache")
            .field("cache", &self.cache)
            .field("prefix", &self.prefix)
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

impl<F: BatchFn> SharedCache<F>
where
    F::Key: fmt::Display,
{
    /// `inner` with its values kept in `cache` for `ttl`, each under `prefix` followed by its key
    /// (give each wrapped function a prefix of its own).
    pub fn new(inner: F, cache: DataCache, prefix: impl Into<String>, ttl: Duration) -> Self {
        Self {
            inner,
            cache,
            prefix: prefix.into(),
            ttl,
        }
    }

    /// The wrapped batch function.
    pub fn inner(&self) -> &F {
        &self.inner
    }

    fn key(&self, key: &F::Key) -> String {
        format!("{}{key}", self.prefix)
    }

    /// Drops `key` from every tier (after a write that changes its value).
    pub async fn invalidate(&self, key: &F::Key) {
        self.cache.invalidate(&self.key(key)).await;
    }

    /// Drops every key of this wrapper from every tier.
    pub async fn invalidate_all(&self) {
        self.cache.invalidate_prefix(&self.prefix).await;
    }
}

impl<F: BatchFn> BatchFn for SharedCache<F>
where
    F::Key: fmt::Display,
    F::Value: Serialize + DeserializeOwned,
{
    type Key = F::Key;
    type Value = F::Value;
    type Error = F::Error;

    async fn load(&self, keys: &[F::Key]) -> Result<HashMap<F::Key, F::Value>, F::Error> {
        let names: Vec<String> = keys.iter().map(|k| self.key(k)).collect();
        let found = self
            .cache
            .get_many_or_load(&names, self.ttl, |missing| async move {
                let asked: Vec<F::Key> = missing.iter().map(|&i| keys[i].clone()).collect();
                let mut values = self.inner.load(&asked).await?;
                // Every key asked is answered, `None` when the function has no value for it.
                Ok(missing
                    .into_iter()
                    .zip(asked)
                    .map(|(i, k)| (i, values.remove(&k)))
                    .collect())
            })
            .await?;
        Ok(keys
            .iter()
            .zip(found)
            .filter_map(|(k, v)| v.flatten().map(|v| (k.clone(), v)))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::batch::LoaderFactory;
    use crate::clock::ManualClock;

    /// Doubles its keys, has no value for multiples of 3, fails a batch holding a key ≥ 1000,
    /// and records the keys of every call.
    #[derive(Default)]
    struct Doubler(Mutex<Vec<Vec<u32>>>);

    impl BatchFn for Doubler {
        type Key = u32;
        type Value = u64;
        type Error = String;
        async fn load(&self, keys: &[u32]) -> Result<HashMap<u32, u64>, String> {
            let mut asked = keys.to_vec();
            asked.sort_unstable();
            self.0.lock().unwrap().push(asked);
            if keys.iter().any(|&k| k >= 1000) {
                return Err("broken".into());
            }
            Ok(keys
                .iter()
                .filter(|&&k| !k.is_multiple_of(3))
                .map(|&k| (k, u64::from(k) * 2))
                .collect())
        }
    }

    fn factory(clock: &ManualClock) -> LoaderFactory<SharedCache<Doubler>> {
        let cache = DataCache::builder().clock(Arc::new(clock.clone())).build();
        let ttl = Duration::from_secs(60);
        LoaderFactory::new(SharedCache::new(Doubler::default(), cache, "d:", ttl))
    }

    fn calls(f: &LoaderFactory<SharedCache<Doubler>>) -> Vec<Vec<u32>> {
        f.batch_fn().inner().0.lock().unwrap().clone()
    }

    #[tokio::test]
    async fn values_and_misses_are_shared_across_requests_until_the_ttl() {
        let clock = ManualClock::default();
        let f = factory(&clock);
        let first = f.loader().load_many([1, 2, 3]).await;
        assert_eq!(first, vec![Ok(Some(2)), Ok(Some(4)), Ok(None)]);
        // Another request: only the key no request asked before reaches the function.
        let second = f.loader().load_many([1, 2, 3, 4]).await;
        assert_eq!(
            second,
            vec![Ok(Some(2)), Ok(Some(4)), Ok(None), Ok(Some(8))]
        );
        assert_eq!(calls(&f), vec![vec![1, 2, 3], vec![4]]);
        clock.advance(Duration::from_secs(60));
        assert_eq!(f.loader().load(1).await, Ok(Some(2)));
        assert_eq!(calls(&f).last(), Some(&vec![1]), "expired: asked again");
    }

    #[tokio::test]
    async fn a_failed_batch_stores_nothing() {
        let f = factory(&ManualClock::default());
        let err = Err("broken".to_owned());
        assert_eq!(
            f.loader().load_many([1, 1000]).await,
            vec![err.clone(), err]
        );
        assert_eq!(f.loader().load(1).await, Ok(Some(2)));
        assert_eq!(calls(&f), vec![vec![1, 1000], vec![1]]);
    }

    #[tokio::test]
    async fn invalidation_drops_one_key_or_all_of_them() {
        let f = factory(&ManualClock::default());
        let _ = f.loader().load_many([1, 2, 4]).await;
        f.batch_fn().invalidate(&2).await;
        let _ = f.loader().load_many([1, 2, 4]).await;
        f.batch_fn().invalidate_all().await;
        let _ = f.loader().load_many([1, 2, 4]).await;
        assert_eq!(calls(&f), vec![vec![1, 2, 4], vec![2], vec![1, 2, 4]]);
    }

    /// Answers `v<n>` for key 1 (n counting its calls), after `asked` is notified and `release`
    /// is.
    #[derive(Default)]
    struct Gated {
        calls: std::sync::atomic::AtomicU32,
        asked: tokio::sync::Notify,
        release: tokio::sync::Notify,
    }

    impl BatchFn for Gated {
        type Key = u32;
        type Value = String;
        type Error = ();
        async fn load(&self, keys: &[u32]) -> Result<HashMap<u32, String>, ()> {
            let n = self.calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
            self.asked.notify_one();
            self.release.notified().await;
            Ok(keys.iter().map(|&k| (k, format!("v{n}"))).collect())
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_value_loaded_across_an_invalidation_is_answered_not_stored() {
        let cache = DataCache::builder().build();
        let shared = SharedCache::new(Gated::default(), cache, "g:", Duration::from_secs(60));
        let f = LoaderFactory::new(shared);
        let loading = tokio::spawn({
            let l = f.loader();
            async move { l.load(1).await }
        });
        f.batch_fn().inner().asked.notified().await;
        f.batch_fn().invalidate(&1).await;
        f.batch_fn().inner().release.notify_one();
        assert_eq!(loading.await.unwrap(), Ok(Some("v1".to_owned())));
        // Not stored: the next request asks again and keeps what it gets.
        let next = tokio::spawn({
            let l = f.loader();
            async move { l.load(1).await }
        });
        f.batch_fn().inner().asked.notified().await;
        f.batch_fn().inner().release.notify_one();
        assert_eq!(next.await.unwrap(), Ok(Some("v2".to_owned())));
        assert_eq!(f.loader().load(1).await, Ok(Some("v2".to_owned())));
    }
}
