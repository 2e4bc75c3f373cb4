//! Keys from a JSON Web Key Set (RFC 7517 §5) that rotate without a restart.
//!
//! * **Refresh**: when the set is older than the refresh interval, the next request that uses it
//!   starts one refresh in the background and is served the current keys meanwhile.
//! * **Unknown `kid`**: a token naming a key the set does not have triggers a refetch — one at a
//!   time (single-flight: concurrent requests wait for the same fetch) and at most one per minimum
//!   interval however many unknown kids arrive, so a flood of made-up kids cannot make this service
//!   flood the identity provider.
//! * **Failures keep stale keys**: a fetch that fails, or returns a set with no usable key, leaves
//!   the current keys in place.
//! * **Unsupported keys are skipped**: an `enc` key, an unknown `kty`, a curve or algorithm this
//!   crate does not verify, an RSA key under 2048 bits — each is left out, the rest of the set is
//!   used.
//!
//! Fetching is behind [`FetchJwks`], so the refresh logic is tested with any source;
//! [`HttpJwksFetcher`] (feature `jwks`) fetches over HTTPS and can discover the set through OIDC
//! discovery.

use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use jsonwebtoken::Algorithm;
use jsonwebtoken::jwk::Jwk;
use serde_json::Value;

use super::VerifyingKey;
use super::revocation::BoxFuture;
use super::token::Header;
use super::verify::is_candidate;
use crate::clock::{self, SharedClock};
use crate::coalesce::Flights;

/// The most keys read from one set.
pub const MAX_KEYS: usize = 64;

/// Why a key set could not be fetched or read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwksError(String);

impl JwksError {
    /// An error with a message.
    pub fn new(message: impl Into<String>) -> Self {
        Self(message.into())
    }
}

impl fmt::Display for JwksError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "JWKS: {}", self.0)
    }
}

impl std::error::Error for JwksError {}

/// A source of key-set documents.
pub trait FetchJwks: Send + Sync + 'static {
    /// Fetches the current JWKS document (the JSON bytes).
    fn fetch(&self) -> BoxFuture<'_, Result<Bytes, JwksError>>;
}

impl<F, Fut> FetchJwks for F
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Bytes, JwksError>> + Send + 'static,
{
    fn fetch(&self) -> BoxFuture<'_, Result<Bytes, JwksError>> {
        Box::pin(self())
    }
}

/// Reads a JWKS document, skipping keys that cannot be used.
///
/// ```
/// use protothrive::auth::parse_jwks;
/// let keys = parse_jwks(br#"{"keys":[{"kty":"oct","k":"c2VjcmV0"},{"kty":"XYZ"}]}"#, None)?;
/// assert!(keys.is_empty()); // both skipped: symmetric, and unknown
/// assert_eq!(
///     parse_jwks(b"[]", None).unwrap_err().to_string(),
///     "JWKS: the document has no `keys` array"
/// );
/// # Ok::<(), protothrive::auth::JwksError>(())
/// ```
///
/// # Errors
/// When the document is not a JSON object with a `keys` array.
pub fn parse_jwks(
    document: &[u8],
    default_rsa_alg: Option<Algorithm>,
) -> Result<Vec<VerifyingKey>, JwksError> {
    let value: Value =
        serde_json::from_slice(document).map_err(|e| JwksError::new(format!("not JSON: {e}")))?;
    let Some(Value::Array(entries)) = value.get("keys") else {
        return Err(JwksError::new("the document has no `keys` array"));
    };
    let mut keys = Vec::new();
    for entry in entries.iter().take(MAX_KEYS) {
        let jwk: Jwk = match serde_json::from_value(entry.clone()) {
            Ok(jwk) => jwk,
            Err(e) => {
                tracing::debug!(error = %e, "skipping an unsupported JWK");
                continue;
            }
        };
        match VerifyingKey::from_jwk(&jwk, default_rsa_alg) {
            Ok(key) => keys.push(key),
            Err(e) => tracing::debug!(kid = ?jwk.common.key_id, error = %e, "skipping a JWK"),
        }
    }
    Ok(keys)
}

