//! The Redis tier of the cache ([`RedisTier`] says what it guarantees and costs).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use redis::Script;

use super::journal::Journal;
use super::keys::{DEFAULT_SHARDS, Layout};
use super::scripts::{DROP_TAG, PUT, TOMBSTONE_MS};
use crate::error::ConfigError;
use crate::redis_handle::{Conn, RedisHandle, Source, Target};
use crate::resilience::{CircuitBreaker, Outcome};

/// How long a purge Redis did not take holds up its write by default.
const DEFAULT_PATIENCE: Duration = Duration::from_secs(1);

/// Why a Redis tier call failed (the cache skips the tier).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TierError(pub(super) String);

impl fmt::Display for TierError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cache tier: {}", self.0)
    }
}

impl std::error::Error for TierError {}

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
/// * **A purge is never silently lost.** One that Redis does not take (down, slow, its breaker
///   open) is kept, in order, and replayed every 100 ms until Redis applies and publishes it;
///   meanwhile this instance reads nothing from the tier (its own L1 is already purged, so it
///   serves nothing older than its writes), and the write that made the purge is held for up to
///   the [patience](RedisTierBuilder::purge_patience) (1 s by default) until the purge is
///   through — so when Redis answers within it, the write is acknowledged only once every
///   instance has been told. Past the patience the write is answered anyway (its data is
///   committed) and other instances may serve their older copy until Redis answers again and
///   the replay reaches them: the outage policy bounds such staleness by the outage's length.
///   At most 256 purges are kept one by one; past that they become one purge of everything.
///   [`unapplied_purges`](RedisTier::unapplied_purges) and the gauge
///   `protothrive_cache_purges_unapplied` count them; [`settled`](RedisTier::settled) waits for
///   them (a graceful shutdown).
/// * Invalidations are published on one channel; [`RedisTier::subscribe`] keeps a RESP3
///   subscription that the connection manager re-establishes after a disconnect. Messages
///   published while an instance was disconnected are lost to it, so a disconnect is delivered as
///   [`Purge::All`](crate::cache::Purge::All): the instance drops its whole in-process tier rather than serve what
///   may have been invalidated meanwhile.
///
/// **Cost.** One round trip per L2 read or write (~50–100 µs on loopback, BENCHMARKS.md); the
/// subscription is one extra connection per instance.
///
/// Keys are written as given after the configured prefix (default `protothrive:cache:`), tags
/// under `<prefix>tag:` and their tombstones under `<prefix>purged:`, so no tag's name can land on
/// another's tombstone. On a Redis Cluster ([`RedisHandle`] with a list of nodes) each entry
/// belongs to one of 16 shards ([`cluster_shards`](RedisTierBuilder::cluster_shards)) by its own
/// key, with the shard's tag sets and tombstones under the hash tag `{<shard>}`
/// (`<prefix>{<shard>}<key>`): a script's keys share one slot, entries spread over the masters,
/// and a tag purge costs one script per shard, sent concurrently.
///
/// Cheap to clone.
#[derive(Clone)]
pub struct RedisTier {
    pub(super) target: Target,
    pub(super) conn: Conn,
    put: Arc<Script>,
    drop_tag: Arc<Script>,
    pub(super) layout: Layout,
    pub(super) channel: Arc<str>,
    pub(super) timeout: Duration,
    breaker: CircuitBreaker,
    pub(super) journal: Arc<Journal>,
    pub(super) patience: Duration,
}

