//! Shared state of the app, and the auth pieces that read the database.

use std::sync::Arc;
use std::time::{Duration, Instant};

use protothrive::auth::{
    ApiKeyHash, ApiKeyRecord, ApiKeyStore, AuthError, Authenticator, BoxFuture, Principal, Reason,
    ResolvePrincipal, Scheme, TokenIssuer,
};
use protothrive::clock::SharedClock;
use quick_cache::sync::Cache;

use crate::agent::AgentClient;
use crate::config::Config;
use crate::db::Db;

#[derive(Clone)]
pub struct AppState {
    pub db: Db,
    pub auth: Authenticator,
    pub issuer: TokenIssuer,
    pub revocations: crate::revocations::Revocations,
    pub config: Arc<Config>,
    pub clock: SharedClock,
    pub started: Instant,
    pub agent: AgentClient,
    pub metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
    /// Every layer of the request path, and what they share (the Redis connection when
    /// `PROTOTHRIVE_REDIS_URL` is set; the subscription to other instances' purges).
    pub stack: protothrive::stack::Stack,
    /// The stack's read cache (cloned into the cached routes; its handle purges).
    pub cache: protothrive::cache::CacheLayer,
    /// Makes each request's loader of nested data (`crate::loaders`).
    pub nested: protothrive::batch::LoaderFactory<crate::loaders::Shared>,
    /// The cache of nested values behind `nested` (its purges are waited for at shutdown).
    pub data: protothrive::cache::DataCache,
    /// Other instances' forgets of nested values, applied to ours (with Redis).
    pub data_purges: Option<Arc<protothrive::cache::redis::Subscription>>,
}

impl AppState {
    pub fn now(&self) -> i64 {
        i64::try_from(self.clock.unix_seconds()).unwrap_or(i64::MAX)
    }
}

/// Roles come from the user record, not from the token; a deleted or unknown user is refused.
/// Records are cached for a few seconds so that a burst of requests costs one lookup.
#[derive(Clone, Debug)]
pub struct UserResolver {
    db: Db,
    clock: SharedClock,
    cache: Arc<Cache<String, (Option<String>, Instant)>>,
}

const USER_TTL: Duration = Duration::from_secs(5);

impl UserResolver {
    pub fn new(db: Db, clock: SharedClock) -> Self {
        Self {
            db,
            clock,
            cache: Arc::new(Cache::new(10_000)),
        }
    }

    async fn role_of(&self, user_id: &str) -> Result<Option<String>, AuthError> {
        let now = self.clock.instant();
        if let Some((role, at)) = self.cache.get(user_id)
            && now.saturating_duration_since(at) < USER_TTL
        {
            return Ok(role);
        }
        let role = crate::db::users::role(&self.db, user_id)
            .await
            .map_err(|_| AuthError::new(Reason::Unavailable))?;
        self.cache.insert(user_id.to_owned(), (role.clone(), now));
        Ok(role)
    }
}

impl ResolvePrincipal for UserResolver {
    fn resolve(&self, principal: Principal) -> BoxFuture<'static, Result<Principal, AuthError>> {
        let this = self.clone();
        Box::pin(async move {
            if principal.subject() == METRICS_SUBJECT && principal.scheme() == Scheme::ApiKey {
                return Ok(principal);
            }
            match this.role_of(principal.subject()).await? {
                Some(role) => Ok(principal.with_roles([role])),
                None => Err(AuthError::new(Reason::Rejected)),
            }
        })
    }
}

/// API keys in the `api_keys` table (hashes only).
#[derive(Clone, Debug)]
pub struct DbApiKeys {
    pub db: Db,
    /// The hash of `PROTOTHRIVE_METRICS_TOKEN`: a scraper's static bearer token, an API key of
    /// [`METRICS_SUBJECT`] with only `metrics:read`.
    pub metrics: Option<ApiKeyHash>,
}

/// The subject of the metrics token (not a user).
pub const METRICS_SUBJECT: &str = "metrics-scraper";

impl ApiKeyStore for DbApiKeys {
    fn find<'a>(
        &'a self,
        hash: &'a ApiKeyHash,
    ) -> BoxFuture<'a, Result<Option<ApiKeyRecord>, AuthError>> {
        Box::pin(async move {
            if self.metrics.is_some_and(|m| m.ct_eq(hash)) {
                let rec = ApiKeyRecord::new("metrics-token", METRICS_SUBJECT, *hash)
                    .scopes(["metrics:read"]);
                return Ok(Some(rec));
            }
            let row = crate::db::keys::by_hash(&self.db, &hash.to_hex())
                .await
                .map_err(|_| AuthError::new(Reason::Unavailable))?;
            Ok(row.map(|(id, user, scopes, expires, revoked)| {
                let scopes: Vec<String> = serde_json::from_str(&scopes).unwrap_or_default();
                let mut rec = ApiKeyRecord::new(id, user, *hash)
                    .scopes(scopes)
                    .revoked(revoked.is_some());
                if let Some(e) = expires.and_then(|e| u64::try_from(e).ok()) {
                    rec = rec.expires_at(e);
                }
                rec
            }))
        })
    }
}