/// A key set kept fresh from a [`FetchJwks`] source.
///
/// ```
/// use bytes::Bytes;
/// use protothrive::auth::{Jwks, JwksError};
///
/// # tokio_test();
/// # fn tokio_test() {
/// # let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
/// # rt.block_on(async {
/// let jwks = Jwks::builder(|| async { Ok::<_, JwksError>(Bytes::from_static(br#"{"keys":[]}"#)) })
///     .build();
/// // A set with no usable key is an error and keeps whatever was there before.
/// assert_eq!(jwks.refresh().await, Err(JwksError::new("the set has no usable key")));
/// assert_eq!(jwks.fetch_count(), 1);
/// # });
/// # }
/// ```
#[derive(Clone)]
pub struct Jwks {
    inner: Arc<Inner>,
}

struct Inner {
    fetcher: Box<dyn FetchJwks>,
    clock: SharedClock,
    refresh_interval: Duration,
    min_refetch_interval: Duration,
    default_rsa_alg: Option<Algorithm>,
    state: RwLock<State>,
    /// Fetches never overlap: each leads this one flight.
    fetching: Flights<()>,
    fetches: AtomicU64,
    /// Refreshes that dropped a key: a token verified with a key this set no longer holds must
    /// not outlive the key in the verified-token cache.
    removals: AtomicU64,
}

#[derive(Default)]
struct State {
    keys: Arc<[VerifyingKey]>,
    fetched_at: Option<Instant>,
    last_attempt: Option<Instant>,
}

impl fmt::Debug for Jwks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Jwks")
            .field("keys", &self.keys().len())
            .field("refresh_interval", &self.inner.refresh_interval)
            .finish_non_exhaustive()
    }
}

/// Builds a [`Jwks`].
#[must_use]
pub struct JwksBuilder {
    fetcher: Box<dyn FetchJwks>,
    clock: SharedClock,
    refresh_interval: Duration,
    min_refetch_interval: Duration,
    default_rsa_alg: Option<Algorithm>,
}

impl fmt::Debug for JwksBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwksBuilder").finish_non_exhaustive()
    }
}

impl JwksBuilder {
    /// How old the set may get before a background refresh (default 5 minutes).
    pub fn refresh_interval(mut self, every: Duration) -> Self {
        self.refresh_interval = every;
        self
    }

    /// The least time between two fetches caused by unknown `kid`s or failures (default 30 s).
    pub fn min_refetch_interval(mut self, at_least: Duration) -> Self {
        self.min_refetch_interval = at_least;
        self
    }

    /// The algorithm of RSA keys that name none (the set's `alg` is optional; RS256 is a common
    /// default). Without it such keys are skipped, since RS and PS cannot be told apart.
    pub fn default_rsa_algorithm(mut self, alg: Algorithm) -> Self {
        self.default_rsa_alg = Some(alg);
        self
    }

    /// The clock (tests use a manual one).
    pub fn clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }

    /// The key set, empty until its first fetch (call [`Jwks::refresh`] at start-up to fail fast).
    pub fn build(self) -> Jwks {
        Jwks {
            inner: Arc::new(Inner {
                fetcher: self.fetcher,
                clock: self.clock,
                refresh_interval: self.refresh_interval,
                min_refetch_interval: self.min_refetch_interval,
                default_rsa_alg: self.default_rsa_alg,
                state: RwLock::default(),
                fetching: Flights::default(),
                fetches: AtomicU64::new(0),
                removals: AtomicU64::new(0),
            }),
        }
    }
}

impl Jwks {
    /// Starts a key set fetched by `fetcher`.
    pub fn builder(fetcher: impl FetchJwks) -> JwksBuilder {
        JwksBuilder {
            fetcher: Box::new(fetcher),
            clock: clock::system(),
            refresh_interval: Duration::from_secs(300),
            min_refetch_interval: Duration::from_secs(30),
            default_rsa_alg: None,
        }
    }

    /// The current keys.
    #[must_use]
    pub fn keys(&self) -> Arc<[VerifyingKey]> {
        self.read().keys.clone()
    }

    /// How many fetches were started so far.
    #[must_use]
    pub fn fetch_count(&self) -> u64 {
        self.inner.fetches.load(Ordering::Relaxed)
    }

