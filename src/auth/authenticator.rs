use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use http::{HeaderMap, Uri};

use super::cache::TokenCache;
use super::claims::{self, ClaimsPolicy, TokenKind};
use super::credential::{self, Credential, CredentialSource, Sources};
use super::revocation::{BoxFuture, Revoker};
use super::token::{self, DEFAULT_MAX_TOKEN_BYTES};
use super::verify;
use super::{
    ApiKeyStore, AuthError, ConfigError, Jwks, Principal, Reason, Revocation, RevocationList,
    VerifyingKey,
};
use crate::clock::{self, SharedClock};

/// Completes or refuses a verified principal on every request: the place to check that the
/// subject still exists, and to take roles from the user record rather than from the token.
pub trait ResolvePrincipal: Send + Sync + fmt::Debug + 'static {
    /// The principal to put in the request, or an error (use [`Reason::Rejected`]).
    fn resolve(&self, principal: Principal) -> BoxFuture<'static, Result<Principal, AuthError>>;
}

/// Verifies credentials: the shared, cheaply clonable core of [`AuthLayer`](super::AuthLayer),
/// also usable directly (a refresh endpoint calls [`verify`](Self::verify) with
/// [`TokenKind::Refresh`]).
///
/// ```
/// use jsonwebtoken::Algorithm;
/// use protothrive::auth::{Authenticator, SigningKey, TokenIssuer, TokenKind, VerifyingKey};
///
/// let secret = [42u8; 32];
/// let auth = Authenticator::builder()
///     .key(VerifyingKey::hmac(Algorithm::HS256, secret)?)
///     .issuer("protothrive")
///     .audience("protothrive-api")
///     .build()?;
/// let issuer = TokenIssuer::new(SigningKey::hmac(Algorithm::HS256, secret)?, "protothrive", "protothrive-api");
/// let pair = issuer.issue_pair("user-1", &serde_json::Map::new()).unwrap();
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let who = auth.verify(&pair.access.token, TokenKind::Access).await.unwrap();
/// assert_eq!(who.subject(), "user-1");
/// // A refresh token is not an access token.
/// let refused = auth.verify(&pair.refresh.token, TokenKind::Access).await.unwrap_err();
/// assert_eq!(refused.reason(), protothrive::auth::Reason::WrongTokenType);
/// # });
/// # Ok::<(), protothrive::auth::ConfigError>(())
/// ```
#[derive(Clone)]
pub struct Authenticator {
    inner: Arc<Inner>,
}

struct Inner {
    keys: Arc<[VerifyingKey]>,
    jwks: Option<Jwks>,
    policy: ClaimsPolicy,
    max_token_bytes: usize,
    cache: Option<TokenCache>,
    revoker: Option<Revoker>,
    resolver: Option<Arc<dyn ResolvePrincipal>>,
    api_keys: Option<Arc<dyn ApiKeyStore>>,
    sources: Sources,
    realm: String,
    clock: SharedClock,
}

impl fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Authenticator")
            .field("keys", &self.inner.keys)
            .field("jwks", &self.inner.jwks)
            .field("issuers", &self.inner.policy.issuers)
            .field("audiences", &self.inner.policy.audiences)
            .field("cache", &self.inner.cache)
            .finish_non_exhaustive()
    }
}

/// The outcome of the synchronous first step of authentication.
pub(crate) enum Quick<'r> {
    /// No credential was sent.
    Anonymous,
    /// Settled without I/O: a cache hit needing no hook.
    Done(Principal, CredentialSource),
    /// Refused without I/O.
    Refused(Reason, bool),
    /// Needs the asynchronous path.
    Slow(Credential<'r>),
}

impl Authenticator {
    /// Starts a configuration.
    pub fn builder() -> AuthenticatorBuilder {
        AuthenticatorBuilder::default()
    }

    pub(crate) fn realm(&self) -> &str {
        &self.inner.realm
    }

    /// Number of verified tokens currently cached.
    #[must_use]
    pub fn cached_tokens(&self) -> usize {
        self.inner.cache.as_ref().map_or(0, TokenCache::len)
    }

