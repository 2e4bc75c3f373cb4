//! Assembles the ProtoThrive API from the crate's layers, outer to inner as DESIGN §2 orders them:
//! client IP → request ids → CORS → security headers → gateway (versions, body limits) →
//! authentication → CSRF → per-route roles → handlers (with a statement counter).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Router;
use axum::body::Body;
use axum::extract::Request;

use axum::http::{HeaderName, HeaderValue, Method};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use protothrive::auth::{
    Algorithm, AuthLayer, Authenticator, SigningKey, TokenIssuer, VerifyingKey,
};
use protothrive::client_ip::ClientIpLayer;
use protothrive::clock::SharedClock;
use protothrive::cors::{AllowOrigin, CorsLayer, DEFAULT_EXPOSE_HEADERS};
use protothrive::csrf::CsrfLayer;
use protothrive::error::{RequestId, TraceId};
use protothrive::gateway::{Deprecation, RequestLimitsLayer, VersionLayer};
use protothrive::rate_limit::{
    InMemoryStore, KeyBy, Limit, RateLimitLayer, RateLimitLayerBuilder, RateLimitStore, RemoteStore,
};
use protothrive::security_headers::SecurityHeadersLayer;
use std::convert::Infallible;
use tower::ServiceBuilder;
use tower::ServiceExt;
use tower::util::BoxCloneSyncService;

use crate::agent::AgentClient;
use crate::config::Config;
use crate::db::{self, Db};
use crate::http::CONTEXT;
use crate::routes;
use crate::state::{AppState, SqliteApiKeys, UserResolver};

/// The largest request body: a 50 KB graph plus the rest of a roadmap fits.
pub const MAX_BODY: usize = 64 * 1024;

static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
static X_QUERY_COUNT: HeaderName = HeaderName::from_static("x-query-count");
static TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");

/// Builds the state: database, keys, issuer.
pub async fn state(
    config: Config,
    clock: SharedClock,
    jwt_secret: &[u8],
    agent: AgentClient,
    metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
) -> Result<AppState, Box<dyn std::error::Error>> {
    let db = Db::connect(&config.database_url).await?;
    let revocations =
        crate::revocations::load(&db, clock.clone(), config.redis_url.as_deref()).await?;
    let users = UserResolver::new(db.clone(), clock.clone());
    let mut builder = Authenticator::builder()
        .key(VerifyingKey::hmac(Algorithm::HS256, jwt_secret)?)
        .issuer(config.jwt_issuer.clone())
        .audience(config.jwt_audience.clone())
        .leeway(std::time::Duration::from_secs(config.jwt_leeway))
        .require_claim("jti")
        .resolver(users)
        .api_keys(SqliteApiKeys { db: db.clone() })
        .realm("protothrive")
        .clock(clock.clone());
    builder = revocations.install(builder);
    if let Some(url) = &config.jwks_url {
        let fetcher = protothrive::auth::HttpJwksFetcher::new(url)?;
        let jwks = protothrive::auth::Jwks::builder(fetcher)
            .default_rsa_algorithm(Algorithm::RS256)
            .clock(clock.clone())
            .build();
        if let Err(e) = jwks.refresh().await {
            tracing::warn!(error = %e, "JWKS not reachable at start; will retry on use");
        }
        builder = builder.jwks(jwks);
    }
    let auth = builder.build()?;
    let issuer = TokenIssuer::new(
        SigningKey::hmac(Algorithm::HS256, jwt_secret)?,
        config.jwt_issuer.clone(),
        config.jwt_audience.clone(),
    )
    .clock(clock.clone());
    // Redis connects lazily: a server that is down at start makes /health/ready "degraded" and
    // the limiter follows its outage policy until Redis is back.
    let redis = match &config.redis_url {
        Some(url) => Some(protothrive::rate_limit::RedisStore::builder(url).build()?),
        None => None,
    };
    let cache = crate::cache::build(clock.clone(), config.redis_url.as_deref())?;
    Ok(AppState {
        db,
        auth,
        issuer,
        revocations,
        config: Arc::new(config),
        started: clock.instant(),
        clock,
        agent,
        metrics,
        redis,
        cache: cache.layer,
        cache_subscription: cache.subscription,
        app: Arc::new(std::sync::OnceLock::new()),
    })
}

/// A request id from the client when it is sane (≤ 64 visible ASCII characters), else a new one.
fn request_id(req: &Request) -> String {
    req.headers()
        .get(&X_REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 64 && v.bytes().all(|b| b.is_ascii_graphic()))
        .map_or_else(db::new_id, str::to_owned)
}

/// The trace id of an incoming W3C `traceparent`, or a new one.
fn trace_id(req: &Request) -> String {
    req.headers()
        .get(&TRACEPARENT)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let parts: Vec<&str> = v.split('-').collect();
            (parts.len() == 4
                && parts[1].len() == 32
                && parts[1]
                    .bytes()
                    .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
                && parts[1] != "00000000000000000000000000000000")
                .then(|| parts[1].to_owned())
        })
        .unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string())
}

/// Requests being served now (shown by `/status`; a shutdown test waits on it).
pub static IN_FLIGHT: AtomicUsize = AtomicUsize::new(0);

/// Decrements [`IN_FLIGHT`] however the request ends (even when the client goes away).
struct InFlight;

