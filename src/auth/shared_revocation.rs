//! Revocations shared by every instance through Redis.
//!
//! An in-process [`RevocationList`] knows only what its own process revoked (and what it loaded
//! at start): with several instances, a token logged out on one keeps working on the others.
//! [`RedisRevocations`] writes each revocation to Redis (`SET <prefix><jti> 1 EXAT <until>`,
//! kept [`MAX_LEEWAY`] past the token's `exp`, then expired by Redis itself) and consults Redis on
//! every request whose token the local list does not already refuse, so a revocation made on one
//! instance is refused by every other one from the next request on — no broadcast to miss, no
//! delay. A token found revoked in Redis is remembered locally, so it costs one round trip.
//!
//! **Outage.** Each check is bounded by a timeout (50 ms by default) and, after a failure, checks
//! fail fast for a moment instead of each waiting it out. What a failed check answers is the
//! configured policy: by default the local list alone decides (the process's own revocations
//! and those it has seen stay refused; another instance's new ones do not) and the failure is
//! counted in `protothrive_revocation_store_errors_total`; with
//! [`fail_closed`](RedisRevocationsBuilder::fail_closed) the request is refused as unavailable
//! (503) instead.
//!
//! **Cost.** One `EXISTS` per authenticated request with a `jti` (~50–100 µs on loopback), and
//! the verified-token cache's synchronous fast path is not taken (the check is asynchronous).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use super::revocation::BoxFuture;
use super::{AuthError, MAX_LEEWAY, Principal, Reason, Revocation, RevocationList};
use crate::error::ConfigError;
use crate::redis_handle::{Conn, RedisHandle, Source};
use crate::resilience::{CircuitBreaker, Outcome};

/// The default bound on one Redis call.
pub const DEFAULT_REVOCATION_TIMEOUT: Duration = Duration::from_millis(50);

/// Revocations in Redis, consulted by every instance, in front of a local [`RevocationList`].
///
/// ```no_run
/// use protothrive::auth::{Authenticator, RedisRevocations, RevocationList};
/// # async fn run(local: RevocationList, builder: protothrive::auth::AuthenticatorBuilder) -> Result<(), Box<dyn std::error::Error>> {
/// let shared = RedisRevocations::builder("redis://127.0.0.1:6379", local).build()?;
/// let auth = builder.revocation(shared.clone()).build()?;
/// // On logout, on whichever instance:
/// shared.revoke("the-jti", 1_900_000_000).await?;
/// # let _ = auth; Ok(()) }
/// ```
#[derive(Clone)]
pub struct RedisRevocations {
    inner: Arc<Inner>,
}

struct Inner {
    conn: Conn,
    local: RevocationList,
    prefix: String,
    timeout: Duration,
    fail_closed: bool,
    breaker: CircuitBreaker,
}

impl fmt::Debug for RedisRevocations {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisRevocations")
            .field("local", &self.inner.local)
            .field("prefix", &self.inner.prefix)
            .field("timeout", &self.inner.timeout)
            .field("fail_closed", &self.inner.fail_closed)
            .finish_non_exhaustive()
    }
}

/// Builds [`RedisRevocations`].
#[derive(Debug)]
#[must_use]
pub struct RedisRevocationsBuilder {
    source: Source,
    local: RevocationList,
    prefix: String,
    timeout: Option<Duration>,
    fail_closed: bool,
}

/// A revocation that could not be written to Redis (it is in the local list all the same).
#[derive(Debug)]
pub struct RevocationStoreError(String);

impl fmt::Display for RevocationStoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "revocation store: {}", self.0)
    }
}

impl std::error::Error for RevocationStoreError {}

impl RedisRevocations {
    /// A builder for the server at `url`, in front of `local` (the process's own list, which
    /// every revocation also enters and which answers first).
    pub fn builder(url: impl Into<String>, local: RevocationList) -> RedisRevocationsBuilder {
        Self::from_source(Source::Url(url.into()), local)
    }

    /// A builder on a connection shared with the application's other stores (one connection
    /// manager and one outage breaker); its timeout is the handle's unless set here.
    pub fn from_handle(handle: &RedisHandle, local: RevocationList) -> RedisRevocationsBuilder {
        Self::from_source(Source::Handle(handle.clone()), local)
    }