    /// Verifies a token of the given kind: signature, claims, revocation (no resolver).
    ///
    /// # Errors
    /// The [`Reason`] the token is refused.
    pub async fn verify(&self, token: &str, kind: TokenKind) -> Result<Principal, AuthError> {
        let now = self.inner.clock.unix_seconds();
        let cacheable = kind == TokenKind::Access && self.inner.cache.is_some();
        let generation = self.key_generation();
        if cacheable
            && let Some(p) = self
                .inner
                .cache
                .as_ref()
                .and_then(|c| c.get(token, now, generation))
        {
            self.check_revocation(&p).await?;
            return Ok(p);
        }
        let compact = token::split(token, self.inner.max_token_bytes)?;
        let header = token::parse_header(compact.header)?;
        let jwks_keys = match &self.inner.jwks {
            Some(jwks)
                if !self
                    .inner
                    .keys
                    .iter()
                    .any(|k| verify::is_candidate(k, &header)) =>
            {
                Some(jwks.keys_for(&header).await)
            }
            _ => None,
        };
        // No key set was ever fetched (the identity provider has been unreachable since start-up):
        // the token cannot be judged, and that is not the client's fault.
        if jwks_keys.as_ref().is_some_and(|keys| keys.is_empty()) {
            return Err(Reason::Unavailable.into());
        }
        let all = self
            .inner
            .keys
            .iter()
            .chain(jwks_keys.iter().flat_map(|k| k.iter()));
        verify::verify_signature(&compact, &header, all)?;
        let claims = verify::parse_claims(&compact)?;
        let principal =
            claims::validate(claims, header.typ.as_deref(), &self.inner.policy, kind, now)?;
        self.check_revocation(&principal).await?;
        if cacheable && let Some(cache) = &self.inner.cache {
            cache.insert(token, principal.clone(), generation);
        }
        Ok(principal)
    }

    /// Changes whenever a key leaves the JWKS: cached verifications from before are redone.
    fn key_generation(&self) -> u64 {
        self.inner.jwks.as_ref().map_or(0, Jwks::removals)
    }

    async fn check_revocation(&self, principal: &Principal) -> Result<(), AuthError> {
        if let (Some(revoker), Some(jti)) = (&self.inner.revoker, principal.token_id())
            && revoker.is_revoked(jti, principal).await?
        {
            return Err(Reason::Revoked.into());
        }
        Ok(())
    }

    /// The synchronous first step: find the credential and try the cache.
    pub(crate) fn quick<'r>(&self, headers: &'r HeaderMap, uri: &'r Uri) -> Quick<'r> {
        let credential = match credential::credential(headers, uri, &self.inner.sources) {
            Ok(Some(c)) => c,
            Ok(None) => return Quick::Anonymous,
            Err(reason) => return Quick::Refused(reason, true),
        };
        let fast_hooks = self.inner.resolver.is_none()
            && !matches!(self.inner.revoker, Some(Revoker::Custom(_)));
        if let (Credential::Bearer(token, source), Some(cache), true) =
            (credential, &self.inner.cache, fast_hooks)
            && let Some(p) = cache.get(
                token,
                self.inner.clock.unix_seconds(),
                self.key_generation(),
            )
        {
            let revoked = match (&self.inner.revoker, p.token_id()) {
                (Some(Revoker::List(list)), Some(jti)) => list.contains(jti),
                _ => false,
            };
            if revoked {
                return Quick::Refused(Reason::Revoked, true);
            }
            return Quick::Done(p, source);
        }
        Quick::Slow(credential)
    }

    /// The asynchronous step: verify the credential and run the hooks.
    pub(crate) async fn slow(
        &self,
        credential: Credential<'_>,
    ) -> Result<(Principal, CredentialSource), AuthError> {
        let credential = match credential {
            // An opaque bearer token (no JWS dots) is an API key when the store takes them.
            Credential::Bearer(token, source)
                if self.inner.sources.opaque_bearer && !token.contains('.') =>
            {
                Credential::ApiKey(token, source)
            }
            other => other,
        };
        let (principal, source) = match credential {
            Credential::Bearer(token, source) => {
                (self.verify(token, TokenKind::Access).await?, source)
            }
            Credential::ApiKey(key, source) => {
                let store = self
                    .inner
                    .api_keys
                    .as_ref()
                    .ok_or(AuthError::new(Reason::Malformed))?;
                let now = self.inner.clock.unix_seconds();
                (
                    super::apikey::authenticate(store.as_ref(), key, now).await?,
                    source,
                )
            }
        };
        let principal = match &self.inner.resolver {
            Some(r) => r.resolve(principal).await?,
            None => principal,
        };
        Ok((principal, source))
    }

    /// Authenticates a request head: `Ok(None)` when it carries no credential.
    ///
    /// # Errors
    /// The [`Reason`] the credential is refused.
    pub async fn authenticate(
        &self,
        headers: &HeaderMap,
        uri: &Uri,
    ) -> Result<Option<(Principal, CredentialSource)>, AuthError> {
        match self.quick(headers, uri) {
            Quick::Anonymous => Ok(None),
            Quick::Done(p, s) => Ok(Some((p, s))),
            Quick::Refused(reason, _) => Err(reason.into()),
            Quick::Slow(c) => self.slow(c).await.map(Some),
        }
    }
}