impl InFlight {
    fn enter() -> Self {
        IN_FLIGHT.fetch_add(1, Ordering::Relaxed);
        Self
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        IN_FLIGHT.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Request ids in and out, the task-local context for problem bodies, and the statement count.
async fn context(production: bool, mut req: Request, next: Next) -> Response {
    let _in_flight = InFlight::enter();
    let rid = request_id(&req);
    let tid = trace_id(&req);
    req.extensions_mut().insert(RequestId::new(rid.clone()));
    req.extensions_mut().insert(TraceId::new(tid.clone()));
    let ctx = (
        RequestId::new(rid.clone()),
        TraceId::new(tid.clone()),
        production,
    );
    let (mut res, queries) = CONTEXT.scope(ctx, db::counted(next.run(req))).await;
    let h = res.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&rid) {
        h.insert(X_REQUEST_ID.clone(), v);
    }
    let span = &uuid::Uuid::new_v4().simple().to_string()[..16];
    if let Ok(v) = HeaderValue::from_str(&format!("00-{tid}-{span}-01")) {
        h.insert(TRACEPARENT.clone(), v);
    }
    h.insert(X_QUERY_COUNT.clone(), HeaderValue::from(queries));
    metrics::histogram!("protothrive_db_statements_per_request").record(f64::from(queries));
    res
}

/// CORS for the configured front-end origins (`PROTOTHRIVE_CORS_ORIGINS`), with credentials; no
/// origin at all when none is configured (every preflight then gets a 403 problem).
fn cors(origins: &[String]) -> Result<CorsLayer, protothrive::error::ConfigError> {
    let allow = if origins.is_empty() {
        AllowOrigin::predicate(|_| false)
    } else {
        AllowOrigin::list(origins)
    };
    CorsLayer::builder()
        .allow_origin(allow)
        .allow_credentials(true)
        .allow_methods([
            Method::GET,
            Method::HEAD,
            Method::POST,
            Method::PUT,
            Method::PATCH,
            Method::DELETE,
        ])
        .allow_headers([
            "authorization",
            "content-type",
            "x-api-key",
            "x-request-id",
            "api-version",
            "idempotency-key",
            "if-match",
            "if-none-match",
            "x-csrf-token",
        ])
        .expose_headers(
            DEFAULT_EXPOSE_HEADERS
                .iter()
                .copied()
                .chain(["etag", "x-query-count"]),
        )
        .build()
}

/// The app as one service (the router inside every layer).
pub type App = BoxCloneSyncService<Request<Body>, Response, Infallible>;

/// The whole service: layers around the router.
pub fn app(state: &AppState) -> Result<App, Box<dyn std::error::Error>> {
    let production = state.config.is_production();
    let client_ip = ClientIpLayer::builder()
        .trusted_proxies(state.config.trusted_proxies.iter())
        .build()?;
    let versions = VersionLayer::builder()
        .prefix("/api")
        .vendor("protothrive")
        // v1 is deprecated since 2026-01-01 and sunsets 2027-01-01.
        .deprecated_version(
            1,
            Deprecation::since(1_767_225_600)
                .sunset(1_798_761_600)
                .successor(2),
        )
        .version(2)
        .default_version(1)
        .build()?;
    let cors = cors(&state.config.cors_origins)?;
    // One store for both layers; limits by client before auth (so floods never reach it), by
    // principal after. With Redis, Redis decides for every instance and the in-process store is
    // the fallback of the outage policy.
    let limits = state.config.limits;
    let store: Arc<dyn RateLimitStore> = Arc::new(InMemoryStore::default());
    let remote = state.redis.clone().map(|r| {
        (
            Arc::new(r) as Arc<dyn RemoteStore>,
            state.config.rate_limit_on_redis_error,
        )
    });
    let shared = |b: RateLimitLayerBuilder| match &remote {
        Some((r, policy)) => b.remote_store(r.clone(), *policy),
        None => b,
    };
    let by_client = shared(RateLimitLayer::builder())
        .store(store.clone())
        .clock(state.clock.clone())
        .limit(Limit::new("ip", limits.ip).by(KeyBy::ClientIpV6Net64))
        .limit(
            Limit::new("login", limits.login)
                .by(KeyBy::ClientIpV6Net64)
                .path_prefix("/api/auth/login")
                .method(http::Method::POST),
        )
        .limit(
            Limit::new("register", limits.register)
                .by(KeyBy::ClientIpV6Net64)
                .path_prefix("/api/auth/register")
                .method(http::Method::POST),
        )
        .build()?;
    let by_principal = shared(RateLimitLayer::builder())
        .store(store)
        .clock(state.clock.clone())
        .limit(Limit::new("user", limits.user).by(KeyBy::JwtSubject))
        .limit(Limit::new("api_key", limits.api_key).by(KeyBy::ApiKey))
        .build()?;
    let handle = state.app.clone();
    let router: Router = routes::router(state.clone());
    let service = ServiceBuilder::new()
        .layer(client_ip)
        .layer(middleware::from_fn(move |req, next| {
            context(production, req, next)
        }))
        .layer(cors)
        .layer(SecurityHeadersLayer::new())
        .layer(versions)
        .layer(by_client)
        .layer(
            RequestLimitsLayer::new()
                .max_body_bytes(MAX_BODY)
                .json_only(),
        )
        .layer(AuthLayer::optional(state.auth.clone()))
        .layer(by_principal)
        .layer(CsrfLayer::new().allowed_origins(state.config.cors_origins.iter().cloned()))
        .service(router)
        .map_response(IntoResponse::into_response);
    let app = BoxCloneSyncService::new(service);
    let _ = handle.set(app.clone());
    Ok(app)
}
