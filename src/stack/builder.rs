use std::sync::Arc;

use crate::clock::SharedClock;
#[cfg(feature = "auth")]
use crate::error::ConfigError;
use crate::request_id::RequestIdLayer;

#[cfg(feature = "auth")]
use crate::auth::{AuthLayer, Authenticator, AuthenticatorBuilder, RequireLayer};
#[cfg(feature = "cache")]
use crate::cache::{CacheLayer, CacheLayerBuilder};
#[cfg(feature = "client-ip")]
use crate::client_ip::{ClientIpLayer, ClientIpLayerBuilder};
#[cfg(feature = "cors")]
use crate::cors::{CorsLayer, CorsLayerBuilder};
#[cfg(feature = "csrf")]
use crate::csrf::CsrfLayer;
#[cfg(feature = "gateway")]
use crate::gateway::{RequestLimitsLayer, VersionLayer, VersionLayerBuilder};
#[cfg(feature = "auth")]
use crate::identity::RoleHierarchy;
#[cfg(feature = "rate-limit")]
use crate::rate_limit::{Limit, OnStoreError, RateLimitLayer, RateLimitStore, RemoteStore};
#[cfg(feature = "security-headers")]
use crate::security_headers::SecurityHeadersLayer;

/// The layers of one application in the order of the request path, and the values they share.
/// Built by [`Stack::builder`]; a [`Layer`](tower_layer::Layer) over the whole application.
///
/// Cloning is one reference-count increment. See the [module docs](super) for the order and an
/// example.
#[derive(Clone, Debug)]
#[must_use]
pub struct Stack {
    pub(super) built: Arc<Built>,
}

#[derive(Debug)]
pub(super) struct Built {
    pub(super) clock: SharedClock,
    #[cfg_attr(not(feature = "auth"), allow(dead_code))]
    pub(super) realm: Option<String>,
    #[cfg(feature = "client-ip")]
    pub(super) client_ip: Option<ClientIpLayer>,
    pub(super) request_id: Option<RequestIdLayer>,
    #[cfg(feature = "trace")]
    pub(super) trace: Option<crate::trace::TraceLayer>,
    /// The configured trace layer, or one switched off: the position is always there.
    #[cfg(feature = "trace")]
    pub(super) trace_position: crate::trace::TraceLayer,
    #[cfg(feature = "cors")]
    pub(super) cors: Option<CorsLayer>,
    #[cfg(feature = "security-headers")]
    pub(super) security_headers: Option<SecurityHeadersLayer>,
    #[cfg(feature = "gateway")]
    pub(super) versions: Option<VersionLayer>,
    #[cfg(feature = "gateway")]
    pub(super) body_limits: RequestLimitsLayer,
    #[cfg(feature = "rate-limit")]
    pub(super) by_client: Option<RateLimitLayer>,
    #[cfg(feature = "auth")]
    pub(super) auth: Option<(Authenticator, AuthLayer)>,
    #[cfg(feature = "csrf")]
    pub(super) csrf: Option<CsrfLayer>,
    #[cfg(feature = "rate-limit")]
    pub(super) by_principal: Option<RateLimitLayer>,
    #[cfg(feature = "auth")]
    pub(super) roles: Option<RoleHierarchy>,
    #[cfg(feature = "cache")]
    pub(super) cache: Option<CacheLayer>,
    #[cfg(feature = "redis")]
    pub(super) redis: Option<crate::redis_handle::RedisHandle>,
    #[cfg(all(feature = "redis", feature = "cache"))]
    pub(super) _subscription: Option<crate::cache::redis::Subscription>,
    pub(super) allow_headers: Vec<String>,
    pub(super) expose_headers: Vec<String>,
}

