use std::sync::Arc;
use std::time::Instant;

use http::{HeaderValue, Method};
use tower_layer::Layer;

use super::{InMemoryStore, OnStoreError, Quota, RateLimit, RateLimitStore, RemoteStore};
use crate::clock::{self, SharedClock};
use crate::error::ConfigError;

/// What a limit counts by; several parts make a combined key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyBy {
    /// The client address from the [`ClientIp`](crate::identity::ClientIp) extension.
    ClientIp,
    /// Like [`ClientIp`](Self::ClientIp), with IPv6 addresses grouped by their /64 (one home or
    /// one host usually holds a whole /64, so per-address limits are trivially dodged).
    ClientIpV6Net64,
    /// The authenticated [`Principal`](crate::identity::Principal)'s subject, whatever the scheme.
    Subject,
    /// The subject of a principal authenticated with a JWT
    /// ([`Scheme::Jwt`](crate::identity::Scheme::Jwt)): a per-user limit that leaves API-key callers
    /// to their own [`ApiKey`](Self::ApiKey) limit.
    JwtSubject,
    /// The API key id (the principal's `token_id`) of a principal authenticated with
    /// [`Scheme::ApiKey`](crate::identity::Scheme::ApiKey).
    ApiKey,
    /// The request path. Beware: a path with ids in it (`/roadmaps/42`) is a new key per id;
    /// prefer [`Route`](Self::Route) for per-endpoint limits.
    Path,
    /// The matched route template (`/roadmaps/{id}`): a [`Route`] extension, or axum's
    /// `MatchedPath` (with the `axum` feature, when the layer runs inside the router through
    /// `Router::route_layer`). A request without either is not counted by this limit.
    Route,
}

pub use crate::identity::Route;

/// One named limit: a quota per key, optionally only for some paths and methods.
///
/// A request for which a key part is missing (no `ClientIp`, no principal, a JWT principal for
/// [`KeyBy::ApiKey`]) is not counted by this limit.
///
/// ```
/// use protothrive::rate_limit::{KeyBy, Limit};
/// let login = Limit::new("login", "10 per 5 min".parse().unwrap())
///     .by(KeyBy::ClientIp)
///     .path_prefix("/v1/auth/login")
///     .method(http::Method::POST);
/// assert_eq!(login.name(), "login");
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct Limit {
    pub(crate) name: String,
    pub(crate) quota: Quota,
    pub(crate) key: Vec<KeyBy>,
    pub(crate) path_prefix: Option<String>,
    pub(crate) methods: Vec<Method>,
    pub(crate) policy: HeaderValue,
    counters: DecisionCounters,
    /// The unkeyed counter, registered (and the warning logged) at the first unkeyed request.
    pub(crate) unkeyed: Arc<std::sync::OnceLock<metrics::Counter>>,
}

/// The limit's `allow` and `deny` counters, registered with the `metrics` recorder on the first
/// decision (not per request: building a metric key costs more than the check itself).
#[derive(Clone, Default)]
struct DecisionCounters(Arc<std::sync::OnceLock<[metrics::Counter; 2]>>);

impl std::fmt::Debug for DecisionCounters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DecisionCounters")
    }
}

impl Limit {
    /// A limit named `name` (the name shown in the `RateLimit` headers).
    pub fn new(name: impl Into<String>, quota: Quota) -> Self {
        Self {
            name: name.into(),
            quota,
            key: Vec::new(),
            path_prefix: None,
            methods: Vec::new(),
            policy: HeaderValue::from_static(""),
            counters: DecisionCounters::default(),
            unkeyed: Arc::default(),
        }
    }

    /// Adds a key part (call several times for a combined key). No part: one global limit.
    pub fn by(mut self, part: KeyBy) -> Self {
        self.key.push(part);
        self
    }

