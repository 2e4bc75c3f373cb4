//! The Redis tier of the cache and the invalidation broadcast ([`RedisTier`] says what it guarantees and costs).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use redis::aio::ConnectionManager;
use redis::{Client, IntoConnectionInfo, ProtocolVersion, PushKind, Script, Value};

use super::store::{BoxFuture, CacheEntry, CacheTier, Purge};
use crate::error::ConfigError;

/// The wire form of a [`Purge`] on the invalidation channel: a one-letter kind, `:`, the value
/// (`k:` key, `u:` URI, `p:` URI prefix, `r:` raw key prefix, `t:` tag), or `*` for everything.
///
/// ```
/// use protothrive::cache::{decode_purge, encode_purge, Purge};
/// let p = Purge::Tag("roadmap:7".into());
/// assert_eq!(encode_purge(&p), "t:roadmap:7");
/// assert_eq!(decode_purge("t:roadmap:7"), Some(p));
/// assert_eq!(decode_purge("x"), None);
/// ```
#[must_use]
pub fn encode_purge(purge: &Purge) -> String {
    match purge {
        Purge::Key(k) => format!("k:{k}"),
        Purge::Uri(u) => format!("u:{u}"),
        Purge::Prefix(p) => format!("p:{p}"),
        Purge::KeyPrefix(p) => format!("r:{p}"),
        Purge::Tag(t) => format!("t:{t}"),
        Purge::All => "*".to_owned(),
    }
}

/// Reads [`encode_purge`]'s output back; `None` for anything else.
#[must_use]
pub fn decode_purge(s: &str) -> Option<Purge> {
    if s == "*" {
        return Some(Purge::All);
    }
    let (kind, value) = s.split_at_checked(2)?;
    let value = value.to_owned();
    match kind {
        "k:" => Some(Purge::Key(value)),
        "u:" => Some(Purge::Uri(value)),
        "p:" => Some(Purge::Prefix(value)),
        "r:" => Some(Purge::KeyPrefix(value)),
        "t:" => Some(Purge::Tag(value)),
        _ => None,
    }
}

/// Why a Redis tier call failed (the cache skips the tier).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TierError(String);

impl fmt::Display for TierError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cache tier: {}", self.0)
    }
}

impl std::error::Error for TierError {}

const PUT: &str = r"
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
local ttl = tonumber(ARGV[2])
for i = 2, #KEYS do
  redis.call('SADD', KEYS[i], KEYS[1])
  if redis.call('PTTL', KEYS[i]) < ttl then redis.call('PEXPIRE', KEYS[i], ttl) end
end
return 1
";

const DROP_TAG: &str = r"
local members = redis.call('SMEMBERS', KEYS[1])
for _, k in ipairs(members) do redis.call('UNLINK', k) end
redis.call('UNLINK', KEYS[1])
return #members
";

