//! The Redis tier of the cache ([`RedisTier`] says what it guarantees and costs).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use redis::aio::ConnectionManager;
use redis::{Client, Script};

use super::wire::encode_purge;
use crate::cache::policy::key::{key_uri, path_and_query};
use crate::cache::store::{BoxFuture, CacheEntry, CacheTier, Purge};
use crate::error::ConfigError;
use crate::redis_handle::{RedisHandle, Source};
use crate::resilience::{CircuitBreaker, Outcome};

/// Why a Redis tier call failed (the cache skips the tier).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TierError(String);

impl fmt::Display for TierError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cache tier: {}", self.0)
    }
}

impl std::error::Error for TierError {}

/// `KEYS[1]` the entry, then its `n` tags (sorted sets of keys scored by expiry), then their `n`
/// tombstones; `ARGV` value, TTL (ms), when the response was requested (Unix ms, `0`: unknown),
/// `n`. A write whose
/// request started before (or within a second after: clock skew) one of its tags was purged is
/// refused: it may hold what the purge removed. Expired members are trimmed on every write, so a
/// tag holds only live entries.
const PUT: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local started = tonumber(ARGV[3])
local n = tonumber(ARGV[4])
for i = n + 2, 2 * n + 1 do
  local purged = redis.call('GET', KEYS[i])
  if purged and (started == 0 or tonumber(purged) >= started - 1000) then return 0 end
end
local ttl = tonumber(ARGV[2])
redis.call('SET', KEYS[1], ARGV[1], 'PX', ttl)
for i = 2, n + 1 do
  redis.call('ZADD', KEYS[i], now + ttl, KEYS[1])
  redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', now)
  if redis.call('PTTL', KEYS[i]) < ttl then redis.call('PEXPIRE', KEYS[i], ttl) end
end
return 1
";

/// `KEYS[1]` a tag, `KEYS[2]` its tombstone: deletes the tag's live entries and the tag, and
/// leaves the tombstone (the purge time, for `ARGV[1]` ms) that refuses older writes.
const DROP_TAG: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local members = redis.call('ZRANGEBYSCORE', KEYS[1], now, '+inf')
for _, k in ipairs(members) do redis.call('UNLINK', k) end
redis.call('UNLINK', KEYS[1])
redis.call('SET', KEYS[2], now, 'PX', ARGV[1])
return #members
";

/// How long a purge's tombstone refuses writes of responses requested before it: longer than
/// any request takes.
const TOMBSTONE_MS: u64 = 60_000;

/// The Redis tier of the cache, and the invalidation broadcast between instances
/// ([`RedisTier::subscribe`], in `broadcast.rs`).
///
/// **Guarantees.**
/// * Every entry is written with a TTL (`SET … PX`) that covers its stale windows, so Redis holds
///   nothing the cache could not serve. Tags (surrogate keys, and one implicit tag per URI) are
///   sorted sets of cache keys scored by expiry, trimmed on every write; a tag invalidation deletes
///   the live members and the set in one Lua script and leaves a tombstone that refuses writes of
///   responses requested before it.
/// * Every call is bounded by a timeout (50 ms by default; prefix invalidation, which scans, gets
///   ten times that). A failure or timeout is an `Err` the cache treats as a miss (reads) or skips
///   (writes), counted in `protothrive_cache_l2_errors_total{op}`: the tier is skipped, never a 500.
/// * Invalidations are published on one channel; [`RedisTier::subscribe`] keeps a RESP3
///   subscription that the connection manager re-establishes after a disconnect. Messages
///   published while an instance was disconnected are lost to it, so a disconnect is delivered as
///   [`Purge::All`]: the instance drops its whole in-process tier rather than serve what
///   may have been invalidated meanwhile.
///
/// **Cost.** One round trip per L2 read or write (~50–100 µs on loopback, BENCHMARKS.md); the
/// subscription is one extra connection per instance.
///
/// Keys are written as given after the configured prefix (default `protothrive:cache:`), tags
/// under `<prefix>tag:` and their tombstones under `<prefix>purged:`, so no tag's name can land on
/// another's tombstone; the Lua scripts are passed every key they touch, but an entry and its tags
/// must share a hash slot: the tier assumes a single Redis (or a cluster with one hash slot per
/// prefix via `{hash tags}`).
///
/// Cheap to clone.
#[derive(Clone)]
pub struct RedisTier {
    pub(super) client: Client,
    conn: ConnectionManager,
    put: Arc<Script>,
    drop_tag: Arc<Script>,
    prefix: Arc<str>,
    pub(super) channel: Arc<str>,
    pub(super) timeout: Duration,
    breaker: CircuitBreaker,
}

