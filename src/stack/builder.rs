use std::sync::Arc;

use crate::clock::{self, SharedClock};
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
use crate::rate_limit::{KeyBy, Limit, OnStoreError, RateLimitLayer, RateLimitStore, RemoteStore};
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
    pub(super) _subscription: Option<crate::cache::Subscription>,
    pub(super) allow_headers: Vec<String>,
    pub(super) expose_headers: Vec<String>,
}

/// Configures a [`Stack`]. Every mistake, and every mix of layers that could not work, is a
/// [`ConfigError`] from [`build`](Self::build).
#[derive(Debug)]
#[must_use]
pub struct StackBuilder {
    clock: Option<SharedClock>,
    realm: Option<String>,
    #[cfg(feature = "client-ip")]
    client_ip: Option<ClientIpLayerBuilder>,
    request_id: Option<RequestIdLayer>,
    #[cfg(feature = "cors")]
    cors: Option<CorsLayerBuilder>,
    #[cfg(feature = "security-headers")]
    security_headers: Option<SecurityHeadersLayer>,
    #[cfg(feature = "gateway")]
    versions: Option<VersionLayerBuilder>,
    #[cfg(feature = "gateway")]
    body_limits: Option<RequestLimitsLayer>,
    #[cfg(feature = "rate-limit")]
    by_client: Vec<Limit>,
    #[cfg(feature = "rate-limit")]
    by_principal: Vec<Limit>,
    #[cfg(feature = "rate-limit")]
    store: Option<Arc<dyn RateLimitStore>>,
    #[cfg(feature = "rate-limit")]
    remote: Option<(Arc<dyn RemoteStore>, OnStoreError)>,
    #[cfg(feature = "rate-limit")]
    rate_limit_headers: bool,
    #[cfg(feature = "auth")]
    auth: Option<(AuthSource, bool)>,
    #[cfg(feature = "auth")]
    roles: Option<RoleHierarchy>,
    #[cfg(feature = "csrf")]
    csrf: Option<CsrfLayer>,
    #[cfg(feature = "cache")]
    cache: Option<CacheLayerBuilder>,
    #[cfg(feature = "redis")]
    redis: Option<crate::redis_handle::RedisHandle>,
}

