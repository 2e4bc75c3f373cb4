//! One Redis connection for every store of an application (feature `redis`): the rate limiter's
//! GCRA state, the cache's L2 tier and its purge broadcast share one [`RedisHandle`] — one
//! lazily connecting, multiplexed connection, every answer bounded by a timeout, and one outage
//! breaker: after a call fails for want of the server, every store's calls fail at once for
//! 500 ms (one probe per interval) and take their configured fallback, instead of each store
//! discovering the outage by waiting out its own timeout.
//!
//! The breaker's probes drive reconnection: a lost connection is replaced by one attempt at a
//! time, set off by the call that finds it lost, and a probe first makes sure of a connection
//! (a `PING` that sets off a new attempt, and one that waits for it) before its own command. So
//! a single probe closes the breaker once the server is back, whether the connection survived
//! the outage (a hung or stopped server) or not (a reset, a restarted server) — where a
//! background loop with growing delays (what `redis-rs` does by default) would keep every
//! probe failing until its next attempt, up to seconds after the server came back.
//!
//! ```
//! use std::time::Duration;
//! use protothrive::redis_handle::RedisHandle;
//!
//! let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
//! let handle = rt.block_on(async {
//!     RedisHandle::builder("redis://127.0.0.1:6379").timeout(Duration::from_millis(20)).build()
//! })?;
//! assert_eq!(handle.timeout(), Duration::from_millis(20));
//! // Each store built from it shares the connection and the breaker:
//! let _limits = protothrive::rate_limit::RedisStore::from_handle(&handle).build()?;
//! let _cache = rt.block_on(async { protothrive::cache::RedisTier::from_handle(&handle).build() })?;
//!
//! // A comma-separated list of nodes is a Redis Cluster (connected lazily too):
//! let nodes = "redis://127.0.0.1:7000,redis://127.0.0.1:7001,redis://127.0.0.1:7002";
//! let _cluster = rt.block_on(async { RedisHandle::builder(nodes).build() })?;
//!
//! let err = rt.block_on(async { RedisHandle::builder("http://nope").build() }).unwrap_err();
//! assert!(err.message().contains("redis://"));
//! let list = "redis://127.0.0.1:7000,http://:secret@x";
//! let err = rt.block_on(async { RedisHandle::builder(list).build() }).unwrap_err();
//! assert!(err.message().contains("commas") && !err.message().contains("secret"));
//! # Ok::<(), protothrive::error::ConfigError>(())
//! ```
//!
//! Cost: building is free (the connection is made on first use); a clone is two reference
//! counts.
//!
//! # Redis Cluster
//!
//! A URL that is a comma-separated list of node addresses
//! (`redis://10.0.0.1:6379,redis://10.0.0.2:6379,...`; any reachable one finds the others) makes
//! the handle a cluster's (`redis-rs`'s `cluster-async` connection, lazily connecting too); one
//! URL keeps everything above unchanged. On a cluster:
//!
//! * **Keys and hash slots.** A script or a multi-key command must keep its keys in one slot.
//!   The rate limiter's keys are spread by their own name and a request's limits are checked by
//!   one script per slot, sent concurrently (each limit is atomic on its own either way). The
//!   cache tier puts each entry in one of 16 shards by a hash of its key, the shard's tag sets
//!   and tombstones beside it under the hash tag `{<shard>}` (`protothrive:cache:{7}GET ...`):
//!   a read or a write is one slot, a tag purge or a write-through that purges is one script
//!   per shard. `MGET`/`UNLINK` of keys in several slots are split per slot by `redis-rs`;
//!   a prefix purge `SCAN`s every master. Revocations are one key per call.
//! * **Purges.** A `PUBLISH` goes to the master of the channel's slot, or to every master when
//!   that fails; the subscription listens on one node (a `PUBLISH` reaches every node over the
//!   cluster bus) and moves to the next node of the list when that one is lost, reporting
//!   [`Purge::All`](crate::cache::Purge::All) for what it may have missed.
//! * **Redirections and failures.** `redis-rs` follows `MOVED`/`ASK` and refreshes its slot map
//!   (two retries, 10–50 ms apart, within the call's timeout). A node that is down, a slot
//!   without a master (`CLUSTERDOWN`) or a failover in progress fails the call like a lost
//!   server: the breaker opens for every store and each takes its fallback for 500 ms, then
//!   one probe goes through — so while one master of three is down, its slots keep failing
//!   over to the fallback and the others serve between two probes' failures. The cluster
//!   connection reconnects to a node when a command needs it (probes do not `PING` first:
//!   on a cluster a `PING` asks every node), and [`ping`](RedisHandle::ping) is true only
//!   when every node answers. Run the cluster with replicas (a failover takes the cluster's
//!   node timeout plus an election), or with `cluster-require-full-coverage no` so that the
//!   slots of the other masters keep serving while one has none.
//! * **Cost.** One connection per node, each call on the node owning its slot; a tag purge is
//!   16 scripts instead of one (concurrent, ~one round trip per master); a publish that finds
//!   its master down is sent again to every master (subscribers then hear it once per master:
//!   a purge applied twice is harmless).

