//! Assembles the ProtoThrive API from a [`Config`]: [`build`] is what `main` serves and what the
//! end-to-end tests run in process.
//!
//! The layers, outermost first: the batch envelope (each item runs through all of what follows),
//! then the crate's `Stack` — client IP → request ids → trace (with the statement count) → CORS →
//! security headers → versions and body limits → the login and register limits by client →
//! authentication → CSRF → limits by user and API key → the read cache — and inside it the
//! router, whose routes add their roles, API-key scopes and load shedding (`routes`).

use std::sync::Arc;

use axum::body::Body;
use axum::extract::Request;

use axum::http::{HeaderName, HeaderValue, Method};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use protothrive::auth::{
    Algorithm, ApiKeyHash, Authenticator, SigningKey, TokenIssuer, VerifyingKey,
};
use protothrive::clock::SharedClock;
use protothrive::cors::{AllowOrigin, CorsLayer, CorsLayerBuilder};
use protothrive::csrf::CsrfLayer;
use protothrive::gateway::{Deprecation, RequestLimitsLayer, VersionLayer};
use protothrive::rate_limit::{KeyBy, Limit};
use protothrive::redis_handle::RedisHandle;
use protothrive::security_headers::SecurityHeadersLayer;
use protothrive::stack::Stack;
use protothrive::trace::TraceLayer;
use std::convert::Infallible;
use tower::util::BoxCloneSyncService;
use tower::{Layer, ServiceExt};

use crate::agent::AgentClient;
use crate::config::Config;
use crate::db::{self, Db};
use crate::routes;
use crate::state::{AppState, DbApiKeys, UserResolver};

/// The largest request body: a 50 KB graph plus the rest of a roadmap fits.
pub const MAX_BODY: usize = 64 * 1024;

static X_QUERY_COUNT: HeaderName = HeaderName::from_static("x-query-count");

/// Builds the state: database, keys, issuer.
pub async fn state(
    config: Config,
    clock: SharedClock,
    jwt_secret: &[u8],
    agent: AgentClient,
    metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
) -> Result<AppState, Box<dyn std::error::Error>> {
    let busy = std::time::Duration::from_millis(config.resilience.db_busy_timeout_ms);
    let db = Db::connect(&config.database_url, busy).await?;
    // One Redis connection and outage breaker for revocations, limits and the cache. It connects
    // lazily: a server that is down at start makes /health/ready "degraded" and each store
    // follows its outage policy until Redis is back.
    let redis = match &config.redis_url {
        Some(url) => Some(RedisHandle::builder(url).clock(clock.clone()).build()?),
        None => None,
    };
    let revocations = crate::revocations::load(&db, clock.clone(), redis.as_ref()).await?;
    let users = UserResolver::new(db.clone(), clock.clone());
    let mut builder = Authenticator::builder()
        .key(VerifyingKey::hmac(Algorithm::HS256, jwt_secret)?)
        .issuer(config.jwt_issuer.clone())
        .audience(config.jwt_audience.clone())
        .leeway(std::time::Duration::from_secs(config.jwt_leeway))
        .require_claim("jti")
        .resolver(users)
        .api_keys(DbApiKeys {
            db: db.clone(),
            metrics: config.metrics_token.as_deref().map(ApiKeyHash::of),
        })
        .opaque_bearer_api_keys(true)
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
    let (data, data_purges) = crate::loaders::data_cache(clock.clone(), redis.as_ref())?;
    let stack = stack(&config, &clock, &auth, redis)?;
    let cache = stack
        .cache()
        .cloned()
        .ok_or("the stack is built with the read cache")?;
    Ok(AppState {
        nested: crate::loaders::factory(db.clone(), clock.clone(), data.clone()),
        data,
        data_purges,
        db,
        auth,
        issuer,
        revocations,
        config: Arc::new(config),
        started: clock.instant(),
        clock,
        agent,
        metrics,
        stack,
        cache,
    })
}

/// Counts the database statements of each request into `X-Query-Count` (at the stack's trace
/// position: every rejection further in is counted too, as zero).
async fn count_statements(req: Request, next: Next) -> Response {
    let (mut res, queries) = db::counted(next.run(req)).await;
    res.headers_mut()
        .insert(X_QUERY_COUNT.clone(), HeaderValue::from(queries));
    metrics::histogram!("protothrive_db_statements_per_request").record(f64::from(queries));
    res
}

/// CORS for the configured front-end origins (`PROTOTHRIVE_CORS_ORIGINS`), with credentials; no
/// origin at all when none is configured (every preflight then gets a 403 problem). The stack adds
/// the headers its layers read and write; these are the API's own.
fn cors(origins: &[String]) -> CorsLayerBuilder {
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
        .allow_headers(["idempotency-key", "if-match", "if-none-match"])
        .extend_expose_headers(["etag", "x-query-count"])
}