impl Default for StackBuilder {
    fn default() -> Self {
        Self {
            clock: None,
            realm: None,
            #[cfg(feature = "client-ip")]
            client_ip: Some(ClientIpLayer::builder()),
            request_id: Some(RequestIdLayer::new()),
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

    /// Checks the mix and builds every layer.
    ///
    /// # Errors
    /// A layer's own configuration error, or a mix that could not work: a per-IP limit without
    /// the client-IP layer, a limit by principal without auth or a principal-keyed limit placed
    /// before auth, CORS credentials with a wildcard (from the CORS builder).
    pub fn build(self) -> Result<Stack, ConfigError> {
        let clock = self.clock.unwrap_or_else(clock::system);
        let mut allow: Vec<String> = Vec::new();
        let mut expose: Vec<String> = Vec::new();
        let mut needs = |a: &[&str], e: &[&str]| {
            allow.extend(a.iter().map(|s| (*s).to_owned()));
            expose.extend(e.iter().map(|s| (*s).to_owned()));
        };

        #[cfg(feature = "client-ip")]
        let client_ip = self
            .client_ip
            .map(ClientIpLayerBuilder::build)
            .transpose()?;
        #[cfg(feature = "client-ip")]
        #[allow(unused_variables)]
        let has_client_ip = client_ip.is_some();
        #[cfg(not(feature = "client-ip"))]
        #[allow(unused_variables)]
        let has_client_ip = false;

        if let Some(r) = &self.request_id {
            let name = r.header_name().as_str();
            needs(&[name], &[name]);
        }

        #[cfg(feature = "gateway")]
        let versions = match self.versions {
            Some(v) => {
                needs(
                    &["api-version"],
                    &["api-version", "deprecation", "sunset", "link"],
                );
                Some(v.build()?)
            }
            None => None,
        };
        #[cfg(feature = "gateway")]
        let body_limits = {
            needs(&["content-type"], &[]);
            self.body_limits.unwrap_or_default()
        };

        #[cfg(feature = "rate-limit")]
        let (by_client, by_principal) = {
            #[cfg(feature = "auth")]
            let has_auth = self.auth.is_some();
            #[cfg(not(feature = "auth"))]
            let has_auth = false;
            check_limits(&self.by_client, &self.by_principal, has_client_ip, has_auth)?;
            let store: Arc<dyn RateLimitStore> = self
                .store
                .unwrap_or_else(|| Arc::new(crate::rate_limit::InMemoryStore::default()));
            #[cfg(feature = "redis")]
            let remote = match (self.remote, &self.redis) {
                (Some(r), _) => Some(r),
                (None, Some(h)) => Some((
                    Arc::new(crate::rate_limit::RedisStore::from_handle(h).build()?)
                        as Arc<dyn RemoteStore>,
                    OnStoreError::Local,
                )),
                (None, None) => None,
            };
            #[cfg(not(feature = "redis"))]
            let remote = self.remote;
            let layer = |limits: Vec<Limit>| -> Result<Option<RateLimitLayer>, ConfigError> {
                let limits: Vec<Limit> = limits
                    .into_iter()
                    .filter(|l| !l.quota().is_unlimited())
                    .collect();
                if limits.is_empty() {
                    return Ok(None);
                }
                let mut b = RateLimitLayer::builder()
                    .store(store.clone())
                    .clock(clock.clone())
                    .headers(self.rate_limit_headers);
                if let Some((remote, policy)) = &remote {
                    b = b.remote_store(remote.clone(), *policy);
                }
                for l in limits {
                    b = b.limit(l);
                }
                b.build().map(Some)
            };
            let by_client = layer(self.by_client)?;
            let by_principal = layer(self.by_principal)?;
            if by_client.is_some() || by_principal.is_some() {
                needs(&[], &["retry-after"]);
                if self.rate_limit_headers {
                    needs(&[], &["ratelimit", "ratelimit-policy"]);
                }
            }
            (by_client, by_principal)
        };

        #[cfg(feature = "auth")]
        let auth = match self.auth {
            Some((source, optional)) => {
                let authenticator = match source {
                    AuthSource::Builder(b) => {
                        let mut b = b.clock(clock.clone());
                        if let Some(realm) = &self.realm {
                            b = b.realm(realm.clone());
                        }
                        b.build()?
                    }
                    AuthSource::Built(a) => a,
                };
                needs(&["authorization", "x-api-key"], &["www-authenticate"]);
                let layer = if optional {
                    AuthLayer::optional(authenticator.clone())
                } else {
                    AuthLayer::new(authenticator.clone())
                };
                Some((authenticator, layer))
            }
            None => None,
        };

        #[cfg(feature = "csrf")]
        if let Some(c) = &self.csrf {
            needs(&[c.token_header_name().as_str()], &[]);
        }

        #[cfg(all(feature = "redis", feature = "cache"))]
        let mut subscription = None;
        #[cfg(feature = "cache")]
        let cache = match self.cache {
            Some(b) => {
                needs(
                    &["if-none-match", "if-modified-since", "cache-control"],
                    &["etag", "age", "cache-status"],
                );
                #[allow(unused_mut)]
                let mut b = b.clock(clock.clone());
                #[cfg(feature = "redis")]
                let tier = match &self.redis {
                    Some(h) => {
                        let tier = crate::cache::RedisTier::from_handle(h).build()?;
                        b = b.tier(Arc::new(tier.clone()));
                        Some(tier)
                    }
                    None => None,
                };
                let layer = b.build()?;
                #[cfg(feature = "redis")]
                if let Some(tier) = tier {
                    let local = layer.handle();
                    subscription = Some(tier.subscribe(move |p| local.invalidate_local(&p))?);
                }
                Some(layer)
            }
            None => None,
        };

        allow.sort();
        allow.dedup();
        expose.sort();
        expose.dedup();

        #[cfg(feature = "cors")]
        let cors = self
            .cors
            .map(|b| {
                b.extend_allow_headers(allow.iter())
                    .extend_expose_headers(expose.iter())
                    .build()
            })
            .transpose()?;

        Ok(Stack {
            built: Arc::new(Built {
                clock,
                realm: self.realm,
                #[cfg(feature = "client-ip")]
                client_ip,
                request_id: self.request_id,
                #[cfg(feature = "cors")]
                cors,
                #[cfg(feature = "security-headers")]
                security_headers: self.security_headers,
                #[cfg(feature = "gateway")]
                versions,
                #[cfg(feature = "gateway")]
                body_limits,
                #[cfg(feature = "rate-limit")]
                by_client,
                #[cfg(feature = "auth")]
                auth,
                #[cfg(feature = "csrf")]
                csrf: self.csrf,
                #[cfg(feature = "rate-limit")]
                by_principal,
                #[cfg(feature = "auth")]
                roles: self.roles,
                #[cfg(feature = "cache")]
                cache,
                #[cfg(feature = "redis")]
                redis: self.redis,
                #[cfg(all(feature = "redis", feature = "cache"))]
                _subscription: subscription,
                allow_headers: allow,
                expose_headers: expose,
            }),
        })
    }
}

/// An authenticator to build with the stack's clock and realm, or one built already.
#[cfg(feature = "auth")]
#[derive(Debug)]
enum AuthSource {
    Builder(Box<AuthenticatorBuilder>),
    Built(Authenticator),
}

/// The mixes of limits that could not work.
#[cfg(feature = "rate-limit")]
fn check_limits(
    by_client: &[Limit],
    by_principal: &[Limit],
    client_ip: bool,
    auth: bool,
) -> Result<(), ConfigError> {
    let by_ip = |k: &KeyBy| matches!(k, KeyBy::ClientIp | KeyBy::ClientIpV6Net64);
    let by_who = |k: &KeyBy| matches!(k, KeyBy::Subject | KeyBy::JwtSubject | KeyBy::ApiKey);
    let on = |l: &&Limit| !l.quota().is_unlimited();
    for l in by_client.iter().chain(by_principal).filter(on) {
        if !client_ip && l.keys().iter().any(by_ip) {
            return Err(ConfigError::new(format!(
                "rate limit `{}` is keyed by client IP, but the stack has no client-IP layer: \
                 remove `without_client_ip()` (the layer would never find an address and the \
                 limit would never apply)",
                l.name()
            )));
        }
    }
    for l in by_client.iter().filter(on) {
        if l.keys().iter().any(by_who) {
            return Err(ConfigError::new(format!(
                "rate limit `{}` is keyed by a principal but placed before authentication, where \
                 there is none yet: add it with `limit_by_principal`",
                l.name()
            )));
        }
    }
    if !auth && let Some(l) = by_principal.iter().find(on) {
        return Err(ConfigError::new(format!(
            "rate limit `{}` is a limit by principal, but the stack has no auth layer to find \
             one: add `.auth(...)` or `.optional_auth(...)`, or use `limit_by_client`",
            l.name()
        )));
    }
    Ok(())
}
