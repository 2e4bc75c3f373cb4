//! The Redis tier as the cache's second tier ([`CacheTier`]): entries with their tags, the
//! write-through, and purges (applied, published, or kept and replayed by `purge.rs`).

use std::time::Duration;

use super::journal::Work;
use super::scripts::TOMBSTONE_MS;
use super::tier::RedisTier;
use crate::cache::policy::key::{key_uri, path_and_query};
use crate::cache::store::{BoxFuture, CacheEntry, CacheTier, Purge};

/// The tags every HTTP entry carries besides its own: its URI (every method, partition and
/// `Vary` variant of it) and its path and query (every host), so that key and URI purges are one
/// tag drop rather than a scan.
pub(super) fn implicit_tags(key: &str) -> [String; 2] {
    let uri = key_uri(key);
    [
        format!("uri:{uri}"),
        format!("path:{}", path_and_query(uri)),
    ]
}

impl CacheTier for RedisTier {
    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Option<CacheEntry>> {
        Box::pin(async move {
            let bytes = RedisTier::get(self, key).await.ok()??;
            let entry = CacheEntry::decode(&bytes);
            if entry.is_none() {
                metrics::counter!("protothrive_cache_l2_errors_total", "op" => "decode")
                    .increment(1);
            }
            entry
        })
    }

    fn put<'a>(&'a self, key: &'a str, entry: &'a CacheEntry, ttl: Duration) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            let (own, requested): (&[String], _) = match entry {
                CacheEntry::Response(r) => (r.tags(), Some(r.request_time)),
                CacheEntry::Vary(_) => (&[], None),
            };
            let mut tags = Vec::with_capacity(own.len() + 2);
            tags.extend_from_slice(own);
            tags.extend(implicit_tags(key));
            let _ = self
                .put_since(key, &entry.encode(), ttl, &tags, requested)
                .await;
        })
    }

    fn write_through<'a>(
        &'a self,
        since: std::time::SystemTime,
        purges: &'a [Purge],
        puts: &'a [(String, CacheEntry, Duration)],
    ) -> BoxFuture<'a, Vec<bool>> {
        use crate::cache::put::{RedisNames, purge_tag, redis_invocation};
        Box::pin(async move {
            let mut tags = Vec::new();
            for p in purges {
                match purge_tag(p, implicit_tags) {
                    Some(tag) => tags.push(tag),
                    None => self.invalidate(p).await,
                }
            }
            // One script on one server; on a cluster one per shard written or purged.
            let groups = self
                .layout
                .write_groups(puts.iter().map(|p| p.0.as_str()), !tags.is_empty());
            let calls = groups.iter().map(|(shard, mine)| {
                // The names borrow this tier; none is held across an await.
                let call = {
                    let names = RedisNames {
                        key: &|k| self.key(k),
                        tag: &|t| self.layout.tag(*shard, t),
                        tombstone: &|t| self.layout.tombstone(*shard, t),
                        implicit: implicit_tags,
                        tombstone_ms: TOMBSTONE_MS,
                    };
                    let mine: Vec<_> = mine.iter().map(|&i| &puts[i]).collect();
                    redis_invocation(&names, since, &tags, &mine)
                };
                let mut conn = self.conn.clone();
                async move { call.invoke_async::<Vec<i64>>(&mut conn).await }
            });
            let run = futures_util::future::try_join_all(calls);
            let tagged = purges
                .iter()
                .filter(|p| purge_tag(p, implicit_tags).is_some());
            let Ok(stored) = self.bounded("write_through", self.timeout, run).await else {
                // Not applied: the purges are kept and replayed; the puts are dropped.
                self.keep(tagged.map(|p| Work::Http(p.clone()))).await;
                return vec![false; puts.len()];
            };
            let mut unpublished = Vec::new();
            for p in tagged {
                if self.publish(p).await.is_err() {
                    unpublished.push(Work::Http(p.clone()));
                }
            }
            self.keep(unpublished).await;
            let mut out = vec![false; puts.len()];
            for ((_, mine), stored) in groups.iter().zip(stored) {
                for (&i, s) in mine.iter().zip(stored) {
                    out[i] = s == 1;
                }
            }
            out
        })
    }

    fn delete<'a>(&'a self, key: &'a str) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            let _ = RedisTier::delete(self, key).await;
        })
    }

    /// Applies `what` to Redis (a key or URI purge drops the URI's implicit tag, a tag its set,
    /// a prefix scans; tombstones refuse older writes), then publishes it to every instance.
    /// What Redis does not take is kept and replayed in order, and this call waits up to the
    /// tier's patience for it (see [`RedisTier`]).
    fn invalidate<'a>(&'a self, what: &'a Purge) -> BoxFuture<'a, ()> {
        Box::pin(self.purge(Work::Http(what.clone())))
    }

    fn settled(&self) -> BoxFuture<'_, ()> {
        Box::pin(self.journal.drained())
    }
}