/// Builds an [`Authenticator`]; every mistake is a [`ConfigError`] from [`build`](Self::build).
#[must_use]
pub struct AuthenticatorBuilder {
    keys: Vec<VerifyingKey>,
    jwks: Option<Jwks>,
    issuers: Vec<String>,
    audiences: Vec<String>,
    leeway: Duration,
    required: Vec<String>,
    max_lifetime: Duration,
    max_token_bytes: usize,
    cache_bytes: Option<u64>,
    revoker: Option<Revoker>,
    resolver: Option<Arc<dyn ResolvePrincipal>>,
    api_keys: Option<Arc<dyn ApiKeyStore>>,
    sources: Sources,
    realm: String,
    clock: SharedClock,
}

impl Default for AuthenticatorBuilder {
    fn default() -> Self {
        Self {
            keys: Vec::new(),
            jwks: None,
            issuers: Vec::new(),
            audiences: Vec::new(),
            leeway: Duration::from_secs(60),
            required: Vec::new(),
            max_lifetime: DEFAULT_MAX_LIFETIME,
            max_token_bytes: DEFAULT_MAX_TOKEN_BYTES,
            cache_bytes: Some(8 * 1024 * 1024),
            revoker: None,
            resolver: None,
            api_keys: None,
            sources: Sources::default(),
            realm: "api".to_owned(),
            clock: clock::system(),
        }
    }
}

impl fmt::Debug for AuthenticatorBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthenticatorBuilder")
            .field("keys", &self.keys)
            .finish_non_exhaustive()
    }
}

/// The longest leeway accepted: more would make `exp` meaningless.
pub const MAX_LEEWAY: Duration = Duration::from_secs(300);

/// How far ahead a token's `exp` may be by default: 90 days, past any access or refresh token's
/// lifetime in common use.
pub const DEFAULT_MAX_LIFETIME: Duration = Duration::from_secs(90 * 86_400);

impl AuthenticatorBuilder {
    /// Adds a verifying key (bound to its algorithm; see [`VerifyingKey`]).
    pub fn key(mut self, key: VerifyingKey) -> Self {
        self.keys.push(key);
        self
    }

    /// Also accepts tokens signed by keys of this JWKS, chosen by `kid`.
    pub fn jwks(mut self, jwks: Jwks) -> Self {
        self.jwks = Some(jwks);
        self
    }

    /// Accepts tokens from this issuer; once any is set, `iss` is required (RFC 7519 §4.1.1).
    pub fn issuer(mut self, issuer: impl Into<String>) -> Self {
        self.issuers.push(issuer.into());
        self
    }