    /// Counts only requests whose path starts with `prefix`.
    pub fn path_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.path_prefix = Some(prefix.into());
        self
    }

    /// Counts only requests with this method (call several times for several).
    pub fn method(mut self, method: Method) -> Self {
        self.methods.push(method);
        self
    }

    /// The name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// What the key is made of, in order (none: one bucket for every request).
    ///
    /// ```
    /// use protothrive::rate_limit::{KeyBy, Limit};
    /// let l = Limit::new("ip", "10/s".parse().unwrap()).by(KeyBy::ClientIp);
    /// assert_eq!(l.keys(), [KeyBy::ClientIp]);
    /// ```
    #[must_use]
    pub fn keys(&self) -> &[KeyBy] {
        &self.key
    }

    /// The quota.
    #[must_use]
    pub fn quota(&self) -> &Quota {
        &self.quota
    }

    /// Reports a request this limit could not key because the client address is missing (no
    /// `ClientIpLayer` in front, or a server that gives no peer address): counted in
    /// `protothrive_rate_limit_unkeyed_total{limit}` and logged once, since the limit then does
    /// nothing for such requests.
    pub(crate) fn unkeyed(&self) {
        self.unkeyed
            .get_or_init(|| {
                tracing::warn!(
                    limit = %self.name,
                    "rate limit keyed by client IP sees requests without a ClientIp: add \
                     ClientIpLayer in front and serve with a peer address (axum: \
                     into_make_service_with_connect_info); until then this limit does not apply"
                );
                metrics::counter!("protothrive_rate_limit_unkeyed_total", "limit" => self.name.clone())
            })
            .increment(1);
    }

    /// Counts one decision in `protothrive_rate_limit_decisions_total{limit, decision}`.
    pub(crate) fn count(&self, allowed: bool) {
        let [allow, deny] = self.counters.0.get_or_init(|| {
            let counter = |decision: &'static str| {
                metrics::counter!(
                    "protothrive_rate_limit_decisions_total",
                    "limit" => self.name.clone(),
                    "decision" => decision
                )
            };
            [counter("allow"), counter("deny")]
        });
        if allowed { allow } else { deny }.increment(1);
    }
}

#[derive(Debug)]
pub(crate) struct Config {
    pub(crate) limits: Vec<Limit>,
    pub(crate) store: Arc<dyn RateLimitStore>,
    pub(crate) remote: Option<(Arc<dyn RemoteStore>, OnStoreError)>,
    pub(crate) clock: SharedClock,
    pub(crate) epoch: Instant,
    pub(crate) headers: bool,
}

/// Rate limits requests; see the [module docs](super).
#[derive(Debug, Clone)]
#[must_use]
pub struct RateLimitLayer {
    pub(crate) config: Arc<Config>,
}

impl RateLimitLayer {
    /// A builder with no limits, an [`InMemoryStore`] and the system clock.
    pub fn builder() -> RateLimitLayerBuilder {
        RateLimitLayerBuilder {
            limits: Vec::new(),
            store: None,
            remote: None,
            clock: None,
            headers: true,
        }
    }
}

impl<S> Layer<S> for RateLimitLayer {
    type Service = RateLimit<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RateLimit {
            inner,
            config: self.config.clone(),
        }
    }
}

/// Builds a [`RateLimitLayer`].
#[derive(Debug)]
#[must_use]
pub struct RateLimitLayerBuilder {
    limits: Vec<Limit>,
    store: Option<Arc<dyn RateLimitStore>>,
    remote: Option<(Arc<dyn RemoteStore>, OnStoreError)>,
    clock: Option<SharedClock>,
    headers: bool,
}

impl RateLimitLayerBuilder {
    /// Adds a limit; every applicable limit is checked and the strictest decides.
    pub fn limit(mut self, limit: Limit) -> Self {
        self.limits.push(limit);
        self
    }

    /// The store (default: an [`InMemoryStore`] of
    /// [`DEFAULT_MAX_KEYS`](super::DEFAULT_MAX_KEYS)). Share one store between layers by cloning
    /// the `Arc`.
    pub fn store(mut self, store: Arc<dyn RateLimitStore>) -> Self {
        self.store = Some(store);
        self
    }

