//! [`RedisStore`]: one limit shared by every instance (its docs say what it guarantees and costs).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use redis::{RedisError, Script};

use super::remote::{CheckFuture, RemoteStore, StoreError, StoreErrorKind};
use super::{Decision, Quota};
use crate::error::ConfigError;
use crate::redis_handle::{Conn, RedisHandle, Source};
use crate::resilience::{CircuitBreaker, Outcome};

/// GCRA over microseconds, one triple (allowed, remaining | retry-after, reset) per key.
///
/// `ARGV[1]` is the caller's time in µs, or empty for the server's `TIME`; then `T` and `τ` in µs
/// for each key. The arithmetic is that of `gcra::check`. A key expires when its TAT is reached;
/// with the caller's time Redis cannot relate that clock to its own, so keys then live at least a
/// minute (a longer TTL only costs memory: a stale TAT in the past decides like no key).
const SCRIPT: &str = r"
local now
local min_ttl = 1
if ARGV[1] == '' then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
else
  now = tonumber(ARGV[1])
  min_ttl = 60000
end
local out = {}
for i, key in ipairs(KEYS) do
  local t = tonumber(ARGV[2 * i])
  local tau = tonumber(ARGV[2 * i + 1])
  local stored = redis.call('GET', key)
  local tat = 0
  if stored then tat = tonumber(stored) or 0 end
  local base = math.max(tat, now)
  local new_tat = base + t
  local limit = now + tau
  if new_tat <= limit then
    redis.call('SET', key, string.format('%d', new_tat), 'PX', math.max(min_ttl, math.ceil((new_tat - now) / 1000)))
    out[#out + 1] = 1
    out[#out + 1] = math.floor((limit - new_tat) / t)
    out[#out + 1] = new_tat - now
  else
    out[#out + 1] = 0
    out[#out + 1] = new_tat - limit
    out[#out + 1] = base - now
  end
end
return out
";

/// Whose clock the script reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum TimeSource {
    /// The Redis server's `TIME`: every instance decides on one clock. The default.
    #[default]
    Server,
    /// The `now` the layer passes (its [`Clock`](crate::clock::Clock), nanoseconds since the layer
    /// was built). For tests with a [`ManualClock`](crate::clock::ManualClock): instances built at
    /// different times do not share this origin, so do not use it across instances.
    Caller,
}

/// One limit shared by every instance, checked by an atomic Lua script.
///
/// **Guarantees.**
/// * One round trip per request: every limit of the request goes to one `EVALSHA` of a Lua script
///   (loaded once; `NOSCRIPT` after a server restart reloads it) — on a cluster, one per hash slot
///   of the limits' keys, sent concurrently. The script runs atomically on the server, so
///   instances never race between read and write.
/// * The time is the Redis server's (`TIME`), not the instances': clocks that disagree between
///   hosts do not change a decision. Times are kept in microseconds, exact in Lua's doubles until
///   the year 2255.
/// * Every key gets a TTL equal to the time until its state carries no information (its TAT), so
///   Redis memory holds only keys that are limiting something.
/// * Every call is bounded by a timeout (50 ms by default) whatever the connection is doing; the
///   connection manager reconnects in the background with exponential backoff (100 ms doubling to
///   2 s). What the layer does on a failure is its [`OnStoreError`](super::OnStoreError).
///
/// **Cost.** One loopback round trip (~50–100 µs, see BENCHMARKS.md) per request, pipelined on one
/// multiplexed connection when requests are concurrent.
///
/// The algorithm in the script is [`check`](super::check) line for line, on microseconds; a
/// property test holds the two to the same decisions.
///
/// ```no_run
/// use std::sync::Arc;
/// use protothrive::rate_limit::{KeyBy, Limit, OnStoreError, RateLimitLayer, RedisStore};
///
/// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let redis = RedisStore::builder("redis://127.0.0.1:6379").build()?;
/// let layer = RateLimitLayer::builder()
///     .limit(Limit::new("ip", "60/min burst 10".parse()?).by(KeyBy::ClientIp))
///     .remote_store(Arc::new(redis), OnStoreError::FailClosed)
///     .build()?;
/// # Ok(()) }
/// ```
///
/// One Redis, or a Redis Cluster ([`RedisHandle`] with a list of nodes): there the limits of a
/// request are checked by one script per hash slot of their keys, sent concurrently (each key is
/// checked atomically on its own either way), so keys spread over the masters by their own
/// name; a `{hash tag}` in the prefix puts them all in one slot (one script, one master).
///
/// Cheap to clone (one multiplexed connection, shared).
#[derive(Clone)]
pub struct RedisStore {
    conn: Conn,
    script: Arc<Script>,
    timeout: Duration,
    prefix: Arc<str>,
    time: TimeSource,
    breaker: CircuitBreaker,
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The URL may hold a password: never print it.
        f.debug_struct("RedisStore")
            .field("timeout", &self.timeout)
            .field("prefix", &self.prefix)
            .field("time", &self.time)
            .finish_non_exhaustive()
    }
}

/// Builds a [`RedisStore`].
#[derive(Clone)]
#[must_use]
pub struct RedisStoreBuilder {
    source: Source,
    timeout: Option<Duration>,
    prefix: String,
    time: TimeSource,
}

impl fmt::Debug for RedisStoreBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStoreBuilder")
            .field("timeout", &self.timeout)
            .field("prefix", &self.prefix)
            .field("time", &self.time)
            .finish_non_exhaustive()
    }
}

/// The default bound on one check, connection included.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(50);

impl RedisStore {
    /// A builder for the server at `url` (`redis://[:password@]host:port[/db]`, or `rediss://`).
    ///
    /// ```
    /// use protothrive::rate_limit::RedisStore;
    /// let builder = RedisStore::builder("redis://127.0.0.1:6379").key_prefix("myapp:rl:");
    /// ```
    pub fn builder(url: impl Into<String>) -> RedisStoreBuilder {
        Self::from_source(Source::Url(url.into()))
    }

    /// A builder on a connection shared with other stores (one connection manager and one outage
    /// breaker for the whole application); its timeout is the handle's unless set here.
    ///
    /// ```
    /// # let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    /// # let _guard = rt.enter();
    /// use protothrive::rate_limit::RedisStore;
    /// use protothrive::redis_handle::RedisHandle;
    /// let handle = RedisHandle::builder("redis://127.0.0.1:6379").build().unwrap();
    /// let store = RedisStore::from_handle(&handle).key_prefix("myapp:rl:").build().unwrap();
    /// # let _ = store;
    /// ```
    pub fn from_handle(handle: &RedisHandle) -> RedisStoreBuilder {
        Self::from_source(Source::Handle(handle.clone()))
    }

    fn from_source(source: Source) -> RedisStoreBuilder {
        RedisStoreBuilder {
            source,
            timeout: None,
            prefix: "protothrive:rl:".to_owned(),
            time: TimeSource::Server,
        }
    }

    /// Whether the server answers a `PING` within the store's timeout (for readiness checks).
    pub async fn ping(&self) -> bool {
        crate::redis_handle::ping(&self.conn, self.timeout, &self.breaker).await
    }
}

impl RedisStoreBuilder {
    /// The bound on one check, waiting for a connection included (default 50 ms).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// The prefix of every key the store writes (default `protothrive:rl:`).
    pub fn key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// Whose clock decides (default: the server's).
    pub fn time_source(mut self, time: TimeSource) -> Self {
        self.time = time;
        self
    }

    /// The store. It connects lazily, in the background: a server that is down now is not an
    /// error here (the layer's [`OnStoreError`](super::OnStoreError) covers it).
    ///
    /// # Errors
    /// A URL that is not a Redis URL, a zero timeout, or no Tokio runtime to run the connection
    /// on (call it from inside one).
    pub fn build(self) -> Result<RedisStore, ConfigError> {
        let timeout = self.timeout;
        let handle = self.source.handle("Redis rate-limit store", timeout)?;
        Ok(RedisStore {
            conn: handle.conn,
            script: Arc::new(Script::new(SCRIPT)),
            timeout: timeout.unwrap_or(handle.timeout),
            prefix: self.prefix.into(),
            time: self.time,
            breaker: handle.breaker,
        })
    }
}

fn micros(nanos: u64) -> u64 {
    (nanos / 1_000).max(1)
}

fn store_error(e: &RedisError) -> StoreError {
    let kind = if e.is_timeout() {
        StoreErrorKind::Timeout
    } else if crate::redis_handle::is_outage(e) {
        StoreErrorKind::Unavailable
    } else {
        StoreErrorKind::Protocol
    };
    StoreError::new(kind, e.to_string())
}

/// Turns the script's flat answer into decisions (µs → ns).
fn decisions(raw: &[i64], n: usize) -> Result<Vec<Decision>, StoreError> {
    if raw.len() != 3 * n {
        return Err(StoreError::new(
            StoreErrorKind::Protocol,
            format!("the script answered {} numbers for {n} keys", raw.len()),
        ));
    }
    let ns = |v: i64| u64::try_from(v).unwrap_or(0).saturating_mul(1_000);
    Ok(raw
        .chunks_exact(3)
        .map(|c| {
            if c[0] == 1 {
                Decision::Allow {
                    tat: 0,
                    remaining: u64::try_from(c[1]).unwrap_or(0),
                    reset: ns(c[2]),
                }
            } else {
                Decision::Deny {
                    retry_after: ns(c[1]),
                    reset: ns(c[2]),
                }
            }
        })
        .collect())
}

impl RemoteStore for RedisStore {
    fn check_many(&self, checks: Vec<(String, Quota)>, now: u64) -> CheckFuture {
        let conn = self.conn.clone();
        let script = self.script.clone();
        let timeout = self.timeout;
        let prefix = self.prefix.clone();
        let Ok(permit) = self.breaker.try_acquire() else {
            return Box::pin(std::future::ready(Err(StoreError::new(
                StoreErrorKind::Unavailable,
                "failed less than 500 ms ago; failing fast until then",
            ))));
        };
        let now = match self.time {
            TimeSource::Server => String::new(),
            TimeSource::Caller => (now / 1_000).to_string(),
        };
        Box::pin(async move {
            let keys: Vec<String> = checks.iter().map(|(k, _)| format!("{prefix}{k}")).collect();
            // One script per hash slot on a cluster (a script's keys must share one); on one
            // server, one script for the whole request.
            let groups = if conn.is_cluster() {
                crate::redis_handle::conn::by_slot(keys.iter().map(String::as_str))
            } else {
                vec![(0..keys.len()).collect()]
            };
            let calls = groups.iter().map(|group| {
                let mut call = script.prepare_invoke();
                call.arg(&now);
                for &i in group {
                    let t = micros(checks[i].1.interval_nanos());
                    call.key(&keys[i])
                        .arg(t)
                        .arg(t.saturating_mul(u64::from(checks[i].1.burst())));
                }
                let mut conn = conn.clone();
                async move { call.invoke_async::<Vec<i64>>(&mut conn).await }
            });
            let answer = tokio::time::timeout(timeout, async {
                crate::redis_handle::connect_for_probe(&conn, &permit).await;
                futures_util::future::try_join_all(calls).await
            });
            let raws = match answer.await {
                Ok(Ok(raws)) => raws,
                Ok(Err(e)) => {
                    let e = store_error(&e);
                    permit.record(if e.kind() == StoreErrorKind::Protocol {
                        Outcome::Ignored
                    } else {
                        Outcome::Failure
                    });
                    return Err(e);
                }
                Err(_) => {
                    permit.record(Outcome::Failure);
                    return Err(StoreError::new(
                        StoreErrorKind::Timeout,
                        format!("no answer within {timeout:?}"),
                    ));
                }
            };
            permit.record(Outcome::Success);
            let mut out = vec![None; checks.len()];
            for (group, raw) in groups.iter().zip(raws) {
                for (&i, d) in group.iter().zip(decisions(&raw, group.len())?) {
                    out[i] = Some(d);
                }
            }
            Ok(out.into_iter().flatten().collect())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_short_answer_is_a_protocol_error() {
        assert_eq!(
            decisions(&[1, 2], 1).unwrap_err().kind(),
            StoreErrorKind::Protocol
        );
        assert_eq!(
            decisions(&[1, 2, 3, 0, 5, 6], 2).unwrap(),
            vec![
                Decision::Allow {
                    tat: 0,
                    remaining: 2,
                    reset: 3_000
                },
                Decision::Deny {
                    retry_after: 5_000,
                    reset: 6_000
                }
            ]
        );
    }

    #[tokio::test]
    async fn a_bad_url_is_a_config_error_without_the_password() {
        let e = RedisStore::builder("http://:hunter2@example.com")
            .build()
            .unwrap_err();
        assert!(!e.message().contains("hunter2"), "{e}");
    }

    #[test]
    fn building_outside_a_runtime_is_a_config_error() {
        let e = RedisStore::builder("redis://127.0.0.1:1")
            .build()
            .unwrap_err();
        assert_eq!(
            e.message(),
            "build the Redis rate-limit store inside a Tokio runtime (its connection runs there)"
        );
    }
}