/// The Redis tier of the cache, and the invalidation broadcast between instances
/// ([`RedisTier::subscribe`]).
///
/// **Guarantees.**
/// * Every entry is written with a TTL (`SET … PX`) that covers its stale windows, so Redis holds
///   nothing the cache could not serve. Tags (surrogate keys) are Redis sets of cache keys whose
///   TTL is extended to the longest member's; a tag invalidation deletes the members and the set in
///   one Lua script.
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
/// Keys and tags are written as given after the configured prefix (default `protothrive:cache:`);
/// the Lua scripts touch keys they derive from their arguments, so the tier assumes a single Redis
/// (or a cluster with one hash slot per prefix via `{hash tags}`).
///
/// Cheap to clone.
#[derive(Clone)]
pub struct RedisTier {
    client: Client,
    conn: ConnectionManager,
    put: Arc<Script>,
    drop_tag: Arc<Script>,
    prefix: Arc<str>,
    channel: Arc<str>,
    timeout: Duration,
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
    url: String,
    prefix: String,
    channel: String,
    timeout: Duration,
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
        self.timeout = timeout;
        self
    }

    /// The tier; it connects lazily in the background (a server down now is not an error).
    ///
    /// # Errors
    /// Not a Redis URL, a zero timeout, or no Tokio runtime.
    pub fn build(self) -> Result<RedisTier, ConfigError> {
        let (client, conn) =
            crate::redis_conn::connect("Redis cache tier", &self.url, self.timeout)?;
        Ok(RedisTier {
            client,
            conn,
            put: Arc::new(Script::new(PUT)),
            drop_tag: Arc::new(Script::new(DROP_TAG)),
            prefix: self.prefix.into(),
            channel: self.channel.into(),
            timeout: self.timeout,
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
        RedisTierBuilder {
            url: url.into(),
            prefix: "protothrive:cache:".to_owned(),
            channel: "protothrive:cache:invalidate".to_owned(),
            timeout: Duration::from_millis(50),
        }
    }

    async fn bounded<T>(
        &self,
        op: &'static str,
        limit: Duration,
        f: impl Future<Output = redis::RedisResult<T>>,
    ) -> Result<T, TierError> {
        let outcome = match tokio::time::timeout(limit, f).await {
            Ok(Ok(v)) => return Ok(v),
            Ok(Err(e)) => TierError(format!("{op}: {e}")),
            Err(_) => TierError(format!("{op}: no answer within {limit:?}")),
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

    /// The bytes stored under `key`, if any.
    ///
    /// # Errors
    /// Redis down, slow or answering something else.
    pub async fn get(&self, key: &str) -> Result<Option<Bytes>, TierError> {
        let mut conn = self.conn.clone();
        let cmd = redis::cmd("GET").arg(self.key(key)).clone();
        let v: Option<Vec<u8>> = self
            .bounded("get", self.timeout, cmd.query_async(&mut conn))
            .await?;
        Ok(v.map(Bytes::from))
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
        let mut conn = self.conn.clone();
        let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        let mut call = self.put.prepare_invoke();
        call.key(self.key(key)).arg(value).arg(ttl_ms);
        for tag in tags {
            call.key(self.tag_key(tag));
        }
        let _: i64 = self
            .bounded("put", self.timeout, call.invoke_async(&mut conn))
            .await?;
        Ok(())
    }

    /// Deletes one key.
    ///
    /// # Errors
    /// Redis down, slow or answering something else.
    pub async fn delete(&self, key: &str) -> Result<(), TierError> {
        let mut conn = self.conn.clone();
        let cmd = redis::cmd("UNLINK").arg(self.key(key)).clone();
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
        call.key(self.tag_key(tag));
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

    /// Deletes the keys starting with `prefix` for which `keep_out` says so (tag sets excluded),
    /// scanning in batches; bounded by ten timeouts in all.
    async fn delete_where(
        &self,
        prefix: &str,
        matches: impl Fn(&str) -> bool + Send,
    ) -> Result<u64, TierError> {
        let pattern = format!("{}*", glob_escape(&self.key(prefix)));
        let own = self.prefix.clone();
        let tags = self.tag_key("");
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
                    .filter(|k| !k.starts_with(&tags))
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
        let cmd = redis::cmd("PUBLISH")
            .arg(&*self.channel)
            .arg(encode_purge(purge))
            .clone();
        let _: i64 = self
            .bounded("publish", self.timeout, cmd.query_async(&mut conn))
            .await?;
        Ok(())
    }

    /// Calls `on_message` for every invalidation published on the channel, for as long as the
    /// returned [`Subscription`] lives; reconnects and resubscribes by itself, and reports
    /// [`Purge::All`] after each disconnect. Subscribing to a server that is down now is not
    /// an error: the subscription is made once it answers.
    ///
    /// # Errors
    /// The connection could not be set up (a configuration mistake).
    pub fn subscribe(
        &self,
        on_message: impl Fn(Purge) + Send + Sync + 'static,
    ) -> Result<Subscription, ConfigError> {
        let on_message = Arc::new(on_message);
        let info = self
            .client
            .get_connection_info()
            .clone()
            .into_connection_info()
            .map_err(|_| ConfigError::new("the Redis URL of the cache tier"))?;
        let settings = info
            .redis_settings()
            .clone()
            .set_protocol(ProtocolVersion::RESP3);
        let client = Client::open(info.set_redis_settings(settings))
            .map_err(|_| ConfigError::new("the Redis URL of the cache tier"))?;
        let channel = self.channel.clone();
        let sink = on_message.clone();
        let push = move |info: redis::PushInfo| -> Result<(), std::convert::Infallible> {
            match info.kind {
                PushKind::Message => {
                    if let Some(Value::BulkString(payload)) = info.data.get(1)
                        && let Some(i) = std::str::from_utf8(payload).ok().and_then(decode_purge)
                    {
                        sink(i);
                    }
                }
                PushKind::Disconnection => sink(Purge::All),
                _ => {}
            }
            Ok(())
        };
        let config = crate::redis_conn::manager_config(self.timeout)
            .set_push_sender(push)
            .set_automatic_resubscription();
        let mut conn = ConnectionManager::new_lazy_with_config(client, config)
            .map_err(|e| ConfigError::new(format!("Redis subscription: {:?}", e.kind())))?;
        let task = tokio::spawn(async move {
            // Until the first SUBSCRIBE succeeds; afterwards the manager resubscribes itself.
            let mut wait = Duration::from_millis(50);
            loop {
                if conn.subscribe(&*channel).await.is_ok() {
                    on_message(Purge::All);
                    break;
                }
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(2));
            }
            // Keep the connection (and its resubscription) alive with the subscription.
            std::future::pending::<()>().await;
        });
        Ok(Subscription { task })
    }
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
            let tags = match entry {
                CacheEntry::Response(r) => r.tags(),
                CacheEntry::Vary(_) => &[],
            };
            let _ = RedisTier::put(self, key, &entry.encode(), ttl, tags).await;
        })
    }

    fn delete<'a>(&'a self, key: &'a str) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            let _ = RedisTier::delete(self, key).await;
        })
    }

    /// Applies `what` to Redis (by key, tag set, or a scan for URI and prefix purges) and
    /// publishes it to every instance.
    fn invalidate<'a>(&'a self, what: &'a Purge) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            let _ = match what {
                // The key and its `Vary` variants (`<key>\x1fv=...`).
                Purge::Key(k) => match RedisTier::delete(self, k).await {
                    Ok(()) => self.delete_prefix(&format!("{k}\x1f")).await,
                    Err(e) => Err(e),
                },
                Purge::Tag(t) => self.delete_tag(t).await,
                Purge::KeyPrefix(p) => self.delete_prefix(p).await,
                Purge::All => self.delete_prefix("").await,
                other => {
                    // URI purges match on the URI inside the key: scan every entry.
                    let probe = CacheEntry::Vary(Arc::from(Vec::new()));
                    self.delete_where("", |k| other.matches(k, &probe)).await
                }
            };
            let _ = self.publish(what).await;
        })
    }
}

/// A live subscription to invalidations; dropping it unsubscribes.
#[derive(Debug)]
pub struct Subscription {
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_characters_are_escaped() {
        assert_eq!(glob_escape("a*b?[c]\\"), "a\\*b\\?\\[c\\]\\\\");
    }

    #[test]
    fn purges_round_trip_on_the_wire() {
        for p in [
            Purge::Key("GET http://h/a".into()),
            Purge::Uri("/a?b".into()),
            Purge::Prefix("/api/roadmaps/".into()),
            Purge::KeyPrefix("user:1:".into()),
            Purge::Tag("t".into()),
            Purge::All,
        ] {
            assert_eq!(decode_purge(&encode_purge(&p)), Some(p));
        }
        assert_eq!(decode_purge(""), None);
        assert_eq!(decode_purge("k"), None);
        assert_eq!(decode_purge("z:x"), None);
    }
}