    /// Decides with a store shared between instances (Redis) instead of the in-process one, and
    /// what to do when it fails or times out. With [`OnStoreError::Local`] the in-process
    /// [`store`](Self::store) decides during the outage.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use protothrive::rate_limit::{check, CheckFuture, Limit, OnStoreError, Quota, RateLimitLayer, RemoteStore};
    ///
    /// #[derive(Debug)]
    /// struct Amnesiac;
    /// impl RemoteStore for Amnesiac {
    ///     fn check_many(&self, checks: Vec<(String, Quota)>, now: u64) -> CheckFuture {
    ///         Box::pin(async move { Ok(checks.iter().map(|(_, q)| check(0, now, q)).collect()) })
    ///     }
    /// }
    ///
    /// let layer = RateLimitLayer::builder()
    ///     .limit(Limit::new("all", "100/s".parse().unwrap()))
    ///     .remote_store(Arc::new(Amnesiac), OnStoreError::FailOpen)
    ///     .build()
    ///     .unwrap();
    /// ```
    pub fn remote_store(mut self, store: Arc<dyn RemoteStore>, on_error: OnStoreError) -> Self {
        self.remote = Some((store, on_error));
        self
    }

    /// The clock (default: the system clock).
    pub fn clock(mut self, clock: SharedClock) -> Self {
        self.clock = Some(clock);
        self
    }

    /// Whether responses carry `RateLimit` and `RateLimit-Policy` (default: yes). Without them a
    /// refusal is still a 429 with `Retry-After`; an API that does not want to show its quotas
    /// turns them off.
    ///
    /// ```
    /// use protothrive::rate_limit::{Limit, RateLimitLayer};
    /// let layer = RateLimitLayer::builder()
    ///     .limit(Limit::new("all", "10/s".parse().unwrap()))
    ///     .headers(false)
    ///     .build()
    ///     .unwrap();
    /// # let _ = layer;
    /// ```
    pub fn headers(mut self, send: bool) -> Self {
        self.headers = send;
        self
    }

    /// The layer.
    ///
    /// # Errors
    /// No limit, two limits with one name, or a name that is not a plain token
    /// (`[A-Za-z0-9_.-]`, as it goes into a structured-field string).
    pub fn build(self) -> Result<RateLimitLayer, ConfigError> {
        if self.limits.is_empty() {
            return Err(ConfigError::new(
                "a rate-limit layer needs at least one limit; add one with `.limit(...)`",
            ));
        }
        // An unlimited quota turns its limit off: never checked, no headers.
        let mut limits: Vec<Limit> = self
            .limits
            .into_iter()
            .filter(|l| !l.quota.is_unlimited())
            .collect();
        for (i, l) in limits.iter().enumerate() {
            if l.name.is_empty()
                || !l
                    .name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
            {
                return Err(ConfigError::new(format!(
                    "rate-limit name `{}`: use letters, digits, `_`, `-` or `.`",
                    l.name
                )));
            }
            if limits[..i].iter().any(|o| o.name == l.name) {
                return Err(ConfigError::new(format!(
                    "two rate limits are named `{}`; give each its own name",
                    l.name
                )));
            }
        }
        for l in &mut limits {
            let policy = format!(
                "\"{}\";q={};w={}",
                l.name,
                l.quota.count(),
                l.quota.period().as_secs().max(1)
            );
            l.policy = HeaderValue::try_from(policy)
                .map_err(|_| ConfigError::new(format!("rate-limit name `{}`", l.name)))?;
        }
        let clock = self.clock.unwrap_or_else(clock::system);
        let epoch = clock.instant();
        Ok(RateLimitLayer {
            config: Arc::new(Config {
                limits,
                store: self
                    .store
                    .unwrap_or_else(|| Arc::new(InMemoryStore::default())),
                remote: self.remote,
                clock,
                epoch,
                headers: self.headers,
            }),
        })
    }
}
