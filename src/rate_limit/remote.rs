//! Stores reached over the network: [`RemoteStore`], its errors and the outage policy.
//!
//! A remote store (Redis: [`RedisStore`](super::RedisStore) with the `redis` feature) shares one
//! limit between every instance of a service. It checks every limit of a request in one round trip
//! and is asynchronous, unlike the in-process [`RateLimitStore`](super::RateLimitStore) whose
//! check is a few atomic operations and stays synchronous so the in-process path allocates no
//! future.
//!
//! A remote store can be down or slow. Its calls are bounded by a timeout (the store's own), and
//! what the layer does then is a configured [`OnStoreError`]: let the request through, refuse it
//! with a `503`, or decide with the in-process store. Every outage is counted in the metric
//! `protothrive_rate_limit_store_errors_total{kind, policy}` and logged; it is never a `500`.

use std::fmt;
use std::future::Future;
use std::pin::Pin;

use super::{Decision, Quota};

/// The future of a [`RemoteStore`] check.
pub type CheckFuture = Pin<Box<dyn Future<Output = Result<Vec<Decision>, StoreError>> + Send>>;

/// A store shared between instances (Redis), checking all limits of a request in one call.
///
/// `checks` are the (key, quota) pairs of the limits that apply to one request; the answer has one
/// [`Decision`] per pair, in the same order. Each pair is checked and, when allowed, recorded
/// atomically on its own (the same semantics as [`RateLimitStore`](super::RateLimitStore)).
/// `now` is the layer's clock in nanoseconds; a store that takes its time from the server (as
/// [`RedisStore`](super::RedisStore) does by default) ignores it.
///
/// ```
/// use protothrive::rate_limit::{check, CheckFuture, Quota, RemoteStore};
///
/// /// A store that forgets everything: each request is a first one.
/// #[derive(Debug)]
/// struct Amnesiac;
///
/// impl RemoteStore for Amnesiac {
///     fn check_many(&self, checks: Vec<(String, Quota)>, now: u64) -> CheckFuture {
///         Box::pin(async move { Ok(checks.iter().map(|(_, q)| check(0, now, q)).collect()) })
///     }
/// }
/// ```
pub trait RemoteStore: Send + Sync + fmt::Debug + 'static {
    /// Checks and records the requests; see the trait docs.
    fn check_many(&self, checks: Vec<(String, Quota)>, now: u64) -> CheckFuture;
}

/// Why a remote store could not decide.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreError {
    kind: StoreErrorKind,
    message: String,
}

/// The kind of a [`StoreError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum StoreErrorKind {
    /// No answer within the store's timeout (a hung or overloaded server).
    Timeout,
    /// The server could not be reached or the connection broke.
    Unavailable,
    /// The server answered something unexpected.
    Protocol,
}

impl StoreErrorKind {
    /// A short name for logs and metric labels: `timeout`, `unavailable` or `protocol`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Timeout => "timeout",
            Self::Unavailable => "unavailable",
            Self::Protocol => "protocol",
        }
    }
}

impl StoreError {
    /// An error of `kind` with a message.
    ///
    /// ```
    /// use protothrive::rate_limit::{StoreError, StoreErrorKind};
    /// let e = StoreError::new(StoreErrorKind::Timeout, "no answer in 50 ms");
    /// assert_eq!(e.kind(), StoreErrorKind::Timeout);
    /// ```
    pub fn new(kind: StoreErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }

    /// The kind.
    #[must_use]
    pub fn kind(&self) -> StoreErrorKind {
        self.kind
    }

    /// The message.
    #[must_use]
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "rate-limit store {}: {}",
            self.kind.as_str(),
            self.message
        )
    }
}

impl std::error::Error for StoreError {}

/// What the layer does when its [`RemoteStore`] fails or times out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum OnStoreError {
    /// Decide with the layer's in-process store
    /// ([`store`](super::RateLimitLayerBuilder::store)): each instance enforces the limit alone
    /// until the remote store is back, so the limit across `n` instances is at most `n` times the
    /// quota. The default: the service stays up and limited.
    #[default]
    Local,
    /// Let the request through unlimited (no `RateLimit` headers).
    FailOpen,
    /// Refuse the request with a `503` problem (`SRV-503`, `Retry-After: 1`).
    FailClosed,
}

impl OnStoreError {
    /// A short name for logs and metric labels: `local`, `open` or `closed`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Local => "local",
            Self::FailOpen => "open",
            Self::FailClosed => "closed",
        }
    }
}

impl std::str::FromStr for OnStoreError {
    type Err = crate::error::ConfigError;

    /// Parses `local`, `open` or `closed` (as in configuration files).
    ///
    /// ```
    /// use protothrive::rate_limit::OnStoreError;
    /// assert_eq!("closed".parse::<OnStoreError>().unwrap(), OnStoreError::FailClosed);
    /// let err = "sometimes".parse::<OnStoreError>().unwrap_err();
    /// assert_eq!(
    ///     err.message(),
    ///     "rate-limit store policy `sometimes`: use `local`, `open` or `closed`"
    /// );
    /// ```
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "local" | "fallback" => Ok(Self::Local),
            "open" | "fail-open" => Ok(Self::FailOpen),
            "closed" | "fail-closed" => Ok(Self::FailClosed),
            other => Err(crate::error::ConfigError::new(format!(
                "rate-limit store policy `{other}`: use `local`, `open` or `closed`"
            ))),
        }
    }
}