impl fmt::Debug for RedisTier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The URL may hold a password: never print it.
        f.debug_struct("RedisTier")
            .field("prefix", &self.prefix)
            .field("channel", &self.channel)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// Builds a [`RedisTier`].
#[derive(Clone)]
#[must_use]
pub struct RedisTierBuilder {
    source: Source,
    prefix: String,
    channel: String,
    timeout: Option<Duration>,
}

impl fmt::Debug for RedisTierBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisTierBuilder")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl RedisTierBuilder {
    /// The prefix of every key (default `protothrive:cache:`).
    pub fn key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// The pub/sub channel of invalidations (default `protothrive:cache:invalidate`).
    pub fn channel(mut self, channel: impl Into<String>) -> Self {
        self.channel = channel.into();
        self
    }

    /// The bound on one call (default 50 ms).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// The tier; it connects lazily in the background (a server down now is not an error).
    ///
    /// # Errors
    /// Not a Redis URL, a zero timeout, or no Tokio runtime.
    pub fn build(self) -> Result<RedisTier, ConfigError> {
        let timeout = self.timeout;
        let handle = self.source.handle("Redis cache tier", timeout)?;
        Ok(RedisTier {
            client: handle.client,
            conn: handle.conn,
            put: Arc::new(Script::new(PUT)),
            drop_tag: Arc::new(Script::new(DROP_TAG)),
            prefix: self.prefix.into(),
            channel: self.channel.into(),
            timeout: timeout.unwrap_or(handle.timeout),
            breaker: handle.breaker,
        })
    }
}

/// Escapes a glob pattern's special characters so `SCAN MATCH` reads them literally.
fn glob_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    for c in s.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

impl RedisTier {
    /// A builder for the server at `url`.
    ///
    /// ```
    /// use protothrive::cache::RedisTier;
    /// let b = RedisTier::builder("redis://127.0.0.1:6379").key_prefix("app:cache:");
    /// ```
    pub fn builder(url: impl Into<String>) -> RedisTierBuilder {
        Self::from_source(Source::Url(url.into()))
    }

    /// A builder on a connection shared with other stores (one connection manager and one outage
    /// breaker for the whole application); its timeout is the handle's unless set here.
    pub fn from_handle(handle: &RedisHandle) -> RedisTierBuilder {
        Self::from_source(Source::Handle(handle.clone()))
    }

    fn from_source(source: Source) -> RedisTierBuilder {
        RedisTierBuilder {
            source,
            prefix: "protothrive:cache:".to_owned(),
            channel: "protothrive:cache:invalidate".to_owned(),
            timeout: None,
        }
    }

    /// Whether the server answers a `PING` within the timeout; a success ends fail-fast after an
    /// outage.
    pub async fn ping(&self) -> bool {
        crate::redis_handle::ping(&self.conn, self.timeout, &self.breaker).await
    }

    async fn bounded<T>(
        &self,
        op: &'static str,
        limit: Duration,
        f: impl Future<Output = redis::RedisResult<T>>,
    ) -> Result<T, TierError> {
        let Ok(permit) = self.breaker.try_acquire() else {
            metrics::counter!("protothrive_cache_l2_errors_total", "op" => op).increment(1);
            return Err(TierError(format!("{op}: failing fast after a failure")));
        };
        let probed = async {
            crate::redis_handle::connect_for_probe(&self.conn, &permit).await;
            f.await
        };
        let outcome = match tokio::time::timeout(limit, probed).await {
            Ok(Ok(v)) => {
                permit.record(Outcome::Success);
                return Ok(v);
            }
            Ok(Err(e)) => {
                permit.record(
                    if e.is_io_error() || e.is_connection_refusal() || e.is_connection_dropped() {
                        Outcome::Failure
                    } else {
                        Outcome::Ignored
                    },
                );
                TierError(format!("{op}: {e}"))
            }
            Err(_) => {
                permit.record(Outcome::Failure);
                TierError(format!("{op}: no answer within {limit:?}"))
            }
        };
        metrics::counter!("protothrive_cache_l2_errors_total", "op" => op).increment(1);
        tracing::debug!(error = %outcome, "cache L2 skipped");
        Err(outcome)
    }