/// Configures a [`Stack`]. Every mistake, and every mix of layers that could not work, is a
/// [`ConfigError`](crate::error::ConfigError) from [`build`](Self::build).
#[derive(Debug)]
#[must_use]
pub struct StackBuilder {
    pub(super) clock: Option<SharedClock>,
    pub(super) realm: Option<String>,
    #[cfg(feature = "client-ip")]
    pub(super) client_ip: Option<ClientIpLayerBuilder>,
    pub(super) request_id: Option<RequestIdLayer>,
    #[cfg(feature = "trace")]
    pub(super) trace: Option<crate::trace::TraceLayer>,
    #[cfg(feature = "cors")]
    pub(super) cors: Option<CorsLayerBuilder>,
    #[cfg(feature = "security-headers")]
    pub(super) security_headers: Option<SecurityHeadersLayer>,
    #[cfg(feature = "gateway")]
    pub(super) versions: Option<VersionLayerBuilder>,
    #[cfg(feature = "gateway")]
    pub(super) body_limits: Option<RequestLimitsLayer>,
    #[cfg(feature = "rate-limit")]
    pub(super) by_client: Vec<Limit>,
    #[cfg(feature = "rate-limit")]
    pub(super) by_principal: Vec<Limit>,
    #[cfg(feature = "rate-limit")]
    pub(super) store: Option<Arc<dyn RateLimitStore>>,
    #[cfg(feature = "rate-limit")]
    pub(super) remote: Option<(Arc<dyn RemoteStore>, OnStoreError)>,
    #[cfg(feature = "rate-limit")]
    pub(super) rate_limit_headers: bool,
    #[cfg(feature = "auth")]
    pub(super) auth: Option<(AuthSource, bool)>,
    #[cfg(feature = "auth")]
    pub(super) roles: Option<RoleHierarchy>,
    #[cfg(feature = "csrf")]
    pub(super) csrf: Option<CsrfLayer>,
    #[cfg(feature = "cache")]
    pub(super) cache: Option<CacheLayerBuilder>,
    #[cfg(feature = "redis")]
    pub(super) redis: Option<crate::redis_handle::RedisHandle>,
}

impl Default for StackBuilder {
    fn default() -> Self {
        Self {
            clock: None,
            realm: None,
            #[cfg(feature = "client-ip")]
            client_ip: Some(ClientIpLayer::builder()),
            request_id: Some(RequestIdLayer::new()),
            #[cfg(feature = "trace")]
            trace: None,
            #[cfg(feature = "cors")]
            cors: None,
            #[cfg(feature = "security-headers")]
            security_headers: None,
            #[cfg(feature = "gateway")]
            versions: None,
            #[cfg(feature = "gateway")]
            body_limits: None,
            #[cfg(feature = "rate-limit")]
            by_client: Vec::new(),
            #[cfg(feature = "rate-limit")]
            by_principal: Vec::new(),
            #[cfg(feature = "rate-limit")]
            store: None,
            #[cfg(feature = "rate-limit")]
            remote: None,
            #[cfg(feature = "rate-limit")]
            rate_limit_headers: true,
            #[cfg(feature = "auth")]
            auth: None,
            #[cfg(feature = "auth")]
            roles: None,
            #[cfg(feature = "csrf")]
            csrf: None,
            #[cfg(feature = "cache")]
            cache: None,
            #[cfg(feature = "redis")]
            redis: None,
        }
    }
}

impl Stack {
    /// Starts a configuration: client IP (no proxy trusted) and request ids on, every other layer
    /// off until configured.
    pub fn builder() -> StackBuilder {
        StackBuilder::default()
    }

    /// The clock every layer of the stack reads.
    #[must_use]
    pub fn clock(&self) -> &SharedClock {
        &self.built.clock
    }

    /// The trace layer, when the stack has one (its [`in_flight`](crate::trace::TraceLayer::in_flight)
    /// count serves a status page or a graceful shutdown).
    #[cfg(feature = "trace")]
    #[must_use]
    pub fn trace(&self) -> Option<&crate::trace::TraceLayer> {
        self.built.trace.as_ref()
    }

    /// The request headers the stack's CORS layer lets preflights ask for, computed from the
    /// layers present (`authorization` with auth, `api-version` with versions, ...) plus those
    /// configured by hand; lowercase, sorted.
    #[must_use]
    pub fn cors_allowed_headers(&self) -> &[String] {
        &self.built.allow_headers
    }

    /// The response headers the stack's CORS layer exposes to pages, computed likewise
    /// (`x-request-id`, `ratelimit`, `cache-status`, ...).
    #[must_use]
    pub fn cors_exposed_headers(&self) -> &[String] {
        &self.built.expose_headers
    }

    /// A per-route check that the request is authenticated, with the stack's realm (put it on the
    /// route with `route_layer`, inside the stack).
    #[cfg(feature = "auth")]
    pub fn authenticated(&self) -> RequireLayer {
        self.with_realm(RequireLayer::authenticated())
    }

    /// A per-route check for `role` or above in the hierarchy given to
    /// [`StackBuilder::roles`].
    ///
    /// # Errors
    /// No hierarchy was configured, or `role` is not in it.
    #[cfg(feature = "auth")]
    pub fn require_role(&self, role: &str) -> Result<RequireLayer, ConfigError> {
        let roles = self.built.roles.as_ref().ok_or_else(|| {
            ConfigError::new(format!(
                "require_role(\"{role}\") needs a role hierarchy: add `.roles(RoleHierarchy::new([...])?)` to the stack"
            ))
        })?;
        Ok(self.with_realm(RequireLayer::role_at_least(roles, role)?))
    }