impl fmt::Debug for RedisTier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The URL may hold a password: never print it.
        f.debug_struct("RedisTier")
            .field("prefix", &self.layout.prefix())
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
    shards: u16,
    patience: Duration,
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

    /// How long a purge Redis did not take holds up the write that made it while it is
    /// replayed (default 1 s; zero: not at all). Within it, a write is answered only once the
    /// other instances have been told; past it, the write is answered and its purge stays
    /// queued (see [`RedisTier`]).
    pub fn purge_patience(mut self, patience: Duration) -> Self {
        self.patience = patience;
        self
    }

    /// On a Redis Cluster, how many shards entries spread over (default 16; each shard is one
    /// hash slot, and a tag purge is one script per shard). Ignored on one server.
    pub fn cluster_shards(mut self, shards: u16) -> Self {
        self.shards = shards;
        self
    }

    /// The tier; it connects lazily in the background (a server down now is not an error).
    ///
    /// # Errors
    /// Not a Redis URL, a zero timeout, zero cluster shards, or no Tokio runtime.
    pub fn build(self) -> Result<RedisTier, ConfigError> {
        if self.shards == 0 {
            return Err(ConfigError::new(
                "the Redis cache tier needs at least one cluster shard",
            ));
        }
        let timeout = self.timeout;
        let handle = self.source.handle("Redis cache tier", timeout)?;
        let shards = handle.conn.is_cluster().then_some(self.shards);
        Ok(RedisTier {
            target: handle.target,
            conn: handle.conn,
            put: Arc::new(Script::new(PUT)),
            drop_tag: Arc::new(Script::new(DROP_TAG)),
            layout: Layout::new(self.prefix, shards),
            channel: self.channel.into(),
            timeout: timeout.unwrap_or(handle.timeout),
            breaker: handle.breaker,
            journal: Arc::default(),
            patience: self.patience,
        })
    }
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
            shards: DEFAULT_SHARDS,
            patience: DEFAULT_PATIENCE,
        }
    }

    /// Whether the server answers a `PING` within the timeout; a success ends fail-fast after an
    /// outage.
    pub async fn ping(&self) -> bool {
        crate::redis_handle::ping(&self.conn, self.timeout, &self.breaker).await
    }

    pub(super) async fn bounded<T>(
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
                permit.record(if crate::redis_handle::is_outage(&e) {
                    Outcome::Failure
                } else {
                    Outcome::Ignored
                });
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

    pub(super) fn key(&self, key: &str) -> String {
        self.layout.key(key)
    }

    /// The bytes stored under `key`, if any.
    ///
    /// # Errors
    /// Redis down, slow or answering something else.
    pub async fn get(&self, key: &str) -> Result<Option<Bytes>, TierError> {
        if !self.journal.is_empty() {
            return Ok(None);
        }
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
        if !self.journal.is_empty() {
            return Ok(vec![None; keys.len()]);
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
        let shard = self.layout.shard_of(key);
        let mut call = self.put.prepare_invoke();
        call.key(self.key(key))
            .arg(value)
            .arg(ttl_ms)
            .arg(started_ms)
            .arg(tags.len());
        for tag in tags {
            call.key(self.layout.tag(shard, tag));
        }
        for tag in tags {
            call.key(self.layout.tombstone(shard, tag));
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

    /// Deletes every key stored with `tag`; returns how many. On a cluster, one script per
    /// shard, sent concurrently.
    ///
    /// # Errors
    /// Redis down, slow or answering something else.
    pub async fn delete_tag(&self, tag: &str) -> Result<u64, TierError> {
        let calls = self.layout.all_shards().into_iter().map(|shard| {
            let mut call = self.drop_tag.prepare_invoke();
            call.key(self.layout.tag(shard, tag))
                .key(self.layout.tombstone(shard, tag))
                .arg(TOMBSTONE_MS);
            let mut conn = self.conn.clone();
            async move { call.invoke_async::<u64>(&mut conn).await }
        });
        let all = futures_util::future::try_join_all(calls);
        let counts = self.bounded("delete_tag", self.timeout, all).await?;
        Ok(counts.into_iter().sum())
    }

    /// Deletes every key starting with `prefix` (a `SCAN`, bounded by ten timeouts in all).
    ///
    /// # Errors
    /// Redis down, slow or answering something else.
    pub async fn delete_prefix(&self, prefix: &str) -> Result<u64, TierError> {
        self.delete_where(prefix, |_| true).await
    }

    /// Deletes the entries whose key starts with `prefix` and `matches` (tag sets and
    /// tombstones excluded), scanning in batches — on a cluster, every master; bounded by ten
    /// timeouts in all.
    pub(super) async fn delete_where(
        &self,
        prefix: &str,
        matches: impl Fn(&str) -> bool + Send,
    ) -> Result<u64, TierError> {
        let pattern = self.layout.scan_pattern(prefix);
        let layout = self.layout.clone();
        let conn = self.conn.clone();
        let work = async move {
            let mut conn = conn;
            // On one server, `SCAN` on its connection; on a cluster, on each master in turn.
            let nodes = match conn.masters().await? {
                m if m.is_empty() => vec![None],
                m => m.into_iter().map(Some).collect(),
            };
            let mut deleted = 0u64;
            for node in &nodes {
                let mut cursor: u64 = 0;
                loop {
                    let mut scan = redis::cmd("SCAN");
                    scan.arg(cursor)
                        .arg("MATCH")
                        .arg(&pattern)
                        .arg("COUNT")
                        .arg(500);
                    let page = match node {
                        Some((host, port)) => conn.on_node(host, *port, scan).await?,
                        None => scan.query_async(&mut conn).await?,
                    };
                    let (next, keys): (u64, Vec<String>) = redis::from_redis_value(page)?;
                    let doomed: Vec<&String> = keys
                        .iter()
                        .filter(|k| layout.entry(k).is_some_and(&matches))
                        .collect();
                    if !doomed.is_empty() {
                        // On a cluster, split by slot by the connection.
                        let n: u64 = redis::cmd("UNLINK")
                            .arg(&doomed)
                            .query_async(&mut conn)
                            .await?;
                        deleted += n;
                    }
                    if next == 0 {
                        break;
                    }
                    cursor = next;
                }
            }
            Ok(deleted)
        };
        self.bounded("delete_prefix", self.timeout * 10, work).await
    }
}
