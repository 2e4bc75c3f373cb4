use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use http::{HeaderName, request};
use tower_layer::Layer;

use super::l1::{PurgeLog, l1};
use super::policy::CACHE_NAME;
use super::policy::freshness::DEFAULT_HEURISTIC_CAP;
use super::policy::targeted::CDN_CACHE_CONTROL;
use super::service::Cache;
use super::state::{Config, PartitionFn, Shared, State, Stats};
use super::store::{CacheTier, Purge};
use crate::clock::{self, SharedClock};
use crate::coalesce::Flights;
use crate::error::ConfigError;

/// The default L1 size: 64 MiB of bodies and headers.
pub const DEFAULT_MAX_BYTES: u64 = 64 << 20;
/// The default largest body stored: 1 MiB.
pub const DEFAULT_MAX_BODY: usize = 1 << 20;
/// The default time a stale response with a validator is kept for revalidation: 10 minutes.
pub const DEFAULT_REVALIDATION_GRACE: Duration = Duration::from_secs(600);
/// The default time a URI whose response could not be stored is remembered as such: 1 minute.
pub const DEFAULT_HIT_FOR_PASS: Duration = Duration::from_secs(60);
/// How many such URIs are remembered at most.
const PASS_ENTRIES: usize = 10_000;

/// Request headers removed before a cacheable request reaches the handler: the layer never keys
/// on them, so a handler that reflected one (a link built from `X-Forwarded-Host`) would poison
/// the cache for everyone. Resolve the client address with the client-ip layer *before* this one.
pub const DEFAULT_UNKEYED_HEADERS: [&str; 14] = [
    "x-forwarded-host",
    "x-forwarded-server",
    "x-forwarded-proto",
    "x-forwarded-scheme",
    "x-forwarded-port",
    "x-forwarded-prefix",
    "x-forwarded-for",
    "forwarded",
    "x-host",
    "x-original-url",
    "x-rewrite-url",
    "x-http-method-override",
    "x-http-method",
    "x-method-override",
];

/// Counters of a cache since it was built ([`CacheHandle::stats`]); the hit rate is
/// `hits / (hits + misses)`.
///
/// ```
/// use protothrive::cache::CacheLayer;
/// let stats = CacheLayer::builder().build().unwrap().handle().stats();
/// assert_eq!((stats.hits, stats.misses, stats.stored), (0, 0, 0));
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CacheStats {
    /// Requests answered from the cache without the origin (fresh, accepted stale,
    /// `stale-while-revalidate`); a revalidation answered 304 counts as a miss.
    pub hits: u64,
    /// Cacheable requests that went to the origin.
    pub misses: u64,
    /// Responses stored.
    pub stored: u64,
    /// Requests that waited for another request's origin call.
    pub collapsed: u64,
    /// Stale responses served (`stale-while-revalidate`, `stale-if-error`).
    pub stale_served: u64,
}

/// An HTTP shared cache (RFC 9111); see the [module docs](super).
#[derive(Debug, Clone)]
#[must_use]
pub struct CacheLayer {
    pub(crate) shared: Arc<Shared>,
}

impl CacheLayer {
    /// A builder: 64 MiB L1, 1 MiB bodies, no partition, no L2, the system clock.
    pub fn builder() -> CacheLayerBuilder {
        CacheLayerBuilder {
            max_bytes: DEFAULT_MAX_BYTES,
            max_body: DEFAULT_MAX_BODY,
            tier: None,
            clock: None,
            partition: None,
            heuristic_cap: DEFAULT_HEURISTIC_CAP,
            grace: DEFAULT_REVALIDATION_GRACE,
            hit_for_pass: DEFAULT_HIT_FOR_PASS,
            scheme: "http".to_owned(),
            unkeyed: DEFAULT_UNKEYED_HEADERS
                .iter()
                .map(|s| (*s).to_owned())
                .collect(),
            targets: vec![CDN_CACHE_CONTROL.as_str().to_owned()],
            name: CACHE_NAME.to_owned(),
        }
    }

    /// A handle for invalidation and statistics, valid as long as any clone of the layer or of
    /// a service built from it lives.
    pub fn handle(&self) -> CacheHandle {
        CacheHandle {
            shared: self.shared.clone(),
        }
    }
}

impl<S> Layer<S> for CacheLayer {
    type Service = Cache<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Cache {
            inner,
            shared: self.shared.clone(),
        }
    }
}