    /// A per-route check for every one of `scopes`.
    #[cfg(feature = "auth")]
    pub fn require_scopes<I: IntoIterator<Item = S>, S: Into<String>>(
        &self,
        scopes: I,
    ) -> RequireLayer {
        self.with_realm(RequireLayer::scopes(scopes))
    }

    #[cfg(feature = "auth")]
    fn with_realm(&self, layer: RequireLayer) -> RequireLayer {
        match &self.built.realm {
            Some(realm) => layer.realm(realm.clone()),
            None => layer,
        }
    }

    /// The authenticator of the stack's auth layer (to issue or check tokens elsewhere).
    #[cfg(feature = "auth")]
    #[must_use]
    pub fn authenticator(&self) -> Option<&Authenticator> {
        self.built.auth.as_ref().map(|(a, _)| a)
    }

    /// The Redis connection every store of the stack shares (for readiness checks, or a store of
    /// the application's own).
    #[cfg(feature = "redis")]
    #[must_use]
    pub fn redis(&self) -> Option<&crate::redis_handle::RedisHandle> {
        self.built.redis.as_ref()
    }

    /// The route cache (put it on cacheable routes with `route_layer`, after their role check,
    /// so a cached answer never reaches a caller the route would refuse). One store for every
    /// route it is put on; purge it through [`CacheLayer::handle`].
    #[cfg(feature = "cache")]
    #[must_use]
    pub fn cache(&self) -> Option<&CacheLayer> {
        self.built.cache.as_ref()
    }
}

impl StackBuilder {
    /// The clock of every time-dependent layer (default: the system clock). Tests pass a
    /// [`ManualClock`](crate::clock::ManualClock).
    pub fn clock(mut self, clock: SharedClock) -> Self {
        self.clock = Some(clock);
        self
    }

    /// The realm of `WWW-Authenticate` challenges, for the auth layer and every per-route check
    /// the stack makes (RFC 6750 §3).
    pub fn realm(mut self, realm: impl Into<String>) -> Self {
        self.realm = Some(realm.into());
        self
    }