// With no store to use it (no `rate-limit`, `cache` or `auth`), only the handle itself is used.
#![cfg_attr(
    not(any(feature = "cache", feature = "rate-limit", feature = "auth")),
    allow(dead_code)
)]

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Client, RedisError};

pub(crate) mod conn;
pub(crate) use conn::Conn;

use crate::clock::SharedClock;
use crate::error::ConfigError;
use crate::resilience::{CircuitBreaker, Permit, Window};

/// The default bound on one call, connection included.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(50);

/// A shared Redis connection and outage breaker; see the [module docs](self).
#[derive(Clone)]
pub struct RedisHandle {
    #[cfg_attr(not(feature = "cache"), allow(dead_code))]
    pub(crate) target: Target,
    pub(crate) conn: Conn,
    pub(crate) breaker: CircuitBreaker,
    pub(crate) timeout: Duration,
}

impl fmt::Debug for RedisHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The URL may hold a password: never print it.
        f.debug_struct("RedisHandle")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// What a handle connects to: one server's client, or a cluster's node URLs (for the purge
/// subscription, which holds a connection of its own).
#[derive(Clone)]
#[cfg_attr(not(feature = "cache"), allow(dead_code))]
pub(crate) enum Target {
    Single(Client),
    Cluster(Arc<[String]>),
}

/// Builds a [`RedisHandle`].
#[must_use]
pub struct RedisHandleBuilder {
    url: String,
    timeout: Duration,
    clock: Option<SharedClock>,
}

impl fmt::Debug for RedisHandleBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisHandleBuilder")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl RedisHandle {
    /// A builder for the server at `url` (`redis://[:password@]host:port[/db]`, or `rediss://`),
    /// or for a Redis Cluster: a comma-separated list of its nodes' URLs
    /// (`redis://10.0.0.1:6379,redis://10.0.0.2:6379`; any reachable one is enough to find the
    /// others). See the [module docs](self) for what a cluster changes.
    pub fn builder(url: impl Into<String>) -> RedisHandleBuilder {
        RedisHandleBuilder {
            url: url.into(),
            timeout: DEFAULT_TIMEOUT,
            clock: None,
        }
    }

    /// The bound on one call.
    #[must_use]
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Whether the server answers a `PING` within the timeout (for readiness checks); an answer
    /// closes the breaker for every store.
    pub async fn ping(&self) -> bool {
        ping(&self.conn, self.timeout, &self.breaker).await
    }
}

/// `PING` on `conn` within `timeout` (see [`ping_twice`]); an answer closes `breaker`.
pub(crate) async fn ping(conn: &Conn, timeout: Duration, breaker: &CircuitBreaker) -> bool {
    let up = matches!(
        tokio::time::timeout(timeout, ping_twice(conn)).await,
        Ok(true)
    );
    if up {
        breaker.reset();
    }
    up
}

/// Whether the server answers a `PING`, asking twice: a failed connection attempt is kept until
/// a call fails on it, so the first `PING` may only set off a new attempt, which the second
/// waits for.
async fn ping_twice(conn: &Conn) -> bool {
    let mut conn = conn.clone();
    for _ in 0..2 {
        let cmd = redis::cmd("PING");
        if cmd.query_async::<String>(&mut conn).await.is_ok() {
            return true;
        }
    }
    false
}