/// The app as one service (the router inside every layer).
pub type App = BoxCloneSyncService<Request<Body>, Response, Infallible>;

/// The API's stack: the configuration's part (trusted proxies, the ip, user and api_key limits),
/// then what is the API's own — versions, body limits, the login and register limits, its
/// authenticator, CSRF, the read cache, and one Redis connection for limits and cache when there
/// is one.
fn stack(
    config: &Config,
    clock: &SharedClock,
    auth: &Authenticator,
    redis: Option<RedisHandle>,
) -> Result<Stack, protothrive::error::ConfigError> {
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
        .default_version(1);
    let limits = config.limits;
    let per_ip = |name: &str, quota| Limit::new(name, quota).by(KeyBy::ClientIpV6Net64);
    let mut stack = Stack::from_config(&config.stack)?
        .clock(clock.clone())
        .realm("protothrive")
        .trace(TraceLayer::new())
        .cors(cors(&config.cors_origins))
        .security_headers(SecurityHeadersLayer::new())
        .versions(versions)
        .body_limits(
            RequestLimitsLayer::new()
                .max_body_bytes(MAX_BODY)
                .json_only(),
        )
        .limit_by_client(
            per_ip("login", limits.login)
                .path_prefix("/api/auth/login")
                .method(Method::POST),
        )
        .limit_by_client(
            per_ip("register", limits.register)
                .path_prefix("/api/auth/register")
                .method(Method::POST),
        )
        .authenticator(auth.clone(), true)
        .csrf(CsrfLayer::new().allowed_origins(config.cors_origins.iter().cloned()))
        .cache(crate::cache::builder());
    // With Redis, Redis decides the limits for every instance (the in-process store is the
    // fallback of the outage policy) and is the cache's L2.
    if let Some(redis) = redis {
        let store = protothrive::rate_limit::RedisStore::from_handle(&redis).build()?;
        stack = stack
            .remote_rate_limit_store(Arc::new(store), config.rate_limit_on_redis_error)
            .redis(redis);
    }
    stack.build()
}

/// The whole service: the stack around the router.
pub fn app(state: &AppState) -> Result<App, Box<dyn std::error::Error>> {
    crate::http::set_production(state.config.is_production());
    let service = state
        .stack
        .with_trace(middleware::from_fn(count_statements))
        .layer(routes::router(state.clone()))
        .map_response(IntoResponse::into_response);
    // Outermost: each item of `POST /api/batch` goes through the whole stack above as if sent
    // alone; the envelope itself is admitted (authenticated, limited, validated) by its route.
    let batch = routes::batch::layer()?.layer(service);
    Ok(BoxCloneSyncService::new(
        batch.map_response(IntoResponse::into_response),
    ))
}

/// The app [`build`] made, with what `main` prints about it.
pub struct Built {
    pub state: AppState,
    pub service: App,
    /// The demo users' password when this start seeded them (never in production).
    pub demo_password: Option<String>,
}

/// A random secret for development starts (tokens do not survive a restart).
fn random_secret() -> Vec<u8> {
    let mut secret = vec![0u8; 32];
    let _ = aws_lc_rs::rand::fill(&mut secret);
    secret
}

fn random_password() -> String {
    use base64::Engine as _;
    let mut bytes = [0u8; 12];
    let _ = aws_lc_rs::rand::fill(&mut bytes);
    // Upper, lower, digit and symbol guaranteed by the prefix; the rest is random.
    format!(
        "Pt7!{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    )
}

/// The whole app from a configuration: the agent client, the state, the demo users (seeded on a
/// first start outside production) and the service. `metrics` is the process's Prometheus
/// recorder, when one is installed (there is one per process).
pub async fn build(
    config: Config,
    clock: SharedClock,
    metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
) -> Result<Built, Box<dyn std::error::Error>> {
    let secret = config
        .jwt_secret
        .as_ref()
        .map_or_else(random_secret, |s| s.as_bytes().to_vec());
    let agent = crate::agent::start(&config, &clock).await?;
    let state = state(config, clock.clone(), &secret, agent, metrics).await?;
    let mut demo_password = None;
    if !state.config.is_production() {
        let password = state
            .config
            .demo_password
            .clone()
            .unwrap_or_else(random_password);
        let now = i64::try_from(clock.unix_seconds()).unwrap_or(0);
        if db::seed::seed(&state.db, &password, now).await? {
            demo_password = Some(password);
        }
    }
    let service = app(&state)?;
    Ok(Built {
        state,
        service,
        demo_password,
    })
}