/// Builds a [`CacheLayer`].
///
/// ```
/// use std::sync::Arc;
/// use std::time::Duration;
/// use protothrive::cache::{CacheLayer, MemoryTier};
/// use protothrive::clock::ManualClock;
///
/// let layer = CacheLayer::builder()
///     .max_bytes(128 << 20)
///     .max_body(256 << 10)
///     .tier(Arc::new(MemoryTier::default()))
///     .clock(Arc::new(ManualClock::default()))
///     .partition(|req| req.headers.get("x-user")?.to_str().ok().map(str::to_owned))
///     .heuristic_cap(Duration::from_secs(3_600))
///     .scheme("https")
///     .build()
///     .unwrap();
/// # let _ = layer;
/// let err = CacheLayer::builder().max_bytes(0).build().unwrap_err();
/// assert_eq!(err.message(), "a cache needs room: give `.max_bytes(...)` a size above 0");
/// ```
#[must_use]
pub struct CacheLayerBuilder {
    max_bytes: u64,
    max_body: usize,
    tier: Option<Arc<dyn CacheTier>>,
    clock: Option<SharedClock>,
    partition: Option<Arc<PartitionFn>>,
    heuristic_cap: Duration,
    grace: Duration,
    hit_for_pass: Duration,
    scheme: String,
    unkeyed: Vec<String>,
    targets: Vec<String>,
    name: String,
}

impl fmt::Debug for CacheLayerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CacheLayerBuilder")
            .field("max_bytes", &self.max_bytes)
            .field("max_body", &self.max_body)
            .field("tier", &self.tier)
            .field("partitioned", &self.partition.is_some())
            .finish_non_exhaustive()
    }
}

impl CacheLayerBuilder {
    /// The L1 size in bytes: bodies, header fields and keys of the stored entries. An entry
    /// heavier than one of L1's shards is not kept in L1 (it still goes to the L2 tier), so a
    /// tiny L1 makes an L2-only cache.
    pub fn max_bytes(mut self, bytes: u64) -> Self {
        self.max_bytes = bytes;
        self
    }

    /// The largest body stored; a larger response streams through unstored.
    pub fn max_body(mut self, bytes: usize) -> Self {
        self.max_body = bytes;
        self
    }

    /// A second tier (Redis) behind L1: looked up on an L1 miss (and promoted to L1), written
    /// on every store with a TTL covering the stale windows, told of every invalidation.
    pub fn tier(mut self, tier: Arc<dyn CacheTier>) -> Self {
        self.tier = Some(tier);
        self
    }

    /// The clock (default: the system clock).
    pub fn clock(mut self, clock: SharedClock) -> Self {
        self.clock = Some(clock);
        self
    }

    /// Names the user a request belongs to (say, the principal's subject), so responses private
    /// to them are stored in their own partition and only ever served to them. `None` (an
    /// anonymous request) means only shared-cacheable responses are stored. A partitioned
    /// request's response is shared only when marked `public` or given `s-maxage`.
    ///
    /// ```
    /// use protothrive::cache::CacheLayer;
    /// let layer = CacheLayer::builder()
    ///     .partition(|req| {
    ///         req.headers.get("x-user").and_then(|v| v.to_str().ok()).map(str::to_owned)
    ///     })
    ///     .build()
    ///     .unwrap();
    /// # let _ = layer;
    /// ```
    pub fn partition(
        mut self,
        f: impl Fn(&request::Parts) -> Option<String> + Send + Sync + 'static,
    ) -> Self {
        self.partition = Some(Arc::new(f));
        self
    }

    /// This cache's name in `Cache-Status` (RFC 9211; default `protothrive`), so that a client
    /// tells the caches of a chain apart — say, a gateway's in front of an API's, each adding
    /// its member after those of the caches nearer the origin. An RFC 8941 token: a letter or
    /// `*`, then letters, digits and ``!#$%&'*+-.^_`|~:/``.
    ///
    /// ```
    /// use protothrive::cache::CacheLayer;
    /// let layer = CacheLayer::builder().name("edge-gateway").build().unwrap();
    /// # let _ = layer;
    /// let err = CacheLayer::builder().name("my cache").build().unwrap_err();
    /// assert_eq!(
    ///     err.message(),
    ///     "cache name `my cache`: use a token (a letter, then letters, digits or -._:/ and the like)"
    /// );
    /// ```
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// The cap on heuristic freshness (RFC 9111 §4.2.2; default one day).
    pub fn heuristic_cap(mut self, cap: Duration) -> Self {
        self.heuristic_cap = cap;
        self
    }