/// Before a probe's command: makes sure of a connection (see [`ping_twice`]), so one probe is
/// enough once the server is back. A call that is not a probe goes straight to its command; so
/// does a probe on a cluster, whose connection reconnects to a node when a command needs it
/// (and whose `PING` asks every node: one dead master would fail every probe).
pub(crate) async fn connect_for_probe(conn: &Conn, permit: &Permit) {
    if permit.is_probe() && !conn.is_cluster() {
        ping_twice(conn).await;
    }
}

impl RedisHandleBuilder {
    /// The bound on one call, waiting for a connection included (default 50 ms).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The clock of the outage breaker (default: the system clock).
    pub fn clock(mut self, clock: SharedClock) -> Self {
        self.clock = Some(clock);
        self
    }

    /// The handle; it connects lazily, in the background (a server down now is not an error).
    ///
    /// # Errors
    /// Not a Redis URL, a zero timeout, or no Tokio runtime to run the connection on.
    pub fn build(self) -> Result<RedisHandle, ConfigError> {
        self.build_for("Redis connection")
    }

    /// [`build`](Self::build), naming `what` in errors.
    pub(crate) fn build_for(self, what: &str) -> Result<RedisHandle, ConfigError> {
        let (target, conn) = connect(what, &self.url, self.timeout)?;
        Ok(RedisHandle {
            target,
            conn,
            breaker: outage_breaker(self.clock.unwrap_or_else(crate::clock::system))?,
            timeout: self.timeout,
        })
    }
}

/// The connection manager settings for a store whose calls are bounded by `timeout`.
pub(crate) fn manager_config(timeout: Duration) -> ConnectionManagerConfig {
    ConnectionManagerConfig::new()
        .set_connection_timeout(Some(timeout.max(Duration::from_millis(250))))
        .set_response_timeout(Some(timeout))
        // One attempt per reconnection: the breaker's probes set off the next one.
        .set_number_of_retries(0)
}

/// The settings for a subscriber's connection: nothing calls on it to set off a reconnection,
/// so it reconnects by itself in the background, 100 ms doubling to 2 s, forever.
#[cfg_attr(not(feature = "cache"), allow(dead_code))]
pub(crate) fn subscriber_config(timeout: Duration) -> ConnectionManagerConfig {
    manager_config(timeout)
        .set_min_delay(Duration::from_millis(100))
        .set_max_delay(Duration::from_secs(2))
        .set_number_of_retries(usize::MAX)
}

/// Where a store's connection comes from: its own URL, or a handle shared with other stores.
#[derive(Clone)]
pub(crate) enum Source {
    Url(String),
    Handle(RedisHandle),
}

impl fmt::Debug for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A URL may hold a password: never print it.
        match self {
            Self::Url(_) => f.write_str("Url(..)"),
            Self::Handle(h) => h.fmt(f),
        }
    }
}

impl Source {
    /// The handle: the shared one, or a new one for the URL with `timeout`.
    pub(crate) fn handle(
        self,
        what: &str,
        timeout: Option<Duration>,
    ) -> Result<RedisHandle, ConfigError> {
        match self {
            Self::Url(url) => RedisHandle::builder(url)
                .timeout(timeout.unwrap_or(DEFAULT_TIMEOUT))
                .build_for(what),
            Self::Handle(h) => {
                if timeout.is_some_and(|t| t.is_zero()) {
                    return Err(ConfigError::new(format!(
                        "the {what}'s timeout must be above zero"
                    )));
                }
                Ok(h)
            }
        }
    }
}