    /// Accepts tokens for this audience; once any is set, `aud` is required and must overlap
    /// (RFC 7519 §4.1.3).
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audiences.push(audience.into());
        self
    }

    /// Clock-skew allowance for `exp` and `nbf` (default 60 s, at most 5 minutes).
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway;
        self
    }

    /// Refuses tokens whose `exp` is further than this ahead of now (default
    /// [`DEFAULT_MAX_LIFETIME`]): an `exp` of `1e300` must not make a token that never expires.
    /// At least a minute.
    pub fn max_lifetime(mut self, lifetime: Duration) -> Self {
        self.max_lifetime = lifetime;
        self
    }

    /// Refuses tokens without this claim (e.g. `jti` so every token can be revoked).
    pub fn require_claim(mut self, name: impl Into<String>) -> Self {
        self.required.push(name.into());
        self
    }

    /// Refuses tokens longer than this, before decoding anything (default 8 KiB).
    pub fn max_token_bytes(mut self, bytes: usize) -> Self {
        self.max_token_bytes = bytes;
        self
    }

    /// Caches verified tokens in up to `bytes` of memory (default 8 MiB).
    pub fn token_cache_bytes(mut self, bytes: u64) -> Self {
        self.cache_bytes = Some(bytes);
        self
    }

    /// Verifies every token's signature every time.
    pub fn no_token_cache(mut self) -> Self {
        self.cache_bytes = None;
        self
    }

    /// Consults this in-process list on every request (fast path: no allocation).
    pub fn revocation_list(mut self, list: RevocationList) -> Self {
        self.revoker = Some(Revoker::List(list));
        self
    }

    /// Consults this hook on every request.
    pub fn revocation(mut self, hook: impl Revocation) -> Self {
        self.revoker = Some(Revoker::Custom(Arc::new(hook)));
        self
    }

    /// Runs this resolver on every authenticated request.
    pub fn resolver(mut self, resolver: impl ResolvePrincipal) -> Self {
        self.resolver = Some(Arc::new(resolver));
        self
    }

    /// Accepts API keys (`Authorization: ApiKey` and `X-API-Key`) from this store.
    pub fn api_keys(mut self, store: impl ApiKeyStore) -> Self {
        self.api_keys = Some(Arc::new(store));
        self.sources.api_keys = true;
        self
    }

    /// Also looks up an opaque `Authorization: Bearer` token (one without the two dots of a
    /// JWT) as an API key in the [`api_keys`](Self::api_keys) store: for clients that can only
    /// send a static bearer token, such as a Prometheus scraper. Off by default.
    ///
    /// ```
    /// use protothrive::auth::{generate_api_key, ApiKeyRecord, Authenticator, InMemoryApiKeys};
    ///
    /// let store = InMemoryApiKeys::default();
    /// let (key, hash) = generate_api_key("scrape");
    /// store.insert(ApiKeyRecord::new("k1", "prometheus", hash).scopes(["metrics:read"]));
    /// let auth = Authenticator::builder().api_keys(store).opaque_bearer_api_keys(true).build()?;
    ///
    /// let mut headers = http::HeaderMap::new();
    /// headers.insert("authorization", format!("Bearer {key}").parse()?);
    /// let rt = tokio::runtime::Builder::new_current_thread().build()?;
    /// let (who, _) = rt.block_on(auth.authenticate(&headers, &"/metrics".parse()?))?.unwrap();
    /// assert_eq!(who.subject(), "prometheus");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn opaque_bearer_api_keys(mut self, on: bool) -> Self {
        self.sources.opaque_bearer = on;
        self
    }

    /// Also reads the token from this cookie (for browser sessions; pair it with a CSRF check).
    pub fn cookie(mut self, name: impl Into<String>) -> Self {
        self.sources.cookie = Some(name.into());
        self
    }

    /// Also reads the token from this query parameter. Off by default: URLs end up in logs and
    /// `Referer` headers (RFC 6750 §2.3, §5.3).
    pub fn query_parameter(mut self, name: impl Into<String>) -> Self {
        self.sources.query = Some(name.into());
        self
    }

    /// The `realm` of `WWW-Authenticate` challenges (default `api`).
    pub fn realm(mut self, realm: impl Into<String>) -> Self {
        self.realm = realm.into();
        self
    }

    /// The clock.
    pub fn clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }

    /// Checks the configuration and builds the authenticator.
    ///
    /// # Errors
    /// No way to authenticate anything; two keys with one `kid`; a leeway over 5 minutes; a
    /// maximum lifetime under a minute; a token size outside 256 B..=64 KiB; an empty cookie or
    /// parameter name; a realm with quotes.
    pub fn build(self) -> Result<Authenticator, ConfigError> {
        if self.keys.is_empty() && self.jwks.is_none() && self.api_keys.is_none() {
            return Err(ConfigError::new(
                "no keys, JWKS or API-key store: add at least one with .key(), .jwks() or .api_keys()",
            ));
        }
        for (i, key) in self.keys.iter().enumerate() {
            if let Some(kid) = key.kid()
                && self.keys[..i].iter().any(|k| k.kid() == Some(kid))
            {
                return Err(ConfigError::new(format!(
                    "two keys share the kid `{kid}`; a kid must name exactly one key (and algorithm)"
                )));
            }
        }
        if self.leeway > MAX_LEEWAY {
            return Err(ConfigError::new(format!(
                "a leeway of {:?} makes expiry meaningless; use at most {MAX_LEEWAY:?}",
                self.leeway
            )));
        }
        if self.max_lifetime < Duration::from_secs(60) {
            return Err(ConfigError::new(format!(
                "a maximum token lifetime of {:?} refuses every token; use a minute or more \
                 (the default is {DEFAULT_MAX_LIFETIME:?})",
                self.max_lifetime
            )));
        }
        if !(256..=64 * 1024).contains(&self.max_token_bytes) {
            return Err(ConfigError::new(
                "max_token_bytes must be between 256 and 65536",
            ));
        }
        if [&self.sources.cookie, &self.sources.query]
            .into_iter()
            .flatten()
            .any(String::is_empty)
        {
            return Err(ConfigError::new(
                "cookie and query parameter names cannot be empty",
            ));
        }
        if self.realm.contains(['"', '\\']) || http::HeaderValue::from_str(&self.realm).is_err() {
            return Err(ConfigError::new(
                "the realm must be printable text without quotes",
            ));
        }
        let leeway = self.leeway.as_secs();
        Ok(Authenticator {
            inner: Arc::new(Inner {
                keys: self.keys.into(),
                jwks: self.jwks,
                policy: ClaimsPolicy {
                    issuers: self.issuers.into(),
                    audiences: self.audiences.into(),
                    leeway,
                    required: self.required.into(),
                    max_lifetime: self.max_lifetime.as_secs(),
                },
                max_token_bytes: self.max_token_bytes,
                cache: self.cache_bytes.map(|b| TokenCache::new(b, leeway)),
                revoker: self.revoker,
                resolver: self.resolver,
                api_keys: self.api_keys,
                sources: self.sources,
                realm: self.realm,
                clock: self.clock,
            }),
        })
    }
}