    fn key(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    fn tag_key(&self, tag: &str) -> String {
        format!("{}tag:{tag}", self.prefix)
    }

    /// A tag's tombstone, in a keyspace of its own: under the tags' (`tag:<tag>:purged`), the
    /// tombstone of one tag was the set of another (a tag `<tag>:purged`), and writing that tag
    /// failed with `WRONGTYPE`.
    fn tombstone_key(&self, tag: &str) -> String {
        format!("{}purged:{tag}", self.prefix)
    }

    /// The bytes stored under `key`, if any.
    ///
    /// # Errors
    /// Redis down, slow or answering something else.
    pub async fn get(&self, key: &str) -> Result<Option<Bytes>, TierError> {
        let mut conn = self.conn.clone();
        let mut cmd = redis::cmd("GET");
        cmd.arg(self.key(key));
        let v: Option<Vec<u8>> = self
            .bounded("get", self.timeout, cmd.query_async(&mut conn))
            .await?;
        Ok(v.map(Bytes::from))
    }

    /// The bytes stored under each of `keys`, in order, in one round trip (`MGET`).
    ///
    /// # Errors
    /// Redis down, slow or answering something else.
    pub async fn get_many(&self, keys: &[&str]) -> Result<Vec<Option<Bytes>>, TierError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let mut conn = self.conn.clone();
        let mut cmd = redis::cmd("MGET");
        for key in keys {
            cmd.arg(self.key(key));
        }
        let v: Vec<Option<Vec<u8>>> = self
            .bounded("get", self.timeout, cmd.query_async(&mut conn))
            .await?;
        Ok(v.into_iter().map(|b| b.map(Bytes::from)).collect())
    }

    /// Stores `value` under `key` for `ttl` (at least 1 ms), recorded under each of `tags`.
    ///
    /// # Errors
    /// Redis down, slow or answering something else.
    pub async fn put(
        &self,
        key: &str,
        value: &[u8],
        ttl: Duration,
        tags: &[String],
    ) -> Result<(), TierError> {
        self.put_since(key, value, ttl, tags, None)
            .await
            .map(|_| ())
    }

    /// [`put`](Self::put) of a value fetched from `requested` on: refused (`Ok(false)`) when one
    /// of `tags` was purged after that (within a second of clock skew), since the value may be
    /// what the purge removed.
    ///
    /// # Errors
    /// Redis down, slow or answering something else.
    pub async fn put_since(
        &self,
        key: &str,
        value: &[u8],
        ttl: Duration,
        tags: &[String],
        requested: Option<std::time::SystemTime>,
    ) -> Result<bool, TierError> {
        let mut conn = self.conn.clone();
        let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        let started_ms = requested
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(0));
        let mut call = self.put.prepare_invoke();
        call.key(self.key(key))
            .arg(value)
            .arg(ttl_ms)
            .arg(started_ms)
            .arg(tags.len());
        for tag in tags {
            call.key(self.tag_key(tag));
        }
        for tag in tags {
            call.key(self.tombstone_key(tag));
        }
        let stored: i64 = self
            .bounded("put", self.timeout, call.invoke_async(&mut conn))
            .await?;
        Ok(stored == 1)
    }

    /// Deletes one key.
    ///
    /// # Errors
    /// Redis down, slow or answering something else.
    pub async fn delete(&self, key: &str) -> Result<(), TierError> {
        let mut conn = self.conn.clone();
        let mut cmd = redis::cmd("UNLINK");
        cmd.arg(self.key(key));
        let _: i64 = self
            .bounded("delete", self.timeout, cmd.query_async(&mut conn))
            .await?;
        Ok(())
    }

    /// Deletes every key stored with `tag`; returns how many.
    ///
    /// # Errors
    /// Redis down, slow or answering something else.
    pub async fn delete_tag(&self, tag: &str) -> Result<u64, TierError> {
        let mut conn = self.conn.clone();
        let mut call = self.drop_tag.prepare_invoke();
        call.key(self.tag_key(tag))
            .key(self.tombstone_key(tag))
            .arg(TOMBSTONE_MS);
        self.bounded("delete_tag", self.timeout, call.invoke_async(&mut conn))
            .await
    }

    /// Deletes every key starting with `prefix` (a `SCAN`, bounded by ten timeouts in all).
    ///
    /// # Errors
    /// Redis down, slow or answering something else.
    pub async fn delete_prefix(&self, prefix: &str) -> Result<u64, TierError> {
        self.delete_where(prefix, |_| true).await
    }

    /// Deletes the keys starting with `prefix` for which `keep_out` says so (tag sets and
    /// tombstones excluded), scanning in batches; bounded by ten timeouts in all.
    async fn delete_where(
        &self,
        prefix: &str,
        matches: impl Fn(&str) -> bool + Send,
    ) -> Result<u64, TierError> {
        let pattern = format!("{}*", glob_escape(&self.key(prefix)));
        let own = self.prefix.clone();
        let tags = self.tag_key("");
        let tombstones = self.tombstone_key("");
        let conn = self.conn.clone();
        let work = async move {
            let mut conn = conn;
            let mut cursor: u64 = 0;
            let mut deleted = 0u64;
            loop {
                let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
                    .arg(cursor)
                    .arg("MATCH")
                    .arg(&pattern)
                    .arg("COUNT")
                    .arg(500)
                    .query_async(&mut conn)
                    .await?;
                let doomed: Vec<&String> = keys
                    .iter()
                    .filter(|k| !k.starts_with(&tags) && !k.starts_with(&tombstones))
                    .filter(|k| k.strip_prefix(&*own).is_some_and(&matches))
                    .collect();
                if !doomed.is_empty() {
                    let n: u64 = redis::cmd("UNLINK")
                        .arg(&doomed)
                        .query_async(&mut conn)
                        .await?;
                    deleted += n;
                }
                if next == 0 {
                    return Ok(deleted);
                }
                cursor = next;
            }
        };
        self.bounded("delete_prefix", self.timeout * 10, work).await
    }

    /// Publishes an invalidation to every subscribed instance (this one included).
    ///
    /// # Errors
    /// Redis down, slow or answering something else.
    pub async fn publish(&self, purge: &Purge) -> Result<(), TierError> {
        let mut conn = self.conn.clone();
        let mut cmd = redis::cmd("PUBLISH");
        cmd.arg(&*self.channel).arg(encode_purge(purge));
        let _: i64 = self
            .bounded("publish", self.timeout, cmd.query_async(&mut conn))
            .await?;
        Ok(())
    }
}