/// What `url` names and its lazily connecting connection: a manager for one server, a cluster
/// connection for a comma-separated list of nodes. `what` names the store in errors.
///
/// Errors never quote the URL: it may hold a password.
pub(crate) fn connect(
    what: &str,
    url: &str,
    timeout: Duration,
) -> Result<(Target, Conn), ConfigError> {
    if timeout.is_zero() {
        return Err(ConfigError::new(format!(
            "the {what}'s timeout must be above zero"
        )));
    }
    if tokio::runtime::Handle::try_current().is_err() {
        return Err(ConfigError::new(format!(
            "build the {what} inside a Tokio runtime (its connection runs there)"
        )));
    }
    if conn::is_cluster_url(url) {
        let nodes = conn::cluster_nodes(url).ok_or_else(|| {
            ConfigError::new(format!(
                "the {what}'s Redis Cluster URL must be two or more redis://host:port, \
                 separated by commas"
            ))
        })?;
        let cluster = conn::cluster(&nodes, timeout).map_err(|e| {
            ConfigError::new(format!("{what}: Redis Cluster connection: {:?}", e.kind()))
        })?;
        return Ok((Target::Cluster(nodes.into()), Conn::Cluster(cluster)));
    }
    let client = Client::open(url).map_err(|_| {
        ConfigError::new(format!(
            "the {what}'s Redis URL must look like redis://[:password@]host:port[/db]"
        ))
    })?;
    let conn = ConnectionManager::new_lazy_with_config(client.clone(), manager_config(timeout))
        .map_err(|e| {
            ConfigError::new(format!("{what}: Redis connection manager: {:?}", e.kind()))
        })?;
    Ok((Target::Single(client), Conn::Single(conn)))
}

/// Whether `e` says the server (or, on a cluster, the node owning the slot) is out of reach — an
/// outage the breaker counts — rather than a wrong answer: down, hung, refusing, or a cluster
/// that cannot serve the slot now (`CLUSTERDOWN`, `TRYAGAIN`, `MASTERDOWN`, a redirection not
/// settled within the retries, no connection to the slot's node).
#[cfg_attr(not(any(feature = "cache", feature = "rate-limit")), allow(dead_code))]
pub(crate) fn is_outage(e: &RedisError) -> bool {
    use redis::{ErrorKind, ServerErrorKind};
    e.is_io_error()
        || e.is_connection_refusal()
        || e.is_connection_dropped()
        || e.is_timeout()
        || e.is_cluster_error()
        || matches!(
            e.kind(),
            ErrorKind::ClusterConnectionNotFound | ErrorKind::Server(ServerErrorKind::MasterDown)
        )
}

/// The outage breaker of a handle: after a call failed for want of the server (down, hung,
/// unreachable), further calls fail at once for [`FAIL_FAST`] instead of each waiting out the
/// timeout; then one call probes while the others keep taking their fallback. A success (the
/// probe, or `PING`) closes it again. It is a [`CircuitBreaker`] that one failure opens.
pub(crate) fn outage_breaker(clock: SharedClock) -> Result<CircuitBreaker, ConfigError> {
    CircuitBreaker::builder("redis")
        .window(Window::Count(1))
        .min_calls(1)
        .failure_rate(100)
        .open_wait(FAIL_FAST)
        .max_open_wait(FAIL_FAST)
        .probes(1)
        .clock(clock)
        .build()
}

/// How long calls fail fast after a failure.
pub(crate) const FAIL_FAST: Duration = Duration::from_millis(500);

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::clock::ManualClock;
    use crate::resilience::{BreakerState, Outcome};

    #[test]
    fn one_failure_opens_the_outage_breaker_for_fail_fast_then_one_probe() {
        let clock = ManualClock::default();
        let b = outage_breaker(Arc::new(clock.clone())).unwrap();
        b.try_acquire().unwrap().record(Outcome::Failure);
        assert_eq!(b.try_acquire().unwrap_err().retry_after, FAIL_FAST);
        clock.advance(FAIL_FAST);
        let probe = b.try_acquire().unwrap();
        assert!(b.try_acquire().is_err(), "one probe at a time");
        probe.record(Outcome::Failure);
        assert_eq!(
            b.try_acquire().unwrap_err().retry_after,
            FAIL_FAST,
            "the wait does not grow"
        );
        b.reset();
        assert_eq!(b.state(), BreakerState::Closed, "a PING answer closes it");
        b.try_acquire().unwrap().record(Outcome::Ignored);
        assert_eq!(
            b.state(),
            BreakerState::Closed,
            "a protocol error says nothing"
        );
    }
}