    /// The proxies whose forwarding headers are believed (CIDRs such as `10.0.0.0/8`); none by
    /// default, so the client is the peer.
    #[cfg(feature = "client-ip")]
    pub fn trusted_proxies<I>(mut self, networks: I) -> Self
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        let b = self.client_ip.take().unwrap_or_default();
        self.client_ip = Some(b.trusted_proxies(networks));
        self
    }

    /// The client-IP layer's whole configuration (header, hops, peer address).
    #[cfg(feature = "client-ip")]
    pub fn client_ip(mut self, builder: ClientIpLayerBuilder) -> Self {
        self.client_ip = Some(builder);
        self
    }

    /// Leaves the client-IP layer out (per-IP limits are then refused at build time).
    #[cfg(feature = "client-ip")]
    pub fn without_client_ip(mut self) -> Self {
        self.client_ip = None;
        self
    }

    /// The request-id layer (on by default with `X-Request-Id`).
    pub fn request_id(mut self, layer: RequestIdLayer) -> Self {
        self.request_id = Some(layer);
        self
    }

    /// Leaves request ids out (problem bodies then carry no `request_id`).
    pub fn without_request_id(mut self) -> Self {
        self.request_id = None;
        self
    }

    /// Tracing at the trace position (after client IP and request ids, before CORS): the W3C
    /// trace context in and out, one span per request, RED metrics, panics as 500 problems.
    /// The stack gives it its clock and has CORS expose `traceparent`. The trace layer assigns
    /// request ids itself, so a request-id layer with the same header and trust setting (the
    /// default one, with a default trace layer) is left out rather than run twice.
    ///
    /// ```
    /// use protothrive::stack::Stack;
    /// use protothrive::trace::TraceLayer;
    /// let stack = Stack::builder().trace(TraceLayer::new()).build()?;
    /// assert!(stack.trace().is_some());
    /// # Ok::<(), protothrive::error::ConfigError>(())
    /// ```
    #[cfg(feature = "trace")]
    pub fn trace(mut self, layer: crate::trace::TraceLayer) -> Self {
        self.trace = Some(layer);
        self
    }

    /// CORS, configured as for [`CorsLayer::builder`]; the stack adds the request headers its
    /// layers read and the response headers they write to the allowed and exposed lists.
    #[cfg(feature = "cors")]
    pub fn cors(mut self, builder: CorsLayerBuilder) -> Self {
        self.cors = Some(builder);
        self
    }

    /// Security headers (HSTS, nosniff, frame options, ...).
    #[cfg(feature = "security-headers")]
    pub fn security_headers(mut self, layer: SecurityHeadersLayer) -> Self {
        self.security_headers = Some(layer);
        self
    }

    /// API version negotiation.
    #[cfg(feature = "gateway")]
    pub fn versions(mut self, builder: VersionLayerBuilder) -> Self {
        self.versions = Some(builder);
        self
    }

    /// Body-size and media-type limits (default: [`DEFAULT_BODY_LIMIT`](crate::gateway::DEFAULT_BODY_LIMIT),
    /// any media type).
    #[cfg(feature = "gateway")]
    pub fn body_limits(mut self, layer: RequestLimitsLayer) -> Self {
        self.body_limits = Some(layer);
        self
    }

    /// A limit checked before authentication, keyed by the client (IP, path, route): it protects
    /// everything behind it, auth included. A limit keyed by a principal is refused here.
    #[cfg(feature = "rate-limit")]
    pub fn limit_by_client(mut self, limit: Limit) -> Self {
        self.by_client.push(limit);
        self
    }

    /// A limit checked after authentication (per user, per API key, stacked with per-route ones).
    #[cfg(feature = "rate-limit")]
    pub fn limit_by_principal(mut self, limit: Limit) -> Self {
        self.by_principal.push(limit);
        self
    }

    /// The in-process store of both rate-limit positions (default: one
    /// [`InMemoryStore`](crate::rate_limit::InMemoryStore) shared by both).
    #[cfg(feature = "rate-limit")]
    pub fn rate_limit_store(mut self, store: Arc<dyn RateLimitStore>) -> Self {
        self.store = Some(store);
        self
    }

    /// A store shared between instances (Redis) for both rate-limit positions, and its outage
    /// policy.
    #[cfg(feature = "rate-limit")]
    pub fn remote_rate_limit_store(
        mut self,
        store: Arc<dyn RemoteStore>,
        on_error: OnStoreError,
    ) -> Self {
        self.remote = Some((store, on_error));
        self
    }

    /// Whether limited responses carry `RateLimit` and `RateLimit-Policy` (default: yes; see
    /// [`RateLimitLayerBuilder::headers`](crate::rate_limit::RateLimitLayerBuilder::headers)).
    #[cfg(feature = "rate-limit")]
    pub fn rate_limit_headers(mut self, send: bool) -> Self {
        self.rate_limit_headers = send;
        self
    }

    /// Authentication required on every request; the stack sets the authenticator's clock and
    /// realm.
    #[cfg(feature = "auth")]
    pub fn auth(mut self, builder: AuthenticatorBuilder) -> Self {
        self.auth = Some((AuthSource::Builder(Box::new(builder)), false));
        self
    }

    /// Authentication where credentials are sent: anonymous requests go on (routes then require
    /// it with [`Stack::authenticated`] or [`Stack::require_role`]); bad credentials are still
    /// refused.
    #[cfg(feature = "auth")]
    pub fn optional_auth(mut self, builder: AuthenticatorBuilder) -> Self {
        self.auth = Some((AuthSource::Builder(Box::new(builder)), true));
        self
    }

    /// Like [`auth`](Self::auth) (or [`optional_auth`](Self::optional_auth) when `optional`)
    /// with an authenticator built already — one the application also uses elsewhere. Its clock
    /// and realm are its own: build it with the stack's.
    #[cfg(feature = "auth")]
    pub fn authenticator(mut self, authenticator: Authenticator, optional: bool) -> Self {
        self.auth = Some((AuthSource::Built(authenticator), optional));
        self
    }

    /// The role hierarchy of [`Stack::require_role`], lowest first.
    #[cfg(feature = "auth")]
    pub fn roles(mut self, hierarchy: RoleHierarchy) -> Self {
        self.roles = Some(hierarchy);
        self
    }

    /// The CSRF check for cookie-authenticated writes.
    #[cfg(feature = "csrf")]
    pub fn csrf(mut self, layer: CsrfLayer) -> Self {
        self.csrf = Some(layer);
        self
    }

    /// One Redis connection and outage breaker for every store of the stack: both rate-limit
    /// positions decide in Redis (one limit across instances; the in-process store decides
    /// during an outage, unless [`remote_rate_limit_store`](Self::remote_rate_limit_store) says
    /// otherwise), and the route cache gets Redis as its L2 tier with purges broadcast to every
    /// instance.
    #[cfg(feature = "redis")]
    pub fn redis(mut self, handle: crate::redis_handle::RedisHandle) -> Self {
        self.redis = Some(handle);
        self
    }

    /// The route cache handed out by [`Stack::cache`]; the stack sets its clock.
    #[cfg(feature = "cache")]
    pub fn cache(mut self, builder: CacheLayerBuilder) -> Self {
        self.cache = Some(builder);
        self
    }
}

/// An authenticator to build with the stack's clock and realm, or one built already.
#[cfg(feature = "auth")]
#[derive(Debug)]
pub(super) enum AuthSource {
    Builder(Box<AuthenticatorBuilder>),
    Built(Authenticator),
}