/// The tags every HTTP entry carries besides its own: its URI (every method, partition and
/// `Vary` variant of it) and its path and query (every host), so that key and URI purges are one
/// tag drop rather than a scan.
fn implicit_tags(key: &str) -> [String; 2] {
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
            // The names borrow this tier; none is held across an await.
            let call = {
                let names = RedisNames {
                    key: &|k| self.key(k),
                    tag: &|t| self.tag_key(t),
                    tombstone: &|t| self.tombstone_key(t),
                    implicit: implicit_tags,
                    tombstone_ms: TOMBSTONE_MS,
                };
                redis_invocation(&names, since, &tags, puts)
            };
            let mut conn = self.conn.clone();
            let run = call.invoke_async::<Vec<i64>>(&mut conn);
            let Ok(stored) = self.bounded("write_through", self.timeout, run).await else {
                let _ = self.publish(&Purge::All).await;
                return vec![false; puts.len()];
            };
            for p in purges
                .iter()
                .filter(|p| purge_tag(p, implicit_tags).is_some())
            {
                let _ = self.publish(p).await;
            }
            let mut out: Vec<bool> = stored.into_iter().map(|s| s == 1).collect();
            out.resize(puts.len(), false);
            out
        })
    }

    fn delete<'a>(&'a self, key: &'a str) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            let _ = RedisTier::delete(self, key).await;
        })
    }

    /// Applies `what` to Redis — a key or URI purge drops the URI's implicit tag (the URI's every
    /// entry), a tag its set, a prefix scans — leaving tombstones that refuse older writes, then
    /// publishes it to every instance. When Redis could not apply it, every instance is told to
    /// drop everything instead (what is left in Redis may be stale, and L1s refill from it).
    fn invalidate<'a>(&'a self, what: &'a Purge) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            let applied = match what {
                Purge::Key(k) => {
                    let [uri, _] = implicit_tags(k);
                    self.delete_tag(&uri).await
                }
                Purge::Uri(u) if u.starts_with('/') => self.delete_tag(&format!("path:{u}")).await,
                Purge::Uri(u) => self.delete_tag(&format!("uri:{u}")).await,
                Purge::Tag(t) => self.delete_tag(t).await,
                Purge::KeyPrefix(p) => self.delete_prefix(p).await,
                Purge::All => self.delete_prefix("").await,
                other => {
                    // URI prefixes match on the URI inside the key: scan every entry.
                    let probe = CacheEntry::Vary(Arc::from(Vec::new()));
                    self.delete_where("", |k| other.matches(k, &probe)).await
                }
            };
            let _ = match applied {
                Ok(_) => self.publish(what).await,
                Err(_) => self.publish(&Purge::All).await,
            };
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_characters_are_escaped() {
        assert_eq!(glob_escape("a*b?[c]\\"), "a\\*b\\?\\[c\\]\\\\");
    }
}