    /// How long a stale response with a validator is kept for revalidation past its stale
    /// windows (default 10 minutes; the TTL given to the L2 tier includes it).
    pub fn revalidation_grace(mut self, grace: Duration) -> Self {
        self.grace = grace;
        self
    }

    /// How long a key whose response could not be stored for reasons of the response (`no-store`,
    /// `private` without a partition, `Set-Cookie`, `Vary: *`, an uncacheable status) is
    /// remembered as such ("hit-for-pass", default 1 minute, zero turns it off). Meanwhile its
    /// requests neither wait for one another (no coalescing: they would queue behind an origin
    /// call whose answer they cannot share) nor ask the L2 tier; a response that has become
    /// storable is still stored, and ends it.
    pub fn hit_for_pass(mut self, window: Duration) -> Self {
        self.hit_for_pass = window;
        self
    }

    /// The scheme keys use for origin-form requests, which do not carry one (default `http`;
    /// say `https` behind a TLS-terminating proxy so absolute `Location`s match).
    pub fn scheme(mut self, scheme: impl Into<String>) -> Self {
        self.scheme = scheme.into();
        self
    }

    /// Replaces the request headers removed before a cacheable request reaches the handler
    /// (default [`DEFAULT_UNKEYED_HEADERS`]).
    pub fn unkeyed_headers<I, T>(mut self, names: I) -> Self
    where
        I: IntoIterator<Item = T>,
        T: Into<String>,
    {
        self.unkeyed = names.into_iter().map(Into::into).collect();
        self
    }

    /// The targeted cache-control fields this cache obeys (RFC 9213 §2.1), most applicable first
    /// (default: `CDN-Cache-Control` alone; none turns targeting off). For a response, the first of
    /// them with a valid, non-empty Structured Field dictionary governs storage and freshness in
    /// place of `Cache-Control` and `Expires`; `Cache-Control` still reaches the client, for the
    /// caches downstream (the [`Directives`](super::policy::Directives) docs have the rules).
    ///
    /// ```
    /// use protothrive::cache::CacheLayer;
    /// let layer = CacheLayer::builder()
    ///     .targets(["Protothrive-Cache-Control", "CDN-Cache-Control"])
    ///     .build()
    ///     .unwrap();
    /// # let _ = layer;
    /// let err = CacheLayer::builder().targets(["cache-control"]).build().unwrap_err();
    /// assert_eq!(
    ///     err.message(),
    ///     "cache target `cache-control`: name a targeted field such as `CDN-Cache-Control`"
    /// );
    /// ```
    pub fn targets<I, T>(mut self, names: I) -> Self
    where
        I: IntoIterator<Item = T>,
        T: Into<String>,
    {
        self.targets = names.into_iter().map(Into::into).collect();
        self
    }