    fn from_source(source: Source, local: RevocationList) -> RedisRevocationsBuilder {
        RedisRevocationsBuilder {
            source,
            local,
            prefix: "protothrive:revoked:".to_owned(),
            timeout: None,
            fail_closed: false,
        }
    }

    /// The local list in front of Redis.
    #[must_use]
    pub fn local(&self) -> &RevocationList {
        &self.inner.local
    }

    /// Revokes `token_id` until `until` (the token's `exp`; kept [`MAX_LEEWAY`] longer) here and
    /// for every instance.
    ///
    /// # Errors
    /// Redis could not be written within the timeout: the other instances do not know.
    pub async fn revoke(&self, token_id: &str, until: u64) -> Result<(), RevocationStoreError> {
        self.inner.local.revoke(token_id, until);
        let mut cmd = redis::cmd("SET");
        cmd.arg(self.key(token_id))
            .arg(1)
            .arg("EXAT")
            .arg(until.saturating_add(MAX_LEEWAY.as_secs()).max(1));
        let mut conn = self.inner.conn.clone();
        match tokio::time::timeout(self.inner.timeout * 4, cmd.query_async::<()>(&mut conn)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(RevocationStoreError(e.to_string())),
            Err(_) => Err(RevocationStoreError("no answer in time".to_owned())),
        }
    }

    fn key(&self, token_id: &str) -> String {
        format!("{}{token_id}", self.inner.prefix)
    }

    /// Whether Redis holds `token_id`; `None` when it could not be asked.
    async fn shared_check(&self, token_id: &str) -> Option<bool> {
        let permit = self.inner.breaker.try_acquire().ok()?;
        let mut cmd = redis::cmd("EXISTS");
        cmd.arg(self.key(token_id));
        let mut conn = self.inner.conn.clone();
        let probed = async {
            crate::redis_handle::connect_for_probe(&conn, &permit).await;
            cmd.query_async::<i64>(&mut conn).await
        };
        match tokio::time::timeout(self.inner.timeout, probed).await {
            Ok(Ok(n)) => {
                permit.record(Outcome::Success);
                Some(n > 0)
            }
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "revocation store unavailable");
                permit.record(Outcome::Failure);
                None
            }
            Err(_) => {
                tracing::warn!("revocation store did not answer in time");
                permit.record(Outcome::Failure);
                None
            }
        }
    }
}

impl Revocation for RedisRevocations {
    fn is_revoked<'a>(
        &'a self,
        token_id: &'a str,
        principal: &'a Principal,
    ) -> BoxFuture<'a, Result<bool, AuthError>> {
        Box::pin(async move {
            if self.inner.local.contains(token_id) {
                return Ok(true);
            }
            match self.shared_check(token_id).await {
                Some(true) => {
                    // Remember it: the next request with this token costs no round trip.
                    if let Some(exp) = principal.expires_at() {
                        self.inner.local.revoke(token_id, exp);
                    }
                    Ok(true)
                }
                Some(false) => Ok(false),
                None => {
                    metrics::counter!("protothrive_revocation_store_errors_total").increment(1);
                    if self.inner.fail_closed {
                        Err(AuthError::new(Reason::Unavailable))
                    } else {
                        Ok(false)
                    }
                }
            }
        })
    }
}

impl RedisRevocationsBuilder {
    /// The prefix of every key written (default `protothrive:revoked:`).
    pub fn key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// The bound on one check (default 50 ms; a revocation's write gets four times that).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// When Redis cannot be asked, refuse the request as unavailable (503) rather than let the
    /// local list alone decide.
    pub fn fail_closed(mut self) -> Self {
        self.fail_closed = true;
        self
    }

    /// Connects lazily, in the background: a server that is down now is not an error here.
    ///
    /// # Errors
    /// A URL that is not a Redis URL, a zero timeout, or no Tokio runtime to run the connection
    /// on (call it from inside one).
    pub fn build(self) -> Result<RedisRevocations, ConfigError> {
        let timeout = self.timeout;
        let handle = self.source.handle("Redis revocation store", timeout)?;
        Ok(RedisRevocations {
            inner: Arc::new(Inner {
                conn: handle.conn,
                local: self.local,
                prefix: self.prefix,
                timeout: timeout.unwrap_or(DEFAULT_REVOCATION_TIMEOUT),
                fail_closed: self.fail_closed,
                breaker: handle.breaker,
            }),
        })
    }
}