    /// How many refreshes have dropped a key so far.
    pub(crate) fn removals(&self) -> u64 {
        self.inner.removals.load(Ordering::Acquire)
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.inner
            .state
            .read()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Fetches the set now. A fetch already under way is waited for first (fetches never overlap);
    /// this one starts after it, so it sees keys published since that one began.
    ///
    /// # Errors
    /// When the fetch fails or the set has no usable key; the current keys stay.
    pub async fn refresh(&self) -> Result<usize, JwksError> {
        let _leader = self.inner.fetching.lead(&()).await;
        self.fetch_as_leader().await
    }

    async fn fetch_as_leader(&self) -> Result<usize, JwksError> {
        let started = self.inner.clock.instant();
        self.inner.fetches.fetch_add(1, Ordering::Relaxed);
        self.inner
            .state
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .last_attempt = Some(started);
        let result = match self.inner.fetcher.fetch().await {
            Ok(doc) => parse_jwks(&doc, self.inner.default_rsa_alg),
            Err(e) => Err(e),
        };
        match result {
            Ok(keys) if !keys.is_empty() => {
                let n = keys.len();
                let mut state = self
                    .inner
                    .state
                    .write()
                    .unwrap_or_else(PoisonError::into_inner);
                // A key is known by its `kid` and algorithm: a set must not reuse a `kid` for
                // other key material (RFC 7517 §4.5), so new material under an old `kid` is not
                // told apart from the old key here.
                let gone = state.keys.iter().any(|old| {
                    !keys
                        .iter()
                        .any(|new| new.kid() == old.kid() && new.algorithm() == old.algorithm())
                });
                state.keys = keys.into();
                state.fetched_at = Some(started);
                if gone {
                    self.inner.removals.fetch_add(1, Ordering::Release);
                }
                tracing::debug!(keys = n, "JWKS refreshed");
                Ok(n)
            }
            Ok(_) => {
                tracing::warn!("JWKS has no usable key; keeping the current keys");
                Err(JwksError::new("the set has no usable key"))
            }
            Err(e) => {
                tracing::warn!(error = %e, "JWKS fetch failed; keeping the current keys");
                Err(e)
            }
        }
    }

    fn may_fetch_again(&self, state: &State, now: Instant) -> bool {
        state
            .last_attempt
            .is_none_or(|t| now.saturating_duration_since(t) >= self.inner.min_refetch_interval)
    }

    fn is_stale(&self, state: &State, now: Instant) -> bool {
        state
            .fetched_at
            .is_none_or(|t| now.saturating_duration_since(t) >= self.inner.refresh_interval)
    }

    /// The keys to try for a token; refetches for an unknown `kid` when allowed.
    pub(crate) async fn keys_for(&self, header: &Header) -> Arc<[VerifyingKey]> {
        let now = self.inner.clock.instant();
        let (keys, stale, may_fetch) = {
            let state = self.read();
            (
                state.keys.clone(),
                self.is_stale(&state, now),
                self.may_fetch_again(&state, now),
            )
        };
        if keys.iter().any(|k| is_candidate(k, header)) {
            if stale && may_fetch {
                self.refresh_in_background();
            }
            return keys;
        }
        if !may_fetch {
            return keys;
        }
        let _leader = self.inner.fetching.lead(&()).await;
        // Another request may have fetched while this one waited.
        let now = self.inner.clock.instant();
        {
            let state = self.read();
            if state.keys.iter().any(|k| is_candidate(k, header))
                || !self.may_fetch_again(&state, now)
            {
                return state.keys.clone();
            }
        }
        let _ = self.fetch_as_leader().await;
        self.keys()
    }

    fn refresh_in_background(&self) {
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let this = self.clone();
        handle.spawn(async move {
            if let Some(_leader) = this.inner.fetching.try_lead(&()) {
                let now = this.inner.clock.instant();
                let due = {
                    let state = this.read();
                    this.is_stale(&state, now) && this.may_fetch_again(&state, now)
                };
                if due {
                    let _ = this.fetch_as_leader().await;
                }
            }
        });
    }
}

#[cfg(feature = "jwks")]
mod http_fetcher;
#[cfg(feature = "jwks")]
pub use http_fetcher::{HttpJwksFetcher, MAX_DOCUMENT_BYTES};