    /// The layer.
    ///
    /// # Errors
    /// A zero L1 size, a scheme other than `http`/`https`, an unkeyed header name that is not a
    /// valid header name, a target that is not one (or is `Cache-Control` itself), or a name
    /// that is not a token.
    pub fn build(self) -> Result<CacheLayer, ConfigError> {
        if !crate::headers::is_sf_token(&self.name) {
            return Err(ConfigError::new(format!(
                "cache name `{}`: use a token (a letter, then letters, digits or -._:/ and the like)",
                self.name
            )));
        }
        if self.max_bytes == 0 {
            return Err(ConfigError::new(
                "a cache needs room: give `.max_bytes(...)` a size above 0",
            ));
        }
        let scheme = self.scheme.to_ascii_lowercase();
        if scheme != "http" && scheme != "https" {
            return Err(ConfigError::new(format!(
                "cache scheme `{}`: use `http` or `https`",
                self.scheme
            )));
        }
        let unkeyed = self
            .unkeyed
            .iter()
            .map(|n| {
                HeaderName::from_bytes(n.as_bytes()).map_err(|_| {
                    ConfigError::new(format!("unkeyed header `{n}` is not a header name"))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let targets = self
            .targets
            .iter()
            .map(|n| match HeaderName::from_bytes(n.as_bytes()) {
                Ok(name) if name != http::header::CACHE_CONTROL => Ok(name),
                _ => Err(ConfigError::new(format!(
                    "cache target `{n}`: name a targeted field such as `CDN-Cache-Control`"
                ))),
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(CacheLayer {
            shared: Arc::new(Shared {
                config: Config {
                    tier: self.tier,
                    clock: self.clock.unwrap_or_else(clock::system),
                    partition: self.partition,
                    max_body: self.max_body,
                    heuristic_cap: self.heuristic_cap,
                    grace: self.grace,
                    hit_for_pass: self.hit_for_pass,
                    scheme,
                    unkeyed: crate::headers::NameSet::new(unkeyed),
                    targets,
                    name: self.name.into_boxed_str(),
                },
                state: State {
                    l1: l1(self.max_bytes),
                    pass: quick_cache::sync::Cache::new(PASS_ENTRIES),
                    inflight: Flights::default(),
                    refreshing: Flights::default(),
                    stats: Stats::default(),
                    purges: PurgeLog::default(),
                },
            }),
        })
    }
}

/// Invalidation and statistics of one cache; cheap to clone.
///
/// ```
/// use protothrive::cache::{CacheLayer, Purge};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let layer = CacheLayer::builder().build().unwrap();
/// let cache = layer.handle();
/// cache.invalidate(Purge::Tag("snippets".into())).await;
/// cache.invalidate(Purge::Prefix("/api/roadmaps/".into())).await;
/// assert_eq!(cache.stats().hits, 0);
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct CacheHandle {
    shared: Arc<Shared>,
}

impl CacheHandle {
    /// Invalidates in L1 and in the L2 tier (which tells the other instances). A response
    /// fetched while this runs is not stored after it (the purge is logged before L1 is
    /// cleared, and stores check the log), so a read that started before a write cannot put the
    /// old answer back; L1 is purged again once the tier is done.
    pub async fn invalidate(&self, what: Purge) {
        self.invalidate_local(&what);
        if let Some(tier) = &self.shared.config.tier {
            tier.invalidate(&what).await;
            self.invalidate_local(&what);
        }
    }

    /// A [`Ticket`](super::Ticket) for a write about to reach the origin's data.
    #[must_use]
    pub fn ticket(&self) -> super::Ticket {
        super::put::Ticket::now(&self.shared)
    }

    /// Applies `through`, judged against `ticket` (see [`WriteThrough`](super::WriteThrough));
    /// the other instances hear of its purges through the tier.
    pub async fn write_through(
        &self,
        ticket: super::Ticket,
        through: super::WriteThrough,
    ) -> super::Written {
        super::put::apply(&self.shared, ticket, Vec::new(), through).await
    }

    /// Resolves once every invalidation made so far has reached the L2 tier and, through it, the
    /// other instances (see [`RedisTier`](super::RedisTier) on purges Redis did not take); at once
    /// without a tier. For a graceful shutdown, under a timeout of the caller's.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let cache = protothrive::cache::CacheLayer::builder().build().unwrap().handle();
    /// cache.settled().await;
    /// # }
    /// ```
    pub async fn settled(&self) {
        if let Some(tier) = &self.shared.config.tier {
            tier.settled().await;
        }
    }

    /// Invalidates in this instance's L1 only: for a tier relaying another instance's
    /// invalidation.
    pub fn invalidate_local(&self, what: &Purge) {
        self.shared.state.purges.purge(&self.shared.state.l1, what);
    }

    /// Invalidates every entry for a URI (see [`Purge::Uri`]).
    pub async fn invalidate_uri(&self, uri: impl Into<String>) {
        self.invalidate(Purge::Uri(uri.into())).await;
    }

    /// Invalidates every response tagged `tag` through `Surrogate-Key`.
    pub async fn invalidate_tag(&self, tag: impl Into<String>) {
        self.invalidate(Purge::Tag(tag.into())).await;
    }

    /// Invalidates every entry under a URI or path prefix (see [`Purge::Prefix`]).
    pub async fn invalidate_prefix(&self, prefix: impl Into<String>) {
        self.invalidate(Purge::Prefix(prefix.into())).await;
    }

    /// The counters so far.
    #[must_use]
    pub fn stats(&self) -> CacheStats {
        let s = &self.shared.state.stats;
        let r = |a: &AtomicU64| a.load(Ordering::Relaxed);
        CacheStats {
            hits: r(&s.hits),
            misses: r(&s.misses),
            stored: r(&s.stored),
            collapsed: r(&s.collapsed),
            stale_served: r(&s.stale_served),
        }
    }

    /// Bytes held by L1.
    #[must_use]
    pub fn l1_bytes(&self) -> u64 {
        self.shared.state.l1.weight()
    }

    /// Entries held by L1.
    #[must_use]
    pub fn l1_len(&self) -> usize {
        self.shared.state.l1.len()
    }
}
